//! RecordBatch v2 framing on the client side: a Fetch answer's records are
//! whole batches back to back, possibly ending in a partial one that the
//! next fetch completes. bench and the CLI walk them with this.

/// Bytes of a RecordBatch v2 header.
pub const HEADER_BYTES: usize = 61;

/// One whole batch, header fields read in place.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub bytes: &'a [u8],
}

impl Batch<'_> {
    fn i32_at(&self, at: usize) -> i32 {
        i32::from_be_bytes([
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ])
    }

    pub fn base_offset(&self) -> i64 {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&self.bytes[0..8]);
        i64::from_be_bytes(raw)
    }

    /// The offset after the batch's last record.
    pub fn next_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.i32_at(23)) + 1
    }

    pub fn records_count(&self) -> i32 {
        self.i32_at(57)
    }

    /// The stored CRC-32C matches attributes..end.
    pub fn crc_ok(&self) -> bool {
        crc32c::crc32c(&self.bytes[21..]) == self.i32_at(17) as u32
    }
}

/// A batch header whose length field is below the header size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortBatch {
    pub length: i32,
}

/// The whole batches at the start of `records`, in order; ends before a
/// partial last batch, or with one `Err` at a length that cannot be.
pub fn whole_batches(records: &[u8]) -> WholeBatches<'_> {
    WholeBatches { rest: records }
}

pub struct WholeBatches<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for WholeBatches<'a> {
    type Item = Result<Batch<'a>, ShortBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < HEADER_BYTES {
            return None;
        }
        let length = i32::from_be_bytes([self.rest[8], self.rest[9], self.rest[10], self.rest[11]]);
        let total = usize::try_from(length).unwrap_or(0) + 12;
        if total < HEADER_BYTES {
            self.rest = &[];
            return Some(Err(ShortBatch { length }));
        }
        if total > self.rest.len() {
            return None;
        }
        let (bytes, rest) = self.rest.split_at(total);
        self.rest = rest;
        Some(Ok(Batch { bytes }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, last_delta: i32, count: i32, body: usize) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_BYTES + body];
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b[8..12].copy_from_slice(&((HEADER_BYTES + body - 12) as i32).to_be_bytes());
        b[23..27].copy_from_slice(&last_delta.to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn whole_batches_then_stop_before_a_partial_one() {
        let mut records = batch(10, 2, 3, 5);
        records.extend(batch(13, 0, 1, 7));
        let partial = batch(14, 0, 1, 9);
        records.extend(&partial[..30]);
        let found: Vec<_> = whole_batches(&records)
            .collect::<Result<_, _>>()
            .expect("whole");
        assert_eq!(found.len(), 2);
        assert_eq!(
            (
                found[0].base_offset(),
                found[0].next_offset(),
                found[0].records_count()
            ),
            (10, 13, 3)
        );
        assert_eq!(found[1].next_offset(), 14);
        assert!(found.iter().all(|b| b.crc_ok()));
    }

    #[test]
    fn a_flipped_byte_fails_the_crc_and_a_short_length_is_an_error() {
        let mut one = batch(0, 0, 1, 8);
        one[HEADER_BYTES + 2] ^= 1;
        let found = whole_batches(&one).next().expect("one").expect("whole");
        assert!(!found.crc_ok());
        let mut short = batch(0, 0, 1, 8);
        short[8..12].copy_from_slice(&20i32.to_be_bytes());
        let mut walk = whole_batches(&short);
        assert_eq!(
            walk.next().map(|r| r.err()),
            Some(Some(ShortBatch { length: 20 }))
        );
        assert!(walk.next().is_none());
    }
}
