//! A seeded, deterministic simulation of a controller quorum: three
//! `Node`s over real stores in temp dirs, a network that drops, delays,
//! reorders and partitions messages, nodes that crash and restart from
//! their stores (snapshots included), and a client that keeps submitting
//! writes. Checked on every schedule:
//! - no two nodes apply different records at one index (no split brain);
//! - at most one leader per term;
//! - every write answered Ok is applied by every node at the end, at the
//!   index it was answered with (nothing acknowledged is lost);
//! - once healed, every node reaches the same image, whether it got there
//!   by replay or from a snapshot.

use controller::decide::{NewTopic, Request};
use controller::node::{Node, NodeConfig};
use controller::records::{Endpoint, MetadataRecord};
use controller::store::{Durability, RaftStore};
use raft::prelude::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

const VOTERS: [u64; 3] = [1, 2, 3];
const TICK_MS: u64 = 100;

struct Sim {
    rng: StdRng,
    dirs: Vec<tempfile::TempDir>,
    nodes: BTreeMap<u64, Option<Node>>,
    /// (deliver at step, message)
    in_flight: Vec<(u64, Message)>,
    step: u64,
    /// Nodes cut off from the others this step.
    isolated: Vec<u64>,
    /// What each node applied at each index.
    applied: HashMap<u64, BTreeMap<u64, Vec<MetadataRecord>>>,
    leaders: BTreeMap<u64, u64>,
    acknowledged: Vec<(u64, u64)>,
    next_token: u64,
    snapshot_entries: u64,
}

fn config(id: u64, seed: u64, snapshot_entries: u64) -> NodeConfig {
    NodeConfig {
        id,
        voters: VOTERS.to_vec(),
        election_ticks: 10,
        heartbeat_ticks: 2,
        session_timeout_ms: 3_000,
        snapshot_entries,
        seed,
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let snapshot_entries = rng.gen_range(3..20);
        let dirs: Vec<tempfile::TempDir> = VOTERS
            .iter()
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let mut sim = Sim {
            rng,
            dirs,
            nodes: BTreeMap::new(),
            in_flight: Vec::new(),
            step: 0,
            isolated: Vec::new(),
            applied: HashMap::new(),
            leaders: BTreeMap::new(),
            acknowledged: Vec::new(),
            next_token: 1,
            snapshot_entries,
        };
        for id in VOTERS {
            let node = sim.open(id);
            sim.nodes.insert(id, Some(node));
        }
        sim
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.dirs[(id - 1) as usize].path().to_path_buf()
    }

    fn open(&mut self, id: u64) -> Node {
        let store = RaftStore::open(&self.dir(id), &VOTERS, Durability::NoSync).expect("store");
        let seed = self.rng.gen();
        Node::open(config(id, seed, self.snapshot_entries), store).expect("node")
    }

    fn connected(&self, a: u64, b: u64) -> bool {
        self.isolated.contains(&a) == self.isolated.contains(&b)
    }

    fn run_step(&mut self, faults: bool) {
        self.step += 1;
        let now = self.step * TICK_MS;
        if faults {
            self.inject_faults();
        }
        // Deliver what is due (and still connected), in a shuffled order.
        let mut due = Vec::new();
        self.in_flight.retain(|(at, m)| {
            if *at <= self.step {
                due.push(m.clone());
                false
            } else {
                true
            }
        });
        for message in due {
            let drop = faults && self.rng.gen_ratio(1, 20);
            if drop || !self.connected(message.from, message.to) {
                continue;
            }
            if let Some(Some(node)) = self.nodes.get_mut(&message.to) {
                node.step(message);
            }
        }
        // A client write now and then, to whoever leads.
        if faults && self.rng.gen_ratio(1, 3) {
            let token = self.next_token;
            self.next_token += 1;
            let request = self.random_request(token);
            if let Some(leader) = self.current_leader() {
                if let Some(Some(node)) = self.nodes.get_mut(&leader) {
                    node.submit(token, request);
                }
            }
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            let Some(Some(node)) = self.nodes.get_mut(&id) else {
                continue;
            };
            node.tick(now);
            let output = node.poll().expect("poll");
            if node.is_leader() {
                let term = node.term();
                let previous = self.leaders.insert(term, id);
                assert!(
                    previous.is_none() || previous == Some(id),
                    "two leaders in term {term}: {previous:?} and {id}"
                );
            }
            let log = self.applied.entry(id).or_default();
            for (index, records) in output.applied {
                log.insert(index, records);
            }
            for (_, answer) in output.answers {
                if let Ok((index, _)) = answer {
                    self.acknowledged.push((id, index));
                }
            }
            for message in output.messages {
                let delay = if faults { self.rng.gen_range(0..4) } else { 0 };
                self.in_flight.push((self.step + delay, message));
            }
        }
        self.check_agreement();
    }

    fn random_request(&mut self, token: u64) -> Request {
        match self.rng.gen_range(0..3) {
            0 => Request::RegisterBroker {
                broker_id: self.rng.gen_range(1..4),
                incarnation: self.rng.gen(),
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                }],
                rack: None,
            },
            1 => Request::CreateTopics {
                topics: vec![NewTopic {
                    name: format!("t{}", self.rng.gen_range(0..20)),
                    partitions: self.rng.gen_range(1..4),
                    replication_factor: 1,
                    assignments: Vec::new(),
                    configs: BTreeMap::new(),
                }],
                validate_only: false,
            },
            _ => Request::DeleteTopics {
                names: vec![format!("t{}", token % 20)],
            },
        }
    }

    fn current_leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(_, n)| n.as_ref().is_some_and(|n| n.is_leader()))
            .map(|(id, _)| *id)
    }

    fn inject_faults(&mut self) {
        let roll = self.rng.gen_range(0..100);
        let id = VOTERS[self.rng.gen_range(0..3)];
        match roll {
            0..=1 => {
                // Crash: the node is gone with what it had not synced.
                if let Some(slot) = self.nodes.get_mut(&id) {
                    *slot = None;
                }
            }
            2..=5 if self.nodes.get(&id).is_some_and(|n| n.is_none()) => {
                let node = self.open(id);
                self.nodes.insert(id, Some(node));
            }
            6 => self.isolated = vec![id],
            7..=9 => self.isolated.clear(),
            _ => {}
        }
    }

    fn check_agreement(&self) {
        let mut seen: BTreeMap<u64, (&u64, &Vec<MetadataRecord>)> = BTreeMap::new();
        for (id, log) in &self.applied {
            for (index, records) in log {
                if let Some((other, theirs)) = seen.get(index) {
                    assert_eq!(
                        *theirs, records,
                        "nodes {other} and {id} applied different entries at {index}"
                    );
                } else {
                    seen.insert(*index, (id, records));
                }
            }
        }
    }

    fn heal(&mut self) {
        self.isolated.clear();
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            if self.nodes.get(&id).is_some_and(|n| n.is_none()) {
                let node = self.open(id);
                self.nodes.insert(id, Some(node));
            }
        }
    }

    fn settled(&self) -> bool {
        let images: Vec<_> = self
            .nodes
            .values()
            .filter_map(|n| n.as_ref().map(|n| n.image().clone()))
            .collect();
        images.len() == VOTERS.len()
            && self.current_leader().is_some()
            && images.windows(2).all(|w| w[0] == w[1])
    }
}

fn run(seed: u64) {
    let mut sim = Sim::new(seed);
    for _ in 0..400 {
        sim.run_step(true);
    }
    sim.heal();
    let mut steps = 0;
    while !sim.settled() {
        sim.run_step(false);
        steps += 1;
        if steps >= 2_000 {
            for node in sim.nodes.values().flatten() {
                eprintln!(
                    "node {} leader {:?} term {} commit {} applied {} last {}",
                    node.id(),
                    node.leader(),
                    node.term(),
                    node.commit_index(),
                    node.image().applied,
                    node.last_index()
                );
                eprintln!("  {}", node.debug_progress());
            }
            panic!("seed {seed}: no agreement after healing");
        }
    }
    // Nothing acknowledged is lost: the entry answered Ok at an index is in
    // every node's image (its applied index is at least that far).
    for node in sim.nodes.values().flatten() {
        for (_, index) in &sim.acknowledged {
            assert!(
                node.image().applied >= *index,
                "seed {seed}: node {} lost acknowledged index {index}",
                node.id()
            );
        }
    }
    assert!(
        !sim.leaders.is_empty(),
        "seed {seed}: no leader was ever elected"
    );
}

#[test]
fn quorum_schedules_agree_and_keep_acknowledged_writes() {
    let seeds: u64 = std::env::var("SLUICE_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    for seed in 0..seeds {
        run(seed);
    }
}

#[test]
fn a_single_voter_leads_at_once_and_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RaftStore::open(dir.path(), &[1], Durability::NoSync).expect("store");
    let mut node = Node::open(
        NodeConfig {
            voters: vec![1],
            ..config(1, 7, 1000)
        },
        store,
    )
    .expect("node");
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.extend(node.poll().expect("poll").answers);
    }
    assert!(node.is_leader());
    node.submit(
        5,
        Request::CreateTopics {
            topics: vec![NewTopic {
                name: "orders".into(),
                partitions: 2,
                replication_factor: 1,
                assignments: vec![vec![1], vec![1]],
                configs: BTreeMap::new(),
            }],
            validate_only: false,
        },
    );
    // Broker 1 must be registered for an explicit assignment.
    node.submit(
        4,
        Request::RegisterBroker {
            broker_id: 1,
            incarnation: 9,
            endpoints: Vec::new(),
            rack: None,
        },
    );
    for _ in 0..5 {
        answers.extend(node.poll().expect("poll").answers);
    }
    assert_eq!(answers.len(), 2, "{answers:?}");
    let topic = node.image().topic("orders");
    assert!(
        topic.is_none(),
        "broker 1 was not registered yet when the topic was decided"
    );
    // Reopen: the log replays into the same image.
    let image = node.image().clone();
    drop(node);
    let store = RaftStore::open(dir.path(), &[1], Durability::NoSync).expect("store");
    let mut node = Node::open(
        NodeConfig {
            voters: vec![1],
            ..config(1, 8, 1000)
        },
        store,
    )
    .expect("node");
    for _ in 0..3 {
        node.poll().expect("poll");
    }
    let mut replayed = node.image().clone();
    // The new term's empty entry moves `applied` past the old one.
    replayed.applied = image.applied;
    assert_eq!(replayed, image);
}
