//! Arbitrary bytes as one request frame body (see broker::fuzzing::request).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| broker::fuzzing::request(data));
