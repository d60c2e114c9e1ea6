//! Storage integration tests: one binary, one module per subject.

mod background_flush;
mod broker_contract;
mod cancellation;
mod common;
mod compaction;
mod core_memory;
mod corruption;
mod crash;
mod fuzz_regressions;
mod log_basics;
mod model;
mod read_buffers;
mod replicated;
mod retention;
