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
    Ok(Some(Checkpoint {
        recovery_point: field()?,
        log_start_offset: field()?,
    }))
}

pub fn write(dir: &Path, checkpoint: Checkpoint) -> Result<()> {
    let path = dir.join(CHECKPOINT_FILE);
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let context = || format!("write {}", path.display());
    let text = format!(
        "{VERSION}\n{} {}\n",
        checkpoint.recovery_point, checkpoint.log_start_offset
    );
    let mut file = fs::File::create(&tmp).map_err(|e| StorageError::io(context(), e))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_data())
        .map_err(|e| StorageError::io(context(), e))?;
    fs::rename(&tmp, &path).map_err(|e| StorageError::io(context(), e))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(context(), e))
}
