//! Topics, partitions and their configs.

pub mod topics;
