//! A seeded, deterministic fault simulation of one partition replicated on
//! three brokers (TigerBeetle / FoundationDB style): the crate's pure
//! pieces (`LeaderState`, `diverging_epoch`, `truncation_offset`) driven
//! through thousands of random schedules of writes, fetches, fsyncs,
//! crashes, restarts, lost messages, fencing and elections, with the
//! replication invariants checked after every step.
//!
//! What is modelled, after the broker (`broker/src/partition.rs`,
//! `replica_fetcher.rs`, `core.rs`) and the controller
//! (`controller/src/leadership.rs`):
//!
//! - Each broker's log is a `Vec` of entries (the epoch stamped by the
//!   leader that appended it, and a unique id), with a durable prefix
//!   (what an fsync made durable; a crash keeps only that), a leader-epoch
//!   cache with storage's `LeaderEpochs` semantics (`assign`,
//!   `end_offset_for`, `truncate_from_end`, clamped at restart), and a high
//!   watermark (reset to the log start at restart, as `Partition::open`).
//! - The controller's metadata log (partition state and fenced brokers, one
//!   snapshot per record), which every broker applies in order at its own
//!   pace (`apply_assignment`: a new leader epoch begins in the log and a
//!   fresh `LeaderState`, the same one takes `update`). Fencing (a crashed
//!   broker's session expiring, a restarted broker registering again, a live
//!   broker losing its session) takes the broker out of the ISR unless it
//!   is the last member and elects the first unfenced ISR member in replica
//!   order; unfencing a caught-up broker elects a leader for an offline
//!   partition. Never unclean.
//! - AlterPartition with the controller's checks (leader, leader epoch,
//!   partition epoch, eligibility), answered or not: the leader takes the
//!   answer (`update`); a timeout (5 s) is `change_failed`; a refusal is
//!   `change_failed` too (as `Core::alter_isr` does today) or, on half the
//!   seeds, `change_refused` for the refusals made at the asker's epochs
//!   (INELIGIBLE_REPLICA, INVALID_REQUEST). A request may reach the
//!   controller after its sender crashed or lost its leadership.
//! - A restart registers (the controller fences the old incarnation) and
//!   takes no role until its metadata caught up with that registration
//!   (Kafka's start-up). `Restart::StaleImage` models `Core::open` as it is,
//!   applying the local image at once: a leader may come back at its old
//!   epoch having lost its unflushed tail, and the checker catches the
//!   consequences (`leading_again_at_the_old_epoch_after_a_restart_is_caught`;
//!   `SLUICE_REPL_SIM_RESTART=stale` runs the main test that way).
//! - Follower fetches: fetch offset = log end, sent only once everything
//!   appended is durable; LastFetchedEpoch = the cache's latest epoch; the
//!   leader checks the current leader epoch, answers DivergingEpoch (or
//!   OFFSET_OUT_OF_RANGE) or records `on_fetch`, advances the high
//!   watermark and may ask for an expansion; an empty answer long-polls and
//!   may be served again; answers can be delayed (any other step in
//!   between) or lost; a follower drops an answer for a leadership it no
//!   longer follows.
//! - acks=all writes to any broker that believes it leads (stale clients
//!   reach zombies too): `min.insync.replicas` checked before the append,
//!   acknowledged once durable on the leader and the high watermark passed
//!   it under the same leadership (and the maximal ISR is big enough).
//! - Time, so that lagging members are shrunk (`replica.lag.time.max.ms`)
//!   and caught-up, eligible ones expanded.
//!
//! Not modelled: several partitions, batches of several records (one
//! entry per offset, so truncation is exact rather than at a batch
//! boundary), retention and log start offsets above 0, reassignment,
//! unclean election, the controller quorum itself (one always-available
//! controller whose decisions commit at once), crashes in the middle of a
//! storage operation, consumers, idempotent producer state.
//!
//! Invariants, checked after every step (a failure names the seed, the
//! step, the state and the last steps):
//! 1. An acknowledged write is in the log of every member of the
//!    controller's ISR (so of the current leader), at its offset, with its
//!    epoch and id: it survives every failover.
//! 2. Two live replicas agree on every offset below the smaller of their
//!    high watermarks. Exempt: an entry the high watermark passed while it
//!    was not yet durable on its sole-ISR leader, which then crashed (the
//!    broker counts the leader's own log end, not its durable end, for the
//!    high watermark, as Kafka does); the run counts these exposures.
//! 3. A leader's high watermark never exceeds its log end and never goes
//!    back within one leadership.
//! 4. The ISR contains the leader, in the controller and in every
//!    `LeaderState`.
//! 5. When a leader accepts a follower's fetch offset (no divergence), the
//!    follower's log is exactly the leader's log up to that offset.
//! 6. The controller's ISR is contained in the maximal ISR of the broker
//!    that leads at the controller's leader epoch (what the high watermark
//!    is computed over must cover everything an election may pick).
//! 7. Model sanity: the epoch cache matches the log, durable and high
//!    watermark within the log.
//!
//! And liveness at the end of each seed: all faults healed (everyone up,
//! no message lost), a bounded number of rounds must bring the three logs
//! to the leader's, all three into the ISR, and one more write to its
//! acknowledgement.
//!
//! Seeds: `SLUICE_REPL_SIM_SEEDS=<n>` runs seeds 0..n (default 500, about
//! a second in debug); `SLUICE_REPL_SIM_SEED=<s>` runs that one
//! seed and prints its whole schedule (`-- --nocapture`). The same seed
//! always gives the same schedule: one seeded RNG, no clocks, no hash-map
//! iteration.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use replication::{
    diverging_epoch, truncation_offset, EpochEnd, IsrChange, LeaderState, UNDEFINED_EPOCH_END,
};
use std::collections::BTreeSet;
use std::fmt::Write as _;

const REPLICAS: [i32; 3] = [1, 2, 3];
const DEFAULT_SEEDS: u64 = 500;
const STEPS: usize = 500;
const HEAL_ROUNDS: usize = 120;
/// `replica.lag.time.max.ms`
const LAG_MAX_MS: u64 = 10_000;
/// `Core::alter_isr`'s ALTER_PARTITION_TIMEOUT.
const ALTER_TIMEOUT_MS: u64 = 5_000;
/// Entries a fetch answer carries at most (the fetch size).
const FETCH_MAX: usize = 5;
/// Steps of the trace a failure shows.
const TRACE_SHOWN: usize = 80;

fn at(broker: i32) -> usize {
    usize::try_from(broker - 1).expect("broker ids start at 1")
}

/// An entry: the epoch of the leader that appended it, and a unique id.
type Entry = u64;

fn entry(epoch: i32, id: u32) -> Entry {
    (u64::from(epoch as u32) << 32) | u64::from(id)
}

fn epoch_of(e: Entry) -> i32 {
    (e >> 32) as i32
}

fn id_of(e: Entry) -> u32 {
    e as u32
}

fn len(log: &[Entry]) -> i64 {
    log.len() as i64
}

/// The log as epoch runs, `epoch x count`, for failure reports.
fn runs(log: &[Entry]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < log.len() {
        let e = epoch_of(log[i]);
        let n = log[i..].iter().take_while(|x| epoch_of(**x) == e).count();
        let _ = write!(out, "e{e}x{n} ");
        i += n;
    }
    out
}

/// storage's `LeaderEpochs` (Kafka's `LeaderEpochFileCache`): for each epoch
/// that wrote to the log, the first offset it wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Epochs {
    entries: Vec<(i32, i64)>,
}

impl Epochs {
    fn assign(&mut self, epoch: i32, start: i64) {
        if epoch < 0 || start < 0 || epoch <= self.latest() {
            return;
        }
        while self.entries.last().is_some_and(|&(_, s)| s >= start) {
            self.entries.pop();
        }
        self.entries.push((epoch, start));
    }

    /// -1 when empty.
    fn latest(&self) -> i32 {
        self.entries.last().map_or(-1, |e| e.0)
    }

    fn end_offset_for(&self, epoch: i32, log_end: i64) -> EpochEnd {
        if epoch == -1 {
            return UNDEFINED_EPOCH_END;
        }
        if self.entries.last().is_some_and(|e| e.0 == epoch) {
            return EpochEnd {
                epoch,
                end_offset: log_end,
            };
        }
        let higher = self.entries.partition_point(|e| e.0 <= epoch);
        let Some(&(_, next_start)) = self.entries.get(higher) else {
            return UNDEFINED_EPOCH_END;
        };
        let epoch = higher.checked_sub(1).map_or(epoch, |f| self.entries[f].0);
        EpochEnd {
            epoch,
            end_offset: next_start,
        }
    }

    fn truncate_from_end(&mut self, end: i64) {
        let keep = self.entries.partition_point(|e| e.1 < end);
        self.entries.truncate(keep);
    }

    fn clear(&mut self) {
        self.entries.clear();
    }
}

/// One record of the controller's metadata log, as a snapshot of what the
/// partition and the brokers' fencing are after it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Image {
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
    fenced: [bool; 3],
}

/// The active controller: its metadata log, every decision committed at
/// once (the quorum is another simulation's business).
struct Controller {
    log: Vec<Image>,
}

impl Controller {
    fn current(&self) -> &Image {
        self.log
            .last()
            .expect("the log starts with the topic's creation")
    }

    fn unfenced(&self, broker: i32) -> bool {
        !self.current().fenced[at(broker)]
    }

    fn set_fenced(&mut self, broker: i32, fenced: bool) {
        let mut next = self.current().clone();
        next.fenced[at(broker)] = fenced;
        self.log.push(next);
    }

    /// A PartitionChange record, unless nothing changes: a new leader bumps
    /// the leader epoch, every change the partition epoch.
    fn change(&mut self, leader: i32, isr: Vec<i32>) -> bool {
        let current = self.current();
        if leader == current.leader && isr == current.isr {
            return false;
        }
        let mut next = current.clone();
        if leader != current.leader {
            next.leader_epoch += 1;
        }
        next.partition_epoch += 1;
        next.leader = leader;
        next.isr = isr;
        self.log.push(next);
        true
    }

    /// leadership.rs `elect`: the current leader while acceptable and in
    /// the ISR, else the first replica in the ISR and acceptable, else -1.
    fn elect(&self, isr: &[i32], acceptable: impl Fn(i32) -> bool) -> i32 {
        let leader = self.current().leader;
        if leader != -1 && isr.contains(&leader) && acceptable(leader) {
            return leader;
        }
        REPLICAS
            .iter()
            .copied()
            .find(|r| isr.contains(r) && acceptable(*r))
            .unwrap_or(-1)
    }

    /// Kafka's handleBrokerFenced (`elect_without`). Whether the leader
    /// changed.
    fn fence(&mut self, broker: i32) -> bool {
        self.set_fenced(broker, true);
        let current = self.current().clone();
        if !current.isr.contains(&broker) && current.leader != broker {
            return false;
        }
        let mut isr: Vec<i32> = current
            .isr
            .iter()
            .copied()
            .filter(|&r| r != broker)
            .collect();
        if isr.is_empty() {
            isr = current.isr.clone();
        }
        let leader = self.elect(&isr, |r| r != broker && self.unfenced(r));
        self.change(leader, isr);
        leader != current.leader
    }

    /// Kafka's handleBrokerUnfenced (`elect_returning`). Whether a leader
    /// was elected.
    fn unfence(&mut self, broker: i32) -> bool {
        self.set_fenced(broker, false);
        let current = self.current().clone();
        if current.leader != -1 {
            return false;
        }
        let leader = self.elect(&current.isr, |r| r == broker || self.unfenced(r));
        self.change(leader, current.isr)
    }

    /// ReplicationControlManager.alterPartition (`alter_partition`,
    /// `check_alter`): the committed (partition epoch, ISR), or why not.
    fn alter(&mut self, from: i32, ask: &IsrChange) -> Result<(i32, Vec<i32>), &'static str> {
        let current = self.current().clone();
        if from != current.leader {
            return Err("NOT_LEADER");
        }
        if ask.leader_epoch != current.leader_epoch {
            return Err("FENCED_LEADER_EPOCH");
        }
        if ask.partition_epoch != current.partition_epoch {
            return Err("INVALID_UPDATE_VERSION");
        }
        let distinct: BTreeSet<i32> = ask.isr.iter().copied().collect();
        if ask.isr.is_empty()
            || distinct.len() != ask.isr.len()
            || !ask.isr.iter().all(|r| REPLICAS.contains(r))
            || !ask.isr.contains(&current.leader)
        {
            return Err("INVALID_REQUEST");
        }
        let joining = ask.isr.iter().filter(|r| !current.isr.contains(r));
        if joining.clone().any(|&r| !self.unfenced(r)) {
            return Err("INELIGIBLE_REPLICA");
        }
        let same: BTreeSet<i32> = current.isr.iter().copied().collect();
        if same == distinct {
            return Ok((current.partition_epoch, current.isr));
        }
        self.change(current.leader, ask.isr.clone());
        let after = self.current();
        Ok((after.partition_epoch, after.isr.clone()))
    }
}

#[derive(Debug)]
enum Role {
    None,
    Follower { leader: i32, epoch: i32 },
    Leader(Box<LeaderState>),
}

/// A leader's answer to a follower's fetch, on its way back.
#[derive(Debug, Clone)]
enum Answer {
    Diverging(EpochEnd),
    OutOfRange,
    Records {
        base: i64,
        entries: Vec<Entry>,
        high_watermark: i64,
    },
}

#[derive(Debug)]
struct InFlight {
    /// The leadership the follower fetched from.
    leader: i32,
    epoch: i32,
    answer: Answer,
}

struct Broker {
    id: i32,
    alive: bool,
    /// Bumped at every crash: what a process sent dies with it.
    incarnation: u32,
    log: Vec<Entry>,
    durable: usize,
    epochs: Epochs,
    high_watermark: i64,
    role: Role,
    /// Metadata records applied.
    applied: usize,
    /// The metadata index it must reach to be unfenced (registration).
    registered_at: usize,
    fetch: Option<InFlight>,
}

impl Broker {
    fn leader(&self) -> Option<&LeaderState> {
        match &self.role {
            Role::Leader(state) if self.alive => Some(state),
            _ => None,
        }
    }

    fn leader_mut(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            Role::Leader(state) if self.alive => Some(state),
            _ => None,
        }
    }

    fn role_text(&self) -> String {
        if !self.alive {
            return "down".into();
        }
        match &self.role {
            Role::None => "none".into(),
            Role::Follower { leader, epoch } => format!("follows {leader}@e{epoch}"),
            Role::Leader(s) => format!(
                "leads e{} pe{} isr {:?} maximal {:?} hw {}",
                s.leader_epoch(),
                s.partition_epoch(),
                s.isr(),
                s.maximal_isr(),
                s.high_watermark()
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AlterState {
    Queued,
    Answered(Result<(i32, Vec<i32>), &'static str>),
    /// The answer was lost: the caller times out.
    Lost,
}

struct Alter {
    from: i32,
    incarnation: u32,
    change: IsrChange,
    sent_at: u64,
    state: AlterState,
}

struct Write {
    broker: i32,
    incarnation: u32,
    leader_epoch: i32,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Write,
    Fetch,
    Answer,
    LongPoll,
    LoseAnswer,
    Fsync,
    Tick,
    Expire,
    AlterArrives,
    AlterAnswered,
    AlterAnswerLost,
    AlterTimeout,
    Metadata,
    Crash,
    Restart,
    SessionExpires,
    FenceLive,
    Unfence,
}

/// (action, base weight, may the swarm switch it off for a seed).
const ACTIONS: [(Action, u32, bool); 18] = [
    (Action::Write, 20, false),
    (Action::Fetch, 40, false),
    (Action::Answer, 40, false),
    (Action::LongPoll, 6, true),
    (Action::LoseAnswer, 3, true),
    (Action::Fsync, 30, false),
    (Action::Tick, 16, false),
    (Action::Expire, 8, true),
    (Action::AlterArrives, 12, false),
    (Action::AlterAnswered, 12, false),
    (Action::AlterAnswerLost, 2, true),
    (Action::AlterTimeout, 6, false),
    (Action::Metadata, 24, false),
    (Action::Crash, 2, true),
    (Action::Restart, 6, false),
    (Action::SessionExpires, 6, false),
    (Action::FenceLive, 4, true),
    (Action::Unfence, 6, false),
];

#[derive(Debug, Default, Clone)]
struct Stats {
    seeds: u64,
    steps: u64,
    acked: u64,
    failed_writes: u64,
    elections: u64,
    crashes: u64,
    truncations: u64,
    restarts_at_start: u64,
    isr_changes: u64,
    refusals: u64,
    exposures: u64,
    /// Writes taken by a broker leading at an epoch the controller left.
    zombie_writes: u64,
    /// Truncations that cut entries of more than one epoch.
    deep_truncations: u64,
    /// Elections after at least one write was acknowledged.
    failovers_after_acks: u64,
    heal_rounds: u64,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.seeds += other.seeds;
        self.steps += other.steps;
        self.acked += other.acked;
        self.failed_writes += other.failed_writes;
        self.elections += other.elections;
        self.crashes += other.crashes;
        self.truncations += other.truncations;
        self.restarts_at_start += other.restarts_at_start;
        self.isr_changes += other.isr_changes;
        self.refusals += other.refusals;
        self.exposures += other.exposures;
        self.zombie_writes += other.zombie_writes;
        self.deep_truncations += other.deep_truncations;
        self.failovers_after_acks += other.failovers_after_acks;
        self.heal_rounds += other.heal_rounds;
    }
}

struct Sim {
    seed: u64,
    rng: StdRng,
    now: u64,
    step: usize,
    brokers: Vec<Broker>,
    controller: Controller,
    alters: Vec<Alter>,
    writes: Vec<Write>,
    /// (offset, entry) of every acknowledged write.
    acked: Vec<(usize, Entry)>,
    /// Ids of entries the high watermark passed while they were not durable
    /// on a leader that then crashed (invariant 2's exemption).
    exposed: BTreeSet<u32>,
    next_id: u32,
    min_insync: usize,
    weights: Vec<(Action, u32)>,
    /// Per broker: (incarnation, leader epoch, high watermark) last seen.
    leader_hw: [(u32, i32, i64); 3],
    trace: Vec<String>,
    violation: Option<String>,
    restart: Restart,
    /// Refusals at the asker's epochs go to `change_refused` (else all to
    /// `change_failed`, as `Core::alter_isr` does today).
    refused_wiring: bool,
    stats: Stats,
}

/// How a restarted broker takes its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// Kafka's start-up: it registers (the controller fences the old
    /// incarnation, which moves its leaderships to a new epoch) and takes
    /// no role until its metadata caught up with that registration.
    Registered,
    /// `Core::open` as it is: the image the broker has locally is applied
    /// at once, before registering, so it may lead again at its old leader
    /// epoch with a log that lost its unflushed tail.
    StaleImage,
}

impl Sim {
    fn new(seed: u64, restart: Restart) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        // Swarm testing: each seed leans on some faults and leaves others
        // out.
        let weights = ACTIONS
            .iter()
            .map(|&(action, weight, optional)| {
                let factor = if optional && rng.gen_bool(0.25) {
                    0
                } else {
                    rng.gen_range(1..=3)
                };
                (action, weight * factor)
            })
            .collect();
        let min_insync = rng.gen_range(1..=2);
        let refused_wiring = rng.gen_bool(0.5);
        let image = Image {
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: REPLICAS.to_vec(),
            fenced: [false; 3],
        };
        let brokers = REPLICAS
            .iter()
            .map(|&id| Broker {
                id,
                alive: true,
                incarnation: 0,
                log: Vec::new(),
                durable: 0,
                epochs: Epochs::default(),
                high_watermark: 0,
                role: Role::None,
                applied: 0,
                registered_at: 1,
                fetch: None,
            })
            .collect();
        let mut sim = Sim {
            seed,
            rng,
            now: 1_000,
            step: 0,
            brokers,
            controller: Controller { log: vec![image] },
            alters: Vec::new(),
            writes: Vec::new(),
            acked: Vec::new(),
            exposed: BTreeSet::new(),
            next_id: 1,
            min_insync,
            weights,
            leader_hw: [(0, -1, 0); 3],
            trace: Vec::new(),
            violation: None,
            restart,
            refused_wiring,
            stats: Stats::default(),
        };
        sim.note(format!(
            "seed {seed}: min.insync.replicas {min_insync}, refusals to change_refused: {refused_wiring}"
        ));
        for i in 0..3 {
            sim.apply_metadata(i, 1);
        }
        sim
    }

    fn note(&mut self, line: String) {
        self.trace
            .push(format!("[{} t={}] {line}", self.step, self.now));
    }

    fn violated(&mut self, what: String) {
        if self.violation.is_none() {
            self.violation = Some(what);
        }
    }

    /// Runs the seed: the random schedule, then the heal. Err: the report.
    fn run(&mut self) -> Result<(), String> {
        for _ in 0..STEPS {
            self.step += 1;
            self.random_step();
            self.resolve_writes();
            self.check()?;
        }
        self.heal()
    }

    fn report(&self, what: &str) -> String {
        let mode = match self.restart {
            Restart::Registered => "",
            Restart::StaleImage => "SLUICE_REPL_SIM_RESTART=stale ",
        };
        let mut out = format!(
            "replication sim: seed {} step {}: {what}\n  reproduce: {mode}SLUICE_REPL_SIM_SEED={} cargo test -p replication --test sim -- --nocapture\n",
            self.seed, self.step, self.seed
        );
        let c = self.controller.current();
        let _ = writeln!(
            out,
            "  controller: leader {} e{} pe{} isr {:?} fenced {:?} (record {})",
            c.leader,
            c.leader_epoch,
            c.partition_epoch,
            c.isr,
            c.fenced,
            self.controller.log.len()
        );
        for b in &self.brokers {
            let _ = writeln!(
                out,
                "  broker {}: {}; log {} [{}] durable {} hw {} epochs {:?} applied {}",
                b.id,
                b.role_text(),
                b.log.len(),
                runs(&b.log).trim_end(),
                b.durable,
                b.high_watermark,
                b.epochs.entries,
                b.applied
            );
        }
        let _ = writeln!(out, "  acked: {} writes", self.acked.len());
        let skip = self.trace.len().saturating_sub(TRACE_SHOWN);
        out.push_str("  last steps:\n");
        for line in &self.trace[skip..] {
            let _ = writeln!(out, "    {line}");
        }
        out
    }

    fn weighted_action(&mut self) -> Action {
        let total: u32 = self.weights.iter().map(|w| w.1).sum();
        let mut pick = self.rng.gen_range(0..total);
        for &(action, weight) in &self.weights {
            if pick < weight {
                return action;
            }
            pick -= weight;
        }
        Action::Tick
    }

    /// A broker for which `applies` holds, at random; None if there is none.
    fn pick(&mut self, applies: impl Fn(&Sim, &Broker) -> bool) -> Option<usize> {
        let found: Vec<usize> = (0..3)
            .filter(|&i| applies(self, &self.brokers[i]))
            .collect();
        if found.is_empty() {
            return None;
        }
        Some(found[self.rng.gen_range(0..found.len())])
    }

    fn random_step(&mut self) {
        let action = self.weighted_action();
        let records = self.controller.log.len();
        let target = match action {
            Action::Write | Action::Expire => self.pick(|_, b| b.leader().is_some()),
            Action::Fetch => self.pick(|_, b| {
                b.alive
                    && b.fetch.is_none()
                    && b.durable == b.log.len()
                    && matches!(b.role, Role::Follower { .. })
            }),
            Action::Answer | Action::LoseAnswer | Action::LongPoll => {
                self.pick(|_, b| b.fetch.is_some())
            }
            Action::Fsync => self.pick(|_, b| b.alive && b.durable < b.log.len()),
            Action::Metadata => self.pick(|_, b| b.alive && b.applied < records),
            Action::Crash => self.pick(|_, b| b.alive),
            Action::Restart => self.pick(|_, b| !b.alive),
            Action::SessionExpires => self.pick(|sim, b| !b.alive && sim.controller.unfenced(b.id)),
            Action::FenceLive => self.pick(|sim, b| b.alive && sim.controller.unfenced(b.id)),
            Action::Unfence => self.pick(|sim, b| {
                b.alive && !sim.controller.unfenced(b.id) && b.applied >= b.registered_at
            }),
            Action::Tick
            | Action::AlterArrives
            | Action::AlterAnswered
            | Action::AlterAnswerLost
            | Action::AlterTimeout => Some(0),
        };
        let Some(i) = target else {
            return;
        };
        match action {
            Action::Write => self.write(i),
            Action::Fetch => self.fetch(i),
            Action::Answer => self.take_answer(i),
            Action::LongPoll => self.long_poll(i),
            Action::LoseAnswer => {
                if self.brokers[i].fetch.take().is_some() {
                    self.note(format!("broker {}: fetch answer lost", i + 1));
                }
            }
            Action::Fsync => self.fsync(i),
            Action::Tick => {
                let by = self.rng.gen_range(1..=3_000);
                self.now += by;
            }
            Action::Expire => self.expire(i),
            Action::AlterArrives => self.alter_arrives(),
            Action::AlterAnswered => self.alter_answered(),
            Action::AlterAnswerLost => self.alter_answer_lost(),
            Action::AlterTimeout => self.alter_timeouts(),
            Action::Metadata => {
                let n = self.rng.gen_range(1..=3);
                self.apply_metadata(i, n);
            }
            Action::Crash => self.crash(i),
            Action::Restart => self.restart(i),
            Action::SessionExpires => self.fence(i, "session expired"),
            Action::FenceLive => self.fence(i, "session lost while alive"),
            Action::Unfence => self.unfence(i),
        }
    }

    // ---- the broker ----

    /// The broker's view of the fenced brokers (its applied image).
    fn eligible_from(&self, i: usize) -> [bool; 3] {
        let image = &self.controller.log[self.brokers[i].applied.max(1) - 1];
        [!image.fenced[0], !image.fenced[1], !image.fenced[2]]
    }

    fn apply_metadata(&mut self, i: usize, n: usize) {
        if !self.brokers[i].alive {
            return;
        }
        for _ in 0..n {
            let b = &self.brokers[i];
            if b.applied >= self.controller.log.len() {
                return;
            }
            let image = self.controller.log[b.applied].clone();
            self.brokers[i].applied += 1;
            let b = &self.brokers[i];
            // Registered start-up: nothing before the registration's image.
            if self.restart == Restart::Registered && b.applied < b.registered_at {
                continue;
            }
            self.apply_assignment(i, &image);
        }
    }

    /// `Partition::apply_assignment`.
    fn apply_assignment(&mut self, i: usize, image: &Image) {
        let now = self.now;
        let b = &mut self.brokers[i];
        let me = b.id;
        let same_leadership =
            matches!(&b.role, Role::Leader(s) if s.leader_epoch() == image.leader_epoch);
        if image.leader == me && same_leadership {
            if let Role::Leader(state) = &mut b.role {
                state.update(
                    image.partition_epoch,
                    REPLICAS.to_vec(),
                    image.isr.clone(),
                    now,
                );
            }
        } else if image.leader == me {
            // Log::begin_leader_epoch
            let latest = b.epochs.latest();
            if image.leader_epoch < latest {
                let what = format!(
                    "broker {me}: begin_leader_epoch({}) below the cache's latest {latest}",
                    image.leader_epoch
                );
                self.violated(what);
                return;
            }
            b.epochs.assign(image.leader_epoch, len(&b.log));
            b.role = Role::Leader(Box::new(LeaderState::new(
                me,
                image.leader_epoch,
                image.partition_epoch,
                REPLICAS.to_vec(),
                image.isr.clone(),
                b.high_watermark,
                len(&b.log),
                now,
            )));
            let line = format!(
                "broker {me}: leads e{} (log {}, hw {})",
                image.leader_epoch,
                b.log.len(),
                b.high_watermark
            );
            self.note(line);
        } else if image.leader >= 0 {
            b.role = Role::Follower {
                leader: image.leader,
                epoch: image.leader_epoch,
            };
        } else {
            b.role = Role::None;
        }
        self.advance_high_watermark(i);
    }

    fn advance_high_watermark(&mut self, i: usize) {
        let b = &mut self.brokers[i];
        let end = len(&b.log);
        if let Some(state) = b.leader_mut() {
            let hw = state.advance_high_watermark(end);
            b.high_watermark = hw.clamp(0, end);
        }
    }

    /// A client's acks=all produce to broker `i` (`Partition::produce`).
    fn write(&mut self, i: usize) {
        let n = self.rng.gen_range(1..=3);
        let b = &self.brokers[i];
        let Some(state) = b.leader() else {
            return;
        };
        let (isr, epoch) = (state.isr().len(), state.leader_epoch());
        if isr < self.min_insync {
            self.note(format!("broker {}: produce refused, isr {isr}", b.id));
            return;
        }
        if self.controller.current().leader_epoch != epoch {
            self.stats.zombie_writes += 1;
        }
        let start = b.log.len();
        let ids = self.next_id..self.next_id + n;
        self.next_id += n;
        let b = &mut self.brokers[i];
        b.log.extend(ids.map(|id| entry(epoch, id)));
        let write = Write {
            broker: b.id,
            incarnation: b.incarnation,
            leader_epoch: epoch,
            start,
            end: b.log.len(),
        };
        let line = format!("broker {}: write {start}..{} at e{epoch}", b.id, write.end);
        self.writes.push(write);
        self.advance_high_watermark(i);
        self.note(line);
    }

    /// acks=all outcomes (`wait_durable` then `wait_replicated`).
    fn resolve_writes(&mut self) {
        let mut k = 0;
        while k < self.writes.len() {
            let w = &self.writes[k];
            let b = &self.brokers[at(w.broker)];
            let outcome = if !b.alive || b.incarnation != w.incarnation {
                Some(false)
            } else {
                match b.leader() {
                    Some(s) if s.leader_epoch() == w.leader_epoch => {
                        if s.high_watermark() >= w.end as i64 && b.durable >= w.end {
                            Some(s.maximal_isr().len() >= self.min_insync)
                        } else {
                            None
                        }
                    }
                    _ => Some(false),
                }
            };
            match outcome {
                None => k += 1,
                Some(acked) => {
                    let w = self.writes.remove(k);
                    if acked {
                        let b = &self.brokers[at(w.broker)];
                        for offset in w.start..w.end {
                            self.acked.push((offset, b.log[offset]));
                        }
                        self.stats.acked += 1;
                        self.note(format!("broker {}: acked {}..{}", w.broker, w.start, w.end));
                    } else {
                        self.stats.failed_writes += 1;
                    }
                }
            }
        }
    }

    fn fsync(&mut self, i: usize) {
        let b = &mut self.brokers[i];
        if b.alive && b.durable < b.log.len() {
            b.durable = b.log.len();
        }
    }

    /// The leader's side of a fetch from follower `f`
    /// (`Partition::on_replica_fetch` and the read after it). None: refused
    /// (leader down, not the leader, another leader epoch).
    fn serve(&mut self, f: usize, leader: i32, epoch: i32) -> Option<Answer> {
        let l = at(leader);
        let follower = &self.brokers[f];
        let fetch_offset = len(&follower.log);
        let last_epoch = follower.epochs.latest();
        let lb = &self.brokers[l];
        let state = lb.leader()?;
        if state.leader_epoch() != epoch {
            return None;
        }
        let log_end = len(&lb.log);
        let leader_end = lb.epochs.end_offset_for(last_epoch.max(0), log_end);
        if let Some(diverging) = diverging_epoch(last_epoch, fetch_offset, leader_end) {
            if diverging.epoch < 0 {
                return Some(Answer::OutOfRange);
            }
            return Some(Answer::Diverging(diverging));
        }
        if fetch_offset > log_end {
            return Some(Answer::OutOfRange);
        }
        // Invariant 5: no divergence means the follower's log is the
        // leader's up to the fetch offset.
        if follower.log[..] != lb.log[..follower.log.len()] {
            let what = format!(
                "invariant 5: broker {} fetched at {fetch_offset} (last epoch {last_epoch}) without divergence but its log [{}] is not a prefix of leader {}'s [{}]",
                follower.id,
                runs(&follower.log),
                leader,
                runs(&lb.log)
            );
            self.violated(what);
        }
        let eligible = self.eligible_from(l);
        let now = self.now;
        let follower_id = self.brokers[f].id;
        let state = self.brokers[l].leader_mut().expect("checked above");
        state
            .on_fetch(follower_id, fetch_offset, log_end, now)
            .expect("every broker is a replica");
        self.advance_high_watermark(l);
        let lb = &mut self.brokers[l];
        let state = lb.leader_mut().expect("checked above");
        let change = state.propose_isr_change(log_end, now, u64::MAX, |r| eligible[at(r)]);
        let high_watermark = state.high_watermark();
        if let Some(change) = change {
            self.send_alter(l, change);
        }
        let lb = &self.brokers[l];
        let available = lb.log.len() - self.brokers[f].log.len();
        let n = self.rng.gen_range(1..=FETCH_MAX).min(available);
        let from = self.brokers[f].log.len();
        Some(Answer::Records {
            base: fetch_offset,
            entries: lb.log[from..from + n].to_vec(),
            high_watermark,
        })
    }

    /// Follower `i` fetches (once what it appended is durable).
    fn fetch(&mut self, i: usize) {
        let b = &self.brokers[i];
        if !b.alive || b.fetch.is_some() || b.durable < b.log.len() {
            return;
        }
        let Role::Follower { leader, epoch } = b.role else {
            return;
        };
        let Some(answer) = self.serve(i, leader, epoch) else {
            return;
        };
        self.note(format!(
            "broker {}: fetch at {} e{} from {leader}@e{epoch} -> {}",
            i + 1,
            self.brokers[i].log.len(),
            self.brokers[i].epochs.latest(),
            answer_text(&answer)
        ));
        self.brokers[i].fetch = Some(InFlight {
            leader,
            epoch,
            answer,
        });
    }

    /// A long-polling fetch (an empty answer not yet sent) is served again
    /// (`api::fetch::handle`'s loop).
    fn long_poll(&mut self, i: usize) {
        let Some(inflight) = &self.brokers[i].fetch else {
            return;
        };
        let (leader, epoch) = (inflight.leader, inflight.epoch);
        if !matches!(&inflight.answer, Answer::Records { entries, .. } if entries.is_empty()) {
            return;
        }
        let answer = self.serve(i, leader, epoch);
        self.note(format!(
            "broker {}: long poll at {} from {leader} -> {}",
            i + 1,
            self.brokers[i].log.len(),
            answer.as_ref().map_or("refused".into(), answer_text)
        ));
        match answer {
            Some(answer) => {
                if let Some(inflight) = &mut self.brokers[i].fetch {
                    inflight.answer = answer;
                }
            }
            None => self.brokers[i].fetch = None,
        }
    }

    /// Follower `i` takes its fetch answer (`Stream::take`).
    fn take_answer(&mut self, i: usize) {
        let Some(inflight) = self.brokers[i].fetch.take() else {
            return;
        };
        let b = &mut self.brokers[i];
        if !matches!(b.role, Role::Follower { leader, epoch }
            if leader == inflight.leader && epoch == inflight.epoch)
        {
            return;
        }
        match inflight.answer {
            Answer::OutOfRange => {
                // Partition::restart_at(leader's log start = 0)
                b.log.clear();
                b.durable = 0;
                b.epochs.clear();
                b.high_watermark = 0;
                self.stats.restarts_at_start += 1;
                self.note(format!("broker {}: restarts its log at 0", i + 1));
            }
            Answer::Diverging(diverging) => {
                let end = len(&b.log);
                let local = b.epochs.end_offset_for(diverging.epoch, end);
                let offset = truncation_offset(diverging, local, end, b.high_watermark);
                let cut = usize::try_from(offset.clamp(0, end)).unwrap_or(0);
                let mut epochs_cut: Vec<i32> = b.log[cut..].iter().map(|e| epoch_of(*e)).collect();
                epochs_cut.dedup();
                truncate_to(b, offset);
                self.stats.truncations += 1;
                if epochs_cut.len() > 1 {
                    self.stats.deep_truncations += 1;
                }
                let line = format!(
                    "broker {}: diverging {diverging:?}, local {local:?}: truncated {end} -> {}",
                    i + 1,
                    b.log.len()
                );
                self.note(line);
            }
            Answer::Records {
                base,
                entries,
                high_watermark,
            } => {
                if base != len(&b.log) {
                    let what = format!(
                        "model: broker {} got records at {base} with its log ending at {}",
                        i + 1,
                        b.log.len()
                    );
                    self.violated(what);
                    return;
                }
                for e in entries {
                    // Log::append_replicated: a newer epoch begins here.
                    b.epochs.assign(epoch_of(e), len(&b.log));
                    b.log.push(e);
                }
                // Partition::follow_high_watermark
                let hw = high_watermark.min(len(&b.log));
                if hw > b.high_watermark {
                    b.high_watermark = hw;
                }
            }
        }
    }

    /// A leader's ISR expiry (`Core::expire_isr_forever`).
    fn expire(&mut self, i: usize) {
        let eligible = self.eligible_from(i);
        let now = self.now;
        let b = &mut self.brokers[i];
        let end = len(&b.log);
        let Some(state) = b.leader_mut() else {
            return;
        };
        if let Some(change) = state.propose_isr_change(end, now, LAG_MAX_MS, |r| eligible[at(r)]) {
            self.send_alter(i, change);
        }
    }

    fn send_alter(&mut self, i: usize, change: IsrChange) {
        let (from, incarnation) = (self.brokers[i].id, self.brokers[i].incarnation);
        self.note(format!(
            "broker {from}: asks isr {:?} at e{} pe{}",
            change.isr, change.leader_epoch, change.partition_epoch
        ));
        self.alters.push(Alter {
            from,
            incarnation,
            change,
            sent_at: self.now,
            state: AlterState::Queued,
        });
    }

    fn pick_alter(&mut self, state: impl Fn(&AlterState) -> bool) -> Option<usize> {
        let found: Vec<usize> = (0..self.alters.len())
            .filter(|&k| state(&self.alters[k].state))
            .collect();
        if found.is_empty() {
            return None;
        }
        Some(found[self.rng.gen_range(0..found.len())])
    }

    fn alter_arrives(&mut self) {
        let Some(k) = self.pick_alter(|s| *s == AlterState::Queued) else {
            return;
        };
        let (from, change) = (self.alters[k].from, self.alters[k].change.clone());
        let result = self.controller.alter(from, &change);
        match &result {
            Ok((pe, isr)) => {
                self.stats.isr_changes += 1;
                self.note(format!("controller: isr {isr:?} pe{pe} for broker {from}"));
            }
            Err(why) => {
                self.stats.refusals += 1;
                self.note(format!(
                    "controller: refuses {:?} from {from}: {why}",
                    change.isr
                ));
            }
        }
        self.alters[k].state = AlterState::Answered(result);
    }

    /// The broker takes the controller's answer (`Core::alter_isr`).
    fn alter_answered(&mut self) {
        let Some(k) = self.pick_alter(|s| matches!(s, AlterState::Answered(_))) else {
            return;
        };
        let alter = self.alters.remove(k);
        let AlterState::Answered(result) = alter.state else {
            return;
        };
        let i = at(alter.from);
        if !self.brokers[i].alive || self.brokers[i].incarnation != alter.incarnation {
            return;
        }
        let now = self.now;
        let Some(state) = self.brokers[i].leader_mut() else {
            return;
        };
        match result {
            Ok((pe, isr)) => {
                state.update(pe, REPLICAS.to_vec(), isr, now);
                self.advance_high_watermark(i);
            }
            // core.rs today: every refusal is `change_failed`; the
            // refusals made at the asker's epochs may be `change_refused`.
            Err("INELIGIBLE_REPLICA" | "INVALID_REQUEST") if self.refused_wiring => {
                state.change_refused(&alter.change, now);
            }
            Err(_) => state.change_failed(now),
        }
    }

    fn alter_answer_lost(&mut self) {
        if let Some(k) = self.pick_alter(|s| matches!(s, AlterState::Answered(_))) {
            self.alters[k].state = AlterState::Lost;
            self.note(format!(
                "broker {}: AlterPartition answer lost",
                self.alters[k].from
            ));
        }
    }

    /// Calls past ALTER_PARTITION_TIMEOUT fail (`change_failed`); one that
    /// never reached the controller never commits.
    fn alter_timeouts(&mut self) {
        let now = self.now;
        let mut k = 0;
        while k < self.alters.len() {
            if self.alters[k].sent_at + ALTER_TIMEOUT_MS > now {
                k += 1;
                continue;
            }
            let alter = self.alters.remove(k);
            let i = at(alter.from);
            if self.brokers[i].alive && self.brokers[i].incarnation == alter.incarnation {
                if let Some(state) = self.brokers[i].leader_mut() {
                    state.change_failed(now);
                    self.note(format!("broker {}: AlterPartition timed out", alter.from));
                }
            }
        }
    }

    fn crash(&mut self, i: usize) {
        let sole_member = self.controller.current().isr == [i as i32 + 1];
        let b = &mut self.brokers[i];
        if !b.alive {
            return;
        }
        // What the high watermark passed that was not durable here, on the
        // ISR's only member: no other replica the protocol counts has it.
        let hw = usize::try_from(b.high_watermark)
            .unwrap_or(0)
            .min(b.log.len());
        if sole_member && hw > b.durable {
            self.stats.exposures += 1;
            self.exposed
                .extend(b.log[b.durable..hw].iter().map(|e| id_of(*e)));
        }
        b.alive = false;
        b.incarnation += 1;
        b.log.truncate(b.durable);
        b.epochs.truncate_from_end(len(&b.log));
        b.high_watermark = 0;
        b.role = Role::None;
        b.fetch = None;
        let line = format!("broker {}: crash (durable {})", i + 1, b.durable);
        self.stats.crashes += 1;
        self.note(line);
    }

    /// Restart: the log as recovered, its image applied
    /// (`Partition::open`, `Core::open`), registration with the controller
    /// (which fences the old incarnation).
    fn restart(&mut self, i: usize) {
        let b = &mut self.brokers[i];
        if b.alive {
            return;
        }
        b.alive = true;
        b.high_watermark = 0;
        b.role = Role::None;
        let applied = b.applied;
        self.note(format!("broker {}: restart", i + 1));
        if self.restart == Restart::StaleImage && applied > 0 {
            let image = self.controller.log[applied - 1].clone();
            self.apply_assignment(i, &image);
        }
        if self.controller.unfenced(i as i32 + 1) {
            self.fence(i, "registered again");
        }
        let registered_at = self.controller.log.len();
        self.brokers[i].registered_at = registered_at;
        if self.restart == Restart::Registered && applied >= registered_at {
            // Caught up already (nothing happened since it went down).
            let image = self.controller.log[applied - 1].clone();
            self.apply_assignment(i, &image);
        }
    }

    fn fence(&mut self, i: usize, why: &str) {
        let elected = self.controller.fence(i as i32 + 1);
        if elected {
            self.stats.elections += 1;
            if !self.acked.is_empty() {
                self.stats.failovers_after_acks += 1;
            }
        }
        let c = self.controller.current();
        let line = format!(
            "controller: fences {} ({why}): leader {} e{} isr {:?}",
            i + 1,
            c.leader,
            c.leader_epoch,
            c.isr
        );
        self.note(line);
    }

    fn unfence(&mut self, i: usize) {
        let b = &self.brokers[i];
        if !b.alive || self.controller.unfenced(b.id) || b.applied < b.registered_at {
            return;
        }
        if self.controller.unfence(b.id) {
            self.stats.elections += 1;
        }
        let c = self.controller.current();
        let line = format!(
            "controller: unfences {}: leader {} e{} isr {:?}",
            i + 1,
            c.leader,
            c.leader_epoch,
            c.isr
        );
        self.note(line);
    }

    // ---- invariants ----

    fn check(&mut self) -> Result<(), String> {
        if let Some(what) = self.violation.take() {
            return Err(self.report(&what));
        }
        if let Err(what) = self.invariants() {
            return Err(self.report(&what));
        }
        Ok(())
    }

    fn invariants(&mut self) -> Result<(), String> {
        let c = self.controller.current().clone();
        // 1. Acknowledged writes are on every ISR member.
        for &member in &c.isr {
            let log = &self.brokers[at(member)].log;
            for &(offset, e) in &self.acked {
                if log.get(offset) != Some(&e) {
                    return Err(format!(
                        "invariant 1: acknowledged entry e{} #{} at {offset} is not in the log of ISR member {member} (has {:?})",
                        epoch_of(e),
                        id_of(e),
                        log.get(offset).map(|x| (epoch_of(*x), id_of(*x)))
                    ));
                }
            }
        }
        // 2. Agreement below the high watermarks.
        for a in 0..3 {
            for b in a + 1..3 {
                let (x, y) = (&self.brokers[a], &self.brokers[b]);
                if !x.alive || !y.alive {
                    continue;
                }
                let below = x.high_watermark.min(y.high_watermark).max(0) as usize;
                let below = below.min(x.log.len()).min(y.log.len());
                if x.log[..below] == y.log[..below] {
                    continue;
                }
                for o in 0..below {
                    let (ex, ey) = (x.log[o], y.log[o]);
                    if ex != ey
                        && !self.exposed.contains(&id_of(ex))
                        && !self.exposed.contains(&id_of(ey))
                    {
                        return Err(format!(
                            "invariant 2: brokers {} and {} disagree at {o} (e{} #{} vs e{} #{}) below their high watermarks {} and {}",
                            x.id, y.id, epoch_of(ex), id_of(ex), epoch_of(ey), id_of(ey),
                            x.high_watermark, y.high_watermark
                        ));
                    }
                }
            }
        }
        // 3. and 4. on every leader.
        for i in 0..3 {
            let b = &self.brokers[i];
            let Some(s) = b.leader() else {
                continue;
            };
            let hw = s.high_watermark();
            if hw > len(&b.log) {
                return Err(format!(
                    "invariant 3: broker {}'s high watermark {hw} is past its log end {}",
                    b.id,
                    b.log.len()
                ));
            }
            let (inc, epoch, last) = self.leader_hw[i];
            if inc == b.incarnation && epoch == s.leader_epoch() && hw < last {
                return Err(format!(
                    "invariant 3: broker {}'s high watermark went back from {last} to {hw} in e{epoch}",
                    b.id
                ));
            }
            self.leader_hw[i] = (b.incarnation, s.leader_epoch(), hw);
            if !s.isr().contains(&b.id) || !s.maximal_isr().contains(&b.id) {
                return Err(format!(
                    "invariant 4: broker {} leads with ISR {:?} (maximal {:?})",
                    b.id,
                    s.isr(),
                    s.maximal_isr()
                ));
            }
        }
        if c.leader != -1 && !c.isr.contains(&c.leader) {
            return Err(format!(
                "invariant 4: the controller's leader {} is not in its ISR {:?}",
                c.leader, c.isr
            ));
        }
        if c.isr.is_empty() {
            return Err("invariant 4: the controller's ISR is empty".into());
        }
        // 6. The leader's maximal ISR covers the committed one.
        if c.leader != -1 {
            let b = &self.brokers[at(c.leader)];
            if let Some(s) = b.leader().filter(|s| s.leader_epoch() == c.leader_epoch) {
                let maximal = s.maximal_isr();
                if let Some(missing) = c.isr.iter().find(|r| !maximal.contains(r)) {
                    return Err(format!(
                        "invariant 6: the controller's ISR {:?} (pe{}) holds {missing}, which leader {}'s maximal ISR {maximal:?} (pe{}) lacks: the high watermark may pass it",
                        c.isr, c.partition_epoch, c.leader, s.partition_epoch()
                    ));
                }
            }
        }
        // 7. Model sanity.
        for b in &self.brokers {
            if b.durable > b.log.len() || b.high_watermark > len(&b.log) || b.high_watermark < 0 {
                return Err(format!("model: broker {} durable/hw outside its log", b.id));
            }
            let mut expected = Epochs::default();
            for (o, e) in b.log.iter().enumerate() {
                if expected.latest() != epoch_of(*e) {
                    expected.entries.push((epoch_of(*e), o as i64));
                }
            }
            let cache = &b.epochs.entries;
            let consistent = cache[..] == expected.entries[..]
                || (cache.len() == expected.entries.len() + 1
                    && cache[..expected.entries.len()] == expected.entries[..]
                    && cache
                        .last()
                        .is_some_and(|&(e, s)| e > expected.latest() && s == len(&b.log)));
            if !consistent {
                return Err(format!(
                    "model: broker {}'s epoch cache {:?} does not describe its log [{}]",
                    b.id,
                    cache,
                    runs(&b.log)
                ));
            }
        }
        Ok(())
    }

    // ---- liveness ----

    /// Everything healed: rounds of every useful step, no faults, until the
    /// logs agree and the ISR is whole; then one more write must be acked.
    fn heal(&mut self) -> Result<(), String> {
        self.note("heal".into());
        let mut converged_at = None;
        let mut probe: Option<(usize, Entry)> = None;
        for round in 0..HEAL_ROUNDS {
            self.step += 1;
            self.stats.heal_rounds += 1;
            for i in 0..3 {
                self.restart(i);
            }
            self.heal_round();
            self.resolve_writes();
            self.check()?;
            if converged_at.is_none() && self.converged() {
                converged_at = Some(round);
                let leader = at(self.controller.current().leader);
                let end = self.brokers[leader].log.len();
                self.write(leader);
                let b = &self.brokers[leader];
                if b.log.len() == end {
                    return Err(self.report("liveness: the healed leader refused a write"));
                }
                probe = Some((end, b.log[end]));
            }
            if let Some((offset, e)) = probe {
                if self.acked.contains(&(offset, e)) {
                    return Ok(());
                }
                if self.writes.is_empty() {
                    return Err(self.report("liveness: the write after healing failed"));
                }
            }
        }
        let what = match converged_at {
            None => format!("liveness: not converged after {HEAL_ROUNDS} healed rounds"),
            Some(round) => {
                format!("liveness: converged at round {round} but the next write was not acked")
            }
        };
        Err(self.report(&what))
    }

    fn heal_round(&mut self) {
        for i in 0..3 {
            self.apply_metadata(i, usize::MAX);
        }
        for i in 0..3 {
            self.unfence(i);
        }
        for i in 0..3 {
            self.apply_metadata(i, usize::MAX);
        }
        while self.alters.iter().any(|a| a.state == AlterState::Queued) {
            self.alter_arrives();
        }
        while self
            .alters
            .iter()
            .any(|a| matches!(a.state, AlterState::Answered(_)))
        {
            self.alter_answered();
        }
        self.alter_timeouts();
        for i in 0..3 {
            self.apply_metadata(i, usize::MAX);
        }
        for i in 0..3 {
            self.fetch(i);
            self.take_answer(i);
            self.fsync(i);
        }
        for i in 0..3 {
            self.expire(i);
        }
        self.now += 1_000;
    }

    fn converged(&self) -> bool {
        let c = self.controller.current();
        if c.leader == -1 || c.isr.len() != 3 || !self.alters.is_empty() {
            return false;
        }
        let leader = &self.brokers[at(c.leader)];
        let Some(s) = leader.leader() else {
            return false;
        };
        s.leader_epoch() == c.leader_epoch
            && s.isr().len() == 3
            && !s.has_pending_change()
            && self
                .brokers
                .iter()
                .all(|b| b.alive && b.log == leader.log && b.applied == self.controller.log.len())
    }
}

/// `Log::truncate_to` (after `flush_pending`): at or past the end only the
/// cache's trailing entries go; at the log start the log restarts empty.
fn truncate_to(b: &mut Broker, offset: i64) {
    let end = len(&b.log);
    if offset >= end {
        b.durable = b.log.len();
        b.epochs.truncate_from_end(end);
    } else if offset <= 0 {
        b.log.clear();
        b.durable = 0;
        b.high_watermark = 0;
        b.epochs.clear();
    } else {
        let keep = usize::try_from(offset).expect("positive");
        b.log.truncate(keep);
        b.durable = keep;
        b.high_watermark = b.high_watermark.min(offset);
        b.epochs.truncate_from_end(offset);
    }
}

fn answer_text(answer: &Answer) -> String {
    match answer {
        Answer::Diverging(d) => format!("diverging e{} end {}", d.epoch, d.end_offset),
        Answer::OutOfRange => "out of range".into(),
        Answer::Records {
            base,
            entries,
            high_watermark,
        } => format!("{} records at {base}, hw {high_watermark}", entries.len()),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value}: not a number")),
    )
}

fn run_seed(seed: u64, restart: Restart) -> (Result<(), String>, Stats, Vec<String>) {
    let mut sim = Sim::new(seed, restart);
    let result = sim.run();
    sim.stats.seeds = 1;
    sim.stats.steps = sim.step as u64;
    (result, sim.stats, sim.trace)
}

fn restart_mode() -> Restart {
    match std::env::var("SLUICE_REPL_SIM_RESTART").as_deref() {
        Ok("stale") => Restart::StaleImage,
        _ => Restart::Registered,
    }
}

#[test]
fn seeded_fault_schedules_keep_the_replication_invariants() {
    if let Some(seed) = env_u64("SLUICE_REPL_SIM_SEED") {
        let (result, stats, trace) = run_seed(seed, restart_mode());
        for line in &trace {
            println!("{line}");
        }
        println!("{stats:?}");
        if let Err(report) = result {
            panic!("{report}");
        }
        return;
    }
    let seeds = env_u64("SLUICE_REPL_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let started = std::time::Instant::now();
    let mut total = Stats::default();
    for seed in 0..seeds {
        let (result, stats, _) = run_seed(seed, restart_mode());
        if let Err(report) = result {
            panic!("{report}");
        }
        total.add(&stats);
    }
    eprintln!("replication sim: {total:?} in {:?}", started.elapsed());
    // The schedules must actually reach the interesting cases.
    assert!(total.acked > total.seeds, "{total:?}");
    assert!(total.elections > 0 && total.truncations > 0, "{total:?}");
    assert!(total.isr_changes > 0 && total.refusals > 0, "{total:?}");
}

#[test]
fn a_seed_replays_the_same_schedule() {
    let (first, _, trace) = run_seed(42, Restart::Registered);
    let (second, _, again) = run_seed(42, Restart::Registered);
    assert_eq!(first.is_ok(), second.is_ok());
    assert_eq!(trace, again);
}

#[test]
fn the_epoch_cache_answers_as_storage_does() {
    // Mirrors storage/src/epochs.rs: floor epoch and the next start; the
    // latest ends at the log end; above the latest or undefined: undefined;
    // below the earliest: the asked epoch at the earliest start.
    let mut cache = Epochs::default();
    cache.assign(2, 0);
    cache.assign(5, 10);
    cache.assign(7, 20);
    let end = |epoch, end_offset| EpochEnd { epoch, end_offset };
    assert_eq!(cache.end_offset_for(5, 30), end(5, 20));
    assert_eq!(cache.end_offset_for(6, 30), end(5, 20));
    assert_eq!(cache.end_offset_for(7, 30), end(7, 30));
    assert_eq!(cache.end_offset_for(8, 30), UNDEFINED_EPOCH_END);
    assert_eq!(cache.end_offset_for(-1, 30), UNDEFINED_EPOCH_END);
    assert_eq!(cache.end_offset_for(1, 30), end(1, 0));
    // A newer epoch starting where others start replaces them.
    cache.assign(9, 20);
    assert_eq!(cache.entries, vec![(2, 0), (5, 10), (9, 20)]);
    cache.truncate_from_end(10);
    assert_eq!(cache.entries, vec![(2, 0)]);
}

/// The broker's start-up as it is (`Core::open` applies the local image
/// before registering): a leader that crashed with unflushed writes may
/// come back leading at the same epoch, append other entries at the
/// offsets its followers still hold from before, and the divergence check
/// (which compares epochs) cannot tell. The checker must catch it.
#[test]
fn leading_again_at_the_old_epoch_after_a_restart_is_caught() {
    let caught = (0..DEFAULT_SEEDS).find_map(|seed| run_seed(seed, Restart::StaleImage).0.err());
    let report = caught.expect("some seed catches the stale restart");
    assert!(report.contains("invariant"), "{report}");
}
