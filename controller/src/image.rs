//! The metadata image: the state the log's records build, applied in log
//! order (Kafka's MetadataImage). Every node holds one, built the same way,
//! so `apply` is deterministic and does no I/O; a snapshot is this image
//! serialized, and restoring it then replaying the rest equals replaying
//! the whole log (the property test in tests/it/image.rs).

use crate::acl::AclBinding;
use crate::records::{ConfigResource, Endpoint, MetadataRecord, ScramCredential, TopicId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    pub id: i32,
    pub incarnation: u128,
    /// The log index of its registration (Kafka's broker epoch).
    pub epoch: u64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// Its replicas in failed log directories (`OfflineReplicas`); a new
    /// registration starts without.
    #[serde(default)]
    pub offline_replicas: BTreeSet<(TopicId, i32)>,
}

impl BrokerImage {
    /// Its endpoint on the listener called `listener` (Kafka answers a
    /// client with the endpoints of the listener it connected to).
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == listener)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1: no leader (offline).
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// A reassignment in progress (KIP-455): the target replicas not in
    /// the original assignment, joining. `replicas` is the target followed
    /// by `removing_replicas`; empty (both) when none is in progress.
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    /// The original replicas not in the target, leaving once it completes.
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    /// Whether a reassignment is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas before the reassignment in progress (all of them when
    /// none is): `replicas` without the ones being added, in order.
    pub fn original_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding_replicas.contains(r))
            .collect()
    }

    /// The target of the reassignment in progress (`replicas` when none
    /// is): `replicas` without the ones being removed, in order.
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }

    /// A PartitionChange's fields applied (Kafka's PartitionRegistration
    /// .merge): a new leader, or a replica list dropping a replica, bumps
    /// the leader epoch; the partition epoch always bumps. Any other
    /// record (or one for another partition: the caller picks) is ignored.
    pub fn apply_change(&mut self, record: &MetadataRecord) {
        let MetadataRecord::PartitionChange {
            leader,
            isr,
            replicas,
            adding_replicas,
            removing_replicas,
            ..
        } = record
        else {
            return;
        };
        let new_leader = leader.is_some_and(|l| l != self.leader);
        let drops_replica = replicas
            .as_ref()
            .is_some_and(|new| self.replicas.iter().any(|r| !new.contains(r)));
        if let Some(leader) = leader {
            self.leader = *leader;
        }
        if new_leader || drops_replica {
            self.leader_epoch += 1;
        }
        if let Some(isr) = isr {
            self.isr = isr.clone();
        }
        if let Some(replicas) = replicas {
            self.replicas = replicas.clone();
        }
        if let Some(adding) = adding_replicas {
            self.adding_replicas = adding.clone();
        }
        if let Some(removing) = removing_replicas {
            self.removing_replicas = removing.clone();
        }
        self.partition_epoch += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: TopicId,
    pub partitions: Vec<PartitionImage>,
    /// Overrides by Kafka topic-config name.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Index of the last entry applied.
    pub applied: u64,
    pub brokers: BTreeMap<i32, BrokerImage>,
    pub topics: BTreeMap<String, TopicImage>,
    names: BTreeMap<TopicId, String>,
    /// Broker configs (-1: cluster default).
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
    /// SCRAM credentials by user, then mechanism code (absent from
    /// snapshots written before they existed).
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<i8, ScramCredential>>,
    /// Every ACL (absent from older snapshots).
    #[serde(default)]
    pub acls: BTreeSet<AclBinding>,
    /// The index of the entry that last changed `acls`: brokers rebuild
    /// their authorizer when it moves.
    #[serde(default)]
    pub acls_changed_at: u64,
}

/// A record that does not fit the image (the decider never proposes one;
/// applying skips it, on every node alike).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("no broker {0}")]
    UnknownBroker(i32),
    #[error("no topic with id {0:032x}")]
    UnknownTopicId(TopicId),
    #[error("topic {0} exists")]
    TopicExists(String),
    #[error("no partition {1} of topic id {0:032x}")]
    UnknownPartition(TopicId, i32),
    #[error("partition {1} of topic id {0:032x} is not the next one")]
    PartitionOutOfOrder(TopicId, i32),
    #[error("broker {0}: stale epoch {1}")]
    StaleBrokerEpoch(i32, u64),
    #[error("producer ids would go back")]
    ProducerIdsBackwards,
}

impl TopicImage {
    pub fn partition(&self, partition: i32) -> Option<&PartitionImage> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.partitions.get(p))
    }
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: TopicId) -> Option<&TopicImage> {
        self.names.get(&id).and_then(|name| self.topics.get(name))
    }

    /// `name`'s SCRAM credential for mechanism code `mechanism`.
    pub fn scram_credential(&self, name: &str, mechanism: i8) -> Option<&ScramCredential> {
        self.scram_credentials.get(name)?.get(&mechanism)
    }

    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    fn topic_mut(&mut self, id: TopicId) -> Result<&mut TopicImage, ApplyError> {
        let name = self.names.get(&id).ok_or(ApplyError::UnknownTopicId(id))?;
        self.topics
            .get_mut(name)
            .ok_or(ApplyError::UnknownTopicId(id))
    }

    /// Applies the records of the entry at `index`, in order. A record that
    /// does not fit is skipped (and reported), the others still apply: the
    /// same on every node, so images never diverge.
    pub fn apply(&mut self, index: u64, records: &[MetadataRecord]) -> Vec<ApplyError> {
        let errors = records
            .iter()
            .filter_map(|record| self.apply_one(index, record).err())
            .collect();
        self.applied = self.applied.max(index);
        errors
    }

    fn apply_one(&mut self, index: u64, record: &MetadataRecord) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation,
                endpoints,
                rack,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerImage {
                        id: *broker_id,
                        incarnation: *incarnation,
                        epoch: index,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: true,
                        offline_replicas: BTreeSet::new(),
                    },
                );
            }
            MetadataRecord::OfflineReplicas {
                broker_id,
                epoch,
                replicas,
            } => {
                let broker = self
                    .brokers
                    .get_mut(broker_id)
                    .ok_or(ApplyError::UnknownBroker(*broker_id))?;
                if broker.epoch != *epoch {
                    return Err(ApplyError::StaleBrokerEpoch(*broker_id, *epoch));
                }
                broker.offline_replicas = replicas.iter().copied().collect();
            }
            MetadataRecord::FenceBroker { broker_id, epoch }
            | MetadataRecord::UnfenceBroker { broker_id, epoch } => {
                let broker = self
                    .brokers
                    .get_mut(broker_id)
                    .ok_or(ApplyError::UnknownBroker(*broker_id))?;
                if broker.epoch != *epoch {
                    return Err(ApplyError::StaleBrokerEpoch(*broker_id, *epoch));
                }
                broker.fenced = matches!(record, MetadataRecord::FenceBroker { .. });
            }
            MetadataRecord::Topic { name, topic_id } => {
                if self.topics.contains_key(name) || self.names.contains_key(topic_id) {
                    return Err(ApplyError::TopicExists(name.clone()));
                }
                self.names.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: Vec::new(),
                        configs: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
            } => {
                let topic = self.topic_mut(*topic_id)?;
                if *partition as usize != topic.partitions.len() {
                    return Err(ApplyError::PartitionOutOfOrder(*topic_id, *partition));
                }
                topic.partitions.push(PartitionImage {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                });
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                ..
            } => {
                let topic = self.topic_mut(*topic_id)?;
                let state = usize::try_from(*partition)
                    .ok()
                    .and_then(|p| topic.partitions.get_mut(p))
                    .ok_or(ApplyError::UnknownPartition(*topic_id, *partition))?;
                state.apply_change(record);
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let configs = match resource {
                    ConfigResource::Topic(topic) => {
                        &mut self
                            .topics
                            .get_mut(topic)
                            .ok_or(ApplyError::UnknownTopicId(0))?
                            .configs
                    }
                    ConfigResource::Broker(id) => self.broker_configs.entry(*id).or_default(),
                };
                match value {
                    Some(value) => configs.insert(name.clone(), value.clone()),
                    None => configs.remove(name),
                };
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let name = self
                    .names
                    .remove(topic_id)
                    .ok_or(ApplyError::UnknownTopicId(*topic_id))?;
                self.topics.remove(&name);
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                if *next_producer_id < self.next_producer_id {
                    return Err(ApplyError::ProducerIdsBackwards);
                }
                self.next_producer_id = *next_producer_id;
            }
            MetadataRecord::UserScramCredential(credential) => {
                self.scram_credentials
                    .entry(credential.name.clone())
                    .or_default()
                    .insert(credential.mechanism, credential.clone());
            }
            MetadataRecord::Acl(acl) => {
                self.acls.insert(acl.clone());
                self.acls_changed_at = index;
            }
            MetadataRecord::RemoveAcl(acl) => {
                self.acls.remove(acl);
                self.acls_changed_at = index;
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                if let Some(user) = self.scram_credentials.get_mut(name) {
                    user.remove(mechanism);
                    if user.is_empty() {
                        self.scram_credentials.remove(name);
                    }
                }
            }
        }
        Ok(())
    }

    /// The image as snapshot bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataImage, serde_json::Error> {
        if bytes.is_empty() {
            return Ok(MetadataImage::default());
        }
        serde_json::from_slice(bytes)
    }
}
