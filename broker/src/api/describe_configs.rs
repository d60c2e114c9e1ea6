//! DescribeConfigs for topics (their effective log config, marking
//! overrides) and for this broker (its static settings).

use crate::api::context::RequestContext;
use crate::config::Config;
use crate::core::Core;
use controller::acl;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use storage::{LogConfig, TimestampType};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// A topic's configs by Kafka name, as strings.
pub fn topic_entries(config: &LogConfig) -> Vec<(&'static str, String)> {
    let timestamp_type = match config.timestamp_type {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    };
    vec![
        ("cleanup.policy", config.cleanup_policy.name().to_string()),
        (
            "delete.retention.ms",
            config.delete_retention_ms.to_string(),
        ),
        ("flush.messages", config.flush_messages.to_string()),
        ("flush.ms", config.flush_ms.to_string()),
        (
            "index.interval.bytes",
            config.index_interval_bytes.to_string(),
        ),
        ("max.message.bytes", config.max_message_bytes.to_string()),
        (
            "max.compaction.lag.ms",
            config.max_compaction_lag_ms.to_string(),
        ),
        ("message.timestamp.type", timestamp_type.to_string()),
        (
            "min.insync.replicas",
            config.min_insync_replicas.to_string(),
        ),
        (
            "min.cleanable.dirty.ratio",
            config.min_cleanable_dirty_ratio.to_string(),
        ),
        (
            "min.compaction.lag.ms",
            config.min_compaction_lag_ms.to_string(),
        ),
        ("retention.bytes", config.retention_bytes.to_string()),
        ("retention.ms", config.retention_ms.to_string()),
        ("segment.bytes", config.segment_bytes.to_string()),
        ("segment.ms", config.segment_ms.to_string()),
    ]
}

fn broker_entries(config: &Config) -> Vec<(&'static str, String)> {
    let mut entries = vec![
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
        ),
        ("num.partitions", config.num_partitions.to_string()),
        (
            "socket.request.max.bytes",
            config.request_bytes_max.to_string(),
        ),
        ("max.connections", config.connections_max.to_string()),
        ("broker.id", config.node_id.to_string()),
    ];
    let log = topic_entries(&config.log);
    let broker_name = |topic_key: &str| match topic_key {
        "cleanup.policy" => Some("log.cleanup.policy"),
        "delete.retention.ms" => Some("log.cleaner.delete.retention.ms"),
        "max.compaction.lag.ms" => Some("log.cleaner.max.compaction.lag.ms"),
        "min.cleanable.dirty.ratio" => Some("log.cleaner.min.cleanable.ratio"),
        "min.compaction.lag.ms" => Some("log.cleaner.min.compaction.lag.ms"),
        "flush.messages" => Some("log.flush.interval.messages"),
        "flush.ms" => Some("log.flush.interval.ms"),
        "index.interval.bytes" => Some("log.index.interval.bytes"),
        "max.message.bytes" => Some("message.max.bytes"),
        "message.timestamp.type" => Some("log.message.timestamp.type"),
        "min.insync.replicas" => Some("min.insync.replicas"),
        "retention.bytes" => Some("log.retention.bytes"),
        "retention.ms" => Some("log.retention.ms"),
        "segment.bytes" => Some("log.segment.bytes"),
        "segment.ms" => Some("log.roll.ms"),
        _ => None,
    };
    for (key, value) in log {
        if let Some(name) = broker_name(key) {
            entries.push((name, value));
        }
    }
    entries
}

/// One config as DescribeConfigs reports it.
struct Entry {
    name: String,
    value: String,
    source: i8,
    read_only: bool,
    /// DescribeConfigs v3+: said of configs Sluice accepts but does not act on.
    documentation: Option<&'static str>,
}

const NOT_IN_FORCE: &str = "Accepted for compatibility; Sluice does not act on it.";

/// A topic's configs: the ones in force with their source (the topic's
/// override, the broker's `log.*` setting, or the default), then the ones
/// Kafka knows that Sluice accepts without acting on.
fn topic_config_entries(
    overrides: &std::collections::BTreeMap<String, String>,
    config: &LogConfig,
    broker: &LogConfig,
) -> Vec<Entry> {
    let defaults = topic_entries(&LogConfig::default());
    let brokers = topic_entries(broker);
    let mut entries: Vec<Entry> = topic_entries(config)
        .into_iter()
        .map(|(k, v)| {
            let source = if overrides.contains_key(k) {
                SOURCE_DYNAMIC_TOPIC
            } else if brokers
                .iter()
                .zip(&defaults)
                .any(|((bk, bv), (_, dv))| *bk == k && bv != dv)
            {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            Entry {
                name: k.to_string(),
                value: v,
                source,
                read_only: false,
                documentation: None,
            }
        })
        .collect();
    for (key, default, _) in storage::config::ACCEPTED_NOT_IN_FORCE {
        let value = config.not_in_force.get(*key);
        entries.push(Entry {
            name: key.to_string(),
            value: value.map_or_else(|| default.to_string(), Clone::clone),
            source: if value.is_some() {
                SOURCE_DYNAMIC_TOPIC
            } else {
                SOURCE_DEFAULT
            },
            read_only: false,
            documentation: Some(NOT_IN_FORCE),
        });
    }
    for (key, value) in storage::config::ACCEPTED_AT_ONE_VALUE {
        entries.push(Entry {
            name: key.to_string(),
            value: value.to_string(),
            source: SOURCE_DEFAULT,
            read_only: true,
            documentation: Some("The only value Sluice supports."),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// Kafka's check for a config resource: `op` on the topic
/// (TOPIC_AUTHORIZATION_FAILED) or on the cluster for a broker
/// (CLUSTER_AUTHORIZATION_FAILED).
pub fn unauthorized(
    ctx: &RequestContext,
    core: &Core,
    resource_type: i8,
    name: &str,
    op: i8,
) -> Option<ResponseError> {
    match resource_type {
        RESOURCE_TOPIC if !ctx.may(core, op, acl::resource::TOPIC, name) => {
            Some(ResponseError::TopicAuthorizationFailed)
        }
        RESOURCE_BROKER if !ctx.may_on_cluster(core, op) => {
            Some(ResponseError::ClusterAuthorizationFailed)
        }
        _ => None,
    }
}

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut results = Vec::new();
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let denied = unauthorized(
            ctx,
            core,
            resource.resource_type,
            &name,
            acl::operation::DESCRIBE_CONFIGS,
        );
        let entries: Result<Vec<Entry>, ResponseError> = match (denied, resource.resource_type) {
            (Some(error), _) => Err(error),
            (None, RESOURCE_TOPIC) => match core.topic(&name) {
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some(topic) => match topic.log_config(&core.config.log) {
                    Ok(config) => Ok(topic_config_entries(
                        &topic.configs,
                        &config,
                        &core.config.log,
                    )),
                    Err(_) => Err(ResponseError::InvalidConfig),
                },
            },
            (None, RESOURCE_BROKER)
                if name.is_empty() || name == core.config.node_id.to_string() =>
            {
                Ok(broker_entries(&core.config)
                    .into_iter()
                    .map(|(k, v)| Entry {
                        name: k.to_string(),
                        value: v,
                        source: SOURCE_STATIC_BROKER,
                        read_only: true,
                        documentation: None,
                    })
                    .collect())
            }
            (None, _) => Err(ResponseError::InvalidRequest),
        };
        let result = match entries {
            Err(error) => result.with_error_code(error.code()),
            Ok(entries) => {
                let wanted = resource.configuration_keys.as_ref();
                let configs = entries
                    .into_iter()
                    .filter(|entry| {
                        wanted.is_none_or(|keys| keys.iter().any(|w| w.as_str() == entry.name))
                    })
                    .map(|entry| {
                        DescribeConfigsResourceResult::default()
                            .with_name(StrBytes::from_string(entry.name))
                            .with_value(Some(StrBytes::from_string(entry.value)))
                            .with_read_only(entry.read_only)
                            .with_config_source(entry.source)
                            .with_documentation(entry.documentation.map(StrBytes::from_static_str))
                    })
                    .collect();
                result.with_configs(configs)
            }
        };
        results.push(result);
    }
    DescribeConfigsResponse::default().with_results(results)
}
