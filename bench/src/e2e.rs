//! The consumers of a produce run (`--consumers N`): each reads its share of
//! the partitions (assigned, no group) from where they ended before the
//! run, measures end-to-end latency (the time a record is read minus its
//! intended send time, both on the same clock), and checks every record:
//! its checksum, that no (producer, sequence) arrives twice, and, once the
//! run is over, that every acknowledged record arrived.

use crate::batch;
use crate::client::{self, Connection};
use anyhow::{Context, Result};
use client::fetch::{fetch, FetchLimits};
use client::member::Member;
use hdrhistogram::Histogram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FETCH_WAIT_MS: i32 = 100;
/// After the producers stop, consumers get this long to read the rest.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Records seen, per producer, as a bitmap over sequence numbers.
#[derive(Default)]
pub struct Seen {
    producers: Vec<Vec<u64>>,
}

impl Seen {
    /// Marks one record; false if it was already seen (a duplicate).
    fn mark(&mut self, producer: u32, sequence: u64) -> bool {
        let producer = producer as usize;
        if self.producers.len() <= producer {
            self.producers.resize_with(producer + 1, Vec::new);
        }
        let bits = &mut self.producers[producer];
        let (word, bit) = ((sequence / 64) as usize, sequence % 64);
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let fresh = bits[word] & (1 << bit) == 0;
        bits[word] |= 1 << bit;
        fresh
    }

    pub fn contains(&self, producer: u32, sequence: u64) -> bool {
        let (word, bit) = ((sequence / 64) as usize, sequence % 64);
        self.producers
            .get(producer as usize)
            .and_then(|bits| bits.get(word))
            .is_some_and(|w| w & (1 << bit) != 0)
    }

    fn merge(&mut self, other: Seen) {
        for (producer, bits) in other.producers.into_iter().enumerate() {
            for (word, value) in bits.into_iter().enumerate() {
                for bit in 0..64 {
                    if value & (1 << bit) != 0 {
                        self.mark(producer as u32, word as u64 * 64 + bit);
                    }
                }
            }
        }
    }
}

pub struct Consumed {
    pub records: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    /// Values that are not bench payloads (someone else's records).
    pub foreign: u64,
    pub latency_us: Histogram<u64>,
    pub seen: Seen,
}

impl Consumed {
    fn new() -> Result<Consumed> {
        Ok(Consumed {
            records: 0,
            duplicated: 0,
            corrupted: 0,
            foreign: 0,
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            seen: Seen::default(),
        })
    }
}

/// Where the producers ended: set once they stopped, read by consumers.
pub type Targets = Arc<Mutex<Option<Vec<i64>>>>;

pub struct Plan {
    pub bootstrap: String,
    pub topic: String,
    /// (partition, start offset) this consumer reads.
    pub partitions: Vec<(i32, i64)>,
    pub origin: Instant,
    /// Latency counts only for records meant to be sent from here on.
    /// Set once the producers' schedule is known (u64::MAX until then).
    pub measure_from_us: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub targets: Targets,
    /// Consume as members of this group instead: each consumer reads the
    /// partitions the group assigns it, from `partitions`' start offsets
    /// (or the group's commits after a rebalance).
    pub group: Option<Group>,
}

pub struct Group {
    pub name: String,
    /// (consumer index, generation) after every (re)join.
    pub joined: std::sync::mpsc::Sender<(usize, i32)>,
    pub index: usize,
}

/// The assigned partitions' positions: committed offsets where the group
/// has them, else the run's start offsets.
fn group_positions(member: &mut Member, starts: &[(i32, i64)]) -> Result<Vec<(i32, i64)>> {
    let committed = member.committed()?;
    Ok(member
        .assigned
        .iter()
        .map(|p| {
            let start = starts.iter().find(|(q, _)| q == p).map_or(0, |(_, o)| *o);
            (
                *p,
                committed
                    .get(p)
                    .copied()
                    .filter(|o| *o >= 0)
                    .unwrap_or(start),
            )
        })
        .collect())
}

pub fn consume(plan: Plan) -> Result<Consumed> {
    let mut connection = Connection::connect(&plan.bootstrap)?;
    let mut member = match &plan.group {
        Some(group) => {
            let coordinator = client::member::connect_coordinator(&plan.bootstrap, &group.name)?;
            let member = Member::join(coordinator, &group.name, &plan.topic)?;
            let _ = group.joined.send((group.index, member.generation()));
            Some(member)
        }
        None => None,
    };
    let mut offsets: Vec<(i32, i64)> = match member.as_mut() {
        Some(member) => group_positions(member, &plan.partitions)?,
        None => plan.partitions.clone(),
    };
    let mut out = Consumed::new()?;
    let mut drain_deadline = None;
    loop {
        if let (Some(member), Some(group)) = (member.as_mut(), &plan.group) {
            if member.heartbeat()? {
                member.commit(&offsets)?;
                member.rejoin()?;
                let _ = group.joined.send((group.index, member.generation()));
                offsets = group_positions(member, &plan.partitions)?;
            }
        }
        let targets = plan
            .targets
            .lock()
            .map_err(|_| anyhow::anyhow!("targets lock poisoned"))?
            .clone();
        if let Some(targets) = &targets {
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN_TIMEOUT);
            let done = offsets
                .iter()
                .all(|(p, o)| targets.get(*p as usize).is_none_or(|t| o >= t));
            if done || Instant::now() >= deadline {
                if let Some(mut member) = member {
                    member.commit(&offsets)?;
                    member.leave()?;
                }
                return Ok(out);
            }
        }
        if offsets.is_empty() {
            // No partitions assigned to this member: keep heartbeating.
            std::thread::sleep(Duration::from_millis(FETCH_WAIT_MS as u64));
            continue;
        }
        let limits = FetchLimits {
            max_wait_ms: FETCH_WAIT_MS,
            max_bytes: 16 * 1024 * 1024,
            partition_max_bytes: 4 * 1024 * 1024,
        };
        let fetched = fetch(&mut connection, &plan.topic, &offsets, limits)?;
        let read_at_us = plan.origin.elapsed().as_micros() as u64;
        for (partition, records) in fetched {
            let measure_from_us = plan
                .measure_from_us
                .load(std::sync::atomic::Ordering::Relaxed);
            let next = read_batches(&records, read_at_us, measure_from_us, &mut out)
                .with_context(|| format!("partition {partition}"))?;
            if let (Some(next), Some(slot)) =
                (next, offsets.iter_mut().find(|(p, _)| *p == partition))
            {
                slot.1 = slot.1.max(next);
            }
        }
    }
}

/// Verifies and counts the records of whole batches; returns the offset
/// after the last whole batch.
fn read_batches(
    records: &[u8],
    read_at_us: u64,
    measure_from_us: u64,
    out: &mut Consumed,
) -> Result<Option<i64>> {
    let mut next = None;
    for whole in client::batches::whole_batches(records) {
        let Ok(whole) = whole else {
            break;
        };
        if !whole.crc_ok() {
            out.corrupted += 1;
            eprintln!(
                "CRC mismatch in the batch at offset {}",
                whole.base_offset()
            );
        }
        next = Some(whole.next_offset());
        let batch = whole.bytes;
        let mut check = |value: &[u8]| {
            let Some(payload) = batch::read_payload(value) else {
                out.foreign += 1;
                return;
            };
            out.records += 1;
            if !payload.intact {
                out.corrupted += 1;
            }
            if !out.seen.mark(payload.producer, payload.sequence) {
                out.duplicated += 1;
            }
            if payload.send_us >= measure_from_us {
                out.latency_us
                    .saturating_record(read_at_us.saturating_sub(payload.send_us).max(1));
            }
        };
        match batch::values(batch) {
            Some(values) => values.into_iter().for_each(&mut check),
            None => match batch::compressed_values(batch) {
                Some(values) => values.iter().for_each(|v| check(v)),
                None => out.foreign += 1,
            },
        }
    }
    Ok(next)
}

/// Acknowledged records, as (producer, [(first sequence, count)]), that no
/// consumer read.
pub fn count_lost(acked: &[(u32, Vec<(u64, u64)>)], seen: &Seen) -> u64 {
    acked
        .iter()
        .flat_map(|(producer, ranges)| {
            ranges.iter().flat_map(move |(first, count)| {
                (*first..first + count).map(move |sequence| (*producer, sequence))
            })
        })
        .filter(|(producer, sequence)| !seen.contains(*producer, *sequence))
        .count() as u64
}

/// Merges the consumers' results.
pub fn merge(results: Vec<Consumed>) -> Result<Consumed> {
    let mut total = Consumed::new()?;
    for r in results {
        total.records += r.records;
        total.duplicated += r.duplicated;
        total.corrupted += r.corrupted;
        total.foreign += r.foreign;
        total.latency_us.add(&r.latency_us)?;
        total.seen.merge(r.seen);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_marks_once_per_producer_and_sequence() {
        let mut seen = Seen::default();
        assert!(seen.mark(2, 130));
        assert!(!seen.mark(2, 130), "a duplicate");
        assert!(seen.mark(0, 130), "another producer");
        assert!(seen.contains(2, 130) && !seen.contains(2, 129) && !seen.contains(7, 0));
        let mut other = Seen::default();
        other.mark(5, 3);
        seen.merge(other);
        assert!(seen.contains(5, 3));
    }

    #[test]
    fn acknowledged_records_never_read_count_as_lost() {
        let mut seen = Seen::default();
        for sequence in (0..10).chain(12..20) {
            seen.mark(1, sequence);
        }
        let acked = vec![(1, vec![(0, 10), (10, 10)]), (2, vec![(0, 3)])];
        assert_eq!(count_lost(&acked, &seen), 2 + 3);
    }

    #[test]
    fn batches_are_verified_and_duplicates_counted() {
        let mut out = Consumed::new().expect("histogram");
        let batch =
            batch::build(1, &batch::fixed(0, 500, 4, 64), batch::Codec::None, 0).expect("build");
        let mut twice = batch.to_vec();
        twice.extend_from_slice(&batch);
        assert_eq!(
            read_batches(&twice, 1500, 0, &mut out).expect("read"),
            Some(4)
        );
        assert_eq!((out.records, out.duplicated, out.corrupted), (8, 4, 0));
        assert_eq!(out.latency_us.max(), 1000);
        let mut damaged = batch.to_vec();
        let last = damaged.len() - 2;
        damaged[last] ^= 0xff;
        read_batches(&damaged, 1500, 0, &mut out).expect("read");
        assert!(out.corrupted >= 1, "the batch CRC catches it");
    }
}
