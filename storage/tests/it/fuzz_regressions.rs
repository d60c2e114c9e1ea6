//! Inputs that once crashed a decoder (found by scripts/fuzz-storage.sh),
//! replayed through the same calls as the fuzz target.

use storage::batch::{
    assign_offsets, check_stored, first_record_at_or_after, validate_produced, BatchScan,
};
use storage::index::{OffsetIndex, TimeIndex};

fn replay(data: &[u8]) {
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
}

#[test]
fn regression_fuzz_record_offset_delta_overflow() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir).expect("regression dir") {
        let path = entry.expect("entry").path();
        replay(&std::fs::read(&path).expect("read input"));
        replayed += 1;
    }
    assert!(replayed >= 2);
}
