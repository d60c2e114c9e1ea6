//! RecordBatch v2 (uncompressed) built by bench: each record's value starts
//! with its producer, sequence number and a checksum of the rest, so that
//! consumers can verify what they read.

use bytes::{BufMut, Bytes, BytesMut};

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
pub fn payload(producer: u32, sequence: u64, size: usize, out: &mut BytesMut) {
    let size = size.max(16);
    let filler_len = size - 16;
    let start = out.len();
    out.put_u32(producer);
    out.put_u64(sequence);
    out.put_u32(0);
    for i in 0..filler_len {
        out.put_u8(b'a' + ((sequence as usize + i) % 26) as u8);
    }
    let crc = crc32c::crc32c(&out[start + 16..]);
    out[start + 12..start + 16].copy_from_slice(&crc.to_be_bytes());
}

/// One batch of `count` messages of `size` bytes with sequences from
/// `first_sequence`, created at `timestamp_ms`.
pub fn build(
    producer: u32,
    first_sequence: u64,
    count: usize,
    size: usize,
    timestamp_ms: i64,
) -> Bytes {
    let mut records = BytesMut::with_capacity(count * (size + 16));
    let mut value = BytesMut::with_capacity(size.max(16));
    for delta in 0..count {
        value.clear();
        payload(producer, first_sequence + delta as u64, size, &mut value);
        let body_len = 1
            + varint_len(0)
            + varint_len(delta as i64)
            + varint_len(-1)
            + varint_len(value.len() as i64)
            + value.len()
            + varint_len(0);
        put_varint(&mut records, body_len as i64);
        records.put_u8(0); // attributes
        put_varint(&mut records, 0); // timestamp delta
        put_varint(&mut records, delta as i64); // offset delta
        put_varint(&mut records, -1); // null key
        put_varint(&mut records, value.len() as i64);
        records.put_slice(&value);
        put_varint(&mut records, 0); // no headers
    }
    let mut batch = BytesMut::with_capacity(HEADER_BYTES + records.len());
    batch.put_i64(0); // base offset (assigned by the broker)
    batch.put_i32((HEADER_BYTES - 12 + records.len()) as i32);
    batch.put_i32(-1); // partition leader epoch
    batch.put_i8(2); // magic
    batch.put_u32(0); // crc, below
    batch.put_i16(0); // attributes: no compression, CreateTime
    batch.put_i32(count as i32 - 1);
    batch.put_i64(timestamp_ms);
    batch.put_i64(timestamp_ms);
    batch.put_i64(-1); // producer id
    batch.put_i16(-1);
    batch.put_i32(-1);
    batch.put_i32(count as i32);
    batch.put_slice(&records);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_crc_and_length_are_consistent() {
        let batch = build(3, 100, 10, 64, 1_700_000_000_000);
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
