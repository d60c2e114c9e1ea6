//! Offline inspection of segment files, like kafka-dump-log: `sluice log
//! dump <segment.log>` lists the batches; `sluice log verify <dir>` checks
//! every batch's CRC-32C and framing in every segment of a partition dir,
//! and the offset and time indexes against them, and reports where the
//! first bad batch starts. No broker needed (and none should be writing the files).

use crate::output::{self, Format};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use storage::batch::{BatchHeader, BatchScan, ScanEnd};

/// Zero padding the active segment may end in (O_DIRECT writes whole 4 KiB
/// pages; docs/storage-format.md).
const PADDING_BYTES_MAX: usize = 4095;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the batches of one segment file.
    #[command(
        after_help = "Examples:\n  sluice log dump data/orders-0/00000000000000000000.log\n  sluice log dump data/orders-0/00000000000000000000.log --format json"
    )]
    Dump { segment: PathBuf },
    /// Check every segment and index of a partition directory.
    #[command(after_help = "Example:\n  sluice log verify data/orders-0 && echo intact")]
    Verify { dir: PathBuf },
}

pub fn run(format: Format, command: Command) -> Result<()> {
    match command {
        Command::Dump { segment } => dump(format, &segment),
        Command::Verify { dir } => verify(format, &dir),
    }
}

struct Scanned {
    batches: Vec<Value>,
    records: u64,
    /// (file position, reason) of the first byte that is not a valid batch.
    bad: Option<(usize, String)>,
    /// Batch (position, base offset, last offset) in file order.
    positions: Vec<(usize, i64, i64)>,
}

fn scan(bytes: &[u8]) -> Scanned {
    let mut scan = BatchScan::new(bytes);
    let mut out = Scanned {
        batches: Vec::new(),
        records: 0,
        bad: None,
        positions: Vec::new(),
    };
    loop {
        match scan.next_batch() {
            Ok((position, batch)) => {
                let Ok(header) = BatchHeader::parse(batch) else {
                    break;
                };
                let count = header.records_count.get();
                out.records += count.max(0) as u64;
                out.positions
                    .push((position, header.base_offset(), header.last_offset()));
                out.batches.push(json!({
                    "position": position,
                    "base_offset": header.base_offset(),
                    "last_offset": header.last_offset(),
                    "records": count,
                    "bytes": batch.len(),
                    "max_timestamp": header.max_timestamp.get(),
                    "compression": header.compression(),
                    "producer_id": header.producer_id.get(),
                    "crc": format!("{:08x}", header.crc.get()),
                }));
            }
            Err(ScanEnd::Clean) => break,
            Err(ScanEnd::Incomplete { position }) => {
                let rest = &bytes[position..];
                if !(rest.len() <= PADDING_BYTES_MAX && rest.iter().all(|b| *b == 0)) {
                    out.bad = Some((
                        position,
                        format!("{} bytes that are not a whole batch", rest.len()),
                    ));
                }
                break;
            }
            Err(ScanEnd::Invalid { position, error }) => {
                out.bad = Some((position, error.to_string()));
                break;
            }
        }
    }
    out
}

fn dump(format: Format, segment: &Path) -> Result<()> {
    let bytes = std::fs::read(segment).with_context(|| format!("read {}", segment.display()))?;
    let scanned = scan(&bytes);
    let headers = [
        "position",
        "base_offset",
        "last_offset",
        "records",
        "bytes",
        "max_timestamp",
        "compression",
        "producer_id",
        "crc",
    ];
    let rows: Vec<Vec<Value>> = scanned
        .batches
        .iter()
        .map(|b| headers.iter().map(|h| b[*h].clone()).collect())
        .collect();
    output::rows(format, &headers, &rows);
    if let Some((position, reason)) = scanned.bad {
        bail!(
            "{}: first bad batch at byte {position}: {reason}",
            segment.display()
        );
    }
    Ok(())
}

fn segment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read dir {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    if logs.is_empty() {
        bail!(
            "{}: no .log segment files (not a partition dir?)",
            dir.display()
        );
    }
    Ok(logs)
}

/// Problems of an `.index` against the segment's batches: entries must be
/// sorted and point at the start of the batch holding their offset.
fn check_offset_index(path: &Path, base: i64, positions: &[(usize, i64, i64)]) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let mut previous = None;
    for (i, entry) in bytes.chunks_exact(8).enumerate() {
        let relative = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
        let position = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]) as usize;
        if relative == 0 && position == 0 && i > 0 {
            break; // preallocated, unused tail
        }
        let offset = base + i64::from(relative);
        if previous.is_some_and(|p| p >= (offset, position)) {
            return Some(format!("entry {i} (offset {offset}) is out of order"));
        }
        previous = Some((offset, position));
        match positions.iter().find(|(p, _, _)| *p == position) {
            Some((_, first, last)) if *first <= offset && offset <= *last => {}
            _ => {
                return Some(format!(
                    "entry {i} (offset {offset}) points at position {position}, not at its batch"
                ))
            }
        }
    }
    None
}

/// Problems of a `.timeindex`: timestamps and offsets never go back, and
/// every offset lies within the segment's batches.
fn check_time_index(path: &Path, base: i64, positions: &[(usize, i64, i64)]) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let last = positions.last().map_or(base - 1, |p| p.2);
    let mut previous: Option<(i64, i64)> = None;
    for (i, entry) in bytes.chunks_exact(12).enumerate() {
        let timestamp = i64::from_be_bytes(entry[0..8].try_into().ok()?);
        let relative = u32::from_be_bytes(entry[8..12].try_into().ok()?);
        if timestamp == 0 && relative == 0 && i > 0 {
            break; // preallocated, unused tail
        }
        let offset = base + i64::from(relative);
        if previous.is_some_and(|(t, o)| timestamp < t || offset < o) {
            return Some(format!(
                "time index entry {i} goes back (timestamp {timestamp}, offset {offset})"
            ));
        }
        if offset > last {
            return Some(format!(
                "time index entry {i} names offset {offset}, past the segment's last {last}"
            ));
        }
        previous = Some((timestamp, offset));
    }
    None
}

fn verify(format: Format, dir: &Path) -> Result<()> {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for log in segment_files(dir)? {
        let bytes = std::fs::read(&log).with_context(|| format!("read {}", log.display()))?;
        let scanned = scan(&bytes);
        let base: i64 = log
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("{}: not a base-offset file name", log.display()))?;
        let mut problem = scanned
            .bad
            .as_ref()
            .map(|(position, reason)| format!("first bad batch at byte {position}: {reason}"));
        if problem.is_none() {
            problem = check_offset_index(&log.with_extension("index"), base, &scanned.positions)
                .map(|p| format!("index: {p}"));
        }
        if problem.is_none() {
            problem = check_time_index(&log.with_extension("timeindex"), base, &scanned.positions);
        }
        let name = log
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(p) = &problem {
            failures.push(format!("{name}: {p}"));
        }
        rows.push(vec![
            json!(name),
            json!(scanned.batches.len()),
            json!(scanned.records),
            json!(scanned.positions.first().map(|p| p.1)),
            json!(scanned.positions.last().map(|p| p.2)),
            json!(problem.unwrap_or_else(|| "ok".to_string())),
        ]);
    }
    output::rows(
        format,
        &[
            "segment",
            "batches",
            "records",
            "first_offset",
            "last_offset",
            "status",
        ],
        &rows,
    );
    if !failures.is_empty() {
        bail!("{} is damaged: {}", dir.display(), failures.join("; "));
    }
    Ok(())
}
