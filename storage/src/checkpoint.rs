//! `recovery-point.checkpoint`: the offset below which every segment is
//! fsynced and sealed (indexes written), plus the log start offset. Text, as
//! Kafka's checkpoint files are: a version line, then `recovery_point
//! log_start_offset`. Written to a temp file, fsynced, renamed, and the
//! directory fsynced, so it is either the old or the new one.

use crate::error::{Result, StorageError};
use std::fs;
use std::io::Write;
use std::path::Path;

pub const CHECKPOINT_FILE: &str = "recovery-point.checkpoint";
const VERSION: &str = "0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub recovery_point: i64,
    pub log_start_offset: i64,
}

pub fn read(dir: &Path) -> Result<Option<Checkpoint>> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(format!("read {}", path.display()), e)),
    };
    parse(&text, &path).map(Some)
}

/// The recovery-point checkpoint in `text` (read from `path`).
pub(crate) fn parse(text: &str, path: &Path) -> Result<Checkpoint> {
    let bad = |reason: &str| StorageError::BadCheckpoint {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        return Err(bad("unknown version"));
    }
    let mut fields = lines
        .next()
        .ok_or_else(|| bad("missing offsets"))?
        .split_whitespace()
        .map(str::parse::<i64>);
    let mut field = || {
        fields
            .next()
            .and_then(|v| v.ok())
            .filter(|v| *v >= 0)
            .ok_or_else(|| bad("bad offset"))
    };
    Ok(Checkpoint {
        recovery_point: field()?,
        log_start_offset: field()?,
    })
}

pub fn write(dir: &Path, checkpoint: Checkpoint) -> Result<()> {
    let text = format!(
        "{VERSION}\n{} {}\n",
        checkpoint.recovery_point, checkpoint.log_start_offset
    );
    write_atomically(dir, CHECKPOINT_FILE, &text)
}

/// Replaces `dir/name` with `text` so that a crash leaves the old or the
/// new file, never a mix: temp file, fdatasync, rename, fsync directory.
pub(crate) fn write_atomically(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let context = || format!("write {}", path.display());
    let mut file = fs::File::create(&tmp).map_err(|e| StorageError::io(context(), e))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_data())
        .map_err(|e| StorageError::io(context(), e))?;
    fs::rename(&tmp, &path).map_err(|e| StorageError::io(context(), e))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(context(), e))
}

/// `cleaner-offset-checkpoint`: where the log cleaner stands. Text: a
/// version line, the clean point (every offset below it has been through a
/// cleaning pass; the first dirty offset, as Kafka's file of the same name
/// holds), the number of segments that follow, then one `base_offset
/// first_cleaned_ms end_offset` line per segment that has been wholly
/// cleaned: the time `delete.retention.ms` counts from for its tombstones
/// (Kafka uses the cleaned segment's last-modified time), and the segment's
/// end then (an entry whose segment ends elsewhere now is stale: truncated
/// and grown again). Written like the recovery point.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanerCheckpoint {
    pub clean_point: i64,
    /// Segment base offset -> when it was first wholly cleaned.
    pub cleaned: std::collections::BTreeMap<i64, SegmentCleaned>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCleaned {
    pub first_cleaned_ms: i64,
    /// The segment's end offset (its next offset) at that time.
    pub end_offset: i64,
}

/// The cleaner's checkpoint; None if there is none or it does not parse
/// (then the cleaner starts over: tombstones are kept longer, nothing is
/// lost).
pub fn read_cleaner(dir: &Path) -> Option<CleanerCheckpoint> {
    let path = dir.join(CLEANER_CHECKPOINT_FILE);
    let text = fs::read_to_string(&path).ok()?;
    let parsed = parse_cleaner(&text);
    if parsed.is_none() {
        tracing::warn!(path = %path.display(), "unreadable cleaner checkpoint ignored");
    }
    parsed
}

pub(crate) fn parse_cleaner(text: &str) -> Option<CleanerCheckpoint> {
    let mut lines = text.lines();
    if lines.next()? != VERSION {
        return None;
    }
    let clean_point = lines
        .next()?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)?;
    let count = lines.next()?.trim().parse::<usize>().ok()?;
    let mut cleaned = std::collections::BTreeMap::new();
    for _ in 0..count {
        let mut fields = lines.next()?.split_whitespace().map(str::parse::<i64>);
        let base = fields.next()?.ok()?;
        let first_cleaned_ms = fields.next()?.ok()?;
        let end_offset = fields.next()?.ok()?;
        let entry = SegmentCleaned {
            first_cleaned_ms,
            end_offset,
        };
        cleaned.insert(base, entry);
    }
    Some(CleanerCheckpoint {
        clean_point,
        cleaned,
    })
}

pub fn write_cleaner(dir: &Path, checkpoint: &CleanerCheckpoint) -> Result<()> {
    let mut text = format!(
        "{VERSION}\n{}\n{}\n",
        checkpoint.clean_point,
        checkpoint.cleaned.len()
    );
    for (base, entry) in &checkpoint.cleaned {
        let (at, end) = (entry.first_cleaned_ms, entry.end_offset);
        text.push_str(&format!("{base} {at} {end}\n"));
    }
    write_atomically(dir, CLEANER_CHECKPOINT_FILE, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaner_checkpoint_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let checkpoint = CleanerCheckpoint {
            clean_point: 42,
            cleaned: [(0, 1000, 20), (20, 2000, 35)]
                .into_iter()
                .map(|(base, first_cleaned_ms, end_offset)| {
                    let entry = SegmentCleaned {
                        first_cleaned_ms,
                        end_offset,
                    };
                    (base, entry)
                })
                .collect(),
        };
        write_cleaner(dir.path(), &checkpoint).expect("write");
        assert_eq!(read_cleaner(dir.path()), Some(checkpoint));
        assert_eq!(parse_cleaner("0\n5\n2\n0 1 5\n"), None, "a missing line");
        assert_eq!(parse_cleaner("0\n5\n1\n0 1\n"), None, "a missing field");
    }
}
