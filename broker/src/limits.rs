//! Bounds of the broker that are not (yet) Kafka-named settings.

/// Requests of one connection being handled or waiting to be answered.
/// Kafka clients default to 5 in flight; the writer answers in order.
pub const CONNECTION_REQUESTS_IN_FLIGHT_MAX: usize = 16;

/// Consumer groups one core coordinates.
pub const GROUPS_PER_CORE_MAX: usize = 100_000;
/// Protocols (assignors) one member may offer in JoinGroup.
pub const GROUP_PROTOCOLS_MAX: usize = 32;
/// Bytes of one protocol's subscription metadata in JoinGroup.
pub const GROUP_PROTOCOL_METADATA_BYTES_MAX: usize = 1024 * 1024;
/// Bytes of one member's assignment in the leader's SyncGroup.
pub const GROUP_ASSIGNMENT_BYTES_MAX: usize = 1024 * 1024;
/// (client id, reason) pairs of refused requests one core remembers as
/// already logged (refusals.rs); when full the set starts afresh.
pub const REFUSALS_LOGGED_PER_CORE_MAX: usize = 1024;
/// Characters of a client id or a reason kept in that set.
pub const REFUSAL_KEY_CHARS_MAX: usize = 256;
