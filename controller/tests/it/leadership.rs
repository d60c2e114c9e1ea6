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

const SESSION_MS: u64 = 1_000;

struct Cluster {
    image: MetadataImage,
    sessions: Sessions,
    rng: StdRng,
    now_ms: u64,
    index: u64,
}

impl Cluster {
    /// Brokers registered and unfenced.
    fn new(brokers: &[i32]) -> Cluster {
        let mut cluster = Cluster::registered(brokers);
        for &broker in brokers {
            cluster.unfence(broker);
        }
        cluster
    }

    /// Brokers registered, still fenced.
    fn registered(brokers: &[i32]) -> Cluster {
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

    fn commit(&mut self, records: &[MetadataRecord]) {
        self.index += 1;
        let errors = self.image.apply(self.index, records);
        assert!(errors.is_empty(), "{errors:?} applying {records:?}");
    }

    fn ask(&mut self, request: Request) -> Result<Response, ControllerError> {
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
    fn records_of(&mut self, request: Request) -> Vec<MetadataRecord> {
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

    fn register(&mut self, broker: i32, incarnation: u128) -> Result<Response, ControllerError> {
        self.ask(Request::RegisterBroker {
            broker_id: broker,
            incarnation,
            endpoints: Vec::new(),
            rack: None,
        })
    }

    fn epoch(&self, broker: i32) -> u64 {
        self.image.brokers[&broker].epoch
    }

    fn unfence(&mut self, broker: i32) {
        let response = self.ask(Request::Heartbeat {
            broker_id: broker,
            broker_epoch: self.epoch(broker),
            metadata_offset: self.index,
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
    fn fence(&mut self, broker: i32) {
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

    fn topic(&mut self, name: &str, assignments: Vec<Vec<i32>>) -> TopicId {
        self.topic_with(name, assignments, BTreeMap::new())
    }

    fn topic_with(
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

    fn set_config(&mut self, resource: ConfigResource, name: &str, value: &str) {
        let response = self.ask(Request::AlterConfigs {
            changes: vec![(resource, name.into(), Some(value.into()))],
            validate_only: false,
        });
        assert!(matches!(response, Ok(Response::Items(_))), "{response:?}");
    }

    fn partition(&self, topic: &str, partition: i32) -> &PartitionImage {
        self.image
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .expect("partition exists")
    }

    fn leader_isr(&self, topic: &str, partition: i32) -> (i32, Vec<i32>) {
        let p = self.partition(topic, partition);
        (p.leader, p.isr.clone())
    }

    /// AlterPartition from `broker` at the partition's current epochs.
    fn alter_request(&self, broker: i32, topic: &str, partition: i32, isr: &[i32]) -> Request {
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

    fn alter(
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

    fn elect(
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

    fn elect_one(
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

fn unclean_config() -> BTreeMap<String, String> {
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

#[test]
fn alter_partition_refusals_in_kafka_order() {
    let mut cluster = Cluster::new(&[1, 2, 3, 4]);
    cluster.topic("t", vec![vec![1, 2, 3]]);
    cluster.alter(1, "t", 0, &[1, 2]).expect("shrunk");
    cluster.fence(3);
    let base = cluster.alter_request(1, "t", 0, &[1, 2]);
    let follower_epoch = cluster.epoch(2);
    let with = |change: &dyn Fn(&mut Request)| {
        let mut request = base.clone();
        change(&mut request);
        request
    };
    type Edit = Box<dyn Fn(&mut Request)>;
    let field = |edit: Box<dyn Fn(&mut i32, &mut i32, &mut i32, &mut Vec<i32>)>| -> Edit {
        Box::new(move |request: &mut Request| {
            if let Request::AlterPartition {
                broker_id,
                leader_epoch,
                partition_epoch,
                isr,
                ..
            } = request
            {
                edit(broker_id, leader_epoch, partition_epoch, isr);
            }
        })
    };
    let invalid = |text: &str| Err(PartitionError::InvalidRequest(text.into()));
    let cases: Vec<(&str, Edit, Result<PartitionState, PartitionError>)> = vec![
        (
            "unknown partition",
            Box::new(|r: &mut Request| {
                if let Request::AlterPartition { partition, .. } = r {
                    *partition = 7;
                }
            }),
            Err(PartitionError::UnknownTopicOrPartition),
        ),
        (
            "unknown topic id",
            Box::new(|r: &mut Request| {
                if let Request::AlterPartition { topic_id, .. } = r {
                    *topic_id = 5;
                }
            }),
            Err(PartitionError::UnknownTopicOrPartition),
        ),
        (
            "a follower, at stale epochs too",
            Box::new(move |r: &mut Request| {
                if let Request::AlterPartition {
                    broker_id,
                    broker_epoch,
                    leader_epoch,
                    ..
                } = r
                {
                    *broker_id = 2;
                    *broker_epoch = follower_epoch;
                    *leader_epoch -= 1;
                }
            }),
            Err(PartitionError::NotLeader),
        ),
        (
            "stale leader epoch, stale partition epoch too",
            field(Box::new(|_, le, pe, _| {
                *le -= 1;
                *pe -= 1;
            })),
            Err(PartitionError::FencedLeaderEpoch),
        ),
        (
            "leader epoch from the future",
            field(Box::new(|_, le, _, _| *le += 1)),
            Err(PartitionError::FencedLeaderEpoch),
        ),
        (
            "stale partition epoch, invalid ISR too",
            field(Box::new(|_, _, pe, isr| {
                *pe -= 1;
                isr.clear();
            })),
            Err(PartitionError::InvalidUpdateVersion),
        ),
        (
            "empty ISR",
            field(Box::new(|_, _, _, isr| isr.clear())),
            invalid("the ISR is empty"),
        ),
        (
            "duplicate",
            field(Box::new(|_, _, _, isr| *isr = vec![1, 2, 1])),
            invalid("replica 1 is in the ISR twice"),
        ),
        (
            "not a replica (but unfenced)",
            field(Box::new(|_, _, _, isr| *isr = vec![1, 4])),
            invalid("broker 4 is not a replica"),
        ),
        (
            "without the leader",
            field(Box::new(|_, _, _, isr| *isr = vec![2])),
            invalid("the ISR must hold the leader 1"),
        ),
        (
            "a fenced replica joins",
            field(Box::new(|_, _, _, isr| *isr = vec![1, 2, 3])),
            Err(PartitionError::IneligibleReplica(3)),
        ),
    ];
    let before = cluster.image.clone();
    for (case, edit, expected) in cases {
        let response = cluster.ask(with(&*edit));
        assert_eq!(response, Ok(Response::PartitionAltered(expected)), "{case}");
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
        cluster.commit(&[MetadataRecord::PartitionChange {
            topic_id: id,
            partition: partition as i32,
            leader: Some(2),
            isr: None,
        }]);
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
        .map(|partition| MetadataRecord::PartitionChange {
            topic_id: id,
            partition,
            leader: Some(1),
            isr: None,
        })
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
        vec![MetadataRecord::PartitionChange {
            topic_id: id,
            partition: 1,
            leader: Some(1),
            isr: None,
        }]
    );
}
