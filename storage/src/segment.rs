//! One segment: an append-only `.log` file written with O_DIRECT, plus its
//! sparse `.index` and `.timeindex`. The segment keeps in memory the bytes it
//! has been given but not yet written (`pending`) and the partial last page
//! that is already on disk (`tail_page`): each flush rewrites that page
//! together with the new bytes, padded with zeros to a whole page, so every
//! write is aligned (see docs/storage-format.md for why this is safe).

use crate::batch::{BatchHeader, BatchScan, ScanEnd};
use crate::error::{Result, StorageError};
use crate::index::{OffsetIndex, TimeIndex};
use crate::io::{
    align_down, align_up, open_segment_log, read_whole_file, segment_file, write_whole_file,
};
use crate::limits::{BATCH_HEADER_BYTES, WRITE_ALIGN_BYTES};
use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

/// Bytes one recovery read asks for.
const SCAN_CHUNK_BYTES: usize = 1024 * 1024;

pub(crate) struct Segment {
    pub base_offset: i64,
    /// One past the last offset appended (written or not).
    pub next_offset: i64,
    /// Logical bytes appended, written or not.
    pub size: u64,
    /// Bytes written and fdatasynced.
    pub flushed: u64,
    /// Largest batch maxTimestamp seen, -1 if none.
    pub max_timestamp: i64,
    pub created_at: Instant,
    pub file: Rc<DmaFile>,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    dir: PathBuf,
    bytes_since_index: u64,
    /// Bytes [align_down(flushed), flushed) as they are on disk.
    tail_page: Vec<u8>,
    /// Batches in [flushed, size), in order.
    pending: Vec<Bytes>,
    pending_last_offset: i64,
}

/// One aligned write covering everything pending at the time it was taken.
pub(crate) struct FlushJob {
    pub file: Rc<DmaFile>,
    pub position: u64,
    pub buffer: DmaBuffer,
    /// Logical end after this job.
    pub end: u64,
    pub last_offset: i64,
}

/// How much recovery may take on trust when opening a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Scan every batch.
    None,
    /// The whole segment is below the recovery point (a later segment exists).
    Complete,
    /// The last segment after a clean close: trusted only if its batches end
    /// exactly at this offset (the checkpointed log end).
    IfEndsAt(i64),
}

/// What opening a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecovery {
    pub base_offset: i64,
    /// Bytes after the last valid batch that were cut off.
    pub truncated_bytes: u64,
    /// True if those bytes were not all zero padding.
    pub corrupt: bool,
    pub reason: Option<String>,
    pub index_rebuilt: bool,
}

impl Segment {
    pub async fn create(dir: &Path, base_offset: i64) -> Result<Segment> {
        let path = segment_file(dir, base_offset, "log");
        let file = open_segment_log(&path, true).await?;
        Ok(Segment::new(dir, base_offset, Rc::new(file)))
    }

    fn new(dir: &Path, base_offset: i64, file: Rc<DmaFile>) -> Segment {
        Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            flushed: 0,
            max_timestamp: -1,
            created_at: Instant::now(),
            file,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            dir: dir.to_path_buf(),
            bytes_since_index: 0,
            tail_page: Vec::new(),
            pending: Vec::new(),
            pending_last_offset: base_offset - 1,
        }
    }

    pub fn path(&self, suffix: &str) -> PathBuf {
        segment_file(&self.dir, self.base_offset, suffix)
    }

    pub fn pending_bytes(&self) -> u64 {
        self.size - self.flushed
    }

    /// Adds a batch whose offsets are already assigned.
    pub fn append(&mut self, bytes: Bytes, last_offset: i64, max_timestamp: i64, interval: u64) {
        self.account(bytes.len() as u64, last_offset, max_timestamp, interval);
        self.pending_last_offset = last_offset;
        self.pending.push(bytes);
    }

    /// An empty in-memory segment for the cleaner to fill through
    /// [`Segment::account_written`] with the batches it wrote to `file`.
    pub(crate) fn rewritten(dir: &Path, base_offset: i64, file: Rc<DmaFile>) -> Segment {
        Segment::new(dir, base_offset, file)
    }

    /// Accounts a batch already written at the end of the file (the
    /// cleaner's output): index entries, size, offsets, all flushed.
    pub(crate) fn account_written(
        &mut self,
        len: u64,
        last_offset: i64,
        max_timestamp: i64,
        interval: u64,
    ) {
        self.account(len, last_offset, max_timestamp, interval);
        self.flushed = self.size;
        self.pending_last_offset = last_offset;
    }

    /// Index entries, size and offsets for a batch placed at the end.
    fn account(&mut self, len: u64, last_offset: i64, max_timestamp: i64, interval: u64) {
        let position = self.size;
        let relative = (last_offset - self.base_offset) as u32;
        // As Kafka: an entry once more than `interval` bytes follow the last.
        if self.bytes_since_index > interval || (interval == 0 && position > 0) {
            self.index.push(relative, position as u32);
            self.time_index
                .push(self.max_timestamp.max(max_timestamp), relative);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += len;
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
        self.size += len;
        self.next_offset = last_offset + 1;
    }

    /// Takes everything pending into one aligned buffer; None if nothing is.
    pub fn take_flush(&mut self) -> Option<FlushJob> {
        if self.pending.is_empty() {
            return None;
        }
        let position = align_down(self.flushed);
        let logical = (self.size - position) as usize;
        let mut buffer = self
            .file
            .alloc_dma_buffer(align_up(logical as u64) as usize);
        let target = buffer.as_bytes_mut();
        let mut at = self.tail_page.len();
        target[..at].copy_from_slice(&self.tail_page);
        for batch in self.pending.drain(..) {
            target[at..at + batch.len()].copy_from_slice(&batch);
            at += batch.len();
        }
        target[at..].fill(0);
        Some(FlushJob {
            file: self.file.clone(),
            position,
            buffer,
            end: self.size,
            last_offset: self.pending_last_offset,
        })
    }

    /// Records that `job` is written and synced.
    pub fn complete_flush(&mut self, position: u64, written: &[u8], end: u64) {
        self.flushed = end;
        let page_start = align_down(end);
        self.tail_page.clear();
        let from = (page_start - position) as usize;
        let to = (end - position) as usize;
        self.tail_page.extend_from_slice(&written[from..to]);
    }

    /// Makes the segment final in memory and returns the I/O that seals it
    /// on disk: the file cut to its logical size (the last flush padded it)
    /// and both indexes written. Nothing may be pending.
    pub fn prepare_seal(&mut self) -> SealJob {
        debug_assert!(self.pending.is_empty());
        // A final time index entry lets retention see the segment's newest
        // timestamp without scanning (Kafka writes one on roll too).
        if self.next_offset > self.base_offset {
            let relative = (self.next_offset - 1 - self.base_offset) as u32;
            self.time_index.push(self.max_timestamp, relative);
        }
        SealJob {
            file: self.file.clone(),
            size: self.size,
            log_path: self.path("log"),
            index_path: self.path("index"),
            time_index_path: self.path("timeindex"),
            index: self.index.to_bytes(),
            time_index: self.time_index.to_bytes(),
        }
    }

    /// Cuts the segment in memory at `position` (a batch boundary) so that
    /// `next_offset` comes next; the caller then runs [`cut_file`] and
    /// [`Segment::set_tail_page`]. Nothing may be pending.
    pub fn cut(&mut self, position: u64, next_offset: i64) {
        debug_assert!(self.pending.is_empty());
        self.size = position;
        self.flushed = position;
        self.next_offset = next_offset;
        self.pending_last_offset = next_offset - 1;
        self.index.truncate_to_position(position as u32);
        let relative = (next_offset - self.base_offset).max(0) as u32;
        self.time_index.truncate_to_offset(relative);
        self.max_timestamp = self.time_index.last_timestamp().unwrap_or(-1);
        self.bytes_since_index = 0;
        self.tail_page.clear();
    }

    pub fn set_tail_page(&mut self, page: Vec<u8>) {
        debug_assert_eq!(page.len() as u64, self.flushed - align_down(self.flushed));
        self.tail_page = page;
    }

    /// Opens an existing segment. A trusted segment (see [`Trust`]) is taken
    /// at its file size with its indexes if they are valid, reading only the
    /// batches after the last index entry; otherwise it is scanned, every CRC
    /// checked, and cut at the first torn or corrupt batch. `offset_gaps`:
    /// the log has been through the cleaner, so a batch may start past the
    /// previous one's end; otherwise that is corruption (the base offset is
    /// outside the CRC).
    pub async fn open(
        dir: &Path,
        base_offset: i64,
        trust: Trust,
        interval: u64,
        offset_gaps: bool,
    ) -> Result<(Segment, SegmentRecovery)> {
        let path = segment_file(dir, base_offset, "log");
        let file = Rc::new(open_segment_log(&path, false).await?);
        let file_size = file
            .file_size()
            .await
            .map_err(|e| StorageError::io(format!("stat {}", path.display()), e))?;
        let mut segment = Segment::new(dir, base_offset, file);
        let mut report = SegmentRecovery {
            base_offset,
            truncated_bytes: 0,
            corrupt: false,
            reason: None,
            index_rebuilt: false,
        };
        if trust != Trust::None && segment.load_indexes(file_size).await? {
            segment.size = file_size;
            segment.flushed = file_size;
            segment.max_timestamp = segment.time_index.last_timestamp().unwrap_or(-1);
            let last_indexed = segment.index.entries().last().map_or(0, |(_, p)| *p);
            segment.bytes_since_index = file_size - u64::from(last_indexed);
            let next = segment.last_batch_next_offset().await?;
            let ends_where_trusted = match trust {
                Trust::IfEndsAt(end) => next == Some(end),
                _ => next.is_some(),
            };
            if let (true, Some(next)) = (ends_where_trusted, next) {
                segment.tail_page = read_tail_page(&segment.file, &path, file_size).await?;
                segment.next_offset = next;
                segment.pending_last_offset = next - 1;
                return Ok((segment, report));
            }
        }
        report.index_rebuilt = true;
        segment.index = OffsetIndex::default();
        segment.time_index = TimeIndex::default();
        segment.bytes_since_index = 0;
        segment.max_timestamp = -1;
        segment.size = 0;
        segment.flushed = 0;
        segment.next_offset = base_offset;
        segment.pending_last_offset = base_offset - 1;
        let stop = segment.scan(file_size, interval, offset_gaps).await?;
        if segment.size < file_size {
            report.truncated_bytes = file_size - segment.size;
            report.corrupt = !segment.is_zero_from(segment.size, file_size).await?;
            report.reason = stop;
            segment
                .file
                .truncate(segment.size)
                .await
                .map_err(|e| StorageError::io(format!("truncate {}", path.display()), e))?;
        }
        segment.flushed = segment.size;
        segment.tail_page = read_tail_page(&segment.file, &path, segment.flushed).await?;
        Ok((segment, report))
    }

    async fn load_indexes(&mut self, file_size: u64) -> Result<bool> {
        let offsets = read_whole_file(&self.path("index")).await?;
        let times = read_whole_file(&self.path("timeindex")).await?;
        let (Some(offsets), Some(times)) = (offsets, times) else {
            return Ok(false);
        };
        match (
            OffsetIndex::from_bytes(&offsets, file_size),
            TimeIndex::from_bytes(&times),
        ) {
            (Some(index), Some(time_index)) => {
                self.index = index;
                self.time_index = time_index;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Walks from the last indexed batch to the end, checking each batch;
    /// gives the next offset, or None if the index does not match the data.
    async fn last_batch_next_offset(&mut self) -> Result<Option<i64>> {
        let file_size = self.size;
        if file_size == 0 {
            return Ok(Some(self.base_offset));
        }
        let position = self
            .index
            .entries()
            .last()
            .map_or(0, |(_, p)| u64::from(*p));
        let rest = self.read(position, (file_size - position) as usize).await?;
        let mut scan = BatchScan::new(&rest);
        let mut next = None;
        loop {
            match scan.next_batch() {
                Ok((_, batch)) => {
                    next = BatchHeader::parse(batch).ok().map(|h| h.last_offset() + 1)
                }
                Err(ScanEnd::Clean) => break,
                Err(_) => return Ok(None),
            }
        }
        if let (Some(next), Some((relative, _))) = (next, self.index.entries().last()) {
            if next <= self.base_offset + i64::from(*relative) {
                return Ok(None);
            }
        }
        Ok(next.or(Some(self.base_offset)))
    }

    /// Rebuilds size, next offset and indexes from the file; returns why the
    /// scan stopped before the end of the file, if it did.
    async fn scan(
        &mut self,
        file_size: u64,
        interval: u64,
        offset_gaps: bool,
    ) -> Result<Option<String>> {
        let mut position = 0u64;
        let mut want = SCAN_CHUNK_BYTES;
        while position < file_size {
            let len = (file_size - position).min(want as u64) as usize;
            let chunk = self.read(position, len).await?;
            let mut scan = BatchScan::new(&chunk);
            let stop = loop {
                match scan.next_batch() {
                    Ok((_, batch)) => {
                        let Ok(header) = BatchHeader::parse(batch) else {
                            break Some("unreadable header".to_string());
                        };
                        // Offsets only grow; a gap is the cleaner's doing
                        // (it drops batches whose records are all gone).
                        let base = header.base_offset();
                        if base < self.next_offset || (base > self.next_offset && !offset_gaps) {
                            break Some(format!(
                                "batch at offset {} where {} was expected",
                                header.base_offset(),
                                self.next_offset
                            ));
                        }
                        let (last, max_ts) = (header.last_offset(), header.max_timestamp.get());
                        self.account(batch.len() as u64, last, max_ts, interval);
                    }
                    Err(ScanEnd::Clean) => break None,
                    Err(ScanEnd::Incomplete { position: at }) => {
                        let header = BatchHeader::parse(&chunk[at..]).ok();
                        let need = header
                            .and_then(|h| h.total_bytes())
                            .unwrap_or(BATCH_HEADER_BYTES);
                        if position + (at + need) as u64 > file_size {
                            break Some("torn batch at the end of the file".to_string());
                        }
                        want = want.max(need);
                        break None;
                    }
                    Err(ScanEnd::Invalid { error, .. }) => break Some(error.to_string()),
                }
            };
            position += scan.position() as u64;
            if stop.is_some() {
                return Ok(stop);
            }
        }
        Ok(None)
    }

    async fn is_zero_from(&self, start: u64, end: u64) -> Result<bool> {
        let len = (end - start).min(SCAN_CHUNK_BYTES as u64) as usize;
        let bytes = self.read(start, len).await?;
        Ok(bytes.iter().all(|b| *b == 0))
    }

    /// Direct read of `len` bytes at `position` (unaligned allowed).
    pub async fn read(&self, position: u64, len: usize) -> Result<glommio::io::ReadResult> {
        self.file
            .read_at(position, len)
            .await
            .map_err(|e| StorageError::io(format!("read {}", self.path("log").display()), e))
    }

    pub fn remove_files(&self) -> Result<()> {
        for suffix in ["log", "index", "timeindex"] {
            let path = self.path(suffix);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(format!("delete {}", path.display()), e)),
            }
        }
        Ok(())
    }
}

/// I/O that makes a segment final on disk; see [`Segment::prepare_seal`].
pub(crate) struct SealJob {
    file: Rc<DmaFile>,
    size: u64,
    log_path: PathBuf,
    index_path: PathBuf,
    time_index_path: PathBuf,
    index: Vec<u8>,
    time_index: Vec<u8>,
}

impl SealJob {
    pub async fn run(self) -> Result<()> {
        cut_file(&self.file, &self.log_path, self.size).await?;
        write_whole_file(&self.index_path, &self.index).await?;
        write_whole_file(&self.time_index_path, &self.time_index).await
    }
}

/// Truncates a segment file to `size` and makes that durable.
pub(crate) async fn cut_file(file: &DmaFile, path: &Path, size: u64) -> Result<()> {
    let context = || format!("truncate {}", path.display());
    file.truncate(size)
        .await
        .map_err(|e| StorageError::io(context(), e))?;
    file.fdatasync()
        .await
        .map_err(|e| StorageError::io(context(), e))
}

/// The on-disk bytes of the partial last page, [align_down(end), end).
pub(crate) async fn read_tail_page(file: &DmaFile, path: &Path, end: u64) -> Result<Vec<u8>> {
    let page_start = align_down(end);
    if end == page_start {
        return Ok(Vec::new());
    }
    let context = || format!("read {}", path.display());
    let read = file
        .read_at_aligned(page_start, WRITE_ALIGN_BYTES as usize)
        .await
        .map_err(|e| StorageError::io(context(), e))?;
    read.get(..(end - page_start) as usize)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            StorageError::io(
                context(),
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            )
        })
}
