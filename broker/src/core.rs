//! One core's world: its shard (the partitions it owns), the consumer
//! groups it coordinates, and its router to the other cores. Everything
//! that must reach a partition or a group wherever it lives goes through
//! here: produce, reads, ListOffsets, group calls, and topic changes that
//! every core must apply. The api handlers call these; jobs sent to other
//! cores call `Partition`, `Shard` and `Groups` operations, never handlers.

use crate::config::Config;
use crate::error::{BrokerError, TopicError};
use crate::group::coordinator::Coordinator;
use crate::group::store::OFFSETS_TOPIC;
use crate::group::{coordinator_core, GroupAnswer, GroupCall, Groups};
use crate::metadata::cluster::Cluster;
use crate::metadata::topics::Topic;
use crate::partition::{
    Acks, DeleteRecordsError, OffsetAnswer, OffsetQuery, PartitionRead, ProduceError, Produced,
    ProducerSummary, ReadBound, ReadError,
};
use crate::refusals::Refusals;
use crate::router::Router;
use crate::shard::Shard;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use storage::{Chunk, CoreMemory, LogConfig, ProducedBatch};

/// One partition to read: (topic, partition, fetch offset, partition max bytes).
pub type ReadWanted = (String, i32, i64, usize);

/// One partition's read, as it crosses cores.
pub type SentRead = Result<PartitionRead<bytes::Bytes>, ReadError>;

pub struct Core {
    pub config: Config,
    pub cluster: Arc<Cluster>,
    pub router: Router<Core>,
    pub shard: Rc<Shard>,
    pub groups: Rc<Groups>,
    /// Refused requests already logged on this core (refusals.rs).
    pub refusals: Refusals,
}

impl Core {
    /// Opens the partitions this core owns of every known topic and reloads
    /// the groups it coordinates.
    pub async fn open(
        config: Config,
        cluster: Arc<Cluster>,
        router: Router<Core>,
    ) -> Result<Rc<Core>, BrokerError> {
        let memory =
            CoreMemory::with_limits(config.tail_cache_bytes_max, config.write_buffer_bytes_max);
        let shard = Rc::new(Shard::new(
            router.core(),
            router.cores(),
            &config.data_dir,
            config.log.clone(),
            memory,
        ));
        for topic in cluster.topics() {
            shard.open_partitions(&topic).await?;
        }
        let groups = Rc::new(Groups::new(
            Coordinator::new(config.group.clone()),
            shard.clone(),
            cluster.clone(),
            router.core(),
        ));
        groups.load().await?;
        Ok(Rc::new(Core {
            config,
            cluster,
            router,
            shard,
            groups,
            refusals: Refusals::default(),
        }))
    }

    /// Runs `work` on `core`: directly if it is this one, else as a job
    /// there (CoreStopping if that core no longer answers).
    pub async fn on_core<R, F, Fut>(self: &Rc<Self>, core: usize, work: F) -> Result<R, BrokerError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Core>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if core == self.router.core() {
            return Ok(work(self.clone()).await);
        }
        self.router
            .call(core, work)
            .await
            .ok_or(BrokerError::CoreStopping(core))
    }

    /// Runs `work` on every core, this one first; the first failure wins
    /// but every core is still asked.
    async fn on_every_core<F, Fut>(self: &Rc<Self>, work: F) -> Result<(), BrokerError>
    where
        F: FnOnce(Rc<Core>) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = Result<(), BrokerError>> + 'static,
    {
        let here = self.router.core();
        let mut result = work.clone()(self.clone()).await;
        for core in (0..self.router.cores()).filter(|&c| c != here) {
            let answer = self.on_core(core, work.clone()).await.and_then(|r| r);
            result = result.and(answer);
        }
        result
    }

    /// Produce to a partition on its owning core.
    pub async fn produce(
        self: &Rc<Self>,
        topic: String,
        partition: i32,
        batch: ProducedBatch,
        acks: Acks,
    ) -> Result<Produced, ProduceError> {
        let owner = self.router.owner(&topic, partition);
        let answer = self
            .on_core(owner, move |core| async move {
                match core.shard.partition(&topic, partition) {
                    Some(partition) => partition.produce(batch, acks).await,
                    None => Err(ProduceError::UnknownPartition),
                }
            })
            .await;
        answer.unwrap_or(Err(ProduceError::NotLeader))
    }

    /// ListOffsets on a partition's owning core.
    pub async fn offset_for(
        self: &Rc<Self>,
        topic: String,
        partition: i32,
        query: OffsetQuery,
    ) -> Result<OffsetAnswer, ReadError> {
        let owner = self.router.owner(&topic, partition);
        let answer = self
            .on_core(owner, move |core| async move {
                match core.shard.partition(&topic, partition) {
                    Some(partition) => Ok(partition.offset_for(query).await?),
                    None => Err(ReadError::UnknownPartition),
                }
            })
            .await;
        answer.unwrap_or(Err(ReadError::NotLeader))
    }

    /// DeleteRecords on a partition's owning core: the new low watermark.
    pub async fn delete_records(
        self: &Rc<Self>,
        topic: String,
        partition: i32,
        offset: i64,
    ) -> Result<i64, DeleteRecordsError> {
        let owner = self.router.owner(&topic, partition);
        let answer = self
            .on_core(owner, move |core| async move {
                match core.shard.partition(&topic, partition) {
                    Some(partition) => partition.delete_records_before(offset).await,
                    None => Err(DeleteRecordsError::UnknownPartition),
                }
            })
            .await;
        answer.unwrap_or(Err(DeleteRecordsError::NotLeader))
    }

    /// DescribeProducers on a partition's owning core.
    pub async fn producers_of(
        self: &Rc<Self>,
        topic: String,
        partition: i32,
    ) -> Result<Vec<ProducerSummary>, ReadError> {
        let owner = self.router.owner(&topic, partition);
        let answer = self
            .on_core(owner, move |core| async move {
                match core.shard.partition(&topic, partition) {
                    Some(partition) => Ok(partition.producers()),
                    None => Err(ReadError::UnknownPartition),
                }
            })
            .await;
        answer.unwrap_or(Err(ReadError::NotLeader))
    }

    /// (topic, partition, bytes on disk) of every partition of every core
    /// (DescribeLogDirs), sorted; a core that does not answer is left out.
    pub async fn partition_sizes(self: &Rc<Self>) -> Vec<(String, i32, u64)> {
        let mut all = Vec::new();
        for core in 0..self.router.cores() {
            let sizes = self
                .on_core(core, |core| async move {
                    let mut sizes = Vec::new();
                    for topic in core.cluster.topics() {
                        for index in 0..topic.partitions {
                            if let Some(partition) = core.shard.partition(&topic.name, index) {
                                sizes.push((
                                    topic.name.clone(),
                                    index,
                                    partition.log().size_bytes(),
                                ));
                            }
                        }
                    }
                    sizes
                })
                .await;
            match sizes {
                Ok(sizes) => all.extend(sizes),
                Err(error) => tracing::warn!(core, %error, "partition sizes"),
            }
        }
        all.sort();
        all
    }

    /// Reads this core's partitions in order from a shared budget, for
    /// consumers (up to the high watermark). Kafka returns at least one
    /// batch to make progress, even past max_bytes, but only for the first
    /// partition with data (`total_before` == 0). Returns the reads and the
    /// bytes they hold.
    pub async fn read_here(
        &self,
        wanted: &[ReadWanted],
        mut budget: usize,
        total_before: usize,
    ) -> (Vec<Result<PartitionRead<Chunk>, ReadError>>, usize) {
        let mut total = 0usize;
        let mut answers = Vec::with_capacity(wanted.len());
        for (name, index, offset, partition_max) in wanted {
            let Some(partition) = self.shard.partition(name, *index) else {
                answers.push(Err(ReadError::UnknownPartition));
                continue;
            };
            if budget == 0 && total_before + total > 0 {
                // Nothing left to give: offsets only (a read always gives
                // at least one batch, so do not read).
                answers.push(Ok(PartitionRead {
                    high_watermark: partition.high_watermark(),
                    log_start_offset: partition.log_start_offset(),
                    records: Vec::new(),
                }));
                continue;
            }
            let limit = (*partition_max).min(budget.max(1));
            let read = partition
                .read(*offset, limit, ReadBound::HighWatermark)
                .await;
            if let Ok(read) = &read {
                let bytes: usize = read.records.iter().map(|c| c.len()).sum();
                total += bytes;
                budget = budget.saturating_sub(bytes);
            }
            answers.push(read.map_err(ReadError::from));
        }
        (answers, total)
    }

    /// `read_here` on another core: its append count from before the reads
    /// (for `wait_for_appends`) and reads that can cross cores.
    pub async fn read_on(
        self: &Rc<Self>,
        core: usize,
        wanted: Vec<ReadWanted>,
        budget: usize,
        total_before: usize,
    ) -> Result<(u64, Vec<SentRead>), BrokerError> {
        self.on_core(core, move |core| async move {
            let appends = core.shard.appends().count();
            let (reads, _) = core.read_here(&wanted, budget, total_before).await;
            let sent = reads
                .into_iter()
                .map(|read| read.map(PartitionRead::into_sendable))
                .collect();
            (appends, sent)
        })
        .await
    }

    /// Resolves once `core` has seen more than `after` appends, or after
    /// `timeout` (a fetch long-poll on another core's partitions).
    pub async fn wait_for_appends(self: &Rc<Self>, core: usize, after: u64, timeout: Duration) {
        let _ = self
            .on_core(core, move |core| async move {
                core.shard.appends().wait_beyond(after, timeout).await
            })
            .await;
    }

    /// Runs a group call on the group's coordinator core (ListGroups: on
    /// every core, merged).
    pub async fn group_call(self: &Rc<Self>, call: GroupCall) -> GroupAnswer {
        let cores = self.router.cores();
        let Some(group) = call.group() else {
            let mut all = Vec::new();
            for core in 0..cores {
                let answer = self
                    .on_core(core, |core| async move {
                        core.groups.execute(GroupCall::List).await
                    })
                    .await;
                if let Ok(GroupAnswer::List(groups)) = answer {
                    all.extend(groups);
                }
            }
            all.sort();
            return GroupAnswer::List(all);
        };
        let core = coordinator_core(group, self.config.group.offsets_topic_partitions, cores);
        self.on_core(
            core,
            move |core| async move { core.groups.execute(call).await },
        )
        .await
        .unwrap_or(GroupAnswer::Unavailable)
    }

    pub fn topic(&self, name: &str) -> Option<Topic> {
        self.cluster.topic(name)
    }

    /// Opens the topic's partitions on their owning cores.
    async fn open_everywhere(self: &Rc<Self>, topic: &Topic) -> Result<(), BrokerError> {
        let topic = topic.clone();
        self.on_every_core(move |core| async move { core.shard.open_partitions(&topic).await })
            .await
    }

    /// Creates a topic and its partition logs on their owning cores.
    pub async fn create_topic(
        self: &Rc<Self>,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Topic, TopicError> {
        let topic = Topic {
            name: name.to_string(),
            partitions,
            configs,
        };
        let _reservation = self
            .cluster
            .reserve(name)
            .map_err(|_| TopicError::AlreadyExists(name.to_string()))?;
        self.open_everywhere(&topic).await?;
        self.cluster
            .insert(topic.clone())
            .map_err(BrokerError::from)?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    pub async fn delete_topic(self: &Rc<Self>, name: &str) -> Result<(), TopicError> {
        if name == OFFSETS_TOPIC {
            return Err(TopicError::Internal(name.to_string()));
        }
        let removed = self.cluster.remove(name).map_err(BrokerError::from)?;
        let Some(topic) = removed else {
            return Err(TopicError::Unknown(name.to_string()));
        };
        let (name_owned, partitions) = (name.to_string(), topic.partitions);
        let dropped = self
            .on_every_core(move |core| async move {
                core.shard.drop_partitions(&name_owned, partitions).await;
                Ok(())
            })
            .await;
        if let Err(error) = dropped {
            tracing::error!(topic = name, %error, "delete partitions");
        }
        // Every core's groups forget their committed offsets of the topic.
        let name_owned = name.to_string();
        let forgotten = self
            .on_every_core(move |core| async move {
                let removed = core.groups.topic_deleted(&name_owned).await;
                if removed > 0 {
                    tracing::info!(topic = %name_owned, offsets = removed, "removed committed offsets of deleted topic");
                }
                Ok(())
            })
            .await;
        if let Err(error) = forgotten {
            tracing::error!(topic = name, %error, "remove committed offsets");
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `count` partitions (the caller checked it grows).
    pub async fn add_partitions(self: &Rc<Self>, name: &str, count: i32) -> Result<(), TopicError> {
        let Some(mut topic) = self.topic(name) else {
            return Err(TopicError::Unknown(name.to_string()));
        };
        topic.partitions = count;
        self.open_everywhere(&topic).await?;
        self.cluster.insert(topic).map_err(BrokerError::from)?;
        tracing::info!(topic = name, partitions = count, "added partitions");
        Ok(())
    }

    /// Stores a topic's new config overrides and applies them to its logs on
    /// every core.
    pub async fn update_topic(
        self: &Rc<Self>,
        topic: Topic,
        config: LogConfig,
    ) -> Result<(), BrokerError> {
        self.cluster.insert(topic.clone())?;
        let (name, partitions) = (topic.name, topic.partitions);
        self.on_every_core(move |core| async move {
            core.shard
                .reconfigure_partitions(&name, partitions, &config);
            Ok(())
        })
        .await
    }
}
