//! One core's world: the partitions it owns (logs, producer state, produce
//! ordering), its connections, and its end of the cross-core router.
//! Single-threaded: `Rc` + `RefCell`, never borrowed across an `.await`.
//! What all cores share (the topic registry) is `metadata::cluster`.

use crate::config::Config;
use crate::metadata::cluster::Cluster;
use crate::metadata::topics::Topic;
use crate::router::{CoreRequest, Router};
use anyhow::{Context, Result};
use glommio::net::TcpStream;
use kafka_protocol::error::ResponseError;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use storage::{CoreMemory, Event, Faults, Log, LogOptions};

pub struct Partition {
    pub log: Log,
    pub producers: RefCell<crate::producer_state::Producers>,
    /// Held from the sequence check through the in-memory append, so that
    /// pipelined requests of one producer are checked and appended in order.
    pub produce_order: glommio::sync::Semaphore,
}

pub struct Shard {
    pub config: Config,
    pub cluster: Arc<Cluster>,
    pub router: Router,
    /// The consumer groups this core coordinates.
    pub groups: crate::group::coordinator::Coordinator,
    partitions: RefCell<HashMap<(String, i32), Rc<Partition>>>,
    memory: Rc<CoreMemory>,
    /// Notified after every append on this core, for fetch long-polls.
    appended: Event,
    /// Appends so far on this core: lets a long-poll on another core ask
    /// "has anything been appended since my read?" without a race.
    appends: Cell<u64>,
}

impl Shard {
    /// Opens the partitions this core owns of every known topic.
    pub async fn open(config: Config, cluster: Arc<Cluster>, router: Router) -> Result<Rc<Shard>> {
        let shard = Rc::new(Shard {
            memory: CoreMemory::with_limits(
                config.tail_cache_bytes_max,
                config.write_buffer_bytes_max,
            ),
            groups: crate::group::coordinator::Coordinator::new(config.group.clone()),
            config,
            cluster,
            router,
            partitions: RefCell::new(HashMap::new()),
            appended: Event::default(),
            appends: Cell::new(0),
        });
        for topic in shard.cluster.topics() {
            shard.open_local_partitions(&topic).await?;
        }
        crate::group::load(&shard).await?;
        Ok(shard)
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Opens (or recovers) the topic's partitions that this core owns and
    /// has not opened yet.
    pub async fn open_local_partitions(&self, topic: &Topic) -> Result<()> {
        let config = topic.log_config(&self.config.log)?;
        for partition in 0..topic.partitions {
            if !self.router.is_local(&topic.name, partition)
                || self.partition(&topic.name, partition).is_some()
            {
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
            let producers = crate::producer_state::recover(&log).await;
            let entry = Rc::new(Partition {
                log,
                producers: RefCell::new(producers),
                produce_order: glommio::sync::Semaphore::new(1),
            });
            self.partitions
                .borrow_mut()
                .insert((topic.name.clone(), partition), entry);
        }
        Ok(())
    }

    pub async fn drop_local_partitions(&self, name: &str, partitions: i32) {
        for partition in 0..partitions {
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
    }

    pub fn reconfigure_local_partitions(
        &self,
        name: &str,
        partitions: i32,
        config: &storage::LogConfig,
    ) {
        for partition in 0..partitions {
            if let Some(entry) = self.partition(name, partition) {
                entry.log.set_config(config.clone());
            }
        }
    }

    /// A partition this core owns (None: unknown, or owned by another core).
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Rc<Partition>> {
        self.partitions
            .borrow()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn topic(&self, name: &str) -> Option<Topic> {
        self.cluster.topic(name)
    }

    /// Called after every append on this core: wakes local long-polls, and
    /// counts, for long-polls waiting from other cores.
    pub fn note_append(&self) {
        self.appends.set(self.appends.get() + 1);
        self.appended.notify_all();
    }

    pub fn append_count(&self) -> u64 {
        self.appends.get()
    }

    /// Listens for the next append on this core (register before reading,
    /// so an append between the read and the wait is not missed).
    pub fn next_append(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.appended.listen()
    }

    /// Resolves when more than `after` appends happened here, or at `timeout`.
    pub async fn wait_for_append(&self, after: u64, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let appended = self.appended.listen();
            let now = std::time::Instant::now();
            if self.appends.get() > after || now >= deadline {
                return;
            }
            futures_lite::future::or(appended, glommio::timer::sleep(deadline - now)).await;
        }
    }

    /// Runs `on_core` for each core: locally for this one, as a request for
    /// the others. Metadata changes use it to reach every partition owner.
    async fn on_every_core(
        &self,
        local: impl std::future::Future<Output = Result<(), String>>,
        remote: impl Fn(flume::Sender<Result<(), String>>) -> CoreRequest,
    ) -> Result<(), String> {
        let mut result = local.await;
        for core in 0..self.router.cores() {
            if core == self.router.core() {
                continue;
            }
            let answer = self
                .router
                .call(core, &remote)
                .await
                .unwrap_or_else(|| Err(format!("core {core} is stopping")));
            result = result.and(answer);
        }
        result
    }

    /// Creates a topic and its partition logs on their owning cores.
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
        let _reservation = self
            .cluster
            .reserve(name)
            .map_err(|error| (error, format!("Topic '{name}' already exists.")))?;
        self.open_everywhere(&topic).await?;
        self.cluster
            .insert(topic.clone())
            .map_err(|e| (ResponseError::KafkaStorageError, format!("{e:#}")))?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    async fn open_everywhere(&self, topic: &Topic) -> Result<(), (ResponseError, String)> {
        let local = async {
            self.open_local_partitions(topic)
                .await
                .map_err(|e| format!("{e:#}"))
        };
        self.on_every_core(local, |reply| CoreRequest::OpenPartitions {
            topic: topic.clone(),
            reply,
        })
        .await
        .map_err(|message| (ResponseError::KafkaStorageError, message))
    }

    pub async fn delete_topic(&self, name: &str) -> Result<(), ResponseError> {
        if name == crate::group::store::OFFSETS_TOPIC {
            return Err(ResponseError::InvalidTopicException);
        }
        let removed = self
            .cluster
            .remove(name)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        let Some(topic) = removed else {
            return Err(ResponseError::UnknownTopicOrPartition);
        };
        let local = async {
            self.drop_local_partitions(name, topic.partitions).await;
            Ok(())
        };
        let dropped = self
            .on_every_core(local, |reply| CoreRequest::DropPartitions {
                topic: name.to_string(),
                partitions: topic.partitions,
                reply,
            })
            .await;
        if let Err(error) = dropped {
            tracing::error!(topic = name, %error, "delete partitions");
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
        let Some(mut topic) = self.topic(name) else {
            return Err((
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{name}' does not exist."),
            ));
        };
        topic.partitions = count;
        self.open_everywhere(&topic).await?;
        self.cluster
            .insert(topic)
            .map_err(|e| (ResponseError::KafkaStorageError, format!("{e:#}")))?;
        tracing::info!(topic = name, partitions = count, "added partitions");
        Ok(())
    }

    /// Stores a topic's new config overrides and applies them to its logs on
    /// every core.
    pub async fn update_topic(
        &self,
        topic: Topic,
        config: storage::LogConfig,
    ) -> Result<(), String> {
        self.cluster
            .insert(topic.clone())
            .map_err(|e| format!("{e:#}"))?;
        let local = async {
            self.reconfigure_local_partitions(&topic.name, topic.partitions, &config);
            Ok(())
        };
        self.on_every_core(local, |reply| CoreRequest::Reconfigure {
            topic: topic.name.clone(),
            partitions: topic.partitions,
            config: config.clone(),
            reply,
        })
        .await
    }

    /// Applies `retention.ms` / `retention.bytes` to this core's partitions
    /// every `log.retention.check.interval.ms`, as Kafka's log cleaner
    /// thread does for deletion. Runs until the executor stops.
    pub async fn enforce_retention_forever(self: Rc<Self>) {
        let interval = Duration::from_millis(self.config.retention_check_interval_ms);
        loop {
            glommio::timer::sleep(interval).await;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let all: Vec<Rc<Partition>> = self.partitions.borrow().values().cloned().collect();
            for partition in all {
                if let Err(error) = partition.log.enforce_retention(now_ms).await {
                    tracing::error!(dir = %partition.log.dir().display(), %error, "retention");
                }
            }
        }
    }

    /// Flushes and seals every log of this core (clean shutdown).
    pub async fn close(&self) {
        let all: Vec<Rc<Partition>> = self.partitions.borrow().values().cloned().collect();
        for partition in all {
            let log = &partition.log;
            if let Err(error) = log.close().await {
                tracing::error!(dir = %log.dir().display(), %error, "close log");
                continue;
            }
            let snapshot = crate::producer_state::write_snapshot(
                log.dir(),
                &partition.producers.borrow(),
                log.log_end_offset(),
            );
            if let Err(error) = snapshot {
                tracing::error!(dir = %log.dir().display(), %error, "producer-state snapshot");
            }
        }
    }

    /// Serves one client connection until it closes or misbehaves.
    pub async fn serve(self: Rc<Self>, stream: TcpStream) {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        let Some(_slot) = self.cluster.take_connection(self.config.connections_max) else {
            tracing::warn!(%peer, max = self.config.connections_max, "max.connections reached; closing");
            return;
        };
        let _ = stream.set_nodelay(true);
        crate::connection::serve(self.clone(), stream, peer).await;
    }
}
