//! The controller quorum: cluster metadata (brokers, topics, partitions,
//! configs, producer-id blocks) as a log replicated with Raft among the
//! voters of `controller.quorum.voters`, KRaft's role in Kafka.
//!
//! Layers, bottom up: `acl` (Kafka's ACL bindings and filters) < `records` (what the log holds) and `image` (the state
//! they build, applied in log order, no I/O) < `placement`, `leadership`
//! (leader and ISR rules), `reassignment` (moving replicas, KIP-455) and
//! `decide` (what a request turns into, no I/O) < `store` (the durable Raft log and
//! snapshots) < `node` (one Raft member: RawNode + store + image, no
//! sockets, no clock) < `rpc` (frames between nodes) < `service` (the
//! controller thread: sockets, ticks, the handle brokers call).

pub mod acl;
pub mod decide;
pub mod fuzzing;
pub mod image;
pub mod leadership;
pub mod node;
pub mod placement;
pub mod reassignment;
pub mod records;
pub mod rpc;
pub mod service;
pub mod store;

pub use acl::{AclBinding, AclFilter};
pub use decide::{
    ControllerError, Election, ElectionError, ElectionOutcome, ItemError, NewTopic, PartitionError,
    PartitionState, Request, Response,
};
pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use leadership::{rebalance_leaders, unclean_election_enabled};
pub use reassignment::{OngoingReassignment, ReassignmentError, ReassignmentOutcome};
pub use records::{ConfigResource, Endpoint, MetadataRecord, ScramCredential, TopicId};
pub use service::{
    CommitLatency, Controller, ControllerConfig, ControllerTls, StartError, Update,
    COMMIT_LATENCY_BOUNDS_S,
};
pub use store::Durability;
