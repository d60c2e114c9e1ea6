//! Whether a follower's log has diverged from its leader's, and where the
//! follower truncates to (KIP-101, KIP-279; with Fetch v12+ the leader
//! answers a `DivergingEpoch` in the fetch itself, KIP-595 style, instead
//! of a separate OffsetForLeaderEpoch round trip).
//!
//! Both sides ask their own leader-epoch cache "where does epoch E end?"
//! (storage's `Log::end_offset_for_epoch`, Kafka's `endOffsetFor`): the
//! answer is the largest epoch <= E the log knows and the offset where it
//! ends, or `UNDEFINED_EPOCH_END` when the log knows no epoch <= E.

/// An epoch and the offset its batches end at (exclusive), as
/// OffsetForLeaderEpoch and Fetch's DivergingEpoch carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    pub epoch: i32,
    pub end_offset: i64,
}

/// Kafka's UNDEFINED_EPOCH (-1) and UNDEFINED_EPOCH_OFFSET (-1).
pub const UNDEFINED_EPOCH_END: EpochEnd = EpochEnd {
    epoch: -1,
    end_offset: -1,
};

/// The leader's side (Kafka's `Partition.fetchRecords` with a last fetched
/// epoch): the follower fetches at `fetch_offset` and its last batch has
/// epoch `last_fetched_epoch`; `leader_end` is the leader's end for that
/// epoch. The follower's log is a prefix of the leader's only if the
/// leader knows that very epoch and it ends at or after the fetch offset;
/// otherwise the answer is where the leader's log for that epoch ends,
/// and the follower truncates (`truncation_offset`). A follower without a
/// last fetched epoch (-1: empty log, or batches from before epochs were
/// stamped) is not checked.
pub fn diverging_epoch(
    last_fetched_epoch: i32,
    fetch_offset: i64,
    leader_end: EpochEnd,
) -> Option<EpochEnd> {
    if last_fetched_epoch < 0 {
        return None;
    }
    (leader_end.epoch < last_fetched_epoch || leader_end.end_offset < fetch_offset)
        .then_some(leader_end)
}

/// The follower's side (Kafka's `AbstractFetcherThread`
/// `getOffsetTruncationState`): the leader answered `diverging`; `local`
/// is this log's end for `diverging.epoch`. Truncate to the smaller of the
/// two ends of that epoch, never past the log end. When the follower's
/// largest epoch <= the leader's is a smaller one, this stops at the end
/// of that one, and the next fetch (now with that epoch as its last)
/// narrows it down further; it never cuts below the point where the two
/// logs agree. Without epochs on either side it falls back to the high
/// watermark, the last offset known committed.
pub fn truncation_offset(
    diverging: EpochEnd,
    local: EpochEnd,
    log_end: i64,
    high_watermark: i64,
) -> i64 {
    let offset = if diverging.end_offset < 0 {
        // The leader knows no epoch this early: only what was committed
        // is known to agree.
        high_watermark
    } else if local.end_offset < 0 || local.epoch == diverging.epoch {
        // No epoch of our own this early (keep what the leader has), or
        // the same epoch (keep what both have of it).
        if local.end_offset < 0 {
            diverging.end_offset
        } else {
            local.end_offset.min(diverging.end_offset)
        }
    } else {
        // Our largest epoch <= the leader's is an older one: everything
        // after it may differ.
        local.end_offset.min(diverging.end_offset)
    };
    offset.min(log_end).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(epoch: i32, end_offset: i64) -> EpochEnd {
        EpochEnd { epoch, end_offset }
    }

    #[test]
    fn a_prefix_of_the_leader_does_not_diverge() {
        // Leader: epoch 3 ends at 120; the follower fetched epoch 3 up to 100.
        assert_eq!(diverging_epoch(3, 100, end(3, 120)), None);
        assert_eq!(diverging_epoch(3, 120, end(3, 120)), None);
        assert_eq!(diverging_epoch(-1, 100, UNDEFINED_EPOCH_END), None);
    }

    #[test]
    fn a_longer_epoch_or_an_unknown_epoch_diverges() {
        // The follower has epoch 3 up to 130, the leader's epoch 3 ended at 120.
        assert_eq!(diverging_epoch(3, 130, end(3, 120)), Some(end(3, 120)));
        // The follower's epoch 4 never reached the leader (its floor is 3).
        assert_eq!(diverging_epoch(4, 130, end(3, 120)), Some(end(3, 120)));
        // The leader knows nothing that early.
        assert_eq!(
            diverging_epoch(1, 10, UNDEFINED_EPOCH_END),
            Some(UNDEFINED_EPOCH_END)
        );
    }

    #[test]
    fn truncation_keeps_exactly_what_both_logs_share() {
        // Same epoch, leader's ends first.
        assert_eq!(truncation_offset(end(3, 120), end(3, 130), 130, 90), 120);
        // Same epoch, ours ends first (we have later epochs after it).
        assert_eq!(truncation_offset(end(3, 120), end(3, 110), 150, 90), 110);
        // Our floor for epoch 3 is epoch 2, ending at 100.
        assert_eq!(truncation_offset(end(3, 120), end(2, 100), 150, 90), 100);
        // The leader knows no epoch that early: back to the HW.
        assert_eq!(
            truncation_offset(UNDEFINED_EPOCH_END, end(1, 50), 150, 90),
            90
        );
        // We know no epoch that early: keep up to the leader's end.
        assert_eq!(
            truncation_offset(end(3, 120), UNDEFINED_EPOCH_END, 150, 90),
            120
        );
        // Never past our own log end.
        assert_eq!(truncation_offset(end(3, 120), end(3, 200), 105, 90), 105);
    }

    /// Two logs as epoch runs: (epoch, number of records). Walking the
    /// fetch/truncate exchange until the leader finds no divergence must
    /// stop at exactly the longest common epoch-prefix.
    fn end_for(runs: &[(i32, i64)], epoch: i32) -> EpochEnd {
        let mut offset = 0;
        let mut found = UNDEFINED_EPOCH_END;
        for (i, &(e, n)) in runs.iter().enumerate() {
            if e > epoch {
                break;
            }
            offset += n;
            let next_starts = runs.get(i + 1).is_none_or(|&(ne, _)| ne > epoch);
            if next_starts {
                found = end(e, offset);
            }
        }
        let latest = runs.last().map(|r| r.0);
        if latest == Some(epoch) {
            return end(epoch, runs.iter().map(|r| r.1).sum());
        }
        found
    }

    fn truncated(runs: &[(i32, i64)], at: i64) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        let mut offset = 0;
        for &(e, n) in runs {
            let keep = (at - offset).clamp(0, n);
            if keep > 0 {
                out.push((e, keep));
            }
            offset += n;
        }
        out
    }

    fn common_prefix(a: &[(i32, i64)], b: &[(i32, i64)]) -> i64 {
        let mut offset = 0;
        for (x, y) in a.iter().zip(b) {
            if x.0 != y.0 {
                break;
            }
            offset += x.1.min(y.1);
            if x.1 != y.1 {
                break;
            }
        }
        offset
    }

    proptest::proptest! {
        #[test]
        fn the_exchange_converges_on_the_common_prefix(
            shared in proptest::collection::vec(1i64..5, 0..4),
            leader_tail in proptest::collection::vec(1i64..5, 0..3),
            follower_tail in proptest::collection::vec(1i64..5, 0..3),
        ) {
            // Epochs 0.. shared by both; then the follower led epochs the
            // leader never saw (odd), and the leader later ones (even).
            let base: Vec<(i32, i64)> = shared.iter().enumerate().map(|(i, &n)| (i as i32 * 10, n)).collect();
            let top = base.len() as i32 * 10;
            let mut leader = base.clone();
            leader.extend(leader_tail.iter().enumerate().map(|(i, &n)| (top + 2 + i as i32 * 2, n)));
            let mut follower = base.clone();
            follower.extend(follower_tail.iter().enumerate().map(|(i, &n)| (top + 1 + i as i32 * 2, n)));
            let expected = common_prefix(&leader, &follower);
            for _ in 0..10 {
                let log_end: i64 = follower.iter().map(|r| r.1).sum();
                let last_epoch = follower.last().map_or(-1, |r| r.0);
                let leader_end = end_for(&leader, last_epoch);
                match diverging_epoch(last_epoch, log_end, leader_end) {
                    None => break,
                    Some(diverging) => {
                        let local = end_for(&follower, diverging.epoch);
                        let at = truncation_offset(diverging, local, log_end, 0);
                        follower = truncated(&follower, at);
                    }
                }
            }
            let log_end: i64 = follower.iter().map(|r| r.1).sum();
            proptest::prop_assert_eq!(log_end, expected);
            proptest::prop_assert_eq!(common_prefix(&leader, &follower), expected);
        }
    }
}
