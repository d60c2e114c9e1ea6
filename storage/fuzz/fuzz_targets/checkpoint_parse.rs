//! Arbitrary bytes as the partition dir's checkpoint files (see
//! storage::fuzzing::decode_checkpoints for what must hold).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| storage::fuzzing::decode_checkpoints(data));
