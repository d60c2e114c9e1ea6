//! The health of one log directory (Kafka's `log.dirs` entry), shared by
//! every log in it on every core. The first I/O error of any of its logs
//! takes the whole directory offline until the process restarts, as Kafka
//! does: a disk that failed one write is not trusted with the others' next
//! ones. Plain state, no I/O: the logs consult it, the broker reports it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Called once, by the call that took the directory offline, after it did
/// (the broker's: halt when no directory is left, as Kafka does).
pub type OfflineHook = Box<dyn Fn(&LogDirHealth) + Send + Sync>;

pub struct LogDirHealth {
    path: PathBuf,
    offline: AtomicBool,
    /// Why it went offline (the first error), for logs and DescribeLogDirs.
    cause: Mutex<Option<String>>,
    on_offline: Option<OfflineHook>,
}

impl std::fmt::Debug for LogDirHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogDirHealth")
            .field("path", &self.path)
            .field("offline", &self.is_offline())
            .field("cause", &self.cause())
            .finish()
    }
}

impl LogDirHealth {
    pub fn new(path: &Path) -> Arc<LogDirHealth> {
        Self::build(path, None)
    }

    pub fn with_hook(path: &Path, on_offline: OfflineHook) -> Arc<LogDirHealth> {
        Self::build(path, Some(on_offline))
    }

    fn build(path: &Path, on_offline: Option<OfflineHook>) -> Arc<LogDirHealth> {
        Arc::new(LogDirHealth {
            path: path.to_path_buf(),
            offline: AtomicBool::new(false),
            cause: Mutex::new(None),
            on_offline,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    /// The first error that took the directory offline.
    pub fn cause(&self) -> Option<String> {
        match self.cause.lock() {
            Ok(cause) => cause.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Takes the directory offline; true for the call that did it (the one
    /// that logs), false if it already was.
    pub fn mark_offline(&self, cause: &str) -> bool {
        {
            let mut slot = match self.cause.lock() {
                Ok(slot) => slot,
                Err(poisoned) => poisoned.into_inner(),
            };
            if self.offline.swap(true, Ordering::AcqRel) {
                return false;
            }
            *slot = Some(cause.to_string());
        }
        // Outside the lock: the hook reads this directory's cause.
        if let Some(hook) = &self.on_offline {
            hook(self);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_is_kept_and_reported_once() {
        let dir = LogDirHealth::new(Path::new("/data/a"));
        assert!(!dir.is_offline());
        assert_eq!(dir.cause(), None);
        assert!(dir.mark_offline("EIO on write"));
        assert!(!dir.mark_offline("ENOSPC on roll"));
        assert!(dir.is_offline());
        assert_eq!(dir.cause().as_deref(), Some("EIO on write"));
    }

    #[test]
    fn the_hook_runs_once_after_the_directory_went_offline() {
        use std::sync::atomic::AtomicUsize;
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let dir = LogDirHealth::with_hook(
            Path::new("/data/b"),
            Box::new(move |dir| {
                assert!(dir.is_offline());
                assert_eq!(dir.cause().as_deref(), Some("EIO"));
                seen.fetch_add(1, Ordering::SeqCst);
            }),
        );
        assert!(dir.mark_offline("EIO"));
        assert!(!dir.mark_offline("EIO again"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
