//! Arbitrary bytes as `__consumer_offsets` records (see
//! broker::fuzzing::offsets_records).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| broker::fuzzing::offsets_records(data));
