//! Arbitrary bytes as a producer-state snapshot file (see
//! broker::fuzzing::producer_snapshot).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| broker::fuzzing::producer_snapshot(data));
