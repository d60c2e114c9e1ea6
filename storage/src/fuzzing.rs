//! The bodies shared by the cargo-fuzz targets (storage/fuzz), the replay
//! of the inputs they once crashed on (tests/it/fuzz_regressions.rs), and
//! the short seeded run CI gives each (the tests below).

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

/// Feeds `data` to the parsers of the partition dir's text files: the
/// recovery-point checkpoint, the cleaner's checkpoint, the
/// leader-epoch checkpoint. None may panic; what parses must be sane.
pub fn decode_checkpoints(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(checkpoint) = crate::checkpoint::parse(&text, std::path::Path::new("fuzz")) {
        assert!(checkpoint.recovery_point >= 0 && checkpoint.log_start_offset >= 0);
    }
    let _ = crate::checkpoint::parse_cleaner(&text);
    let _ = crate::epochs::LeaderEpochs::parse_checkpoint(&text);
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

/// The short run CI gives a fuzz body (the crates' `fuzzing` tests): `cases`
/// inputs from a fixed `seed`, most of them a valid sample with up to 8
/// bytes overwritten and then cut or extended, the rest arbitrary bytes.
/// No coverage guidance: cargo-fuzz does the long runs (scripts/fuzz.sh).
pub fn short_run(samples: &[Vec<u8>], cases: usize, seed: u64, mut body: impl FnMut(&[u8])) {
    // xorshift64*: deterministic, no dependency.
    let mut state = seed.max(1);
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for case in 0..cases {
        let bytes = if samples.is_empty() || case % 5 == 4 {
            let len = (next() % 512) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            let mut bytes = samples[(next() % samples.len() as u64) as usize].clone();
            if !bytes.is_empty() {
                for _ in 0..next() % 9 {
                    let at = (next() % bytes.len() as u64) as usize;
                    bytes[at] = next() as u8;
                }
                match next() % 4 {
                    0 => bytes.truncate((next() % bytes.len() as u64) as usize),
                    1 => bytes.extend((0..next() % 64).map(|_| next() as u8)),
                    _ => {}
                }
            }
            bytes
        };
        body(&bytes);
    }
}

/// Writes `samples` as the seed corpus of cargo-fuzz target `target`
/// (`$SLUICE_FUZZ_SEEDS/<target>/seed-<n>`) when SLUICE_FUZZ_SEEDS is set
/// (scripts/fuzz.sh sets it and runs the short-run tests); otherwise does
/// nothing. The long runs start from the same valid inputs as CI's.
pub fn write_seeds(target: &str, samples: &[Vec<u8>]) {
    let Some(root) = std::env::var_os("SLUICE_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::Path::new(&root).join(target);
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        samples
            .iter()
            .enumerate()
            .try_for_each(|(n, sample)| std::fs::write(dir.join(format!("seed-{n}")), sample))
    });
    if let Err(error) = written {
        panic!("seed corpus {}: {error}", dir.display());
    }
}

/// Cases per fuzz body in CI's short run.
pub const SHORT_RUN_CASES: usize = 5000;
/// The short run's seed (a failure names it; change it only on purpose).
pub const SHORT_RUN_SEED: u64 = 20_261_204;

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_samples() -> Vec<Vec<u8>> {
        let plain = crate::batch::build_batch(&[b"a", b"bb", b""], 1_700_000_000_000);
        let mut two = plain.clone();
        two.extend_from_slice(&crate::batch::build_batch(&[b"c"], 1_700_000_000_001));
        let records: [crate::compact::KeyValue<'_>; 3] = [
            (Some(b"k1"), Some(b"v1")),
            (Some(b"k2"), None),
            (None, Some(b"v3")),
        ];
        // Every codec: the inflaters read what a mutation leaves of them.
        let compressed = (1..=4)
            .map(|codec| crate::compact::build_keyed_batch(&records, 1_700_000_000_000, codec));
        [plain, two].into_iter().chain(compressed).collect()
    }

    #[test]
    fn short_run_of_batches_and_indexes() {
        write_seeds("batch_parse", &batch_samples());
        short_run(
            &batch_samples(),
            SHORT_RUN_CASES,
            SHORT_RUN_SEED,
            decode_everything,
        );
    }

    #[test]
    fn short_run_of_checkpoints() {
        let samples = [
            &b"0\n12 3\n"[..],
            b"0\n40\n2\n0 1700000000000 20\n20 1700000000001 40\n",
            b"0\n2\n0 0\n3 17\n",
        ]
        .map(<[u8]>::to_vec);
        write_seeds("checkpoint_parse", &samples);
        short_run(
            &samples,
            SHORT_RUN_CASES,
            SHORT_RUN_SEED,
            decode_checkpoints,
        );
    }
}
