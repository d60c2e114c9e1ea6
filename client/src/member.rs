//! A real member of a classic consumer group (`sluice consume --group`,
//! bench's `--consumer-group`).
//! It joins (JoinGroup, with the MEMBER_ID_REQUIRED round trip), leads the
//! assignment when elected (the range assignor, per topic, as the Java
//! client's RangeAssignor), syncs, heartbeats between fetches, rejoins on a
//! rebalance, commits with its generation, and leaves on exit.

use crate::kafka::{self, check};
use crate::Connection;
use anyhow::{bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const JOIN_VERSION: i16 = 5;
const SYNC_VERSION: i16 = 3;
const HEARTBEAT_VERSION: i16 = 3;
const LEAVE_VERSION: i16 = 3;
const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const ASSIGNOR: &str = "range";
/// How long joining may take (rebalances, a coordinator still loading).
const JOIN_WAIT: Duration = Duration::from_secs(60);

pub struct Member {
    coordinator: Connection,
    group: String,
    topic: String,
    member_id: String,
    generation: i32,
    pub assigned: Vec<i32>,
    last_heartbeat: Instant,
}

fn versioned<T: Encodable>(message: &T) -> Result<Bytes> {
    let mut out = BytesMut::new();
    out.put_i16(0);
    message
        .encode(&mut out, 0)
        .map_err(|e| anyhow::anyhow!("encode: {e}"))?;
    Ok(out.freeze())
}

fn subscription(topic: &str) -> Result<Bytes> {
    versioned(&ConsumerProtocolSubscription::default().with_topics(vec![kafka::name(topic)]))
}

fn subscribed_topics(metadata: &[u8]) -> Vec<String> {
    if metadata.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([metadata[0], metadata[1]]).clamp(0, 3);
    let mut body = Bytes::copy_from_slice(&metadata[2..]);
    ConsumerProtocolSubscription::decode(&mut body, version)
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

fn assigned_partitions(assignment: &[u8], topic: &str) -> Vec<i32> {
    if assignment.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([assignment[0], assignment[1]]).clamp(0, 3);
    let mut body = Bytes::copy_from_slice(&assignment[2..]);
    let mut partitions: Vec<i32> = ConsumerProtocolAssignment::decode(&mut body, version)
        .map(|a| {
            a.assigned_partitions
                .into_iter()
                .filter(|tp| tp.topic.0.as_str() == topic)
                .flat_map(|tp| tp.partitions)
                .collect()
        })
        .unwrap_or_default();
    partitions.sort();
    partitions
}

/// The range assignor: per topic, members subscribed to it in member-id
/// order get consecutive ranges, the first `partitions % members` one more.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut plan: BTreeMap<String, BTreeMap<String, Vec<i32>>> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, count) in partitions {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let (each, extra) = (*count / members.len() as i32, *count % members.len() as i32);
        let mut next = 0;
        for (i, member) in members.iter().enumerate() {
            let share = each + i32::from((i as i32) < extra);
            let range: Vec<i32> = (next..next + share).collect();
            next += share;
            if let Some(topics) = plan.get_mut(*member) {
                topics.insert(topic.clone(), range);
            }
        }
    }
    plan
}

fn assignment_bytes(topics: &BTreeMap<String, Vec<i32>>) -> Result<Bytes> {
    versioned(
        &ConsumerProtocolAssignment::default().with_assigned_partitions(
            topics
                .iter()
                .map(|(t, ps)| {
                    TopicPartition::default()
                        .with_topic(crate::topic_name(t))
                        .with_partitions(ps.clone())
                })
                .collect(),
        ),
    )
}

/// A connection to `group`'s coordinator, found with FindCoordinator
/// (retried while Kafka creates __consumer_offsets on first use).
/// An OffsetCommit of `positions` in `topic`: generation -1 and an empty
/// member id commit as a standalone consumer (Kafka's admin-style commit).
pub fn commit_request(
    group: &str,
    generation: i32,
    member_id: &str,
    topic: &str,
    positions: &[(i32, i64)],
) -> OffsetCommitRequest {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    OffsetCommitRequest::default()
        .with_group_id(GroupId(kafka::name(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(kafka::name(member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(crate::topic_name(topic))
            .with_partitions(
                positions
                    .iter()
                    .map(|(p, o)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                    })
                    .collect(),
            )])
}

pub fn connect_coordinator(bootstrap: &str, group: &str) -> Result<Connection> {
    let mut connection = Connection::connect(bootstrap)?;
    let request = FindCoordinatorRequest::default()
        .with_key(kafka::name(group))
        .with_key_type(0);
    let deadline = Instant::now() + JOIN_WAIT;
    loop {
        let response: FindCoordinatorResponse =
            connection.call(ApiKey::FindCoordinator, 3, &request)?;
        let loading = [
            ResponseError::CoordinatorNotAvailable.code(),
            ResponseError::CoordinatorLoadInProgress.code(),
        ];
        if loading.contains(&response.error_code) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        check(
            response.error_code,
            &format!("find the coordinator of {group}"),
        )?;
        let address = format!("{}:{}", response.host, response.port);
        return if address == bootstrap {
            Ok(connection)
        } else {
            Connection::connect(&address)
        };
    }
}

impl Member {
    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn join(coordinator: Connection, group: &str, topic: &str) -> Result<Member> {
        let mut member = Member {
            coordinator,
            group: group.to_string(),
            topic: topic.to_string(),
            member_id: String::new(),
            generation: -1,
            assigned: Vec::new(),
            last_heartbeat: Instant::now(),
        };
        member.rejoin()?;
        Ok(member)
    }

    /// Join and sync until this member has an assignment of a generation.
    pub fn rejoin(&mut self) -> Result<()> {
        let deadline = Instant::now() + JOIN_WAIT;
        let loading = [
            ResponseError::CoordinatorNotAvailable.code(),
            ResponseError::CoordinatorLoadInProgress.code(),
            ResponseError::NotCoordinator.code(),
        ];
        while Instant::now() < deadline {
            use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(kafka::name(&self.group)))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_member_id(kafka::name(&self.member_id))
                .with_protocol_type(kafka::name("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(kafka::name(ASSIGNOR))
                    .with_metadata(subscription(&self.topic)?)]);
            let joined: JoinGroupResponse =
                self.coordinator
                    .call(ApiKey::JoinGroup, JOIN_VERSION, &request)?;
            if joined.error_code == ResponseError::MemberIdRequired.code() {
                self.member_id = joined.member_id.to_string();
                continue;
            }
            if joined.error_code == ResponseError::UnknownMemberId.code() {
                self.member_id.clear();
                continue;
            }
            if loading.contains(&joined.error_code) {
                // Kafka, right after it created __consumer_offsets.
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            check(joined.error_code, &format!("join group {}", self.group))?;
            self.member_id = joined.member_id.to_string();
            self.generation = joined.generation_id;
            let plan = if joined.leader == joined.member_id {
                self.lead(&joined)?
            } else {
                Vec::new()
            };
            let request = SyncGroupRequest::default()
                .with_group_id(GroupId(kafka::name(&self.group)))
                .with_generation_id(self.generation)
                .with_member_id(kafka::name(&self.member_id))
                .with_assignments(plan);
            let synced: SyncGroupResponse =
                self.coordinator
                    .call(ApiKey::SyncGroup, SYNC_VERSION, &request)?;
            if synced.error_code == ResponseError::RebalanceInProgress.code() {
                continue;
            }
            check(synced.error_code, &format!("sync group {}", self.group))?;
            self.assigned = assigned_partitions(&synced.assignment, &self.topic);
            self.last_heartbeat = Instant::now();
            return Ok(());
        }
        bail!(
            "group {}: no stable assignment within {} s",
            self.group,
            JOIN_WAIT.as_secs()
        )
    }

    /// The leader's plan for every member.
    fn lead(
        &mut self,
        joined: &JoinGroupResponse,
    ) -> Result<Vec<sync_group_request::SyncGroupRequestAssignment>> {
        let subscriptions: BTreeMap<String, Vec<String>> = joined
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), subscribed_topics(&m.metadata)))
            .collect();
        let mut topics: Vec<String> = subscriptions.values().flatten().cloned().collect();
        topics.sort();
        topics.dedup();
        let mut partitions = BTreeMap::new();
        for topic in topics {
            let count = kafka::partition_count(&mut self.coordinator, &topic)
                .with_context(|| format!("partitions of {topic} for the assignment"))?;
            partitions.insert(topic, count);
        }
        range_assign(&subscriptions, &partitions)
            .into_iter()
            .map(|(member, topics)| {
                Ok(sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(kafka::name(&member))
                    .with_assignment(assignment_bytes(&topics)?))
            })
            .collect()
    }

    /// Heartbeats when due; true when the group is rebalancing (the caller
    /// commits, then calls `rejoin`).
    pub fn heartbeat(&mut self) -> Result<bool> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(false);
        }
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(kafka::name(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(kafka::name(&self.member_id));
        let response: HeartbeatResponse =
            self.coordinator
                .call(ApiKey::Heartbeat, HEARTBEAT_VERSION, &request)?;
        self.last_heartbeat = Instant::now();
        let rejoin = [
            ResponseError::RebalanceInProgress.code(),
            ResponseError::IllegalGeneration.code(),
            ResponseError::UnknownMemberId.code(),
        ];
        if rejoin.contains(&response.error_code) {
            if response.error_code == ResponseError::UnknownMemberId.code() {
                self.member_id.clear();
            }
            return Ok(true);
        }
        check(response.error_code, &format!("heartbeat in {}", self.group))?;
        Ok(false)
    }

    /// Commits positions of this generation; a commit refused because the
    /// group moved on is not an error (the next owner re-reads from the
    /// last accepted commit).
    pub fn commit(&mut self, positions: &[(i32, i64)]) -> Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let request = commit_request(
            &self.group,
            self.generation,
            &self.member_id,
            &self.topic,
            positions,
        );
        let response: OffsetCommitResponse =
            self.coordinator
                .call(ApiKey::OffsetCommit, kafka::OFFSET_COMMIT, &request)?;
        let moved_on = [
            ResponseError::RebalanceInProgress.code(),
            ResponseError::IllegalGeneration.code(),
            ResponseError::UnknownMemberId.code(),
        ];
        for t in response.topics {
            for p in t.partitions {
                if moved_on.contains(&p.error_code) {
                    eprintln!(
                        "sluice: commit of {}/{} skipped: the group is rebalancing",
                        self.topic, p.partition_index
                    );
                    continue;
                }
                check(
                    p.error_code,
                    &format!("commit {}/{}", self.topic, p.partition_index),
                )?;
            }
        }
        Ok(())
    }

    pub fn committed(&mut self) -> Result<BTreeMap<i32, i64>> {
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(kafka::name(&self.group)))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(crate::topic_name(&self.topic))
                .with_partition_indexes(self.assigned.clone())]));
        let response: OffsetFetchResponse =
            self.coordinator
                .call(ApiKey::OffsetFetch, kafka::OFFSET_FETCH, &request)?;
        check(
            response.error_code,
            &format!("committed offsets of {}", self.group),
        )?;
        Ok(response
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .map(|p| (p.partition_index, p.committed_offset))
            .collect())
    }

    pub fn leave(mut self) -> Result<()> {
        use kafka_protocol::messages::leave_group_request::MemberIdentity;
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(kafka::name(&self.group)))
            .with_members(vec![
                MemberIdentity::default().with_member_id(kafka::name(&self.member_id))
            ]);
        let response: LeaveGroupResponse =
            self.coordinator
                .call(ApiKey::LeaveGroup, LEAVE_VERSION, &request)?;
        check(response.error_code, &format!("leave group {}", self.group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignment_matches_the_java_range_assignor() {
        let subscriptions: BTreeMap<String, Vec<String>> = [
            ("a".to_string(), vec!["t".to_string(), "u".to_string()]),
            ("b".to_string(), vec!["t".to_string()]),
            ("c".to_string(), vec!["t".to_string(), "u".to_string()]),
        ]
        .into_iter()
        .collect();
        let partitions: BTreeMap<String, i32> = [("t".to_string(), 7), ("u".to_string(), 3)]
            .into_iter()
            .collect();
        let plan = range_assign(&subscriptions, &partitions);
        assert_eq!(plan["a"]["t"], vec![0, 1, 2]);
        assert_eq!(plan["b"]["t"], vec![3, 4]);
        assert_eq!(plan["c"]["t"], vec![5, 6]);
        assert_eq!(plan["a"]["u"], vec![0, 1]);
        assert_eq!(plan["c"]["u"], vec![2]);
        assert!(!plan["b"].contains_key("u"));
    }

    #[test]
    fn assignments_round_trip_the_consumer_protocol() {
        let topics: BTreeMap<String, Vec<i32>> =
            [("t".to_string(), vec![4, 1])].into_iter().collect();
        let bytes = assignment_bytes(&topics).expect("encode");
        assert_eq!(assigned_partitions(&bytes, "t"), vec![1, 4]);
        assert!(assigned_partitions(&bytes, "other").is_empty());
        assert_eq!(
            subscribed_topics(&subscription("t").expect("encode")),
            vec!["t"]
        );
    }
}
