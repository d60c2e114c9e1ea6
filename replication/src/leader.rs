//! A partition leader's view of its replicas (Kafka's `Partition` and
//! `Replica`): each follower's log end as its fetches report it and when
//! it was last caught up; the high watermark; and the ISR change to ask
//! the controller for. The leader never changes the ISR itself: it asks
//! (AlterPartition at its leader epoch and partition epoch) and applies
//! what the controller commits (`update`).
//!
//! While a change is in flight the high watermark is computed over the
//! "maximal ISR", the union of the committed ISR and the one asked for, so
//! neither a shrink nor an expansion can let it pass a replica the
//! controller might still count as in sync. A change stays in flight until
//! the controller's answer or the metadata log settles it: a lost answer
//! settles nothing (the change may have committed).

use std::collections::BTreeMap;

/// How long a leader waits after a refused ISR change before asking again.
pub const CHANGE_RETRY_MS: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Follower {
    /// -1 until its first fetch under this leadership.
    log_end: i64,
    last_caught_up_ms: u64,
    last_fetch_ms: u64,
    /// The leader's log end at the follower's previous fetch.
    last_fetch_leader_end: i64,
}

impl Follower {
    fn new(in_sync: bool, now_ms: u64) -> Follower {
        // An ISR member gets a full lag period to show up under a new
        // leader before it can be dropped (Kafka resets it the same way).
        Follower {
            log_end: -1,
            last_caught_up_ms: if in_sync { now_ms } else { 0 },
            last_fetch_ms: 0,
            last_fetch_leader_end: -1,
        }
    }
}

/// The ISR a leader asks the controller for, with the epochs that fence a
/// stale leader's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// A fetch as a replica from a broker that holds no replica of the
/// partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAReplica(pub i32);

impl std::fmt::Display for NotAReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "broker {} is not a replica of this partition", self.0)
    }
}

impl std::error::Error for NotAReplica {}

#[derive(Debug, Clone)]
pub struct LeaderState {
    me: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// The ISR asked for and not yet committed or refused. It stays while
    /// the outcome is unknown (`change_failed`): the controller may have
    /// committed it.
    pending: Option<Vec<i32>>,
    /// Whether `pending` was asked for and its answer is still awaited
    /// (false after `change_failed`: it may be asked again).
    asked: bool,
    /// Whether an ask of `pending` had an unknown outcome (`change_failed`):
    /// then only a newer partition epoch settles it, since a copy asked
    /// earlier or later may still commit.
    unknown: bool,
    /// After a failed ask, no ask before this time (a refusal that holds,
    /// say a fenced broker, would otherwise be asked again at every fetch).
    retry_at_ms: u64,
    followers: BTreeMap<i32, Follower>,
    high_watermark: i64,
    /// Where this leadership's epoch starts in the log: a follower must
    /// have reached it to join the ISR (it has then truncated any
    /// divergent tail of an older epoch).
    epoch_start_offset: i64,
}

impl LeaderState {
    /// A new leadership at `leader_epoch`, from the committed partition
    /// state. `high_watermark` is what this broker knew (as a follower it
    /// learnt it from the old leader); it only moves up from there.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        high_watermark: i64,
        epoch_start_offset: i64,
        now_ms: u64,
    ) -> LeaderState {
        let followers = replicas
            .iter()
            .filter(|&&r| r != me)
            .map(|&r| (r, Follower::new(isr.contains(&r), now_ms)))
            .collect();
        LeaderState {
            me,
            leader_epoch,
            partition_epoch,
            replicas,
            isr,
            pending: None,
            asked: false,
            unknown: false,
            retry_at_ms: 0,
            followers,
            high_watermark,
            epoch_start_offset,
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// The committed ISR.
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    /// The committed ISR and, while a change is in flight, the members it
    /// would add.
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut all = self.isr.clone();
        if let Some(pending) = &self.pending {
            all.extend(pending.iter().filter(|r| !self.isr.contains(r)));
        }
        all
    }

    /// `maximal_isr().len()` without building it.
    pub fn maximal_isr_len(&self) -> usize {
        let added = self
            .pending
            .iter()
            .flatten()
            .filter(|r| !self.isr.contains(r))
            .count();
        self.isr.len() + added
    }

    pub fn has_pending_change(&self) -> bool {
        self.pending.is_some()
    }

    /// The committed state from the metadata log, for the same leadership
    /// (a new leader epoch makes a new `LeaderState`). An older or equal
    /// partition epoch is a replay and changes nothing; a newer one ends
    /// whatever change was in flight (committed, or overtaken).
    pub fn update(&mut self, partition_epoch: i32, replicas: Vec<i32>, isr: Vec<i32>, now_ms: u64) {
        if partition_epoch <= self.partition_epoch {
            return;
        }
        self.partition_epoch = partition_epoch;
        self.pending = None;
        self.asked = false;
        self.unknown = false;
        self.followers.retain(|id, _| replicas.contains(id));
        for &r in &replicas {
            if r != self.me {
                self.followers
                    .entry(r)
                    .or_insert_with(|| Follower::new(false, now_ms));
            }
        }
        self.replicas = replicas;
        self.isr = isr;
    }

    /// The change in flight got no answer (a timeout, a transport error) or
    /// one that does not say whether it committed (INVALID_UPDATE_VERSION,
    /// FENCED_LEADER_EPOCH: the controller holds a state this leader has not
    /// seen, maybe this very change). It stays in flight, its members still
    /// count in the maximal ISR, until the metadata log brings a newer
    /// partition epoch (`update`); `propose_isr_change` asks for it again
    /// after `CHANGE_RETRY_MS` (Kafka's AlterPartitionManager resends it).
    /// Forgetting it would let the high watermark pass a replica the
    /// controller may already count in the ISR, and elect.
    pub fn change_failed(&mut self, now_ms: u64) {
        self.asked = false;
        self.unknown = self.pending.is_some();
        self.retry_at_ms = now_ms + CHANGE_RETRY_MS;
    }

    /// The controller refused `change` at this leadership's leader and
    /// partition epochs (INELIGIBLE_REPLICA, INVALID_REQUEST: it checks the
    /// epochs first), so that ask did not commit. If no ask of the change in
    /// flight had an unknown outcome (it was asked once, and this is that
    /// ask's answer), it is dropped and `propose_isr_change` may ask for
    /// another after `CHANGE_RETRY_MS`; otherwise another copy may still
    /// commit, and this is `change_failed`. An answer to another change
    /// (other epochs or ISR) is stale and ignored.
    pub fn change_refused(&mut self, change: &IsrChange, now_ms: u64) {
        let current = change.leader_epoch == self.leader_epoch
            && change.partition_epoch == self.partition_epoch
            && self.pending.as_ref() == Some(&change.isr);
        if !current {
            return;
        }
        if self.unknown {
            self.change_failed(now_ms);
            return;
        }
        self.pending = None;
        self.asked = false;
        self.retry_at_ms = now_ms + CHANGE_RETRY_MS;
    }

    /// A follower fetched at `fetch_offset` (its log end, durable on it)
    /// while the leader's log ended at `leader_log_end` (Kafka's
    /// `Replica.updateFetchStateOrThrow`). It counts as caught up at this
    /// fetch if it asked for everything the leader had, or at its previous
    /// fetch if it now has everything the leader had then.
    pub fn on_fetch(
        &mut self,
        follower: i32,
        fetch_offset: i64,
        leader_log_end: i64,
        now_ms: u64,
    ) -> Result<(), NotAReplica> {
        let state = self
            .followers
            .get_mut(&follower)
            .ok_or(NotAReplica(follower))?;
        if fetch_offset >= leader_log_end {
            state.last_caught_up_ms = state.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= state.last_fetch_leader_end && state.last_fetch_leader_end >= 0 {
            state.last_caught_up_ms = state.last_caught_up_ms.max(state.last_fetch_ms);
        }
        state.log_end = fetch_offset;
        state.last_fetch_ms = now_ms;
        state.last_fetch_leader_end = leader_log_end;
        Ok(())
    }

    /// Moves the high watermark to the smallest log end over the maximal
    /// ISR (the leader's own is `leader_log_end`) and returns it. It never
    /// goes back, and a member that has not fetched under this leadership
    /// holds it where it is.
    pub fn advance_high_watermark(&mut self, leader_log_end: i64) -> i64 {
        let mut lowest = leader_log_end;
        // The maximal ISR without building it: this runs at every append.
        let pending = self
            .pending
            .iter()
            .flatten()
            .filter(|r| !self.isr.contains(r));
        for &member in self.isr.iter().chain(pending) {
            if member == self.me {
                continue;
            }
            match self.followers.get(&member) {
                Some(f) if f.log_end >= 0 => lowest = lowest.min(f.log_end),
                // Not fetched yet, or not a replica (cannot be in a
                // committed ISR): no advance.
                _ => return self.high_watermark,
            }
        }
        self.high_watermark = self.high_watermark.max(lowest);
        self.high_watermark
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The ISR change to ask for now, if any and none is awaiting its
    /// answer; a change whose ask failed (`change_failed`) is asked again as
    /// it is, and nothing else until it is settled. Otherwise: ISR
    /// members not caught up within `lag_max_ms` leave (Kafka's
    /// `replica.lag.time.max.ms`, `getOutOfSyncReplicas`), replicas whose
    /// log end reached the high watermark and this epoch's start join
    /// (`isFollowerInSync`). The leader itself always stays. Members in
    /// replica-list order.
    /// `eligible` says whether a broker may join (Kafka's
    /// `isReplicaIsrEligible`: registered and unfenced); asking for a fenced
    /// one would only be refused, again at every fetch.
    pub fn propose_isr_change(
        &mut self,
        leader_log_end: i64,
        now_ms: u64,
        lag_max_ms: u64,
        eligible: impl Fn(i32) -> bool,
    ) -> Option<IsrChange> {
        if self.asked || now_ms < self.retry_at_ms {
            return None;
        }
        if let Some(pending) = &self.pending {
            // Its outcome is unknown: the same change again, nothing else.
            self.asked = true;
            return Some(IsrChange {
                leader_epoch: self.leader_epoch,
                partition_epoch: self.partition_epoch,
                isr: pending.clone(),
            });
        }
        let keep = |r: &i32| -> bool {
            if *r == self.me {
                return true;
            }
            let Some(f) = self.followers.get(r) else {
                return false;
            };
            let in_isr = self.isr.contains(r);
            let lagging = f.log_end != leader_log_end
                && now_ms.saturating_sub(f.last_caught_up_ms) > lag_max_ms;
            let joins = f.log_end >= self.high_watermark && f.log_end >= self.epoch_start_offset;
            if in_isr {
                !lagging
            } else {
                joins && !lagging && eligible(*r)
            }
        };
        let isr: Vec<i32> = self.replicas.iter().copied().filter(keep).collect();
        let mut current = self.isr.clone();
        current.sort_unstable();
        let mut wanted = isr.clone();
        wanted.sort_unstable();
        if wanted == current {
            return None;
        }
        self.pending = Some(isr.clone());
        self.asked = true;
        self.unknown = false;
        Some(IsrChange {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: u64 = 30_000;

    fn three() -> LeaderState {
        // Broker 1 leads epoch 4; 2 and 3 are in sync; log end 100, HW 100.
        LeaderState::new(1, 4, 7, vec![1, 2, 3], vec![1, 2, 3], 100, 100, 1_000)
    }

    #[test]
    fn the_high_watermark_is_the_smallest_log_end_in_the_isr() {
        let mut leader = three();
        // Nobody fetched yet under this leadership: stays.
        assert_eq!(leader.advance_high_watermark(150), 100);
        leader.on_fetch(2, 150, 150, 1_100).expect("replica");
        assert_eq!(leader.advance_high_watermark(150), 100);
        leader.on_fetch(3, 120, 150, 1_100).expect("replica");
        assert_eq!(leader.advance_high_watermark(150), 120);
        leader.on_fetch(3, 150, 150, 1_200).expect("replica");
        assert_eq!(leader.advance_high_watermark(150), 150);
        // Never backwards, even if a report is lower (a replay).
        leader.on_fetch(3, 130, 150, 1_300).expect("replica");
        assert_eq!(leader.advance_high_watermark(150), 150);
    }

    #[test]
    fn a_lagging_member_is_dropped_but_holds_the_hw_until_committed() {
        let mut leader = three();
        leader.on_fetch(2, 200, 200, 2_000).expect("replica");
        leader.on_fetch(3, 100, 200, 2_000).expect("replica");
        assert_eq!(
            leader.propose_isr_change(200, 1_000 + LAG, LAG, |_| true),
            None
        );
        // 3 last caught up at 1_000 (the new leadership's start).
        let change = leader
            .propose_isr_change(200, 1_001 + LAG, LAG, |_| true)
            .expect("shrink");
        assert_eq!(change.isr, vec![1, 2]);
        assert_eq!((change.leader_epoch, change.partition_epoch), (4, 7));
        // In flight: nothing more is asked, and 3 still holds the HW.
        assert_eq!(
            leader.propose_isr_change(200, 1_002 + LAG, LAG, |_| true),
            None
        );
        assert_eq!(leader.advance_high_watermark(200), 100);
        // Committed: the HW moves to 2's log end.
        leader.update(8, vec![1, 2, 3], vec![1, 2], 40_000);
        assert_eq!(leader.advance_high_watermark(200), 200);
    }

    #[test]
    fn a_follower_that_reaches_the_hw_rejoins() {
        let mut leader = LeaderState::new(1, 4, 7, vec![1, 2, 3], vec![1, 2], 100, 90, 1_000);
        leader.on_fetch(2, 100, 100, 1_000).expect("replica");
        leader.on_fetch(3, 80, 100, 1_000).expect("replica");
        assert_eq!(leader.propose_isr_change(100, 1_000, LAG, |_| true), None);
        leader.on_fetch(3, 100, 100, 1_100).expect("replica");
        // Not while broker 3 is fenced.
        assert_eq!(leader.propose_isr_change(100, 1_100, LAG, |b| b != 3), None);
        let change = leader
            .propose_isr_change(100, 1_100, LAG, |_| true)
            .expect("expand");
        assert_eq!(change.isr, vec![1, 2, 3]);
        // While the expansion is in flight, 3 already counts for the HW.
        assert_eq!(leader.maximal_isr(), vec![1, 2, 3]);
        assert_eq!(leader.maximal_isr_len(), 3);
        // Refused (say a stale partition epoch): may ask again.
        leader.change_failed(1_200);
        assert_eq!(leader.propose_isr_change(100, 1_300, LAG, |_| true), None);
        assert!(leader
            .propose_isr_change(100, 1_200 + CHANGE_RETRY_MS, LAG, |_| true)
            .is_some());
    }

    #[test]
    fn an_expansion_whose_answer_was_lost_still_holds_the_hw() {
        // The controller may have committed it: 3 may be in the ISR and
        // elected next, so the HW must not pass 3 until the metadata says.
        let mut leader = LeaderState::new(1, 4, 7, vec![1, 2, 3], vec![1, 2], 100, 90, 1_000);
        leader.on_fetch(2, 100, 100, 1_000).expect("replica");
        leader.on_fetch(3, 100, 100, 1_000).expect("replica");
        let change = leader
            .propose_isr_change(100, 1_000, LAG, |_| true)
            .expect("expand");
        assert_eq!(change.isr, vec![1, 2, 3]);
        // The call timed out.
        leader.change_failed(1_100);
        leader.on_fetch(2, 150, 150, 1_200).expect("replica");
        assert_eq!(leader.advance_high_watermark(150), 100);
        assert_eq!(leader.maximal_isr(), vec![1, 2, 3]);
        // Asked again as it was, once the retry delay passed.
        assert_eq!(leader.propose_isr_change(150, 1_200, LAG, |_| true), None);
        assert_eq!(
            leader.propose_isr_change(150, 1_100 + CHANGE_RETRY_MS, LAG, |_| true),
            Some(change.clone())
        );
        // The metadata log: it had committed. 3 holds the HW as a member.
        leader.update(8, vec![1, 2, 3], vec![1, 2, 3], 2_200);
        assert!(!leader.has_pending_change());
        assert_eq!(leader.advance_high_watermark(150), 100);
        leader.on_fetch(3, 150, 150, 2_300).expect("replica");
        assert_eq!(leader.advance_high_watermark(150), 150);

        // Overtaken instead (a newer epoch without 3): the HW moves on.
        let mut leader = LeaderState::new(1, 4, 7, vec![1, 2, 3], vec![1, 2], 100, 90, 1_000);
        leader.on_fetch(2, 100, 100, 1_000).expect("replica");
        leader.on_fetch(3, 100, 100, 1_000).expect("replica");
        assert!(leader
            .propose_isr_change(100, 1_000, LAG, |_| true)
            .is_some());
        leader.change_failed(1_100);
        leader.on_fetch(2, 150, 150, 1_200).expect("replica");
        leader.update(8, vec![1, 2, 3], vec![1, 2], 1_300);
        assert_eq!(leader.advance_high_watermark(150), 150);
    }

    #[test]
    fn a_refusal_at_the_leaders_epochs_drops_the_change() {
        let mut leader = LeaderState::new(1, 4, 7, vec![1, 2, 3], vec![1, 2], 100, 90, 1_000);
        leader.on_fetch(2, 100, 100, 1_000).expect("replica");
        leader.on_fetch(3, 100, 100, 1_000).expect("replica");
        let change = leader
            .propose_isr_change(100, 1_000, LAG, |_| true)
            .expect("expand");
        // An answer to something else (an older ask) changes nothing.
        let stale = IsrChange {
            partition_epoch: 6,
            ..change.clone()
        };
        leader.change_refused(&stale, 1_100);
        assert_eq!(leader.maximal_isr(), vec![1, 2, 3]);
        // INELIGIBLE_REPLICA at epochs 4 and 7: nothing committed since.
        leader.change_refused(&change, 1_100);
        assert!(!leader.has_pending_change());
        assert_eq!(leader.maximal_isr(), vec![1, 2]);
        leader.on_fetch(2, 150, 150, 1_200).expect("replica");
        assert_eq!(leader.advance_high_watermark(150), 150);
        assert_eq!(leader.propose_isr_change(150, 1_200, LAG, |_| true), None);

        // Asked twice (a failure came between, maybe an older ask's): the
        // refusal answers one copy only, the other may still commit.
        let mut leader = LeaderState::new(1, 4, 7, vec![1, 2, 3], vec![1, 2], 100, 90, 1_000);
        leader.on_fetch(2, 100, 100, 1_000).expect("replica");
        leader.on_fetch(3, 100, 100, 1_000).expect("replica");
        let change = leader
            .propose_isr_change(100, 1_000, LAG, |_| true)
            .expect("expand");
        leader.change_failed(1_100);
        let again = leader.propose_isr_change(100, 1_100 + CHANGE_RETRY_MS, LAG, |_| true);
        assert_eq!(again.as_ref(), Some(&change));
        leader.change_refused(&change, 2_200);
        assert_eq!(leader.maximal_isr(), vec![1, 2, 3]);
        // Only a newer partition epoch settles it.
        leader.update(8, vec![1, 2, 3], vec![1, 2], 2_300);
        assert_eq!(leader.maximal_isr(), vec![1, 2]);
    }

    #[test]
    fn caught_up_means_had_what_the_leader_had_at_the_previous_fetch() {
        let mut leader = three();
        leader.on_fetch(2, 100, 100, 1_000).expect("replica");
        leader.on_fetch(3, 100, 100, 1_000).expect("replica");
        // Steady load: 2 is always one fetch behind the leader's end but
        // always has what the leader had at its previous fetch.
        let mut end = 100;
        for step in 1..=100u64 {
            let now = 1_000 + step * 1_000;
            let had = end;
            end += 10;
            leader.on_fetch(2, had, end, now).expect("replica");
        }
        // 3 stopped fetching at 1_000.
        let change = leader
            .propose_isr_change(end, 1_000 + 100 * 1_000, LAG, |_| true)
            .expect("3 leaves");
        assert_eq!(change.isr, vec![1, 2]);
    }

    #[test]
    fn fetches_from_non_replicas_are_refused() {
        let mut leader = three();
        assert_eq!(leader.on_fetch(9, 0, 100, 1_000), Err(NotAReplica(9)));
        assert_eq!(leader.on_fetch(1, 0, 100, 1_000), Err(NotAReplica(1)));
    }

    #[test]
    fn a_replica_added_by_reassignment_is_tracked() {
        let mut leader = three();
        leader.update(8, vec![1, 2, 3, 4], vec![1, 2, 3], 5_000);
        assert!(leader.on_fetch(4, 0, 100, 5_000).is_ok());
        leader.update(9, vec![1, 2, 4], vec![1, 2], 6_000);
        assert_eq!(leader.on_fetch(3, 0, 100, 6_000), Err(NotAReplica(3)));
    }
}
