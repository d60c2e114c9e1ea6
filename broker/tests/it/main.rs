//! Broker integration tests: the real `broker` binary on a free loopback
//! port with a temp data dir, driven over the Kafka protocol.

mod admin_apis;
mod client;
mod cores;
mod groups;
mod harness;
mod kafka_order;
mod layers;
mod produce_fetch;
mod replica_answers;
mod restart;
mod robustness;
mod topic_configs;
mod topics;
