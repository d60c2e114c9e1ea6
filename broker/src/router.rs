//! Partition -> owning core, and the requests cores send each other.
//!
//! Every core accepts connections (SO_REUSEPORT), but a partition lives on
//! exactly one core. A request touching a partition of another core sends
//! that core a `CoreRequest` over a bounded channel and awaits the reply on
//! a one-shot channel. The channels are flume's: runtime-agnostic, and
//! glommio wakes a task from a foreign thread through its notifier.
//!
//! The request loop on each core never sends to another core itself (it
//! only spawns local work), so the bounded queues cannot form a cycle.

use crate::metadata::topics::Topic;
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use std::rc::Rc;
use std::time::Duration;
use storage::LogConfig;

/// Requests queued for one core before senders wait (back-pressure).
pub const CORE_REQUESTS_QUEUED_MAX: usize = 4096;

/// A partition read done on its owning core, in a form that can cross
/// threads: tail-cache `Bytes` as they are, DMA reads copied into `Bytes`.
#[derive(Debug, Clone)]
pub struct RemoteRead {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Vec<Bytes>,
}

/// One partition to read: (topic, partition, fetch offset, partition max bytes).
pub type ReadWanted = (String, i32, i64, usize);

pub enum CoreRequest {
    Produce {
        topic: String,
        partition: i32,
        records: Option<Bytes>,
        acks: i16,
        reply: flume::Sender<PartitionProduceResponse>,
    },
    /// Reads partitions in order from a shared byte budget, as one fetch
    /// does locally. Replies with the core's append count from before the
    /// reads (for `WaitForAppend`) and one answer per partition.
    Read {
        wanted: Vec<ReadWanted>,
        budget: usize,
        /// Bytes the fetch already has from earlier cores.
        total: usize,
        reply: flume::Sender<(u64, Vec<RemoteRead>)>,
    },
    /// ListOffsets for one partition: (error code, offset, timestamp).
    ListOffset {
        topic: String,
        partition: i32,
        timestamp: i64,
        reply: flume::Sender<(i16, i64, i64)>,
    },
    /// Opens this core's partitions of the topic (creation, growth).
    OpenPartitions {
        topic: Topic,
        reply: flume::Sender<Result<(), String>>,
    },
    /// Deletes this core's partitions of the topic.
    DropPartitions {
        topic: String,
        partitions: i32,
        reply: flume::Sender<Result<(), String>>,
    },
    Reconfigure {
        topic: String,
        partitions: i32,
        config: LogConfig,
        reply: flume::Sender<Result<(), String>>,
    },
    /// Resolves once this core's append count exceeds `after`, or after
    /// `timeout` (fetch long-poll on another core's partitions).
    WaitForAppend {
        after: u64,
        timeout: Duration,
        reply: flume::Sender<()>,
    },
    /// A consumer-group API for a group this core coordinates.
    Group {
        call: crate::group::GroupCall,
        reply: flume::Sender<crate::group::GroupAnswer>,
    },
    /// Does nothing: measures the cost of a hop.
    Ping { reply: flume::Sender<()> },
}

/// The core that owns a partition. Consecutive partitions of a topic go to
/// consecutive cores; the topic's hash picks where it starts, so topics
/// with few partitions do not all land on core 0. Stable across restarts
/// for the same core count (ownership is not persisted: each core opens
/// what it owns at start-up).
pub fn owner_of(topic: &str, partition: i32, cores: usize) -> usize {
    let start = crc32c::crc32c(topic.as_bytes()) as usize;
    start.wrapping_add(partition as u32 as usize) % cores.max(1)
}

#[derive(Clone)]
pub struct Router {
    core: usize,
    peers: Vec<flume::Sender<CoreRequest>>,
}

impl Router {
    /// One router (with its core's receiving end) per core.
    pub fn mesh(cores: usize) -> Vec<(Router, flume::Receiver<CoreRequest>)> {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..cores)
            .map(|_| flume::bounded(CORE_REQUESTS_QUEUED_MAX))
            .unzip();
        receivers
            .into_iter()
            .enumerate()
            .map(|(core, receiver)| {
                (
                    Router {
                        core,
                        peers: senders.clone(),
                    },
                    receiver,
                )
            })
            .collect()
    }

    pub fn core(&self) -> usize {
        self.core
    }

    pub fn cores(&self) -> usize {
        self.peers.len()
    }

    pub fn owner(&self, topic: &str, partition: i32) -> usize {
        owner_of(topic, partition, self.peers.len())
    }

    pub fn is_local(&self, topic: &str, partition: i32) -> bool {
        self.owner(topic, partition) == self.core
    }

    /// Sends a request to `core` and awaits its reply; None if that core has
    /// stopped (shutdown) and will not answer.
    pub async fn call<T>(
        &self,
        core: usize,
        request: impl FnOnce(flume::Sender<T>) -> CoreRequest,
    ) -> Option<T> {
        let (reply, answer) = flume::bounded(1);
        self.peers
            .get(core)?
            .send_async(request(reply))
            .await
            .ok()?;
        answer.recv_async().await.ok()
    }
}

/// Serves the requests other cores send this one, until every sender is
/// gone. Each request runs as its own task, so a slow one (an fdatasync, a
/// long-poll wait) never holds up the rest.
pub async fn serve(shard: Rc<Shard>, requests: flume::Receiver<CoreRequest>) {
    while let Ok(request) = requests.recv_async().await {
        let shard = shard.clone();
        glommio::spawn_local(async move { execute(&shard, request).await }).detach();
    }
}

async fn execute(shard: &Rc<Shard>, request: CoreRequest) {
    // A send fails only when the asking core gave up (shutdown): nothing to do.
    match request {
        CoreRequest::Produce {
            topic,
            partition,
            records,
            acks,
            reply,
        } => {
            let answer =
                crate::api::produce::produce_local(shard, &topic, partition, records, acks).await;
            let _ = reply.send(answer);
        }
        CoreRequest::Read {
            wanted,
            budget,
            total,
            reply,
        } => {
            let appends = shard.append_count();
            let answers = crate::api::fetch::read_for_peer(shard, &wanted, budget, total).await;
            let _ = reply.send((appends, answers));
        }
        CoreRequest::ListOffset {
            topic,
            partition,
            timestamp,
            reply,
        } => {
            let answer =
                crate::api::list_offsets::offset_local(shard, &topic, partition, timestamp).await;
            let _ = reply.send(answer);
        }
        CoreRequest::OpenPartitions { topic, reply } => {
            let opened = shard
                .open_local_partitions(&topic)
                .await
                .map_err(|e| format!("{e:#}"));
            let _ = reply.send(opened);
        }
        CoreRequest::DropPartitions {
            topic,
            partitions,
            reply,
        } => {
            shard.drop_local_partitions(&topic, partitions).await;
            let _ = reply.send(Ok(()));
        }
        CoreRequest::Reconfigure {
            topic,
            partitions,
            config,
            reply,
        } => {
            shard.reconfigure_local_partitions(&topic, partitions, &config);
            let _ = reply.send(Ok(()));
        }
        CoreRequest::WaitForAppend {
            after,
            timeout,
            reply,
        } => {
            shard.wait_for_append(after, timeout).await;
            let _ = reply.send(());
        }
        CoreRequest::Group { call, reply } => {
            let _ = reply.send(crate::group::execute(shard, call).await);
        }
        CoreRequest::Ping { reply } => {
            let _ = reply.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_a_topic_spread_over_all_cores() {
        for cores in 1..=8 {
            let mut seen = vec![0usize; cores];
            for partition in 0..(cores as i32 * 3) {
                let owner = owner_of("orders", partition, cores);
                assert!(owner < cores);
                seen[owner] += 1;
            }
            assert!(seen.iter().all(|&n| n == 3), "{cores} cores: {seen:?}");
        }
    }

    #[test]
    fn hostile_partition_numbers_still_map_to_a_core() {
        for partition in [i32::MIN, -1, i32::MAX] {
            assert!(owner_of("t", partition, 3) < 3);
        }
    }

    #[test]
    fn owner_is_stable() {
        assert_eq!(owner_of("t", 5, 4), owner_of("t", 5, 4));
    }
}
