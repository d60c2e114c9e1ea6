//! Log compaction (`Log::clean`): what survives a cleaning pass, offsets,
//! gaps, codecs, the tail cache, crash safety of the swap, and a model-based
//! property test.

use crate::common::{produced, read_all, run};
use proptest::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use storage::batch::{build_batch, BatchHeader};
use storage::compact::{build_keyed_batch, decode_records, KeyValue};
use storage::{CleanOptions, CleanupPolicy, CoreMemory, Faults, Log, LogConfig, LogOptions};

const T0: i64 = 1_700_000_000_000;
const COMPACT: CleanupPolicy = CleanupPolicy {
    delete: false,
    compact: true,
};

/// (offset, key, value); None is null.
type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_policy: COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 10_000,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn options(config: LogConfig) -> LogOptions {
    LogOptions {
        config,
        memory: CoreMemory::new(64 << 20),
        faults: Rc::new(Faults::default()),
        log_dir: storage::LogDirHealth::new(std::path::Path::new("")),
    }
}

async fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, options(config)).await.expect("open").0
}

/// Appends one batch of `records` (key, value) with `codec`; the high
/// watermark follows the log end, as a leader's does. Returns the base.
async fn put_codec(log: &Log, records: &[(&str, Option<&str>)], codec: i16) -> i64 {
    let kv: Vec<KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes)))
        .collect();
    let info = log
        .append(produced(&build_keyed_batch(&kv, T0, codec)))
        .await
        .expect("append");
    log.set_high_watermark(log.log_end_offset());
    info.base_offset
}

async fn put(log: &Log, records: &[(&str, Option<&str>)]) -> i64 {
    put_codec(log, records, 0).await
}

async fn records(log: &Log) -> Vec<Rec> {
    read_all(log, log.log_start_offset())
        .await
        .iter()
        .flat_map(|b| decode_records(b).expect("stored batch decodes"))
        .collect()
}

fn rec(offset: i64, key: &str, value: Option<&str>) -> Rec {
    (
        offset,
        Some(key.as_bytes().to_vec()),
        value.map(|v| v.as_bytes().to_vec()),
    )
}

#[test]
fn latest_value_per_key_survives_with_offsets_unchanged() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path(), compact_config()).await;
        put(&log, &[("a", Some("a1")), ("b", Some("b1"))]).await;
        put(&log, &[("a", Some("a2"))]).await;
        put(&log, &[("c", Some("c1")), ("b", Some("b2"))]).await;
        log.roll().await.expect("roll");
        put(&log, &[("a", Some("a3"))]).await;
        let report = log.clean(T0 + 1000).await.expect("clean");
        assert!(report.ran, "{report:?}");
        assert_eq!(report.records_removed, 3, "{report:?}");
        assert_eq!(report.clean_point, 5, "the sealed segment ends at 5");
        let expected = vec![
            rec(3, "c", Some("c1")),
            rec(4, "b", Some("b2")),
            rec(5, "a", Some("a3")),
        ];
        assert_eq!(records(&log).await, expected);
        // Offsets in the gap [0, 3) read the next batch at or after them.
        for offset in 0..3 {
            let read = log.read(offset, 1).await.expect("read in the gap");
            let first = read.batches().next().expect("a batch");
            assert_eq!(BatchHeader::parse(first).expect("header").base_offset(), 3);
        }
        assert_eq!(log.log_start_offset(), 0);
        assert_eq!(log.log_end_offset(), 6);
        log.close().await.expect("close");
        let log = open(dir.path(), compact_config()).await;
        assert_eq!(records(&log).await, expected, "after reopen");
        drop(log); // a crash: the scan of an untrusted segment meets the gap
        std::fs::remove_file(dir.path().join("recovery-point.checkpoint")).expect("rm");
        let (log, report) = Log::open(dir.path(), options(compact_config()))
            .await
            .expect("reopen");
        assert!(report.segments.iter().all(|s| !s.corrupt), "{report:?}");
        assert_eq!(records(&log).await, expected, "after a scan");
    });
}

/// A pass re-reads the cleaned start of the log; a segment that loses
/// nothing keeps its file (checked by inode).
#[test]
fn segment_with_nothing_to_remove_keeps_its_file() {
    use std::os::unix::fs::MetadataExt;
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path(), compact_config()).await;
        put(&log, &[("a", Some("a1")), ("b", Some("b1"))]).await;
        log.roll().await.expect("roll");
        put(&log, &[("c", Some("c1"))]).await;
        put(&log, &[("c", Some("c2"))]).await;
        log.roll().await.expect("roll");
        let inode = |base: i64| {
            let path = dir.path().join(format!("{base:020}.log"));
            std::fs::metadata(path).expect("stat").ino()
        };
        let (first, second) = (inode(0), inode(2));
        let report = log.clean(T0 + 1000).await.expect("clean");
        assert_eq!(
            (report.segments_read, report.segments_rewritten),
            (2, 1),
            "{report:?}"
        );
        assert_eq!(inode(0), first, "nothing to remove: not rewritten");
        assert_ne!(inode(2), second, "c1 went");
    });
}

#[test]
fn active_segment_is_never_cleaned() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path(), compact_config()).await;
        put(&log, &[("a", Some("a1"))]).await;
        log.roll().await.expect("roll");
        put(&log, &[("b", Some("b1"))]).await;
        put(&log, &[("b", Some("b2"))]).await;
        put(&log, &[("a", Some("a2"))]).await;
        let active_before = read_all(&log, 1).await;
        let report = log.clean(T0 + 1000).await.expect("clean");
        assert!(report.ran);
        // a1 goes (a later a2 in the active segment), b1 stays: the active
        // segment is not rewritten.
        assert_eq!(read_all(&log, 1).await, active_before);
        assert_eq!(
            records(&log).await,
            vec![
                rec(1, "b", Some("b1")),
                rec(2, "b", Some("b2")),
                rec(3, "a", Some("a2"))
            ]
        );
        assert_eq!(log.segment_base_offsets(), vec![0, 1]);
    });
}

#[test]
fn tombstone_kept_then_dropped_after_delete_retention() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path(), compact_config()).await;
        put(&log, &[("a", Some("a1"))]).await;
        put(&log, &[("a", None)]).await;
        put(&log, &[("b", Some("b1"))]).await;
        log.roll().await.expect("roll");
        assert!(log.clean(T0 + 1).await.expect("clean").ran);
        let kept = vec![rec(1, "a", None), rec(2, "b", Some("b1"))];
        assert_eq!(records(&log).await, kept, "the tombstone is kept");
        put(&log, &[("c", Some("c1"))]).await;
        log.roll().await.expect("roll");
        assert!(log.clean(T0 + 5_000).await.expect("clean").ran);
        let mut kept = kept;
        kept.push(rec(3, "c", Some("c1")));
        assert_eq!(records(&log).await, kept, "before delete.retention.ms");
        // The first-cleaned time survives a reopen (cleaner checkpoint).
        log.close().await.expect("close");
        let log = open(dir.path(), compact_config()).await;
        put(&log, &[("d", Some("d1"))]).await;
        log.roll().await.expect("roll");
        assert!(log.clean(T0 + 1 + 10_000).await.expect("clean").ran);
        assert_eq!(
            records(&log).await,
            vec![
                rec(2, "b", Some("b1")),
                rec(3, "c", Some("c1")),
                rec(4, "d", Some("d1"))
            ],
            "after delete.retention.ms the tombstone goes"
        );
    });
}

/// A truncation below the clean point: the records that grow back past the
/// cut are dirty again and their segment's first-cleaned time is void.
/// Fails if the cleaner ignores the truncation (the stale clean point keeps
/// k1 out of the key map, so k1 stays); with the segment's stale
/// first-cleaned time also trusted, the tombstone went and k1 came back.
#[test]
fn truncation_below_the_clean_point_forgets_what_was_cleaned() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path(), compact_config()).await;
        put(&log, &[("a", Some("a1"))]).await;
        put(&log, &[("a", None)]).await;
        put(&log, &[("b", Some("b1"))]).await;
        log.roll().await.expect("roll");
        assert_eq!(log.clean(T0 + 1).await.expect("clean").clean_point, 3);
        log.truncate_to(1).await.expect("truncate");
        put(&log, &[("k", Some("k1"))]).await;
        put(&log, &[("k", None)]).await;
        put(&log, &[("z", Some("z1"))]).await;
        log.roll().await.expect("roll");
        assert!(log.clean(T0 + 20_000).await.expect("clean").ran);
        assert_eq!(
            records(&log).await,
            vec![rec(2, "k", None), rec(3, "z", Some("z1"))],
            "k1 must not outlive its tombstone"
        );
    });
}

#[test]
fn compressed_batches_are_rewritten_with_their_codec() {
    for codec in 1..=4i16 {
        run(async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = open(dir.path(), compact_config()).await;
            let many = [("a", Some("a1")), ("b", Some("b1")), ("c", Some("c1"))];
            put_codec(&log, &many, codec).await;
            put_codec(&log, &[("a", Some("a2"))], codec).await;
            log.roll().await.expect("roll");
            put(&log, &[("z", Some("z1"))]).await;
            let report = log.clean(T0 + 1000).await.expect("clean");
            assert_eq!(report.records_removed, 1, "codec {codec}: {report:?}");
            let batches = read_all(&log, 0).await;
            let header = BatchHeader::parse(&batches[0]).expect("header");
            assert_eq!(header.compression(), codec, "same codec");
            assert_eq!(header.base_offset(), 0);
            assert_eq!(header.last_offset_delta.get(), 2, "offset range kept");
            assert_eq!(
                records(&log).await,
                vec![
                    rec(1, "b", Some("b1")),
                    rec(2, "c", Some("c1")),
                    rec(3, "a", Some("a2")),
                    rec(4, "z", Some("z1"))
                ],
                "codec {codec}"
            );
        });
    }
}

#[test]
fn keyless_records_are_dropped_when_a_log_turns_compacted() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path(), LogConfig::default()).await;
        log.append(produced(&build_batch(&[b"v0", b"v1"], T0)))
            .await
            .expect("append");
        put(&log, &[("k", Some("k1"))]).await;
        log.roll().await.expect("roll");
        assert!(!log.clean(T0).await.expect("clean").ran, "delete policy");
        assert_eq!(records(&log).await.len(), 3);
        log.set_config(compact_config());
        assert!(log.clean(T0 + 1000).await.expect("clean").ran);
        assert_eq!(records(&log).await, vec![rec(2, "k", Some("k1"))]);
    });
}

/// Fails without the cache drop in the swap: reads of offset 0 were served
/// from the tail cache's pre-clean batches.
#[test]
fn cleaning_drops_the_tail_cache_of_cleaned_segments() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path(), compact_config()).await;
        put(&log, &[("a", Some("a1"))]).await;
        put(&log, &[("a", Some("a2"))]).await;
        log.roll().await.expect("roll");
        assert_eq!(log.cache_start_offset(), 0, "sealed batches still cached");
        assert!(log.clean(T0 + 1000).await.expect("clean").ran);
        assert!(log.cache_start_offset() >= 2);
        assert_eq!(records(&log).await, vec![rec(1, "a", Some("a2"))]);
    });
}

#[test]
fn min_compaction_lag_and_dirty_ratio_decide_when_to_clean() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            min_compaction_lag_ms: 60_000,
            min_cleanable_dirty_ratio: 0.5,
            max_compaction_lag_ms: 600_000,
            ..compact_config()
        };
        let log = open(dir.path(), config).await;
        put(&log, &[("a", Some(&"1".repeat(500)))]).await;
        put(&log, &[("a", Some(&"2".repeat(500)))]).await;
        log.roll().await.expect("roll");
        let report = log.clean(T0 + 1_000).await.expect("clean");
        assert!(!report.ran, "records newer than the lag stay: {report:?}");
        assert_eq!(records(&log).await.len(), 2);
        assert!(log.clean(T0 + 61_000).await.expect("clean").ran);
        assert_eq!(records(&log).await.len(), 1);
        // A small dirty segment: ratio below 0.5, not cleaned...
        put(&log, &[("b", Some("b"))]).await;
        put(&log, &[("b", Some("c"))]).await;
        log.roll().await.expect("roll");
        let report = log.clean(T0 + 61_000).await.expect("clean");
        assert!(!report.ran && report.dirty_ratio < 0.5, "{report:?}");
        // ...until its first record is older than max.compaction.lag.ms.
        assert!(log.clean(T0 + 600_001).await.expect("clean").ran);
        assert_eq!(records(&log).await.len(), 2);
    });
}

#[test]
fn small_key_map_cleans_in_several_passes() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path(), compact_config()).await;
        let mut expected = HashMap::new();
        for round in 0..4 {
            for key in ["k0", "k1", "k2", "k3", "k4"] {
                let value = format!("{key}-{round}");
                let offset = put(&log, &[(key, Some(&value))]).await;
                expected.insert(key, (offset, value));
            }
            log.roll().await.expect("roll");
        }
        // Room for two keys per pass.
        let options = CleanOptions {
            key_map_bytes_max: 2 * (2 + 48),
        };
        let mut passes = 0;
        loop {
            let report = log.clean_with(T0 + 1000, options).await.expect("clean");
            if !report.ran {
                break;
            }
            passes += 1;
            assert!(report.keys <= 2, "{report:?}");
            assert_eq!(report.map_full, report.clean_point < 20, "{report:?}");
            assert!(passes < 20, "no progress: {report:?}");
        }
        assert!(passes >= 3, "{passes} passes");
        let mut want: Vec<Rec> = expected
            .iter()
            .map(|(k, (o, v))| rec(*o, k, Some(v)))
            .collect();
        want.sort();
        assert_eq!(records(&log).await, want);
    });
}

/// A pass runs in its own task while this one appends and reads from disk:
/// every read gives records exactly as written (a read that found the old
/// file keeps reading it), and afterwards each key's latest record is last.
#[test]
fn appends_and_reads_go_on_during_a_clean() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        // No tail cache: the reads go to the segment files being replaced.
        let options = LogOptions {
            memory: CoreMemory::new(0),
            ..options(compact_config())
        };
        let (log, _) = Log::open(dir.path(), options).await.expect("open");
        let mut written: HashMap<i64, Rec> = HashMap::new();
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        let write = |written: &mut HashMap<i64, Rec>,
                     latest: &mut HashMap<Vec<u8>, i64>,
                     offset: i64,
                     key: &str,
                     value: &str| {
            written.insert(offset, rec(offset, key, Some(value)));
            latest.insert(key.as_bytes().to_vec(), offset);
        };
        for i in 0..300 {
            let (key, value) = (format!("k{}", i % 7), format!("v{i}-{}", "x".repeat(100)));
            let offset = put(&log, &[(&key, Some(&value))]).await;
            write(&mut written, &mut latest, offset, &key, &value);
            if i % 60 == 59 {
                log.roll().await.expect("roll");
            }
        }
        let cleaner = {
            let log = log.clone();
            glommio::spawn_local(async move { log.clean(T0 + 1000).await }).detach()
        };
        for i in 300..340 {
            let (key, value) = (format!("k{}", i % 9), format!("v{i}"));
            let offset = put(&log, &[(&key, Some(&value))]).await;
            write(&mut written, &mut latest, offset, &key, &value);
            let stored = records(&log).await;
            for record in &stored {
                assert_eq!(
                    Some(record),
                    written.get(&record.0),
                    "read during the clean"
                );
            }
        }
        let report = cleaner.await.expect("task").expect("clean");
        assert!(report.ran && report.records_removed > 0, "{report:?}");
        check_model(&records(&log).await, &written, &latest);
    });
}

/// Under `compact,delete`, retention may delete a segment the pass is
/// rewriting: whichever comes first, no cleaner file is left and the log
/// reads consistently.
#[test]
fn retention_during_a_clean_leaves_no_cleaner_files() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            cleanup_policy: CleanupPolicy {
                delete: true,
                compact: true,
            },
            retention_ms: 1000,
            ..compact_config()
        };
        let log = open(dir.path(), config).await;
        for i in 0..200 {
            let value = format!("v{i}-{}", "x".repeat(200));
            put(&log, &[(["a", "b"][i % 2], Some(&value))]).await;
            if i % 50 == 49 {
                log.roll().await.expect("roll");
            }
        }
        let cleaner = {
            let log = log.clone();
            glommio::spawn_local(async move { log.clean(T0 + 1000).await }).detach()
        };
        // Let the pass run until it is writing its first `.cleaned` file.
        let cleaned = dir.path().join(format!("{:020}.cleaned", 0));
        let mut yields = 0;
        while !cleaned.exists() {
            yield_once().await;
            yields += 1;
            assert!(yields < 1_000_000, "the pass never wrote a .cleaned file");
        }
        let deleted = log
            .enforce_retention(T0 + 1_000_000)
            .await
            .expect("retention");
        assert!(deleted > 0);
        let report = cleaner.await.expect("task").expect("clean");
        assert_eq!(report.segments_rewritten, 0, "{report:?}");
        let leftovers: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let stored = records(&log).await;
        assert!(stored.iter().all(|r| r.0 >= log.log_start_offset()));
        log.close().await.expect("close");
        let log = open(dir.path(), LogConfig::default()).await;
        assert_eq!(records(&log).await, stored, "after reopen");
    });
}

/// The base offset is outside the CRC: a forward jump in it is corruption
/// in a log the cleaner never touched (no `cleaner-offset-checkpoint`), and
/// a gap the cleaner left in one it did.
#[test]
fn offset_gap_is_corruption_only_in_a_log_never_cleaned() {
    for cleaned in [false, true] {
        run(async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = open(dir.path(), compact_config()).await;
            for key in ["a", "b", "c"] {
                put(&log, &[(key, Some(key))]).await;
            }
            let sizes: Vec<usize> = read_all(&log, 0).await.iter().map(Vec::len).collect();
            drop(log); // a crash: the active segment is scanned on open
            let path = dir.path().join(format!("{:020}.log", 0));
            let mut bytes = std::fs::read(&path).expect("read");
            let at = sizes[0] + sizes[1]; // the third batch
            bytes[at..at + 8].copy_from_slice(&7i64.to_be_bytes());
            std::fs::write(&path, &bytes).expect("write");
            if cleaned {
                std::fs::write(dir.path().join("cleaner-offset-checkpoint"), "0\n0\n0\n")
                    .expect("write");
            }
            let (log, report) = Log::open(dir.path(), options(compact_config()))
                .await
                .expect("reopen");
            if cleaned {
                assert!(!report.segments[0].corrupt, "only padding cut: {report:?}");
                assert_eq!(log.log_end_offset(), 8);
            } else {
                assert!(report.segments[0].corrupt, "{report:?}");
                assert_eq!(log.log_end_offset(), 2);
            }
        });
    }
}

/// Gives the other tasks of the executor a turn.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// The broker may drop a cleaning call (shutdown, a timer): the pass goes
/// on in its own task and leaves the log cleaned, no `.cleaned` behind.
#[test]
fn dropped_clean_call_finishes_its_pass() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path(), compact_config()).await;
        for i in 0..100 {
            let value = format!("v{i}-{}", "x".repeat(500));
            put(&log, &[(["a", "b"][i % 2], Some(&value))]).await;
        }
        log.roll().await.expect("roll");
        assert!(crate::common::poll_once_then_drop(log.clean(T0 + 1000)));
        let mut yields = 0;
        while records(&log).await.len() > 2 {
            yield_once().await;
            yields += 1;
            assert!(yields < 100_000, "the dropped pass never finished");
        }
        assert_eq!(
            records(&log).await,
            vec![
                rec(98, "a", Some(&format!("v98-{}", "x".repeat(500)))),
                rec(99, "b", Some(&format!("v99-{}", "x".repeat(500))))
            ]
        );
        let cleaned = dir.path().join(format!("{:020}.cleaned", 0));
        assert!(!cleaned.exists());
    });
}

/// Copies the regular files of `from` into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("ls") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// The files of every step of the swap, as a crash would leave them: each
/// case starts from the log before the pass (`old`) and lays out segment 0
/// with the cleaned bytes (`new`) where that step had put them.
#[test]
fn crash_at_each_step_of_the_swap_leaves_a_readable_log() {
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// `.cleaned` half written.
        CleanedPartial,
        /// `.cleaned` complete, not yet renamed.
        CleanedComplete,
        /// Renamed to `.swap`; old `.log` and indexes still there.
        SwapBesideOld,
        /// `.swap`, old `.log`, old indexes already deleted.
        SwapIndexesGone,
        /// `.swap` renamed over `.log`, indexes not yet written.
        NewLogNoIndexes,
        /// `.swap`, and retention deleted the segment meanwhile.
        SwapWithoutLog,
    }
    for step in [
        Step::CleanedPartial,
        Step::CleanedComplete,
        Step::SwapBesideOld,
        Step::SwapIndexesGone,
        Step::NewLogNoIndexes,
        Step::SwapWithoutLog,
    ] {
        run(async move {
            let root = tempfile::tempdir().expect("tempdir");
            let (old, new, crashed) = (
                root.path().join("old"),
                root.path().join("new"),
                root.path().join("crashed"),
            );
            let log = open(&new, compact_config()).await;
            for i in 0..50 {
                let value = format!("v{i}");
                put(&log, &[(["a", "b", "c"][i % 3], Some(&value))]).await;
            }
            log.roll().await.expect("roll");
            put(&log, &[("d", Some("d"))]).await;
            let before = records(&log).await;
            log.close().await.expect("close");
            copy_dir(&new, &old);
            let log = open(&new, compact_config()).await;
            log.set_high_watermark(log.log_end_offset());
            assert!(log.clean(T0 + 1000).await.expect("clean").ran);
            let after = records(&log).await;
            log.close().await.expect("close");
            assert!(after.len() < before.len());
            copy_dir(&old, &crashed);
            // The pass writes its checkpoint (as it stood) before any
            // `.cleaned` file.
            std::fs::write(crashed.join("cleaner-offset-checkpoint"), "0\n0\n0\n").expect("write");
            let seg = |dir: &Path, suffix: &str| dir.join(format!("{:020}.{suffix}", 0));
            let cleaned_bytes = std::fs::read(seg(&new, "log")).expect("cleaned bytes");
            let active_only: Vec<Rec> = before.iter().filter(|r| r.0 >= 50).cloned().collect();
            let expected = match step {
                Step::CleanedPartial => {
                    let half = &cleaned_bytes[..cleaned_bytes.len() / 2];
                    std::fs::write(seg(&crashed, "cleaned"), half).expect("write");
                    &before
                }
                Step::CleanedComplete => {
                    std::fs::write(seg(&crashed, "cleaned"), &cleaned_bytes).expect("write");
                    &before
                }
                Step::SwapBesideOld => {
                    std::fs::write(seg(&crashed, "swap"), &cleaned_bytes).expect("write");
                    &after
                }
                Step::SwapIndexesGone => {
                    std::fs::write(seg(&crashed, "swap"), &cleaned_bytes).expect("write");
                    std::fs::remove_file(seg(&crashed, "index")).expect("rm");
                    std::fs::remove_file(seg(&crashed, "timeindex")).expect("rm");
                    &after
                }
                Step::NewLogNoIndexes => {
                    std::fs::write(seg(&crashed, "log"), &cleaned_bytes).expect("write");
                    std::fs::remove_file(seg(&crashed, "index")).expect("rm");
                    std::fs::remove_file(seg(&crashed, "timeindex")).expect("rm");
                    &after
                }
                Step::SwapWithoutLog => {
                    std::fs::write(seg(&crashed, "swap"), &cleaned_bytes).expect("write");
                    for suffix in ["log", "index", "timeindex"] {
                        std::fs::remove_file(seg(&crashed, suffix)).expect("rm");
                    }
                    &active_only
                }
            };
            let (log, report) = Log::open(&crashed, options(compact_config()))
                .await
                .expect("reopen");
            assert!(report.segments.iter().all(|s| !s.corrupt), "{step:?}");
            assert_eq!(&records(&log).await, expected, "{step:?}");
            for suffix in ["cleaned", "swap"] {
                assert!(!seg(&crashed, suffix).exists(), "{step:?}: .{suffix} left");
            }
            // The log goes on: it cleans again and reads the same as the
            // pass that completed.
            log.set_high_watermark(log.log_end_offset());
            log.clean(T0 + 2000).await.expect("clean");
            let again = if matches!(step, Step::SwapWithoutLog) {
                &active_only
            } else {
                &after
            };
            assert_eq!(&records(&log).await, again, "{step:?}");
        });
    }
}

// ---- the model-based property test ----

#[derive(Debug, Clone)]
enum Op {
    Put {
        keys: Vec<(u8, bool)>,
        value_bytes: usize,
    },
    Roll,
    Clean {
        advance_ms: i64,
    },
    Reopen,
    CrashReopen,
}

fn op() -> impl Strategy<Value = Op> {
    let record = (0u8..6, prop::bool::weighted(0.2));
    prop_oneof![
        8 => (prop::collection::vec(record, 1..4), 0usize..200)
            .prop_map(|(keys, value_bytes)| Op::Put { keys, value_bytes }),
        3 => Just(Op::Roll),
        4 => (0i64..4000).prop_map(|advance_ms| Op::Clean { advance_ms }),
        1 => Just(Op::Reopen),
        1 => Just(Op::CrashReopen),
    ]
}

fn model_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        delete_retention_ms: 3000,
        ..compact_config()
    }
}

/// What must hold of the log's records against everything written.
fn check_model(stored: &[Rec], written: &HashMap<i64, Rec>, latest: &HashMap<Vec<u8>, i64>) {
    let mut last_seen: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut previous = -1;
    for record in stored {
        assert!(record.0 > previous, "offsets increase");
        previous = record.0;
        assert_eq!(
            Some(record),
            written.get(&record.0),
            "a record keeps its offset and content"
        );
        let key = record.1.clone().expect("keyed");
        last_seen.insert(key, record.0);
    }
    for (key, offset) in latest {
        let tombstone = written[offset].2.is_none();
        match last_seen.get(key) {
            Some(seen) => assert_eq!(seen, offset, "key {key:?}: its latest record is last"),
            None => assert!(tombstone, "key {key:?}: only a tombstone may go"),
        }
    }
}

async fn apply(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), model_config()).await;
    let mut written: HashMap<i64, Rec> = HashMap::new();
    let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut now = T0;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Put { keys, value_bytes } => {
                let values: Vec<(String, Option<String>)> = keys
                    .iter()
                    .map(|(k, tomb)| {
                        let value = format!("{step}-{k}-{}", ".".repeat(value_bytes));
                        (format!("k{k}"), (!tomb).then_some(value))
                    })
                    .collect();
                let refs: Vec<(&str, Option<&str>)> = values
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_deref()))
                    .collect();
                let base = put(&log, &refs).await;
                for (i, (k, v)) in values.iter().enumerate() {
                    let offset = base + i as i64;
                    let record = (
                        offset,
                        Some(k.clone().into_bytes()),
                        v.clone().map(String::into_bytes),
                    );
                    written.insert(offset, record);
                    latest.insert(k.clone().into_bytes(), offset);
                }
            }
            Op::Roll => log.roll().await.expect("roll"),
            Op::Clean { advance_ms } => {
                now += advance_ms;
                let report = log.clean(now).await.expect("clean");
                if report.ran {
                    // Below the clean point nothing superseded is left.
                    for record in records(&log).await {
                        if record.0 < report.clean_point {
                            let key = record.1.clone().expect("keyed");
                            assert_eq!(
                                latest.get(&key),
                                Some(&record.0),
                                "superseded {record:?} kept"
                            );
                        }
                    }
                }
            }
            Op::Reopen => {
                log.close().await.expect("close");
                log = open(dir.path(), model_config()).await;
                log.set_high_watermark(log.log_end_offset());
            }
            Op::CrashReopen => {
                drop(log);
                let (reopened, report) = Log::open(dir.path(), options(model_config()))
                    .await
                    .expect("reopen");
                assert!(report.segments.iter().all(|s| !s.corrupt), "{report:?}");
                log = reopened;
                log.set_high_watermark(log.log_end_offset());
            }
        }
        check_model(&records(&log).await, &written, &latest);
    }
    // Finally everything is sealed and cleaned, then cleaned again
    // delete.retention.ms later: no tombstone is left.
    log.roll().await.expect("roll");
    now += 10_000;
    log.clean(now).await.expect("clean");
    let filler = put(&log, &[("filler", Some("f"))]).await;
    written.insert(filler, rec(filler, "filler", Some("f")));
    latest.insert(b"filler".to_vec(), filler);
    log.roll().await.expect("roll");
    now += model_config().delete_retention_ms;
    assert!(log.clean(now).await.expect("clean").ran);
    let stored = records(&log).await;
    check_model(&stored, &written, &latest);
    let tombstones: Vec<&Rec> = stored.iter().filter(|r| r.2.is_none()).collect();
    assert!(tombstones.is_empty(), "{tombstones:?}");
}

/// A stored-looking batch (valid length and CRC-32C) around `body`.
fn framed(body: &[u8], codec: i16, count: i32, delta: i32) -> Vec<u8> {
    let mut batch = build_keyed_batch(&[(Some(b"k"), Some(b"v"))], T0, 0);
    batch.truncate(61);
    batch.extend_from_slice(body);
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[21..23].copy_from_slice(&codec.to_be_bytes());
    batch[23..27].copy_from_slice(&delta.to_be_bytes());
    batch[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = storage::batch::compute_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
    /// Disk input with a valid CRC but any records, in any codec: the
    /// cleaner's decoders never panic and re-encode what they can read.
    #[test]
    fn random_records_never_panic_the_cleaner(
        body in prop::collection::vec(any::<u8>(), 0..300),
        codec in 0i16..6,
        count in -1i32..5,
        delta in 0i32..5,
    ) {
        storage::fuzzing::decode_everything(&framed(&body, codec, count, delta));
    }

    /// Well-formed records of any codec survive the fuzz body's checks.
    #[test]
    fn valid_keyed_batches_re_encode(
        records in prop::collection::vec((prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
                                          prop::option::of(prop::collection::vec(any::<u8>(), 0..40))), 1..8),
        codec in 0i16..5,
    ) {
        let kv: Vec<KeyValue<'_>> = records.iter().map(|(k, v)| (k.as_deref(), v.as_deref())).collect();
        let batch = build_keyed_batch(&kv, T0, codec);
        prop_assert!(decode_records(&batch).is_some());
        storage::fuzzing::decode_everything(&batch);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn compacted_log_keeps_each_keys_latest_record(ops in prop::collection::vec(op(), 1..40)) {
        run(apply(ops));
    }
}
