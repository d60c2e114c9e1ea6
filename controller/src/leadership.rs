//! Who leads each partition and which replicas are in its ISR: the rules of
//! Kafka's ReplicationControlManager and PartitionChangeBuilder (4.1, with
//! eligible leader replicas off). Pure, like `decide`: each function reads
//! the image and gives the PartitionChange records. The controller is the
//! only writer of leader and ISR; a partition leader asks it to change the
//! ISR (AlterPartition) and is fenced by the epochs it names.
//!
//! The invariants kept: the leader is -1 or in the ISR; the ISR is a
//! non-empty subset of the replicas; a new leader comes from the ISR unless
//! unclean election is enabled for the topic or asked for (ElectLeaders),
//! and then it is the whole ISR, or it is a target replica joining the ISR
//! in the change that completes a reassignment (`reassignment`): every
//! change checks for that completion, as Kafka's PartitionChangeBuilder.

use crate::decide::{Election, ElectionError, ElectionOutcome, PartitionError, PartitionState};
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::records::{MetadataRecord, TopicId};
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's topic (and broker) config enabling unclean leader election.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// `unclean.leader.election.enable` for the topic: its own config, else the
/// cluster-wide dynamic default, else false (Kafka's default).
pub fn unclean_election_enabled(image: &MetadataImage, topic: &TopicImage) -> bool {
    let value = topic
        .configs
        .get(UNCLEAN_LEADER_ELECTION_ENABLE)
        .or_else(|| {
            image
                .broker_configs
                .get(&-1)
                .and_then(|configs| configs.get(UNCLEAN_LEADER_ELECTION_ENABLE))
        });
    // Kafka parses booleans case-insensitively; the broker validated it.
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

pub(crate) fn unfenced(image: &MetadataImage, broker: i32) -> bool {
    image.brokers.get(&broker).is_some_and(|b| !b.fenced)
}

/// Whether `broker` may lead (or join the ISR of) partition `index` of
/// `topic`: unfenced, and its replica not in a failed log directory.
pub(crate) fn can_serve(image: &MetadataImage, topic: TopicId, index: i32, broker: i32) -> bool {
    image
        .brokers
        .get(&broker)
        .is_some_and(|b| !b.fenced && !b.offline_replicas.contains(&(topic, index)))
}

/// PartitionChangeBuilder's election for a partition whose ISR becomes
/// `isr`: the current leader stays while it is acceptable and in the ISR;
/// else the first replica, in replica order, in the ISR and acceptable;
/// else, when unclean election is allowed, the first acceptable replica,
/// which is then the whole ISR (the others may hold records it lacks);
/// else no leader (-1) and the ISR as given.
pub(crate) fn elect(
    partition: &PartitionImage,
    isr: Vec<i32>,
    acceptable: impl Fn(i32) -> bool,
    unclean: bool,
) -> (i32, Vec<i32>) {
    let leader = partition.leader;
    if leader != -1 && isr.contains(&leader) && acceptable(leader) {
        return (leader, isr);
    }
    let replicas = partition.replicas.iter().copied();
    if let Some(clean) = replicas.clone().find(|r| isr.contains(r) && acceptable(*r)) {
        return (clean, isr);
    }
    if unclean {
        if let Some(any) = replicas.clone().find(|r| acceptable(*r)) {
            return (any, vec![any]);
        }
    }
    (-1, isr)
}

/// What a partition is to become (Kafka's PartitionChangeBuilder
/// targets): the record of a decision is the difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Target {
    /// `partition` as it is, with `leader` and `isr`.
    pub fn with(partition: &PartitionImage, leader: i32, isr: Vec<i32>) -> Target {
        Target {
            replicas: partition.replicas.clone(),
            isr,
            leader,
            adding: partition.adding_replicas.clone(),
            removing: partition.removing_replicas.clone(),
        }
    }

    /// Completes the reassignment in progress when the ISR allows
    /// (Kafka's PartitionReassignmentReplicas.maybeCompleteReassignment,
    /// run on every change as PartitionChangeBuilder.build does): every
    /// target replica is in the ISR, and some ISR member stays. The
    /// replicas and ISR lose the replicas being removed; a leader that
    /// leaves, or none, gives way to the first target replica in the ISR
    /// and `acceptable` (or none: -1). Whether it completed.
    pub fn complete_reassignment(&mut self, acceptable: impl Fn(i32) -> bool) -> bool {
        if self.adding.is_empty() && self.removing.is_empty() {
            return false;
        }
        let staying = |list: &[i32]| -> Vec<i32> {
            list.iter()
                .copied()
                .filter(|r| !self.removing.contains(r))
                .collect()
        };
        let (isr, replicas) = (staying(&self.isr), staying(&self.replicas));
        if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
            return false;
        }
        if self.leader == -1 || !isr.contains(&self.leader) || !acceptable(self.leader) {
            self.leader = replicas
                .iter()
                .copied()
                .find(|&r| isr.contains(&r) && acceptable(r))
                .unwrap_or(-1);
        }
        self.replicas = replicas;
        self.isr = isr;
        self.adding.clear();
        self.removing.clear();
        true
    }

    /// The record taking `partition` here, or none when nothing changes
    /// (Kafka bumps no epoch for a no-op).
    pub fn record(
        self,
        topic_id: TopicId,
        index: i32,
        partition: &PartitionImage,
    ) -> Option<MetadataRecord> {
        let differs = |new: Vec<i32>, old: &Vec<i32>| (new != *old).then_some(new);
        let leader = (self.leader != partition.leader).then_some(self.leader);
        let isr = differs(self.isr, &partition.isr);
        let replicas = differs(self.replicas, &partition.replicas);
        let adding_replicas = differs(self.adding, &partition.adding_replicas);
        let removing_replicas = differs(self.removing, &partition.removing_replicas);
        let unchanged = leader.is_none()
            && isr.is_none()
            && replicas.is_none()
            && adding_replicas.is_none()
            && removing_replicas.is_none();
        (!unchanged).then_some(MetadataRecord::PartitionChange {
            topic_id,
            partition: index,
            leader,
            isr,
            replicas,
            adding_replicas,
            removing_replicas,
        })
    }
}

/// The record taking `partition` to `leader` and `isr`, completing a
/// reassignment the new ISR allows (leaders by `acceptable`), or none when
/// nothing changes.
fn change(
    topic_id: TopicId,
    index: usize,
    partition: &PartitionImage,
    leader: i32,
    isr: Vec<i32>,
    acceptable: impl Fn(i32) -> bool,
) -> Option<MetadataRecord> {
    let mut target = Target::with(partition, leader, isr);
    target.complete_reassignment(acceptable);
    target.record(topic_id, index as i32, partition)
}

/// The records of `decide` for every partition of every topic, in topic
/// and partition order.
fn each_partition(
    image: &MetadataImage,
    mut decide: impl FnMut(&TopicImage, usize, &PartitionImage) -> Option<MetadataRecord>,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for (index, partition) in topic.partitions.iter().enumerate() {
            records.extend(decide(topic, index, partition));
        }
    }
    records
}

/// `broker` is being fenced (session expired, or registered again by a new
/// process, which may have lost what it had not synced): Kafka's
/// handleBrokerFenced. It leaves every ISR it is in, except as the last
/// member (so it can lead again when nothing better returns); partitions
/// it led get the first replica in the ISR and unfenced, or, with unclean
/// election enabled, the first unfenced replica, or go offline (-1).
pub(crate) fn elect_without(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    elect_without_where(image, broker, |_, _| true)
}

/// `broker` cannot serve its replicas of `offline` (their log directory
/// failed): Kafka's handleDirectoriesOffline, `elect_without` for those
/// partitions only.
pub(crate) fn elect_without_offline(
    image: &MetadataImage,
    broker: i32,
    offline: &BTreeSet<(TopicId, i32)>,
) -> Vec<MetadataRecord> {
    if offline.is_empty() {
        return Vec::new();
    }
    elect_without_where(image, broker, |topic, index| {
        offline.contains(&(topic, index as i32))
    })
}

fn elect_without_where(
    image: &MetadataImage,
    broker: i32,
    only: impl Fn(TopicId, usize) -> bool,
) -> Vec<MetadataRecord> {
    each_partition(image, |topic, index, partition| {
        if !partition.isr.contains(&broker) && partition.leader != broker {
            return None;
        }
        if !only(topic.id, index) {
            return None;
        }
        let mut isr: Vec<i32> = partition
            .isr
            .iter()
            .copied()
            .filter(|&r| r != broker)
            .collect();
        if isr.is_empty() {
            isr = partition.isr.clone();
        }
        let acceptable = |r: i32| r != broker && can_serve(image, topic.id, index as i32, r);
        let unclean = unclean_election_enabled(image, topic);
        let (leader, isr) = elect(partition, isr, acceptable, unclean);
        change(topic.id, index, partition, leader, isr, acceptable)
    })
}

/// `broker` is being unfenced: offline partitions get a leader again
/// (Kafka's handleBrokerUnfenced), from their ISR, or with unclean
/// election enabled from any unfenced replica; never `broker` for a
/// replica it reports `offline`. The ISR does not grow here: the leader
/// adds replicas once they caught up (AlterPartition).
pub(crate) fn elect_returning(
    image: &MetadataImage,
    broker: i32,
    offline: &BTreeSet<(TopicId, i32)>,
) -> Vec<MetadataRecord> {
    each_partition(image, |topic, index, partition| {
        if partition.leader != -1 {
            return None;
        }
        let here_offline = offline.contains(&(topic.id, index as i32));
        let acceptable = |r: i32| {
            if r == broker {
                !here_offline
            } else {
                can_serve(image, topic.id, index as i32, r)
            }
        };
        let unclean = unclean_election_enabled(image, topic);
        let (leader, isr) = elect(partition, partition.isr.clone(), acceptable, unclean);
        change(topic.id, index, partition, leader, isr, acceptable)
    })
}

/// A new partition's leader and ISR: every registered, unfenced replica is
/// in the ISR (it has nothing to catch up on), the first of them leads.
/// With none unfenced: no leader, and the first replica alone in the ISR
/// (the ISR is never empty), to lead once it is unfenced.
pub(crate) fn initial_leadership(image: &MetadataImage, replicas: &[i32]) -> (i32, Vec<i32>) {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|&r| unfenced(image, r))
        .collect();
    match isr.first() {
        Some(&leader) => (leader, isr),
        None => (-1, replicas.first().copied().into_iter().collect()),
    }
}

/// What an AlterPartition request for a known partition asks, checked in
/// Kafka's order (the broker epoch was checked by the caller).
pub(crate) struct AlterPartition<'a> {
    pub broker_id: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: &'a [i32],
}

/// The records and the answer for an AlterPartition (Kafka's
/// ReplicationControlManager.alterPartition): only the current leader, at
/// the current leader epoch and partition epoch, changes the ISR; an ISR
/// equal to the current one (as a set) changes nothing.
pub(crate) fn alter_partition(
    image: &MetadataImage,
    topic_id: TopicId,
    partition: i32,
    ask: &AlterPartition<'_>,
) -> (Vec<MetadataRecord>, Result<PartitionState, PartitionError>) {
    let found = image
        .topic_by_id(topic_id)
        .and_then(|topic| topic.partition(partition));
    let Some(current) = found else {
        return (Vec::new(), Err(PartitionError::UnknownTopicOrPartition));
    };
    if let Err(error) = check_alter(image, topic_id, partition, current, ask) {
        return (Vec::new(), Err(error));
    }
    let state = PartitionState {
        leader: current.leader,
        leader_epoch: current.leader_epoch,
        partition_epoch: current.partition_epoch,
        isr: current.isr.clone(),
    };
    let same: BTreeSet<i32> = current.isr.iter().copied().collect();
    if ask.isr.len() == same.len() && ask.isr.iter().all(|r| same.contains(r)) {
        return (Vec::new(), Ok(state));
    }
    // The new ISR may complete a reassignment; if that moves leadership
    // away from the asking leader, it is told so (Kafka's
    // NEW_LEADER_ELECTED) while the change still commits.
    let mut target = Target::with(current, current.leader, ask.isr.to_vec());
    target.complete_reassignment(|r| can_serve(image, topic_id, partition, r));
    let moved = target.leader != current.leader;
    let Some(record) = target.record(topic_id, partition, current) else {
        return (Vec::new(), Ok(state));
    };
    if moved {
        return (vec![record], Err(PartitionError::NewLeaderElected));
    }
    let mut after = current.clone();
    after.apply_change(&record);
    let state = PartitionState {
        leader: after.leader,
        leader_epoch: after.leader_epoch,
        partition_epoch: after.partition_epoch,
        isr: after.isr,
    };
    (vec![record], Ok(state))
}

fn check_alter(
    image: &MetadataImage,
    topic_id: TopicId,
    partition: i32,
    current: &PartitionImage,
    ask: &AlterPartition<'_>,
) -> Result<(), PartitionError> {
    if ask.broker_id != current.leader {
        return Err(PartitionError::NotLeader);
    }
    if ask.leader_epoch != current.leader_epoch {
        return Err(PartitionError::FencedLeaderEpoch);
    }
    if ask.partition_epoch != current.partition_epoch {
        return Err(PartitionError::InvalidUpdateVersion);
    }
    let invalid = |why: String| Err(PartitionError::InvalidRequest(why));
    if ask.isr.is_empty() {
        return invalid("the ISR is empty".into());
    }
    let mut seen = BTreeSet::new();
    for &replica in ask.isr {
        if !seen.insert(replica) {
            return invalid(format!("replica {replica} is in the ISR twice"));
        }
        if !current.replicas.contains(&replica) {
            return invalid(format!("broker {replica} is not a replica"));
        }
    }
    if !seen.contains(&current.leader) {
        return invalid(format!("the ISR must hold the leader {}", current.leader));
    }
    // A replica joining must be alive and in a working log directory; one
    // already in the ISR stays eligible (fencing takes it out itself).
    let joining = ask.isr.iter().copied().filter(|r| !current.isr.contains(r));
    if let Some(ineligible) = joining
        .clone()
        .find(|&r| !can_serve(image, topic_id, partition, r))
    {
        return Err(PartitionError::IneligibleReplica(ineligible));
    }
    Ok(())
}

/// The records and the answers for an ElectLeaders request (Kafka's
/// ReplicationControlManager.electLeaders), one answer per partition named,
/// or per partition of every topic when none are.
pub(crate) fn elect_leaders(
    image: &MetadataImage,
    election: Election,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<MetadataRecord>, Vec<ElectionOutcome>) {
    let named: Vec<(String, i32)> = match partitions {
        Some(named) => named.to_vec(),
        None => image
            .topics
            .values()
            .flat_map(|t| (0..t.partitions.len() as i32).map(|p| (t.name.clone(), p)))
            .collect(),
    };
    let mut records = Vec::new();
    // A partition named twice is elected once and answered alike.
    let mut decided: BTreeMap<(String, i32), Result<i32, ElectionError>> = BTreeMap::new();
    let mut answers = Vec::with_capacity(named.len());
    for (topic, partition) in named {
        let key = (topic, partition);
        let result = match decided.get(&key) {
            Some(result) => result.clone(),
            None => {
                let (record, result) = elect_one(image, election, &key.0, partition);
                records.extend(record);
                decided.insert(key.clone(), result.clone());
                result
            }
        };
        answers.push((key.0, partition, result));
    }
    (records, answers)
}

fn elect_one(
    image: &MetadataImage,
    election: Election,
    name: &str,
    index: i32,
) -> (Option<MetadataRecord>, Result<i32, ElectionError>) {
    let found = image
        .topic(name)
        .and_then(|topic| Some((topic, topic.partition(index)?)));
    let Some((topic, partition)) = found else {
        return (None, Err(ElectionError::UnknownTopicOrPartition));
    };
    let elected = match election {
        Election::Preferred => {
            let Some(&preferred) = partition.replicas.first() else {
                return (None, Err(ElectionError::PreferredLeaderNotAvailable));
            };
            if partition.leader == preferred {
                return (None, Err(ElectionError::ElectionNotNeeded));
            }
            if !can_serve(image, topic.id, index, preferred) || !partition.isr.contains(&preferred)
            {
                return (None, Err(ElectionError::PreferredLeaderNotAvailable));
            }
            (preferred, partition.isr.clone())
        }
        Election::Unclean => {
            if partition.leader != -1 {
                return (None, Err(ElectionError::ElectionNotNeeded));
            }
            let acceptable = |r: i32| can_serve(image, topic.id, index, r);
            let (leader, isr) = elect(partition, partition.isr.clone(), acceptable, true);
            if leader == -1 {
                return (None, Err(ElectionError::EligibleLeadersNotAvailable));
            }
            (leader, isr)
        }
    };
    let (leader, isr) = elected;
    let acceptable = |r: i32| can_serve(image, topic.id, index, r);
    let record = change(topic.id, index as usize, partition, leader, isr, acceptable);
    (record, Ok(leader))
}

/// Kafka's automatic preferred-leader balancing (`auto.leader.rebalance
/// .enable`): for each broker, of the partitions whose preferred (first)
/// replica it is, the share it does not lead; when that share is over
/// `imbalance_percentage` (`leader.imbalance.per.broker.percentage`), each
/// of those partitions whose preferred replica is unfenced and in the ISR
/// is led by it again.
pub fn rebalance_leaders(image: &MetadataImage, imbalance_percentage: u32) -> Vec<MetadataRecord> {
    #[derive(Default)]
    struct Preferred {
        partitions: u64,
        not_led: u64,
        movable: Vec<MetadataRecord>,
    }
    let mut by_broker: BTreeMap<i32, Preferred> = BTreeMap::new();
    for topic in image.topics.values() {
        for (index, partition) in topic.partitions.iter().enumerate() {
            let Some(&preferred) = partition.replicas.first() else {
                continue;
            };
            let entry = by_broker.entry(preferred).or_default();
            entry.partitions += 1;
            if partition.leader == preferred {
                continue;
            }
            entry.not_led += 1;
            if can_serve(image, topic.id, index as i32, preferred)
                && partition.isr.contains(&preferred)
            {
                entry.movable.push(MetadataRecord::leader_isr_change(
                    topic.id,
                    index as i32,
                    Some(preferred),
                    None,
                ));
            }
        }
    }
    by_broker
        .into_values()
        .filter(|p| p.not_led * 100 > u64::from(imbalance_percentage) * p.partitions)
        .flat_map(|p| p.movable)
        .collect()
}
