//! The one body shared by the cargo-fuzz target (storage/fuzz) and the replay
//! of the inputs it once crashed on (tests/it/fuzz_regressions.rs).

use crate::batch::{check_stored, first_record_at_or_after, BatchScan, ProducedBatch};
use crate::index::{OffsetIndex, TimeIndex};

/// Feeds `data` to every decoder of stored and produced batches, the
/// cleaner's record walk and re-encoding, and the index parsers; none may
/// panic, a batch `ProducedBatch::new` accepts must keep a valid CRC through
/// an offset and LogAppendTime rewrite, and a stored batch the cleaner can
/// read must re-encode (every other record kept) into a valid batch holding
/// exactly those records.
pub fn decode_everything(data: &[u8]) {
    let mut scan = BatchScan::new(data);
    while let Ok((_, batch)) = scan.next_batch() {
        clean_one(batch);
    }
    let _ = first_record_at_or_after(data, 0, i64::MIN);
    let _ = OffsetIndex::from_bytes(data, u64::MAX);
    let _ = TimeIndex::from_bytes(data);
    if let Ok(batch) = ProducedBatch::new(bytes::BytesMut::from(data)) {
        let assigned = batch.assign_offsets(12345, Some(1), 9);
        assert!(
            check_stored(&assigned.bytes).is_ok(),
            "valid batch broken by rewrite"
        );
    }
}

/// The cleaner's view of one stored batch, inflating at most 1 MiB.
fn clean_one(batch: &[u8]) {
    let Ok(header) = crate::batch::BatchHeader::parse(batch) else {
        return;
    };
    let Ok((payload, xerial)) = crate::compact::records_payload(batch, 1 << 20) else {
        return;
    };
    let mut kept = Vec::new();
    let mut offsets = Vec::new();
    let mut index = 0usize;
    let walked = crate::compact::for_each_record(header, &payload, |record| {
        if index.is_multiple_of(2) {
            kept.push(record.bytes);
            offsets.push(record.offset);
        }
        index += 1;
    });
    if walked.is_err() {
        return;
    }
    let Ok(rebuilt) = crate::compact::rebuild(batch, &kept, xerial) else {
        return;
    };
    let stored = check_stored(&rebuilt).expect("a rebuilt batch is valid");
    assert_eq!(
        stored.last_offset(),
        header.last_offset(),
        "offset range kept"
    );
    let Ok((payload, _)) = crate::compact::records_payload(&rebuilt, 2 << 20) else {
        panic!("a rebuilt batch inflates");
    };
    let mut again = Vec::new();
    crate::compact::for_each_record(stored, &payload, |record| again.push(record.offset))
        .expect("a rebuilt batch walks");
    assert_eq!(again, offsets, "exactly the kept records");
}
