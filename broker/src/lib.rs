//! The Sluice broker as a library: the binary (main.rs) is its CLI, and the
//! fuzz target (broker/fuzz) drives `protocol::decode` directly.

pub mod admin;
pub mod api;
pub mod config;
pub mod connection;
pub mod core;
pub mod error;
pub mod errors;
pub mod fuzzing;
pub mod group;
pub mod inter_broker;
pub mod limits;
pub mod log_dirs;
pub mod membership;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod producer_state;
pub mod protocol;
pub mod refusals;
pub mod replica_fetcher;
pub mod request_room;
pub mod router;
mod runtime_timers;
pub mod security;
pub mod server;
pub mod shard;
pub mod tls_transport;
pub mod transport;
