//! What the active controller turns a request into: the records to commit
//! and the answer to give once they commit (KRaft's QuorumController, one
//! request at a time). Pure: the image, the broker sessions, the clock and
//! the random source are passed in, so a simulation drives it directly.
//! Validation that needs the broker's config rules (topic names, config
//! values) happens on the broker before it forwards.

use crate::acl::{AclBinding, AclFilter};
use crate::image::MetadataImage;
use crate::leadership::{
    self, elect_returning, elect_without, elect_without_offline, initial_leadership,
};
use crate::placement::{self, PlacementError};
use crate::reassignment::{self, OngoingReassignment, ReassignmentOutcome};
use crate::records::{self, ConfigResource, Endpoint, MetadataRecord, ScramCredential, TopicId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Producer ids handed to a broker at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    /// Resolved by the broker (`num.partitions` for -1) unless
    /// `assignments` is given.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Explicit replica lists, one per partition (empty: placed here).
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    RegisterBroker {
        broker_id: i32,
        incarnation: u128,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    Heartbeat {
        broker_id: i32,
        broker_epoch: u64,
        /// The highest log index this broker has applied.
        metadata_offset: u64,
        /// Its replicas it cannot serve: their log directory failed (or was
        /// unusable at start). Kafka's OfflineLogDirs (KIP-858), by
        /// partition: the metadata does not say which directory holds one.
        #[serde(default)]
        offline_replicas: Vec<(TopicId, i32)>,
    },
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    CreatePartitions {
        /// (topic, new total, explicit lists for the new partitions)
        topics: Vec<(String, i32, Vec<Vec<i32>>)>,
        validate_only: bool,
    },
    /// SCRAM credentials to delete (user, mechanism) and to set, already
    /// validated by the broker (mechanism, iterations, duplicates).
    AlterUserScramCredentials {
        deletions: Vec<(String, i8)>,
        upsertions: Vec<ScramCredential>,
    },
    /// Kafka's CreateAcls, bindings already validated by the broker.
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// Kafka's DeleteAcls: answered with the bindings each filter removed.
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
    /// Already validated by the broker.
    AlterConfigs {
        changes: Vec<(ConfigResource, String, Option<String>)>,
        validate_only: bool,
    },
    AllocateProducerIds {
        broker_id: i32,
        broker_epoch: u64,
    },
    /// A partition leader asks to shrink or expand its ISR (Kafka's
    /// AlterPartition, key 56), naming the leader and partition epochs it
    /// acts at.
    AlterPartition {
        broker_id: i32,
        broker_epoch: u64,
        topic_id: TopicId,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// Kafka's ElectLeaders: `partitions: None` is every partition.
    ElectLeaders {
        election: Election,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// Kafka's AlterPartitionReassignments (KIP-455): per partition, the
    /// target replica list, or `None` to cancel the reassignment in
    /// progress. Answered in request order.
    AlterReassignments {
        reassignments: Vec<(String, i32, Option<Vec<i32>>)>,
    },
    /// Kafka's ListPartitionReassignments: of the partitions named (`None`:
    /// every partition), those with a reassignment in progress.
    ListReassignments {
        partitions: Option<Vec<(String, i32)>>,
    },
}

/// Which leader an ElectLeaders request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Election {
    /// The first replica, if it is unfenced and in the ISR.
    Preferred,
    /// Any unfenced replica for a partition without a leader, from outside
    /// the ISR if need be (committed records may be lost).
    Unclean,
}

/// A partition's leadership as the controller holds it: what an
/// AlterPartition answer tells the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// Why an AlterPartition was refused: Kafka's AlterPartition errors of
/// the same names (a non-leader gets its own variant here; Kafka answers
/// it INVALID_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PartitionError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("the broker does not lead the partition")]
    NotLeader,
    #[error("the leader epoch is not the current one")]
    FencedLeaderEpoch,
    #[error("the partition epoch is not the current one")]
    InvalidUpdateVersion,
    #[error("replica {0} is fenced or not registered and cannot join the ISR")]
    IneligibleReplica(i32),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The change committed, but it completed a reassignment that moved
    /// leadership away from the asking leader (Kafka's NEW_LEADER_ELECTED):
    /// it learns the new state from the metadata log.
    #[error("the change completed a reassignment and elected a new leader")]
    NewLeaderElected,
}

/// One partition's ElectLeaders answer: (topic, partition, the new leader
/// or why none was elected).
pub type ElectionOutcome = (String, i32, Result<i32, ElectionError>);

/// Why ElectLeaders did not elect for one partition (Kafka's codes of the
/// same names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ElectionError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("election not needed")]
    ElectionNotNeeded,
    #[error("the preferred leader is not available")]
    PreferredLeaderNotAvailable,
    #[error("no eligible leader is available")]
    EligibleLeadersNotAvailable,
}

impl Request {
    /// A request that can be answered without writing (no records) still
    /// goes through `decide`; this says whether it must wait for earlier
    /// writes to apply first.
    pub fn writes(&self) -> bool {
        match self {
            // One that reports offline replicas moves leaderships: it
            // decides on the image with every earlier change in it.
            Request::Heartbeat {
                offline_replicas, ..
            } => !offline_replicas.is_empty(),
            Request::ListReassignments { .. } => false,
            _ => true,
        }
    }
}

/// Why one topic (or config resource) of a request was refused; the broker
/// maps these to Kafka's codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemError {
    TopicAlreadyExists,
    UnknownTopic,
    InvalidReplicationFactor(String),
    InvalidPartitions(String),
    InvalidReplicaAssignment(String),
    /// A SCRAM credential to delete does not exist.
    UnknownCredential,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicOutcome {
    pub name: String,
    pub result: Result<CreatedTopic, ItemError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTopic {
    pub topic_id: TopicId,
    pub partitions: i32,
    pub replication_factor: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Registered {
        broker_epoch: u64,
    },
    Heartbeat {
        is_caught_up: bool,
        is_fenced: bool,
    },
    Topics(Vec<TopicOutcome>),
    /// One result per item (topic deleted, partitions created, config set),
    /// in request order.
    Items(Vec<(String, Result<(), ItemError>)>),
    ProducerIds {
        first: i64,
        count: i64,
    },
    PartitionAltered(Result<PartitionState, PartitionError>),
    /// In request order (topic, then partition order for every partition).
    Elected(Vec<ElectionOutcome>),
    /// One result per reassignment asked, in request order.
    Reassigned(Vec<ReassignmentOutcome>),
    /// The reassignments in progress, in topic and partition order (or
    /// request order when partitions were named).
    Reassignments(Vec<OngoingReassignment>),
    /// Per DeleteAcls filter, the bindings it matched (and removed).
    AclsDeleted(Vec<Vec<AclBinding>>),
}

/// A request refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ControllerError {
    #[error("not the active controller (leader: {leader:?})")]
    NotController { leader: Option<u64> },
    #[error("broker {0} is not registered")]
    BrokerNotRegistered(i32),
    #[error("stale broker epoch {given} for broker {broker} (current {current})")]
    StaleBrokerEpoch {
        broker: i32,
        given: u64,
        current: u64,
    },
    #[error("broker {0} is registered by another live process")]
    DuplicateBrokerRegistration(i32),
    #[error("no controller quorum answered in time: {0}")]
    Timeout(String),
    #[error("controller is stopping")]
    Stopping,
}

/// The active controller's view of broker sessions (not replicated: a new
/// leader starts every unfenced broker's session afresh, as KRaft does).
#[derive(Debug, Default)]
pub struct Sessions {
    deadlines: BTreeMap<i32, u64>,
    pub timeout_ms: u64,
}

impl Sessions {
    pub fn new(timeout_ms: u64) -> Sessions {
        Sessions {
            deadlines: BTreeMap::new(),
            timeout_ms,
        }
    }

    /// On becoming leader: every unfenced broker gets a full session.
    pub fn restart(&mut self, image: &MetadataImage, now_ms: u64) {
        self.deadlines = image
            .unfenced_brokers()
            .map(|b| (b.id, now_ms + self.timeout_ms))
            .collect();
    }

    fn alive(&self, broker: i32, now_ms: u64) -> bool {
        self.deadlines.get(&broker).is_some_and(|&d| d > now_ms)
    }
}

/// What `decide` gives: the records to commit (possibly none) and the
/// answer once they have.
pub struct Decision {
    pub records: Vec<MetadataRecord>,
    pub response: Response,
}

impl Decision {
    fn answer(response: Response) -> Decision {
        Decision {
            records: Vec::new(),
            response,
        }
    }
}

pub fn decide(
    image: &MetadataImage,
    sessions: &mut Sessions,
    request: &Request,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> Result<Decision, ControllerError> {
    match request {
        Request::RegisterBroker {
            broker_id,
            incarnation,
            endpoints,
            rack,
        } => {
            if let Some(existing) = image.brokers.get(broker_id) {
                if existing.incarnation == *incarnation {
                    sessions
                        .deadlines
                        .insert(*broker_id, now_ms + sessions.timeout_ms);
                    return Ok(Decision::answer(Response::Registered {
                        broker_epoch: existing.epoch,
                    }));
                }
                if !existing.fenced && sessions.alive(*broker_id, now_ms) {
                    return Err(ControllerError::DuplicateBrokerRegistration(*broker_id));
                }
            }
            sessions
                .deadlines
                .insert(*broker_id, now_ms + sessions.timeout_ms);
            // The epoch is the index this record commits at; the node fills it in.
            let mut records = vec![MetadataRecord::RegisterBroker {
                broker_id: *broker_id,
                incarnation: *incarnation,
                endpoints: endpoints.clone(),
                rack: rack.clone(),
            }];
            // A new process starts fenced and may have lost what the old
            // one had not synced: it leaves ISRs and leadership as on
            // fencing (Kafka's handleBrokerUncleanShutdown).
            if image.brokers.contains_key(broker_id) {
                records.extend(elect_without(image, *broker_id));
            }
            Ok(Decision {
                records,
                response: Response::Registered { broker_epoch: 0 },
            })
        }
        Request::Heartbeat {
            broker_id,
            broker_epoch,
            metadata_offset,
            offline_replicas,
        } => {
            let broker = check_epoch(image, *broker_id, *broker_epoch)?;
            sessions
                .deadlines
                .insert(*broker_id, now_ms + sessions.timeout_ms);
            let caught_up = *metadata_offset >= broker.epoch;
            let offline: BTreeSet<(TopicId, i32)> = offline_replicas.iter().copied().collect();
            // Kept in the image, so that no later election or ISR change
            // picks these replicas either.
            let mut records = Vec::new();
            if offline != broker.offline_replicas {
                records.push(MetadataRecord::OfflineReplicas {
                    broker_id: *broker_id,
                    epoch: broker.epoch,
                    replicas: offline.iter().copied().collect(),
                });
            }
            if broker.fenced && caught_up {
                records.push(MetadataRecord::UnfenceBroker {
                    broker_id: *broker_id,
                    epoch: broker.epoch,
                });
                records.extend(elect_returning(image, *broker_id, &offline));
                return Ok(Decision {
                    records,
                    response: Response::Heartbeat {
                        is_caught_up: true,
                        is_fenced: false,
                    },
                });
            }
            // Kafka's handleDirectoriesOffline: the broker leaves the ISR
            // and the leadership of the replicas it cannot serve (idempotent:
            // no record once it has).
            if !broker.fenced {
                records.extend(elect_without_offline(image, *broker_id, &offline));
            }
            Ok(Decision {
                records,
                response: Response::Heartbeat {
                    is_caught_up: caught_up,
                    is_fenced: broker.fenced,
                },
            })
        }
        Request::CreateTopics {
            topics,
            validate_only,
        } => {
            let mut records = Vec::new();
            let mut outcomes = Vec::new();
            let mut placed = placed_partitions(image);
            let mut names_seen = Vec::new();
            for topic in topics {
                let result = if names_seen.contains(&&topic.name) {
                    Err(ItemError::TopicAlreadyExists)
                } else {
                    create_topic(image, topic, placed, rng)
                };
                names_seen.push(&topic.name);
                match result {
                    Ok((created, topic_records)) => {
                        placed += created.partitions as usize;
                        if !validate_only {
                            records.extend(topic_records);
                        }
                        outcomes.push(TopicOutcome {
                            name: topic.name.clone(),
                            result: Ok(created),
                        });
                    }
                    Err(error) => outcomes.push(TopicOutcome {
                        name: topic.name.clone(),
                        result: Err(error),
                    }),
                }
            }
            Ok(Decision {
                records,
                response: Response::Topics(outcomes),
            })
        }
        Request::DeleteTopics { names } => {
            let mut records = Vec::new();
            let mut items = Vec::new();
            for name in names {
                match image.topic(name) {
                    Some(topic) if !records.contains(&remove(topic.id)) => {
                        records.push(remove(topic.id));
                        items.push((name.clone(), Ok(())));
                    }
                    _ => items.push((name.clone(), Err(ItemError::UnknownTopic))),
                }
            }
            Ok(Decision {
                records,
                response: Response::Items(items),
            })
        }
        Request::CreatePartitions {
            topics,
            validate_only,
        } => {
            let mut records = Vec::new();
            let mut items = Vec::new();
            let mut placed = placed_partitions(image);
            for (name, total, assignments) in topics {
                let result = add_partitions(image, name, *total, assignments, placed);
                match result {
                    Ok(new) => {
                        placed += new.len();
                        if !validate_only {
                            records.extend(new);
                        }
                        items.push((name.clone(), Ok(())));
                    }
                    Err(error) => items.push((name.clone(), Err(error))),
                }
            }
            Ok(Decision {
                records,
                response: Response::Items(items),
            })
        }
        Request::AlterUserScramCredentials {
            deletions,
            upsertions,
        } => {
            let mut records = Vec::new();
            let mut items = Vec::new();
            for (name, mechanism) in deletions {
                if image.scram_credential(name, *mechanism).is_none() {
                    items.push((name.clone(), Err(ItemError::UnknownCredential)));
                    continue;
                }
                records.push(MetadataRecord::RemoveUserScramCredential {
                    name: name.clone(),
                    mechanism: *mechanism,
                });
                items.push((name.clone(), Ok(())));
            }
            for credential in upsertions {
                records.push(MetadataRecord::UserScramCredential(credential.clone()));
                items.push((credential.name.clone(), Ok(())));
            }
            Ok(Decision {
                records,
                response: Response::Items(items),
            })
        }
        Request::CreateAcls { bindings } => {
            let mut records = Vec::new();
            let mut items = Vec::new();
            for acl in bindings {
                if !image.acls.contains(acl) && !records.contains(&MetadataRecord::Acl(acl.clone()))
                {
                    records.push(MetadataRecord::Acl(acl.clone()));
                }
                items.push((acl.principal.clone(), Ok(())));
            }
            Ok(Decision {
                records,
                response: Response::Items(items),
            })
        }
        Request::DeleteAcls { filters } => {
            let mut removed = BTreeSet::new();
            let matched: Vec<Vec<AclBinding>> = filters
                .iter()
                .map(|filter| {
                    image
                        .acls
                        .iter()
                        .filter(|acl| filter.matches(acl))
                        .cloned()
                        .collect()
                })
                .collect();
            for acl in matched.iter().flatten() {
                removed.insert(acl.clone());
            }
            Ok(Decision {
                records: removed.into_iter().map(MetadataRecord::RemoveAcl).collect(),
                response: Response::AclsDeleted(matched),
            })
        }
        Request::AlterConfigs {
            changes,
            validate_only,
        } => {
            let mut records = Vec::new();
            let mut items = Vec::new();
            for (resource, name, value) in changes {
                let label = match resource {
                    ConfigResource::Topic(topic) => topic.clone(),
                    ConfigResource::Broker(id) => id.to_string(),
                };
                if let ConfigResource::Topic(topic) = resource {
                    if image.topic(topic).is_none() {
                        items.push((label, Err(ItemError::UnknownTopic)));
                        continue;
                    }
                }
                records.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: value.clone(),
                });
                items.push((label, Ok(())));
            }
            if *validate_only {
                records.clear();
            }
            Ok(Decision {
                records,
                response: Response::Items(items),
            })
        }
        Request::AllocateProducerIds {
            broker_id,
            broker_epoch,
        } => {
            check_epoch(image, *broker_id, *broker_epoch)?;
            let first = image.next_producer_id;
            Ok(Decision {
                records: vec![MetadataRecord::ProducerIds {
                    broker_id: *broker_id,
                    next_producer_id: first + PRODUCER_ID_BLOCK,
                }],
                response: Response::ProducerIds {
                    first,
                    count: PRODUCER_ID_BLOCK,
                },
            })
        }
        Request::AlterPartition {
            broker_id,
            broker_epoch,
            topic_id,
            partition,
            leader_epoch,
            partition_epoch,
            isr,
        } => {
            check_epoch(image, *broker_id, *broker_epoch)?;
            let ask = leadership::AlterPartition {
                broker_id: *broker_id,
                leader_epoch: *leader_epoch,
                partition_epoch: *partition_epoch,
                isr,
            };
            let (records, result) = leadership::alter_partition(image, *topic_id, *partition, &ask);
            Ok(Decision {
                records,
                response: Response::PartitionAltered(result),
            })
        }
        Request::ElectLeaders {
            election,
            partitions,
        } => {
            let (records, results) =
                leadership::elect_leaders(image, *election, partitions.as_deref());
            Ok(Decision {
                records,
                response: Response::Elected(results),
            })
        }
        Request::AlterReassignments { reassignments } => {
            let (records, results) = reassignment::alter_reassignments(image, reassignments);
            Ok(Decision {
                records,
                response: Response::Reassigned(results),
            })
        }
        Request::ListReassignments { partitions } => Ok(Decision::answer(Response::Reassignments(
            reassignment::list_reassignments(image, partitions.as_deref()),
        ))),
    }
}

fn remove(topic_id: TopicId) -> MetadataRecord {
    MetadataRecord::RemoveTopic { topic_id }
}

fn check_epoch(
    image: &MetadataImage,
    broker_id: i32,
    epoch: u64,
) -> Result<&crate::image::BrokerImage, ControllerError> {
    let broker = image
        .brokers
        .get(&broker_id)
        .ok_or(ControllerError::BrokerNotRegistered(broker_id))?;
    if broker.epoch != epoch {
        return Err(ControllerError::StaleBrokerEpoch {
            broker: broker_id,
            given: epoch,
            current: broker.epoch,
        });
    }
    Ok(broker)
}

/// A broker whose session ran out: fence it and move its leadership and
/// ISR places (`leadership::elect_without`). The leader does this on its
/// tick. One broker per decision, as Kafka fences one stale broker at a
/// time: the next one is decided on the image with this one applied, so
/// two fencings never change one partition from the same stale state.
pub fn expire_sessions(
    image: &MetadataImage,
    sessions: &Sessions,
    now_ms: u64,
) -> Vec<MetadataRecord> {
    let Some(broker) = image
        .unfenced_brokers()
        .find(|b| !sessions.alive(b.id, now_ms))
    else {
        return Vec::new();
    };
    let mut records = vec![MetadataRecord::FenceBroker {
        broker_id: broker.id,
        epoch: broker.epoch,
    }];
    records.extend(elect_without(image, broker.id));
    records
}

fn placed_partitions(image: &MetadataImage) -> usize {
    image.topics.values().map(|t| t.partitions.len()).sum()
}

fn live_brokers(image: &MetadataImage) -> Vec<(i32, Option<String>)> {
    image
        .unfenced_brokers()
        .map(|b| (b.id, b.rack.clone()))
        .collect()
}

fn check_assignments(image: &MetadataImage, lists: &[Vec<i32>]) -> Result<(), ItemError> {
    let first_len = lists.first().map_or(0, Vec::len);
    for list in lists {
        if list.is_empty() || list.len() != first_len {
            return Err(ItemError::InvalidReplicaAssignment(
                "every partition needs the same, non-zero number of replicas".into(),
            ));
        }
        let mut sorted = list.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != list.len() {
            return Err(ItemError::InvalidReplicaAssignment(format!(
                "duplicate broker in {list:?}"
            )));
        }
        if let Some(unknown) = list.iter().find(|id| !image.brokers.contains_key(id)) {
            return Err(ItemError::InvalidReplicaAssignment(format!(
                "broker {unknown} is not registered"
            )));
        }
    }
    Ok(())
}

/// A new partition, its leader and ISR by `leadership::initial_leadership`.
fn partition_record(
    image: &MetadataImage,
    topic_id: TopicId,
    partition: i32,
    replicas: Vec<i32>,
) -> MetadataRecord {
    let (leader, isr) = initial_leadership(image, &replicas);
    MetadataRecord::Partition {
        topic_id,
        partition,
        replicas,
        isr,
        leader,
    }
}

fn create_topic(
    image: &MetadataImage,
    topic: &NewTopic,
    placed: usize,
    rng: &mut impl rand::Rng,
) -> Result<(CreatedTopic, Vec<MetadataRecord>), ItemError> {
    if image.topic(&topic.name).is_some() {
        return Err(ItemError::TopicAlreadyExists);
    }
    let lists = if topic.assignments.is_empty() {
        if topic.partitions < 1 {
            return Err(ItemError::InvalidPartitions(
                "number of partitions must be larger than 0".into(),
            ));
        }
        placement::assign(
            &live_brokers(image),
            0,
            topic.partitions,
            topic.replication_factor,
            placed,
        )
        .map_err(|e| match e {
            PlacementError::ReplicationFactor { .. } => {
                ItemError::InvalidReplicationFactor(e.to_string())
            }
        })?
    } else {
        check_assignments(image, &topic.assignments)?;
        topic.assignments.clone()
    };
    let mut topic_id = records::random_topic_id(rng);
    while image.topic_by_id(topic_id).is_some() {
        topic_id = records::random_topic_id(rng);
    }
    let created = CreatedTopic {
        topic_id,
        partitions: lists.len() as i32,
        replication_factor: lists.first().map_or(0, |l| l.len() as i32),
    };
    let mut out = vec![MetadataRecord::Topic {
        name: topic.name.clone(),
        topic_id,
    }];
    for (index, replicas) in lists.into_iter().enumerate() {
        out.push(partition_record(image, topic_id, index as i32, replicas));
    }
    for (name, value) in &topic.configs {
        out.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(topic.name.clone()),
            name: name.clone(),
            value: Some(value.clone()),
        });
    }
    Ok((created, out))
}

fn add_partitions(
    image: &MetadataImage,
    name: &str,
    total: i32,
    assignments: &[Vec<i32>],
    placed: usize,
) -> Result<Vec<MetadataRecord>, ItemError> {
    let topic = image.topic(name).ok_or(ItemError::UnknownTopic)?;
    let current = topic.partitions.len() as i32;
    if total <= current {
        return Err(ItemError::InvalidPartitions(format!(
            "topic {name} has {current} partitions; the new count must be larger"
        )));
    }
    let count = total - current;
    let lists = if assignments.is_empty() {
        let rf = topic
            .partitions
            .first()
            .map_or(1, |p| p.replicas.len() as i32);
        placement::assign(&live_brokers(image), current, count, rf, placed)
            .map_err(|e| ItemError::InvalidReplicationFactor(e.to_string()))?
    } else {
        if assignments.len() != count as usize {
            return Err(ItemError::InvalidReplicaAssignment(format!(
                "{} assignments for {count} new partitions",
                assignments.len()
            )));
        }
        check_assignments(image, assignments)?;
        assignments.to_vec()
    };
    Ok(lists
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| partition_record(image, topic.id, current + i as i32, replicas))
        .collect())
}
