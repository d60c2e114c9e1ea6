//! The broker's log directories (Kafka's `log.dirs`): which one a new
//! partition goes to, and their health, shared by every core. The first is
//! also the metadata directory (`__cluster_metadata-0`, the topic store).
//! A directory goes offline on the first I/O error of any of its logs
//! (storage's `LogDirHealth`) or when it is unusable at start; its
//! partitions then answer KAFKA_STORAGE_ERROR and new partitions go to the
//! others. Placement is a plain decision (no I/O here): the caller says
//! which directories already hold the partition.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use storage::LogDirHealth;

pub struct LogDirs {
    dirs: Vec<Arc<LogDirHealth>>,
}

/// What runs when the last online directory goes offline: the server's
/// halts the process, as Kafka does ("all log dirs have failed"), so that a
/// cluster moves this broker's leaderships instead of it serving nothing.
pub type AllOffline = fn(&LogDirs);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlaceError {
    /// Kafka refuses to start with a partition in two log directories.
    #[error("partition directory {name} exists in more than one log directory: {dirs:?}")]
    Duplicate { name: String, dirs: Vec<PathBuf> },
    #[error("no log directory is online for partition {name}")]
    NoneOnline { name: String },
    /// An existing partition found in no online directory while one is
    /// offline: it may be there. Kafka refuses to recreate it ("Can not
    /// create log ... because log directories ... are offline"); it stays
    /// offline until a restart finds it.
    #[error("partition {name} is in no online log directory and {offline} is offline")]
    MaybeOffline { name: String, offline: PathBuf },
}

impl LogDirs {
    pub fn new(paths: &[PathBuf]) -> Arc<LogDirs> {
        Arc::new(LogDirs {
            dirs: paths.iter().map(|path| LogDirHealth::new(path)).collect(),
        })
    }

    /// As `new`, and `all_offline` runs when the last online directory goes
    /// offline, from the call that took it offline (two calls racing on
    /// two threads may both run it).
    pub fn with_all_offline(paths: &[PathBuf], all_offline: AllOffline) -> Arc<LogDirs> {
        Arc::new_cyclic(|me: &Weak<LogDirs>| {
            let dirs = paths
                .iter()
                .map(|path| {
                    let me = me.clone();
                    LogDirHealth::with_hook(
                        path,
                        Box::new(move |_| {
                            if let Some(dirs) = me.upgrade() {
                                if dirs.online() == 0 {
                                    all_offline(&dirs);
                                }
                            }
                        }),
                    )
                })
                .collect();
            LogDirs { dirs }
        })
    }

    /// How many directories are online.
    pub fn online(&self) -> usize {
        self.dirs.iter().filter(|d| !d.is_offline()).count()
    }

    pub fn all(&self) -> &[Arc<LogDirHealth>] {
        &self.dirs
    }

    /// The index of the directory `dir` is, if it is one of these.
    pub fn index_of(&self, dir: &Arc<LogDirHealth>) -> Option<usize> {
        self.dirs.iter().position(|d| Arc::ptr_eq(d, dir))
    }

    /// Where partition directory `name` lives: the one log directory that
    /// already holds it (`exists` says which do, offline or not, so that a
    /// partition is never recreated empty elsewhere; a directory that
    /// cannot be checked must count as holding it), else the online
    /// directory holding the fewest of the caller's partitions (`counts`,
    /// per directory; Kafka counts the whole broker's), the first of equals.
    /// Only a `new` partition (created, or assigned here, after the broker
    /// started) may be created while a directory is offline.
    pub fn place(
        &self,
        name: &str,
        exists: impl Fn(&Path) -> bool,
        counts: &[usize],
        new: bool,
    ) -> Result<usize, PlaceError> {
        let holding: Vec<usize> = (0..self.dirs.len())
            .filter(|&i| exists(&self.dirs[i].path().join(name)))
            .collect();
        match holding.as_slice() {
            [one] => return Ok(*one),
            [] => {}
            _ => {
                return Err(PlaceError::Duplicate {
                    name: name.to_string(),
                    dirs: holding
                        .iter()
                        .map(|&i| self.dirs[i].path().to_path_buf())
                        .collect(),
                })
            }
        }
        if let Some(offline) = self.dirs.iter().find(|d| !new && d.is_offline()) {
            return Err(PlaceError::MaybeOffline {
                name: name.to_string(),
                offline: offline.path().to_path_buf(),
            });
        }
        (0..self.dirs.len())
            .filter(|&i| !self.dirs[i].is_offline())
            .min_by_key(|&i| (counts.get(i).copied().unwrap_or(0), i))
            .ok_or_else(|| PlaceError::NoneOnline {
                name: name.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn dirs(n: usize) -> Arc<LogDirs> {
        let paths: Vec<PathBuf> = (0..n).map(|i| PathBuf::from(format!("/d{i}"))).collect();
        LogDirs::new(&paths)
    }

    fn existing(paths: &[&str]) -> impl Fn(&Path) -> bool {
        let set: HashSet<PathBuf> = paths.iter().map(PathBuf::from).collect();
        move |p: &Path| set.contains(p)
    }

    #[test]
    fn a_new_partition_goes_to_the_online_directory_with_the_fewest() {
        let dirs = dirs(3);
        assert_eq!(dirs.place("t-0", existing(&[]), &[2, 1, 1], true), Ok(1));
        assert_eq!(dirs.place("t-0", existing(&[]), &[0, 0, 0], true), Ok(0));
        dirs.all()[1].mark_offline("EIO");
        assert_eq!(dirs.place("t-0", existing(&[]), &[2, 1, 1], true), Ok(2));
        assert_eq!(dirs.place("t-0", existing(&[]), &[], true), Ok(0));
    }

    static HALTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[test]
    fn the_last_directory_going_offline_runs_the_hook_once() {
        use std::sync::atomic::Ordering;
        let paths = [PathBuf::from("/h0"), PathBuf::from("/h1")];
        let dirs = LogDirs::with_all_offline(&paths, |dirs| {
            assert_eq!(dirs.online(), 0);
            HALTED.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(dirs.online(), 2);
        dirs.all()[1].mark_offline("ENOSPC");
        assert_eq!(HALTED.load(Ordering::SeqCst), 0, "one is still online");
        dirs.all()[0].mark_offline("EIO");
        dirs.all()[0].mark_offline("EIO again");
        assert_eq!(HALTED.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_existing_partition_stays_where_it_is_even_offline() {
        let dirs = dirs(2);
        dirs.all()[1].mark_offline("EIO");
        assert_eq!(
            dirs.place("t-3", existing(&["/d1/t-3"]), &[0, 9], false),
            Ok(1)
        );
    }

    #[test]
    fn a_partition_in_two_directories_and_no_online_directory_are_refused() {
        let dirs = dirs(2);
        assert_eq!(
            dirs.place("t-1", existing(&["/d0/t-1", "/d1/t-1"]), &[0, 0], false),
            Err(PlaceError::Duplicate {
                name: "t-1".into(),
                dirs: vec![PathBuf::from("/d0"), PathBuf::from("/d1")],
            })
        );
        for dir in dirs.all() {
            dir.mark_offline("ENOSPC");
        }
        assert_eq!(
            dirs.place("t-1", existing(&[]), &[0, 0], true),
            Err(PlaceError::NoneOnline { name: "t-1".into() })
        );
    }

    #[test]
    fn an_existing_partition_found_nowhere_is_not_recreated_while_a_directory_is_offline() {
        let dirs = dirs(2);
        assert_eq!(dirs.place("t-2", existing(&[]), &[0, 0], false), Ok(0));
        dirs.all()[1].mark_offline("EIO");
        assert_eq!(
            dirs.place("t-2", existing(&[]), &[0, 0], false),
            Err(PlaceError::MaybeOffline {
                name: "t-2".into(),
                offline: PathBuf::from("/d1"),
            })
        );
        // Found in the online one, or new: placed as before.
        assert_eq!(
            dirs.place("t-2", existing(&["/d0/t-2"]), &[0, 0], false),
            Ok(0)
        );
        assert_eq!(dirs.place("t-2", existing(&[]), &[0, 0], true), Ok(0));
    }
}
