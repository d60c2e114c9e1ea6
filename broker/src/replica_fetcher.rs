//! The follower side of replication (Kafka's ReplicaFetcherThread): on
//! each core, one fetch stream per leader broker carrying every partition
//! this core follows from it, over the leader's client listener with the
//! Kafka Fetch API as a replica (ReplicaId = this broker; fetch offset =
//! the log end, CurrentLeaderEpoch, LastFetchedEpoch). Partitions map to
//! the same core index on every broker (router.rs hashes the topic name),
//! so core k of one broker mostly talks to core k of another.
//!
//! The leader's batches are appended as they are; the next fetch is sent
//! only once they are durable under the log's flush policy, so the offset
//! the leader learns from it (and counts towards the high watermark and
//! acks=all) is durable on this replica. A DivergingEpoch answer truncates
//! the log to where it agrees with the leader's; OFFSET_OUT_OF_RANGE (the
//! leader no longer has what this replica would need) restarts the log at
//! the leader's log start.

use crate::core::Core;
use crate::inter_broker::{Link, LinkError};
use crate::partition::{Partition, Role};
use crate::security::PeerSecurity;
use bytes::{Buf, Bytes};
use futures_lite::AsyncWriteExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// The Fetch version followers send: the newest this broker serves (topic
/// ids, LastFetchedEpoch and DivergingEpoch need v12+).
const FETCH_VERSION: i16 = 13;

/// How often a core looks for partitions it follows from a leader it has
/// no stream to (metadata changes also wake it).
const SUPERVISE_INTERVAL: Duration = Duration::from_millis(100);

/// A response larger than this is refused (the request asks for at most
/// `replica.fetch.response.max.bytes`, plus one batch per partition).
const RESPONSE_BYTES_MAX: usize = 256 << 20;

/// Runs this core's fetch streams: one task per leader broker, started
/// when a partition here follows it, ending when none does. Runs until the
/// executor stops. `security` says how to reach the leaders' inter-broker
/// listener.
pub async fn run(core: Rc<Core>, security: Arc<PeerSecurity>) {
    let running: Rc<RefCell<HashSet<i32>>> = Rc::default();
    loop {
        let changed = core.roles_changed();
        let leaders: HashSet<i32> = core
            .shard
            .named()
            .iter()
            .filter_map(|(_, _, p)| match p.role() {
                Role::Follower { leader, .. } => Some(leader),
                _ => None,
            })
            .collect();
        for leader in leaders {
            if leader == core.config.node_id || !running.borrow_mut().insert(leader) {
                continue;
            }
            let (core, running, security) = (core.clone(), running.clone(), security.clone());
            glommio::spawn_local(async move {
                Stream::new(core, leader, security).run().await;
                running.borrow_mut().remove(&leader);
            })
            .detach();
        }
        futures_lite::future::or(changed, glommio::timer::sleep(SUPERVISE_INTERVAL)).await;
    }
}

/// One followed partition in one fetch.
struct Followed {
    topic: String,
    topic_id: u128,
    index: i32,
    partition: Rc<Partition>,
    leader_epoch: i32,
}

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("no endpoint for broker {0} in the metadata")]
    NoEndpoint(i32),
    #[error("{0}")]
    Link(#[from] LinkError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("undecodable fetch response: {0}")]
    Decode(String),
    #[error("fetch refused: {0:?}")]
    Refused(Option<ResponseError>),
}

struct Stream {
    core: Rc<Core>,
    leader: i32,
    security: Arc<PeerSecurity>,
    connection: Option<Link>,
    correlation_id: i32,
    /// The last error logged, so a leader that stays down logs once.
    last_error: String,
}

impl Stream {
    fn new(core: Rc<Core>, leader: i32, security: Arc<PeerSecurity>) -> Stream {
        Stream {
            core,
            leader,
            security,
            connection: None,
            correlation_id: 0,
            last_error: String::new(),
        }
    }

    async fn run(mut self) {
        let backoff = self.core.config.cluster.replica_fetch_backoff;
        loop {
            let followed = self.followed();
            if followed.is_empty() {
                return;
            }
            match self.fetch_once(&followed).await {
                Ok(true) => {}
                Ok(false) => glommio::timer::sleep(backoff).await,
                Err(error) => {
                    let text = error.to_string();
                    if text != self.last_error {
                        tracing::warn!(leader = self.leader, core = self.core.router.core(), %error, "replica fetch");
                        self.last_error = text;
                    }
                    self.connection = None;
                    glommio::timer::sleep(backoff).await;
                }
            }
        }
    }

    /// The partitions of this core that follow this stream's leader.
    fn followed(&self) -> Vec<Followed> {
        let image = self.core.image();
        self.core
            .shard
            .named()
            .into_iter()
            .filter_map(|(topic, index, partition)| match partition.role() {
                Role::Follower {
                    leader,
                    leader_epoch,
                } if leader == self.leader => {
                    let topic_id = image.topic(&topic)?.id;
                    Some(Followed {
                        topic,
                        topic_id,
                        index,
                        partition,
                        leader_epoch,
                    })
                }
                _ => None,
            })
            .collect()
    }

    async fn connect(&mut self) -> Result<&mut Link, StreamError> {
        if self.connection.is_none() {
            let image = self.core.image();
            let endpoint = image
                .brokers
                .get(&self.leader)
                .and_then(|b| b.endpoint(&self.security.listener))
                .ok_or(StreamError::NoEndpoint(self.leader))?;
            let timeout = self.core.config.cluster.replica_socket_timeout;
            let link =
                crate::inter_broker::dial(&endpoint.host, endpoint.port, &self.security, timeout)
                    .await?;
            self.connection = Some(link);
            self.last_error.clear();
        }
        self.connection
            .as_mut()
            .ok_or(StreamError::NoEndpoint(self.leader))
    }

    /// One fetch and what follows from its answer. Ok(false): nothing
    /// could be fetched (every partition refused): back off.
    async fn fetch_once(&mut self, followed: &[Followed]) -> Result<bool, StreamError> {
        let request = self.request(followed);
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(&request, self.correlation_id)?;
        let cluster = &self.core.config.cluster;
        let wait = cluster.replica_fetch_wait_max + cluster.replica_socket_timeout;
        let stream = self.connect().await?;
        let answer = glommio::timer::timeout(wait, async {
            stream.write_all(&frame).await?;
            // TLS may hold back the records' tail until flushed.
            stream.flush().await?;
            crate::inter_broker::read_frame(stream, RESPONSE_BYTES_MAX)
                .await
                .map_err(glommio::GlommioError::IoError)
        })
        .await;
        let body = match answer {
            Ok(body) => body,
            Err(glommio::GlommioError::TimedOut(_)) => return Err(StreamError::Timeout(wait)),
            Err(glommio::GlommioError::IoError(error)) => return Err(StreamError::Io(error)),
            Err(other) => return Err(StreamError::Io(std::io::Error::other(other.to_string()))),
        };
        let response = decode_response(body)?;
        if response.error_code != 0 {
            return Err(StreamError::Refused(ResponseError::try_from_code(
                response.error_code,
            )));
        }
        let mut progressed = false;
        let mut appended = Vec::new();
        for topic in response.responses {
            let topic_id = topic.topic_id.as_u128();
            for answer in topic.partitions {
                let Some(mine) = followed
                    .iter()
                    .find(|f| f.topic_id == topic_id && f.index == answer.partition_index)
                else {
                    continue;
                };
                // Still following the same leadership (a metadata change
                // may have arrived while the fetch was out).
                if !matches!(mine.partition.role(),
                    Role::Follower { leader, leader_epoch }
                        if leader == self.leader && leader_epoch == mine.leader_epoch)
                {
                    continue;
                }
                match self.take(mine, answer).await {
                    Ok(Some(info)) => {
                        progressed = true;
                        appended.push((mine.partition.clone(), info));
                    }
                    Ok(None) => progressed = true,
                    Err(error) => {
                        tracing::debug!(topic = %mine.topic, partition = mine.index, %error, "replica fetch of partition");
                    }
                }
            }
        }
        // Durable before the next fetch reports these offsets.
        for (partition, info) in appended {
            if let Err(error) = partition.wait_durable(&info).await {
                tracing::error!(dir = %partition.log().dir().display(), %error, "follower flush");
            }
        }
        Ok(progressed)
    }

    fn request(&self, followed: &[Followed]) -> FetchRequest {
        let cluster = &self.core.config.cluster;
        let mut topics: Vec<FetchTopic> = Vec::new();
        for f in followed {
            let log = f.partition.log();
            let partition = FetchPartition::default()
                .with_partition(f.index)
                .with_current_leader_epoch(f.leader_epoch)
                .with_fetch_offset(log.log_end_offset())
                .with_last_fetched_epoch(log.leader_epoch())
                .with_log_start_offset(log.log_start_offset())
                .with_partition_max_bytes(cluster.replica_fetch_max_bytes);
            let id = uuid::Uuid::from_u128(f.topic_id);
            match topics.iter_mut().find(|t| t.topic_id == id) {
                Some(topic) => topic.partitions.push(partition),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic_id(id)
                        .with_partitions(vec![partition]),
                ),
            }
        }
        FetchRequest::default()
            .with_replica_id(BrokerId(self.core.config.node_id))
            .with_max_wait_ms(cluster.replica_fetch_wait_max.as_millis() as i32)
            .with_min_bytes(1)
            .with_max_bytes(cluster.replica_fetch_response_max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics)
    }

    /// One partition's answer: truncate, restart, or append. Some(info)
    /// when batches were appended (the caller waits for their flush).
    async fn take(
        &self,
        mine: &Followed,
        answer: kafka_protocol::messages::fetch_response::PartitionData,
    ) -> Result<Option<storage::AppendInfo>, String> {
        let partition = &mine.partition;
        match ResponseError::try_from_code(answer.error_code) {
            None => {}
            Some(ResponseError::OffsetOutOfRange) => {
                // The leader cannot serve our log end (its log starts later,
                // or our last epoch is older than anything it keeps): take
                // the leader's log from its start.
                let start = answer.log_start_offset.max(0);
                tracing::warn!(topic = %mine.topic, partition = mine.index, leader = self.leader,
                    log_end = partition.log().log_end_offset(), leader_log_start = start,
                    "follower out of range: restarting the log at the leader's log start");
                partition
                    .restart_at(start)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(None);
            }
            Some(error) => return Err(format!("{error:?}")),
        }
        let diverging = &answer.diverging_epoch;
        if diverging.epoch >= 0 || diverging.end_offset >= 0 {
            let before = partition.log().log_end_offset();
            let epoch_end = replication::EpochEnd {
                epoch: diverging.epoch,
                end_offset: diverging.end_offset,
            };
            let after = partition
                .truncate_diverging(epoch_end)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(topic = %mine.topic, partition = mine.index, leader = self.leader,
                ?epoch_end, from = before, to = after, "follower truncated a diverging log");
            return Ok(None);
        }
        let mut info = None;
        if let Some(records) = answer.records.filter(|r| !r.is_empty()) {
            match partition.append_replicated(records).await {
                Ok(appended) => info = appended,
                Err(storage::StorageError::NonContiguousAppend { expected, found })
                    if found < expected
                        && partition.log().log_start_offset()
                            == partition.log().log_end_offset() =>
                {
                    // An empty log started inside the leader's first batch
                    // (DeleteRecords moved the leader's start mid-batch):
                    // start where that batch does, as Kafka's fetcher does.
                    partition
                        .restart_at(found)
                        .await
                        .map_err(|e| e.to_string())?;
                    return Ok(None);
                }
                Err(error) => return Err(error.to_string()),
            }
        }
        partition.follow_high_watermark(answer.high_watermark);
        let leader_start = answer.log_start_offset;
        if leader_start > partition.log_start_offset() {
            // DeleteRecords or retention on the leader: follow it, up to
            // what this replica has.
            let to = leader_start.min(partition.log().log_end_offset());
            if let Err(error) = partition.log().delete_records_before(to).await {
                tracing::warn!(topic = %mine.topic, partition = mine.index, %error, "follower log start");
            }
        }
        Ok(info)
    }
}

fn encode_request(request: &FetchRequest, correlation_id: i32) -> Result<Bytes, StreamError> {
    Ok(crate::inter_broker::request_frame(
        ApiKey::Fetch,
        FETCH_VERSION,
        request,
        correlation_id,
        "sluice-replica-fetcher",
    )?)
}

fn decode_response(mut body: Bytes) -> Result<FetchResponse, StreamError> {
    ResponseHeader::decode(
        &mut body,
        ApiKey::Fetch.response_header_version(FETCH_VERSION),
    )
    .map_err(|e| StreamError::Decode(e.to_string()))?;
    let response = FetchResponse::decode(&mut body, FETCH_VERSION)
        .map_err(|e| StreamError::Decode(e.to_string()))?;
    if body.has_remaining() {
        return Err(StreamError::Decode(format!(
            "{} bytes after the response",
            body.remaining()
        )));
    }
    Ok(response)
}
