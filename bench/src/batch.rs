//! RecordBatch v2 (uncompressed) built by bench: each record's value starts
//! with its producer, sequence number, intended send time and a checksum of
//! the rest, so that consumers can verify what they read and measure
//! end-to-end latency.

use anyhow::Result;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::Compressor;

const HEADER_BYTES: usize = 61;

fn put_varint(out: &mut BytesMut, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.put_u8((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.put_u8(zigzag as u8);
}

fn varint_len(value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut len = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        len += 1;
    }
    len
}

/// Payload of a message: producer id (u32), sequence (u64), crc32c of the
/// filler (u32), then filler bytes up to `size`.
/// Bytes before a payload's filler: producer (4), sequence (8), send time
/// in µs since the run's origin (8), CRC-32C of the filler (4).
pub const PAYLOAD_HEADER_BYTES: usize = 24;

/// What a consumer reads back out of a record value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    pub producer: u32,
    pub sequence: u64,
    pub send_us: u64,
    /// The checksum matched the filler.
    pub intact: bool,
}

pub fn payload(producer: u32, sequence: u64, send_us: u64, size: usize, out: &mut BytesMut) {
    let size = size.max(PAYLOAD_HEADER_BYTES);
    let start = out.len();
    out.put_u32(producer);
    out.put_u64(sequence);
    out.put_u64(send_us);
    out.put_u32(0);
    put_filler(sequence, size - PAYLOAD_HEADER_BYTES, out);
    let crc = crc32c::crc32c(&out[start + PAYLOAD_HEADER_BYTES..]);
    out[start + 20..start + 24].copy_from_slice(&crc.to_be_bytes());
}

/// The letters a filler repeats, long enough that a 4 KiB filler is one copy.
const FILLER_PATTERN: [u8; 26 * 160] = {
    let mut pattern = [0u8; 26 * 160];
    let mut i = 0;
    while i < pattern.len() {
        pattern[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    pattern
};

/// `len` filler bytes for `sequence`: byte i is `'a' + (sequence + i) % 26`.
/// Copied from [`FILLER_PATTERN`]: writing them one by one was most of
/// bench's CPU per message.
fn put_filler(sequence: u64, len: usize, out: &mut BytesMut) {
    let mut at = (sequence % 26) as usize;
    let mut left = len;
    while left > 0 {
        let take = left.min(FILLER_PATTERN.len() - at);
        out.put_slice(&FILLER_PATTERN[at..at + take]);
        left -= take;
        at = (at + take) % 26;
    }
}

/// Decodes a payload; None if the value is too short to be one.
pub fn read_payload(value: &[u8]) -> Option<Payload> {
    if value.len() < PAYLOAD_HEADER_BYTES {
        return None;
    }
    let stored = u32::from_be_bytes(value[20..24].try_into().ok()?);
    Some(Payload {
        producer: u32::from_be_bytes(value[0..4].try_into().ok()?),
        sequence: u64::from_be_bytes(value[4..12].try_into().ok()?),
        send_us: u64::from_be_bytes(value[12..20].try_into().ok()?),
        intact: crc32c::crc32c(&value[PAYLOAD_HEADER_BYTES..]) == stored,
    })
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// The record values of one uncompressed RecordBatch v2 (whole batch,
/// header included). None if the batch is compressed or malformed.
pub fn values(batch: &[u8]) -> Option<Vec<&[u8]>> {
    if batch.len() < HEADER_BYTES || i16::from_be_bytes([batch[21], batch[22]]) & 0x7 != 0 {
        return None;
    }
    let count = i32::from_be_bytes(batch[57..61].try_into().ok()?);
    let mut at = HEADER_BYTES;
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let length = usize::try_from(get_varint(batch, &mut at)?).ok()?;
        let end = at.checked_add(length)?;
        let record = batch.get(at..end)?;
        let mut r = 1; // attributes
        get_varint(record, &mut r)?; // timestamp delta
        get_varint(record, &mut r)?; // offset delta
        let key_len = get_varint(record, &mut r)?;
        if key_len > 0 {
            r = r.checked_add(key_len as usize)?;
        }
        let value_len = usize::try_from(get_varint(record, &mut r)?).ok()?;
        out.push(record.get(r..r.checked_add(value_len)?)?);
        at = end;
    }
    Some(out)
}

/// Batch compression, as Kafka's `compression.type` (attribute bits 0-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    fn attribute(self) -> i16 {
        self as i16
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }

    /// The records section, compressed the way Kafka clients do.
    fn compress(self, records: &[u8]) -> Result<BytesMut> {
        use kafka_protocol::compression::{Gzip, Lz4, Snappy, Zstd};
        let mut out = BytesMut::with_capacity(records.len() / 2);
        let fill = |tmp: &mut BytesMut| {
            tmp.put_slice(records);
            Ok(())
        };
        match self {
            Codec::None => out.put_slice(records),
            Codec::Gzip => Gzip::compress(&mut out, fill)?,
            Codec::Snappy => Snappy::compress(&mut out, fill)?,
            Codec::Lz4 => Lz4::compress(&mut out, fill)?,
            Codec::Zstd => Zstd::compress(&mut out, fill)?,
        }
        Ok(out)
    }
}

/// One message of a batch: its sequence number (per producer), its
/// intended send time (µs since the run's origin), its size and its key.
#[derive(Clone, Copy, Debug)]
pub struct Message {
    pub sequence: u64,
    pub send_us: u64,
    pub size: usize,
    /// Key number: the record key is `key-<n>`; None is a null key.
    pub key: Option<u64>,
}

/// The record key of key number `n`.
pub fn key_bytes(n: u64) -> String {
    format!("key-{n}")
}

/// One batch of `producer`'s `messages`, created at `timestamp_ms`.
pub fn build(
    producer: u32,
    messages: &[Message],
    codec: Codec,
    timestamp_ms: i64,
) -> Result<Bytes> {
    let count = messages.len();
    let total: usize = messages.iter().map(|m| m.size + 32).sum();
    // Uncompressed records are written where the batch will hold them, after
    // room for its header; compressed ones go to their own buffer first.
    let header_room = if codec == Codec::None {
        HEADER_BYTES
    } else {
        0
    };
    let mut records = BytesMut::with_capacity(header_room + total);
    records.put_bytes(0, header_room);
    for (delta, message) in messages.iter().enumerate() {
        let key = message.key.map(key_bytes);
        let key_len = key.as_ref().map_or(-1, |k| k.len() as i64);
        let value_len = message.size.max(PAYLOAD_HEADER_BYTES);
        let body_len = 1
            + varint_len(0)
            + varint_len(delta as i64)
            + varint_len(key_len)
            + key.as_ref().map_or(0, |k| k.len())
            + varint_len(value_len as i64)
            + value_len
            + varint_len(0);
        put_varint(&mut records, body_len as i64);
        records.put_u8(0); // attributes
        put_varint(&mut records, 0); // timestamp delta
        put_varint(&mut records, delta as i64); // offset delta
        put_varint(&mut records, key_len);
        if let Some(key) = &key {
            records.put_slice(key.as_bytes());
        }
        put_varint(&mut records, value_len as i64);
        payload(
            producer,
            message.sequence,
            message.send_us,
            message.size,
            &mut records,
        );
        put_varint(&mut records, 0); // no headers
    }
    let mut batch = match codec {
        Codec::None => records,
        codec => {
            let compressed = codec.compress(&records)?;
            let mut batch = BytesMut::with_capacity(HEADER_BYTES + compressed.len());
            batch.put_bytes(0, HEADER_BYTES);
            batch.put_slice(&compressed);
            batch
        }
    };
    let records_len = batch.len() - HEADER_BYTES;
    let mut header = &mut batch[..HEADER_BYTES];
    header.put_i64(0); // base offset (assigned by the broker)
    header.put_i32((HEADER_BYTES - 12 + records_len) as i32);
    header.put_i32(-1); // partition leader epoch
    header.put_i8(2); // magic
    header.put_u32(0); // crc, below
    header.put_i16(codec.attribute()); // compression, CreateTime
    header.put_i32(count as i32 - 1);
    header.put_i64(timestamp_ms);
    header.put_i64(timestamp_ms);
    header.put_i64(-1); // producer id
    header.put_i16(-1);
    header.put_i32(-1);
    header.put_i32(count as i32);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(batch.freeze())
}

/// Record values of a compressed batch (decompressed by kafka-protocol).
pub fn compressed_values(batch: &[u8]) -> Option<Vec<Bytes>> {
    let mut bytes = Bytes::copy_from_slice(batch);
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).ok()?;
    Some(set.records.into_iter().filter_map(|r| r.value).collect())
}

#[cfg(test)]
pub fn fixed(first_sequence: u64, send_us: u64, count: usize, size: usize) -> Vec<Message> {
    (0..count as u64)
        .map(|i| Message {
            sequence: first_sequence + i,
            send_us,
            size,
            key: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_own_times_sizes_and_keys() {
        let messages = [
            Message {
                sequence: 7,
                send_us: 1000,
                size: 30,
                key: Some(4),
            },
            Message {
                sequence: 9,
                send_us: 1002,
                size: 100,
                key: None,
            },
            Message {
                sequence: 12,
                send_us: 1005,
                size: 64,
                key: Some(12),
            },
        ];
        let batch = build(1, &messages, Codec::None, 0).expect("build");
        let values = values(&batch).expect("values");
        let read: Vec<(u64, u64, usize)> = values
            .iter()
            .map(|v| {
                let p = read_payload(v).expect("payload");
                (p.sequence, p.send_us, v.len())
            })
            .collect();
        assert_eq!(read, vec![(7, 1000, 30), (9, 1002, 100), (12, 1005, 64)]);
        let mut copy = bytes::Bytes::copy_from_slice(&batch);
        let decoded =
            kafka_protocol::records::RecordBatchDecoder::decode(&mut copy).expect("decode");
        let keys: Vec<Option<bytes::Bytes>> = decoded.records.into_iter().map(|r| r.key).collect();
        assert_eq!(
            keys,
            vec![Some("key-4".into()), None, Some("key-12".into())]
        );
    }

    #[test]
    fn every_codec_round_trips_through_kafka_protocol() {
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let batch = build(1, &fixed(0, 9, 20, 200), codec, 0).expect("build");
            assert!(values(&batch).is_none(), "{codec:?} is not plain");
            let decoded = compressed_values(&batch).expect("decodes");
            assert_eq!(decoded.len(), 20, "{codec:?}");
            assert_eq!(read_payload(&decoded[5]).expect("payload").sequence, 5);
            assert!(batch.len() < 20 * 200, "{codec:?} compresses the filler");
        }
    }

    #[test]
    fn fillers_are_the_alphabet_from_the_sequence_at_any_length() {
        for (sequence, len) in [(0u64, 0usize), (3, 1), (25, 27), (7, 4160), (11, 10_000)] {
            let mut out = BytesMut::new();
            put_filler(sequence, len, &mut out);
            let expected: Vec<u8> = (0..len)
                .map(|i| b'a' + ((sequence as usize + i) % 26) as u8)
                .collect();
            assert_eq!(&out[..], &expected[..], "sequence {sequence}, {len} bytes");
        }
    }

    #[test]
    fn batch_crc_and_length_are_consistent() {
        let batch =
            build(3, &fixed(100, 0, 10, 64), Codec::None, 1_700_000_000_000).expect("build");
        let length = i32::from_be_bytes([batch[8], batch[9], batch[10], batch[11]]) as usize;
        assert_eq!(length + 12, batch.len());
        let crc = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
        assert_eq!(crc, crc32c::crc32c(&batch[21..]));
        assert_eq!(
            i32::from_be_bytes([batch[57], batch[58], batch[59], batch[60]]),
            10
        );
    }
}
