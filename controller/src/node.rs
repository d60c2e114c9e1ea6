//! One voter of the controller quorum: raft-rs's `RawNode` over the durable
//! `RaftStore`, the metadata image it applies, and (while it leads) the
//! controller's decisions. No sockets and no clock: the caller feeds ticks
//! with the time, peer messages and requests, and takes back the messages to
//! send, the entries applied and the answers. That is what lets the
//! simulation in tests/it/sim.rs drive several nodes with a seeded network.
//!
//! Durability: `poll` writes new entries and the hard state and syncs the
//! store before it hands out the messages that acknowledge them (votes,
//! append responses), raft-rs's "persisted messages" rule.

use crate::decide::{self, ControllerError, Decision, Request, Response, Sessions};
use crate::image::MetadataImage;
use crate::leadership;
use crate::records::{self, MetadataRecord};
use crate::store::{RaftStore, StoreError};
use raft::prelude::{Entry, EntryType, Message};
use raft::{RawNode, StateRole};
use rand::SeedableRng;
use std::collections::VecDeque;
use std::time::Duration;

pub type Answer = Result<(u64, Response), ControllerError>;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: u64,
    pub voters: Vec<u64>,
    /// Ticks without a leader before a follower campaigns (randomized up
    /// to twice this by raft-rs).
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub session_timeout_ms: u64,
    /// Entries applied since the last snapshot before the next one is taken.
    pub snapshot_entries: u64,
    pub seed: u64,
    /// While leading, move leaders back to preferred replicas every
    /// interval when a broker's imbalance is over the percentage
    /// (`leadership::rebalance_leaders`); None: never.
    pub leader_rebalance: Option<(Duration, u32)>,
}

/// What one `poll` produced.
#[derive(Debug, Default)]
pub struct Output {
    pub messages: Vec<Message>,
    /// Entries applied to the image, in order: (index, records), Raft's
    /// own entries included (with no records).
    pub applied: Vec<(u64, Vec<MetadataRecord>)>,
    /// (token, answer) for submitted requests.
    pub answers: Vec<(u64, Answer)>,
}

struct InFlight {
    token: u64,
    /// The answer once the entry at `index` applies.
    response: Response,
    index: u64,
    term: u64,
}

pub struct Node {
    raw: RawNode<RaftStore>,
    config: NodeConfig,
    image: MetadataImage,
    sessions: Sessions,
    rng: rand::rngs::StdRng,
    now_ms: u64,
    /// While leading: the index of this term's first entry; decisions wait
    /// until it has applied, so they see every earlier commit.
    term_start: Option<u64>,
    /// While leading: when the next leader rebalance is due.
    rebalance_due_ms: u64,
    queue: VecDeque<(u64, Request)>,
    in_flight: Option<InFlight>,
    answers: Vec<(u64, Answer)>,
}

/// Token of the leader's own proposals (fencing expired sessions, leader
/// rebalance).
const INTERNAL: u64 = 0;

impl Node {
    pub fn open(config: NodeConfig, store: RaftStore) -> Result<Node, StoreError> {
        let image =
            MetadataImage::decode(&store.snapshot().data).map_err(|e| StoreError::Corrupt {
                path: "snapshot".into(),
                offset: 0,
                reason: e.to_string(),
            })?;
        let raft_config = raft::Config {
            id: config.id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            applied: store.snapshot().get_metadata().index,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut raw = RawNode::new(&raft_config, store, &logger)?;
        if config.voters == [config.id] {
            // Alone: no one to wait for.
            raw.campaign()?;
        }
        Ok(Node {
            raw,
            sessions: Sessions::new(config.session_timeout_ms),
            rng: rand::rngs::StdRng::seed_from_u64(config.seed),
            config,
            image,
            now_ms: 0,
            term_start: None,
            rebalance_due_ms: 0,
            queue: VecDeque::new(),
            in_flight: None,
            answers: Vec::new(),
        })
    }

    pub fn id(&self) -> u64 {
        self.config.id
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn leader(&self) -> Option<u64> {
        let leader = self.raw.raft.leader_id;
        (leader != raft::INVALID_ID).then_some(leader)
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// While leading: each voter's matched index (DescribeQuorum's log end).
    pub fn progress(&self) -> Vec<(u64, u64)> {
        if !self.is_leader() {
            return Vec::new();
        }
        let mut all: Vec<(u64, u64)> = self
            .raw
            .raft
            .prs()
            .iter()
            .map(|(id, p)| (*id, p.matched))
            .collect();
        all.sort_unstable();
        all
    }

    /// Committed entries in (after, up to], for brokers that follow the log
    /// without voting; None when they were compacted into the snapshot.
    pub fn committed_entries(&self, after: u64, max_bytes: u64) -> Option<Vec<Entry>> {
        let store = self.raw.store();
        let high = self.commit_index().min(store.last_index()) + 1;
        if after + 1 >= high {
            return Some(Vec::new());
        }
        if after + 1 < store.first_index() {
            return None;
        }
        use raft::Storage;
        store
            .entries(
                after + 1,
                high,
                max_bytes,
                raft::GetEntriesContext::empty(false),
            )
            .ok()
    }

    pub fn step(&mut self, message: Message) {
        if let Err(error) = self.raw.step(message) {
            tracing::debug!(%error, "raft message refused");
        }
    }

    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.raw.tick();
    }

    pub fn submit(&mut self, token: u64, request: Request) {
        self.queue.push_back((token, request));
    }

    /// Runs everything that can run now: raft's ready cycle, the request
    /// queue, and the leader's session checks.
    pub fn poll(&mut self) -> Result<Output, StoreError> {
        let mut out = Output::default();
        loop {
            self.work_queue()?;
            if !self.raw.has_ready() {
                break;
            }
            let sent = out.messages.len();
            self.ready(&mut out)?;
            // A snapshot is sent once and raft-rs then waits to hear how it
            // went. The network cannot say; report it sent, so a lost one
            // is noticed by the probe that follows and sent again.
            let snapshots: Vec<u64> = out.messages[sent..]
                .iter()
                .filter(|m| m.get_msg_type() == raft::prelude::MessageType::MsgSnapshot)
                .map(|m| m.to)
                .collect();
            for to in snapshots {
                self.raw.report_snapshot(to, raft::SnapshotStatus::Finish);
            }
        }
        out.answers.append(&mut self.answers);
        Ok(out)
    }

    fn ready(&mut self, out: &mut Output) -> Result<(), StoreError> {
        let mut ready = self.raw.ready();
        out.messages.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.image =
                MetadataImage::decode(&snapshot.data).map_err(|e| StoreError::Corrupt {
                    path: "snapshot from leader".into(),
                    offset: 0,
                    reason: e.to_string(),
                })?;
            self.raw.mut_store().apply_snapshot(snapshot)?;
        }
        self.apply(ready.take_committed_entries(), out);
        if !ready.entries().is_empty() {
            self.raw.mut_store().append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            self.raw.mut_store().set_hard_state(hs)?;
        }
        self.raw.mut_store().sync()?;
        out.messages.extend(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        out.messages.extend(light.take_messages());
        self.apply(light.take_committed_entries(), out);
        self.raw.advance_apply();
        self.on_role()?;
        self.maybe_snapshot()
    }

    fn apply(&mut self, entries: Vec<Entry>, out: &mut Output) {
        for entry in entries {
            let index = entry.index;
            let records = if entry.get_entry_type() == EntryType::EntryNormal {
                match records::decode(&entry.data) {
                    Ok(records) => records,
                    Err(error) => {
                        tracing::error!(index, %error, "skipping undecodable metadata entry");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            for error in self.image.apply(index, &records) {
                tracing::warn!(index, %error, "metadata record skipped");
            }
            if let Some(flight) = &self.in_flight {
                if flight.index == index {
                    let won = flight.term == entry.term;
                    let Some(flight) = self.in_flight.take() else {
                        continue;
                    };
                    let answer = if won {
                        Ok((index, fill_epoch(flight.response, index)))
                    } else {
                        Err(ControllerError::NotController {
                            leader: self.leader(),
                        })
                    };
                    if flight.token != INTERNAL {
                        self.answers.push((flight.token, answer));
                    }
                }
            }
            out.applied.push((index, records));
        }
    }

    /// Leadership changes: a new leader restarts sessions and waits for its
    /// first entry; one that lost it fails what it was doing.
    fn on_role(&mut self) -> Result<(), StoreError> {
        if self.is_leader() {
            if self.term_start.is_none() {
                self.term_start = Some(self.last_index());
                self.sessions.restart(&self.image, self.now_ms);
                if let Some((interval, _)) = self.config.leader_rebalance {
                    self.rebalance_due_ms = self.now_ms.saturating_add(duration_ms(interval));
                }
                tracing::info!(
                    node = self.config.id,
                    term = self.term(),
                    "became the active controller"
                );
            }
        } else {
            self.term_start = None;
            if let Some(flight) = self.in_flight.take() {
                if flight.token != INTERNAL {
                    self.answers.push((
                        flight.token,
                        Err(ControllerError::NotController {
                            leader: self.leader(),
                        }),
                    ));
                }
            }
        }
        Ok(())
    }

    fn ready_to_decide(&self) -> bool {
        self.is_leader()
            && self.in_flight.is_none()
            && self
                .term_start
                .is_some_and(|start| self.image.applied >= start)
    }

    fn work_queue(&mut self) -> Result<(), StoreError> {
        self.on_role()?;
        if !self.is_leader() {
            let leader = self.leader();
            for (token, _) in self.queue.drain(..) {
                self.answers
                    .push((token, Err(ControllerError::NotController { leader })));
            }
            return Ok(());
        }
        while self.ready_to_decide() {
            let (token, decision) = match self.queue.pop_front() {
                Some((token, request)) => {
                    let decided = decide::decide(
                        &self.image,
                        &mut self.sessions,
                        &request,
                        self.now_ms,
                        &mut self.rng,
                    );
                    match decided {
                        Ok(decision) => (token, decision),
                        Err(error) => {
                            self.answers.push((token, Err(error)));
                            continue;
                        }
                    }
                }
                None => {
                    let Some(records) = self.internal_records() else {
                        break;
                    };
                    (
                        INTERNAL,
                        Decision {
                            records,
                            response: Response::Items(Vec::new()),
                        },
                    )
                }
            };
            if decision.records.is_empty() {
                self.answers
                    .push((token, Ok((self.image.applied, decision.response))));
                continue;
            }
            let before = self.last_index();
            if let Err(error) = self
                .raw
                .propose(Vec::new(), records::encode(&decision.records))
            {
                self.answers.push((
                    token,
                    Err(ControllerError::NotController {
                        leader: self.leader(),
                    }),
                ));
                tracing::warn!(%error, "proposal refused");
                continue;
            }
            self.in_flight = Some(InFlight {
                token,
                response: decision.response,
                index: before + 1,
                term: self.term(),
            });
        }
        Ok(())
    }

    /// The leader's own decision when no request waits: fence a broker
    /// whose session expired, else, when due, rebalance leaders.
    fn internal_records(&mut self) -> Option<Vec<MetadataRecord>> {
        let records = decide::expire_sessions(&self.image, &self.sessions, self.now_ms);
        for record in &records {
            if let MetadataRecord::FenceBroker { broker_id, .. } = record {
                tracing::warn!(broker = broker_id, "broker session expired: fencing it");
            }
        }
        if !records.is_empty() {
            return Some(records);
        }
        let (interval, percentage) = self.config.leader_rebalance?;
        if self.now_ms < self.rebalance_due_ms {
            return None;
        }
        self.rebalance_due_ms = self.now_ms.saturating_add(duration_ms(interval));
        let records = leadership::rebalance_leaders(&self.image, percentage);
        if records.is_empty() {
            return None;
        }
        tracing::info!(
            partitions = records.len(),
            "leaders imbalanced: moving them back to preferred replicas"
        );
        Some(records)
    }

    fn maybe_snapshot(&mut self) -> Result<(), StoreError> {
        let applied = self.image.applied;
        let first = self.raw.store().first_index();
        if applied >= first + self.config.snapshot_entries {
            let data = self.image.encode();
            self.raw.mut_store().compact(applied, data)?;
        }
        Ok(())
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A registration's broker epoch is the index its record committed at.
fn fill_epoch(response: Response, index: u64) -> Response {
    match response {
        Response::Registered { .. } => Response::Registered {
            broker_epoch: index,
        },
        other => other,
    }
}
impl Node {
    #[doc(hidden)]
    pub fn debug_progress(&self) -> String {
        format!(
            "{:?} first {} snap {}",
            self.raw.raft.prs().iter().collect::<Vec<_>>(),
            self.raw.store().first_index(),
            self.raw.store().snapshot().get_metadata().index
        )
    }
}
