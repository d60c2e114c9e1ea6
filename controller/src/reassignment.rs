//! Moving a partition's replicas (KIP-455, as KRaft's
//! ReplicationControlManager does it). Pure, like `leadership`.
//!
//! A reassignment starts with one PartitionChange: the replicas become the
//! target followed by the original replicas not in it (`removing`, sorted
//! as Kafka's), and `adding` holds the target's replicas not in the
//! original; leader and ISR stay. The new replicas fetch as followers and
//! the leader adds them to the ISR (AlterPartition); the change that puts
//! every target replica in the ISR also completes the reassignment
//! (`leadership::Target::complete_reassignment`, checked on every change
//! as Kafka's PartitionChangeBuilder does): the replicas become the
//! target, the ISR loses the replicas removed, and a leader among them
//! gives way to the first target replica in the ISR and unfenced. A
//! target that adds nothing may complete at once.
//!
//! Cancelling reverts to the original replicas, the ISR without the
//! replicas being added; if that leaves the ISR empty, the first original
//! replica is the ISR, an unclean election refused unless the topic
//! enables it (Kafka's PartitionReassignmentRevert). A new target while
//! one is in progress replaces it, computed against the original replicas
//! (cancel and start in one change; the ISR keeps the replicas that were
//! being added and stay in the new target). Kafka computes it against the
//! merged list instead, which keeps replicas of the first target that the
//! second drops until the second completes, and makes cancel revert to
//! that merged list.

use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::leadership::{can_serve, elect, unclean_election_enabled, Target};
use crate::records::MetadataRecord;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a reassignment (or its cancellation) was refused for one partition
/// (Kafka's codes of the same names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReassignmentError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("no partition reassignment is in progress")]
    NoReassignmentInProgress,
}

/// One AlterReassignments answer: (topic, partition, the outcome).
pub type ReassignmentOutcome = (String, i32, Result<(), ReassignmentError>);

/// A reassignment in progress: (topic, partition, replicas, adding,
/// removing), as ListPartitionReassignments answers it.
pub type OngoingReassignment = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// The records and answers of an AlterReassignments request, one answer
/// per item in request order. Items are decided in order, each on the
/// state the earlier ones left (a partition named twice gets two records,
/// which apply in order).
pub(crate) fn alter_reassignments(
    image: &MetadataImage,
    reassignments: &[(String, i32, Option<Vec<i32>>)],
) -> (Vec<MetadataRecord>, Vec<ReassignmentOutcome>) {
    let mut records = Vec::new();
    let mut answers = Vec::with_capacity(reassignments.len());
    // Partitions changed by earlier items of this request.
    let mut changed: BTreeMap<(String, i32), PartitionImage> = BTreeMap::new();
    for (name, index, target) in reassignments {
        let found = image
            .topic(name)
            .and_then(|topic| Some((topic, topic.partition(*index)?)));
        let result = match found {
            None => Err(ReassignmentError::UnknownTopicOrPartition),
            Some((topic, partition)) => {
                let key = (name.clone(), *index);
                let current = changed.get(&key).unwrap_or(partition).clone();
                reassign(image, topic, *index, &current, target.as_deref()).map(|goal| {
                    if let Some(record) = goal.record(topic.id, *index, &current) {
                        let mut after = current;
                        after.apply_change(&record);
                        records.push(record);
                        changed.insert(key, after);
                    }
                })
            }
        };
        answers.push((name.clone(), *index, result));
    }
    (records, answers)
}

/// What `partition` becomes for `target` (`None`: cancel).
fn reassign(
    image: &MetadataImage,
    topic: &TopicImage,
    index: i32,
    partition: &PartitionImage,
    target: Option<&[i32]>,
) -> Result<Target, ReassignmentError> {
    let original = partition.original_replicas();
    let goal = match target {
        None if !partition.reassigning() => {
            return Err(ReassignmentError::NoReassignmentInProgress);
        }
        None => original.clone(),
        Some(target) => {
            check_target(image, target)?;
            if !partition.reassigning() && target == partition.replicas {
                let (leader, isr) = (partition.leader, partition.isr.clone());
                return Ok(Target::with(partition, leader, isr));
            }
            target.to_vec()
        }
    };
    let sorted_difference = |a: &[i32], b: &[i32]| -> Vec<i32> {
        let set: BTreeSet<i32> = a.iter().copied().filter(|r| !b.contains(r)).collect();
        set.into_iter().collect()
    };
    let adding = sorted_difference(&goal, &original);
    let removing = sorted_difference(&original, &goal);
    let replicas: Vec<i32> = goal.iter().chain(&removing).copied().collect();
    // The replicas dropped now (being added before, not any more) leave
    // the ISR; if nobody is left, the first original replica, which may
    // lack records the ISR had: an unclean election.
    let mut isr: Vec<i32> = partition
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    let enabled = unclean_election_enabled(image, topic);
    let unclean = isr.is_empty();
    if unclean {
        if !enabled {
            return Err(ReassignmentError::InvalidReplicaAssignment(
                "reverting the reassignment would require an unclean leader election".into(),
            ));
        }
        let Some(&first) = original.first() else {
            return Err(ReassignmentError::InvalidReplicaAssignment(
                "the reassignment adds every replica".into(),
            ));
        };
        isr = vec![first];
    }
    let reordered = PartitionImage {
        replicas: replicas.clone(),
        ..partition.clone()
    };
    let acceptable = |r: i32| can_serve(image, topic.id, index, r);
    // Kafka's cancel elects uncleanly where the topic allows; a start does
    // not (its leader stays: the replicas only grow).
    let (leader, isr) = elect(
        &reordered,
        isr,
        acceptable,
        enabled && (target.is_none() || unclean),
    );
    let mut goal = Target {
        replicas,
        isr,
        leader,
        adding,
        removing,
    };
    goal.complete_reassignment(acceptable);
    Ok(goal)
}

/// Kafka's validateManualPartitionAssignment: non-empty, no broker twice,
/// every broker registered (fenced ones too).
fn check_target(image: &MetadataImage, target: &[i32]) -> Result<(), ReassignmentError> {
    let invalid = |why: String| Err(ReassignmentError::InvalidReplicaAssignment(why));
    if target.is_empty() {
        return invalid("the target replica list is empty".into());
    }
    let mut seen = BTreeSet::new();
    for &broker in target {
        if !seen.insert(broker) {
            return invalid(format!("broker {broker} is in the target twice"));
        }
        if !image.brokers.contains_key(&broker) {
            return invalid(format!("broker {broker} is not registered"));
        }
    }
    Ok(())
}

/// The reassignments in progress among `partitions` (each once, in request
/// order; unknown ones left out), or among every partition.
pub(crate) fn list_reassignments(
    image: &MetadataImage,
    partitions: Option<&[(String, i32)]>,
) -> Vec<OngoingReassignment> {
    let ongoing = |name: &str, index: i32, p: &PartitionImage| -> OngoingReassignment {
        (
            name.to_string(),
            index,
            p.replicas.clone(),
            p.adding_replicas.clone(),
            p.removing_replicas.clone(),
        )
    };
    match partitions {
        None => image
            .topics
            .values()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.reassigning())
                    .map(|(index, p)| ongoing(&topic.name, index as i32, p))
            })
            .collect(),
        Some(named) => {
            let mut seen = BTreeSet::new();
            named
                .iter()
                .filter(|key| seen.insert((*key).clone()))
                .filter_map(|(name, index)| {
                    let partition = image.topic(name)?.partition(*index)?;
                    partition
                        .reassigning()
                        .then(|| ongoing(name, *index, partition))
                })
                .collect()
        }
    }
}
