//! Produce: one RecordBatch per partition, validated once here (on the core
//! that received it) and appended by the partition on its owning core;
//! acks=-1 waits for durability under the flush policy here and on every
//! in-sync replica (the high watermark passing the batch, within the
//! request's timeout), acks=1 for the in-memory append on the leader,
//! acks=0 answers nothing. Idempotent producers get
//! Kafka's sequence checks (duplicates answered with the original offset).
//!
//! The record batches are not copied out of the request frame: once the
//! decoded request is dropped, the frame's memory is split into one
//! mutable piece per batch (offsets are written into it in place), and the
//! only copy left is storage's into the DMA buffer.

use crate::api::context::RequestContext;
use crate::api::reply::{Outcome, Reply};
use crate::api::topic_name;
use crate::core::Core;
use crate::errors::produce_error;
use crate::group::store::OFFSETS_TOPIC;
use crate::partition::{Acks, ProduceError, Produced};
use bytes::{Bytes, BytesMut};
use controller::acl::operation::WRITE;
use controller::acl::resource::{TOPIC, TRANSACTIONAL_ID};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use storage::{BatchError, ProducedBatch};

/// (topic index, partition index) of a partition in the request.
type Slot = (usize, usize);
/// A checked batch for its partition: topic, partition, batch.
type OwnedBatch = (String, i32, ProducedBatch);

/// A topic's partitions as the request named them, with their records.
pub(crate) type WantedTopic = (String, Vec<(i32, Option<Bytes>)>);

/// The response, or nothing at all for acks=0.
pub struct ProduceReply {
    acks: i16,
    response: ProduceResponse,
}

impl ProduceReply {
    pub fn response(&self) -> &ProduceResponse {
        &self.response
    }
}

impl Reply for ProduceReply {
    fn into_outcome(self, ctx: &RequestContext) -> Outcome {
        if self.acks == 0 {
            // Kafka closes the connection when an acks=0 write failed
            // anywhere (refused, not the leader, ...): the producer hears
            // of it no other way, and reconnects with fresh metadata.
            let failed = self.response.responses.iter().find_map(|topic| {
                let partition = topic
                    .partition_responses
                    .iter()
                    .find(|p| p.error_code != 0)?;
                Some((topic.name.as_str(), partition.index, partition.error_code))
            });
            match failed {
                None => Outcome::Silent,
                Some((topic, index, code)) => Outcome::Refused(format!(
                    "acks=0 produce to {topic}-{index} failed with error {code}"
                )),
            }
        } else {
            self.response.into_outcome(ctx)
        }
    }
}

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: ProduceRequest,
) -> ProduceReply {
    let started = std::time::Instant::now();
    let reply = produce(ctx, core, request).await;
    core.counters.produce_acked(reply.acks, started.elapsed());
    reply
}

async fn produce(ctx: &RequestContext, core: &Rc<Core>, request: ProduceRequest) -> ProduceReply {
    let acks = request.acks;
    // acks=all waits at most this long for the in-sync replicas.
    let timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    let authorizer = core.authorizer();
    // Kafka: transactional records need the request's transactional id,
    // and WRITE on it.
    let transactional = request
        .transactional_id
        .as_ref()
        .is_some_and(|id| authorizer.allows(&ctx.caller(), WRITE, TRANSACTIONAL_ID, id));
    let (wanted, mut records) = batches_of(ctx.take_frame(), request);
    let may_write = |topic: &str| Allowed {
        topic: authorizer.allows(&ctx.caller(), WRITE, TOPIC, topic),
        transactional,
    };
    if let [(name, partitions)] = &wanted[..] {
        if let [(index, _)] = partitions[..] {
            // One partition (what a producer sends to a partition's leader
            // most of the time): nothing to run beside it, so no task.
            let bytes = records.next_piece();
            let allowed = may_write(name);
            let produced =
                produce_partition(core, name.clone(), index, bytes, acks, allowed, timeout).await;
            return ProduceReply {
                acks,
                response: ProduceResponse::default().with_responses(vec![
                    TopicProduceResponse::default()
                        .with_name(topic_name(name))
                        .with_partition_responses(vec![answer(index, produced)]),
                ]),
            };
        }
    }
    // Several partitions: checked here, then one call per owning core
    // (Core::produce_on), all at once, so that their appends and waits
    // overlap and a core's partitions cost one hop together.
    let mut answers: Vec<Vec<Option<Result<Produced, Refused>>>> = wanted
        .iter()
        .map(|(_, partitions)| partitions.iter().map(|_| None).collect())
        .collect();
    let mut by_core: Vec<(usize, Vec<Slot>, Vec<OwnedBatch>)> = Vec::new();
    // The request's acks, once a partition passed the checks (they parse it).
    let mut valid_acks = None;
    for (t, (name, partitions)) in wanted.iter().enumerate() {
        let allowed = may_write(name);
        for (p, (index, _)) in partitions.iter().enumerate() {
            let bytes = records.next_piece();
            match check(name, bytes, acks, allowed) {
                Err(refused) => answers[t][p] = Some(Err(refused)),
                Ok((checked, batch)) => {
                    valid_acks = Some(checked);
                    let owner = core.router.owner(name, *index);
                    let group = match by_core.iter().position(|(c, _, _)| *c == owner) {
                        Some(at) => &mut by_core[at],
                        None => {
                            by_core.push((owner, Vec::new(), Vec::new()));
                            by_core.last_mut().expect("just pushed")
                        }
                    };
                    group.1.push((t, p));
                    group.2.push((name.clone(), *index, batch));
                }
            }
        }
    }
    if let Some(acks) = valid_acks {
        let calls: Vec<_> = by_core
            .into_iter()
            .map(|(owner, slots, batches)| {
                let core = core.clone();
                let call = glommio::spawn_local(async move {
                    core.produce_on(owner, batches, acks, timeout).await
                });
                (slots, call)
            })
            .collect();
        for (slots, call) in calls {
            for ((t, p), produced) in slots.into_iter().zip(call.await) {
                answers[t][p] = Some(produced.map_err(Refused::Produce));
            }
        }
    }
    let responses = wanted
        .iter()
        .zip(answers)
        .map(|((name, partitions), answers)| {
            let partitions = partitions
                .iter()
                .zip(answers)
                .map(|((index, _), produced)| {
                    // Every slot was answered above: refused by `check`,
                    // or by its core.
                    let produced = produced
                        .unwrap_or(Err(Refused::Kafka(ResponseError::InvalidRequiredAcks, "")));
                    answer(*index, produced)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic_name(name))
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceReply {
        acks,
        response: ProduceResponse::default().with_responses(responses),
    }
}

/// The request's topics and partitions, and their record batches as
/// mutable memory in the same order. Everything of the decoded request is
/// dropped first, so that the frame's memory is unique again.
pub(crate) fn batches_of(
    frame: Option<Bytes>,
    mut request: ProduceRequest,
) -> (Vec<WantedTopic>, Records) {
    let topic_data = std::mem::take(&mut request.topic_data);
    drop(request); // its transactional id and tagged fields share the frame
    let mut wanted: Vec<WantedTopic> = Vec::with_capacity(topic_data.len());
    for topic in topic_data {
        let partitions = topic
            .partition_data
            .into_iter()
            .map(|data| (data.index, data.records))
            .collect();
        wanted.push((topic.name.0.to_string(), partitions));
    }
    let records = Records::take(frame, &mut wanted);
    (wanted, records)
}

/// What the caller may write: the topic, and transactional records.
#[derive(Clone, Copy)]
struct Allowed {
    topic: bool,
    transactional: bool,
}

/// Why a partition's produce is refused before it reaches the partition.
enum Refused {
    Kafka(ResponseError, &'static str),
    Batch(BatchError),
    Produce(ProduceError),
}

async fn produce_partition(
    core: &Rc<Core>,
    topic: String,
    index: i32,
    records: Option<BytesMut>,
    acks: i16,
    allowed: Allowed,
    timeout: std::time::Duration,
) -> Result<Produced, Refused> {
    let (acks, batch) = check(&topic, records, acks, allowed)?;
    core.produce(topic, index, batch, acks, timeout)
        .await
        .map_err(Refused::Produce)
}

/// What is checked on the core that received the request, before the
/// batch goes to its partition; `allowed`: the caller may WRITE the topic.
fn check(
    topic: &str,
    records: Option<BytesMut>,
    acks: i16,
    allowed: Allowed,
) -> Result<(Acks, ProducedBatch), Refused> {
    let Some(acks) = Acks::from_wire(acks) else {
        return Err(Refused::Kafka(ResponseError::InvalidRequiredAcks, ""));
    };
    if !allowed.topic {
        return Err(Refused::Kafka(ResponseError::TopicAuthorizationFailed, ""));
    }
    if topic == OFFSETS_TOPIC {
        // Only the group coordinator writes the offsets topic.
        return Err(Refused::Kafka(
            ResponseError::InvalidTopicException,
            "cannot produce to an internal topic",
        ));
    }
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err(Refused::Kafka(ResponseError::InvalidRecord, "no records"));
    };
    if !is_one_batch(&records) {
        return Err(Refused::Kafka(
            ResponseError::InvalidRecord,
            "exactly one record batch per partition is accepted",
        ));
    }
    let batch = ProducedBatch::new(records).map_err(Refused::Batch)?;
    if batch.is_transactional() && !allowed.transactional {
        return Err(Refused::Kafka(
            ResponseError::TransactionalIdAuthorizationFailed,
            "",
        ));
    }
    Ok((acks, batch))
}

/// The batch's own length field covers the whole buffer. Kafka's producers
/// send one batch per partition; a second one after it is refused.
fn is_one_batch(records: &[u8]) -> bool {
    // baseOffset (8) then batchLength (4), which counts what follows it.
    const LENGTH_END: usize = 12;
    let Some(length) = records.get(8..LENGTH_END) else {
        return true; // too short even for a header: validation says so
    };
    let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
    usize::try_from(length).is_ok_and(|l| l.checked_add(LENGTH_END) == Some(records.len()))
        || records.len() < storage::limits::BATCH_HEADER_BYTES
}

fn answer(index: i32, produced: Result<Produced, Refused>) -> PartitionProduceResponse {
    let (error, message) = match produced {
        Ok(produced) => {
            return PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(produced.base_offset)
                .with_log_append_time_ms(produced.log_append_time_ms.unwrap_or(-1))
                .with_log_start_offset(produced.log_start_offset)
        }
        Err(Refused::Kafka(error, message)) => {
            (error, (!message.is_empty()).then(|| message.to_string()))
        }
        Err(Refused::Batch(error)) => {
            let storage = storage::StorageError::InvalidBatch(error);
            (
                crate::errors::storage_error(&storage),
                Some(storage.to_string()),
            )
        }
        Err(Refused::Produce(error)) => {
            tracing::debug!(index, %error, "produce refused");
            let message = matches!(error, ProduceError::Storage(_)).then(|| error.to_string());
            (produce_error(&error), message)
        }
    };
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(StrBytes::from_string))
}

/// The request's record batches as mutable memory, in request order:
/// pieces of the request frame itself when it can be made unique (always,
/// once the decoded request is gone), else copies.
pub(crate) struct Records {
    pieces: std::vec::IntoIter<Option<BytesMut>>,
}

impl Records {
    /// Takes every partition's records out of `wanted` (left as None).
    fn take(frame: Option<Bytes>, wanted: &mut [WantedTopic]) -> Records {
        let slices: Vec<Option<Bytes>> = wanted
            .iter_mut()
            .flat_map(|(_, partitions)| partitions.iter_mut().map(|(_, records)| records.take()))
            .collect();
        let pieces = match frame {
            Some(frame) => split_frame(frame, slices),
            None => slices
                .into_iter()
                .map(|s| s.map(|s| BytesMut::from(&s[..])))
                .collect(),
        };
        Records {
            pieces: pieces.into_iter(),
        }
    }

    pub(crate) fn next_piece(&mut self) -> Option<BytesMut> {
        self.pieces.next().flatten()
    }
}

/// Splits `frame` into the mutable pieces `slices` view, without copying
/// when every slice lies in the frame in order and nothing else shares it.
fn split_frame(frame: Bytes, slices: Vec<Option<Bytes>>) -> Vec<Option<BytesMut>> {
    let base = frame.as_ptr() as usize;
    let mut ranges = Vec::with_capacity(slices.len());
    let mut end_so_far = 0usize;
    let mut in_order = true;
    for slice in &slices {
        ranges.push(slice.as_ref().map(|s| {
            let start = (s.as_ptr() as usize).wrapping_sub(base);
            in_order &= start >= end_so_far && start.saturating_add(s.len()) <= frame.len();
            end_so_far = start.saturating_add(s.len());
            (start, s.len())
        }));
    }
    if !in_order {
        return slices
            .into_iter()
            .map(|s| s.map(|s| BytesMut::from(&s[..])))
            .collect();
    }
    // The slices' references go; the frame's must be the last one.
    drop(slices);
    let mut rest = match frame.try_into_mut() {
        Ok(whole) => whole,
        Err(shared) => {
            return ranges
                .into_iter()
                .map(|r| r.map(|(start, len)| BytesMut::from(&shared[start..start + len])))
                .collect()
        }
    };
    let mut consumed = 0usize;
    ranges
        .into_iter()
        .map(|range| {
            range.map(|(start, len)| {
                let _ = rest.split_to(start - consumed);
                consumed = start + len;
                rest.split_to(len)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_pieces_of_the_frame_not_copies() {
        let mut frame = BytesMut::new();
        frame.extend_from_slice(b"header..AAAA..BBBBBB..");
        let frame = frame.freeze();
        let a = frame.slice(8..12);
        let b = frame.slice(14..20);
        let (a_at, b_at) = (a.as_ptr(), b.as_ptr());
        let pieces = split_frame(frame, vec![Some(a), None, Some(b)]);
        let [Some(a), None, Some(b)] = &pieces[..] else {
            panic!("pieces: {pieces:?}");
        };
        assert_eq!((&a[..], &b[..]), (&b"AAAA"[..], &b"BBBBBB"[..]));
        assert_eq!((a.as_ptr(), b.as_ptr()), (a_at, b_at), "copied");
    }

    #[test]
    fn a_shared_frame_is_copied_not_corrupted() {
        let frame = Bytes::from_static(b"..AAAA").slice(0..6);
        let keep = frame.clone();
        let a = frame.slice(2..6);
        let pieces = split_frame(frame, vec![Some(a)]);
        assert_eq!(pieces[0].as_deref(), Some(&b"AAAA"[..]));
        assert_eq!(&keep[..], b"..AAAA");
    }

    #[test]
    fn one_batch_is_the_whole_buffer() {
        let mut batch = vec![0u8; 70];
        batch[8..12].copy_from_slice(&58i32.to_be_bytes());
        assert!(is_one_batch(&batch));
        batch.extend_from_slice(&[0u8; 70]);
        assert!(!is_one_batch(&batch));
    }
}
