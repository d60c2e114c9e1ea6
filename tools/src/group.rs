//! `sluice group list|describe|seek`, and the group helpers `consume
//! --group` uses. Group requests go to the group's coordinator
//! (FindCoordinator), which on Sluice is the broker itself.

use crate::kafka::{self, check};
use crate::output::{self, Format};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use client::Connection;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Groups, their protocol type and state.
    #[command(after_help = "Examples:\n  sluice group list\n  sluice group list --format json")]
    List,
    /// Members, assignments, committed offsets and lag of a group.
    #[command(after_help = "Example:\n  sluice group describe billing")]
    Describe { group: String },
    /// Move an empty group's committed offsets (stop its consumers first).
    #[command(
        after_help = "Examples:\n  sluice group seek billing --topic orders --to earliest\n  sluice group seek billing --topic orders --to offset:1000 -p 0\n  sluice group seek billing --topic orders --to timestamp:1700000000000"
    )]
    Seek {
        group: String,
        #[arg(long)]
        topic: String,
        /// earliest | latest | offset:N | timestamp:MS
        #[arg(long)]
        to: String,
        /// Partitions (default: all).
        #[arg(short, long = "partition")]
        partitions: Vec<i32>,
    },
}

/// Kafka answers COORDINATOR_NOT_AVAILABLE while it creates
/// __consumer_offsets on first use: retry that (and a coordinator still
/// loading) for this long.
const COORDINATOR_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// A connection to the group's coordinator.
fn coordinator(
    connection: &mut Connection,
    bootstrap: &str,
    group: &str,
) -> Result<Option<Connection>> {
    use kafka_protocol::error::ResponseError;
    let request = FindCoordinatorRequest::default()
        .with_key(kafka::name(group))
        .with_key_type(0);
    let deadline = std::time::Instant::now() + COORDINATOR_WAIT;
    let response = loop {
        let response: FindCoordinatorResponse =
            connection.call(ApiKey::FindCoordinator, 3, &request)?;
        let retriable = [
            ResponseError::CoordinatorNotAvailable,
            ResponseError::CoordinatorLoadInProgress,
        ]
        .iter()
        .any(|e| e.code() == response.error_code);
        if !retriable || std::time::Instant::now() >= deadline {
            break response;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    check(
        response.error_code,
        &format!("find the coordinator of group {group}"),
    )?;
    let address = format!("{}:{}", response.host, response.port);
    if address == bootstrap {
        return Ok(None);
    }
    Ok(Some(kafka::connect(&address)?))
}

/// An own connection to the group's coordinator (a member keeps it).
pub fn coordinator_connection(
    connection: &mut Connection,
    bootstrap: &str,
    group: &str,
) -> Result<Connection> {
    match coordinator(connection, bootstrap, group)? {
        Some(other) => Ok(other),
        None => kafka::connect(bootstrap),
    }
}

/// Runs `f` against the group's coordinator, retrying while the
/// coordinator is still loading or moving (Kafka, right after it created
/// __consumer_offsets).
fn with_coordinator<T>(
    connection: &mut Connection,
    bootstrap: &str,
    group: &str,
    mut f: impl FnMut(&mut Connection) -> Result<T>,
) -> Result<T> {
    use kafka_protocol::error::ResponseError;
    let retriable = [
        ResponseError::CoordinatorNotAvailable.code(),
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::NotCoordinator.code(),
    ];
    let deadline = std::time::Instant::now() + COORDINATOR_WAIT;
    loop {
        let result = match coordinator(connection, bootstrap, group)? {
            Some(mut other) => f(&mut other),
            None => f(connection),
        };
        match result {
            Err(error)
                if kafka::code_of(&error).is_some_and(|c| retriable.contains(&c))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

fn describe_group(
    connection: &mut Connection,
    group: &str,
) -> Result<describe_groups_response::DescribedGroup> {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(kafka::name(group))]);
    let response: DescribeGroupsResponse =
        connection.call(ApiKey::DescribeGroups, kafka::DESCRIBE_GROUPS, &request)?;
    let described = response
        .groups
        .into_iter()
        .next()
        .context("no group in the DescribeGroups answer")?;
    check(described.error_code, &format!("describe group {group}"))?;
    Ok(described)
}

/// Fails unless the group has no members (or does not exist).
pub fn require_empty(connection: &mut Connection, bootstrap: &str, group: &str) -> Result<()> {
    let described = with_coordinator(connection, bootstrap, group, |c| describe_group(c, group))?;
    if !described.members.is_empty() {
        bail!(
            "group {group} has {} active members (state {}): stop its consumers first",
            described.members.len(),
            described.group_state
        );
    }
    Ok(())
}

/// Committed offsets of a group for a topic's partitions (-1: none).
pub fn committed(
    connection: &mut Connection,
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>> {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(kafka::name(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(client::topic_name(topic))
            .with_partition_indexes(partitions.to_vec())]));
    let response: OffsetFetchResponse = with_coordinator(connection, bootstrap, group, |c| {
        let response: OffsetFetchResponse =
            c.call(ApiKey::OffsetFetch, kafka::OFFSET_FETCH, &request)?;
        check(
            response.error_code,
            &format!("committed offsets of {group}"),
        )?;
        Ok(response)
    })?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            check(
                p.error_code,
                &format!(
                    "committed offset of {group} on {topic}/{}",
                    p.partition_index
                ),
            )?;
            out.insert(p.partition_index, p.committed_offset);
        }
    }
    Ok(out)
}

/// Commits offsets as a standalone member (generation -1): only an empty
/// group accepts that.
pub fn commit(
    connection: &mut Connection,
    bootstrap: &str,
    group: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Result<()> {
    let request = client::member::commit_request(group, -1, "", topic, offsets);
    with_coordinator(connection, bootstrap, group, |c| {
        let response: OffsetCommitResponse =
            c.call(ApiKey::OffsetCommit, kafka::OFFSET_COMMIT, &request)?;
        for t in response.topics {
            for p in t.partitions {
                check(
                    p.error_code,
                    &format!("commit {group} on {topic}/{}", p.partition_index),
                )?;
            }
        }
        Ok(())
    })
}

/// (topic, partition) pairs of a consumer-protocol assignment.
fn assigned(assignment: &[u8]) -> Vec<(String, i32)> {
    if assignment.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([assignment[0], assignment[1]]).clamp(0, 3);
    let mut body = bytes::Bytes::copy_from_slice(&assignment[2..]);
    ConsumerProtocolAssignment::decode(&mut body, version)
        .map(|a| {
            a.assigned_partitions
                .iter()
                .flat_map(|tp| {
                    tp.partitions
                        .iter()
                        .map(move |p| (tp.topic.to_string(), *p))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn run(bootstrap: &str, format: Format, command: Command) -> Result<()> {
    let mut connection = kafka::connect(bootstrap)?;
    match command {
        Command::List => {
            let response: ListGroupsResponse = connection.call(
                ApiKey::ListGroups,
                kafka::LIST_GROUPS,
                &ListGroupsRequest::default(),
            )?;
            check(response.error_code, "list groups")?;
            let rows: Vec<Vec<Value>> = response
                .groups
                .iter()
                .map(|g| {
                    vec![
                        json!(g.group_id.to_string()),
                        json!(g.protocol_type.to_string()),
                        json!(g.group_state.to_string()),
                    ]
                })
                .collect();
            output::rows(format, &["group", "protocol_type", "state"], &rows);
        }
        Command::Describe { group } => describe(&mut connection, bootstrap, format, &group)?,
        Command::Seek {
            group,
            topic,
            to,
            partitions,
        } => {
            let count = kafka::partition_count(&mut connection, &topic)?;
            let partitions: Vec<i32> = if partitions.is_empty() {
                (0..count).collect()
            } else {
                partitions
            };
            require_empty(&mut connection, bootstrap, &group)?;
            let to = match to.as_str() {
                "earliest" => "beginning".to_string(),
                "latest" => "end".to_string(),
                other => other.to_string(),
            };
            let offsets =
                crate::data::start_offsets_for(&mut connection, &topic, &partitions, &to)?;
            commit(&mut connection, bootstrap, &group, &topic, &offsets)?;
            let rows: Vec<Vec<Value>> = offsets
                .iter()
                .map(|(p, o)| vec![json!(topic), json!(p), json!(o)])
                .collect();
            output::rows(format, &["topic", "partition", "committed"], &rows);
        }
    }
    Ok(())
}

fn describe(
    connection: &mut Connection,
    bootstrap: &str,
    format: Format,
    group: &str,
) -> Result<()> {
    let described = with_coordinator(connection, bootstrap, group, |c| describe_group(c, group))?;
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for member in &described.members {
        for tp in assigned(&member.member_assignment) {
            owner.insert(
                tp,
                format!(
                    "{} ({}{})",
                    member.member_id, member.client_id, member.client_host
                ),
            );
        }
    }
    // Every topic with a commit or an owner.
    let all: OffsetFetchResponse = with_coordinator(connection, bootstrap, group, |c| {
        let response: OffsetFetchResponse = c.call(
            ApiKey::OffsetFetch,
            kafka::OFFSET_FETCH,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(kafka::name(group)))
                .with_topics(None),
        )?;
        check(
            response.error_code,
            &format!("committed offsets of {group}"),
        )?;
        Ok(response)
    })?;
    check(all.error_code, &format!("committed offsets of {group}"))?;
    let mut committed: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for t in &all.topics {
        for p in &t.partitions {
            committed.insert((t.name.to_string(), p.partition_index), p.committed_offset);
        }
    }
    let mut keys: Vec<(String, i32)> = committed.keys().chain(owner.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut topics: Vec<String> = keys.iter().map(|(t, _)| t.clone()).collect();
    topics.dedup();
    for topic in topics {
        let partitions: Vec<i32> = keys
            .iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, p)| *p)
            .collect();
        for (p, end) in kafka::list_offsets(connection, &topic, &partitions, -1)? {
            ends.insert((topic.clone(), p), end);
        }
    }
    let rows: Vec<Vec<Value>> = keys
        .iter()
        .map(|key| {
            let committed = committed.get(key).copied().filter(|o| *o >= 0);
            let end = ends.get(key).copied();
            let lag = match (committed, end) {
                (Some(c), Some(e)) => json!(e - c),
                _ => Value::Null,
            };
            vec![
                json!(key.0),
                json!(key.1),
                json!(committed),
                json!(end),
                lag,
                json!(owner.get(key)),
            ]
        })
        .collect();
    if format == Format::Json {
        let headers = ["topic", "partition", "committed", "end", "lag", "member"];
        let partitions: Vec<Value> = rows
            .iter()
            .map(|r| {
                Value::Object(
                    headers
                        .iter()
                        .zip(r)
                        .map(|(h, v)| (h.to_string(), v.clone()))
                        .collect(),
                )
            })
            .collect();
        let members: Vec<Value> = described
            .members
            .iter()
            .map(|m| json!({"member_id": m.member_id.to_string(), "client_id": m.client_id.to_string(), "host": m.client_host.to_string(), "assigned": assigned(&m.member_assignment).len()}))
            .collect();
        println!(
            "{}",
            json!({"group": group, "state": described.group_state.to_string(), "protocol": described.protocol_data.to_string(), "members": members, "partitions": partitions})
        );
        return Ok(());
    }
    println!(
        "group {group}: {} ({} members, protocol {})",
        described.group_state,
        described.members.len(),
        {
            let p = described.protocol_data.to_string();
            if p.is_empty() {
                "-".to_string()
            } else {
                p
            }
        }
    );
    output::rows(
        Format::Table,
        &["topic", "partition", "committed", "end", "lag", "member"],
        &rows,
    );
    Ok(())
}
