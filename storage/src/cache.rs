//! The in-memory tail of a log: recent batches as refcounted `Bytes`, so
//! tailing readers get slices without touching the disk. Batches not yet
//! written are always here (with O_DIRECT there is no page cache to hold
//! them); written ones are evicted oldest-first when the core's budget is
//! exceeded.

use bytes::Bytes;
use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

/// Bytes of tail cache in use on one core, shared by its logs.
#[derive(Debug)]
pub struct CoreMemory {
    tail_cache_bytes_max: usize,
    tail_cache_bytes: Cell<usize>,
}

impl CoreMemory {
    pub fn new(tail_cache_bytes_max: usize) -> Rc<CoreMemory> {
        Rc::new(CoreMemory {
            tail_cache_bytes_max,
            tail_cache_bytes: Cell::new(0),
        })
    }

    pub fn tail_cache_bytes(&self) -> usize {
        self.tail_cache_bytes.get()
    }

    fn over_budget(&self) -> bool {
        self.tail_cache_bytes.get() > self.tail_cache_bytes_max
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CachedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub bytes: Bytes,
}

#[derive(Debug)]
pub(crate) struct TailCache {
    batches: VecDeque<CachedBatch>,
    memory: Rc<CoreMemory>,
}

impl TailCache {
    pub fn new(memory: Rc<CoreMemory>) -> Self {
        TailCache {
            batches: VecDeque::new(),
            memory,
        }
    }

    pub fn push(&mut self, batch: CachedBatch) {
        debug_assert!(self
            .batches
            .back()
            .is_none_or(|b| b.last_offset + 1 == batch.base_offset));
        self.add_bytes(batch.bytes.len() as isize);
        self.batches.push_back(batch);
    }

    /// Evicts this log's oldest batches below `written_offset` while the core
    /// is over budget. Unwritten batches are never evicted.
    pub fn evict(&mut self, written_offset: i64) {
        while self.memory.over_budget() {
            match self.batches.front() {
                Some(front) if front.last_offset < written_offset => {
                    let len = front.bytes.len() as isize;
                    self.batches.pop_front();
                    self.add_bytes(-len);
                }
                _ => break,
            }
        }
    }

    /// First offset the cache can serve, if any.
    pub fn first_offset(&self) -> Option<i64> {
        self.batches.front().map(|b| b.base_offset)
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at
    /// least one batch, as Kafka returns an oversized first batch).
    pub fn read(&self, offset: i64, max_bytes: usize) -> Vec<Bytes> {
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        let mut out = Vec::new();
        let mut total = 0usize;
        for batch in self.batches.range(start..) {
            if !out.is_empty() && total + batch.bytes.len() > max_bytes {
                break;
            }
            total += batch.bytes.len();
            out.push(batch.bytes.clone());
        }
        out
    }

    /// Drops batches whose last offset is >= `offset` (truncation) and
    /// returns them in order so the caller can see what was cut.
    pub fn truncate_from(&mut self, offset: i64) {
        while let Some(back) = self.batches.back() {
            if back.last_offset < offset && back.base_offset < offset {
                break;
            }
            let len = back.bytes.len() as isize;
            self.batches.pop_back();
            self.add_bytes(-len);
        }
    }

    /// Drops batches entirely below `offset` (retention).
    pub fn drop_before(&mut self, offset: i64) {
        while let Some(front) = self.batches.front() {
            if front.last_offset >= offset {
                break;
            }
            let len = front.bytes.len() as isize;
            self.batches.pop_front();
            self.add_bytes(-len);
        }
    }

    pub fn clear(&mut self) {
        self.truncate_from(i64::MIN);
    }

    fn add_bytes(&self, delta: isize) {
        let used = self.memory.tail_cache_bytes.get();
        self.memory
            .tail_cache_bytes
            .set(used.saturating_add_signed(delta));
    }
}

impl Drop for TailCache {
    fn drop(&mut self) {
        self.clear();
    }
}
