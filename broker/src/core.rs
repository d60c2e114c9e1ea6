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
use crate::metrics::{CoreCounters, CoreSnapshot, Hop, PartitionSnapshot};
use crate::partition::{
    Acks, DeleteRecordsError, OffsetAnswer, OffsetQuery, PartitionRead, ProduceError, Produced,
    ProducerSummary, ReadBound, ReadError, Role,
};
use crate::refusals::Refusals;
use crate::router::Router;
use crate::security::authorizer::Authorizer;
use crate::shard::Shard;
use controller::{
    ControllerError, MetadataImage, NewTopic, PartitionError, Request, Response, TopicImage, Update,
};
use replication::{EpochEnd, IsrChange};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{Chunk, CoreMemory, Event, ProducedBatch};

/// One partition of a fetch.
#[derive(Debug, Clone)]
pub struct ReadWanted {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: usize,
    /// KIP-320's CurrentLeaderEpoch (-1: not checked).
    pub current_leader_epoch: i32,
    /// A follower's LastFetchedEpoch (-1: none).
    pub last_fetched_epoch: i32,
}

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
    /// What `/metrics` reports of this core (metrics/mod.rs).
    pub counters: CoreCounters,
    /// The metadata image as this core has applied it to its shard.
    image: RefCell<Arc<MetadataImage>>,
    /// The ACLs of `image` (security/authorizer.rs), rebuilt when the
    /// image's `acls_changed_at` moves.
    authorizer: RefCell<(u64, Rc<Authorizer>)>,
    /// Notified after each applied metadata update (the replica fetchers
    /// look for new leaders to follow).
    roles_changed: storage::Event,
    /// Partitions take the roles the image gives them only once this
    /// broker has registered and applied the log up to its registration:
    /// the image on disk may still name it leader at an epoch whose
    /// unsynced tail the crash lost, and its followers have that tail.
    /// The registration entry itself moves leadership away from a new
    /// incarnation (Kafka's handleBrokerUncleanShutdown).
    roles_ready: std::cell::Cell<bool>,
    /// Set at a clean stop: connections serve no new request (they close
    /// at their next frame) while the ones in flight finish.
    stopping: std::cell::Cell<bool>,
    /// Requests read on this core and not yet answered.
    requests_in_flight: std::cell::Cell<usize>,
    /// This core's share of `queued.max.request.bytes`, handed out fairly
    /// over connections; None without a bound.
    request_room: Option<Rc<crate::request_room::RequestRoom>>,
}

/// Counts one request in flight on its core until dropped (answered, or
/// its task cancelled).
pub struct InFlight(Rc<Core>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let n = &self.0.requests_in_flight;
        n.set(n.get().saturating_sub(1));
    }
}

/// How often a stopping core looks whether its requests are answered.
const DRAIN_POLL: Duration = Duration::from_millis(5);
/// The longest a stop waits for the requests in flight.
const DRAIN_WAIT_MAX: Duration = Duration::from_secs(5);

/// How often a core that has no roles yet looks whether this broker has
/// registered.
const ROLES_READY_POLL: Duration = Duration::from_millis(10);

/// How long a leader waits for the controller to answer an ISR change
/// before it may ask again.
const ALTER_PARTITION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a topic change waits for the controller quorum, and then for
/// this broker's cores to apply it, when the request gives no timeout.
pub const METADATA_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

impl Core {
    /// A request read from a connection starts: counted until the guard
    /// is dropped. None once the core is stopping (the connection closes).
    pub fn request_started(self: &Rc<Self>) -> Option<InFlight> {
        if self.stopping.get() {
            return None;
        }
        let n = &self.requests_in_flight;
        n.set(n.get() + 1);
        Some(InFlight(self.clone()))
    }

    /// Waits for room for a request of `len` bytes in this core's share of
    /// `queued.max.request.bytes` (a request larger than the share takes
    /// all of it), for the connection that holds `held` of it: when room is
    /// short, the connection holding the least is served first. The room
    /// is given back when the permit drops.
    pub async fn request_room(
        &self,
        len: usize,
        held: &Rc<crate::request_room::Held>,
    ) -> Option<crate::request_room::RoomPermit> {
        let room = self.request_room.as_ref()?;
        Some(room.acquire(len, held).await)
    }

    /// The clean stop's first step: no new requests; resolves when the
    /// ones in flight are answered, or after `DRAIN_WAIT_MAX` (a request
    /// parked for long, such as a JoinGroup waiting for its rebalance, is
    /// dropped with its connection, as Kafka's stop drops them; a produce
    /// already appended is flushed by the close, and its producer's retry
    /// is answered as a duplicate). The requests left unanswered.
    pub async fn drain_requests(&self) -> usize {
        self.stopping.set(true);
        let deadline = std::time::Instant::now() + DRAIN_WAIT_MAX;
        while self.requests_in_flight.get() > 0 && std::time::Instant::now() < deadline {
            glommio::timer::sleep(DRAIN_POLL).await;
        }
        self.requests_in_flight.get()
    }

    /// Opens the partitions this core owns of every topic in the metadata
    /// image that this broker hosts, and reloads the groups it coordinates.
    /// The updates after that image are for `follow_metadata`.
    pub async fn open(
        config: Config,
        cluster: Arc<Cluster>,
        router: Router<Core>,
    ) -> Result<(Rc<Core>, flume::Receiver<Update>), BrokerError> {
        let router_cores = router.cores();
        let request_room = (config.queued_request_bytes_max > 0).then(|| {
            let share = (config.queued_request_bytes_max / config.cores.max(1)).max(1) as u64;
            crate::request_room::RequestRoom::new(share)
        });
        let listeners = config.listeners.len();
        let memory =
            CoreMemory::with_limits(config.tail_cache_bytes_max, config.write_buffer_bytes_max);
        let shard = Rc::new(Shard::new(
            router.core(),
            router.cores(),
            config.node_id,
            cluster.log_dirs.clone(),
            config.log.clone(),
            memory,
        ));
        let (image, updates) = cluster.controller.subscribe();
        for topic in image.topics.values() {
            shard
                .open_partitions(&Topic::from_image(topic), false)
                .await?;
        }
        cluster.set_applied(router.core(), image.applied);
        let groups = Rc::new(Groups::new(
            Coordinator::new(config.group.clone()),
            shard.clone(),
            cluster.clone(),
            router.core(),
        ));
        groups.load().await?;
        let authorizer = (
            image.acls_changed_at,
            Rc::new(Authorizer::new(&config.authorizer, &image.acls)),
        );
        let core = Rc::new(Core {
            config,
            cluster,
            router,
            shard,
            groups,
            refusals: Refusals::default(),
            counters: CoreCounters::new(router_cores, listeners),
            authorizer: RefCell::new(authorizer),
            image: RefCell::new(image),
            roles_changed: storage::Event::default(),
            roles_ready: std::cell::Cell::new(false),
            stopping: std::cell::Cell::new(false),
            requests_in_flight: std::cell::Cell::new(0),
            request_room,
        });
        Ok((core, updates))
    }

    /// Applies every metadata update to this core's shard, in log order:
    /// opens the partitions of new topics (and new partitions) this broker
    /// hosts, drops those of deleted topics (and their committed offsets),
    /// reconfigures changed topics; then counts the index as applied here.
    pub async fn follow_metadata(self: Rc<Self>, updates: flume::Receiver<Update>) {
        loop {
            self.start_roles_once_registered().await;
            let update = if self.roles_ready.get() {
                updates.recv_async().await.ok()
            } else {
                // Not registered yet: look again soon even without updates.
                let next = async { Some(updates.recv_async().await.ok()) };
                let later = async {
                    glommio::timer::sleep(ROLES_READY_POLL).await;
                    None
                };
                match futures_lite::future::or(next, later).await {
                    Some(update) => update,
                    None => continue,
                }
            };
            let Some(update) = update else {
                return;
            };
            let old = self.image.borrow().clone();
            if let Err(error) = self.apply_image(&old, &update.image).await {
                tracing::error!(core = self.router.core(), index = update.index, %error, "metadata update");
            }
            *self.image.borrow_mut() = update.image.clone();
            // Before the index counts as applied here: whoever waits for it
            // (the ready line, a metadata write) sees the roles too.
            self.start_roles_once_registered().await;
            self.cluster.set_applied(self.router.core(), update.index);
            self.roles_changed.notify_all();
        }
    }

    async fn apply_image(
        &self,
        old: &MetadataImage,
        new: &MetadataImage,
    ) -> Result<(), BrokerError> {
        for topic in old.topics.values() {
            if new.topic_by_id(topic.id).is_none() {
                self.shard
                    .drop_partitions(&topic.name, topic.partitions.len() as i32)
                    .await;
                let removed = self.groups.topic_deleted(&topic.name).await;
                if removed > 0 {
                    tracing::info!(topic = %topic.name, offsets = removed, "removed committed offsets of deleted topic");
                }
                if self.router.core() == 0 {
                    tracing::info!(topic = %topic.name, "deleted topic");
                }
            }
        }
        for topic in new.topics.values() {
            let before = old.topic_by_id(topic.id);
            let view = Topic::from_image(topic);
            let replicas_moved = before.is_some_and(|b| {
                b.partitions
                    .iter()
                    .zip(&topic.partitions)
                    .any(|(old, new)| old.replicas != new.replicas)
            });
            if replicas_moved {
                // Reassignment: replicas added here start empty and catch
                // up as followers; replicas moved away are deleted.
                self.shard.open_partitions(&view, true).await?;
                self.shard.drop_unhosted(&view).await;
            }
            if before.is_none_or(|b| b.partitions.len() < topic.partitions.len()) {
                self.shard.open_partitions(&view, true).await?;
                if self.router.core() == 0 {
                    tracing::info!(topic = %topic.name, partitions = topic.partitions.len(), "topic in metadata");
                }
            }
            if before.is_some_and(|b| b.configs != topic.configs) {
                let config = view.log_config(&self.config.log)?;
                self.shard
                    .reconfigure_partitions(&topic.name, view.partitions, &config);
            }
            if self.roles_ready.get() {
                self.apply_roles(topic, before).await?;
            }
        }
        Ok(())
    }

    /// Gives this core's partitions their roles the first time this broker
    /// has registered and this core has applied its registration.
    async fn start_roles_once_registered(&self) {
        if self.roles_ready.get() {
            return;
        }
        let epoch = self.cluster.broker_epoch();
        if epoch == 0 || self.image.borrow().applied < epoch {
            return;
        }
        self.roles_ready.set(true);
        if let Err(error) = self.apply_all_roles().await {
            tracing::error!(core = self.router.core(), %error, "partition roles");
        }
        self.roles_changed.notify_all();
    }

    /// Every partition of this core takes its role from the current image
    /// (once registered: `roles_ready`).
    async fn apply_all_roles(&self) -> Result<(), BrokerError> {
        let image = self.image();
        for topic in image.topics.values() {
            self.apply_roles(topic, None).await?;
        }
        Ok(())
    }

    /// The roles of `topic`'s partitions here, where they changed since
    /// `before`; only the leader of an offsets partition coordinates its
    /// groups: they are loaded on election, forgotten on resignation.
    async fn apply_roles(
        &self,
        topic: &TopicImage,
        before: Option<&TopicImage>,
    ) -> Result<(), BrokerError> {
        let moved = apply_assignments(&self.shard, self.config.node_id, topic, before).await;
        if topic.name == OFFSETS_TOPIC {
            for (index, now_leads) in moved {
                if now_leads {
                    self.groups.load_partitions(&[index]).await?;
                } else {
                    self.groups.unload_partition(index);
                }
            }
        }
        Ok(())
    }

    /// Resolves at the next applied metadata update.
    pub fn roles_changed(&self) -> impl Future<Output = ()> + '_ {
        self.roles_changed.listen()
    }

    /// The topic as this core knows it.
    pub fn topic(&self, name: &str) -> Option<Topic> {
        self.image.borrow().topic(name).map(Topic::from_image)
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// This core's authorizer for the ACLs of the image it has applied.
    pub fn authorizer(&self) -> Rc<Authorizer> {
        let image = self.image.borrow();
        let mut cached = self.authorizer.borrow_mut();
        if cached.0 != image.acls_changed_at {
            *cached = (
                image.acls_changed_at,
                Rc::new(Authorizer::new(&self.config.authorizer, &image.acls)),
            );
        }
        cached.1.clone()
    }

    /// Whether this broker leads the partition (Kafka answers
    /// NOT_LEADER_OR_FOLLOWER to a produce or fetch sent elsewhere).
    pub fn leads(&self, topic: &str, partition: i32) -> Option<bool> {
        let image = self.image.borrow();
        let state = image.topic(topic)?.partition(partition)?;
        Some(state.leader == self.config.node_id)
    }

    /// This core's answer to a `/metrics` scrape.
    pub fn snapshot(&self) -> CoreSnapshot {
        let partitions: Vec<PartitionSnapshot> = self
            .shard
            .named()
            .iter()
            .map(|(topic, index, partition)| partition.snapshot(topic, *index))
            .collect();
        let memory = self.shard.memory();
        let mut snapshot = self.counters.core_snapshot(
            self.router.core(),
            partitions,
            memory.tail_cache_bytes(),
            memory.write_buffer_bytes(),
        );
        snapshot.groups = self.groups.coordinator.snapshot();
        snapshot.requests_in_flight = self.requests_in_flight.get();
        snapshot
    }

    /// Runs `work` on `core`: directly if it is this one, else as a job
    /// there (CoreStopping if that core no longer answers).
    pub async fn on_core<R, F, Fut>(
        self: &Rc<Self>,
        core: usize,
        hop: Hop,
        work: F,
    ) -> Result<R, BrokerError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Core>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if core == self.router.core() {
            return Ok(work(self.clone()).await);
        }
        self.counters.hop(core, hop);
        self.router
            .call(core, work)
            .await
            .ok_or(BrokerError::CoreStopping(core))
    }

    /// Produce to a partition on its owning core.
    pub async fn produce(
        self: &Rc<Self>,
        topic: String,
        partition: i32,
        batch: ProducedBatch,
        acks: Acks,
        timeout: Duration,
    ) -> Result<Produced, ProduceError> {
        let owner = self.router.owner(&topic, partition);
        let answer = self
            .on_core(owner, Hop::Produce, move |core| async move {
                core.produce_here(&topic, partition, batch, acks, timeout)
                    .await
            })
            .await;
        answer.unwrap_or(Err(ProduceError::NotLeader))
    }

    /// Produce to several partitions of one owning core in one hop (a
    /// request naming many partitions pays one cross-core call per core,
    /// not one per partition); their appends and waits overlap there. The
    /// answers are in `batches` order.
    pub async fn produce_on(
        self: &Rc<Self>,
        owner: usize,
        batches: Vec<(String, i32, ProducedBatch)>,
        acks: Acks,
        timeout: Duration,
    ) -> Vec<Result<Produced, ProduceError>> {
        let count = batches.len();
        let answer = self
            .on_core(owner, Hop::Produce, move |core| async move {
                let tasks: Vec<_> = batches
                    .into_iter()
                    .map(|(topic, partition, batch)| {
                        let core = core.clone();
                        glommio::spawn_local(async move {
                            core.produce_here(&topic, partition, batch, acks, timeout)
                                .await
                        })
                    })
                    .collect();
                let mut answers = Vec::with_capacity(tasks.len());
                for task in tasks {
                    answers.push(task.await);
                }
                answers
            })
            .await;
        answer.unwrap_or_else(|_| (0..count).map(|_| Err(ProduceError::NotLeader)).collect())
    }

    /// Produce to a partition of this core.
    async fn produce_here(
        &self,
        topic: &str,
        partition: i32,
        batch: ProducedBatch,
        acks: Acks,
        timeout: Duration,
    ) -> Result<Produced, ProduceError> {
        if let Some(offline) = self.shard.offline_error(topic, partition) {
            return Err(offline.into());
        }
        match (
            self.leads(topic, partition),
            self.shard.partition(topic, partition),
        ) {
            (Some(false), _) => Err(ProduceError::NotLeader),
            (Some(true), Some(partition)) => partition.produce(batch, acks, timeout).await,
            _ => Err(ProduceError::UnknownPartition),
        }
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
            .on_core(owner, Hop::ListOffsets, move |core| async move {
                if let Some(offline) = core.shard.offline_error(&topic, partition) {
                    return Err(offline.into());
                }
                match (
                    core.leads(&topic, partition),
                    core.shard.partition(&topic, partition),
                ) {
                    (Some(false), _) => Err(ReadError::NotLeader),
                    (Some(true), Some(partition)) => {
                        // The partition's own role, as Fetch and Produce
                        // check it (not yet taken before registration).
                        partition.check_leader_epoch(-1)?;
                        Ok(partition.offset_for(query).await?)
                    }
                    _ => Err(ReadError::UnknownPartition),
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
            .on_core(owner, Hop::Admin, move |core| async move {
                if let Some(offline) = core.shard.offline_error(&topic, partition) {
                    return Err(offline.into());
                }
                match (
                    core.leads(&topic, partition),
                    core.shard.partition(&topic, partition),
                ) {
                    (Some(false), _) => Err(DeleteRecordsError::NotLeader),
                    (Some(true), Some(partition)) => partition.delete_records_before(offset).await,
                    _ => Err(DeleteRecordsError::UnknownPartition),
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
            .on_core(owner, Hop::Admin, move |core| async move {
                if let Some(offline) = core.shard.offline_error(&topic, partition) {
                    return Err(offline.into());
                }
                match core.shard.partition(&topic, partition) {
                    Some(partition) => Ok(partition.producers()),
                    None => Err(ReadError::UnknownPartition),
                }
            })
            .await;
        answer.unwrap_or(Err(ReadError::NotLeader))
    }

    /// This broker's replicas it cannot serve, every core's, as (topic id,
    /// partition) for the controller's heartbeat; none (and no hop) while
    /// every log directory is online.
    pub async fn offline_replicas(self: &Rc<Self>) -> Vec<(controller::TopicId, i32)> {
        let dirs = &self.cluster.log_dirs;
        if dirs.online() == dirs.all().len() {
            return Vec::new();
        }
        let mut names = Vec::new();
        for core in 0..self.router.cores() {
            match self
                .on_core(core, Hop::Admin, |core| async move {
                    core.shard.offline_names()
                })
                .await
            {
                Ok(offline) => names.extend(offline),
                Err(error) => tracing::warn!(core, %error, "offline replicas"),
            }
        }
        let image = self.image();
        names
            .into_iter()
            .filter_map(|(topic, index)| image.topic(&topic).map(|t| (t.id, index)))
            .collect()
    }

    /// (topic, partition, bytes on disk, index of its log directory) of
    /// every partition of every core (DescribeLogDirs), sorted; a core that
    /// does not answer is left out.
    pub async fn partition_sizes(self: &Rc<Self>) -> Vec<(String, i32, u64, usize)> {
        let mut all = Vec::new();
        for core in 0..self.router.cores() {
            let sizes = self
                .on_core(core, Hop::Admin, |core| async move {
                    let mut sizes = Vec::new();
                    for topic in core.image().topics.values() {
                        let topic = Topic::from_image(topic);
                        for index in 0..topic.partitions {
                            if let Some(partition) = core.shard.partition(&topic.name, index) {
                                let log = partition.log();
                                let dir = core.cluster.log_dirs.index_of(log.log_dir());
                                sizes.push((
                                    topic.name.clone(),
                                    index,
                                    log.size_bytes(),
                                    dir.unwrap_or(0),
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

    /// Reads this core's partitions in order from a shared budget: for
    /// consumers up to the high watermark, for a follower (`replica`) up to
    /// the log end, after its position has moved the high watermark (or
    /// with its divergence and no records). Each partition's current leader
    /// epoch is checked first (KIP-320). Kafka returns at least one batch
    /// to make progress, even past max_bytes, but only for the first
    /// partition with data (`total_before` == 0). Returns the reads and the
    /// bytes they hold.
    pub async fn read_here(
        self: &Rc<Self>,
        wanted: &[ReadWanted],
        mut budget: usize,
        total_before: usize,
        replica: Option<i32>,
        watch: Option<&Rc<Event>>,
    ) -> (Vec<Result<PartitionRead<Chunk>, ReadError>>, usize) {
        let mut total = 0usize;
        let mut answers = Vec::with_capacity(wanted.len());
        for want in wanted {
            // Kafka answers an offline replica's error before its role's.
            if let Some(offline) = self.shard.offline_error(&want.topic, want.partition) {
                answers.push(Err(offline.into()));
                continue;
            }
            let Some(partition) = self.shard.partition(&want.topic, want.partition) else {
                answers.push(Err(ReadError::UnknownPartition));
                continue;
            };
            if let Err(error) = partition.check_leader_epoch(want.current_leader_epoch) {
                answers.push(Err(error));
                continue;
            }
            let bound = match replica {
                None => ReadBound::HighWatermark,
                Some(id) => {
                    let eligible = |broker| self.isr_eligible(broker);
                    match partition.on_replica_fetch(
                        id,
                        want.offset,
                        want.last_fetched_epoch,
                        eligible,
                    ) {
                        Ok((Some(diverging), _)) => {
                            answers.push(Ok(PartitionRead {
                                high_watermark: partition.high_watermark(),
                                log_start_offset: partition.log_start_offset(),
                                records: Vec::new(),
                                diverging: Some(diverging),
                            }));
                            continue;
                        }
                        Ok((None, change)) => {
                            if let Some(change) = change {
                                self.alter_isr(&want.topic, want.partition, change);
                            }
                            ReadBound::LogEnd
                        }
                        Err(error) => {
                            answers.push(Err(error));
                            continue;
                        }
                    }
                }
            };
            // After the replica's position moved the high watermark (its
            // own change must not wake it) and before the read (a change
            // during the read must).
            if let Some(watch) = watch {
                partition.changes().watch(watch);
            }
            if budget == 0 && total_before + total > 0 {
                // Nothing left to give: offsets only (a read always gives
                // at least one batch, so do not read).
                answers.push(Ok(PartitionRead {
                    high_watermark: partition.high_watermark(),
                    log_start_offset: partition.log_start_offset(),
                    records: Vec::new(),
                    diverging: None,
                }));
                continue;
            }
            let limit = want.max_bytes.min(budget.max(1));
            let read = partition.read(want.offset, limit, bound).await;
            if let Ok(read) = &read {
                let bytes: usize = read.records.iter().map(|c| c.len()).sum();
                partition.traffic().read(bytes, replica.is_some());
                total += bytes;
                budget = budget.saturating_sub(bytes);
            }
            answers.push(read.map_err(ReadError::from));
        }
        (answers, total)
    }

    /// Asks the controller for a leader's ISR change (AlterPartition), in
    /// the background; the partition takes the committed ISR from the
    /// answer (or the metadata log, whichever is first) and may ask again
    /// after a refusal.
    pub fn alter_isr(self: &Rc<Self>, topic: &str, index: i32, change: IsrChange) {
        let (core, topic) = (self.clone(), topic.to_string());
        let before = self
            .shard
            .partition(&topic, index)
            .and_then(|p| p.isr_len());
        glommio::spawn_local(async move {
            let Some(topic_id) = core.image().topic(&topic).map(|t| t.id) else {
                return;
            };
            let request = Request::AlterPartition {
                broker_id: core.config.node_id,
                broker_epoch: core.cluster.broker_epoch(),
                topic_id,
                partition: index,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
                isr: change.isr.clone(),
            };
            let answer = core
                .cluster
                .controller
                .call(request, ALTER_PARTITION_TIMEOUT)
                .await;
            let Some(partition) = core.shard.partition(&topic, index) else {
                return;
            };
            match answer {
                Ok((_, Response::PartitionAltered(Ok(state)))) => {
                    tracing::info!(%topic, partition = index, isr = ?state.isr,
                        partition_epoch = state.partition_epoch, "ISR changed");
                    if let Some(before) = before {
                        core.counters.isr_changed(before, state.isr.len());
                    }
                    partition.isr_changed(state.partition_epoch, state.isr);
                }
                Ok((_, Response::PartitionAltered(Err(
                    refusal @ (PartitionError::IneligibleReplica(_) | PartitionError::InvalidRequest(_)),
                )))) => {
                    // Refused at this leadership's own epochs: this ask did
                    // not commit.
                    tracing::info!(%topic, partition = index, ?change, ?refusal, "ISR change refused");
                    partition.isr_change_refused(&change);
                }
                Ok((_, other)) => {
                    // Fenced epochs, or an answer that does not say: it may
                    // have committed; the metadata log settles it.
                    tracing::info!(%topic, partition = index, ?change, answer = ?other, "ISR change not confirmed");
                    partition.isr_change_failed();
                }
                Err(error) => {
                    tracing::warn!(%topic, partition = index, ?change, %error, "ISR change");
                    partition.isr_change_failed();
                }
            }
        })
        .detach();
    }

    /// Whether `broker` may join an ISR: registered and unfenced in this
    /// core's image.
    fn isr_eligible(&self, broker: i32) -> bool {
        self.image
            .borrow()
            .brokers
            .get(&broker)
            .is_some_and(|b| !b.fenced)
    }

    /// Kafka's ISR expiry (`replica.lag.time.max.ms`, checked every half
    /// of it): leaders on this core drop followers that stopped catching
    /// up. Expansion is asked for as follower fetches arrive. Runs until
    /// the executor stops.
    pub async fn expire_isr_forever(self: Rc<Self>) {
        let lag = self.config.cluster.replica_lag_time_max;
        loop {
            glommio::timer::sleep(lag / 2).await;
            for (topic, index, partition) in self.shard.named() {
                if let Some(change) = partition.propose_isr_change(lag, |b| self.isr_eligible(b)) {
                    self.alter_isr(&topic, index, change);
                }
            }
        }
    }

    /// OffsetForLeaderEpoch on a partition's owning core: where the
    /// leader's log for `epoch` ends, after the current-epoch check.
    pub async fn end_offset_for_epoch(
        self: &Rc<Self>,
        topic: String,
        partition: i32,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<EpochEnd, ReadError> {
        let owner = self.router.owner(&topic, partition);
        let answer = self
            .on_core(owner, Hop::Admin, move |core| async move {
                if let Some(offline) = core.shard.offline_error(&topic, partition) {
                    return Err(offline.into());
                }
                let partition = core
                    .shard
                    .partition(&topic, partition)
                    .ok_or(ReadError::UnknownPartition)?;
                partition.check_leader_epoch(current_leader_epoch)?;
                Ok(partition.end_offset_for_epoch(epoch))
            })
            .await;
        answer.unwrap_or(Err(ReadError::NotLeader))
    }

    /// `read_here` on another core: the read partitions' change count
    /// from before the reads (for `wait_for_changes`) and reads that can
    /// cross cores.
    pub async fn read_on(
        self: &Rc<Self>,
        core: usize,
        wanted: Vec<ReadWanted>,
        budget: usize,
        total_before: usize,
        replica: Option<i32>,
    ) -> Result<(u64, Vec<SentRead>), BrokerError> {
        self.on_core(core, Hop::Fetch, move |core| async move {
            let changes = core
                .shard
                .changes_of(wanted.iter().map(|w| (w.topic.as_str(), w.partition)));
            // Nothing waits here: `wait_for_changes` watches again.
            let (reads, _) = core
                .read_here(&wanted, budget, total_before, replica, None)
                .await;
            let sent = reads
                .into_iter()
                .map(|read| read.map(PartitionRead::into_sendable))
                .collect();
            (changes, sent)
        })
        .await
    }

    /// Resolves once the partitions on `core` have changed beyond
    /// `after` (appends, or their high watermarks moving), or after
    /// `timeout` (a fetch long-poll on another core's partitions).
    pub async fn wait_for_changes(
        self: &Rc<Self>,
        core: usize,
        partitions: Vec<(String, i32)>,
        after: u64,
        timeout: Duration,
    ) {
        let _ = self
            .on_core(core, Hop::FetchWait, move |core| async move {
                let deadline = Instant::now() + timeout;
                loop {
                    let changed = Rc::new(Event::default());
                    let woken = changed.listen();
                    let mut now = 0;
                    for (topic, index) in &partitions {
                        if let Some(partition) = core.shard.partition(topic, *index) {
                            partition.changes().watch(&changed);
                            now += partition.changes().count();
                        }
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    // A deleted partition lowers the sum: that is a change too.
                    if now != after || left.is_zero() {
                        return;
                    }
                    futures_lite::future::or(woken, glommio::timer::sleep(left)).await;
                }
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
                    .on_core(core, Hop::Group, |core| async move {
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
        self.on_core(core, Hop::Group, move |core| async move {
            core.groups.execute(call).await
        })
        .await
        .unwrap_or(GroupAnswer::Unavailable)
    }

    /// A request to the active controller, answered once committed and
    /// applied by every core of this broker (so this broker's next answer
    /// already shows it).
    pub async fn metadata_write(
        &self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, ControllerError> {
        let started = std::time::Instant::now();
        let (index, response) = self.cluster.controller.call(request, timeout).await?;
        let left = timeout.saturating_sub(started.elapsed());
        if !self.cluster.wait_applied(index, left).await {
            return Err(ControllerError::Timeout(format!(
                "committed at {index} but not yet applied on this broker"
            )));
        }
        Ok(response)
    }

    /// Creates one topic through the controller (auto-creation, the
    /// offsets topic): replicas placed by the controller.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<Topic, TopicError> {
        let request = Request::CreateTopics {
            topics: vec![NewTopic {
                name: name.to_string(),
                partitions,
                replication_factor,
                assignments: Vec::new(),
                configs,
            }],
            validate_only: false,
        };
        let response = self
            .metadata_write(request, METADATA_WRITE_TIMEOUT)
            .await
            .map_err(TopicError::Controller)?;
        if let Response::Topics(outcomes) = response {
            if let Some(Err(error)) = outcomes.into_iter().next().map(|o| o.result) {
                return Err(TopicError::Refused(name.to_string(), error));
            }
        }
        self.topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))
    }

    /// A write whose answer is one result per item; the first item's.
    async fn write_one(&self, name: &str, request: Request) -> Result<(), TopicError> {
        let response = self
            .metadata_write(request, METADATA_WRITE_TIMEOUT)
            .await
            .map_err(TopicError::Controller)?;
        match response {
            Response::Items(items) => match items.into_iter().next() {
                Some((_, Err(error))) => Err(TopicError::Refused(name.to_string(), error)),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    pub async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        if name == OFFSETS_TOPIC {
            return Err(TopicError::Internal(name.to_string()));
        }
        if self.topic(name).is_none() {
            return Err(TopicError::Unknown(name.to_string()));
        }
        let request = Request::DeleteTopics {
            names: vec![name.to_string()],
        };
        self.write_one(name, request).await
    }

    /// Grows a topic to `count` partitions (the caller checked it grows).
    pub async fn add_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Vec<Vec<i32>>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let request = Request::CreatePartitions {
            topics: vec![(name.to_string(), count, assignments)],
            validate_only,
        };
        self.write_one(name, request).await
    }

    /// Sets (Some) or removes (None) a topic's config overrides.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<(), TopicError> {
        let request = Request::AlterConfigs {
            changes: changes
                .into_iter()
                .map(|(key, value)| {
                    (
                        controller::ConfigResource::Topic(name.to_string()),
                        key,
                        value,
                    )
                })
                .collect(),
            validate_only: false,
        };
        self.write_one(name, request).await
    }

    /// A producer id from this broker's block, asking the controller for
    /// a new block when it is used up (no two brokers share an id).
    pub async fn allocate_producer_id(&self) -> Result<i64, ControllerError> {
        loop {
            if let Some(id) = self.cluster.take_producer_id() {
                return Ok(id);
            }
            let request = Request::AllocateProducerIds {
                broker_id: self.config.node_id,
                broker_epoch: self.cluster.broker_epoch(),
            };
            let (_, response) = self
                .cluster
                .controller
                .call(request, METADATA_WRITE_TIMEOUT)
                .await?;
            if let Response::ProducerIds { first, count } = response {
                self.cluster.add_producer_ids(first, count);
            }
        }
    }

    /// Creates `__consumer_offsets` on first use, as Kafka does: compacted,
    /// `offsets.topic.num.partitions` partitions, replication factor
    /// `offsets.topic.replication.factor` capped by the unfenced brokers.
    pub async fn ensure_offsets_topic(&self) {
        let group = &self.config.group;
        let live = self.image().unfenced_brokers().count() as i32;
        let replication = self
            .config
            .cluster
            .offsets_replication_factor
            .min(live)
            .max(1);
        // Offsets never expire by time (the coordinator expires them per group;
        // the log cleaner keeps the last record per key), and every write is
        // durable before it is acknowledged.
        let configs = [
            ("cleanup.policy", "compact".to_string()),
            (
                "segment.bytes",
                group.offsets_topic_segment_bytes.to_string(),
            ),
            ("retention.ms", "-1".to_string()),
            ("flush.messages", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        match self
            .create_topic(
                OFFSETS_TOPIC,
                group.offsets_topic_partitions,
                replication,
                configs,
            )
            .await
        {
            Ok(_) => tracing::info!(
                partitions = group.offsets_topic_partitions,
                replication,
                "created {OFFSETS_TOPIC}"
            ),
            Err(error) => tracing::debug!(%error, "create {OFFSETS_TOPIC}"),
        }
    }
}

/// Gives this core's partitions of `topic` the roles the image assigns
/// them (leader, follower, none), where the partition state changed since
/// `before` (every partition when there is no `before`). Returns the
/// partitions whose leadership here began (true) or ended (false).
async fn apply_assignments(
    shard: &Shard,
    me: i32,
    topic: &TopicImage,
    before: Option<&TopicImage>,
) -> Vec<(i32, bool)> {
    let mut moved = Vec::new();
    for (index, state) in topic.partitions.iter().enumerate() {
        let index = index as i32;
        let Some(partition) = shard.partition(&topic.name, index) else {
            continue;
        };
        let unchanged = before
            .and_then(|b| b.partition(index))
            .is_some_and(|old| old == state);
        if unchanged && partition.role() != Role::None {
            continue;
        }
        let led = partition.role() == Role::Leader;
        if let Err(error) = partition.apply_assignment(me, state).await {
            tracing::error!(topic = %topic.name, partition = index, %error, "take partition role");
        }
        let leads = partition.role() == Role::Leader;
        if led != leads {
            moved.push((index, leads));
        }
    }
    moved
}
