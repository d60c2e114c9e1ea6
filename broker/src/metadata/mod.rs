//! Topics, partitions and their configs.

pub mod cluster;
pub mod topics;
