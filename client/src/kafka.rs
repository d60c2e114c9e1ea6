//! Kafka error codes as typed errors with what was being done, and the
//! small requests the CLI and bench share (metadata, partition counts).

use crate::Connection;
use anyhow::{Context, Result};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

pub const METADATA: i16 = 9;
pub const FETCH: i16 = 12;
pub const PRODUCE: i16 = 9;
pub const DESCRIBE_CONFIGS: i16 = 4;
pub const ALTER_CONFIGS: i16 = 1;
pub const CREATE_PARTITIONS: i16 = 2;
pub const LIST_GROUPS: i16 = 4;
pub const DESCRIBE_GROUPS: i16 = 5;
pub const OFFSET_FETCH: i16 = 7;
pub const OFFSET_COMMIT: i16 = 8;
pub const DESCRIBE_CLUSTER: i16 = 1;
pub const API_VERSIONS: i16 = 3;

pub fn error_text(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(error) => format!("{error} (error code {code})"),
        None => format!("error code {code}"),
    }
}

/// A Kafka error code in an answer, with what was being done.
#[derive(Debug)]
pub struct KafkaError {
    pub code: i16,
    pub what: String,
}

impl std::fmt::Display for KafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, error_text(self.code))
    }
}

impl std::error::Error for KafkaError {}

/// Fails with the Kafka error's name unless `code` is 0.
pub fn check(code: i16, what: &str) -> Result<()> {
    if code != 0 {
        return Err(KafkaError {
            code,
            what: what.to_string(),
        }
        .into());
    }
    Ok(())
}

/// " (message)" for an optional error message, "" without one.
pub fn detail(message: &Option<StrBytes>) -> String {
    message
        .as_ref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default()
}

/// The Kafka error code behind an error, if it is one.
pub fn code_of(error: &anyhow::Error) -> Option<i16> {
    error.downcast_ref::<KafkaError>().map(|e| e.code)
}

pub fn name(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Metadata of the given topics (None: all).
pub fn metadata(
    connection: &mut Connection,
    topics: Option<&[String]>,
) -> Result<MetadataResponse> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let request = MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(crate::topic_name(n))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    connection.call(ApiKey::Metadata, METADATA, &request)
}

/// Partition count of one existing topic, or a clear "unknown topic" error.
pub fn partition_count(connection: &mut Connection, topic: &str) -> Result<i32> {
    let response = metadata(connection, Some(&[topic.to_string()]))?;
    let found = response
        .topics
        .first()
        .context("no topic in the metadata answer")?;
    check(found.error_code, &format!("topic {topic}"))?;
    Ok(found.partitions.len() as i32)
}

pub use crate::list_offsets;
