//! Partition reassignment through `decide` (KIP-455, Kafka's
//! ReplicationControlManager semantics): starting with and without new
//! replicas, completion when the ISR holds the target, leadership moving
//! off a removed leader, cancelling, replacing, refused targets, listing,
//! and entries from before reassignment decoding.

use crate::leadership::{unclean_config, Cluster};
use controller::decide::{PartitionError, Request, Response};
use controller::records::{self, MetadataRecord};
use controller::{MetadataImage, OngoingReassignment, ReassignmentError};

impl Cluster {
    fn reassign(
        &mut self,
        items: &[(&str, i32, Option<&[i32]>)],
    ) -> Vec<Result<(), ReassignmentError>> {
        let reassignments = items
            .iter()
            .map(|(t, p, target)| (t.to_string(), *p, target.map(<[i32]>::to_vec)))
            .collect();
        match self.ask(Request::AlterReassignments { reassignments }) {
            Ok(Response::Reassigned(results)) => {
                assert_eq!(results.len(), items.len());
                for ((t, p, _), (topic, partition, _)) in items.iter().zip(&results) {
                    assert_eq!((*t, *p), (topic.as_str(), *partition));
                }
                results.into_iter().map(|(_, _, r)| r).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    fn reassign_one(
        &mut self,
        topic: &str,
        partition: i32,
        target: &[i32],
    ) -> Result<(), ReassignmentError> {
        self.reassign(&[(topic, partition, Some(target))]).remove(0)
    }

    fn cancel(&mut self, topic: &str, partition: i32) -> Result<(), ReassignmentError> {
        self.reassign(&[(topic, partition, None)]).remove(0)
    }

    fn list(&mut self, partitions: Option<Vec<(&str, i32)>>) -> Vec<OngoingReassignment> {
        let partitions =
            partitions.map(|ps| ps.into_iter().map(|(t, p)| (t.to_string(), p)).collect());
        let request = Request::ListReassignments { partitions };
        assert!(!request.writes());
        assert!(self.records_of(request.clone()).is_empty());
        match self.ask(request) {
            Ok(Response::Reassignments(ongoing)) => ongoing,
            other => panic!("{other:?}"),
        }
    }

    /// (replicas, adding, removing, leader, ISR)
    fn assignment(
        &self,
        topic: &str,
        partition: i32,
    ) -> (Vec<i32>, Vec<i32>, Vec<i32>, i32, Vec<i32>) {
        let p = self.partition(topic, partition);
        (
            p.replicas.clone(),
            p.adding_replicas.clone(),
            p.removing_replicas.clone(),
            p.leader,
            p.isr.clone(),
        )
    }

    fn epochs(&self, topic: &str, partition: i32) -> (i32, i32) {
        let p = self.partition(topic, partition);
        (p.leader_epoch, p.partition_epoch)
    }
}

#[test]
fn a_start_merges_target_and_original_and_keeps_leader_and_isr() {
    let mut cluster = Cluster::new(&[1, 2, 3, 4, 5]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    let request = Request::AlterReassignments {
        reassignments: vec![("t".into(), 0, Some(vec![5, 4, 2]))],
    };
    assert_eq!(cluster.records_of(request.clone()).len(), 1);
    assert_eq!(
        cluster.ask(request),
        Ok(Response::Reassigned(vec![("t".into(), 0, Ok(()))]))
    );
    // Target first, then the replicas leaving (sorted, as Kafka's).
    assert_eq!(
        cluster.assignment("t", 0),
        (
            vec![5, 4, 2, 1, 3],
            vec![4, 5],
            vec![1, 3],
            1,
            vec![1, 2, 3]
        )
    );
    // Only replicas joined: no leader epoch bump.
    assert_eq!(cluster.epochs("t", 0), (0, 1));
    assert_eq!(
        cluster.list(None),
        vec![("t".into(), 0, vec![5, 4, 2, 1, 3], vec![4, 5], vec![1, 3])]
    );
}

#[test]
fn the_isr_expansion_holding_the_target_completes_and_moves_a_removed_leader() {
    let mut cluster = Cluster::new(&[1, 2, 3, 4]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    cluster.reassign_one("t", 0, &[2, 3, 4]).expect("started");
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![2, 3, 4, 1], vec![4], vec![1], 1, vec![1, 2, 3])
    );
    // Broker 4 caught up: the leader's expansion completes the move, which
    // elects the first target replica in the ISR; the old leader is told.
    let request = cluster.alter_request(1, "t", 0, &[1, 2, 3, 4]);
    assert_eq!(cluster.records_of(request.clone()).len(), 1);
    assert_eq!(
        cluster.ask(request),
        Ok(Response::PartitionAltered(Err(
            PartitionError::NewLeaderElected
        )))
    );
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![2, 3, 4], vec![], vec![], 2, vec![2, 3, 4])
    );
    assert_eq!(cluster.epochs("t", 0), (1, 2));
    assert!(cluster.list(None).is_empty());
}

#[test]
fn completion_keeping_the_leader_answers_the_new_state_and_bumps_the_leader_epoch() {
    let mut cluster = Cluster::new(&[1, 2, 3, 4]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    cluster.reassign_one("t", 0, &[1, 2, 4]).expect("started");
    let state = cluster.alter(1, "t", 0, &[1, 2, 3, 4]).expect("expanded");
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![1, 2, 4], vec![], vec![], 1, vec![1, 2, 4])
    );
    // Broker 3 left the replicas: the leader epoch bumps (Kafka fences the
    // replicas removed), the leader stays.
    assert_eq!(
        (
            state.leader,
            state.leader_epoch,
            state.partition_epoch,
            state.isr
        ),
        (1, 1, 2, vec![1, 2, 4])
    );
    assert_eq!(cluster.epochs("t", 0), (1, 2));
}

#[test]
fn completion_waits_for_every_target_replica_in_the_isr() {
    let mut cluster = Cluster::new(&[1, 2, 3, 4]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    cluster.alter(1, "t", 0, &[1, 3]).expect("shrunk");
    cluster.reassign_one("t", 0, &[1, 2, 4]).expect("started");
    // Broker 4 is in sync, broker 2 (kept, not added) is not: Kafka waits.
    cluster.alter(1, "t", 0, &[1, 3, 4]).expect("expanded");
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![1, 2, 4, 3], vec![4], vec![3], 1, vec![1, 3, 4])
    );
    cluster.alter(1, "t", 0, &[1, 3, 4, 2]).expect("expanded");
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![1, 2, 4], vec![], vec![], 1, vec![1, 4, 2])
    );
}

#[test]
fn a_target_adding_nothing_completes_at_once_when_its_replicas_are_in_sync() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("t", vec![vec![1, 2, 3], vec![1, 2, 3], vec![1, 2, 3]]);
    // Dropping the leader: one change, the first target replica leads.
    let request = Request::AlterReassignments {
        reassignments: vec![("t".into(), 0, Some(vec![3, 2]))],
    };
    assert_eq!(cluster.records_of(request.clone()).len(), 1);
    cluster.ask(request).expect("reassigned");
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![3, 2], vec![], vec![], 3, vec![2, 3])
    );
    assert_eq!(cluster.epochs("t", 0), (1, 1));
    // Reordering only: new preferred replica, same leader and epoch.
    cluster.reassign_one("t", 1, &[3, 1, 2]).expect("reordered");
    assert_eq!(
        cluster.assignment("t", 1),
        (vec![3, 1, 2], vec![], vec![], 1, vec![1, 2, 3])
    );
    assert_eq!(cluster.epochs("t", 1), (0, 1));
    // The current replicas again, with nothing in progress: a no-op.
    let request = Request::AlterReassignments {
        reassignments: vec![("t".into(), 2, Some(vec![1, 2, 3]))],
    };
    assert!(cluster.records_of(request.clone()).is_empty());
    assert_eq!(
        cluster.ask(request),
        Ok(Response::Reassigned(vec![("t".into(), 2, Ok(()))]))
    );
    // A target replica out of the ISR keeps it waiting, even adding none.
    cluster.alter(1, "t", 2, &[1, 2]).expect("shrunk");
    cluster.reassign_one("t", 2, &[2, 3]).expect("started");
    assert_eq!(
        cluster.assignment("t", 2),
        (vec![2, 3, 1], vec![], vec![1], 1, vec![1, 2])
    );
    assert_eq!(cluster.list(Some(vec![("t", 2)])).len(), 1);
    // Fencing the leader moves leadership (replica order) but completes
    // nothing; broker 3 joining does.
    cluster.fence(1);
    assert_eq!(cluster.assignment("t", 2).3, 2);
    cluster.alter(2, "t", 2, &[2, 3]).expect("expanded");
    assert_eq!(
        cluster.assignment("t", 2),
        (vec![2, 3], vec![], vec![], 2, vec![2, 3])
    );
}

#[test]
fn cancel_reverts_to_the_original_replicas_and_isr() {
    let mut cluster = Cluster::new(&[1, 2, 3, 4]);
    cluster.topic("t", vec![vec![1, 2]]);
    assert_eq!(
        cluster.cancel("t", 0),
        Err(ReassignmentError::NoReassignmentInProgress)
    );
    cluster.reassign_one("t", 0, &[3, 4]).expect("started");
    cluster.alter(1, "t", 0, &[1, 2, 3]).expect("expanded");
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![3, 4, 1, 2], vec![3, 4], vec![1, 2], 1, vec![1, 2, 3])
    );
    // Broker 1 fenced: broker 3, first in the merged order, leads.
    cluster.fence(1);
    assert_eq!(cluster.leader_isr("t", 0), (3, vec![2, 3]));
    let before = cluster.epochs("t", 0);
    cluster.cancel("t", 0).expect("cancelled");
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![1, 2], vec![], vec![], 2, vec![2])
    );
    assert_eq!(cluster.epochs("t", 0), (before.0 + 1, before.1 + 1));
    assert_eq!(
        cluster.cancel("t", 0),
        Err(ReassignmentError::NoReassignmentInProgress)
    );
    assert!(cluster.list(None).is_empty());
}

#[test]
fn cancel_needing_an_unclean_election_is_refused_unless_the_topic_allows_it() {
    for unclean in [false, true] {
        let mut cluster = Cluster::new(&[1, 2, 3, 4]);
        let configs = if unclean {
            unclean_config()
        } else {
            Default::default()
        };
        cluster.topic_with("t", vec![vec![1, 2]], configs);
        cluster.reassign_one("t", 0, &[3, 4]).expect("started");
        cluster.alter(1, "t", 0, &[1, 2, 3]).expect("expanded");
        cluster.fence(1);
        cluster.fence(2);
        // Only broker 3, being added, is left in the ISR.
        assert_eq!(cluster.leader_isr("t", 0), (3, vec![3]));
        cluster.unfence(2);
        let result = cluster.cancel("t", 0);
        if unclean {
            result.expect("cancelled");
            // The first original replica is fenced: the first unfenced
            // original one leads, alone in the ISR.
            assert_eq!(
                cluster.assignment("t", 0),
                (vec![1, 2], vec![], vec![], 2, vec![2])
            );
        } else {
            assert!(
                matches!(result, Err(ReassignmentError::InvalidReplicaAssignment(_))),
                "{result:?}"
            );
            assert_eq!(cluster.list(None).len(), 1);
        }
    }
}

#[test]
fn a_new_target_replaces_the_one_in_progress_against_the_original_replicas() {
    let mut cluster = Cluster::new(&[1, 2, 3, 4, 5, 6]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    cluster.reassign_one("t", 0, &[4, 5, 3]).expect("started");
    cluster.alter(1, "t", 0, &[1, 2, 3, 4]).expect("expanded");
    assert_eq!(
        cluster.assignment("t", 0),
        (
            vec![4, 5, 3, 1, 2],
            vec![4, 5],
            vec![1, 2],
            1,
            vec![1, 2, 3, 4]
        )
    );
    // Broker 5 is dropped at once; broker 4, still wanted, stays in the ISR.
    cluster.reassign_one("t", 0, &[4, 3, 6]).expect("replaced");
    assert_eq!(
        cluster.assignment("t", 0),
        (
            vec![4, 3, 6, 1, 2],
            vec![4, 6],
            vec![1, 2],
            1,
            vec![1, 2, 3, 4]
        )
    );
    assert_eq!(
        cluster.alter(1, "t", 0, &[1, 2, 3, 4, 6]),
        Err(PartitionError::NewLeaderElected)
    );
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![4, 3, 6], vec![], vec![], 4, vec![3, 4, 6])
    );
    // A new move, then its original replicas as the target: a cancel.
    cluster.reassign_one("t", 0, &[1, 2]).expect("started");
    cluster.reassign_one("t", 0, &[4, 3, 6]).expect("replaced");
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![4, 3, 6], vec![], vec![], 4, vec![3, 4, 6])
    );
    assert!(cluster.list(None).is_empty());
}

#[test]
fn invalid_targets_and_unknown_partitions_are_refused_per_item() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("t", vec![vec![1, 2]]);
    cluster.fence(3);
    let invalid = |r: &Result<(), ReassignmentError>| {
        matches!(r, Err(ReassignmentError::InvalidReplicaAssignment(_)))
    };
    let results = cluster.reassign(&[
        ("t", 0, Some(&[])),
        ("t", 0, Some(&[1, 1])),
        ("t", 0, Some(&[1, 9])),
        ("t", 1, Some(&[1, 2])),
        ("nope", 0, Some(&[1, 2])),
        ("nope", 0, None),
        ("t", -1, None),
    ]);
    assert!(results[..3].iter().all(invalid), "{results:?}");
    assert!(
        results[3..]
            .iter()
            .all(|r| *r == Err(ReassignmentError::UnknownTopicOrPartition)),
        "{results:?}"
    );
    assert_eq!(cluster.partition("t", 0).partition_epoch, 0);
    // A fenced broker is a valid target (Kafka allows it); it cannot join
    // the ISR until it is unfenced.
    cluster.reassign_one("t", 0, &[1, 3]).expect("started");
    let result = cluster.alter(1, "t", 0, &[1, 2, 3]);
    assert_eq!(result, Err(PartitionError::IneligibleReplica(3)));
    cluster.unfence(3);
    cluster.alter(1, "t", 0, &[1, 2, 3]).expect("expanded");
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![1, 3], vec![], vec![], 1, vec![1, 3])
    );
}

#[test]
fn items_of_one_request_apply_in_order() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("t", vec![vec![1, 2]]);
    let request = Request::AlterReassignments {
        reassignments: vec![
            ("t".into(), 0, Some(vec![1, 3])),
            ("t".into(), 0, None),
            ("t".into(), 0, None),
        ],
    };
    assert_eq!(cluster.records_of(request.clone()).len(), 2);
    let response = cluster.ask(request);
    assert_eq!(
        response,
        Ok(Response::Reassigned(vec![
            ("t".into(), 0, Ok(())),
            ("t".into(), 0, Ok(())),
            (
                "t".into(),
                0,
                Err(ReassignmentError::NoReassignmentInProgress)
            ),
        ]))
    );
    assert_eq!(
        cluster.assignment("t", 0),
        (vec![1, 2], vec![], vec![], 1, vec![1, 2])
    );
}

#[test]
fn list_names_only_reassignments_in_progress() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("a", vec![vec![1], vec![2], vec![3]]);
    cluster.topic("b", vec![vec![1, 2]]);
    cluster.reassign_one("a", 2, &[1]).expect("started");
    cluster.reassign_one("a", 0, &[2]).expect("started");
    cluster.reassign_one("b", 0, &[2, 3]).expect("started");
    cluster.reassign_one("a", 1, &[1, 2]).expect("started");
    let all = cluster.list(None);
    let named: Vec<(&str, i32)> = all.iter().map(|o| (o.0.as_str(), o.1)).collect();
    assert_eq!(named, vec![("a", 0), ("a", 1), ("a", 2), ("b", 0)]);
    assert_eq!(all[0], ("a".into(), 0, vec![2, 1], vec![2], vec![1]));
    let some = cluster.list(Some(vec![
        ("b", 0),
        ("nope", 0),
        ("a", 9),
        ("b", 0),
        ("a", 1),
    ]));
    let named: Vec<(&str, i32)> = some.iter().map(|o| (o.0.as_str(), o.1)).collect();
    assert_eq!(named, vec![("b", 0), ("a", 1)]);
    cluster.cancel("a", 1).expect("cancelled");
    assert!(cluster.list(Some(vec![("a", 1)])).is_empty());
}

#[test]
fn entries_and_snapshots_from_before_reassignment_decode() {
    // A PartitionChange as written before: no replica fields; and one of
    // leader and ISR only is written the same way still.
    let old = br#"[{"PartitionChange":{"topic_id":7,"partition":0,"leader":2,"isr":[2]}}]"#;
    let decoded = records::decode(old).expect("decoded");
    let record = MetadataRecord::leader_isr_change(7, 0, Some(2), Some(vec![2]));
    assert_eq!(decoded, vec![record.clone()]);
    assert_eq!(records::encode(&[record]), old.to_vec());
    // A snapshot whose partitions have no adding/removing replicas.
    let mut cluster = Cluster::new(&[1, 2]);
    cluster.topic("t", vec![vec![1, 2]]);
    // (As text: ids are u128, beyond serde_json::Value's numbers.)
    let json = String::from_utf8(cluster.image.encode()).expect("utf-8");
    let fields = r#","adding_replicas":[],"removing_replicas":[]"#;
    assert_eq!(json.matches(fields).count(), 1, "{json}");
    let bytes = json.replace(fields, "").into_bytes();
    let image = MetadataImage::decode(&bytes).expect("decoded");
    assert_eq!(image, cluster.image);
}
