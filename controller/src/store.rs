//! The durable Raft log and snapshot store behind raft-rs's `RawNode`.
//!
//! `RaftStore` answers raft-rs's reads from an in-memory [`MemStorage`] and
//! makes every write durable in two files under one directory (the caller
//! passes `<data-dir>/__cluster_metadata-0`, Kafka's name for it).
//!
//! # On-disk format
//!
//! `snapshot.bin`, the latest snapshot only:
//!
//! ```text
//! [u32 LE crc32c of the rest][protobuf bytes of the whole eraftpb::Snapshot]
//! ```
//!
//! The metadata holds index, term and the conf state (the voters); `data`
//! is the metadata image at that index. A fresh store writes one at index 0
//! with empty data, so the voters are durable from the start.
//!
//! `wal.log`, the log after that snapshot, a sequence of records:
//!
//! ```text
//! [u32 LE body length][u32 LE crc32c of (kind byte + body)][u8 kind][body]
//! ```
//!
//! * kind 3, base: `[u64 LE index][u64 LE term]` of the snapshot this WAL
//!   continues. Always the first record, and only there.
//! * kind 1, entries: `[u32 LE count]` then `count` times
//!   `[u32 LE length][protobuf bytes of an eraftpb::Entry]`. The entries are
//!   contiguous; a batch starting at or below the last index overwrites the
//!   log from there on, as `MemStorage::append` does.
//! * kind 2, hard state: protobuf bytes of an eraftpb::HardState; the last
//!   one wins.
//!
//! A body is at most [`WAL_RECORD_BYTES_MAX`]; an append splits its entries
//! over as many records as that needs.
//!
//! # Durability argument
//!
//! Assumed of the media: a completed `fdatasync` makes the bytes written
//! before it survive a crash, with the file's size; `rename` plus an fsync
//! of the directory makes a file replacement atomic and durable. Bytes
//! written after the last `fdatasync` may be lost, torn, zero-filled or
//! persisted out of order.
//!
//! * `sync` appends the buffered records and fdatasyncs: everything given
//!   before it is durable. The hard state goes after the entries of the same
//!   sync, so a torn write never keeps a commit index without its entries.
//! * Recovery reads records until the first bad one (cut short, bad CRC,
//!   unknown kind). If no valid record starts anywhere after it, it is a
//!   torn tail of an unfinished sync and is truncated away (with a warning).
//!   If a valid record follows, acknowledged data is damaged: `Corrupt`.
//! * `compact` and `apply_snapshot` replace `snapshot.bin` first, then
//!   `wal.log` (each: write `*.tmp`, fdatasync, rename, fsync the dir).
//!   A crash between the two leaves the new snapshot with the old WAL, whose
//!   base is older than the snapshot. Recovery then keeps the old WAL's
//!   entries after the snapshot only if the old log holds the snapshot's own
//!   index with the snapshot's term (our compaction: the log continues it);
//!   otherwise (a leader's snapshot our log diverged from, or never reached)
//!   nothing after the snapshot is known to be consistent, and it is dropped:
//!   such entries were never committed. It then finishes the rewrite.
//!
//! [`Durability::NoSync`] skips every fsync (simulation tests only).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

// TODO(limits): move to the crate's limits.rs once it exists.
/// Largest WAL record body; a longer length read from disk is corruption.
pub const WAL_RECORD_BYTES_MAX: usize = 64 << 20;
/// Largest snapshot file.
pub const SNAPSHOT_BYTES_MAX: usize = 1 << 30;
const _: () = assert!(WAL_RECORD_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(WAL_RECORD_BYTES_MAX <= SNAPSHOT_BYTES_MAX);

const WAL_NAME: &str = "wal.log";
const WAL_TMP_NAME: &str = "wal.log.tmp";
const SNAPSHOT_NAME: &str = "snapshot.bin";
const SNAPSHOT_TMP_NAME: &str = "snapshot.bin.tmp";

const RECORD_HEADER_BYTES: usize = 9;
const KIND_ENTRIES: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_BASE: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Real fdatasync / fsync.
    Sync,
    /// No fsync at all: for fast deterministic simulation tests.
    NoSync,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt {path} at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("raft storage: {0}")]
    Raft(#[from] raft::Error),
    #[error("voters changed from {stored:?} to {given:?}; dynamic membership is not supported")]
    VotersChanged { stored: Vec<u64>, given: Vec<u64> },
    #[error("cannot compact to {index}: beyond the commit index {commit}")]
    CompactBeyondCommit { index: u64, commit: u64 },
    #[error("{what} of {bytes} bytes is over the limit of {max} bytes")]
    TooLarge {
        what: &'static str,
        bytes: usize,
        max: usize,
    },
    /// An earlier write or fsync failed: what is on disk is unknown, and
    /// retrying an fsync can report success for lost pages. Restart.
    #[error("store is poisoned by an earlier I/O error")]
    Poisoned,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct RaftStore {
    dir: PathBuf,
    durability: Durability,
    /// The read side raft-rs sees; always equal to disk + `buf`.
    mem: MemStorage,
    /// The latest snapshot, with its data (`MemStorage` keeps only metadata).
    snapshot: Snapshot,
    /// `wal.log`, opened for appending.
    wal: File,
    /// Bytes in `wal.log` (all fdatasynced, under `Durability::Sync`).
    wal_file_bytes: u64,
    /// Records given since the last `sync`.
    buf: Vec<u8>,
    /// The hard state changed since the last `sync`; written after `buf`.
    hard_state_dirty: bool,
    poisoned: bool,
}

impl std::fmt::Debug for RaftStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStore")
            .field("dir", &self.dir)
            .field("snapshot_index", &self.snapshot.get_metadata().index)
            .field("last_index", &self.last_index())
            .field("wal_bytes", &self.wal_bytes())
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl RaftStore {
    /// Opens or creates the store. On a fresh dir, the conf state is
    /// `voters` (all voters, no learners). On an existing dir, recovers the
    /// snapshot and then the WAL (see the module doc).
    pub fn open(
        dir: &Path,
        voters: &[u64],
        durability: Durability,
    ) -> Result<RaftStore, StoreError> {
        prepare_dir(dir, durability)?;
        let wal_path = dir.join(WAL_NAME);
        let wal_exists = wal_path.try_exists().map_err(io_error(&wal_path))?;
        let snapshot = match read_snapshot(&dir.join(SNAPSHOT_NAME))? {
            Some(snapshot) => snapshot,
            None if wal_exists => {
                return Err(corrupt(&wal_path, 0, "wal.log without snapshot.bin"))
            }
            None => {
                let mut snapshot = Snapshot::default();
                snapshot
                    .mut_metadata()
                    .set_conf_state(ConfState::from((voters.to_vec(), vec![])));
                write_snapshot(dir, &snapshot, durability)?;
                snapshot
            }
        };
        let meta = snapshot.get_metadata();
        let (stored, given) = (sorted(meta.get_conf_state().get_voters()), sorted(voters));
        if stored != given {
            return Err(StoreError::VotersChanged { stored, given });
        }

        let recovered = if wal_exists {
            read_wal(&wal_path, durability)?
        } else if meta.index == 0 {
            // Crashed while creating the store, after the snapshot.
            Wal::empty(0, 0)
        } else {
            return Err(corrupt(
                &wal_path,
                0,
                "missing, with a snapshot past index 0",
            ));
        };
        let (entries, hard_state, rewrite) = reconcile(recovered, meta, &wal_path)?;

        let mem = MemStorage::new();
        {
            let mut core = mem.wl();
            if meta.index > 0 {
                core.apply_snapshot(metadata_only(&snapshot))?;
            } else {
                core.set_conf_state(meta.get_conf_state().clone());
            }
            core.append(&entries)?;
            core.set_hardstate(hard_state.clone());
        }
        let (wal, wal_file_bytes) = if rewrite || !wal_exists {
            rewrite_wal(dir, durability, meta, &entries, &hard_state)?
        } else {
            let wal = OpenOptions::new()
                .append(true)
                .open(&wal_path)
                .map_err(io_error(&wal_path))?;
            let bytes = wal.metadata().map_err(io_error(&wal_path))?.len();
            (wal, bytes)
        };
        Ok(RaftStore {
            dir: dir.to_path_buf(),
            durability,
            mem,
            snapshot,
            wal,
            wal_file_bytes,
            buf: Vec::new(),
            hard_state_dirty: false,
            poisoned: false,
        })
    }

    /// Appends entries (from `Ready::entries()`) to the WAL buffer and to
    /// MemStorage. Not durable until `sync`. Panics like
    /// `MemStorage::append` if they are not contiguous with the log (a raft
    /// bug).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        self.check_poisoned()?;
        if entries.is_empty() {
            return Ok(());
        }
        // Encode first: a too large entry must change nothing.
        let mut records = Vec::new();
        put_entries(&mut records, entries)?;
        self.mem.wl().append(entries)?;
        self.buf.extend_from_slice(&records);
        Ok(())
    }

    /// Records a new hard state (term, vote, commit). Not durable until `sync`.
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<(), StoreError> {
        self.check_poisoned()?;
        self.mem.wl().set_hardstate(hs.clone());
        self.hard_state_dirty = true;
        Ok(())
    }

    /// Only the commit index moved (`LightReady::commit_index()`).
    pub fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        self.check_poisoned()?;
        self.mem.wl().mut_hard_state().commit = commit;
        self.hard_state_dirty = true;
        Ok(())
    }

    /// Writes the buffered records and fdatasyncs: after it returns,
    /// everything given before is durable.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.check_poisoned()?;
        if self.hard_state_dirty {
            let hs = self.hard_state();
            put_record(&mut self.buf, KIND_HARD_STATE, &encode(&hs)?);
            self.hard_state_dirty = false;
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut written = self.wal.write_all(&self.buf);
        if written.is_ok() && self.durability == Durability::Sync {
            written = self.wal.sync_data();
        }
        if let Err(source) = written {
            self.poisoned = true;
            return Err(StoreError::Io {
                path: self.dir.join(WAL_NAME),
                source,
            });
        }
        self.wal_file_bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Installs a snapshot received from the leader (`Ready::snapshot()`):
    /// persisted atomically, applied to MemStorage (which drops the whole
    /// log), and the WAL restarted after it. Makes everything given before
    /// durable too.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.check_poisoned()?;
        let meta = snapshot.get_metadata();
        if meta.index < self.first_index() {
            return Err(raft::Error::Store(StorageError::SnapshotOutOfDate).into());
        }
        // As MemStorageCore::apply_snapshot does.
        let mut hs = self.hard_state();
        hs.term = hs.term.max(meta.term);
        hs.commit = meta.index;
        self.install(snapshot, &[], hs)
    }

    /// Takes a snapshot of our own applied state: `data` is the image at
    /// `index` (<= applied <= commit). Persists it, compacts MemStorage up
    /// to `index` and rewrites the WAL with the hard state and the entries
    /// after `index`, so the WAL stays bounded. Makes everything given
    /// before durable too. An index at or below the current snapshot's is a
    /// no-op.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), StoreError> {
        self.check_poisoned()?;
        if index <= self.snapshot.get_metadata().index {
            return Ok(());
        }
        let hs = self.hard_state();
        if index > hs.commit {
            return Err(StoreError::CompactBeyondCommit {
                index,
                commit: hs.commit,
            });
        }
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = self.mem.term(index)?;
        meta.set_conf_state(self.mem.initial_state()?.conf_state);
        let last = self.last_index();
        let entries = if last > index {
            self.mem.entries(
                index + 1,
                last + 1,
                raft::NO_LIMIT,
                GetEntriesContext::empty(false),
            )?
        } else {
            Vec::new()
        };
        self.install(snapshot, &entries, hs)
    }

    /// Replaces the snapshot, then the WAL, then the in-memory state.
    fn install(
        &mut self,
        snapshot: Snapshot,
        entries: &[Entry],
        hs: HardState,
    ) -> Result<(), StoreError> {
        let meta = snapshot.get_metadata();
        let written = write_snapshot(&self.dir, &snapshot, self.durability)
            .and_then(|()| rewrite_wal(&self.dir, self.durability, meta, entries, &hs));
        let (wal, wal_file_bytes) = written.inspect_err(|_| self.poisoned = true)?;
        {
            let mut core = self.mem.wl();
            core.apply_snapshot(metadata_only(&snapshot))?;
            core.append(entries)?;
            core.set_hardstate(hs);
        }
        self.snapshot = snapshot;
        self.wal = wal;
        self.wal_file_bytes = wal_file_bytes;
        self.buf.clear();
        self.hard_state_dirty = false;
        Ok(())
    }

    /// The latest snapshot (possibly the initial one at index 0 with empty
    /// data): the node restores its image from `data` at start.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn last_index(&self) -> u64 {
        self.mem
            .last_index()
            .expect("MemStorage::last_index is infallible")
    }

    pub fn first_index(&self) -> u64 {
        self.mem
            .first_index()
            .expect("MemStorage::first_index is infallible")
    }

    pub fn hard_state(&self) -> HardState {
        self.mem.rl().hard_state().clone()
    }

    /// Bytes in the WAL, synced or buffered (the node compacts when this
    /// grows past a bound).
    pub fn wal_bytes(&self) -> u64 {
        self.wal_file_bytes + self.buf.len() as u64
    }

    fn check_poisoned(&self) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        Ok(())
    }
}

impl Storage for RaftStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        // MemStorage indexes its first entry even for an empty range.
        if low == high && low >= self.first_index() {
            return Ok(Vec::new());
        }
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    /// The stored snapshot with its data (MemStorage's has none).
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

fn sorted(ids: &[u64]) -> Vec<u64> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.into(),
    }
}

fn metadata_only(snapshot: &Snapshot) -> Snapshot {
    let mut meta_only = Snapshot::default();
    meta_only.set_metadata(snapshot.get_metadata().clone());
    meta_only
}

fn encode(message: &impl protobuf::Message) -> Result<Vec<u8>, StoreError> {
    Ok(message.write_to_bytes().map_err(raft::Error::from)?)
}

fn le_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?))
}

fn le_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

// ---- writing ----

fn put_record(buf: &mut Vec<u8>, kind: u8, body: &[u8]) {
    assert!(
        body.len() <= WAL_RECORD_BYTES_MAX,
        "record body over the limit"
    );
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind]), body);
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(body);
}

/// A small valid WAL (base, two entries, a hard state): the fuzz bodies'
/// sample.
#[cfg(test)]
pub(crate) fn sample_wal() -> Vec<u8> {
    let mut buf = Vec::new();
    let mut base = 5u64.to_le_bytes().to_vec();
    base.extend_from_slice(&2u64.to_le_bytes());
    put_record(&mut buf, KIND_BASE, &base);
    let entries: Vec<Entry> = (6..8)
        .map(|index| Entry {
            index,
            term: 2,
            data: b"record".to_vec().into(),
            ..Default::default()
        })
        .collect();
    put_entries(&mut buf, &entries).expect("entries encode");
    let hard_state = HardState {
        term: 2,
        commit: 7,
        ..Default::default()
    };
    let hs = protobuf::Message::write_to_bytes(&hard_state).expect("hard state encodes");
    put_record(&mut buf, KIND_HARD_STATE, &hs);
    buf
}

/// Entries records, as many as `WAL_RECORD_BYTES_MAX` needs.
fn put_entries(buf: &mut Vec<u8>, entries: &[Entry]) -> Result<(), StoreError> {
    fn flush(buf: &mut Vec<u8>, body: &mut Vec<u8>, count: &mut u32) {
        if *count > 0 {
            body[..4].copy_from_slice(&count.to_le_bytes());
            put_record(buf, KIND_ENTRIES, body);
        }
        body.truncate(4);
        *count = 0;
    }
    let (mut body, mut count) = (vec![0; 4], 0u32);
    for entry in entries {
        let bytes = encode(entry)?;
        if 8 + bytes.len() > WAL_RECORD_BYTES_MAX {
            return Err(StoreError::TooLarge {
                what: "raft entry",
                bytes: bytes.len(),
                max: WAL_RECORD_BYTES_MAX - 8,
            });
        }
        if body.len() + 4 + bytes.len() > WAL_RECORD_BYTES_MAX {
            flush(buf, &mut body, &mut count);
        }
        body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        body.extend_from_slice(&bytes);
        count += 1;
    }
    flush(buf, &mut body, &mut count);
    Ok(())
}

/// Creates the directory durably, and removes what an interrupted
/// `replace_file` left.
fn prepare_dir(dir: &Path, durability: Durability) -> Result<(), StoreError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        sync_dir(parent.unwrap_or(Path::new(".")), durability)?;
    }
    for tmp in [WAL_TMP_NAME, SNAPSHOT_TMP_NAME] {
        let path = dir.join(tmp);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error(&path)(e)),
            _ => {}
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path, durability: Durability) -> Result<(), StoreError> {
    if durability == Durability::Sync {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(dir))?;
    }
    Ok(())
}

/// Atomically replaces `dir/name` with `bytes`: tmp file, fdatasync,
/// rename, fsync of the dir.
fn replace_file(
    dir: &Path,
    name: &str,
    tmp_name: &str,
    bytes: &[u8],
    durability: Durability,
) -> Result<(), StoreError> {
    let tmp = dir.join(tmp_name);
    let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(bytes).map_err(io_error(&tmp))?;
    if durability == Durability::Sync {
        file.sync_data().map_err(io_error(&tmp))?;
    }
    fs::rename(&tmp, dir.join(name)).map_err(io_error(&tmp))?;
    sync_dir(dir, durability)
}

fn write_snapshot(
    dir: &Path,
    snapshot: &Snapshot,
    durability: Durability,
) -> Result<(), StoreError> {
    let message = encode(snapshot)?;
    if 4 + message.len() > SNAPSHOT_BYTES_MAX {
        return Err(StoreError::TooLarge {
            what: "snapshot",
            bytes: message.len(),
            max: SNAPSHOT_BYTES_MAX - 4,
        });
    }
    let mut bytes = crc32c::crc32c(&message).to_le_bytes().to_vec();
    bytes.extend_from_slice(&message);
    replace_file(dir, SNAPSHOT_NAME, SNAPSHOT_TMP_NAME, &bytes, durability)
}

/// A new `wal.log` continuing `base`; returns it opened for appending, and
/// its length.
fn rewrite_wal(
    dir: &Path,
    durability: Durability,
    base: &SnapshotMetadata,
    entries: &[Entry],
    hs: &HardState,
) -> Result<(File, u64), StoreError> {
    let mut buf = Vec::new();
    let mut body = base.index.to_le_bytes().to_vec();
    body.extend_from_slice(&base.term.to_le_bytes());
    put_record(&mut buf, KIND_BASE, &body);
    put_entries(&mut buf, entries)?;
    put_record(&mut buf, KIND_HARD_STATE, &encode(hs)?);
    replace_file(dir, WAL_NAME, WAL_TMP_NAME, &buf, durability)?;
    let path = dir.join(WAL_NAME);
    let wal = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io_error(&path))?;
    Ok((wal, buf.len() as u64))
}

// ---- reading ----

fn read_snapshot(path: &Path) -> Result<Option<Snapshot>, StoreError> {
    let len = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    if len > SNAPSHOT_BYTES_MAX as u64 {
        return Err(corrupt(path, 0, format!("{len} bytes, over the limit")));
    }
    let bytes = fs::read(path).map_err(io_error(path))?;
    let (Some(crc), Some(message)) = (le_u32(&bytes), bytes.get(4..)) else {
        return Err(corrupt(path, 0, "shorter than its crc"));
    };
    if crc32c::crc32c(message) != crc {
        return Err(corrupt(path, 0, "crc mismatch"));
    }
    let snapshot =
        Snapshot::parse_from_bytes(message).map_err(|e| corrupt(path, 4, e.to_string()))?;
    Ok(Some(snapshot))
}

/// What a WAL file holds: the log continuing its base snapshot.
pub(crate) struct Wal {
    base_index: u64,
    base_term: u64,
    /// `log[i].index == base_index + 1 + i`.
    log: Vec<Entry>,
    hard_state: HardState,
}

impl Wal {
    fn empty(base_index: u64, base_term: u64) -> Wal {
        Wal {
            base_index,
            base_term,
            log: Vec::new(),
            hard_state: HardState::default(),
        }
    }

    /// Replays one entries record, overwriting the log from its first index.
    fn append(&mut self, batch: Vec<Entry>) -> Result<(), String> {
        let first = batch.first().map_or(0, |e| e.index);
        if batch.iter().zip(first..).any(|(e, index)| e.index != index) {
            return Err("entries in a record are not contiguous".into());
        }
        let next = self.base_index + 1 + self.log.len() as u64;
        if first <= self.base_index || first > next {
            return Err(format!(
                "batch at {first} outside [{}, {next}]",
                self.base_index + 1
            ));
        }
        self.log.truncate((first - self.base_index - 1) as usize);
        self.log.extend(batch);
        Ok(())
    }
}

/// One record parsed at an offset, or why there is none there.
enum Parsed<'a> {
    Record {
        kind: u8,
        body: &'a [u8],
        end: usize,
    },
    /// `end`: where the record's own length says it ends, if inside the file.
    Bad { reason: String, end: Option<usize> },
}

fn parse_record(bytes: &[u8], at: usize) -> Parsed<'_> {
    let bad = |reason: &str, end| Parsed::Bad {
        reason: reason.into(),
        end,
    };
    let Some(header) = bytes.get(at..at + RECORD_HEADER_BYTES) else {
        return bad("record header cut short", None);
    };
    let (Some(len), Some(crc), kind) = (le_u32(header), le_u32(&header[4..]), header[8]) else {
        return bad("record header cut short", None);
    };
    let len = len as usize;
    if len > WAL_RECORD_BYTES_MAX {
        return bad("record length over the limit", None);
    }
    let end = at + RECORD_HEADER_BYTES + len;
    let Some(body) = bytes.get(at + RECORD_HEADER_BYTES..end) else {
        return bad("record cut short", None);
    };
    if !matches!(kind, KIND_ENTRIES | KIND_HARD_STATE | KIND_BASE) {
        return bad("unknown record kind", Some(end));
    }
    if crc32c::crc32c_append(crc32c::crc32c(&[kind]), body) != crc {
        return bad("crc mismatch", Some(end));
    }
    Parsed::Record { kind, body, end }
}

/// Where the first valid record after a bad one at `at` starts, if any.
fn valid_record_after(bytes: &[u8], at: usize, claimed_end: Option<usize>) -> Option<usize> {
    let valid = |p: &usize| matches!(parse_record(bytes, *p), Parsed::Record { .. });
    // Usually a flipped bit: the next record is where the length says.
    claimed_end
        .filter(valid)
        .or_else(|| (at + 1..bytes.len()).find(valid))
}

fn decode_entries(body: &[u8]) -> Result<Vec<Entry>, String> {
    let count = le_u32(body).ok_or("entries record shorter than its count")? as usize;
    // Each entry takes at least its 4 length bytes: bounds the allocation.
    if count == 0 || count > body.len() / 4 {
        return Err(format!(
            "entry count {count} impossible in {} bytes",
            body.len()
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut at = 4;
    for _ in 0..count {
        let len = body
            .get(at..)
            .and_then(le_u32)
            .ok_or("entry length cut short")? as usize;
        let bytes = body.get(at + 4..at + 4 + len).ok_or("entry cut short")?;
        entries.push(Entry::parse_from_bytes(bytes).map_err(|e| e.to_string())?);
        at += 4 + len;
    }
    if at != body.len() {
        return Err("trailing bytes after the entries".into());
    }
    Ok(entries)
}

/// The WAL in `bytes` and where its valid records end (a torn tail after
/// that is for the caller to truncate); or where it is corrupt and why.
/// No I/O: the fuzz target (controller/fuzz) drives it.
pub(crate) fn parse_wal(bytes: &[u8]) -> Result<(Wal, usize), (usize, String)> {
    let mut wal: Option<Wal> = None;
    let mut at = 0;
    while at < bytes.len() {
        let (kind, body, end) = match parse_record(bytes, at) {
            Parsed::Record { kind, body, end } => (kind, body, end),
            Parsed::Bad { reason, end } => {
                if let Some(valid_at) = valid_record_after(bytes, at, end) {
                    let reason = format!("{reason}, with a valid record after it at {valid_at}");
                    return Err((at, reason));
                }
                break;
            }
        };
        let applied = match (kind, wal.as_mut()) {
            (KIND_BASE, None) => match (le_u64(body), body.get(8..).and_then(le_u64)) {
                (Some(index), Some(term)) if body.len() == 16 => {
                    wal = Some(Wal::empty(index, term));
                    Ok(())
                }
                _ => Err("base record is not 16 bytes".to_string()),
            },
            (_, None) => Err("first record is not the base".into()),
            (KIND_BASE, Some(_)) => Err("second base record".into()),
            (KIND_ENTRIES, Some(wal)) => decode_entries(body).and_then(|batch| wal.append(batch)),
            (_, Some(wal)) => HardState::parse_from_bytes(body)
                .map(|hs| wal.hard_state = hs)
                .map_err(|e| e.to_string()),
        };
        applied.map_err(|reason| (at, reason))?;
        at = end;
    }
    match wal {
        Some(wal) => Ok((wal, at)),
        None => Err((0, "no base record".into())),
    }
}

/// Reads `wal.log`, truncating a torn tail.
fn read_wal(path: &Path, durability: Durability) -> Result<Wal, StoreError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let (wal, at) = parse_wal(&bytes).map_err(|(at, reason)| corrupt(path, at, reason))?;
    if at < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            offset = at,
            bytes = bytes.len() - at,
            "truncating a torn WAL tail"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_error(path))?;
        file.set_len(at as u64).map_err(io_error(path))?;
        if durability == Durability::Sync {
            file.sync_data().map_err(io_error(path))?;
        }
    }
    Ok(wal)
}

/// Lines the recovered WAL up with the snapshot: the entries after it, the
/// hard state, and whether the WAL must be rewritten (an interrupted
/// `compact` or `apply_snapshot`, see the module doc).
fn reconcile(
    wal: Wal,
    snap: &SnapshotMetadata,
    path: &Path,
) -> Result<(Vec<Entry>, HardState, bool), StoreError> {
    let (index, term) = (snap.index, snap.term);
    let (log, mut hs, mut rewrite) = match wal.base_index.cmp(&index) {
        std::cmp::Ordering::Greater => {
            return Err(corrupt(path, 0, "WAL base is past the snapshot"))
        }
        std::cmp::Ordering::Equal if wal.base_term != term => {
            return Err(corrupt(
                path,
                0,
                "WAL base term differs from the snapshot's",
            ));
        }
        std::cmp::Ordering::Equal => (wal.log, wal.hard_state, false),
        std::cmp::Ordering::Less => {
            let at = (index - wal.base_index - 1) as usize;
            let mut log = wal.log;
            let log = match log.get(at) {
                Some(entry) if entry.term == term => log.split_off(at + 1),
                _ => Vec::new(),
            };
            tracing::warn!(
                snapshot_index = index,
                kept = log.len(),
                "finishing an interrupted WAL rewrite"
            );
            (log, wal.hard_state, true)
        }
    };
    // What installing the snapshot did to the hard state.
    hs.term = hs.term.max(term);
    hs.commit = hs.commit.max(index);
    let last = log.last().map_or(index, |e| e.index);
    if hs.commit > last {
        // Raft never truncates below the commit index, so only damage can
        // do this. Lowering it is safe (Raft re-learns it from the leader);
        // persist the lower one at once, or a later entry at those indices
        // would look committed on the next open.
        tracing::warn!(
            commit = hs.commit,
            last,
            "commit index past the recovered log"
        );
        hs.commit = last;
        rewrite = true;
    }
    Ok((log, hs, rewrite))
}
