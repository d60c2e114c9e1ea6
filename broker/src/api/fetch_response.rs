//! Hand-framed Fetch responses (v4-v13; v13 names topics by id) so that record bytes go from the
//! storage's slices (tail cache `Bytes` or DMA read buffers) to the socket
//! without being copied into one response buffer. Everything but the records
//! is encoded into small owned buffers; the records are the storage chunks
//! themselves. The layout is checked against the kafka-protocol crate's own
//! encoder for every served version (tests below).

use bytes::{BufMut, BytesMut};
use storage::Chunk;

/// One partition's answer.
pub struct PartitionAnswer {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Aborted transactions in the range (always empty: no transactions);
    /// None would encode as null.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// None encodes as null records.
    pub records: Option<Vec<Chunk>>,
    /// (epoch, end offset) for a follower whose log diverged (v12+, tagged
    /// field 0, DivergingEpoch).
    pub diverging_epoch: Option<(i32, i64)>,
}

pub struct TopicAnswer {
    pub name: String,
    /// Written instead of the name from v13 (KIP-516).
    pub id: u128,
    pub partitions: Vec<PartitionAnswer>,
}

/// A response as consecutive parts to write in order.
pub enum Part {
    Owned(bytes::Bytes),
    Records(Chunk),
}

impl Part {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Part::Owned(bytes) => bytes,
            Part::Records(chunk) => chunk,
        }
    }
}

fn put_uvarint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Length prefix of an array/string/bytes: compact (n+1 as uvarint) in
/// flexible versions, i32 (or i16 for strings) otherwise. `None` is null.
fn put_len(out: &mut BytesMut, flexible: bool, len: Option<usize>, string: bool) {
    match (flexible, len) {
        (true, None) => put_uvarint(out, 0),
        (true, Some(n)) => put_uvarint(out, n as u64 + 1),
        (false, None) if string => out.put_i16(-1),
        (false, None) => out.put_i32(-1),
        (false, Some(n)) if string => out.put_i16(n as i16),
        (false, Some(n)) => out.put_i32(n as i32),
    }
}

/// Encodes the whole frame (size prefix, response header, body) for
/// `version` in 4..=13.
pub fn encode(version: i16, correlation_id: i32, topics: Vec<TopicAnswer>) -> Vec<Part> {
    let flexible = version >= 12;
    let mut parts = Vec::new();
    let mut head = BytesMut::with_capacity(64);
    head.put_i32(0); // frame size, patched at the end
    head.put_i32(correlation_id);
    if flexible {
        put_uvarint(&mut head, 0); // response header tagged fields
    }
    head.put_i32(0); // throttle_time_ms
    if version >= 7 {
        head.put_i16(0); // error_code
        head.put_i32(0); // session_id: no fetch sessions
    }
    put_len(&mut head, flexible, Some(topics.len()), false);
    for topic in topics {
        if version >= 13 {
            head.put_u128(topic.id);
        } else {
            put_len(&mut head, flexible, Some(topic.name.len()), true);
            head.put_slice(topic.name.as_bytes());
        }
        put_len(&mut head, flexible, Some(topic.partitions.len()), false);
        for partition in topic.partitions {
            head.put_i32(partition.partition_index);
            head.put_i16(partition.error_code);
            head.put_i64(partition.high_watermark);
            head.put_i64(partition.last_stable_offset);
            if version >= 5 {
                head.put_i64(partition.log_start_offset);
            }
            let aborted = partition.aborted_transactions.as_ref();
            put_len(&mut head, flexible, aborted.map(Vec::len), false);
            for (producer_id, first_offset) in aborted.into_iter().flatten() {
                head.put_i64(*producer_id);
                head.put_i64(*first_offset);
                if flexible {
                    put_uvarint(&mut head, 0);
                }
            }
            if version >= 11 {
                head.put_i32(-1); // preferred_read_replica
            }
            let records_len = partition
                .records
                .as_ref()
                .map(|chunks| chunks.iter().map(|c| c.len()).sum::<usize>());
            put_len(&mut head, flexible, records_len, false);
            for chunk in partition.records.into_iter().flatten() {
                parts.push(Part::Owned(std::mem::take(&mut head).freeze()));
                parts.push(Part::Records(chunk));
            }
            if flexible {
                match partition.diverging_epoch {
                    // One tagged field: tag 0, 13 bytes (epoch, end
                    // offset, the struct's empty tagged fields).
                    Some((epoch, end_offset)) => {
                        put_uvarint(&mut head, 1);
                        put_uvarint(&mut head, 0);
                        put_uvarint(&mut head, 13);
                        head.put_i32(epoch);
                        head.put_i64(end_offset);
                        put_uvarint(&mut head, 0);
                    }
                    None => put_uvarint(&mut head, 0), // partition tagged fields
                }
            }
        }
        if flexible {
            put_uvarint(&mut head, 0); // topic tagged fields
        }
    }
    if flexible {
        put_uvarint(&mut head, 0); // response tagged fields
    }
    parts.push(Part::Owned(head.freeze()));
    let total: usize = parts.iter().map(|p| p.as_slice().len()).sum();
    let size = ((total - 4) as i32).to_be_bytes();
    if let Some(Part::Owned(first)) = parts.first_mut() {
        let mut patched = BytesMut::from(&first[..]);
        patched[0..4].copy_from_slice(&size);
        *first = patched.freeze();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{ApiKey, FetchResponse, ProducerId, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    const ORDERS_ID: u128 = 0x1234_5678_9abc_4def_8123_4567_89ab_cdef;
    const E_ID: u128 = 7;

    fn sample(records: &[&'static [u8]]) -> Vec<TopicAnswer> {
        vec![
            TopicAnswer {
                name: "orders".into(),
                id: ORDERS_ID,
                partitions: vec![
                    PartitionAnswer {
                        partition_index: 0,
                        error_code: 0,
                        high_watermark: 42,
                        last_stable_offset: 42,
                        log_start_offset: 3,
                        aborted_transactions: Some(vec![(7, 9)]),
                        records: Some(
                            records
                                .iter()
                                .map(|r| Chunk::Memory(Bytes::from_static(r)))
                                .collect(),
                        ),
                        diverging_epoch: None,
                    },
                    PartitionAnswer {
                        partition_index: 1,
                        error_code: 1,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        aborted_transactions: Some(vec![]),
                        records: Some(vec![]),
                        diverging_epoch: Some((4, 40)),
                    },
                ],
            },
            TopicAnswer {
                name: "e".into(),
                id: E_ID,
                partitions: vec![],
            },
        ]
    }

    fn reference(version: i16, records: &[&[u8]]) -> Vec<u8> {
        reference_built(version, records, false)
    }

    fn reference_with_nulls(version: i16, records: &[&[u8]]) -> Vec<u8> {
        reference_built(version, records, true)
    }

    fn reference_built(version: i16, records: &[&[u8]], nulls: bool) -> Vec<u8> {
        let joined: Vec<u8> = records.concat();
        let response = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_topic_id(uuid::Uuid::from_u128(ORDERS_ID))
                .with_partitions(vec![
                    PartitionData::default()
                        .with_partition_index(0)
                        .with_high_watermark(42)
                        .with_last_stable_offset(42)
                        .with_log_start_offset(3)
                        .with_aborted_transactions(Some(vec![AbortedTransaction::default()
                            .with_producer_id(ProducerId(7))
                            .with_first_offset(9)]))
                        .with_records(Some(Bytes::from(joined))),
                    PartitionData::default()
                        .with_partition_index(1)
                        .with_error_code(1)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_aborted_transactions(if nulls { None } else { Some(vec![]) })
                        .with_records(if nulls { None } else { Some(Bytes::new()) })
                        .with_diverging_epoch(
                            EpochEndOffset::default().with_epoch(4).with_end_offset(40),
                        ),
                ]),
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("e")))
                .with_topic_id(uuid::Uuid::from_u128(E_ID)),
        ]);
        let mut body = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(5)
            .encode(&mut body, ApiKey::Fetch.response_header_version(version))
            .expect("header");
        response.encode(&mut body, version).expect("body");
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn matches_the_protocol_crate_for_every_served_version() {
        let records: &[&'static [u8]] = &[b"batch-one", b"", b"batch-two!"];
        for version in 4..=13 {
            // Null fields too: compare the null encodings byte for byte.
            let mut nulls = sample(records);
            nulls[0].partitions[1].aborted_transactions = None;
            nulls[0].partitions[1].records = None;
            let ours: Vec<u8> = encode(version, 5, nulls)
                .iter()
                .flat_map(|p| p.as_slice().to_vec())
                .collect();
            assert_eq!(
                ours,
                reference_with_nulls(version, records),
                "Fetch v{version} with nulls"
            );
            let parts = encode(version, 5, sample(records));
            let ours: Vec<u8> = parts.iter().flat_map(|p| p.as_slice().to_vec()).collect();
            assert_eq!(ours, reference(version, records), "Fetch v{version}");
            assert!(
                parts.iter().any(|p| matches!(p, Part::Records(_))),
                "records stay separate parts"
            );
        }
    }
}
