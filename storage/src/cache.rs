//! The in-memory tail of a log: recent batches as refcounted `Bytes`, so
//! tailing readers get slices without touching the disk. Batches not yet
//! written are always here (with O_DIRECT there is no page cache to hold
//! them); written ones are evicted oldest-first across all the core's logs
//! when the core's budget is exceeded.
//!
//! The core's memory has two bounds, both shared by every log on the core:
//! the tail cache (all cached batches) and the write buffer (batches
//! appended but not yet written). An append that would take the write
//! buffer past its bound starts a flush of every log with unwritten bytes
//! and waits until there is room.

use crate::commit::Event;
use crate::limits::WRITE_BUFFER_CORE_BYTES_DEFAULT_MAX;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

/// What the core's budget needs from each log that shares it.
pub(crate) trait CacheOwner {
    /// Age (the core's append tick) of this log's oldest cached batch that
    /// is written and so may be evicted; None if there is none.
    fn oldest_evictable(&self) -> Option<u64>;
    /// Evicts that batch; false if it could not.
    fn evict_oldest(&self) -> bool;
    /// Asks this log's background flusher to write everything it has
    /// pending now.
    fn request_flush(self: Rc<Self>);
}

/// The memory budget of one core, shared by its logs.
pub struct CoreMemory {
    tail_cache_bytes_max: usize,
    tail_cache_bytes: Cell<usize>,
    write_buffer_bytes_max: usize,
    write_buffer_bytes: Cell<usize>,
    /// Orders cached batches across logs for eviction.
    ticks: Cell<u64>,
    logs: RefCell<Vec<Weak<dyn CacheOwner>>>,
    /// Notified whenever unwritten bytes are released.
    released: Event,
}

impl std::fmt::Debug for CoreMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreMemory")
            .field("tail_cache_bytes", &self.tail_cache_bytes.get())
            .field("tail_cache_bytes_max", &self.tail_cache_bytes_max)
            .field("write_buffer_bytes", &self.write_buffer_bytes.get())
            .field("write_buffer_bytes_max", &self.write_buffer_bytes_max)
            .finish()
    }
}

impl CoreMemory {
    /// A core budget with this tail cache bound and the default write
    /// buffer bound.
    pub fn new(tail_cache_bytes_max: usize) -> Rc<CoreMemory> {
        CoreMemory::with_limits(tail_cache_bytes_max, WRITE_BUFFER_CORE_BYTES_DEFAULT_MAX)
    }

    pub fn with_limits(
        tail_cache_bytes_max: usize,
        write_buffer_bytes_max: usize,
    ) -> Rc<CoreMemory> {
        Rc::new(CoreMemory {
            tail_cache_bytes_max,
            tail_cache_bytes: Cell::new(0),
            write_buffer_bytes_max,
            write_buffer_bytes: Cell::new(0),
            ticks: Cell::new(0),
            logs: RefCell::new(Vec::new()),
            released: Event::default(),
        })
    }

    /// Bytes of cached batches on this core, written or not.
    pub fn tail_cache_bytes(&self) -> usize {
        self.tail_cache_bytes.get()
    }

    /// Bytes appended on this core and not yet written.
    pub fn write_buffer_bytes(&self) -> usize {
        self.write_buffer_bytes.get()
    }

    fn over_budget(&self) -> bool {
        self.tail_cache_bytes.get() > self.tail_cache_bytes_max
    }

    pub(crate) fn register(&self, log: Weak<dyn CacheOwner>) {
        let mut logs = self.logs.borrow_mut();
        logs.retain(|l| l.strong_count() > 0);
        logs.push(log);
    }

    fn next_tick(&self) -> u64 {
        let tick = self.ticks.get();
        self.ticks.set(tick + 1);
        tick
    }

    fn live_logs(&self) -> Vec<Rc<dyn CacheOwner>> {
        self.logs
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Evicts written batches, oldest first whichever log holds them, while
    /// the core is over its tail cache budget. Called with no log's state
    /// borrowed.
    pub(crate) fn evict(&self) {
        if !self.over_budget() {
            return;
        }
        let logs = self.live_logs();
        while self.over_budget() {
            let mut ages: Vec<(u64, usize)> = logs
                .iter()
                .enumerate()
                .filter_map(|(i, log)| log.oldest_evictable().map(|age| (age, i)))
                .collect();
            ages.sort_unstable();
            let Some(&(_, oldest)) = ages.first() else {
                return; // only unwritten batches left
            };
            // Evict from the oldest log until it is no longer the oldest.
            let next_age = ages.get(1).map_or(u64::MAX, |(age, _)| *age);
            while self.over_budget()
                && logs[oldest]
                    .oldest_evictable()
                    .is_some_and(|age| age <= next_age)
            {
                if !logs[oldest].evict_oldest() {
                    return;
                }
            }
        }
    }

    /// Moves this core's count of unwritten bytes by a log's change, from
    /// `counted` (what the log had counted) to `now`.
    pub(crate) fn recount_unwritten(&self, counted: &mut usize, now: usize) {
        let total = self.write_buffer_bytes.get().saturating_sub(*counted) + now;
        self.write_buffer_bytes.set(total);
        let released = now < *counted;
        *counted = now;
        if released {
            self.released.notify_all();
        }
    }

    /// Waits until `len` more unwritten bytes fit the core's write buffer,
    /// flushing every log that holds unwritten bytes. A batch larger than
    /// the whole buffer waits until nothing else is unwritten.
    pub(crate) async fn room_for(&self, len: usize) {
        let mut flushing = false;
        loop {
            let released = self.released.listen();
            let used = self.write_buffer_bytes.get();
            if used == 0 || used + len <= self.write_buffer_bytes_max {
                return;
            }
            if !flushing {
                for log in self.live_logs() {
                    log.request_flush();
                }
                flushing = true;
            }
            released.await;
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CachedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub bytes: Bytes,
    /// When it was cached, on the core's clock of appends.
    pub tick: u64,
}

#[derive(Debug)]
pub(crate) struct TailCache {
    batches: VecDeque<CachedBatch>,
    memory: Rc<CoreMemory>,
    /// The lowest offset the log was truncated from since the cleaner last
    /// looked (every truncation goes through `truncate_from` or `clear`).
    truncated_from: Option<i64>,
}

impl TailCache {
    pub fn new(memory: Rc<CoreMemory>) -> Self {
        TailCache {
            batches: VecDeque::new(),
            memory,
            truncated_from: None,
        }
    }

    pub fn push(&mut self, base_offset: i64, last_offset: i64, bytes: Bytes) {
        // Offsets only grow; a follower of a compacted leader may see gaps.
        debug_assert!(self
            .batches
            .back()
            .is_none_or(|b| b.last_offset < base_offset));
        self.add_bytes(bytes.len() as isize);
        let tick = self.memory.next_tick();
        self.batches.push_back(CachedBatch {
            base_offset,
            last_offset,
            bytes,
            tick,
        });
    }

    /// The tick of the oldest batch if it is below `written_offset`, that is
    /// written and so may be evicted.
    pub fn oldest_evictable(&self, written_offset: i64) -> Option<u64> {
        self.batches
            .front()
            .filter(|front| front.last_offset < written_offset)
            .map(|front| front.tick)
    }

    pub fn evict_oldest(&mut self) -> bool {
        let Some(front) = self.batches.pop_front() else {
            return false;
        };
        self.add_bytes(-(front.bytes.len() as isize));
        true
    }

    /// First offset the cache can serve, if any.
    pub fn first_offset(&self) -> Option<i64> {
        self.batches.front().map(|b| b.base_offset)
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at
    /// least one batch, as Kafka returns an oversized first batch).
    /// Batches from the one holding `offset`, up to `max_bytes` (at least
    /// one), none starting at or after `end_offset`.
    pub fn read(&self, offset: i64, max_bytes: usize, end_offset: i64) -> Vec<Bytes> {
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        let mut out = Vec::new();
        let mut total = 0usize;
        for batch in self.batches.range(start..) {
            if batch.base_offset >= end_offset {
                break;
            }
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
        self.truncated_from = Some(self.truncated_from.map_or(offset, |t| t.min(offset)));
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

    /// The lowest offset truncated from since the last call, if any: the
    /// cleaner's records of what it cleaned at or past it are stale.
    pub fn take_truncation(&mut self) -> Option<i64> {
        self.truncated_from.take()
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
