//! The partitions one core owns: opening (and recovering) them, dropping
//! and reconfiguring them when their topic changes, retention, the clean
//! close, and the core's append count that fetch long-polls wait on.
//! Single-threaded: `Rc` + `RefCell`, never borrowed across an `.await`.
//! Reaching other cores is `core.rs`'s business, not this one's.

use crate::error::BrokerError;
use crate::log_dirs::{LogDirs, PlaceError};
use crate::metadata::topics::Topic;
use crate::partition::Partition;
use crate::router::owner_of;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use storage::{CoreMemory, Faults, Log, LogConfig, LogOptions, StorageError};

pub struct Shard {
    core: usize,
    cores: usize,
    /// This broker: only partitions it holds a replica of are opened.
    node_id: i32,
    /// Where partitions live (`log.dirs`), and which of those are online.
    log_dirs: Arc<LogDirs>,
    /// The broker's `log.*` defaults that topic overrides apply to.
    defaults: LogConfig,
    partitions: RefCell<HashMap<(String, i32), Rc<Partition>>>,
    /// Kafka's offline replicas: partitions this core would hold that were
    /// not opened because their log directory (or one that may hold them)
    /// was offline; (directory, cause) for KAFKA_STORAGE_ERROR until a
    /// restart.
    offline: RefCell<HashMap<(String, i32), (String, String)>>,
    memory: Rc<CoreMemory>,
}

impl Shard {
    pub fn new(
        core: usize,
        cores: usize,
        node_id: i32,
        log_dirs: Arc<LogDirs>,
        defaults: LogConfig,
        memory: Rc<CoreMemory>,
    ) -> Shard {
        Shard {
            core,
            cores,
            node_id,
            log_dirs,
            defaults,
            partitions: RefCell::new(HashMap::new()),
            offline: RefCell::new(HashMap::new()),
            memory,
        }
    }

    pub fn is_local(&self, topic: &str, partition: i32) -> bool {
        owner_of(topic, partition, self.cores) == self.core
    }

    /// This core's open partitions per log directory.
    fn partitions_per_dir(&self) -> Vec<usize> {
        let mut counts = vec![0; self.log_dirs.all().len()];
        for partition in self.partitions.borrow().values() {
            if let Some(i) = self.log_dirs.index_of(partition.log().log_dir()) {
                counts[i] += 1;
            }
        }
        counts
    }

    /// Opens (or recovers) the topic's partitions that this broker hosts,
    /// this core owns and it has not opened yet; returns their indexes.
    /// `new`: the partitions were created or assigned here after the broker
    /// started (not the ones of the image it started with), so one found in
    /// no directory may be created even while a directory is offline.
    pub async fn open_partitions(&self, topic: &Topic, new: bool) -> Result<Vec<i32>, BrokerError> {
        let config = topic.log_config(&self.defaults)?;
        let mut opened = Vec::new();
        let mut counts = self.partitions_per_dir();
        for partition in 0..topic.partitions {
            if !self.is_local(&topic.name, partition)
                || !topic.hosted_by(partition, self.node_id)
                || self.partition(&topic.name, partition).is_some()
            {
                continue;
            }
            let name = format!("{}-{partition}", topic.name);
            // A directory that cannot be checked (EIO, EACCES) counts as
            // holding the partition: it is never recreated elsewhere. A
            // file where the log directory should be holds nothing.
            let held = |path: &std::path::Path| match path.try_exists() {
                Ok(exists) => exists,
                Err(error) => error.kind() != std::io::ErrorKind::NotADirectory,
            };
            let index = match self.log_dirs.place(&name, held, &counts, new) {
                Ok(index) => index,
                Err(PlaceError::MaybeOffline { offline, .. }) => {
                    let cause =
                        "not found in an online log directory, and an offline one may hold it";
                    tracing::error!(topic = %topic.name, partition, log_dir = %offline.display(),
                        "partition offline: {cause}; not recreated empty");
                    self.set_offline(
                        &topic.name,
                        partition,
                        offline.display().to_string(),
                        cause.into(),
                    );
                    continue;
                }
                Err(other) => return Err(other.into()),
            };
            let log_dir = self.log_dirs.all()[index].clone();
            if log_dir.is_offline() {
                // Kafka's offline replica: its directory failed; it is
                // not opened (nor recreated elsewhere) until a restart.
                tracing::error!(topic = %topic.name, partition, log_dir = %log_dir.path().display(),
                    "partition offline: its log directory is offline");
                let cause = log_dir.cause().unwrap_or_else(|| "offline".into());
                self.set_offline(
                    &topic.name,
                    partition,
                    log_dir.path().display().to_string(),
                    cause,
                );
                continue;
            }
            counts[index] += 1;
            let dir = log_dir.path().join(&name);
            let options = LogOptions {
                config: config.clone(),
                memory: self.memory.clone(),
                faults: Rc::new(Faults::default()),
                log_dir,
            };
            let (log, report) =
                Log::open(&dir, options)
                    .await
                    .map_err(|source| BrokerError::OpenPartition {
                        dir: dir.clone(),
                        source,
                    })?;
            if report.truncated_bytes() > 0 {
                tracing::warn!(topic = %topic.name, partition, bytes = report.truncated_bytes(), "recovered partition");
            }
            let min_insync = config.min_insync_replicas;
            let entry = Rc::new(Partition::open(log, min_insync).await);
            self.partitions
                .borrow_mut()
                .insert((topic.name.clone(), partition), entry);
            opened.push(partition);
        }
        Ok(opened)
    }

    fn set_offline(&self, topic: &str, partition: i32, dir: String, cause: String) {
        self.offline
            .borrow_mut()
            .insert((topic.to_string(), partition), (dir, cause));
    }

    /// This core's partitions it cannot serve: not opened (offline at
    /// start) or in a log directory that went offline since; sorted.
    pub fn offline_names(&self) -> Vec<(String, i32)> {
        let mut names: Vec<(String, i32)> = self.offline.borrow().keys().cloned().collect();
        names.extend(
            self.partitions
                .borrow()
                .iter()
                .filter(|(_, p)| p.log().log_dir().is_offline())
                .map(|(name, _)| name.clone()),
        );
        names.sort();
        names
    }

    /// The error of a replica here that cannot serve (Kafka's offline
    /// replica, KAFKA_STORAGE_ERROR, answered before any role check): not
    /// opened because of an offline directory, or opened in one that went
    /// offline since.
    pub fn offline_error(&self, topic: &str, partition: i32) -> Option<StorageError> {
        // The hot path: every directory online (one atomic load each).
        if self.log_dirs.online() == self.log_dirs.all().len() {
            return None;
        }
        let key = (topic.to_string(), partition);
        if let Some((dir, cause)) = self.offline.borrow().get(&key) {
            return Some(StorageError::LogDirOffline {
                dir: dir.clone(),
                cause: cause.clone(),
            });
        }
        let held = self.partitions.borrow().get(&key).cloned()?;
        let dir = held.log().log_dir();
        dir.is_offline().then(|| StorageError::LogDirOffline {
            dir: dir.path().display().to_string(),
            cause: dir.cause().unwrap_or_default(),
        })
    }

    /// Deletes this core's partitions of a deleted topic.
    pub async fn drop_partitions(&self, name: &str, partitions: i32) {
        for partition in 0..partitions {
            self.offline
                .borrow_mut()
                .remove(&(name.to_string(), partition));
            let removed = self
                .partitions
                .borrow_mut()
                .remove(&(name.to_string(), partition));
            if let Some(entry) = removed {
                if let Err(error) = entry.delete().await {
                    tracing::error!(topic = name, partition, %error, "delete partition");
                }
            }
        }
    }

    /// Deletes this core's partitions of `topic` that this broker no
    /// longer holds a replica of (moved away by a reassignment).
    pub async fn drop_unhosted(&self, topic: &Topic) {
        for partition in 0..topic.partitions {
            if topic.hosted_by(partition, self.node_id) {
                continue;
            }
            let removed = self
                .partitions
                .borrow_mut()
                .remove(&(topic.name.clone(), partition));
            if let Some(entry) = removed {
                tracing::info!(topic = %topic.name, partition, "replica moved away: deleting it");
                if let Err(error) = entry.delete().await {
                    tracing::error!(topic = %topic.name, partition, %error, "delete partition");
                }
            }
        }
    }

    pub fn reconfigure_partitions(&self, name: &str, partitions: i32, config: &LogConfig) {
        for partition in 0..partitions {
            if let Some(entry) = self.partition(name, partition) {
                entry.log().set_config(config.clone());
                entry.set_min_insync(config.min_insync_replicas);
            }
        }
    }

    /// A partition this core owns (None: unknown, or owned by another core).
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Rc<Partition>> {
        self.partitions
            .borrow()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// This core's partitions with their names, sorted (for the replica
    /// fetchers and the ISR expiry).
    pub fn named(&self) -> Vec<(String, i32, Rc<Partition>)> {
        let mut all: Vec<_> = self
            .partitions
            .borrow()
            .iter()
            .map(|((topic, index), p)| (topic.clone(), *index, p.clone()))
            .collect();
        all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        all
    }

    /// The sum of these partitions' change counts (the ones held here).
    pub fn changes_of<'a>(&self, partitions: impl Iterator<Item = (&'a str, i32)>) -> u64 {
        let held = self.partitions.borrow();
        partitions
            .filter_map(|(topic, index)| held.get(&(topic.to_string(), index)))
            .map(|p| p.changes().count())
            .sum()
    }

    pub fn memory(&self) -> &CoreMemory {
        &self.memory
    }

    fn all(&self) -> Vec<Rc<Partition>> {
        self.partitions.borrow().values().cloned().collect()
    }

    /// Applies `retention.ms` / `retention.bytes` to this core's partitions
    /// every `interval` (`log.retention.check.interval.ms`), as Kafka's log
    /// cleaner thread does for deletion. Runs until the executor stops.
    pub async fn enforce_retention_forever(self: Rc<Self>, interval: Duration) {
        loop {
            glommio::timer::sleep(interval).await;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            for partition in self.all() {
                let log = partition.log();
                if let Err(error) = log.enforce_retention(now_ms).await {
                    tracing::error!(dir = %log.dir().display(), %error, "retention");
                }
            }
        }
    }

    /// The idempotent-producer snapshot timer of this core's partitions
    /// (`sluice.producer.snapshot.interval.ms`). Runs until the executor
    /// stops.
    pub async fn snapshot_producers_forever(self: Rc<Self>, interval: Duration) {
        loop {
            glommio::timer::sleep(interval).await;
            for partition in self.all() {
                partition.snapshot_producers_if_changed().await;
            }
        }
    }

    /// Kafka's log cleaner for this core's partitions: compacts each
    /// `cleanup.policy=compact` log that needs it (storage decides by
    /// `min.cleanable.dirty.ratio` and the compaction lags), one at a time,
    /// off the produce path; sleeps `backoff` when none needed cleaning.
    /// Runs until the executor stops.
    pub async fn clean_forever(self: Rc<Self>, backoff: Duration) {
        loop {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let mut cleaned_any = false;
            for partition in self.all() {
                let log = partition.log();
                if !log.config().cleanup_policy.compact {
                    continue;
                }
                match log.clean(now_ms).await {
                    Ok(report) if report.ran => {
                        cleaned_any = true;
                        tracing::info!(dir = %log.dir().display(), ?report, "cleaned log");
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(dir = %log.dir().display(), %error, "log cleaner")
                    }
                }
            }
            if !cleaned_any {
                glommio::timer::sleep(backoff).await;
            }
        }
    }

    /// Flushes and seals every log of this core (clean shutdown).
    pub async fn close(&self) {
        for partition in self.all() {
            partition.close().await;
        }
    }
}
