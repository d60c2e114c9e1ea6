//! Bounds of the broker that are not (yet) Kafka-named settings.

/// Requests of one connection being handled or waiting to be answered.
/// Kafka clients default to 5 in flight; the writer answers in order.
pub const CONNECTION_REQUESTS_IN_FLIGHT_MAX: usize = 16;
