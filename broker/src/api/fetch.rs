//! Fetch: whole batches from each partition's log, long-polling up to
//! `max_wait_ms` until `min_bytes` are available. No fetch sessions
//! (session id 0: every request is a full fetch). The high watermark is the
//! log end on this single-node broker, as in Kafka with one replica.
//!
//! Partitions of this core are read first and their record slices go to the
//! socket uncopied; partitions of other cores are read there, one hop per
//! core, and come back as `Bytes` (tail-cache slices as they are, disk
//! reads copied once to cross the thread).

use crate::errors::storage_error_code;
use crate::protocol::fetch_response::{PartitionAnswer, TopicAnswer};
use crate::router::{CoreRequest, ReadWanted, RemoteRead};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchRequest;
use std::rc::Rc;
use std::time::{Duration, Instant};
use storage::{Chunk, Event};

/// The answer, whose record slices protocol/fetch_response.rs frames
/// without copying them.
pub async fn handle(shard: &Rc<Shard>, request: FetchRequest, _version: i16) -> Vec<TopicAnswer> {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let min_bytes = request.min_bytes.max(0) as usize;
    let plan = Plan::new(shard, &request);
    loop {
        let appended = shard.next_append();
        let read = plan.read(shard, request.max_bytes.max(0) as usize).await;
        let now = Instant::now();
        if read.bytes >= min_bytes.max(1) || read.failed || now >= deadline {
            return plan.answer(read.answers);
        }
        let remote_appended = Rc::new(Event::default());
        let woken = remote_appended.listen();
        for (core, appends) in read.remote_appends {
            let router = shard.router.clone();
            let remote_appended = remote_appended.clone();
            let timeout = deadline - now;
            glommio::spawn_local(async move {
                router
                    .call(core, |reply| CoreRequest::WaitForAppend {
                        after: appends,
                        timeout,
                        reply,
                    })
                    .await;
                remote_appended.notify_all();
            })
            .detach();
        }
        let timeout = glommio::timer::sleep(deadline - now);
        futures_lite::future::or(appended, futures_lite::future::or(woken, timeout)).await;
    }
}

/// The request's partitions in request order, grouped by owning core.
struct Plan {
    /// (topic name, partitions in request order)
    topics: Vec<(String, usize)>,
    wanted: Vec<ReadWanted>,
    /// Indexes into `wanted`, per core: this core first, then the others.
    by_core: Vec<(usize, Vec<usize>)>,
}

struct Read {
    answers: Vec<Option<PartitionAnswer>>,
    bytes: usize,
    failed: bool,
    /// Append counts of the other cores read, from before their reads.
    remote_appends: Vec<(usize, u64)>,
}

impl Plan {
    fn new(shard: &Shard, request: &FetchRequest) -> Plan {
        let mut topics = Vec::new();
        let mut wanted = Vec::new();
        for topic in &request.topics {
            let name = topic.topic.0.to_string();
            for partition in &topic.partitions {
                wanted.push((
                    name.clone(),
                    partition.partition,
                    partition.fetch_offset,
                    partition.partition_max_bytes.max(0) as usize,
                ));
            }
            topics.push((name, topic.partitions.len()));
        }
        let here = shard.router.core();
        let mut by_core: Vec<(usize, Vec<usize>)> = Vec::new();
        for (index, (name, partition, _, _)) in wanted.iter().enumerate() {
            let owner = shard.router.owner(name, *partition);
            match by_core.iter_mut().find(|(core, _)| *core == owner) {
                Some((_, indexes)) => indexes.push(index),
                None => by_core.push((owner, vec![index])),
            }
        }
        by_core.sort_by_key(|(core, _)| (*core != here, *core));
        Plan {
            topics,
            wanted,
            by_core,
        }
    }

    async fn read(&self, shard: &Rc<Shard>, max_bytes: usize) -> Read {
        let mut read = Read {
            answers: (0..self.wanted.len()).map(|_| None).collect(),
            bytes: 0,
            failed: false,
            remote_appends: Vec::new(),
        };
        let mut budget = max_bytes;
        for (core, indexes) in &self.by_core {
            let group: Vec<ReadWanted> = indexes.iter().map(|&i| self.wanted[i].clone()).collect();
            let (answers, bytes) = if *core == shard.router.core() {
                read_group(shard, &group, budget, read.bytes).await
            } else {
                let reply = shard
                    .router
                    .call(*core, |reply| CoreRequest::Read {
                        wanted: group.clone(),
                        budget,
                        total: read.bytes,
                        reply,
                    })
                    .await;
                let Some((appends, remote)) = reply else {
                    let stopping = group
                        .iter()
                        .map(|w| unreadable(w.1, ResponseError::NotLeaderOrFollower));
                    for (&index, answer) in indexes.iter().zip(stopping) {
                        read.answers[index] = Some(answer);
                    }
                    read.failed = true;
                    continue;
                };
                read.remote_appends.push((*core, appends));
                let bytes = remote
                    .iter()
                    .map(|r| r.records.iter().map(Bytes::len).sum::<usize>())
                    .sum();
                let answers = group
                    .iter()
                    .zip(remote)
                    .map(|(wanted, remote)| from_peer(wanted.1, remote))
                    .collect();
                (answers, bytes)
            };
            read.bytes += bytes;
            budget = budget.saturating_sub(bytes);
            for (&index, answer) in indexes.iter().zip(answers) {
                read.failed |= answer.error_code != 0;
                read.answers[index] = Some(answer);
            }
        }
        read
    }

    fn answer(&self, answers: Vec<Option<PartitionAnswer>>) -> Vec<TopicAnswer> {
        let mut answers = answers.into_iter();
        let mut wanted = self.wanted.iter();
        self.topics
            .iter()
            .map(|(name, count)| TopicAnswer {
                name: name.clone(),
                partitions: (0..*count)
                    .filter_map(|_| {
                        let partition = wanted.next()?.1;
                        let answer = answers.next()?;
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
    }
}

/// Reads this core's partitions in order from a shared budget. Kafka
/// returns at least one batch to make progress, even past max_bytes, but
/// only for the first partition with data (`total_before` == 0).
async fn read_group(
    shard: &Rc<Shard>,
    group: &[ReadWanted],
    mut budget: usize,
    total_before: usize,
) -> (Vec<PartitionAnswer>, usize) {
    let mut total = 0usize;
    let mut answers = Vec::with_capacity(group.len());
    for (name, index, offset, partition_max) in group {
        let Some(partition) = shard.partition(name, *index) else {
            answers.push(unreadable(*index, ResponseError::UnknownTopicOrPartition));
            continue;
        };
        let log = &partition.log;
        let mut answer = answer_with_code(*index, 0);
        answer.high_watermark = log.high_watermark();
        answer.last_stable_offset = answer.high_watermark;
        answer.log_start_offset = log.log_start_offset();
        if budget == 0 && total_before + total > 0 {
            answers.push(answer);
            continue;
        }
        let limit = (*partition_max).min(budget.max(1));
        match log.read(*offset, limit).await {
            Ok(read) => {
                let bytes = read.total_bytes();
                total += bytes;
                budget = budget.saturating_sub(bytes);
                answer.records = Some(read.chunks);
            }
            Err(error) => answer.error_code = storage_error_code(&error),
        }
        answers.push(answer);
    }
    (answers, total)
}

/// A peer core's side of `CoreRequest::Read`.
pub async fn read_for_peer(
    shard: &Rc<Shard>,
    group: &[ReadWanted],
    budget: usize,
    total_before: usize,
) -> Vec<RemoteRead> {
    let (answers, _) = read_group(shard, group, budget, total_before).await;
    answers
        .into_iter()
        .map(|answer| RemoteRead {
            error_code: answer.error_code,
            high_watermark: answer.high_watermark,
            log_start_offset: answer.log_start_offset,
            records: answer
                .records
                .unwrap_or_default()
                .into_iter()
                .map(|chunk| match chunk {
                    Chunk::Memory(bytes) => bytes,
                    // DMA buffers belong to this core's executor.
                    Chunk::Disk(read) => Bytes::copy_from_slice(&read),
                })
                .collect(),
        })
        .collect()
}

fn from_peer(partition_index: i32, remote: RemoteRead) -> PartitionAnswer {
    PartitionAnswer {
        partition_index,
        error_code: remote.error_code,
        high_watermark: remote.high_watermark,
        last_stable_offset: remote.high_watermark,
        log_start_offset: remote.log_start_offset,
        aborted_transactions: Some(Vec::new()),
        records: Some(remote.records.into_iter().map(Chunk::Memory).collect()),
    }
}
