// Unless explicitly stated otherwise all files in this repository are licensed
// under the MIT/Apache-2.0 License, at your convenience
//
// This product includes software developed at Datadog (https://www.datadoghq.com/). Copyright 2020 Datadog, Inc.
//
// Buffers that are friendly to be used with O_DIRECT files.
// For the time being they are really only properly aligned,
// but in the near future they can be coming from memory-areas
// that are pre-registered for I/O uring.

use std::ptr;

use crate::sys::uring::UringBuffer;
use alloc::alloc::Layout;

#[derive(Debug)]
pub(crate) struct SysAlloc {
    data: ptr::NonNull<u8>,
    layout: Layout,
}

impl SysAlloc {
    fn new(size: usize) -> Option<Self> {
        if size == 0 {
            None
        } else {
            // SLUICE PATCH (fifth): a large buffer freed on this thread is
            // taken again before asking the allocator (see `spare`).
            if let Some(kept) = spare::take(size) {
                return Some(kept);
            }
            if size >= spare::KEPT_BYTES_MIN {
                return spare::fresh(size);
            }
            let layout = Layout::from_size_align(size, 4096).unwrap();
            let data = unsafe { alloc::alloc::alloc(layout) };
            let data = ptr::NonNull::new(data)?;
            Some(SysAlloc { data, layout })
        }
    }

    fn as_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.data.as_ptr()
    }
}

impl Drop for SysAlloc {
    fn drop(&mut self) {
        // SLUICE PATCH (fifth): large buffers are kept for the next one.
        if spare::keep(self.data, self.layout) {
            return;
        }
        unsafe {
            alloc::alloc::dealloc(self.data.as_ptr(), self.layout);
        }
    }
}

/// SLUICE PATCH (fifth): large direct-I/O buffers freed on a thread are kept
/// there, up to `KEPT_BYTES_MAX`, and handed to the next allocation they
/// fit. glibc mmaps such buffers or trims them off its arena's top once
/// freed, so every direct read of a few MiB (a fetch past the tail cache)
/// and every large flush buffer faulted its pages in again, zeroed by the
/// kernel: half of a consuming broker core's CPU (Sluice's
/// docs/benchmarks.md, "Fetch buffers faulted in on every read").
/// Buffers are `!Send`, so a buffer is always dropped on the thread that
/// made it and the cache needs no lock.
pub(crate) mod spare {
    use super::SysAlloc;
    use alloc::alloc::Layout;
    use std::cell::RefCell;
    use std::ptr::NonNull;

    /// Smaller buffers come from glibc's bins without faults.
    pub(crate) const KEPT_BYTES_MIN: usize = 128 << 10;
    /// Kept per thread at most; the oldest go first beyond it.
    const KEPT_BYTES_MAX: usize = 64 << 20;
    /// Kept buffers below huge-page size are allocated in these steps.
    const KEPT_STEP_BYTES: usize = 64 << 10;
    /// A kept buffer serves a request of at least half its size.
    const WASTE_FACTOR_MAX: usize = 2;

    struct Kept {
        buffers: Vec<(NonNull<u8>, Layout)>,
        bytes: usize,
    }

    impl Drop for Kept {
        fn drop(&mut self) {
            for (data, layout) in self.buffers.drain(..) {
                unsafe { alloc::alloc::dealloc(data.as_ptr(), layout) };
            }
        }
    }

    thread_local! {
        static KEPT: RefCell<Kept> = const {
            RefCell::new(Kept { buffers: Vec::new(), bytes: 0 })
        };
    }

    /// Buffers of this size or more are whole transparent huge pages.
    const HUGE_PAGE_BYTES: usize = 2 << 20;

    /// `size` rounded up to a multiple of `step`.
    fn round_up(size: usize, step: usize) -> usize {
        (size + step - 1) / step * step
    }

    /// A fresh buffer that may be kept: below 2 MiB in 64 KiB steps, so
    /// requests a few KiB apart (a read's alignment slack) fit each
    /// other's buffers; from 2 MiB up in whole 2 MiB pages, aligned to them
    /// and advised as huge pages (a no-op where THP is off), so a direct
    /// read pins 4 pages per 8 MiB instead of 2,048, and since the buffer
    /// is kept, the kernel zeroes its huge pages once. Fetch row: -15-19%
    /// broker CPU (docs/benchmarks.md).
    pub(super) fn fresh(size: usize) -> Option<SysAlloc> {
        let huge = size >= HUGE_PAGE_BYTES;
        let (step, align) = if huge {
            (HUGE_PAGE_BYTES, HUGE_PAGE_BYTES)
        } else {
            (KEPT_STEP_BYTES, 4096)
        };
        let layout = Layout::from_size_align(round_up(size, step), align).ok()?;
        let data = NonNull::new(unsafe { alloc::alloc::alloc(layout) })?;
        if huge {
            // The range is the allocation just made; madvise only changes
            // how the kernel backs it, and its failure changes nothing else.
            unsafe {
                libc::madvise(
                    data.as_ptr() as *mut libc::c_void,
                    layout.size(),
                    libc::MADV_HUGEPAGE,
                );
            }
        }
        Some(SysAlloc { data, layout })
    }

    /// The smallest kept buffer of at least `size` bytes that `size` does
    /// not waste more than half of.
    pub(super) fn take(size: usize) -> Option<SysAlloc> {
        if size < KEPT_BYTES_MIN {
            return None;
        }
        KEPT.try_with(|kept| {
            let mut kept = kept.borrow_mut();
            let (at, _) = kept
                .buffers
                .iter()
                .enumerate()
                .filter(|(_, (_, layout))| {
                    layout.size() >= size && layout.size() <= size.saturating_mul(WASTE_FACTOR_MAX)
                })
                .min_by_key(|(_, (_, layout))| layout.size())?;
            let (data, layout) = kept.buffers.remove(at);
            kept.bytes -= layout.size();
            Some(SysAlloc { data, layout })
        })
        .ok()
        .flatten()
    }

    /// Bytes of freed buffers kept on this thread (for tests).
    pub fn kept_bytes() -> usize {
        KEPT.try_with(|kept| kept.borrow().bytes).unwrap_or(0)
    }

    /// Keeps a freed buffer; false if the caller must free it.
    pub(super) fn keep(data: NonNull<u8>, layout: Layout) -> bool {
        if layout.size() < KEPT_BYTES_MIN || layout.size() > KEPT_BYTES_MAX {
            return false;
        }
        KEPT.try_with(|kept| {
            let mut kept = kept.borrow_mut();
            while kept.bytes + layout.size() > KEPT_BYTES_MAX {
                let (old, old_layout) = kept.buffers.remove(0);
                kept.bytes -= old_layout.size();
                unsafe { alloc::alloc::dealloc(old.as_ptr(), old_layout) };
            }
            kept.buffers.push((data, layout));
            kept.bytes += layout.size();
        })
        .is_ok()
    }
}

#[derive(Debug)]
pub(crate) enum BufferStorage {
    Sys(SysAlloc),
    Uring(UringBuffer),
    EventFd(*mut u8),
}

impl BufferStorage {
    fn as_ptr(&self) -> *const u8 {
        match self {
            BufferStorage::Sys(x) => x.as_ptr(),
            BufferStorage::Uring(x) => x.as_ptr(),
            BufferStorage::EventFd(x) => *x as *const u8,
        }
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        match self {
            BufferStorage::Sys(x) => x.as_mut_ptr(),
            BufferStorage::Uring(x) => x.as_mut_ptr(),
            BufferStorage::EventFd(x) => *x,
        }
    }
}

#[derive(Debug)]
/// A buffer suitable for Direct I/O over io_uring
///
/// Direct I/O has strict requirements about alignment. On top of that, io_uring
/// places additional restrictions on memory placement if we are to use advanced
/// features like registered buffers.
///
/// The `DmaBuffer` is a buffer that adheres to those properties making it
/// suitable for io_uring's Direct I/O.
pub struct DmaBuffer {
    storage: BufferStorage,
    // Invariant: trim + size are at most one byte past the original allocation.
    trim: usize,
    size: usize,
}

impl DmaBuffer {
    pub(crate) fn new(size: usize) -> Option<DmaBuffer> {
        Some(DmaBuffer {
            storage: BufferStorage::Sys(SysAlloc::new(size)?),
            size,
            trim: 0,
        })
    }

    pub(crate) fn with_storage(size: usize, storage: BufferStorage) -> DmaBuffer {
        DmaBuffer {
            storage,
            size,
            trim: 0,
        }
    }

    pub(crate) fn uring_buffer_id(&self) -> Option<u32> {
        match &self.storage {
            BufferStorage::Uring(x) => x.uring_buffer_id(),
            _ => None,
        }
    }

    /// Reduce the length of this buffer to be `newsize`. This value must be <= the current
    /// [`len`](#method.len) and is a destructive operation (length cannot be increased).
    /// NOTE: When using this with DmaFile, you have to make sure that `newsize` is properly
    /// aligned or the write will fail due to O_DIRECT requirements.
    pub fn trim_to_size(&mut self, newsize: usize) {
        assert!(newsize <= self.size);
        self.size = newsize;
    }

    /// Returns a representation of the current addressable contents of this
    /// `DmaBuffer` as a byte slice
    pub fn as_bytes(&self) -> &[u8] {
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.size) }
    }

    /// Returns a representation of the current addressable contents of this
    /// `DmaBuffer` as a mutable byte slice
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.size) }
    }

    /// Returns the current number of bytes present in the addressable contents
    /// of this `DmaBuffer`
    pub fn len(&self) -> usize {
        self.size
    }

    /// Indicates whether this buffer is empty. An empty buffer can be,
    /// for instance, the result of a read past the end of a file.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Returns a representation of the current addressable contents of this
    /// `DmaBuffer` as mutable pointer
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        unsafe { self.storage.as_mut_ptr().add(self.trim) }
    }

    /// Returns a representation of the current addressable contents of this
    /// `DmaBuffer` as pointer
    pub fn as_ptr(&self) -> *const u8 {
        unsafe { self.storage.as_ptr().add(self.trim) }
    }
}

impl AsRef<[u8]> for DmaBuffer {
    #[inline(always)]
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsMut<[u8]> for DmaBuffer {
    #[inline(always)]
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_bytes_mut()
    }
}
