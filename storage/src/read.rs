//! What a read returns: whole batches as slices of memory the log already
//! holds (tail cache `Bytes` or a DMA read buffer), never copied into one
//! response buffer.

use bytes::Bytes;
use glommio::io::ReadResult;
use std::ops::Deref;

#[derive(Clone, Debug)]
pub enum Chunk {
    Memory(Bytes),
    Disk(ReadResult),
}

impl Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Chunk::Memory(bytes) => bytes,
            Chunk::Disk(read) => read,
        }
    }
}

/// Consecutive whole batches starting with the one that holds the offset
/// asked for. Empty at the log end.
#[derive(Clone, Debug, Default)]
pub struct ReadBatches {
    pub chunks: Vec<Chunk>,
}

impl ReadBatches {
    pub fn total_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(|c| c.is_empty())
    }

    /// The batches one by one (each chunk holds one or more whole batches),
    /// up to the first whose CRC fails: the log's own replays (the
    /// cleaner's key map, producer state, groups, timestamps) read records
    /// and must not trust a batch corrupted on disk. Fetch does not iterate
    /// here; it sends the chunks as read.
    pub fn batches(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().flat_map(|chunk| {
            let mut scan = crate::batch::BatchScan::new(chunk);
            std::iter::from_fn(move || scan.next_batch().ok().map(|(_, b)| b))
        })
    }
}
