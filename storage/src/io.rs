//! The seam between the log and glommio's DMA files: aligned whole-file
//! writes, fault injection for tests, file naming.

use crate::error::{Result, StorageError};
use crate::limits::WRITE_ALIGN_BYTES;
use glommio::io::{DmaFile, OpenOptions};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Deterministic fault injection. Production code passes the default (no
/// faults); tests arm it to prove that an fsync error poisons the log.
#[derive(Debug, Default)]
pub struct Faults {
    fail_fdatasync: Cell<bool>,
}

impl Faults {
    pub fn new() -> Rc<Faults> {
        Rc::new(Faults::default())
    }

    /// The next fdatasync of a segment fails with EIO.
    pub fn fail_next_fdatasync(&self) {
        self.fail_fdatasync.set(true);
    }

    pub(crate) fn fdatasync_error(&self) -> Option<io::Error> {
        self.fail_fdatasync
            .replace(false)
            .then(|| io::Error::from_raw_os_error(libc::EIO))
    }
}

pub(crate) fn align_down(value: u64) -> u64 {
    value & !(WRITE_ALIGN_BYTES - 1)
}

pub(crate) fn align_up(value: u64) -> u64 {
    align_down(value + WRITE_ALIGN_BYTES - 1)
}

pub(crate) fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// A segment's `.log`, opened O_DSYNC: each write is durable when it
/// completes, as if an fdatasync followed it. The log only ever writes a
/// segment in a group commit that must end durable (every flush, the
/// write-behind ones included, is write + sync), so one io_uring write does
/// what a write and an fdatasync did: ext4 sends extending direct writes
/// to an io-wq worker either way, and this makes one trip to a worker and
/// one completion per commit instead of two (docs/benchmarks.md, "Produce
/// path CPU per batch"). Truncations are not covered and are synced apart.
pub(crate) async fn open_segment_log(path: &Path, create: bool) -> Result<DmaFile> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .custom_flags(libc::O_DSYNC)
        .dma_open(path)
        .await
        .map_err(|e| StorageError::io(format!("open {}", path.display()), e))
}

/// Replaces `path` with exactly `bytes`, durably: one aligned direct write,
/// a truncate to the true length, fdatasync.
pub(crate) async fn write_whole_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let context = || format!("write {}", path.display());
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(path)
        .await
        .map_err(|e| StorageError::io(context(), e))?;
    if !bytes.is_empty() {
        let mut buffer = file.alloc_dma_buffer(align_up(bytes.len() as u64) as usize);
        let target = buffer.as_bytes_mut();
        target[..bytes.len()].copy_from_slice(bytes);
        target[bytes.len()..].fill(0);
        file.write_at(buffer, 0)
            .await
            .map_err(|e| StorageError::io(context(), e))?;
        file.truncate(bytes.len() as u64)
            .await
            .map_err(|e| StorageError::io(context(), e))?;
    }
    file.fdatasync()
        .await
        .map_err(|e| StorageError::io(context(), e))?;
    file.close()
        .await
        .map_err(|e| StorageError::io(context(), e))?;
    Ok(())
}

/// Whole file contents, or None if it does not exist.
pub(crate) async fn read_whole_file(path: &Path) -> Result<Option<Vec<u8>>> {
    let context = || format!("read {}", path.display());
    let file = match DmaFile::open(path).await {
        Ok(file) => file,
        Err(e) => {
            let e: io::Error = e.into();
            if e.kind() == io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(StorageError::io(context(), e));
        }
    };
    let size = file
        .file_size()
        .await
        .map_err(|e| StorageError::io(context(), e))?;
    let bytes = if size == 0 {
        Vec::new()
    } else {
        let read = file
            .read_at(0, size as usize)
            .await
            .map_err(|e| StorageError::io(context(), e))?;
        read.to_vec()
    };
    file.close()
        .await
        .map_err(|e| StorageError::io(context(), e))?;
    Ok(Some(bytes))
}

pub(crate) async fn sync_dir(dir: &Path) -> Result<()> {
    let context = || format!("fsync directory {}", dir.display());
    let handle = glommio::io::Directory::open(dir)
        .await
        .map_err(|e| StorageError::io(context(), e))?;
    handle
        .sync()
        .await
        .map_err(|e| StorageError::io(context(), e))?;
    handle
        .close()
        .await
        .map_err(|e| StorageError::io(context(), e))
}

thread_local! {
    /// Devices whose iopoll probe this thread has settled (see below).
    static IOPOLL_SETTLED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// glommio 0.9 decides once per thread and device whether reads may use the
/// io_uring poll ring, by probing a read on the first DMA file it opens. If
/// that file is empty the read succeeds without touching the device, glommio
/// wrongly enables the poll ring, and every later read on that device fails
/// with EOPNOTSUPP (seen on virtio disks). So before the first DMA open on a
/// device, open a file that holds real bytes, making the probe meaningful.
pub(crate) async fn settle_iopoll_probe(dir: &Path) -> Result<()> {
    let context = || format!("iopoll probe in {}", dir.display());
    let device = std::fs::metadata(dir)
        .map_err(|e| StorageError::io(context(), e))?
        .dev();
    if IOPOLL_SETTLED.with(|settled| settled.borrow().contains(&device)) {
        return Ok(());
    }
    let path = dir.join(".iopoll-probe");
    std::fs::write(&path, [0xa5u8; WRITE_ALIGN_BYTES as usize])
        .map_err(|e| StorageError::io(context(), e))?;
    let opened = DmaFile::open(&path).await;
    let removed = std::fs::remove_file(&path);
    let file = opened.map_err(|e| StorageError::io(context(), e))?;
    file.close()
        .await
        .map_err(|e| StorageError::io(context(), e))?;
    removed.map_err(|e| StorageError::io(context(), e))?;
    IOPOLL_SETTLED.with(|settled| settled.borrow_mut().insert(device));
    Ok(())
}

/// (total, usable) bytes of the file system holding `dir` (statvfs):
/// usable is what an unprivileged writer may still use (`f_bavail`).
pub fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    #[expect(unsafe_code)]
    // SAFETY: `path` is a NUL-terminated string that outlives the call and
    // `stat` is a writable statvfs; statvfs(3) writes only into it.
    let status = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if status != 0 {
        return None;
    }
    #[expect(unsafe_code)]
    // SAFETY: statvfs returned 0, so it filled the struct (and it was
    // zeroed before, so every field is initialised either way).
    let stat = unsafe { stat.assume_init() };
    let block = u128::from(stat.f_frsize);
    let clamp = |blocks: u64| u64::try_from(u128::from(blocks) * block).unwrap_or(u64::MAX);
    Some((clamp(stat.f_blocks), clamp(stat.f_bavail)))
}
