//! One core's world: its partitions' logs, the topic registry, producer
//! state, and the connections it accepted. Single-threaded: `Rc` + `RefCell`,
//! never borrowed across an `.await`.

use crate::config::Config;
use crate::metadata::topics::{Topic, TopicStore};
use anyhow::{Context, Result};
use glommio::net::TcpStream;
use kafka_protocol::error::ResponseError;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use storage::{CoreMemory, Event, Faults, Log, LogOptions};

/// Batches remembered per producer id and partition for duplicate detection
/// (Kafka keeps 5: max.in.flight.requests.per.connection for idempotence).
pub const PRODUCER_BATCHES_MAX: usize = 5;

#[derive(Debug, Clone, Copy)]
pub struct ProducedBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
}

#[derive(Debug, Default)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: std::collections::VecDeque<ProducedBatch>,
}

pub struct Partition {
    pub log: Log,
    pub producers: RefCell<HashMap<i64, ProducerEntry>>,
    /// Held from the sequence check through the in-memory append, so that
    /// pipelined requests of one producer are checked and appended in order.
    pub produce_order: glommio::sync::Semaphore,
}

pub struct Shard {
    pub config: Config,
    pub topics: RefCell<TopicStore>,
    partitions: RefCell<HashMap<(String, i32), Rc<Partition>>>,
    memory: Rc<CoreMemory>,
    /// Notified after every append, for fetch long-polls.
    pub appended: Event,
    connections: Cell<usize>,
    next_producer_id: Cell<i64>,
}

impl Shard {
    pub async fn open(config: Config) -> Result<Rc<Shard>> {
        let topics = TopicStore::open(&config.data_dir)?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as i64);
        let shard = Rc::new(Shard {
            memory: CoreMemory::new(config.tail_cache_bytes_max),
            config,
            topics: RefCell::new(topics),
            partitions: RefCell::new(HashMap::new()),
            appended: Event::default(),
            connections: Cell::new(0),
            // Ids must not repeat across restarts while producer state is not
            // persisted: start from the clock.
            next_producer_id: Cell::new(seed << 8),
        });
        let known: Vec<Topic> = shard.topics.borrow().all().cloned().collect();
        for topic in known {
            shard.open_partitions(&topic).await?;
        }
        Ok(shard)
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{partition}"))
    }

    async fn open_partitions(&self, topic: &Topic) -> Result<()> {
        let config = topic.log_config(&self.config.log)?;
        for partition in 0..topic.partitions {
            if self.partition(&topic.name, partition).is_some() {
                continue;
            }
            let dir = self.partition_dir(&topic.name, partition);
            let options = LogOptions {
                config: config.clone(),
                memory: self.memory.clone(),
                faults: Rc::new(Faults::default()),
            };
            let (log, report) = Log::open(&dir, options)
                .await
                .with_context(|| format!("open {}", dir.display()))?;
            if report.truncated_bytes() > 0 {
                tracing::warn!(topic = %topic.name, partition, bytes = report.truncated_bytes(), "recovered partition");
            }
            log.set_high_watermark(log.log_end_offset());
            let entry = Rc::new(Partition {
                log,
                producers: RefCell::new(HashMap::new()),
                produce_order: glommio::sync::Semaphore::new(1),
            });
            self.partitions
                .borrow_mut()
                .insert((topic.name.clone(), partition), entry);
        }
        Ok(())
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Rc<Partition>> {
        self.partitions
            .borrow()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn topic(&self, name: &str) -> Option<Topic> {
        self.topics.borrow().get(name).cloned()
    }

    /// Creates a topic and its partition logs. Errors are Kafka's.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Topic, (ResponseError, String)> {
        let topic = Topic {
            name: name.to_string(),
            partitions,
            configs,
        };
        if self.topics.borrow().get(name).is_some() {
            return Err((
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        self.open_partitions(&topic)
            .await
            .map_err(|e| (ResponseError::KafkaStorageError, format!("{e:#}")))?;
        self.topics
            .borrow_mut()
            .insert(topic.clone())
            .map_err(|e| (ResponseError::KafkaStorageError, format!("{e:#}")))?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    pub async fn delete_topic(&self, name: &str) -> Result<(), ResponseError> {
        let Some(topic) = self.topic(name) else {
            return Err(ResponseError::UnknownTopicOrPartition);
        };
        self.topics
            .borrow_mut()
            .remove(name)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        for partition in 0..topic.partitions {
            let removed = self
                .partitions
                .borrow_mut()
                .remove(&(name.to_string(), partition));
            if let Some(entry) = removed {
                if let Err(error) = entry.log.clone().delete().await {
                    tracing::error!(topic = name, partition, %error, "delete partition");
                }
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `count` partitions (the caller checked it grows).
    pub async fn add_partitions(
        &self,
        name: &str,
        count: i32,
    ) -> Result<(), (ResponseError, String)> {
        let storage_error = |e: anyhow::Error| (ResponseError::KafkaStorageError, format!("{e:#}"));
        let Some(mut topic) = self.topic(name) else {
            return Err((
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{name}' does not exist."),
            ));
        };
        topic.partitions = count;
        self.open_partitions(&topic).await.map_err(storage_error)?;
        self.topics
            .borrow_mut()
            .insert(topic)
            .map_err(storage_error)?;
        tracing::info!(topic = name, partitions = count, "added partitions");
        Ok(())
    }

    /// Stores a topic's new config overrides and applies them to its logs.
    pub fn update_topic(&self, topic: Topic, config: storage::LogConfig) -> Result<()> {
        for partition in 0..topic.partitions {
            if let Some(entry) = self.partition(&topic.name, partition) {
                entry.log.set_config(config.clone());
            }
        }
        self.topics.borrow_mut().insert(topic)
    }

    pub fn allocate_producer_id(&self) -> i64 {
        let id = self.next_producer_id.get();
        self.next_producer_id.set(id + 1);
        id
    }

    /// Flushes and seals every log (clean shutdown).
    pub async fn close(&self) {
        let all: Vec<Rc<Partition>> = self.partitions.borrow().values().cloned().collect();
        for partition in all {
            if let Err(error) = partition.log.close().await {
                tracing::error!(dir = %partition.log.dir().display(), %error, "close log");
            }
        }
    }

    /// Serves one client connection until it closes or misbehaves.
    pub async fn serve(self: Rc<Self>, stream: TcpStream) {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        if self.connections.get() >= self.config.connections_max {
            tracing::warn!(%peer, max = self.config.connections_max, "max.connections reached; closing");
            return;
        }
        self.connections.set(self.connections.get() + 1);
        let _ = stream.set_nodelay(true);
        crate::connection::serve(self.clone(), stream, peer).await;
        self.connections.set(self.connections.get() - 1);
    }
}
