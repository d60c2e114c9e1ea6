//! Arbitrary bytes through every batch and index decoder (see
//! storage::fuzzing::decode_everything for what must hold).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| storage::fuzzing::decode_everything(data));
