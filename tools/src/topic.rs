//! `sluice topic ...`: create, list, describe, delete, add-partitions,
//! alter-config.

use crate::kafka::{self, check};
use crate::output::{self, Format};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use client::Connection;
use kafka_protocol::messages::*;
use serde_json::{json, Value};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a topic.
    #[command(
        after_help = "Examples:\n  sluice topic create orders --partitions 6\n  sluice topic create audit -c retention.ms=-1 -c segment.bytes=104857600"
    )]
    Create {
        name: String,
        #[arg(short, long, default_value_t = 1)]
        partitions: i32,
        /// Replicas per partition (-1: the broker's default).
        #[arg(short, long, default_value_t = -1)]
        replication_factor: i16,
        /// Topic config, repeatable: -c retention.ms=86400000
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics.
    #[command(
        after_help = "Examples:\n  sluice topic list\n  sluice topic list --internal --format json"
    )]
    List {
        /// Show internal topics (__consumer_offsets) too.
        #[arg(long)]
        internal: bool,
    },
    /// Partitions (leader, replicas, offsets) and configs of topics.
    #[command(
        after_help = "Examples:\n  sluice topic describe orders\n  sluice topic describe orders audit --format json"
    )]
    Describe {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Delete topics.
    #[command(after_help = "Example:\n  sluice topic delete orders")]
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Grow a topic to a partition count.
    #[command(after_help = "Example:\n  sluice topic add-partitions orders --count 12")]
    AddPartitions {
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        count: i32,
    },
    /// Set or delete topic configs.
    #[command(
        after_help = "Examples:\n  sluice topic alter-config orders --set retention.ms=3600000\n  sluice topic alter-config orders --delete retention.ms"
    )]
    AlterConfig {
        name: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

fn key_value(text: &str) -> Result<(String, String)> {
    let (k, v) = text
        .split_once('=')
        .with_context(|| format!("{text}: expected key=value"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

pub fn run(bootstrap: &str, format: Format, command: Command) -> Result<()> {
    let mut connection = kafka::connect(bootstrap)?;
    match command {
        Command::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            create(
                &mut connection,
                &name,
                partitions,
                replication_factor,
                &configs,
            )?;
            output::object(format, &json!({"created": name, "partitions": partitions}));
        }
        Command::List { internal } => {
            let response = kafka::metadata(&mut connection, None)?;
            let mut rows: Vec<Vec<Value>> = response
                .topics
                .iter()
                .filter(|t| internal || !t.is_internal)
                .map(|t| {
                    vec![
                        json!(t.name.as_ref().map(|n| n.to_string()).unwrap_or_default()),
                        json!(t.partitions.len()),
                        json!(t.partitions.first().map_or(0, |p| p.replica_nodes.len())),
                        json!(t.is_internal),
                    ]
                })
                .collect();
            rows.sort_by_key(|r| output::text(&r[0]));
            output::rows(
                format,
                &["name", "partitions", "replicas", "internal"],
                &rows,
            );
        }
        Command::Describe { names } => describe(&mut connection, format, &names)?,
        Command::Delete { names } => {
            let request = DeleteTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topic_names(names.iter().map(|n| client::topic_name(n)).collect());
            let response: DeleteTopicsResponse =
                connection.call(ApiKey::DeleteTopics, 4, &request)?;
            for result in &response.responses {
                let topic = result
                    .name
                    .as_ref()
                    .map(|n| n.to_string())
                    .unwrap_or_default();
                check(result.error_code, &format!("delete topic {topic}"))?;
            }
            output::object(format, &json!({"deleted": names}));
        }
        Command::AddPartitions { name, count } => {
            use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
            let request = CreatePartitionsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(client::topic_name(&name))
                    .with_count(count)
                    .with_assignments(None)]);
            let response: CreatePartitionsResponse =
                connection.call(ApiKey::CreatePartitions, kafka::CREATE_PARTITIONS, &request)?;
            for result in &response.results {
                let message = kafka::detail(&result.error_message);
                check(
                    result.error_code,
                    &format!("add partitions to {name}{message}"),
                )?;
            }
            output::object(format, &json!({"topic": name, "partitions": count}));
        }
        Command::AlterConfig { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --set key=value or --delete key");
            }
            alter_config(&mut connection, &name, &set, &delete)?;
            output::object(
                format,
                &json!({"topic": name, "set": set, "deleted": delete}),
            );
        }
    }
    Ok(())
}

fn create(
    connection: &mut Connection,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[String],
) -> Result<()> {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let mut topic_configs = Vec::new();
    for config in configs {
        let (key, value) = key_value(config)?;
        topic_configs.push(
            CreatableTopicConfig::default()
                .with_name(kafka::name(&key))
                .with_value(Some(kafka::name(&value))),
        );
    }
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(client::topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(topic_configs)]);
    let response: CreateTopicsResponse = connection.call(ApiKey::CreateTopics, 5, &request)?;
    let result = response
        .topics
        .first()
        .context("no topic in the CreateTopics answer")?;
    let message = kafka::detail(&result.error_message);
    check(result.error_code, &format!("create topic {name}{message}"))
}

/// Topic configs as (name, value, is_default).
pub fn configs(connection: &mut Connection, topic: &str) -> Result<Vec<(String, String, bool)>> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(kafka::name(topic))
            .with_configuration_keys(None)]);
    let response: DescribeConfigsResponse =
        connection.call(ApiKey::DescribeConfigs, kafka::DESCRIBE_CONFIGS, &request)?;
    let result = response
        .results
        .first()
        .context("no result in the DescribeConfigs answer")?;
    check(result.error_code, &format!("configs of {topic}"))?;
    Ok(result
        .configs
        .iter()
        .map(|c| {
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            // config_source 5 is DEFAULT_CONFIG (KIP-226).
            (c.name.to_string(), value, c.config_source == 5)
        })
        .collect())
}

fn describe(connection: &mut Connection, format: Format, names: &[String]) -> Result<()> {
    let response = kafka::metadata(connection, Some(names))?;
    let mut described = Vec::new();
    for topic in &response.topics {
        let name = topic
            .name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default();
        check(topic.error_code, &format!("topic {name}"))?;
        let indexes: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
        let earliest = kafka::list_offsets(connection, &name, &indexes, -2)?;
        let latest = kafka::list_offsets(connection, &name, &indexes, -1)?;
        let mut partitions: Vec<Value> = topic
            .partitions
            .iter()
            .map(|p| {
                let find = |list: &[(i32, i64)]| {
                    list.iter()
                        .find(|(i, _)| *i == p.partition_index)
                        .map_or(-1, |(_, o)| *o)
                };
                json!({
                    "partition": p.partition_index,
                    "leader": p.leader_id.0,
                    "replicas": p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                    "isr": p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                    "earliest": find(&earliest),
                    "latest": find(&latest),
                })
            })
            .collect();
        partitions.sort_by_key(|p| p["partition"].as_i64());
        let overrides: Vec<Value> = configs(connection, &name)?
            .into_iter()
            .filter(|(_, _, default)| !default)
            .map(|(k, v, _)| json!(format!("{k}={v}")))
            .collect();
        described.push(json!({"name": name, "internal": topic.is_internal, "partitions": partitions, "configs": overrides}));
    }
    if format == Format::Json {
        println!("{}", Value::Array(described));
        return Ok(());
    }
    for topic in described {
        println!("topic {}  (configs: {})", output::text(&topic["name"]), {
            let c = output::text(&topic["configs"]);
            if c.is_empty() {
                "defaults".to_string()
            } else {
                c
            }
        });
        let rows: Vec<Vec<Value>> = topic["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                [
                    "partition",
                    "leader",
                    "replicas",
                    "isr",
                    "earliest",
                    "latest",
                ]
                .iter()
                .map(|k| p[*k].clone())
                .collect()
            })
            .collect();
        output::rows(
            Format::Table,
            &[
                "partition",
                "leader",
                "replicas",
                "isr",
                "earliest",
                "latest",
            ],
            &rows,
        );
    }
    Ok(())
}

fn alter_config(
    connection: &mut Connection,
    topic: &str,
    set: &[String],
    delete: &[String],
) -> Result<()> {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let mut changes = Vec::new();
    for item in set {
        let (key, value) = key_value(item)?;
        changes.push(
            AlterableConfig::default()
                .with_name(kafka::name(&key))
                .with_config_operation(0)
                .with_value(Some(kafka::name(&value))),
        );
    }
    for key in delete {
        changes.push(
            AlterableConfig::default()
                .with_name(kafka::name(key))
                .with_config_operation(1),
        );
    }
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(kafka::name(topic))
            .with_configs(changes),
    ]);
    let response: IncrementalAlterConfigsResponse = connection.call(
        ApiKey::IncrementalAlterConfigs,
        kafka::ALTER_CONFIGS,
        &request,
    )?;
    for result in &response.responses {
        let message = kafka::detail(&result.error_message);
        check(
            result.error_code,
            &format!("alter configs of {topic}{message}"),
        )?;
    }
    Ok(())
}
