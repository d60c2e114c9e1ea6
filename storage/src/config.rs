//! Per-log settings under their Kafka topic-config names.

use crate::limits::{
    BATCH_BYTES_DEFAULT_MAX, BATCH_BYTES_MAX, INDEX_INTERVAL_BYTES_DEFAULT, SEGMENT_BYTES_DEFAULT,
    SEGMENT_BYTES_MAX, WRITE_BUFFER_BYTES_DEFAULT_MAX,
};

const WEEK_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
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
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
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
            _ => return Err(ConfigError::Unknown(key.to_string())),
        }
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
        assert!(config.is_durable());
        config.set("flush.messages", "1000").expect("set");
        assert!(!config.is_durable());
    }
}
