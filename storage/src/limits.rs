//! Every bound of the storage crate, in one place. Names end in their unit.

/// Size of the RecordBatch v2 header (baseOffset .. recordsCount).
pub const BATCH_HEADER_BYTES: usize = 61;
/// `batchLength` counts from partitionLeaderEpoch on: the first 12 bytes
/// (baseOffset + batchLength) are outside it.
pub const BATCH_LENGTH_PREFIX_BYTES: usize = 12;
/// Kafka's default `message.max.bytes` (1 MiB + the 12-byte log overhead).
pub const BATCH_BYTES_DEFAULT_MAX: usize = 1_048_588;
/// Hard ceiling whatever the config says: a batch position must fit the
/// 32-bit index, and one batch must fit one write buffer.
pub const BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Kafka's default `segment.bytes`.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;
/// Segment positions are u32 in the index, as in Kafka.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Kafka's default `index.interval.bytes`.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u64 = 4096;
/// Unit of every direct write: a page. A multiple of the 512-byte logical
/// block that O_DIRECT needs, and of 4 KiB sectors on 4Kn disks.
pub const WRITE_ALIGN_BYTES: u64 = 4096;
/// Bytes a single disk read asks for at least, so that sequential fetches do
/// not turn into many small direct reads.
pub const READ_CHUNK_BYTES_MIN: usize = 64 * 1024;
/// Default bound on bytes appended but not yet written, per log.
pub const WRITE_BUFFER_BYTES_DEFAULT_MAX: usize = 8 * 1024 * 1024;
/// Default bound on bytes appended but not yet written, per core (all its
/// logs together).
pub const WRITE_BUFFER_CORE_BYTES_DEFAULT_MAX: usize = 64 * 1024 * 1024;
/// Default bound on the in-memory tail cache, per core.
pub const TAIL_CACHE_BYTES_DEFAULT_MAX: usize = 64 * 1024 * 1024;
/// Offset index entry: relative offset u32 + position u32.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
/// Time index entry: timestamp i64 + relative offset u32.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

const _: () = assert!(BATCH_BYTES_DEFAULT_MAX <= BATCH_BYTES_MAX);
const _: () = assert!(BATCH_BYTES_MAX as u64 <= SEGMENT_BYTES_MAX);
const _: () = assert!(WRITE_ALIGN_BYTES.is_power_of_two() && WRITE_ALIGN_BYTES.is_multiple_of(512));
const _: () = assert!(SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);

/// With write caching, a background flush starts once a partition's
/// pending bytes reach write.buffer / this.
pub const WRITE_BEHIND_FRACTION: usize = 4;

/// Default bound on the cleaner's key map per pass: key bytes plus
/// `CLEANER_KEY_ENTRY_OVERHEAD_BYTES` per distinct key. A pass covers as much
/// of the dirty log as fits; the next pass goes on from there.
pub const CLEANER_KEY_MAP_BYTES_DEFAULT_MAX: usize = 32 * 1024 * 1024;
/// What one key map entry costs besides its key bytes (hash table slot,
/// boxed key header, the offset), counted against the bound above.
pub const CLEANER_KEY_ENTRY_OVERHEAD_BYTES: usize = 48;
/// Bound on one batch's records after decompression; a batch that inflates
/// past it stops the pass (a hostile producer's zip bomb must not take the
/// core's memory).
pub const CLEANER_INFLATED_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes one cleaner read or write asks for (a bigger batch reads whole).
pub const CLEANER_IO_CHUNK_BYTES: usize = 1024 * 1024;

const _: () = assert!(CLEANER_INFLATED_BATCH_BYTES_MAX >= BATCH_BYTES_MAX);
const _: () = assert!((CLEANER_IO_CHUNK_BYTES as u64).is_multiple_of(WRITE_ALIGN_BYTES));
