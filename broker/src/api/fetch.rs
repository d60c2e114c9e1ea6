//! Fetch: whole batches from each partition's log, long-polling up to
//! `max_wait_ms` until `min_bytes` are available. No fetch sessions
//! (session id 0: every request is a full fetch). Consumers read up to the
//! high watermark; a follower (ReplicaId >= 0) reads up to the log end, and
//! its fetch offset is its position for the leader's ISR and high
//! watermark (`Partition::on_replica_fetch`); a follower whose last fetched
//! epoch diverged gets DivergingEpoch instead of records.
//!
//! Partitions of this core are read first and their record slices go to the
//! socket uncopied; partitions of other cores are read there, one hop per
//! core, and come back as `Bytes` (tail-cache slices as they are, disk
//! reads copied once to cross the thread).

use crate::api::context::RequestContext;
use crate::api::fetch_response::{self, PartitionAnswer, TopicAnswer};
use crate::api::reply::{Outcome, Reply};
use crate::core::{Core, ReadWanted};
use crate::errors::read_error;
use crate::partition::{PartitionRead, ReadError};
use bytes::Bytes;
use controller::acl::operation::{CLUSTER_ACTION, READ};
use controller::acl::resource::{CLUSTER, TOPIC};
use controller::acl::CLUSTER_NAME;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchRequest;
use std::rc::Rc;
use std::time::{Duration, Instant};
use storage::{Chunk, Event};

/// The answer, whose record slices api/fetch_response.rs frames without
/// copying them.
pub struct FetchReply(Vec<TopicAnswer>);

impl FetchReply {
    pub fn topics(&self) -> &[TopicAnswer] {
        &self.0
    }
}

impl Reply for FetchReply {
    fn into_outcome(self, ctx: &RequestContext) -> Outcome {
        Outcome::RespondParts(fetch_response::encode(
            ctx.version,
            ctx.correlation_id,
            self.0,
        ))
    }
}

pub async fn handle(ctx: &RequestContext, core: &Rc<Core>, request: FetchRequest) -> FetchReply {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let min_bytes = request.min_bytes.max(0) as usize;
    let replica = (request.replica_id.0 >= 0).then_some(request.replica_id.0);
    let plan = Plan::new(ctx, core, &request, replica.is_some());
    loop {
        // Notified by a change to any partition read (those of this core
        // watch it during the read, those of other cores through a wait
        // there).
        let changed = Rc::new(Event::default());
        let woken = changed.listen();
        let read = plan
            .read(core, request.max_bytes.max(0) as usize, replica, &changed)
            .await;
        let now = Instant::now();
        if read.bytes >= min_bytes.max(1) || read.failed || now >= deadline {
            return FetchReply(plan.answer(read.answers));
        }
        for (other, partitions, after) in read.remote_changes {
            let (core, changed) = (core.clone(), changed.clone());
            let timeout = deadline - now;
            glommio::spawn_local(async move {
                core.wait_for_changes(other, partitions, after, timeout)
                    .await;
                changed.notify_all();
            })
            .detach();
        }
        futures_lite::future::or(woken, glommio::timer::sleep(deadline - now)).await;
    }
}

/// The request's partitions in request order, grouped by owning core.
struct Plan {
    /// (topic name, topic id, partitions in request order); the name is
    /// empty for an id this broker does not know (v13+).
    topics: Vec<(String, u128, usize)>,
    wanted: Vec<ReadWanted>,
    /// Per `wanted`: the caller may read it (a consumer needs READ on the
    /// topic, a follower CLUSTER_ACTION on the cluster); the others are
    /// not read and answer TOPIC_AUTHORIZATION_FAILED, as in Kafka.
    allowed: Vec<bool>,
    /// Indexes into `wanted`, per core: this core first, then the others.
    by_core: Vec<(usize, Vec<usize>)>,
}

/// Another core read: its index, the partitions read there, and their
/// change count from before the read.
type RemoteChanges = (usize, Vec<(String, i32)>, u64);

struct Read {
    answers: Vec<Option<PartitionAnswer>>,
    bytes: usize,
    failed: bool,
    /// The other cores read, their partitions and those partitions'
    /// change count from before the reads.
    remote_changes: Vec<RemoteChanges>,
}

impl Plan {
    fn new(ctx: &RequestContext, core: &Core, request: &FetchRequest, replica: bool) -> Plan {
        let version = ctx.version;
        let mut topics = Vec::new();
        let mut wanted = Vec::new();
        let mut allowed = Vec::new();
        let image = core.image();
        let authorizer = core.authorizer();
        let caller = ctx.caller();
        let replica_allowed =
            replica && authorizer.allows(&caller, CLUSTER_ACTION, CLUSTER, CLUSTER_NAME);
        for topic in &request.topics {
            // v13+ names topics by id (KIP-516).
            let (name, id) = if version >= 13 {
                let id = topic.topic_id.as_u128();
                let name = image.topic_by_id(id).map(|t| t.name.clone());
                (name.unwrap_or_default(), id)
            } else {
                let name = topic.topic.0.to_string();
                let id = image.topic(&name).map_or(0, |t| t.id);
                (name, id)
            };
            let may_read = if replica {
                replica_allowed
            } else {
                authorizer.allows(&caller, READ, TOPIC, &name)
            };
            for partition in &topic.partitions {
                allowed.push(may_read);
                wanted.push(ReadWanted {
                    topic: name.clone(),
                    partition: partition.partition,
                    offset: partition.fetch_offset,
                    max_bytes: partition.partition_max_bytes.max(0) as usize,
                    current_leader_epoch: partition.current_leader_epoch,
                    last_fetched_epoch: partition.last_fetched_epoch,
                });
            }
            topics.push((name, id, topic.partitions.len()));
        }
        let here = core.router.core();
        let mut by_core: Vec<(usize, Vec<usize>)> = Vec::new();
        for (index, want) in wanted.iter().enumerate() {
            if !allowed[index] {
                continue;
            }
            let owner = core.router.owner(&want.topic, want.partition);
            match by_core.iter_mut().find(|(core, _)| *core == owner) {
                Some((_, indexes)) => indexes.push(index),
                None => by_core.push((owner, vec![index])),
            }
        }
        by_core.sort_by_key(|(core, _)| (*core != here, *core));
        Plan {
            topics,
            wanted,
            allowed,
            by_core,
        }
    }

    async fn read(
        &self,
        core: &Rc<Core>,
        max_bytes: usize,
        replica: Option<i32>,
        changed: &Rc<Event>,
    ) -> Read {
        let mut read = Read {
            answers: (0..self.wanted.len()).map(|_| None).collect(),
            bytes: 0,
            failed: false,
            remote_changes: Vec::new(),
        };
        let mut budget = max_bytes;
        for (owner, indexes) in &self.by_core {
            let group: Vec<ReadWanted> = indexes.iter().map(|&i| self.wanted[i].clone()).collect();
            let (answers, bytes) = if *owner == core.router.core() {
                let (reads, bytes) = core
                    .read_here(&group, budget, read.bytes, replica, Some(changed))
                    .await;
                let answers: Vec<PartitionAnswer> = group
                    .iter()
                    .zip(reads)
                    .map(|(wanted, read)| partition_answer(wanted.partition, read))
                    .collect();
                (answers, bytes)
            } else {
                let reply = core
                    .read_on(*owner, group.clone(), budget, read.bytes, replica)
                    .await;
                let Ok((changes, remote)) = reply else {
                    for &index in indexes {
                        let partition = self.wanted[index].partition;
                        read.answers[index] =
                            Some(unreadable(partition, ResponseError::NotLeaderOrFollower));
                    }
                    read.failed = true;
                    continue;
                };
                let partitions = group
                    .iter()
                    .map(|w| (w.topic.clone(), w.partition))
                    .collect();
                read.remote_changes.push((*owner, partitions, changes));
                let bytes = remote
                    .iter()
                    .flatten()
                    .map(|r| r.records.iter().map(Bytes::len).sum::<usize>())
                    .sum();
                let answers = group
                    .iter()
                    .zip(remote)
                    .map(|(wanted, read)| {
                        let read = read.map(|r| PartitionRead {
                            high_watermark: r.high_watermark,
                            log_start_offset: r.log_start_offset,
                            records: r.records.into_iter().map(Chunk::Memory).collect(),
                            diverging: r.diverging,
                        });
                        partition_answer(wanted.partition, read)
                    })
                    .collect();
                (answers, bytes)
            };
            read.bytes += bytes;
            budget = budget.saturating_sub(bytes);
            for (&index, answer) in indexes.iter().zip(answers) {
                read.failed |= answer.error_code != 0 || answer.diverging_epoch.is_some();
                read.answers[index] = Some(answer);
            }
        }
        read
    }

    fn answer(&self, answers: Vec<Option<PartitionAnswer>>) -> Vec<TopicAnswer> {
        let mut answers = answers.into_iter();
        let mut wanted = self.wanted.iter().zip(&self.allowed);
        self.topics
            .iter()
            .map(|(name, id, count)| TopicAnswer {
                name: name.clone(),
                id: *id,
                partitions: (0..*count)
                    .filter_map(|_| {
                        let (wanted, allowed) = wanted.next()?;
                        let partition = wanted.partition;
                        let answer = answers.next()?;
                        if name.is_empty() {
                            return Some(unreadable(partition, ResponseError::UnknownTopicId));
                        }
                        if !allowed {
                            return Some(unreadable(
                                partition,
                                ResponseError::TopicAuthorizationFailed,
                            ));
                        }
                        Some(answer.unwrap_or_else(|| {
                            unreadable(partition, ResponseError::UnknownServerError)
                        }))
                    })
                    .collect(),
            })
            .collect()
    }
}

fn unreadable(partition_index: i32, error: ResponseError) -> PartitionAnswer {
    answer_with_code(partition_index, error.code())
}

fn answer_with_code(partition_index: i32, error_code: i16) -> PartitionAnswer {
    PartitionAnswer {
        partition_index,
        error_code,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        aborted_transactions: Some(Vec::new()),
        records: Some(Vec::new()),
        diverging_epoch: None,
    }
}

/// A partition's read as Fetch answers it.
fn partition_answer(
    partition_index: i32,
    read: Result<PartitionRead<Chunk>, ReadError>,
) -> PartitionAnswer {
    match read {
        Ok(read) => PartitionAnswer {
            partition_index,
            error_code: 0,
            high_watermark: read.high_watermark,
            last_stable_offset: read.high_watermark,
            log_start_offset: read.log_start_offset,
            aborted_transactions: Some(Vec::new()),
            records: Some(read.records),
            diverging_epoch: read.diverging.map(|d| (d.epoch, d.end_offset)),
        },
        Err(error) => unreadable(partition_index, read_error(&error)),
    }
}
