//! Arbitrary bytes through the controller's decoders: metadata records,
//! image snapshots, the Raft WAL, Raft and RPC messages (see
//! controller::fuzzing::metadata).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| controller::fuzzing::metadata(data));
