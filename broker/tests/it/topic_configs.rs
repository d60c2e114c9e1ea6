//! Topic configs as Kafka validates and reports them: cleanup.policy and
//! the cleaner's settings in force; keys Kafka knows that Sluice accepts
//! without acting on, reported as such; keys or values it would silently
//! ignore refused with INVALID_CONFIG naming the key.

use crate::client::*;
use crate::harness::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn create_with(client: &mut Client, name: &str, configs: &[(&str, &str)]) -> (i16, Option<String>) {
    // Replication factor -1: the broker's default, as Streams asks.
    let result = create_topic_configured(client, name, 1, -1, configs);
    (
        result.error_code,
        result.error_message.map(|m| m.to_string()),
    )
}

/// (name, value, source, documentation) of every config of the topic.
fn describe(client: &mut Client, name: &str) -> Vec<(String, String, i8, Option<String>)> {
    let response: DescribeConfigsResponse = client.call(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(None)]),
    );
    let result = &response.results[0];
    assert_eq!(result.error_code, 0);
    result
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                c.config_source,
                c.documentation.as_ref().map(|d| d.to_string()),
            )
        })
        .collect()
}

fn entry<'a>(
    entries: &'a [(String, String, i8, Option<String>)],
    key: &str,
) -> &'a (String, String, i8, Option<String>) {
    entries
        .iter()
        .find(|e| e.0 == key)
        .unwrap_or_else(|| panic!("{key} not described"))
}

#[test]
fn cleanup_policy_and_known_configs_are_validated_and_reported_with_their_source() {
    let broker = Broker::start(&["log.cleaner.delete.retention.ms=1000"]);
    let mut client = Client::connect(broker.address);
    let (code, _) = create_with(
        &mut client,
        "compacted",
        &[
            ("cleanup.policy", "compact"),
            ("preallocate", "true"),
            ("min.insync.replicas", "1"),
        ],
    );
    assert_eq!(code, 0);
    let entries = describe(&mut client, "compacted");
    let policy = entry(&entries, "cleanup.policy");
    assert_eq!(
        (policy.1.as_str(), policy.2),
        ("compact", 1),
        "topic override"
    );
    let horizon = entry(&entries, "delete.retention.ms");
    assert_eq!(
        (horizon.1.as_str(), horizon.2),
        ("1000", 4),
        "broker setting"
    );
    let ratio = entry(&entries, "min.cleanable.dirty.ratio");
    assert_eq!((ratio.1.as_str(), ratio.2), ("0.5", 5), "Kafka's default");
    let preallocate = entry(&entries, "preallocate");
    assert_eq!(preallocate.1, "true");
    assert!(preallocate
        .3
        .as_deref()
        .is_some_and(|d| d.contains("does not act")));
    assert!(entry(&entries, "cleanup.policy").3.is_none(), "in force");

    for (key, value) in [
        ("cleanup.policy", "shred"),
        ("no.such.config", "1"),
        ("compression.type", "zstd"),
        ("min.insync.replicas", "0"),
        ("preallocate", "maybe"),
    ] {
        let (code, message) = create_with(&mut client, "refused", &[(key, value)]);
        assert_eq!(code, ResponseError::InvalidConfig.code(), "{key}={value}");
        assert!(
            message.as_deref().is_some_and(|m| m.contains(key)),
            "{key}: {message:?}"
        );
    }
    let (code, _) = create_with(&mut client, "both", &[("cleanup.policy", "compact,delete")]);
    assert_eq!(code, 0);
    assert_eq!(
        entry(&describe(&mut client, "both"), "cleanup.policy").1,
        "compact,delete"
    );
}
