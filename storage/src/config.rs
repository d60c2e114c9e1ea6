//! Per-log settings under their Kafka topic-config names.

use crate::limits::{
    BATCH_BYTES_DEFAULT_MAX, BATCH_BYTES_MAX, INDEX_INTERVAL_BYTES_DEFAULT, SEGMENT_BYTES_DEFAULT,
    SEGMENT_BYTES_MAX, WRITE_BUFFER_BYTES_DEFAULT_MAX,
};

const WEEK_MS: i64 = 7 * 24 * 60 * 60 * 1000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// `cleanup.policy`: `delete`, `compact`, or both (`compact,delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Segments past `retention.ms` / `retention.bytes` are deleted.
    pub delete: bool,
    /// The cleaner keeps the last record of each key.
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };

    /// Kafka's spelling: a comma-separated list of `delete` and `compact`
    /// (in either order, spaces allowed), not empty.
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for part in value.split(',').map(str::trim) {
            match part {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                _ => return None,
            }
        }
        (policy.delete || policy.compact).then_some(policy)
    }

    pub fn name(self) -> &'static str {
        match (self.compact, self.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            _ => "delete",
        }
    }
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Topic configs Kafka knows that storage accepts without acting on them,
/// because ignoring them cannot surprise a user: replication is not
/// throttled, files are deleted at once, indexes are sized by the segment.
/// `unclean.leader.election.enable` is in force, but not here: the
/// controller reads it from the topic's configs when it elects a leader.
/// (Kafka's name, Kafka's default, how its value must parse.)
pub const ACCEPTED_NOT_IN_FORCE: &[(&str, &str, ValueKind)] = &[
    ("compression.gzip.level", "-1", ValueKind::Int),
    ("compression.lz4.level", "9", ValueKind::Int),
    ("compression.zstd.level", "3", ValueKind::Int),
    ("file.delete.delay.ms", "60000", ValueKind::Int),
    (
        "follower.replication.throttled.replicas",
        "",
        ValueKind::Text,
    ),
    ("leader.replication.throttled.replicas", "", ValueKind::Text),
    ("preallocate", "false", ValueKind::Bool),
    ("segment.index.bytes", "10485760", ValueKind::Int),
    ("segment.jitter.ms", "0", ValueKind::Int),
    ("unclean.leader.election.enable", "false", ValueKind::Bool),
];

/// Topic configs Kafka knows that Sluice accepts only at the value that
/// says what Sluice does: any other would be silently ignored, which could
/// surprise (batches stored as produced; no tiered storage; timestamps not
/// bounded; one replica, so one in-sync replica).
pub const ACCEPTED_AT_ONE_VALUE: &[(&str, &str)] = &[
    ("compression.type", "producer"),
    ("local.retention.bytes", "-2"),
    ("local.retention.ms", "-2"),
    ("message.timestamp.after.max.ms", "9223372036854775807"),
    ("message.timestamp.before.max.ms", "9223372036854775807"),
    ("remote.log.copy.disable", "false"),
    ("remote.log.delete.on.disable", "false"),
    ("remote.storage.enable", "false"),
];

/// How an accepted-but-not-in-force value must parse, as Kafka checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Int,
    Bool,
    Text,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Overrides of `ACCEPTED_NOT_IN_FORCE` keys, kept only to be reported.
    pub not_in_force: std::collections::BTreeMap<String, String>,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long the cleaner keeps a tombstone (a
    /// record with a key and a null value) after the segment holding it was
    /// cleaned, so consumers that lag see the delete.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean once this share of the log
    /// (bytes not yet cleaned / all bytes outside the active segment) is dirty.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record is compacted at most this late,
    /// whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `segment.bytes`: roll the active segment before it would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty active segment this old.
    pub segment_ms: i64,
    /// `flush.messages`: fdatasync once this many records are unflushed.
    /// Sluice's default is 1: every append is durable before it resolves
    /// (Kafka's default is Long.MAX_VALUE, leaving it to the page cache).
    pub flush_messages: u64,
    /// `flush.ms`: fdatasync when the oldest unflushed record is this old.
    pub flush_ms: i64,
    /// `retention.ms`; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 keeps forever.
    pub retention_bytes: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: largest batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// Sluice-only: bytes appended and not yet written before an append waits.
    pub write_buffer_bytes_max: usize,
    /// Sluice-only, broker-wide (`sluice.log.dir.min.free.bytes`): a roll
    /// refuses the append (`StorageError::DiskFull`) while the log
    /// directory's file system has less free than this; 0: no check.
    pub min_free_bytes: u64,
    /// `min.insync.replicas`: acks=all needs this many in-sync replicas
    /// (enforced by the partition leader, not by storage).
    pub min_insync_replicas: usize,
}

/// `sluice.log.dir.min.free.bytes`' default: room for a few segments' worth
/// of writes in flight after the last roll that passed the check, without
/// refusing writes on a small test disk.
pub const MIN_FREE_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            not_in_force: Default::default(),
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: DAY_MS,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: WEEK_MS,
            flush_messages: 1,
            flush_ms: i64::MAX,
            retention_ms: WEEK_MS,
            retention_bytes: -1,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            max_message_bytes: BATCH_BYTES_DEFAULT_MAX,
            timestamp_type: TimestampType::CreateTime,
            write_buffer_bytes_max: WRITE_BUFFER_BYTES_DEFAULT_MAX,
            min_free_bytes: MIN_FREE_BYTES_DEFAULT,
            min_insync_replicas: 1,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown log config {0}")]
    Unknown(String),
    #[error("invalid value {value:?} for {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: &'static str,
    },
}

impl LogConfig {
    /// True when every append waits for fdatasync (acks=all durability).
    pub fn is_durable(&self) -> bool {
        self.flush_messages <= 1 || self.flush_ms == 0
    }

    /// Sets one setting by its Kafka name, checking its range.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        let int = || {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid("not an integer"))
        };
        match key {
            "cleanup.policy" => {
                self.cleanup_policy = CleanupPolicy::parse(value)
                    .ok_or_else(|| invalid("must be a list of delete and compact"))?
            }
            "delete.retention.ms" => {
                self.delete_retention_ms = int()?;
                if self.delete_retention_ms < 0 {
                    return Err(invalid("must be at least 0"));
                }
            }
            "min.cleanable.dirty.ratio" => {
                let ratio: f64 = value.trim().parse().map_err(|_| invalid("not a number"))?;
                if !(0.0..=1.0).contains(&ratio) {
                    return Err(invalid("must be between 0 and 1"));
                }
                self.min_cleanable_dirty_ratio = ratio;
            }
            "min.compaction.lag.ms" => {
                self.min_compaction_lag_ms = int()?;
                if self.min_compaction_lag_ms < 0 {
                    return Err(invalid("must be at least 0"));
                }
            }
            "max.compaction.lag.ms" => {
                self.max_compaction_lag_ms = int()?;
                if self.max_compaction_lag_ms < 1 {
                    return Err(invalid("must be at least 1"));
                }
            }
            "segment.bytes" => {
                let v = int()?;
                if v < 14 || v as u64 > SEGMENT_BYTES_MAX {
                    return Err(invalid("must be between 14 and 2147483647"));
                }
                self.segment_bytes = v as u64;
            }
            "segment.ms" => self.segment_ms = int()?.max(1),
            "flush.messages" => self.flush_messages = int()?.max(1) as u64,
            "flush.ms" => self.flush_ms = int()?.max(0),
            "retention.ms" => self.retention_ms = int()?.max(-1),
            "retention.bytes" => self.retention_bytes = int()?.max(-1),
            "index.interval.bytes" => self.index_interval_bytes = int()?.max(0) as u64,
            "min.insync.replicas" => {
                let v = int()?;
                if !(1..=i64::from(i32::MAX)).contains(&v) {
                    return Err(invalid("must be at least 1"));
                }
                self.min_insync_replicas = v as usize;
            }
            "max.message.bytes" => {
                let v = int()?;
                if v < 0 || v as usize > BATCH_BYTES_MAX {
                    return Err(invalid("must be between 0 and 64 MiB"));
                }
                self.max_message_bytes = v as usize;
            }
            "message.timestamp.type" => {
                self.timestamp_type = match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(invalid("must be CreateTime or LogAppendTime")),
                }
            }
            _ => return self.set_not_in_force(key, value),
        }
        Ok(())
    }

    fn set_not_in_force(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        if let Some((_, only)) = ACCEPTED_AT_ONE_VALUE.iter().find(|(k, _)| *k == key) {
            if value.trim() != *only {
                return Err(invalid(
                    "Sluice supports only the value that describes it (see DescribeConfigs)",
                ));
            }
            return Ok(());
        }
        let Some((_, _, kind)) = ACCEPTED_NOT_IN_FORCE.iter().find(|(k, _, _)| *k == key) else {
            return Err(ConfigError::Unknown(key.to_string()));
        };
        let parses = match kind {
            ValueKind::Int => value.trim().parse::<i64>().is_ok(),
            ValueKind::Bool => matches!(value.trim(), "true" | "false"),
            ValueKind::Text => true,
        };
        if !parses {
            return Err(invalid(match kind {
                ValueKind::Int => "not an integer",
                _ => "not true/false",
            }));
        }
        self.not_in_force
            .insert(key.to_string(), value.trim().to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_set_fields_and_bad_values_are_refused() {
        let mut config = LogConfig::default();
        config.set("segment.bytes", "1048576").expect("set");
        config
            .set("message.timestamp.type", "LogAppendTime")
            .expect("set");
        assert_eq!(config.segment_bytes, 1 << 20);
        assert_eq!(config.timestamp_type, TimestampType::LogAppendTime);
        assert!(config.set("segment.bytes", "big").is_err());
        assert!(config.set("no.such", "1").is_err());
        for (value, policy) in [
            ("delete", "delete"),
            ("compact", "compact"),
            ("compact,delete", "compact,delete"),
            ("delete, compact", "compact,delete"),
        ] {
            config.set("cleanup.policy", value).expect("policy");
            assert_eq!(config.cleanup_policy.name(), policy);
        }
        for bad in ["", "remove", "compact,", "delete,,compact"] {
            assert!(config.set("cleanup.policy", bad).is_err(), "{bad:?}");
        }
        assert!(config.set("min.cleanable.dirty.ratio", "1.5").is_err());
        // Known to Kafka, accepted, reported, not in force.
        config.set("preallocate", "true").expect("accepted");
        assert_eq!(
            config.not_in_force.get("preallocate").map(String::as_str),
            Some("true")
        );
        assert!(config.set("preallocate", "yes").is_err());
        // Known to Kafka, accepted only at Sluice's value.
        config
            .set("compression.type", "producer")
            .expect("as produced");
        assert!(config.set("compression.type", "zstd").is_err());
        config.set("min.insync.replicas", "2").expect("in force");
        assert_eq!(config.min_insync_replicas, 2);
        assert!(config.set("min.insync.replicas", "0").is_err());
        assert!(config.set("delete.retention.ms", "-1").is_err());
        assert!(config.is_durable());
        config.set("flush.messages", "1000").expect("set");
        assert!(!config.is_durable());
    }
}
