//! The one body shared by the cargo-fuzz target (storage/fuzz) and the replay
//! of the inputs it once crashed on (tests/it/fuzz_regressions.rs).

use crate::batch::{
    assign_offsets, check_stored, first_record_at_or_after, validate_produced, BatchScan,
};
use crate::index::{OffsetIndex, TimeIndex};

/// Feeds `data` to every decoder of stored and produced batches and to the
/// index parsers; none may panic, and a batch `validate_produced` accepts
/// must keep a valid CRC through an offset and LogAppendTime rewrite.
pub fn decode_everything(data: &[u8]) {
    let mut scan = BatchScan::new(data);
    while scan.next_batch().is_ok() {}
    let _ = first_record_at_or_after(data, 0, i64::MIN);
    let _ = OffsetIndex::from_bytes(data, u64::MAX);
    let _ = TimeIndex::from_bytes(data);
    if validate_produced(data, 1 << 20).is_ok() {
        let mut copy = data.to_vec();
        assert!(assign_offsets(&mut copy, 12345, Some(1)).is_ok());
        assert!(check_stored(&copy).is_ok(), "valid batch broken by rewrite");
    }
}
