//! Consumer groups: the coordinator of each group lives on the core that
//! owns the group's `__consumer_offsets` partition (Kafka's
//! `abs(hashCode) % offsets.topic.num.partitions`). Group APIs on any
//! connection become a `GroupCall`, run on that core, and come back as a
//! `GroupAnswer`; the api/ files shape the answer for the request version.

pub mod coordinator;
pub mod store;

use crate::error::BrokerError;
use crate::errors::storage_error_code;
use crate::metadata::cluster::Cluster;
use crate::partition::{Partition, ProduceError};
use crate::router::owner_of;
use crate::shard::Shard;
use bytes::Bytes;
use coordinator::{now_ms, Answer, Coordinator, JoinArgs, Joined, State, SyncAnswer};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use store::{CommittedOffset, Entry, OFFSETS_TOPIC};

/// How often each core checks session and rebalance timeouts.
const TICK_MS: u64 = 100;
/// How long a group record waits for the offsets partition's in-sync
/// replicas (Kafka's `offsets.commit.timeout.ms`).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// One partition's commit: (partition, offset, leader epoch, metadata).
pub type CommitPartition = (i32, i64, i32, Option<String>);

pub enum GroupCall {
    Join(JoinArgs),
    Sync {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        assignments: Vec<(String, Bytes)>,
    },
    Heartbeat {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
    },
    Leave {
        group: String,
        identities: Vec<(String, Option<String>)>,
    },
    Commit {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        topics: Vec<(String, Vec<CommitPartition>)>,
    },
    Fetch {
        group: String,
        /// None: every committed partition.
        topics: Option<Vec<(String, Vec<i32>)>>,
    },
    Describe {
        group: String,
    },
    List,
    Delete {
        group: String,
    },
    OffsetDelete {
        group: String,
        topics: Vec<(String, Vec<i32>)>,
    },
}

impl GroupCall {
    /// The group the call is for; None for ListGroups (every core).
    pub fn group(&self) -> Option<&str> {
        match self {
            GroupCall::Join(args) => Some(&args.group),
            GroupCall::Sync { group, .. }
            | GroupCall::Heartbeat { group, .. }
            | GroupCall::Leave { group, .. }
            | GroupCall::Commit { group, .. }
            | GroupCall::Fetch { group, .. }
            | GroupCall::Describe { group }
            | GroupCall::Delete { group }
            | GroupCall::OffsetDelete { group, .. } => Some(group),
            GroupCall::List => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberView>,
}

/// Per topic: (partition, error code).
pub type PartitionErrors = Vec<(String, Vec<(i32, i16)>)>;
/// Per topic: (partition, committed offset if any).
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

pub enum GroupAnswer {
    Join(Joined),
    Sync(SyncAnswer),
    Heartbeat(i16),
    Leave(Vec<i16>),
    Commit(PartitionErrors),
    Fetch(FetchedOffsets),
    /// None: no such group.
    Describe(Option<GroupView>),
    /// (group id, protocol type, state)
    List(Vec<(String, String, &'static str)>),
    Delete(i16),
    OffsetDelete(Result<PartitionErrors, i16>),
    /// The owning core did not answer (stopping), or the group's
    /// `__consumer_offsets` partition has no leader (or does not exist yet).
    Unavailable,
    /// This broker leads the group's offsets partition but has not
    /// finished replaying it.
    LoadInProgress,
    /// Another broker leads the group's offsets partition.
    NotCoordinator,
}

impl GroupAnswer {
    /// The error for an answer that is not the call's own kind:
    /// COORDINATOR_LOAD_IN_PROGRESS while the group is loading (clients
    /// retry), NOT_COORDINATOR when another broker coordinates it (clients
    /// look the coordinator up again), otherwise COORDINATOR_NOT_AVAILABLE.
    pub fn error(&self) -> ResponseError {
        match self {
            GroupAnswer::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
            GroupAnswer::NotCoordinator => ResponseError::NotCoordinator,
            _ => ResponseError::CoordinatorNotAvailable,
        }
    }
}

/// Whether this broker may serve a group's calls now: Kafka's
/// `isCoordinatorForGroup` and `isGroupLoading`. `leader` is the leader of
/// the group's `__consumer_offsets` partition in the newest metadata
/// (None: no such partition yet); `loaded`: this core leads that partition
/// and has replayed all of it since it became its leader.
///
/// Serving anything else would be wrong in a way clients cannot see: a
/// group not (yet) in memory answers OffsetFetch "no commit", so its
/// consumers reset to `auto.offset.reset`, and a commit applied before
/// the replay reaches older records is overwritten by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Coordinator,
    Loading,
    NotCoordinator,
    NoLeader,
}

pub fn standing(leader: Option<i32>, me: i32, loaded: bool) -> Standing {
    match leader {
        None | Some(-1) => Standing::NoLeader,
        Some(leader) if leader != me => Standing::NotCoordinator,
        Some(_) if loaded => Standing::Coordinator,
        Some(_) => Standing::Loading,
    }
}

/// The core that coordinates `group`: the owner of its `__consumer_offsets`
/// partition.
pub fn coordinator_core(group: &str, offsets_partitions: i32, cores: usize) -> usize {
    let partition = store::partition_for(group, offsets_partitions);
    owner_of(OFFSETS_TOPIC, partition, cores)
}

/// The groups one core coordinates: the state machine, and what it needs
/// of the core (its `__consumer_offsets` partitions, the topic registry).
pub struct Groups {
    pub coordinator: Coordinator,
    shard: Rc<Shard>,
    cluster: Arc<Cluster>,
    core: usize,
    /// The `__consumer_offsets` partitions whose replay finished since this
    /// core last became their leader. Roles are applied and partitions
    /// replayed one after another, so a partition can be led here for a
    /// while before its turn comes: until it is in this set, its groups are
    /// partial or absent (the crash soak met it: an offset committed at
    /// 80,790 fetched as 5,800 right after a restart).
    loaded: std::cell::RefCell<std::collections::BTreeSet<i32>>,
}

impl Groups {
    pub fn new(
        coordinator: Coordinator,
        shard: Rc<Shard>,
        cluster: Arc<Cluster>,
        core: usize,
    ) -> Groups {
        Groups {
            coordinator,
            shard,
            cluster,
            core,
            loaded: Default::default(),
        }
    }

    fn offsets_partitions(&self) -> i32 {
        self.coordinator.config.offsets_topic_partitions
    }

    /// The `__consumer_offsets` partition of this core, if this broker
    /// leads it (only a leader coordinates its groups and writes to it).
    fn offsets_partition(&self, index: i32) -> Option<Rc<Partition>> {
        self.shard
            .partition(OFFSETS_TOPIC, index)
            .filter(|p| p.role() == crate::partition::Role::Leader)
    }

    /// Forgets the groups of an offsets partition this broker no longer
    /// leads (Kafka's `onResignation`); its next leader loads them from
    /// the replicated log.
    pub fn unload_partition(&self, index: i32) {
        self.loaded.borrow_mut().remove(&index);
        let partitions = self.offsets_partitions();
        let mut groups = self.coordinator.groups.borrow_mut();
        let before = groups.len();
        groups.retain(|id, _| store::partition_for(id, partitions) != index);
        let unloaded = before - groups.len();
        if unloaded > 0 {
            tracing::info!(
                core = self.core,
                partition = index,
                groups = unloaded,
                "unloaded consumer groups"
            );
        }
    }

    /// The `__consumer_offsets` partition that holds `group`.
    fn partition_of(&self, group: &str) -> i32 {
        store::partition_for(group, self.offsets_partitions())
    }

    /// Whether this core serves `group`'s calls now.
    fn standing(&self, group: &str) -> Standing {
        let index = self.partition_of(group);
        let leader = self
            .cluster
            .image()
            .topic(OFFSETS_TOPIC)
            .and_then(|topic| topic.partition(index))
            .map(|partition| partition.leader);
        let loaded = self.is_loaded(group) && self.offsets_partition(index).is_some();
        standing(leader, self.cluster.node_id, loaded)
    }

    /// Groups whose offsets partition is replayed here: only these may be
    /// changed by the timers (a session or retention decision on a
    /// half-replayed group would be written after, and so win over, the
    /// newer records still to be replayed).
    fn is_loaded(&self, group: &str) -> bool {
        self.loaded.borrow().contains(&self.partition_of(group))
    }

    /// Runs a group call on this core, which coordinates the group.
    pub async fn execute(&self, call: GroupCall) -> GroupAnswer {
        if let Some(group) = call.group() {
            match self.standing(group) {
                Standing::Coordinator => {}
                Standing::Loading => return GroupAnswer::LoadInProgress,
                Standing::NotCoordinator => return GroupAnswer::NotCoordinator,
                Standing::NoLeader => return GroupAnswer::Unavailable,
            }
        }
        let groups = &self.coordinator;
        match call {
            GroupCall::Join(args) => {
                let group = args.group.clone();
                let joined = match groups.join(args) {
                    Answer::Now(joined) => joined,
                    Answer::Wait(receiver) => {
                        receiver.recv_async().await.unwrap_or_else(|_| Joined {
                            error: ResponseError::RebalanceInProgress.code(),
                            generation: -1,
                            protocol_type: None,
                            protocol: None,
                            leader: String::new(),
                            member_id: String::new(),
                            members: Vec::new(),
                        })
                    }
                };
                if joined.error == 0 && joined.leader == joined.member_id {
                    self.persist_group(&group).await;
                }
                GroupAnswer::Join(joined)
            }
            GroupCall::Sync {
                group,
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol_name,
                assignments,
            } => {
                let answer = groups.sync(
                    &group,
                    &member_id,
                    instance_id.as_deref(),
                    generation,
                    (protocol_type.as_deref(), protocol_name.as_deref()),
                    assignments,
                );
                GroupAnswer::Sync(match answer {
                    Answer::Now(answer) => answer,
                    Answer::Wait(receiver) => receiver
                        .recv_async()
                        .await
                        .unwrap_or(Err(ResponseError::RebalanceInProgress)),
                })
            }
            GroupCall::Heartbeat {
                group,
                member_id,
                instance_id,
                generation,
            } => GroupAnswer::Heartbeat(groups.heartbeat(
                &group,
                &member_id,
                instance_id.as_deref(),
                generation,
            )),
            GroupCall::Leave { group, identities } => {
                let errors = groups.leave(&group, &identities);
                self.persist_group(&group).await;
                GroupAnswer::Leave(errors)
            }
            GroupCall::Commit {
                group,
                member_id,
                instance_id,
                generation,
                topics,
            } => GroupAnswer::Commit(
                self.commit(
                    &group,
                    &member_id,
                    instance_id.as_deref(),
                    generation,
                    topics,
                )
                .await,
            ),
            GroupCall::Fetch { group, topics } => GroupAnswer::Fetch(self.fetch(&group, topics)),
            GroupCall::Describe { group } => GroupAnswer::Describe(self.describe(&group)),
            GroupCall::List => GroupAnswer::List(
                groups
                    .groups
                    .borrow()
                    .values()
                    .map(|g| {
                        (
                            g.id.clone(),
                            g.protocol_type.clone().unwrap_or_default(),
                            g.state.name(),
                        )
                    })
                    .collect(),
            ),
            GroupCall::Delete { group } => GroupAnswer::Delete(self.delete(&group).await),
            GroupCall::OffsetDelete { group, topics } => {
                GroupAnswer::OffsetDelete(self.offset_delete(&group, topics).await)
            }
        }
    }

    /// Appends entries to the group's `__consumer_offsets` partition, runs
    /// `apply` (the in-memory change they record) right after the in-memory
    /// append, and waits until they are durable (Kafka writes the offsets topic
    /// with acks=all). Append + apply happen under the core's write-order turn,
    /// so memory applies changes in the order the log holds them: the last
    /// record of a key in the log (what the cleaner keeps, and what a reload
    /// reads) is the value memory shows.
    async fn append(
        &self,
        group: &str,
        entries: &[Entry],
        apply: impl FnOnce(),
    ) -> Result<(), i16> {
        if entries.is_empty() {
            apply();
            return Ok(());
        }
        let index = self.partition_of(group);
        let Some(partition) = self.offsets_partition(index) else {
            return Err(ResponseError::CoordinatorNotAvailable.code());
        };
        let batch = own_batch(entries)?;
        let info = {
            let Ok(_turn) = self.coordinator.write_order.acquire_permit(1).await else {
                return Err(ResponseError::CoordinatorNotAvailable.code());
            };
            let info = partition
                .append_own(batch)
                .await
                .map_err(|e| storage_error_code(&e))?;
            apply();
            info
        };
        // Kafka commits group records with acks=all, and maps what that
        // can answer to the coordinator's codes.
        partition
            .wait_committed(&info, COMMIT_TIMEOUT)
            .await
            .map_err(|error| match error {
                ProduceError::NotLeader | ProduceError::Storage(_) => {
                    ResponseError::NotCoordinator.code()
                }
                _ => ResponseError::CoordinatorNotAvailable.code(),
            })
    }

    async fn persist_group(&self, group: &str) {
        let record = self
            .coordinator
            .groups
            .borrow()
            .get(group)
            .map(|g| g.record(now_ms()));
        if let Some(record) = record {
            if let Err(code) = self.append(group, &[record], || {}).await {
                tracing::warn!(group, code, "group metadata not persisted");
            }
        }
    }

    async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        topics: Vec<(String, Vec<CommitPartition>)>,
    ) -> PartitionErrors {
        let all = |code: i16| -> PartitionErrors {
            topics
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.0, code)).collect()))
                .collect()
        };
        if let Err(error) = self.check_commit(group_id, member_id, instance_id, generation) {
            return all(error.code());
        }
        let stamp = now_ms();
        let metadata_max = self.coordinator.config.offset_metadata_max_bytes;
        let mut entries = Vec::new();
        let mut results = Vec::new();
        for (topic, partitions) in &topics {
            let known = self.cluster.topic(topic).map_or(0, |t| t.partitions);
            let mut errors = Vec::new();
            for (partition, offset, leader_epoch, metadata) in partitions {
                let metadata = metadata.clone().unwrap_or_default();
                let code = if !(0..known).contains(partition) {
                    ResponseError::UnknownTopicOrPartition.code()
                } else if metadata.len() > metadata_max {
                    ResponseError::OffsetMetadataTooLarge.code()
                } else {
                    entries.push(Entry::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: Some(CommittedOffset {
                            offset: *offset,
                            leader_epoch: *leader_epoch,
                            metadata,
                            commit_timestamp_ms: stamp,
                        }),
                    });
                    0
                };
                errors.push((*partition, code));
            }
            results.push((topic.clone(), errors));
        }
        let committed = entries.clone();
        let apply = || {
            let mut groups = self.coordinator.groups.borrow_mut();
            let group = groups
                .entry(group_id.to_string())
                .or_insert_with(|| coordinator::Group::new(group_id, stamp));
            for entry in committed {
                if let Entry::Offset {
                    topic,
                    partition,
                    value: Some(committed),
                    ..
                } = entry
                {
                    group.offsets.insert((topic, partition), committed);
                }
            }
            if group.state == State::Empty {
                group.empty_since_ms = stamp;
            }
        };
        if let Err(code) = self.append(group_id, &entries, apply).await {
            return all(code);
        }
        results
    }

    /// Kafka's rules: generation -1 with no member id commits only to an empty
    /// (or new) group; otherwise the member and generation must be current.
    fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let groups = self.coordinator.groups.borrow();
        let Some(group) = groups.get(group_id) else {
            return if generation < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration)
            };
        };
        if generation < 0 && group.state == State::Empty {
            return Ok(());
        }
        if group.state == State::CompletingRebalance && group.members.contains_key(member_id) {
            return Err(ResponseError::RebalanceInProgress);
        }
        // A commit from an unknown member id is UNKNOWN_MEMBER_ID even when its
        // instance id belongs to another member (check_member would say
        // FENCED_INSTANCE_ID there, as SyncGroup and Heartbeat do).
        if !group.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        coordinator::check_member(group, member_id, instance_id, generation)
    }

    fn fetch(&self, group_id: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> FetchedOffsets {
        let groups = self.coordinator.groups.borrow();
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| {
                            let committed =
                                offsets.and_then(|o| o.get(&(topic.clone(), p))).cloned();
                            (p, committed)
                        })
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                for ((topic, partition), committed) in offsets.into_iter().flatten() {
                    by_topic
                        .entry(topic.clone())
                        .or_default()
                        .push((*partition, Some(committed.clone())));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    fn describe(&self, group_id: &str) -> Option<GroupView> {
        let groups = self.coordinator.groups.borrow();
        let group = groups.get(group_id)?;
        let protocol = group.protocol.clone();
        Some(GroupView {
            state: group.state.name(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone().unwrap_or_default(),
            members: group
                .members
                .values()
                .map(|m| MemberView {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(protocol.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    async fn delete(&self, group_id: &str) -> i16 {
        let entries = {
            let groups = self.coordinator.groups.borrow();
            match groups.get(group_id) {
                None => return ResponseError::GroupIdNotFound.code(),
                Some(group) if group.state != State::Empty => {
                    return ResponseError::NonEmptyGroup.code()
                }
                Some(group) => coordinator::tombstones(group),
            }
        };
        let apply = || {
            let mut groups = self.coordinator.groups.borrow_mut();
            if groups
                .get(group_id)
                .is_some_and(|g| g.state == State::Empty)
            {
                groups.remove(group_id);
            }
        };
        if let Err(code) = self.append(group_id, &entries, apply).await {
            return code;
        }
        0
    }

    async fn offset_delete(
        &self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<PartitionErrors, i16> {
        let (entries, results) = {
            let groups = self.coordinator.groups.borrow();
            let Some(group) = groups.get(group_id) else {
                return Err(ResponseError::GroupIdNotFound.code());
            };
            let subscribed = subscribed_topics(group);
            let mut entries = Vec::new();
            let mut results = Vec::new();
            for (topic, partitions) in topics {
                let refused = group.state != State::Empty && subscribed.contains(&topic);
                let mut errors = Vec::new();
                for partition in partitions {
                    if refused {
                        errors.push((partition, ResponseError::GroupSubscribedToTopic.code()));
                        continue;
                    }
                    if group.offsets.contains_key(&(topic.clone(), partition)) {
                        entries.push(Entry::Offset {
                            group: group_id.to_string(),
                            topic: topic.clone(),
                            partition,
                            value: None,
                        });
                    }
                    errors.push((partition, 0));
                }
                results.push((topic, errors));
            }
            (entries, results)
        };
        let apply = || {
            let mut groups = self.coordinator.groups.borrow_mut();
            if let Some(group) = groups.get_mut(group_id) {
                for entry in &entries {
                    if let Entry::Offset {
                        topic, partition, ..
                    } = entry
                    {
                        group.offsets.remove(&(topic.clone(), *partition));
                    }
                }
            }
        };
        self.append(group_id, &entries, apply).await?;
        Ok(results)
    }

    /// A topic was deleted: writes offset tombstones for every committed
    /// offset of its partitions in the groups this core coordinates and
    /// drops them from memory (Kafka's `GroupCoordinator.onPartitionsDeleted`),
    /// so describing a group no longer shows partitions that do not exist.
    /// A group left without offsets or members stays listed. Returns the
    /// offsets removed.
    pub async fn topic_deleted(&self, topic: &str) -> usize {
        let doomed: Vec<(String, Vec<Entry>)> = {
            let groups = self.coordinator.groups.borrow();
            groups
                .values()
                .filter_map(|group| {
                    let entries: Vec<Entry> = group
                        .offsets
                        .keys()
                        .filter(|(t, _)| t == topic)
                        .map(|(t, partition)| Entry::Offset {
                            group: group.id.clone(),
                            topic: t.clone(),
                            partition: *partition,
                            value: None,
                        })
                        .collect();
                    (!entries.is_empty()).then(|| (group.id.clone(), entries))
                })
                .collect()
        };
        let mut removed = 0;
        for (group_id, entries) in doomed {
            let apply = || {
                let mut groups = self.coordinator.groups.borrow_mut();
                if let Some(group) = groups.get_mut(&group_id) {
                    group.offsets.retain(|(t, _), _| t != topic);
                }
            };
            match self.append(&group_id, &entries, apply).await {
                Ok(()) => removed += entries.len(),
                Err(code) => {
                    tracing::warn!(group = %group_id, topic, code, "offsets of a deleted topic not removed")
                }
            }
        }
        removed
    }

    /// Reloads this core's groups from its `__consumer_offsets` partitions.
    pub async fn load(&self) -> Result<(), BrokerError> {
        let all: Vec<i32> = (0..self.offsets_partitions()).collect();
        self.load_partitions(&all).await
    }

    /// Loads the groups of these `__consumer_offsets` partitions (those this
    /// core has open): at start-up, and when the metadata log opens them.
    pub async fn load_partitions(&self, partitions: &[i32]) -> Result<(), BrokerError> {
        let mut loaded = 0usize;
        for &index in partitions {
            let Some(partition) = self.offsets_partition(index) else {
                continue;
            };
            // A partition led again after a resignation replays anew.
            self.loaded.borrow_mut().remove(&index);
            let log = partition.log();
            let mut offset = log.log_start_offset();
            while offset < log.log_end_offset() {
                let read = log.read(offset, 1024 * 1024).await.map_err(|source| {
                    BrokerError::ReadPartition {
                        dir: log.dir().to_path_buf(),
                        source,
                    }
                })?;
                if read.is_empty() {
                    break;
                }
                let mut next = offset;
                for batch in read.batches() {
                    if let Ok(header) = storage::batch::BatchHeader::parse(batch) {
                        next = next.max(header.last_offset() + 1);
                    }
                    for entry in store::decode_batches(Bytes::copy_from_slice(batch)) {
                        self.coordinator.load(entry);
                        loaded += 1;
                    }
                }
                if next <= offset {
                    break;
                }
                offset = next;
            }
            // No await between the end of the replay and here: nothing is
            // appended to the partition unseen by it.
            self.loaded.borrow_mut().insert(index);
        }
        if loaded > 0 {
            tracing::info!(
                core = self.core,
                records = loaded,
                groups = self.coordinator.groups.borrow().len(),
                "loaded consumer groups"
            );
        }
        Ok(())
    }

    /// Session/rebalance timers and offset expiry for this core's groups.
    /// (`__consumer_offsets` is compacted by the log cleaner, as every
    /// `cleanup.policy=compact` topic is.)
    pub async fn run_timers(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(Duration::from_millis(TICK_MS)).await;
            let (changed, expired) = self.coordinator.tick(|group| self.is_loaded(group));
            for entry in changed.into_iter().chain(expired) {
                let group = match &entry {
                    Entry::Offset { group, .. } | Entry::Group { group, .. } => group.clone(),
                };
                if let Err(code) = self
                    .append(&group, std::slice::from_ref(&entry), || {})
                    .await
                {
                    tracing::warn!(%group, code, "group record not persisted");
                }
            }
        }
    }
}

/// A `__consumer_offsets` batch of the coordinator's own records.
fn own_batch(entries: &[Entry]) -> Result<storage::ProducedBatch, i16> {
    let encoded = store::encode_batch(entries, now_ms()).map_err(|error| {
        tracing::error!(%error, "encode __consumer_offsets batch");
        ResponseError::UnknownServerError.code()
    })?;
    storage::ProducedBatch::new(encoded).map_err(|error| {
        tracing::error!(%error, "own __consumer_offsets batch is invalid");
        ResponseError::UnknownServerError.code()
    })
}

/// Topics the group's consumers subscribe to (consumer protocol only).
fn subscribed_topics(group: &coordinator::Group) -> Vec<String> {
    if group.protocol_type.as_deref() != Some("consumer") {
        return Vec::new();
    }
    let mut topics = Vec::new();
    for member in group.members.values() {
        let mut metadata = member.metadata_for(group.protocol.as_deref());
        if metadata.len() < 2 {
            continue;
        }
        let version = i16::from_be_bytes([metadata[0], metadata[1]]);
        let _ = bytes::Buf::get_i16(&mut metadata);
        if let Ok(subscription) =
            ConsumerProtocolSubscription::decode(&mut metadata, version.clamp(0, 3))
        {
            topics.extend(subscription.topics.iter().map(|t| t.to_string()));
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::{standing, Standing};

    #[test]
    fn only_the_leader_that_has_replayed_the_partition_coordinates() {
        let me = 2;
        assert_eq!(standing(Some(2), me, true), Standing::Coordinator);
        // Elected (in the newest metadata, or locally) but not replayed:
        // a restart, or a failover, before this partition's turn.
        assert_eq!(standing(Some(2), me, false), Standing::Loading);
        // Another broker leads: even with the groups still in memory (the
        // resignation not applied here yet), they are not this broker's.
        assert_eq!(standing(Some(1), me, true), Standing::NotCoordinator);
        assert_eq!(standing(Some(1), me, false), Standing::NotCoordinator);
        assert_eq!(standing(Some(-1), me, true), Standing::NoLeader);
        assert_eq!(standing(None, me, false), Standing::NoLeader);
    }
}
