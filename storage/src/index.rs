//! Sparse offset and time indexes, in Kafka's file formats: `.index` holds
//! 8-byte entries (offset - base as u32, position u32) and `.timeindex`
//! 12-byte entries (timestamp i64, offset - base as u32), big-endian. Entries
//! are added every `index.interval.bytes`; the offset in each entry is the
//! last offset of the batch at that position (as Kafka does).

use crate::limits::{OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|(o, p)| *o < relative_offset && *p < position));
        self.entries.push((relative_offset, position));
    }

    /// Position of the batch to start scanning from to find `relative_offset`.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let after = self.entries.partition_point(|(o, _)| *o < relative_offset);
        // The entry before `after` names a batch ending before the target;
        // one equal to the target names the batch that holds it.
        match self.entries.get(after) {
            Some((o, p)) if *o == relative_offset => *p,
            _ => after
                .checked_sub(1)
                .and_then(|i| self.entries.get(i))
                .map_or(0, |(_, p)| *p),
        }
    }

    /// Drops entries for batches at or after `position`.
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|(_, p)| *p < position);
        self.entries.truncate(keep);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[(u32, u32)] {
        &self.entries
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_INDEX_ENTRY_BYTES);
        for (offset, position) in &self.entries {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&position.to_be_bytes());
        }
        out
    }

    /// Parses an index file and checks it against its segment: a whole
    /// number of entries, strictly increasing, positions inside the segment.
    pub fn from_bytes(bytes: &[u8], segment_bytes: u64) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(OFFSET_INDEX_ENTRY_BYTES) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for chunk in bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES) {
            let offset = u32::from_be_bytes(chunk[0..4].try_into().ok()?);
            let position = u32::from_be_bytes(chunk[4..8].try_into().ok()?);
            let ordered = index
                .entries
                .last()
                .is_none_or(|(o, p)| *o < offset && *p < position);
            if !ordered || u64::from(position) >= segment_bytes {
                return None;
            }
            index.entries.push((offset, position));
        }
        Some(index)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Records that every batch up to `relative_offset` has timestamps at
    /// most `max_timestamp`; only increases are kept.
    pub fn push(&mut self, max_timestamp: i64, relative_offset: u32) {
        if self.entries.last().is_none_or(|(t, _)| *t < max_timestamp) {
            self.entries.push((max_timestamp, relative_offset));
        }
    }

    /// The relative offset after which a record with timestamp >= `target`
    /// can first appear (None: from the segment's start).
    pub fn lookup(&self, target: i64) -> Option<u32> {
        let below = self.entries.partition_point(|(t, _)| *t < target);
        below
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map(|(_, o)| *o)
    }

    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self.entries.partition_point(|(_, o)| *o < relative_offset);
        self.entries.truncate(keep);
    }

    pub fn last_timestamp(&self) -> Option<i64> {
        self.entries.last().map(|(t, _)| *t)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_INDEX_ENTRY_BYTES);
        for (timestamp, offset) in &self.entries {
            out.extend_from_slice(&timestamp.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
            return None;
        }
        let mut index = TimeIndex::default();
        for chunk in bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES) {
            let timestamp = i64::from_be_bytes(chunk[0..8].try_into().ok()?);
            let offset = u32::from_be_bytes(chunk[8..12].try_into().ok()?);
            let ordered = index
                .entries
                .last()
                .is_none_or(|(t, o)| *t < timestamp && *o <= offset);
            if !ordered {
                return None;
            }
            index.entries.push((timestamp, offset));
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_the_batch_at_or_before() {
        let mut index = OffsetIndex::default();
        index.push(9, 100);
        index.push(19, 200);
        assert_eq!(index.lookup(5), 0);
        assert_eq!(index.lookup(9), 100);
        assert_eq!(index.lookup(10), 100);
        assert_eq!(index.lookup(25), 200);
        let parsed = OffsetIndex::from_bytes(&index.to_bytes(), 300).expect("parse");
        assert_eq!(parsed, index);
        assert!(OffsetIndex::from_bytes(&index.to_bytes(), 150).is_none());
        assert!(OffsetIndex::from_bytes(&[1, 2, 3], 300).is_none());
    }

    #[test]
    fn time_lookup_skips_batches_all_older() {
        let mut index = TimeIndex::default();
        index.push(1000, 4);
        index.push(900, 6);
        index.push(2000, 9);
        assert_eq!(index.lookup(500), None);
        assert_eq!(index.lookup(1500), Some(4));
        assert_eq!(index.lookup(2001), Some(9));
        assert_eq!(TimeIndex::from_bytes(&index.to_bytes()), Some(index));
    }
}
