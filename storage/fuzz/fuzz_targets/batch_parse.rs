//! Feeds arbitrary bytes to every decoder of stored and produced batches and
//! to the index parsers; none may panic, and anything `validate_produced`
//! accepts must survive an offset rewrite with its CRC still valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::batch::{assign_offsets, check_stored, first_record_at_or_after, validate_produced, BatchScan};
use storage::index::{OffsetIndex, TimeIndex};

fuzz_target!(|data: &[u8]| {
    let mut scan = BatchScan::new(data);
    while scan.next_batch().is_ok() {}
    let _ = first_record_at_or_after(data, 0, i64::MIN);
    let _ = OffsetIndex::from_bytes(data, u64::MAX);
    let _ = TimeIndex::from_bytes(data);
    if validate_produced(data, 1 << 20).is_ok() {
        let mut copy = data.to_vec();
        assign_offsets(&mut copy, 12345, Some(1)).expect("valid batch takes offsets");
        check_stored(&copy).expect("still valid after rewrite");
    }
});
