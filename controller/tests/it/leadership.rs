//! Leader and ISR rules through `decide` (Kafka's ReplicationControlManager
//! semantics): initial ISR, fencing and unfencing, unclean election,
//! AlterPartition, ElectLeaders and the preferred-leader rebalance. Each
//! test drives one controller's decisions on an image, applying what it
//! decides as if it committed.

use controller::decide::{
    decide, expire_sessions, ControllerError, Election, ElectionError, NewTopic, PartitionError,
    PartitionState, Request, Response, Sessions,
};
use controller::leadership::UNCLEAN_LEADER_ELECTION_ENABLE;
use controller::records::{ConfigResource, MetadataRecord, TopicId};
use controller::{rebalance_leaders, MetadataImage, PartitionImage};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;

pub(crate) const SESSION_MS: u64 = 1_000;

pub(crate) struct Cluster {
    pub(crate) image: MetadataImage,
    pub(crate) sessions: Sessions,
    pub(crate) rng: StdRng,
    pub(crate) now_ms: u64,
    pub(crate) index: u64,
}

impl Cluster {
    /// Brokers registered and unfenced.
    pub(crate) fn new(brokers: &[i32]) -> Cluster {
        let mut cluster = Cluster::registered(brokers);
        for &broker in brokers {
            cluster.unfence(broker);
        }
        cluster
    }

    /// Brokers registered, still fenced.
    pub(crate) fn registered(brokers: &[i32]) -> Cluster {
        let mut cluster = Cluster {
            image: MetadataImage::default(),
            sessions: Sessions::new(SESSION_MS),
            rng: StdRng::seed_from_u64(1),
            now_ms: 0,
            index: 0,
        };
        for &broker in brokers {
            cluster
                .register(broker, broker as u128)
                .expect("registered");
        }
        cluster
    }

    pub(crate) fn commit(&mut self, records: &[MetadataRecord]) {
        self.index += 1;
        let errors = self.image.apply(self.index, records);
        assert!(errors.is_empty(), "{errors:?} applying {records:?}");
    }

    pub(crate) fn ask(&mut self, request: Request) -> Result<Response, ControllerError> {
        let decision = decide(
            &self.image,
            &mut self.sessions,
            &request,
            self.now_ms,
            &mut self.rng,
        )?;
        if !decision.records.is_empty() {
            self.commit(&decision.records);
        }
        Ok(decision.response)
    }

    /// The records `request` decides, without committing them.
    pub(crate) fn records_of(&mut self, request: Request) -> Vec<MetadataRecord> {
        decide(
            &self.image,
            &mut self.sessions,
            &request,
            self.now_ms,
            &mut self.rng,
        )
        .expect("decided")
        .records
    }

    pub(crate) fn register(
        &mut self,
        broker: i32,
        incarnation: u128,
    ) -> Result<Response, ControllerError> {
        self.ask(Request::RegisterBroker {
            broker_id: broker,
            incarnation,
            endpoints: Vec::new(),
            rack: None,
        })
    }

    pub(crate) fn epoch(&self, broker: i32) -> u64 {
        self.image.brokers[&broker].epoch
    }

    pub(crate) fn unfence(&mut self, broker: i32) {
        let response = self.ask(Request::Heartbeat {
            broker_id: broker,
            broker_epoch: self.epoch(broker),
            metadata_offset: self.index,
            offline_replicas: Vec::new(),
        });
        assert!(
            matches!(
                response,
                Ok(Response::Heartbeat {
                    is_fenced: false,
                    ..
                })
            ),
            "{response:?}"
        );
    }

    /// `broker`'s session runs out while every other unfenced broker
    /// heartbeats; the controller's tick fences it.
    /// A heartbeat from unfenced `broker` reporting `offline` replicas
    /// (topic, partition): the records it decides are committed.
    pub(crate) fn report_offline(&mut self, broker: i32, offline: &[(&str, i32)]) -> usize {
        let offline_replicas = offline
            .iter()
            .map(|(topic, p)| (self.image.topic(topic).expect("topic").id, *p))
            .collect();
        let request = Request::Heartbeat {
            broker_id: broker,
            broker_epoch: self.epoch(broker),
            metadata_offset: self.index,
            offline_replicas,
        };
        assert!(request.writes(), "it moves leaderships");
        let records = self.records_of(request);
        self.commit(&records);
        records.len()
    }

    pub(crate) fn fence(&mut self, broker: i32) {
        self.now_ms += SESSION_MS + 1;
        let others: Vec<i32> = self
            .image
            .unfenced_brokers()
            .map(|b| b.id)
            .filter(|&b| b != broker)
            .collect();
        for other in others {
            self.unfence(other);
        }
        let records = expire_sessions(&self.image, &self.sessions, self.now_ms);
        assert!(
            records.contains(&MetadataRecord::FenceBroker {
                broker_id: broker,
                epoch: self.epoch(broker),
            }),
            "{records:?}"
        );
        self.commit(&records);
        assert!(self.image.brokers[&broker].fenced);
    }

    pub(crate) fn topic(&mut self, name: &str, assignments: Vec<Vec<i32>>) -> TopicId {
        self.topic_with(name, assignments, BTreeMap::new())
    }

    pub(crate) fn topic_with(
        &mut self,
        name: &str,
        assignments: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    ) -> TopicId {
        let response = self.ask(Request::CreateTopics {
            topics: vec![NewTopic {
                name: name.into(),
                partitions: -1,
                replication_factor: -1,
                assignments,
                configs,
            }],
            validate_only: false,
        });
        match response {
            Ok(Response::Topics(outcomes)) => match &outcomes[0].result {
                Ok(created) => created.topic_id,
                Err(error) => panic!("{name}: {error:?}"),
            },
            other => panic!("{name}: {other:?}"),
        }
    }

    pub(crate) fn set_config(&mut self, resource: ConfigResource, name: &str, value: &str) {
        let response = self.ask(Request::AlterConfigs {
            changes: vec![(resource, name.into(), Some(value.into()))],
            validate_only: false,
        });
        assert!(matches!(response, Ok(Response::Items(_))), "{response:?}");
    }

    pub(crate) fn partition(&self, topic: &str, partition: i32) -> &PartitionImage {
        self.image
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .expect("partition exists")
    }

    pub(crate) fn leader_isr(&self, topic: &str, partition: i32) -> (i32, Vec<i32>) {
        let p = self.partition(topic, partition);
        (p.leader, p.isr.clone())
    }

    /// AlterPartition from `broker` at the partition's current epochs.
    pub(crate) fn alter_request(
        &self,
        broker: i32,
        topic: &str,
        partition: i32,
        isr: &[i32],
    ) -> Request {
        let p = self.partition(topic, partition);
        Request::AlterPartition {
            broker_id: broker,
            broker_epoch: self.epoch(broker),
            topic_id: self.image.topic(topic).expect("topic").id,
            partition,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: isr.to_vec(),
        }
    }

    pub(crate) fn alter(
        &mut self,
        broker: i32,
        topic: &str,
        partition: i32,
        isr: &[i32],
    ) -> Result<PartitionState, PartitionError> {
        let request = self.alter_request(broker, topic, partition, isr);
        match self.ask(request) {
            Ok(Response::PartitionAltered(result)) => result,
            other => panic!("{other:?}"),
        }
    }

    pub(crate) fn elect(
        &mut self,
        election: Election,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<(String, i32, Result<i32, ElectionError>)> {
        match self.ask(Request::ElectLeaders {
            election,
            partitions,
        }) {
            Ok(Response::Elected(results)) => results,
            other => panic!("{other:?}"),
        }
    }

    pub(crate) fn elect_one(
        &mut self,
        election: Election,
        topic: &str,
        partition: i32,
    ) -> Result<i32, ElectionError> {
        let results = self.elect(election, Some(vec![(topic.into(), partition)]));
        assert_eq!(results.len(), 1);
        results[0].2.clone()
    }
}

pub(crate) fn unclean_config() -> BTreeMap<String, String> {
    BTreeMap::from([(
        UNCLEAN_LEADER_ELECTION_ENABLE.to_string(),
        "true".to_string(),
    )])
}

#[test]
fn new_partition_isr_is_every_unfenced_replica_in_replica_order() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.fence(2);
    cluster.topic("t", vec![vec![2, 3, 1], vec![3, 1, 2]]);
    assert_eq!(cluster.leader_isr("t", 0), (3, vec![3, 1]));
    assert_eq!(cluster.leader_isr("t", 1), (3, vec![3, 1]));
}

#[test]
fn new_partition_without_unfenced_replica_is_offline_with_first_replica_in_isr() {
    let mut cluster = Cluster::registered(&[1, 2]);
    cluster.topic("t", vec![vec![2, 1]]);
    assert_eq!(cluster.leader_isr("t", 0), (-1, vec![2]));
    // Broker 1 is not in the ISR: it does not lead when it returns.
    cluster.unfence(1);
    assert_eq!(cluster.leader_isr("t", 0), (-1, vec![2]));
    cluster.unfence(2);
    assert_eq!(cluster.leader_isr("t", 0), (2, vec![2]));
}

#[test]
fn fencing_a_follower_removes_it_from_the_isr_only() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    cluster.fence(2);
    let p = cluster.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 3]));
    assert_eq!((p.leader_epoch, p.partition_epoch), (0, 1));
    // Unfencing does not bring it back: the leader adds it once caught up.
    cluster.unfence(2);
    assert_eq!(cluster.leader_isr("t", 0), (1, vec![1, 3]));
}

#[test]
fn fencing_the_leader_elects_the_next_in_replica_order_not_isr_order() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    // Broker 2 leaves the ISR and joins again: the ISR's order is [1, 3, 2].
    cluster.alter(1, "t", 0, &[1, 3]).expect("shrunk");
    cluster.alter(1, "t", 0, &[1, 3, 2]).expect("expanded");
    cluster.fence(1);
    let p = cluster.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![3, 2]));
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 3));
}

#[test]
fn fencing_changes_each_partition_once_and_leaves_others_alone() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("t", vec![vec![1, 2], vec![2, 3], vec![3, 1]]);
    cluster.now_ms += SESSION_MS + 1;
    cluster.unfence(2);
    cluster.unfence(3);
    let records = expire_sessions(&cluster.image, &cluster.sessions, cluster.now_ms);
    let changes: Vec<i32> = records
        .iter()
        .filter_map(|r| match r {
            MetadataRecord::PartitionChange { partition, .. } => Some(*partition),
            _ => None,
        })
        .collect();
    assert_eq!(changes, vec![0, 2]);
}

#[test]
fn expired_sessions_are_fenced_one_broker_per_decision() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    cluster.now_ms += SESSION_MS + 1;
    cluster.unfence(3);
    let mut fenced = Vec::new();
    loop {
        let records = expire_sessions(&cluster.image, &cluster.sessions, cluster.now_ms);
        if records.is_empty() {
            break;
        }
        let fences = records
            .iter()
            .filter(|r| matches!(r, MetadataRecord::FenceBroker { .. }))
            .count();
        assert_eq!(fences, 1, "{records:?}");
        cluster.commit(&records);
        fenced.extend(records.iter().filter_map(|r| match r {
            MetadataRecord::FenceBroker { broker_id, .. } => Some(*broker_id),
            _ => None,
        }));
    }
    assert_eq!(fenced, vec![1, 2]);
    // Decided one after the other, the leader is always in the ISR.
    assert_eq!(cluster.leader_isr("t", 0), (3, vec![3]));
}

#[test]
fn offline_replicas_leave_their_isr_and_leadership_and_only_theirs() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("t", vec![vec![1, 2, 3], vec![2, 1, 3], vec![1, 3, 2]]);
    // Broker 1's replicas of partitions 0 (it leads) and 1 (it follows).
    // Kept in the image, and the two partitions change.
    let records = cluster.report_offline(1, &[("t", 0), ("t", 1)]);
    assert_eq!(records, 3);
    assert_eq!(cluster.image.brokers[&1].offline_replicas.len(), 2);
    assert_eq!(cluster.leader_isr("t", 0), (2, vec![2, 3]));
    assert_eq!(cluster.leader_isr("t", 1), (2, vec![2, 3]));
    assert_eq!(cluster.leader_isr("t", 2), (1, vec![1, 3, 2]), "untouched");
    // Reported again at every heartbeat: nothing more to change.
    assert_eq!(cluster.report_offline(1, &[("t", 0), ("t", 1)]), 0);
    // A heartbeat without offline replicas writes nothing.
    let quiet = Request::Heartbeat {
        broker_id: 2,
        broker_epoch: cluster.epoch(2),
        metadata_offset: cluster.index,
        offline_replicas: Vec::new(),
    };
    assert!(!quiet.writes());
}

#[test]
fn an_offline_last_isr_member_gives_up_leadership_and_does_not_take_it_back() {
    let mut cluster = Cluster::new(&[1, 2]);
    cluster.topic("t", vec![vec![1, 2]]);
    cluster.alter(1, "t", 0, &[1]).expect("shrunk");
    assert_eq!(cluster.report_offline(1, &[("t", 0)]), 2);
    // No other clean leader: offline, broker 1 kept as the last member.
    assert_eq!(cluster.leader_isr("t", 0), (-1, vec![1]));
    assert_eq!(cluster.report_offline(1, &[("t", 0)]), 0);
    // Fenced and back, still reporting it offline: it is not elected.
    cluster.fence(1);
    let offline_replicas = vec![(cluster.image.topic("t").expect("topic").id, 0)];
    let records = cluster.records_of(Request::Heartbeat {
        broker_id: 1,
        broker_epoch: cluster.epoch(1),
        metadata_offset: cluster.index,
        offline_replicas,
    });
    cluster.commit(&records);
    assert!(!cluster.image.brokers[&1].fenced, "unfenced");
    assert_eq!(cluster.leader_isr("t", 0), (-1, vec![1]));
    // Without the report (the directory is back after a restart) it leads.
    cluster.fence(1);
    cluster.unfence(1);
    assert_eq!(cluster.leader_isr("t", 0), (1, vec![1]));
}

#[test]
fn fencing_the_last_isr_member_takes_the_partition_offline_until_it_returns() {
    let mut cluster = Cluster::new(&[1, 2]);
    cluster.topic("t", vec![vec![1, 2]]);
    cluster.alter(1, "t", 0, &[1]).expect("shrunk");
    cluster.fence(1);
    let p = cluster.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (-1, vec![1]));
    assert_eq!(p.leader_epoch, 1);
    // Broker 2 is unfenced but out of the ISR: no clean leader.
    cluster.fence(2);
    cluster.unfence(2);
    assert_eq!(cluster.leader_isr("t", 0), (-1, vec![1]));
    cluster.unfence(1);
    let p = cluster.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));
    assert_eq!(p.leader_epoch, 2);
}

#[test]
fn unclean_topic_elects_an_unfenced_replica_outside_the_isr() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic_with("t", vec![vec![1, 2, 3]], unclean_config());
    cluster.alter(1, "t", 0, &[1]).expect("shrunk");
    cluster.fence(1);
    assert_eq!(cluster.leader_isr("t", 0), (2, vec![2]));
}

#[test]
fn cluster_default_enables_unclean_unless_the_topic_disables_it() {
    let mut cluster = Cluster::new(&[1, 2]);
    cluster.set_config(
        ConfigResource::Broker(-1),
        UNCLEAN_LEADER_ELECTION_ENABLE,
        "true",
    );
    cluster.topic("inherits", vec![vec![1, 2]]);
    let clean = BTreeMap::from([(
        UNCLEAN_LEADER_ELECTION_ENABLE.to_string(),
        "false".to_string(),
    )]);
    cluster.topic_with("overrides", vec![vec![1, 2]], clean);
    cluster.alter(1, "inherits", 0, &[1]).expect("shrunk");
    cluster.alter(1, "overrides", 0, &[1]).expect("shrunk");
    cluster.fence(1);
    assert_eq!(cluster.leader_isr("inherits", 0), (2, vec![2]));
    assert_eq!(cluster.leader_isr("overrides", 0), (-1, vec![1]));
}

#[test]
fn unclean_returning_broker_leads_an_offline_partition_outside_the_isr() {
    let mut cluster = Cluster::new(&[1, 2]);
    cluster.topic("t", vec![vec![1, 2]]);
    cluster.alter(1, "t", 0, &[1]).expect("shrunk");
    cluster.fence(2);
    cluster.fence(1);
    assert_eq!(cluster.leader_isr("t", 0), (-1, vec![1]));
    cluster.set_config(
        ConfigResource::Topic("t".into()),
        UNCLEAN_LEADER_ELECTION_ENABLE,
        "TRUE",
    );
    cluster.unfence(2);
    assert_eq!(cluster.leader_isr("t", 0), (2, vec![2]));
}

#[test]
fn a_new_process_of_a_broker_leaves_its_isrs_and_leadership() {
    let mut cluster = Cluster::new(&[1, 2]);
    cluster.topic("t", vec![vec![1, 2]]);
    // Its old session has run out (else the registration is a duplicate).
    cluster.now_ms += SESSION_MS + 1;
    cluster.unfence(2);
    cluster.register(1, 99).expect("registered");
    assert!(cluster.image.brokers[&1].fenced);
    assert_eq!(cluster.leader_isr("t", 0), (2, vec![2]));
}

/// One AlterPartition case: differences from the leader's valid request.
struct Ask {
    case: &'static str,
    broker: i32,
    topic_id: Option<TopicId>,
    partition: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
    expected: Result<PartitionState, PartitionError>,
}

#[test]
fn alter_partition_refusals_in_kafka_order() {
    let mut cluster = Cluster::new(&[1, 2, 3, 4]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    cluster.alter(1, "t", 0, &[1, 2]).expect("shrunk");
    cluster.fence(3);
    let (le, pe) = (0, 1);
    assert_eq!(cluster.partition("t", 0).leader_epoch, le);
    assert_eq!(cluster.partition("t", 0).partition_epoch, pe);
    let ask = |case, expected| Ask {
        case,
        broker: 1,
        topic_id: None,
        partition: 0,
        leader_epoch: le,
        partition_epoch: pe,
        isr: vec![1, 2],
        expected,
    };
    let invalid = |text: &str| Err(PartitionError::InvalidRequest(text.into()));
    let cases = vec![
        Ask {
            partition: 7,
            ..ask(
                "unknown partition",
                Err(PartitionError::UnknownTopicOrPartition),
            )
        },
        Ask {
            topic_id: Some(5),
            ..ask(
                "unknown topic id",
                Err(PartitionError::UnknownTopicOrPartition),
            )
        },
        Ask {
            broker: 2,
            leader_epoch: le - 1,
            ..ask(
                "a follower, at a stale epoch too",
                Err(PartitionError::NotLeader),
            )
        },
        Ask {
            leader_epoch: le - 1,
            partition_epoch: pe - 1,
            ..ask("stale leader epoch", Err(PartitionError::FencedLeaderEpoch))
        },
        Ask {
            leader_epoch: le + 1,
            ..ask("leader epoch ahead", Err(PartitionError::FencedLeaderEpoch))
        },
        Ask {
            partition_epoch: pe - 1,
            isr: Vec::new(),
            ..ask(
                "stale partition epoch",
                Err(PartitionError::InvalidUpdateVersion),
            )
        },
        Ask {
            isr: Vec::new(),
            ..ask("empty ISR", invalid("the ISR is empty"))
        },
        Ask {
            isr: vec![1, 2, 1],
            ..ask("duplicate", invalid("replica 1 is in the ISR twice"))
        },
        Ask {
            isr: vec![1, 4],
            ..ask(
                "an unfenced non-replica",
                invalid("broker 4 is not a replica"),
            )
        },
        Ask {
            isr: vec![2],
            ..ask(
                "without the leader",
                invalid("the ISR must hold the leader 1"),
            )
        },
        Ask {
            isr: vec![1, 2, 3],
            ..ask(
                "a fenced replica joins",
                Err(PartitionError::IneligibleReplica(3)),
            )
        },
    ];
    let before = cluster.image.clone();
    let topic_id = before.topic("t").expect("t").id;
    for ask in cases {
        let request = Request::AlterPartition {
            broker_id: ask.broker,
            broker_epoch: cluster.epoch(ask.broker),
            topic_id: ask.topic_id.unwrap_or(topic_id),
            partition: ask.partition,
            leader_epoch: ask.leader_epoch,
            partition_epoch: ask.partition_epoch,
            isr: ask.isr,
        };
        let response = cluster.ask(request);
        let case = ask.case;
        assert_eq!(
            response,
            Ok(Response::PartitionAltered(ask.expected)),
            "{case}"
        );
        assert_eq!(cluster.image, before, "{case}: nothing written");
    }
}

#[test]
fn alter_partition_from_a_stale_or_unknown_broker_is_refused_as_a_whole() {
    let mut cluster = Cluster::new(&[1, 2]);
    cluster.topic("t", vec![vec![1, 2]]);
    let mut request = cluster.alter_request(1, "t", 0, &[1]);
    if let Request::AlterPartition { broker_epoch, .. } = &mut request {
        *broker_epoch += 100;
    }
    assert!(matches!(
        cluster.ask(request),
        Err(ControllerError::StaleBrokerEpoch { broker: 1, .. })
    ));
    let mut request = cluster.alter_request(1, "t", 0, &[1]);
    if let Request::AlterPartition { broker_id, .. } = &mut request {
        *broker_id = 9;
    }
    assert_eq!(
        cluster.ask(request),
        Err(ControllerError::BrokerNotRegistered(9))
    );
}

#[test]
fn alter_partition_shrinks_and_expands_at_the_current_epochs() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    let stale = cluster.alter_request(1, "t", 0, &[1, 2]);
    assert!(stale.writes());
    let shrunk = cluster.alter(1, "t", 0, &[1, 3]).expect("shrunk");
    let expected = PartitionState {
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 1,
        isr: vec![1, 3],
    };
    assert_eq!(shrunk, expected);
    assert_eq!(cluster.leader_isr("t", 0), (1, vec![1, 3]));
    // The request made at the epoch before is fenced by it.
    assert_eq!(
        cluster.ask(stale),
        Ok(Response::PartitionAltered(Err(
            PartitionError::InvalidUpdateVersion
        )))
    );
    let expanded = cluster.alter(1, "t", 0, &[1, 3, 2]).expect("expanded");
    assert_eq!(expanded.partition_epoch, 2);
    assert_eq!(expanded.isr, vec![1, 3, 2]);
    let p = cluster.partition("t", 0);
    assert_eq!((p.leader_epoch, p.partition_epoch), (0, 2));
    assert_eq!(p.isr, vec![1, 3, 2]);
}

#[test]
fn alter_partition_to_the_same_isr_writes_nothing() {
    let mut cluster = Cluster::new(&[1, 2]);
    cluster.topic("t", vec![vec![1, 2]]);
    for isr in [[1, 2], [2, 1]] {
        let request = cluster.alter_request(1, "t", 0, &isr);
        assert!(cluster.records_of(request.clone()).is_empty());
        let state = cluster.alter(1, "t", 0, &isr).expect("no-op");
        assert_eq!(
            state,
            PartitionState {
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                isr: vec![1, 2],
            }
        );
    }
}

#[test]
fn preferred_election_needs_the_preferred_replica_unfenced_and_in_the_isr() {
    let mut cluster = Cluster::new(&[1, 2]);
    cluster.topic("t", vec![vec![1, 2]]);
    assert_eq!(
        cluster.elect_one(Election::Preferred, "t", 0),
        Err(ElectionError::ElectionNotNeeded)
    );
    cluster.fence(1);
    assert_eq!(cluster.leader_isr("t", 0), (2, vec![2]));
    assert_eq!(
        cluster.elect_one(Election::Preferred, "t", 0),
        Err(ElectionError::PreferredLeaderNotAvailable),
        "fenced"
    );
    cluster.unfence(1);
    assert_eq!(
        cluster.elect_one(Election::Preferred, "t", 0),
        Err(ElectionError::PreferredLeaderNotAvailable),
        "not in the ISR"
    );
    cluster.alter(2, "t", 0, &[2, 1]).expect("expanded");
    assert_eq!(cluster.elect_one(Election::Preferred, "t", 0), Ok(1));
    let p = cluster.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![2, 1]));
    assert_eq!((p.leader_epoch, p.partition_epoch), (2, 3));
    assert_eq!(
        cluster.elect_one(Election::Preferred, "t", 1),
        Err(ElectionError::UnknownTopicOrPartition)
    );
    assert_eq!(
        cluster.elect_one(Election::Preferred, "nope", 0),
        Err(ElectionError::UnknownTopicOrPartition)
    );
}

#[test]
fn unclean_election_elects_outside_the_isr_only_without_a_leader() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    assert_eq!(
        cluster.elect_one(Election::Unclean, "t", 0),
        Err(ElectionError::ElectionNotNeeded)
    );
    cluster.alter(1, "t", 0, &[1]).expect("shrunk");
    cluster.fence(2);
    cluster.fence(1);
    assert_eq!(cluster.leader_isr("t", 0), (-1, vec![1]));
    // The topic does not enable unclean election; the request does.
    assert_eq!(cluster.elect_one(Election::Unclean, "t", 0), Ok(3));
    assert_eq!(cluster.leader_isr("t", 0), (3, vec![3]));
    cluster.fence(3);
    assert_eq!(cluster.leader_isr("t", 0), (-1, vec![3]));
    assert_eq!(
        cluster.elect_one(Election::Unclean, "t", 0),
        Err(ElectionError::EligibleLeadersNotAvailable)
    );
}

#[test]
fn elect_leaders_for_every_partition_answers_each_in_topic_order() {
    let mut cluster = Cluster::new(&[1, 2]);
    cluster.topic("b", vec![vec![1, 2], vec![2, 1]]);
    cluster.topic("a", vec![vec![1, 2]]);
    cluster.fence(1);
    cluster.unfence(1);
    for (topic, partition) in [("a", 0), ("b", 0)] {
        cluster
            .alter(2, topic, partition, &[2, 1])
            .expect("expanded");
    }
    let results = cluster.elect(Election::Preferred, None);
    assert_eq!(
        results,
        vec![
            ("a".to_string(), 0, Ok(1)),
            ("b".to_string(), 0, Ok(1)),
            ("b".to_string(), 1, Err(ElectionError::ElectionNotNeeded)),
        ]
    );
}

#[test]
fn elect_leaders_naming_a_partition_twice_elects_it_once() {
    let mut cluster = Cluster::new(&[1, 2]);
    cluster.topic("t", vec![vec![1, 2]]);
    cluster.fence(1);
    cluster.unfence(1);
    cluster.alter(2, "t", 0, &[2, 1]).expect("expanded");
    let twice = Some(vec![("t".to_string(), 0), ("t".to_string(), 0)]);
    let request = Request::ElectLeaders {
        election: Election::Preferred,
        partitions: twice.clone(),
    };
    assert_eq!(cluster.records_of(request).len(), 1);
    let results = cluster.elect(Election::Preferred, twice);
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0].2, Ok(1));
}

/// Ten partitions preferring broker 1, `moved` of them led by broker 2
/// (broker 1 still in their ISR), and one preferring and led by broker 2.
fn imbalanced(moved: usize) -> MetadataImage {
    let mut cluster = Cluster::new(&[1, 2]);
    let id = cluster.topic("t", vec![vec![1, 2]; 10]);
    cluster.topic("u", vec![vec![2, 1]]);
    for partition in 0..moved {
        cluster.commit(&[MetadataRecord::leader_isr_change(
            id,
            partition as i32,
            Some(2),
            None,
        )]);
    }
    cluster.image
}

#[test]
fn rebalance_moves_leaders_back_only_over_the_imbalance_threshold() {
    assert!(rebalance_leaders(&imbalanced(0), 10).is_empty());
    // 1 of 10 is 10%: not over 10%.
    assert!(rebalance_leaders(&imbalanced(1), 10).is_empty());
    let image = imbalanced(2);
    let records = rebalance_leaders(&image, 10);
    let id = image.topic("t").expect("t").id;
    let expected: Vec<MetadataRecord> = (0..2)
        .map(|partition| MetadataRecord::leader_isr_change(id, partition, Some(1), None))
        .collect();
    assert_eq!(records, expected);
    assert!(rebalance_leaders(&imbalanced(5), 50).is_empty());
    assert_eq!(rebalance_leaders(&imbalanced(6), 50).len(), 6);
}

#[test]
fn rebalance_skips_preferred_replicas_fenced_or_out_of_the_isr() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.topic("t", vec![vec![1, 2], vec![1, 2], vec![3, 2]]);
    cluster.fence(1);
    cluster.fence(3);
    cluster.unfence(1);
    // Partition 1 gets broker 1 back in its ISR; partition 0 does not.
    cluster.alter(2, "t", 1, &[2, 1]).expect("expanded");
    let records = rebalance_leaders(&cluster.image, 0);
    let id = cluster.image.topic("t").expect("t").id;
    assert_eq!(
        records,
        vec![MetadataRecord::leader_isr_change(id, 1, Some(1), None)]
    );
}
