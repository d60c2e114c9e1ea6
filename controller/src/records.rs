//! What the metadata log holds: Kafka's `__cluster_metadata` record kinds
//! (RegisterBrokerRecord, FenceBrokerRecord, TopicRecord, PartitionRecord,
//! PartitionChangeRecord, ConfigRecord, RemoveTopicRecord,
//! ProducerIdsRecord, UserScramCredentialRecord, AccessControlEntryRecord), one Raft entry holding the records of one controller
//! decision so they commit atomically. Encoded as JSON: the log is small,
//! written rarely, and readable with `jq` when something goes wrong.

use crate::acl::AclBinding;
use serde::{Deserialize, Serialize};

/// A topic's id: a random (version 4) UUID, as Kafka's TopicRecord holds.
pub type TopicId = u128;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Listener name, e.g. `PLAINTEXT`.
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// A broker's dynamic config; -1 is the cluster-wide default.
    Broker(i32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re-)registered; it starts fenced. Its broker epoch is the
    /// log index of this record.
    RegisterBroker {
        broker_id: i32,
        incarnation: u128,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    FenceBroker {
        broker_id: i32,
        epoch: u64,
    },
    UnfenceBroker {
        broker_id: i32,
        epoch: u64,
    },
    /// The replicas (topic, partition) the broker's process at `epoch`
    /// cannot serve, their log directory having failed (Kafka's offline
    /// log dirs, KIP-858, by partition): the whole set, replacing the last
    /// one. None of them may lead or join an ISR until it registers again.
    OfflineReplicas {
        broker_id: i32,
        epoch: u64,
        replicas: Vec<(TopicId, i32)>,
    },
    Topic {
        name: String,
        topic_id: TopicId,
    },
    /// A new partition; leader epoch and partition epoch start at 0.
    Partition {
        topic_id: TopicId,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
    },
    /// A change of leader (-1: none), ISR, or replica assignment (a
    /// reassignment starting, completing or cancelled; KIP-455). A new
    /// leader bumps the leader epoch, and so does a replica list that drops
    /// a replica (the replicas leaving are fenced); every change bumps the
    /// partition epoch (Kafka's rules). `None`: unchanged; the fields after
    /// `isr` are absent from older entries.
    PartitionChange {
        topic_id: TopicId,
        partition: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<Vec<i32>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adding_replicas: Option<Vec<i32>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removing_replicas: Option<Vec<i32>>,
    },
    /// `value: None` removes the override.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    RemoveTopic {
        topic_id: TopicId,
    },
    /// The next producer id block starts at `next_producer_id`; the block
    /// before it is the broker's.
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
    /// A user's SCRAM credential for one mechanism (Kafka's
    /// UserScramCredentialRecord): salt, StoredKey and ServerKey (RFC
    /// 5802), never the password nor the salted password.
    UserScramCredential(ScramCredential),
    RemoveUserScramCredential {
        name: String,
        /// Kafka's ScramMechanism code: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
        mechanism: i8,
    },
    /// An ACL (Kafka's AccessControlEntryRecord); the binding is its own
    /// identity, so creating an existing one changes nothing.
    Acl(AclBinding),
    /// Kafka's RemoveAccessControlEntryRecord.
    RemoveAcl(AclBinding),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub name: String,
    /// Kafka's ScramMechanism code: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
    pub mechanism: i8,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

#[derive(Debug, thiserror::Error)]
#[error("undecodable metadata entry: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

impl MetadataRecord {
    /// A PartitionChange of leader and ISR only (the replica assignment
    /// unchanged).
    pub fn leader_isr_change(
        topic_id: TopicId,
        partition: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
    ) -> MetadataRecord {
        MetadataRecord::PartitionChange {
            topic_id,
            partition,
            leader,
            isr,
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        }
    }
}

pub fn encode(records: &[MetadataRecord]) -> Vec<u8> {
    // Serializing plain data structs to a Vec cannot fail.
    serde_json::to_vec(records).unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Result<Vec<MetadataRecord>, DecodeError> {
    if bytes.is_empty() {
        // Raft's own empty entries (a new leader's first entry).
        return Ok(Vec::new());
    }
    Ok(serde_json::from_slice(bytes)?)
}

/// A random version-4 UUID (RFC 4122 variant), Kafka's topic id shape.
pub fn random_topic_id(rng: &mut impl rand::Rng) -> TopicId {
    let mut id: u128 = rng.gen();
    id &= !(0xF000u128 << 64) & !(0xC000u128 << 48);
    id |= (0x4000u128 << 64) | (0x8000u128 << 48);
    // Kafka reserves the zero id and ids whose first 8 bytes are 0.
    if id >> 64 == 0 {
        id |= 1u128 << 127;
    }
    id
}
