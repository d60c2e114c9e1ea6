//! The one body shared by the cargo-fuzz target (storage/fuzz) and the replay
//! of the inputs it once crashed on (tests/it/fuzz_regressions.rs).

use crate::batch::{check_stored, first_record_at_or_after, BatchScan, ProducedBatch};
use crate::index::{OffsetIndex, TimeIndex};

/// Feeds `data` to every decoder of stored and produced batches and to the
/// index parsers; none may panic, and a batch `ProducedBatch::new` accepts
/// must keep a valid CRC through an offset and LogAppendTime rewrite.
pub fn decode_everything(data: &[u8]) {
    let mut scan = BatchScan::new(data);
    while scan.next_batch().is_ok() {}
    let _ = first_record_at_or_after(data, 0, i64::MIN);
    let _ = OffsetIndex::from_bytes(data, u64::MAX);
    let _ = TimeIndex::from_bytes(data);
    if let Ok(batch) = ProducedBatch::new(bytes::BytesMut::from(data)) {
        let assigned = batch.assign_offsets(12345, Some(1));
        assert!(
            check_stored(&assigned.bytes).is_ok(),
            "valid batch broken by rewrite"
        );
    }
}
