//! The `__consumer_offsets` topic: which partition holds a group, and the
//! records that persist committed offsets and group metadata, in Kafka's own
//! key/value layouts (OffsetCommitKey v1, OffsetCommitValue v3,
//! GroupMetadataKey v2, GroupMetadataValue v3 without members), so Kafka's
//! offsets decoders can read them. Last record per key wins on reload; a
//! null value (tombstone) deletes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

const OFFSET_KEY_VERSION: i16 = 1;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_KEY_VERSION: i16 = 2;
const GROUP_VALUE_VERSION: i16 = 3;

/// Kafka's choice: `Utils.abs(groupId.hashCode) % partitions`, with Java's
/// String.hashCode over UTF-16 code units.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
}

/// One decoded `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        /// None: tombstone.
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        /// None: tombstone.
        value: Option<GroupRecord>,
    },
}

fn put_string(out: &mut BytesMut, s: &str) {
    out.put_i16(s.len().min(i16::MAX as usize) as i16);
    out.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_nullable(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => out.put_i16(-1),
    }
}

fn get_string(buf: &mut Bytes) -> Option<String> {
    get_nullable(buf)?
}

fn get_nullable(buf: &mut Bytes) -> Option<Option<String>> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    if buf.remaining() < len {
        return None;
    }
    let text = String::from_utf8(buf.split_to(len).to_vec()).ok()?;
    Some(Some(text))
}

impl Entry {
    fn key(&self) -> Bytes {
        let mut key = BytesMut::new();
        match self {
            Entry::Offset {
                group,
                topic,
                partition,
                ..
            } => {
                key.put_i16(OFFSET_KEY_VERSION);
                put_string(&mut key, group);
                put_string(&mut key, topic);
                key.put_i32(*partition);
            }
            Entry::Group { group, .. } => {
                key.put_i16(GROUP_KEY_VERSION);
                put_string(&mut key, group);
            }
        }
        key.freeze()
    }

    fn value(&self) -> Option<Bytes> {
        let mut value = BytesMut::new();
        match self {
            Entry::Offset { value: None, .. } | Entry::Group { value: None, .. } => return None,
            Entry::Offset {
                value: Some(committed),
                ..
            } => {
                value.put_i16(OFFSET_VALUE_VERSION);
                value.put_i64(committed.offset);
                value.put_i32(committed.leader_epoch);
                put_string(&mut value, &committed.metadata);
                value.put_i64(committed.commit_timestamp_ms);
            }
            Entry::Group {
                value: Some(group), ..
            } => {
                value.put_i16(GROUP_VALUE_VERSION);
                put_string(&mut value, &group.protocol_type);
                value.put_i32(group.generation);
                put_nullable(&mut value, group.protocol.as_deref());
                put_nullable(&mut value, group.leader.as_deref());
                value.put_i64(group.state_timestamp_ms);
                value.put_i32(0); // members: not persisted (they rejoin)
            }
        }
        Some(value.freeze())
    }

    /// Decodes a record; None for anything this broker did not write.
    pub fn decode(key: &Bytes, value: Option<&Bytes>) -> Option<Entry> {
        let mut key = key.clone();
        if key.remaining() < 2 {
            return None;
        }
        match key.get_i16() {
            OFFSET_KEY_VERSION => {
                let group = get_string(&mut key)?;
                let topic = get_string(&mut key)?;
                if key.remaining() < 4 {
                    return None;
                }
                let partition = key.get_i32();
                let value = match value {
                    None => None,
                    Some(value) => Some(decode_offset(value.clone())?),
                };
                Some(Entry::Offset {
                    group,
                    topic,
                    partition,
                    value,
                })
            }
            GROUP_KEY_VERSION => {
                let group = get_string(&mut key)?;
                let value = match value {
                    None => None,
                    Some(value) => Some(decode_group(value.clone())?),
                };
                Some(Entry::Group { group, value })
            }
            _ => None,
        }
    }
}

fn decode_offset(mut value: Bytes) -> Option<CommittedOffset> {
    if value.remaining() < 2 + 8 + 4 || value.get_i16() != OFFSET_VALUE_VERSION {
        return None;
    }
    let offset = value.get_i64();
    let leader_epoch = value.get_i32();
    let metadata = get_string(&mut value)?;
    if value.remaining() < 8 {
        return None;
    }
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms: value.get_i64(),
    })
}

fn decode_group(mut value: Bytes) -> Option<GroupRecord> {
    if value.remaining() < 2 || value.get_i16() != GROUP_VALUE_VERSION {
        return None;
    }
    let protocol_type = get_string(&mut value)?;
    if value.remaining() < 4 {
        return None;
    }
    let generation = value.get_i32();
    let protocol = get_nullable(&mut value)?;
    let leader = get_nullable(&mut value)?;
    if value.remaining() < 8 {
        return None;
    }
    Some(GroupRecord {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms: value.get_i64(),
    })
}

/// One RecordBatch v2 holding the entries, ready to append.
pub fn encode_batch(entries: &[Entry], now_ms: i64) -> Result<BytesMut, String> {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence
            // changes; this keeps one batch with base sequence -1 (no
            // producer), as a non-idempotent client writes it.
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: Some(entry.key()),
            value: entry.value(),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, records.iter(), &options)
        .map_err(|e| format!("encode offsets batch: {e}"))?;
    Ok(out)
}

/// Decodes every entry of stored batches (whole batches, back to back).
/// Stops at the first batch that does not decode (a record this version
/// does not know is skipped, not fatal).
pub fn decode_batches(mut bytes: Bytes) -> Vec<Entry> {
    let mut entries = Vec::new();
    while bytes.has_remaining() {
        let Ok(set) = RecordBatchDecoder::decode(&mut bytes) else {
            break;
        };
        for record in set.records {
            if record.control {
                continue;
            }
            if let Some(key) = &record.key {
                entries.extend(Entry::decode(key, record.value.as_ref()));
            }
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_hash_code() {
        // jshell: "my-group".hashCode() == -1906497762; abs % 50 == 12.
        assert_eq!(partition_for("my-group", 50), 12);
        // Negative Java hashes use Math.abs: "polygenelubricants" hashes to
        // Integer.MIN_VALUE, which Kafka's Utils.abs maps to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        for group in ["", "a", "consumer-group-ü"] {
            assert!((0..50).contains(&partition_for(group, 50)));
        }
    }

    #[test]
    fn entries_round_trip_through_a_batch() {
        let entries = vec![
            Entry::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(CommittedOffset {
                    offset: 42,
                    leader_epoch: -1,
                    metadata: "m".into(),
                    commit_timestamp_ms: 1_700_000_000_000,
                }),
            },
            Entry::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 4,
                value: None,
            },
            Entry::Group {
                group: "g".into(),
                value: Some(GroupRecord {
                    protocol_type: "consumer".into(),
                    generation: 7,
                    protocol: Some("range".into()),
                    leader: None,
                    state_timestamp_ms: 5,
                }),
            },
        ];
        let batch = encode_batch(&entries, 1).expect("encode");
        storage::ProducedBatch::new(batch.clone()).expect("a valid batch");
        assert_eq!(decode_batches(batch.freeze()), entries);
    }

    /// A batch whose (CRC-covered) record count claims 2^31 - 1 records
    /// made the decoder reserve room for all of them and abort the broker
    /// (found by the offsets_records fuzz target; kafka-protocol patch).
    #[test]
    fn a_batch_claiming_more_records_than_it_holds_decodes_without_a_huge_allocation() {
        let entry = Entry::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: None,
        };
        let good = encode_batch(std::slice::from_ref(&entry), 1).expect("encode");
        let mut lying = good.clone();
        // v2 header: record count at 57..61, crc at 17..21.
        lying[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = storage::batch::compute_crc(&lying);
        lying[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut log = good;
        log.extend_from_slice(&lying);
        // The valid batch's entry, then a stop at the one that runs out.
        assert_eq!(decode_batches(log.freeze()), vec![entry]);
    }

    #[test]
    fn garbage_records_are_skipped() {
        assert_eq!(
            Entry::decode(&Bytes::from_static(b"\x00\x01\x7f"), None),
            None
        );
        assert_eq!(Entry::decode(&Bytes::from_static(b"\x00\x09"), None), None);
        assert!(decode_batches(Bytes::from_static(b"not a batch at all")).is_empty());
    }
}
