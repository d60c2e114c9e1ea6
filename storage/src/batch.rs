//! RecordBatch v2: a zero-copy view of the 61-byte header, validation of a
//! produced batch, and the in-place rewrites the log does (base offset,
//! LogAppendTime). Layout (big-endian, as on the wire and on disk):
//!
//! ```text
//! 0  baseOffset i64        | outside the CRC, rewritten on append
//! 8  batchLength i32       | bytes after this field
//! 12 partitionLeaderEpoch  | outside the CRC
//! 16 magic i8 (= 2)
//! 17 crc u32 (CRC-32C of attributes..end)
//! 21 attributes i16, 23 lastOffsetDelta i32, 27 baseTimestamp i64,
//! 35 maxTimestamp i64, 43 producerId i64, 51 producerEpoch i16,
//! 53 baseSequence i32, 57 recordsCount i32, 61 records...
//! ```

use crate::error::BatchError;
use crate::limits::{BATCH_HEADER_BYTES, BATCH_LENGTH_PREFIX_BYTES};
use bytes::{Bytes, BytesMut};
use std::mem::offset_of;
use zerocopy::byteorder::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Offset of the first byte the CRC covers (attributes).
const CRC_START: usize = 21;
const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct BatchHeader {
    pub base_offset: I64,
    pub batch_length: I32,
    pub partition_leader_epoch: I32,
    pub magic: i8,
    pub crc: U32,
    pub attributes: I16,
    pub last_offset_delta: I32,
    pub base_timestamp: I64,
    pub max_timestamp: I64,
    pub producer_id: I64,
    pub producer_epoch: I16,
    pub base_sequence: I32,
    pub records_count: I32,
}

const _: () = assert!(std::mem::size_of::<BatchHeader>() == BATCH_HEADER_BYTES);

impl BatchHeader {
    /// Header view of the first 61 bytes, without checking anything else.
    pub fn parse(bytes: &[u8]) -> Result<&BatchHeader, BatchError> {
        BatchHeader::ref_from_prefix(bytes)
            .map(|(header, _)| header)
            .map_err(|_| BatchError::Truncated {
                needed: BATCH_HEADER_BYTES,
                got: bytes.len(),
            })
    }

    /// Total bytes of the batch including the 12-byte prefix, if the length
    /// field is sane (at least a header).
    pub fn total_bytes(&self) -> Option<usize> {
        let length = usize::try_from(self.batch_length.get()).ok()?;
        let total = length.checked_add(BATCH_LENGTH_PREFIX_BYTES)?;
        (total >= BATCH_HEADER_BYTES).then_some(total)
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset.get()
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .get()
            .saturating_add(i64::from(self.last_offset_delta.get()))
    }

    pub fn compression(&self) -> i16 {
        self.attributes.get() & ATTR_COMPRESSION_MASK
    }

    pub fn is_control(&self) -> bool {
        self.attributes.get() & ATTR_CONTROL != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes.get() & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes.get() & ATTR_TIMESTAMP_TYPE_LOG_APPEND != 0
    }
}

/// CRC-32C over attributes..end, as stored in the header.
pub fn compute_crc(batch: &[u8]) -> u32 {
    batch.get(CRC_START..).map(crc32c::crc32c).unwrap_or(0)
}

/// Checks a batch that is exactly `bytes` long as it must be on disk:
/// magic 2, length field equal to the slice, CRC, offset delta sane.
/// Used by recovery, for a follower's fetched batches (a produced batch
/// has `check_produced`), and wherever the log's own bytes are read for
/// their records (the cleaner, replays); it does not look inside records.
pub fn check_stored(bytes: &[u8]) -> Result<&BatchHeader, BatchError> {
    let header = check_framing(bytes)?;
    let computed = compute_crc(bytes);
    if computed != header.crc.get() {
        return Err(BatchError::CrcMismatch {
            stored: header.crc.get(),
            computed,
        });
    }
    Ok(header)
}

/// [`check_stored`] without the CRC: magic, length field, offset delta.
/// For bytes whose CRC was checked when they entered the log and that are
/// only passed on (a read for Fetch, as Kafka's fetch path, which leaves
/// the check to consumers and followers).
pub fn check_framing(bytes: &[u8]) -> Result<&BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if header.magic != 2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    let total = header
        .total_bytes()
        .ok_or(BatchError::CorruptRecord("batch length below header size"))?;
    if total != bytes.len() {
        return Err(BatchError::CorruptRecord(
            "batch length disagrees with its bytes",
        ));
    }
    if header.last_offset_delta.get() < 0 {
        return Err(BatchError::CorruptRecord("negative lastOffsetDelta"));
    }
    Ok(header)
}

/// Kafka's LogValidator rules for a produced batch that need no
/// decompression, but the size bound (which is the log's config).
fn check_produced(bytes: &[u8]) -> Result<&BatchHeader, BatchError> {
    let header = check_stored(bytes)?;
    if header.is_control() {
        return Err(BatchError::ControlBatch);
    }
    let count = header.records_count.get();
    if count <= 0 {
        return Err(BatchError::CorruptRecord("batch without records"));
    }
    if i64::from(header.last_offset_delta.get()) + 1 != i64::from(count) {
        return Err(BatchError::CorruptRecord(
            "lastOffsetDelta + 1 differs from recordsCount",
        ));
    }
    if header.producer_id.get() >= 0 && header.base_sequence.get() < 0 {
        return Err(BatchError::CorruptRecord(
            "producer id without a base sequence",
        ));
    }
    if header.compression() == 0 {
        check_record_framing(&bytes[BATCH_HEADER_BYTES..], count)?;
    } else if header.compression() > 4 {
        return Err(BatchError::CorruptRecord("unknown compression codec"));
    }
    Ok(header)
}

/// One record batch as a client produced it, checked once: magic 2, the
/// length field equal to the bytes, CRC-32C, a positive record count equal
/// to lastOffsetDelta + 1 (and, uncompressed, to the records present), no
/// control batch, a base sequence with a producer id, a known codec. The
/// header fields the broker and the log need are kept as plain values, so
/// nothing parses the header again. Only `max.message.bytes`, a property
/// of the log, is checked at append (`Log::append_unsynced`).
pub struct ProducedBatch {
    /// Invariant: a whole batch that passed the checks above, so at least
    /// `BATCH_HEADER_BYTES` long; only `assign_offsets` changes it.
    bytes: BytesMut,
    attributes: i16,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records_count: i32,
}

impl ProducedBatch {
    /// Checks `bytes` (exactly one batch) once; the error says which rule
    /// it broke, each mapping to one Kafka error code.
    pub fn new(bytes: BytesMut) -> Result<ProducedBatch, BatchError> {
        let header = check_produced(&bytes)?;
        let (attributes, max_timestamp) = (header.attributes.get(), header.max_timestamp.get());
        let (producer_id, producer_epoch) = (header.producer_id.get(), header.producer_epoch.get());
        let (base_sequence, records_count) =
            (header.base_sequence.get(), header.records_count.get());
        Ok(ProducedBatch {
            bytes,
            attributes,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            records_count,
        })
    }

    /// Written by a transactional producer (attributes bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// -1 for a producer that is not idempotent.
    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }

    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }

    pub fn base_sequence(&self) -> i32 {
        self.base_sequence
    }

    /// At least 1.
    pub fn records_count(&self) -> i32 {
        self.records_count
    }

    /// Bytes of the whole batch, the 12-byte prefix included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true for a checked batch (it holds a header); here because a
    /// `len` wants one.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The batch's bytes (the compacted-log key check reads its records).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Writes `base_offset` and `leader_epoch` (partitionLeaderEpoch) in
    /// place, and with `log_append_time_ms` the timestamp type bit and
    /// maxTimestamp with a recomputed CRC, as Kafka does (the CRC covers
    /// neither the base offset nor the epoch). The epoch is written even
    /// when it is -1 (no leader epoch begun): whatever a client put there
    /// must not reach a follower as if a leader had stamped it. From the
    /// kept fields: nothing is parsed again.
    pub(crate) fn assign_offsets(
        mut self,
        base_offset: i64,
        log_append_time_ms: Option<i64>,
        leader_epoch: i32,
    ) -> AssignedBatch {
        debug_assert!(self.bytes.len() >= BATCH_HEADER_BYTES);
        let bytes = &mut self.bytes[..];
        put(
            bytes,
            offset_of!(BatchHeader, base_offset),
            &base_offset.to_be_bytes(),
        );
        put(
            bytes,
            offset_of!(BatchHeader, partition_leader_epoch),
            &leader_epoch.to_be_bytes(),
        );
        let mut max_timestamp = self.max_timestamp;
        if let Some(now_ms) = log_append_time_ms {
            let attributes = self.attributes | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
            put(
                bytes,
                offset_of!(BatchHeader, attributes),
                &attributes.to_be_bytes(),
            );
            put(
                bytes,
                offset_of!(BatchHeader, max_timestamp),
                &now_ms.to_be_bytes(),
            );
            let crc = compute_crc(bytes);
            put(bytes, offset_of!(BatchHeader, crc), &crc.to_be_bytes());
            max_timestamp = now_ms;
        }
        AssignedBatch {
            last_offset: base_offset.saturating_add(i64::from(self.records_count) - 1),
            max_timestamp,
            bytes: self.bytes.freeze(),
        }
    }
}

impl std::fmt::Debug for ProducedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducedBatch")
            .field("len", &self.bytes.len())
            .field("producer_id", &self.producer_id)
            .field("producer_epoch", &self.producer_epoch)
            .field("base_sequence", &self.base_sequence)
            .field("records_count", &self.records_count)
            .finish()
    }
}

/// A [`ProducedBatch`] with its offsets: the bytes to store.
pub(crate) struct AssignedBatch {
    pub bytes: Bytes,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// Overwrites the header field at `at` (a `BatchHeader` field offset).
fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

/// For an uncompressed batch, walks only the varint length prefixes of the
/// records: their count must equal the header's and they must fill the batch
/// exactly. Compressed batches are not inflated (see docs/storage-format.md).
fn check_record_framing(mut records: &[u8], count: i32) -> Result<(), BatchError> {
    let mut seen: i32 = 0;
    while !records.is_empty() {
        let (length, used) =
            read_varint(records).ok_or(BatchError::CorruptRecord("bad record length varint"))?;
        let length = usize::try_from(length)
            .map_err(|_| BatchError::CorruptRecord("negative record length"))?;
        let end = used
            .checked_add(length)
            .filter(|end| *end <= records.len())
            .ok_or(BatchError::CorruptRecord("record overruns its batch"))?;
        records = &records[end..];
        seen = seen.saturating_add(1);
    }
    if seen != count {
        return Err(BatchError::CorruptRecord(
            "recordsCount differs from the records present",
        ));
    }
    Ok(())
}

/// Zig-zag varint (as Kafka's records use), at most 5 bytes.
pub(crate) fn read_varint(bytes: &[u8]) -> Option<(i32, usize)> {
    let (raw, used) = read_unsigned_varint(bytes, 5)?;
    let raw = u32::try_from(raw).ok()?;
    Some((((raw >> 1) as i32) ^ -((raw & 1) as i32), used))
}

/// Zig-zag varlong, at most 10 bytes.
pub(crate) fn read_varlong(bytes: &[u8]) -> Option<(i64, usize)> {
    let (raw, used) = read_unsigned_varint(bytes, 10)?;
    Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), used))
}

fn read_unsigned_varint(bytes: &[u8], max_len: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().take(max_len).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The first record at or after `min_offset` whose timestamp is >=
/// `target_ms`, as (offset, timestamp), walking the records of an
/// uncompressed batch without allocating. None if no record qualifies or the
/// batch is compressed (its records are not inflated) or malformed.
pub fn first_record_at_or_after(
    bytes: &[u8],
    min_offset: i64,
    target_ms: i64,
) -> Option<(i64, i64)> {
    let header = BatchHeader::parse(bytes).ok()?;
    if header.compression() != 0 {
        return None;
    }
    if header.is_log_append_time() {
        let ts = header.max_timestamp.get();
        let offset = header.base_offset().max(min_offset);
        return (ts >= target_ms && offset <= header.last_offset()).then_some((offset, ts));
    }
    let mut records = bytes.get(BATCH_HEADER_BYTES..)?;
    while !records.is_empty() {
        let (length, used) = read_varint(records)?;
        let body = records.get(used..used.checked_add(usize::try_from(length).ok()?)?)?;
        // body: attributes i8, timestampDelta varlong, offsetDelta varint, ...
        let (ts_delta, ts_used) = read_varlong(body.get(1..)?)?;
        let (offset_delta, _) = read_varint(body.get(1 + ts_used..)?)?;
        let offset = header.base_offset().saturating_add(i64::from(offset_delta));
        let timestamp = header.base_timestamp.get().saturating_add(ts_delta);
        if offset >= min_offset && timestamp >= target_ms {
            return Some((offset, timestamp));
        }
        records = &records[used + body.len()..];
    }
    None
}

/// Test and benchmark support: builds a valid uncompressed batch with
/// `values` as records (null keys, no headers), base offset 0.
pub fn build_batch(values: &[&[u8]], base_timestamp_ms: i64) -> Vec<u8> {
    let records: Vec<crate::compact::KeyValue<'_>> =
        values.iter().map(|value| (None, Some(*value))).collect();
    crate::compact::build_keyed_batch(&records, base_timestamp_ms, 0)
}

/// Appends `value` as a zigzag varlong (Kafka's record field encoding).
pub(crate) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// Iterates over consecutive stored batches in `bytes`; stops at the first
/// that is incomplete or invalid and reports where.
pub struct BatchScan<'a> {
    bytes: &'a [u8],
    position: usize,
    /// [`check_stored`] on each batch, or only [`check_framing`].
    check_crc: bool,
}

/// Where and why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// All bytes were whole valid batches.
    Clean,
    /// The remaining bytes hold the start of a batch that does not fit.
    Incomplete { position: usize },
    /// The remaining bytes are not a valid batch.
    Invalid { position: usize, error: BatchError },
}

impl<'a> BatchScan<'a> {
    /// A scan that checks every batch's CRC: for bytes from outside the
    /// log (recovery of a segment, a follower's fetch) and for the log's
    /// own bytes whose records are used (cleaner, replays, retention).
    pub fn new(bytes: &'a [u8]) -> Self {
        BatchScan {
            bytes,
            position: 0,
            check_crc: true,
        }
    }

    /// A scan of bytes the log already checked on their way in and only
    /// passes on or just checked (a read for Fetch, the re-scan of what a
    /// follower appended): framing only, no CRC. A CRC pass over every
    /// batch read was 16% of a consuming core's CPU.
    pub fn framing(bytes: &'a [u8]) -> Self {
        BatchScan {
            bytes,
            position: 0,
            check_crc: false,
        }
    }

    pub fn position(&self) -> usize {
        self.position
    }

    /// The next valid batch as (position, bytes), or why scanning ends.
    pub fn next_batch(&mut self) -> Result<(usize, &'a [u8]), ScanEnd> {
        let rest = &self.bytes[self.position..];
        if rest.is_empty() {
            return Err(ScanEnd::Clean);
        }
        let position = self.position;
        let header = match BatchHeader::parse(rest) {
            Ok(header) => header,
            Err(_) => return Err(ScanEnd::Incomplete { position }),
        };
        let Some(total) = header.total_bytes() else {
            return Err(ScanEnd::Invalid {
                position,
                error: BatchError::CorruptRecord("batch length below header size"),
            });
        };
        if total > rest.len() {
            return Err(ScanEnd::Incomplete { position });
        }
        let batch = &rest[..total];
        let checked = if self.check_crc {
            check_stored(batch)
        } else {
            check_framing(batch)
        };
        checked.map_err(|error| ScanEnd::Invalid { position, error })?;
        self.position += total;
        Ok((position, batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produced(bytes: &[u8]) -> Result<ProducedBatch, BatchError> {
        ProducedBatch::new(BytesMut::from(bytes))
    }

    /// Rewrites header fields of a built batch through `edit`, then its CRC.
    fn edited(values: &[&[u8]], edit: impl FnOnce(&mut BatchHeader)) -> Vec<u8> {
        let mut batch = build_batch(values, 0);
        let (header, _) = BatchHeader::mut_from_prefix(&mut batch[..]).expect("header");
        edit(header);
        let crc = compute_crc(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    /// The rewrite the log did before `ProducedBatch`: through the header
    /// view, on a slice.
    fn assign_through_the_header_view(bytes: &mut [u8], base: i64, time: Option<i64>, epoch: i32) {
        let (header, _) = BatchHeader::mut_from_prefix(&mut *bytes).expect("header");
        header.base_offset.set(base);
        header.partition_leader_epoch.set(epoch);
        if let Some(now_ms) = time {
            let attributes = header.attributes.get() | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
            header.attributes.set(attributes);
            header.max_timestamp.set(now_ms);
            let crc = compute_crc(bytes);
            let (header, _) = BatchHeader::mut_from_prefix(&mut *bytes).expect("header");
            header.crc.set(crc);
        }
    }

    #[test]
    fn built_batch_validates_and_round_trips_offsets() {
        let batch = build_batch(&[b"a", b"bc", b""], 1000);
        let assigned = produced(&batch)
            .expect("valid")
            .assign_offsets(42, None, -1);
        assert_eq!((assigned.last_offset, assigned.max_timestamp), (44, 1002));
        let stored = &assigned.bytes[..];
        let header = check_stored(stored).expect("crc still valid");
        assert_eq!(header.base_offset(), 42);
        assert_eq!(header.last_offset(), 44);
        assert_eq!(first_record_at_or_after(stored, 0, 1001), Some((43, 1001)));
        assert_eq!(first_record_at_or_after(stored, 44, 0), Some((44, 1002)));
        assert_eq!(first_record_at_or_after(stored, 0, 1003), None);
    }

    #[test]
    fn log_append_time_rewrites_crc() {
        let batch = build_batch(&[b"x"], 5);
        let assigned = produced(&batch)
            .expect("valid")
            .assign_offsets(7, Some(99), 3);
        assert_eq!((assigned.last_offset, assigned.max_timestamp), (7, 99));
        let header = check_stored(&assigned.bytes).expect("crc recomputed");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp.get(), 99);
    }

    #[test]
    fn assigned_bytes_equal_the_header_view_rewrite() {
        let batch = edited(&[b"a", b"bb", b"ccc"], |h| {
            h.producer_id.set(7);
            h.base_sequence.set(0);
        });
        for (time, epoch) in [(None, -1), (Some(1_700_000_000_123), 7), (None, i32::MAX)] {
            let mut expected = batch.clone();
            assign_through_the_header_view(&mut expected, 1 << 40, time, epoch);
            let assigned = produced(&batch)
                .expect("valid")
                .assign_offsets(1 << 40, time, epoch);
            assert_eq!(&assigned.bytes[..], &expected[..], "{time:?} {epoch}");
            assert_eq!(assigned.last_offset, (1 << 40) + 2);
            let header = check_stored(&assigned.bytes).expect("crc holds");
            assert_eq!(header.partition_leader_epoch.get(), epoch);
        }
    }

    #[test]
    fn produced_batch_keeps_the_header_fields() {
        let batch = edited(&[b"a", b"b"], |h| {
            h.producer_id.set(1234);
            h.producer_epoch.set(5);
            h.base_sequence.set(17);
        });
        let produced = produced(&batch).expect("valid");
        assert_eq!(produced.producer_id(), 1234);
        assert_eq!(produced.producer_epoch(), 5);
        assert_eq!(produced.base_sequence(), 17);
        assert_eq!(produced.records_count(), 2);
        assert_eq!(produced.len(), batch.len());
        assert!(!produced.is_empty());
    }

    #[test]
    fn control_batch_is_refused() {
        let batch = edited(&[b"a"], |h| h.attributes.set(ATTR_CONTROL));
        assert_eq!(produced(&batch).err(), Some(BatchError::ControlBatch));
    }

    #[test]
    fn producer_id_without_a_sequence_is_refused() {
        let batch = edited(&[b"a"], |h| h.producer_id.set(9));
        assert_eq!(
            produced(&batch).err(),
            Some(BatchError::CorruptRecord(
                "producer id without a base sequence"
            ))
        );
    }

    #[test]
    fn lying_record_count_is_rejected() {
        let batch = edited(&[b"a", b"b"], |h| {
            h.records_count.set(3);
            h.last_offset_delta.set(2);
        });
        assert_eq!(
            produced(&batch).err(),
            Some(BatchError::CorruptRecord(
                "recordsCount differs from the records present"
            ))
        );
        let batch = edited(&[b"a", b"b"], |h| h.records_count.set(0));
        assert_eq!(
            produced(&batch).err(),
            Some(BatchError::CorruptRecord("batch without records"))
        );
        let batch = edited(&[b"a", b"b"], |h| h.last_offset_delta.set(5));
        assert_eq!(
            produced(&batch).err(),
            Some(BatchError::CorruptRecord(
                "lastOffsetDelta + 1 differs from recordsCount"
            ))
        );
    }

    #[test]
    fn flipped_byte_fails_crc() {
        let mut batch = build_batch(&[b"hello"], 0);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(matches!(
            produced(&batch),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn unknown_codec_and_short_or_trailing_bytes_are_refused() {
        let batch = edited(&[b"a"], |h| h.attributes.set(5));
        assert_eq!(
            produced(&batch).err(),
            Some(BatchError::CorruptRecord("unknown compression codec"))
        );
        let batch = build_batch(&[b"a"], 0);
        assert!(matches!(
            produced(&batch[..40]),
            Err(BatchError::Truncated { .. })
        ));
        let mut two = batch.clone();
        two.extend_from_slice(&batch);
        assert_eq!(
            produced(&two).err(),
            Some(BatchError::CorruptRecord(
                "batch length disagrees with its bytes"
            ))
        );
    }
}
