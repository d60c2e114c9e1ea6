//! Record-level work for the log cleaner: inflating a batch's records (any
//! of Kafka's four codecs), walking them for their offset, key and whether
//! the value is null, and re-encoding a batch with only the records kept.
//!
//! A re-encoded batch keeps its header as it was (baseOffset,
//! lastOffsetDelta, timestamps, producer fields, attributes): only
//! batchLength, recordsCount and the CRC change, and the kept records'
//! bytes are copied as they were, so each keeps its offset and timestamp
//! deltas. Kafka's cleaner does the same (it keeps lastOffsetDelta so the
//! batch's offset range survives).

use crate::batch::{compute_crc, put_varlong, read_varint, read_varlong, BatchHeader};
use crate::error::BatchError;
use crate::limits::{BATCH_HEADER_BYTES, BATCH_LENGTH_PREFIX_BYTES};
use std::borrow::Cow;
use std::io::{Read, Write};
use std::mem::offset_of;

pub(crate) const CODEC_NONE: i16 = 0;
pub(crate) const CODEC_GZIP: i16 = 1;
pub(crate) const CODEC_SNAPPY: i16 = 2;
pub(crate) const CODEC_LZ4: i16 = 3;
pub(crate) const CODEC_ZSTD: i16 = 4;

/// xerial snappy-java's stream header (magic, version 1, compatible 1): the
/// Java producer frames snappy this way; librdkafka writes raw blocks.
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// snappy-java's block size.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// One record of a batch, as the cleaner needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub offset: i64,
    /// None for a record without a key.
    pub key: Option<&'a [u8]>,
    /// A tombstone: a key with a null value.
    pub value_is_null: bool,
    /// The whole record, its length prefix included.
    pub bytes: &'a [u8],
}

fn corrupt(why: &'static str) -> BatchError {
    BatchError::CorruptRecord(why)
}

/// The records section of `batch`, inflated if it is compressed, at most
/// `inflated_max` bytes. Also says whether a snappy batch was xerial-framed,
/// so it is written back the same way.
pub(crate) fn records_payload(
    batch: &[u8],
    inflated_max: usize,
) -> Result<(Cow<'_, [u8]>, bool), BatchError> {
    let header = BatchHeader::parse(batch)?;
    let body = batch
        .get(BATCH_HEADER_BYTES..)
        .ok_or(corrupt("batch shorter than its header"))?;
    let xerial = header.compression() == CODEC_SNAPPY && body.starts_with(&XERIAL_MAGIC[..8]);
    let inflated = match header.compression() {
        CODEC_NONE => return Ok((Cow::Borrowed(body), false)),
        CODEC_GZIP => read_capped(flate2::read::GzDecoder::new(body), inflated_max)?,
        CODEC_SNAPPY if xerial => xerial_decompress(body, inflated_max)?,
        CODEC_SNAPPY => snappy_raw_decompress(body, inflated_max)?,
        CODEC_LZ4 => {
            let decoder = lz4::Decoder::new(body).map_err(|_| corrupt("bad lz4 frame"))?;
            read_capped(decoder, inflated_max)?
        }
        CODEC_ZSTD => {
            let decoder =
                zstd::stream::read::Decoder::new(body).map_err(|_| corrupt("bad zstd frame"))?;
            read_capped(decoder, inflated_max)?
        }
        _ => return Err(corrupt("unknown compression codec")),
    };
    Ok((Cow::Owned(inflated), xerial))
}

fn read_capped(reader: impl Read, inflated_max: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    reader
        .take(inflated_max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| corrupt("compressed records do not decompress"))?;
    if out.len() > inflated_max {
        return Err(corrupt("records inflate past the cleaner's bound"));
    }
    Ok(out)
}

fn snappy_raw_decompress(block: &[u8], inflated_max: usize) -> Result<Vec<u8>, BatchError> {
    let len = snap::raw::decompress_len(block).map_err(|_| corrupt("bad snappy block"))?;
    if len > inflated_max {
        return Err(corrupt("records inflate past the cleaner's bound"));
    }
    snap::raw::Decoder::new()
        .decompress_vec(block)
        .map_err(|_| corrupt("bad snappy block"))
}

fn xerial_decompress(body: &[u8], inflated_max: usize) -> Result<Vec<u8>, BatchError> {
    let mut rest = body
        .get(XERIAL_MAGIC.len()..)
        .ok_or(corrupt("truncated xerial snappy header"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len_bytes, after) = rest
            .split_first_chunk::<4>()
            .ok_or(corrupt("truncated xerial snappy block"))?;
        let len = u32::from_be_bytes(*len_bytes) as usize;
        let block = after
            .get(..len)
            .ok_or(corrupt("truncated xerial snappy block"))?;
        let inflated = snappy_raw_decompress(block, inflated_max.saturating_sub(out.len()))?;
        out.extend_from_slice(&inflated);
        rest = &after[len..];
    }
    Ok(out)
}

/// Walks every record of `payload` (the records of `header`'s batch),
/// calling `visit` for each; the count must equal recordsCount.
pub(crate) fn for_each_record<'a>(
    header: &BatchHeader,
    payload: &'a [u8],
    mut visit: impl FnMut(Record<'a>),
) -> Result<(), BatchError> {
    let mut rest = payload;
    let mut seen: i32 = 0;
    while !rest.is_empty() {
        let (length, used) = read_varint(rest).ok_or(corrupt("bad record length varint"))?;
        let length = usize::try_from(length).map_err(|_| corrupt("negative record length"))?;
        let end = used
            .checked_add(length)
            .filter(|end| *end <= rest.len())
            .ok_or(corrupt("record overruns its batch"))?;
        let (record_bytes, after) = rest.split_at(end);
        visit(parse_record(header, record_bytes, &record_bytes[used..])?);
        rest = after;
        seen = seen.saturating_add(1);
    }
    if seen != header.records_count.get() {
        return Err(corrupt("recordsCount differs from the records present"));
    }
    Ok(())
}

/// body: attributes i8, timestampDelta varlong, offsetDelta varint,
/// keyLength varint, key, valueLength varint, value, headers.
fn parse_record<'a>(
    header: &BatchHeader,
    whole: &'a [u8],
    body: &'a [u8],
) -> Result<Record<'a>, BatchError> {
    let bad = || corrupt("malformed record");
    let mut at = 1usize; // attributes
    let (_, used) = read_varlong(body.get(at..).ok_or_else(bad)?).ok_or_else(bad)?;
    at += used;
    let (offset_delta, used) = read_varint(body.get(at..).ok_or_else(bad)?).ok_or_else(bad)?;
    at += used;
    let (key_len, used) = read_varint(body.get(at..).ok_or_else(bad)?).ok_or_else(bad)?;
    at += used;
    let key = match usize::try_from(key_len) {
        Ok(len) => {
            let key = body.get(at..at.checked_add(len).ok_or_else(bad)?);
            at += len;
            Some(key.ok_or_else(bad)?)
        }
        Err(_) => None,
    };
    let (value_len, _) = read_varint(body.get(at..).ok_or_else(bad)?).ok_or_else(bad)?;
    Ok(Record {
        offset: header.base_offset().saturating_add(i64::from(offset_delta)),
        key,
        value_is_null: value_len < 0,
        bytes: whole,
    })
}

/// `batch` with only `kept` (some of its own records, in order) as its
/// records: the header as it was but batchLength, recordsCount and the CRC,
/// the records deflated with the batch's codec (snappy framed as it was).
/// With nothing kept, an empty uncompressed batch that keeps the offset
/// range (the cleaner keeps a segment's last batch so that its end offset
/// survives).
pub(crate) fn rebuild(batch: &[u8], kept: &[&[u8]], xerial: bool) -> Result<Vec<u8>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let mut codec = header.compression();
    let mut attributes = header.attributes.get();
    let mut plain = Vec::with_capacity(kept.iter().map(|r| r.len()).sum());
    for record in kept {
        plain.extend_from_slice(record);
    }
    if kept.is_empty() {
        codec = CODEC_NONE;
        attributes &= !0x07;
    }
    let records = deflate(codec, &plain, xerial)?;
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
    out.extend_from_slice(&batch[..BATCH_HEADER_BYTES]);
    out.extend_from_slice(&records);
    let length = i32::try_from(out.len() - BATCH_LENGTH_PREFIX_BYTES)
        .map_err(|_| corrupt("rebuilt batch too large"))?;
    put(
        &mut out,
        offset_of!(BatchHeader, batch_length),
        &length.to_be_bytes(),
    );
    put(
        &mut out,
        offset_of!(BatchHeader, attributes),
        &attributes.to_be_bytes(),
    );
    let count = i32::try_from(kept.len()).map_err(|_| corrupt("too many records"))?;
    put(
        &mut out,
        offset_of!(BatchHeader, records_count),
        &count.to_be_bytes(),
    );
    let crc = compute_crc(&out);
    put(&mut out, offset_of!(BatchHeader, crc), &crc.to_be_bytes());
    Ok(out)
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

/// `plain` compressed with `codec`, as Kafka's clients frame each codec:
/// gzip stream, snappy raw or xerial-framed, LZ4 frame, zstd frame.
pub fn deflate(codec: i16, plain: &[u8], xerial: bool) -> Result<Vec<u8>, BatchError> {
    let failed = |_| corrupt("compression failed");
    match codec {
        CODEC_NONE => Ok(plain.to_vec()),
        CODEC_GZIP => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(plain).map_err(failed)?;
            encoder.finish().map_err(failed)
        }
        CODEC_SNAPPY if xerial => {
            let mut out = XERIAL_MAGIC.to_vec();
            for block in plain.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = snap::raw::Encoder::new()
                    .compress_vec(block)
                    .map_err(|_| corrupt("compression failed"))?;
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
        CODEC_SNAPPY => snap::raw::Encoder::new()
            .compress_vec(plain)
            .map_err(|_| corrupt("compression failed")),
        CODEC_LZ4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .level(4)
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .map_err(failed)?;
            encoder.write_all(plain).map_err(failed)?;
            let (out, result) = encoder.finish();
            result.map_err(failed)?;
            Ok(out)
        }
        CODEC_ZSTD => zstd::bulk::compress(plain, 3).map_err(failed),
        _ => Err(corrupt("unknown compression codec")),
    }
}

/// A record's key and value for [`build_keyed_batch`]; None is null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Test and benchmark support: a valid batch of keyed records (key, value;
/// None is null), base offset 0, timestamps one ms apart from
/// `base_timestamp_ms`, compressed with `codec` (0 none, 1 gzip, 2 snappy
/// raw, 3 lz4, 4 zstd).
pub fn build_keyed_batch(records: &[KeyValue<'_>], base_timestamp_ms: i64, codec: i16) -> Vec<u8> {
    let mut plain = Vec::new();
    for (delta, (key, value)) in records.iter().enumerate() {
        let mut body = vec![0u8]; // attributes
        put_varlong(&mut body, delta as i64); // timestampDelta
        put_varlong(&mut body, delta as i64); // offsetDelta
        put_bytes(&mut body, *key);
        put_bytes(&mut body, *value);
        put_varlong(&mut body, 0); // headers
        put_varlong(&mut plain, body.len() as i64);
        plain.extend_from_slice(&body);
    }
    let records_bytes = deflate(codec, &plain, false).unwrap_or_default();
    let count = records.len() as i32;
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + records_bytes.len());
    out.extend_from_slice(&0i64.to_be_bytes());
    let length = (BATCH_HEADER_BYTES - BATCH_LENGTH_PREFIX_BYTES + records_bytes.len()) as i32;
    out.extend_from_slice(&length.to_be_bytes());
    // partitionLeaderEpoch: -1, as clients send it (the leader stamps it).
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.push(2);
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
    out.extend_from_slice(&codec.to_be_bytes()); // attributes
    out.extend_from_slice(&(count - 1).to_be_bytes());
    out.extend_from_slice(&base_timestamp_ms.to_be_bytes());
    let max_ts = base_timestamp_ms + i64::from(count - 1);
    out.extend_from_slice(&max_ts.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&records_bytes);
    let crc = compute_crc(&out);
    put(&mut out, offset_of!(BatchHeader, crc), &crc.to_be_bytes());
    out
}

/// Whether any record of a produced batch has no key (a compacted log
/// refuses such a batch, as Kafka's LogValidator does). A compressed batch
/// is inflated, at most `inflated_max` bytes; one that does not inflate or
/// walk is refused as corrupt.
pub(crate) fn has_keyless_record(batch: &[u8], inflated_max: usize) -> Result<bool, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let (payload, _) = records_payload(batch, inflated_max)?;
    let mut keyless = false;
    for_each_record(header, &payload, |record| keyless |= record.key.is_none())?;
    Ok(keyless)
}

/// Test support: every record of a stored batch as (offset, key, value),
/// inflating it; None if it does not parse.
#[allow(clippy::type_complexity)]
pub fn decode_records(batch: &[u8]) -> Option<Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>)>> {
    let header = BatchHeader::parse(batch).ok()?;
    let (payload, _) =
        records_payload(batch, crate::limits::CLEANER_INFLATED_BATCH_BYTES_MAX).ok()?;
    let mut out = Vec::new();
    let mut ok = true;
    for_each_record(header, &payload, |record| {
        let value = value_of(record.bytes);
        ok &= value.is_some();
        out.push((
            record.offset,
            record.key.map(<[u8]>::to_vec),
            value.flatten(),
        ));
    })
    .ok()?;
    ok.then_some(out)
}

/// The value of a whole record (length prefix included): Some(None) for null.
fn value_of(record: &[u8]) -> Option<Option<Vec<u8>>> {
    let (_, used) = read_varint(record)?;
    let body = record.get(used..)?;
    let mut at = 1usize;
    at += read_varlong(body.get(at..)?)?.1;
    at += read_varint(body.get(at..)?)?.1;
    let (key_len, used) = read_varint(body.get(at..)?)?;
    at += used + usize::try_from(key_len).unwrap_or(0);
    let (value_len, used) = read_varint(body.get(at..)?)?;
    at += used;
    match usize::try_from(value_len) {
        Ok(len) => Some(Some(body.get(at..at.checked_add(len)?)?.to_vec())),
        Err(_) => Some(None),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            put_varlong(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
        None => put_varlong(out, -1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::check_stored;

    #[test]
    fn rebuilt_batches_keep_offsets_and_codec() {
        for codec in 0..=4 {
            let k = |s: &'static str| Some(s.as_bytes());
            let batch = build_keyed_batch(
                &[(k("a"), k("1")), (k("b"), None), (k("c"), k("3"))],
                10,
                codec,
            );
            check_stored(&batch).expect("built batch valid");
            let (payload, xerial) = records_payload(&batch, 1 << 20).expect("inflate");
            let header = BatchHeader::parse(&batch).expect("header");
            let mut kept = Vec::new();
            for_each_record(header, &payload, |r| {
                if r.key != Some(b"a") {
                    kept.push(r.bytes);
                }
            })
            .expect("records");
            let rebuilt = rebuild(&batch, &kept, xerial).expect("rebuild");
            let header = check_stored(&rebuilt).expect("crc recomputed");
            assert_eq!(header.compression(), codec);
            assert_eq!(header.last_offset_delta.get(), 2, "offset range kept");
            assert_eq!(header.records_count.get(), 2);
            let records = decode_records(&rebuilt).expect("decode");
            assert_eq!(
                records,
                vec![
                    (1, Some(b"b".to_vec()), None),
                    (2, Some(b"c".to_vec()), Some(b"3".to_vec()))
                ]
            );
        }
    }

    #[test]
    fn xerial_snappy_round_trips_framed() {
        let plain = vec![7u8; 100_000];
        let framed = deflate(CODEC_SNAPPY, &plain, true).expect("deflate");
        assert!(framed.starts_with(XERIAL_MAGIC));
        assert_eq!(xerial_decompress(&framed, 1 << 20).expect("inflate"), plain);
        assert!(xerial_decompress(&framed, 1000).is_err(), "bound enforced");
    }

    #[test]
    fn zip_bomb_stops_at_the_bound() {
        let plain = vec![0u8; 1 << 20];
        for codec in 1..=4 {
            let deflated = deflate(codec, &plain, false).expect("deflate");
            let mut batch = build_keyed_batch(&[(Some(b"k"), Some(b"v"))], 0, 0);
            batch.truncate(BATCH_HEADER_BYTES);
            batch.extend_from_slice(&deflated);
            put(
                &mut batch,
                offset_of!(BatchHeader, attributes),
                &codec.to_be_bytes(),
            );
            assert!(records_payload(&batch, 1000).is_err(), "codec {codec}");
            assert_eq!(
                records_payload(&batch, 1 << 20).expect("fits").0.len(),
                plain.len()
            );
        }
    }
}
