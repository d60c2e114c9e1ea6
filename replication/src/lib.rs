//! Kafka's ISR replication decisions for one partition, free of I/O: what a
//! leader learns from its followers' fetches (their log ends, when each was
//! last caught up), the high watermark that follows from it, when to ask
//! the controller to shrink or expand the ISR, whether a follower's log has
//! diverged from the leader's, and where a follower truncates to. The
//! broker keeps one of these per partition on the partition's core and
//! does the I/O around it (fetches, appends, controller calls); the
//! simulation in tests/ drives it with thousands of seeded schedules.
//!
//! Kafka's names throughout: log end offset (LEO), high watermark (HW),
//! in-sync replicas (ISR), leader epoch, partition epoch.

mod divergence;
mod leader;

pub use divergence::{diverging_epoch, truncation_offset, EpochEnd, UNDEFINED_EPOCH_END};
pub use leader::{IsrChange, LeaderState, NotAReplica};
