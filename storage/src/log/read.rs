//! Reads of whole batches (tail cache or one direct read) and lookups by
//! timestamp.

use super::Log;
use crate::batch::{self, BatchHeader, BatchScan};
use crate::error::{Result, StorageError};
use crate::limits::READ_CHUNK_BYTES_MIN;
use crate::read::{Chunk, ReadBatches};
use glommio::io::ReadResult;

impl Log {
    /// Whole batches from the one holding `offset`, up to `max_bytes` (at
    /// least one batch). Recent batches come from the tail cache, older ones
    /// from one direct read located through the offset index.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadBatches> {
        self.read_until(offset, max_bytes, i64::MAX).await
    }

    /// [`Log::read`] that stops before the first batch starting at or after
    /// `end_offset`: consumers read up to the high watermark, followers to
    /// the log end. An `offset` between `end_offset` and the log end reads
    /// nothing; past the log end it is out of range, as in Kafka.
    pub async fn read_until(
        &self,
        offset: i64,
        max_bytes: usize,
        end_offset: i64,
    ) -> Result<ReadBatches> {
        self.check_dir_online()?;
        let (file, path, mut position, limit, base, slack) = {
            let state = self.inner.state.borrow();
            let (start, end) = (state.log_start_offset, state.log_end_offset());
            if offset < start || offset > end {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start: start,
                    log_end: end,
                });
            }
            if offset >= end.min(end_offset) {
                return Ok(ReadBatches::default());
            }
            if state
                .cache
                .first_offset()
                .is_some_and(|first| first <= offset)
            {
                let chunks = state.cache.read(offset, max_bytes, end_offset);
                return Ok(ReadBatches {
                    chunks: chunks.into_iter().map(Chunk::Memory).collect(),
                });
            }
            let Some((base, segment)) = state.segments.range(..=offset).next_back() else {
                return Ok(ReadBatches::default());
            };
            let relative = (offset - base) as u32;
            let position = u64::from(segment.index.lookup(relative));
            (
                segment.file.clone(),
                segment.path("log"),
                position,
                segment.flushed,
                *base,
                state.config.index_interval_bytes as usize,
            )
        };
        // The read starts at the indexed batch at or before `offset`, up to
        // `index.interval.bytes` early: read that much more so one read
        // usually holds all of `max_bytes`.
        let mut want = max_bytes.max(READ_CHUNK_BYTES_MIN).saturating_add(slack);
        while position < limit {
            let len = (limit - position).min(want as u64) as usize;
            let read = file
                .read_at(position, len)
                .await
                .map_err(|e| StorageError::io(format!("read {}", path.display()), e))?;
            match pick_batches(&read, offset, max_bytes, end_offset) {
                Picked::Batches { start, end } if start == end => {
                    return Ok(ReadBatches::default());
                }
                Picked::Batches { start, end } => {
                    let slice = ReadResult::slice(&read, start, end - start).unwrap_or_default();
                    return Ok(ReadBatches {
                        chunks: vec![Chunk::Disk(slice)],
                    });
                }
                Picked::Skip { consumed, need } => {
                    position += consumed as u64;
                    want = want.max(need);
                    if consumed == 0 && need <= len {
                        break; // invalid bytes: never loop on them
                    }
                }
            }
        }
        tracing::warn!(dir = %self.inner.dir.display(), segment = base, offset,
            "read found no batch for an offset inside the log");
        Ok(ReadBatches::default())
    }

    /// The first offset whose record timestamp is >= `timestamp_ms`, with
    /// that timestamp (ListOffsets by time). For a compressed batch the
    /// answer is the batch's base offset and max timestamp.
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>> {
        let mut offset = {
            let state = self.inner.state.borrow();
            let found = state
                .segments
                .values()
                .find(|segment| segment.max_timestamp >= timestamp_ms);
            let Some(segment) = found else {
                return Ok(None);
            };
            let after = segment.time_index.lookup(timestamp_ms);
            let start = after.map_or(segment.base_offset, |r| {
                segment.base_offset + i64::from(r) + 1
            });
            start.max(state.log_start_offset)
        };
        loop {
            let read = self.read(offset, READ_CHUNK_BYTES_MIN).await?;
            if read.is_empty() {
                return Ok(None);
            }
            for batch in read.batches() {
                let header = BatchHeader::parse(batch)?;
                if header.max_timestamp.get() >= timestamp_ms {
                    let hit = batch::first_record_at_or_after(batch, offset, timestamp_ms);
                    return Ok(Some(hit.unwrap_or((
                        header.base_offset().max(offset),
                        header.max_timestamp.get(),
                    ))));
                }
                offset = header.last_offset() + 1;
            }
        }
    }
}

enum Picked {
    /// Byte range of the whole batches to return.
    Batches { start: usize, end: usize },
    /// No batch to return in these bytes: skip `consumed` and read at least
    /// `need` bytes next.
    Skip { consumed: usize, need: usize },
}

/// Picks from `bytes` (starting at a batch boundary) the batches from the
/// one holding `offset`, up to `max_bytes` but at least one.
fn pick_batches(bytes: &[u8], offset: i64, max_bytes: usize, end_offset: i64) -> Picked {
    // Framing only: the CRC was checked when the batch was appended.
    let mut scan = BatchScan::framing(bytes);
    let mut start = None;
    let mut end = 0;
    loop {
        let before = scan.position();
        match scan.next_batch() {
            Ok((at, batch)) => {
                let (base, last) = BatchHeader::parse(batch)
                    .map_or((i64::MIN, i64::MIN), |h| (h.base_offset(), h.last_offset()));
                if last < offset {
                    continue;
                }
                if base >= end_offset {
                    if start.is_some() {
                        break;
                    }
                    // Only batches past the bound: nothing to give.
                    return Picked::Batches { start: at, end: at };
                }
                let first = *start.get_or_insert(at);
                if end > first && at + batch.len() - first > max_bytes {
                    break;
                }
                end = at + batch.len();
            }
            Err(_) if start.is_some() => break,
            Err(_) => {
                let need = BatchHeader::parse(&bytes[before..])
                    .ok()
                    .and_then(BatchHeader::total_bytes)
                    .unwrap_or(READ_CHUNK_BYTES_MIN);
                return Picked::Skip {
                    consumed: before,
                    need,
                };
            }
        }
    }
    match start {
        Some(start) => Picked::Batches { start, end },
        None => Picked::Skip {
            consumed: scan.position(),
            need: READ_CHUNK_BYTES_MIN,
        },
    }
}
