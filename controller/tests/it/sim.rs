//! A seeded, deterministic simulation of a controller quorum: three
//! `Node`s over real stores in temp dirs, a network that drops, delays,
//! reorders and partitions messages, nodes that crash and restart from
//! their stores (snapshots included), brokers that register, heartbeat,
//! stop (and are fenced) and come back, and a client that keeps submitting
//! writes, AlterPartition, ElectLeaders and reassignment requests among
//! them. Checked on
//! every schedule:
//! - no two nodes apply different records at one index (no split brain);
//! - at most one leader per term;
//! - after every entry, on every node (each node's image is the image the
//!   agreed log builds at its applied index), for every partition: the
//!   leader is -1 or in the ISR; the ISR is a non-empty subset of the
//!   replicas without duplicates; leader and partition epochs never go
//!   back; a new leader bumps the leader epoch; and, unless unclean
//!   election is enabled for the topic, a new leader was in the ISR before
//!   (or, completing a reassignment, is in the new one);
//! - reassignments (started, replaced, cancelled, completed among the
//!   AlterPartition requests): adding and removing replicas are disjoint
//!   replicas, the replicas end with those removed, and one still in
//!   progress is one its ISR does not complete;
//! - every write answered Ok is applied by every node at the end, at the
//!   index it was answered with (nothing acknowledged is lost);
//! - once healed, every node reaches the same image, whether it got there
//!   by replay or from a snapshot.

use controller::decide::{Election, NewTopic, Request, Response};
use controller::leadership::{unclean_election_enabled, UNCLEAN_LEADER_ELECTION_ENABLE};
use controller::node::{Node, NodeConfig};
use controller::records::{ConfigResource, Endpoint, MetadataRecord};
use controller::store::{Durability, RaftStore};
use controller::{MetadataImage, PartitionImage};
use raft::prelude::Message;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

const VOTERS: [u64; 3] = [1, 2, 3];
const BROKERS: [i32; 3] = [1, 2, 3];
const TICK_MS: u64 = 100;

/// A broker process as the controller sees it.
struct Broker {
    /// Heartbeating; when it stops, its session expires and it is fenced.
    alive: bool,
    /// Its process: a new one registers again before heartbeating.
    incarnation: u128,
    /// Replicas in a log directory that failed in this process, reported
    /// in every heartbeat (a new process finds the directory again).
    offline: Vec<(controller::TopicId, i32)>,
}

struct Sim {
    rng: StdRng,
    dirs: Vec<tempfile::TempDir>,
    nodes: BTreeMap<u64, Option<Node>>,
    /// (deliver at step, message)
    in_flight: Vec<(u64, Message)>,
    step: u64,
    /// Nodes cut off from the others this step.
    isolated: Vec<u64>,
    /// The records applied at each index, as the first node to apply it
    /// reported them; every other node must apply the same.
    log: BTreeMap<u64, Vec<MetadataRecord>>,
    /// `images[i]`: the image after applying `log` up to index i (0: none).
    images: Vec<MetadataImage>,
    /// Each node's applied index when `check_nodes` last compared it.
    checked: BTreeMap<u64, u64>,
    leaders: BTreeMap<u64, u64>,
    acknowledged: Vec<(u64, u64)>,
    next_token: u64,
    snapshot_entries: u64,
    leader_rebalance: Option<(Duration, u32)>,
    brokers: BTreeMap<i32, Broker>,
}

fn config(id: u64, seed: u64, snapshot_entries: u64) -> NodeConfig {
    config_rebalancing(id, seed, snapshot_entries, None)
}

fn config_rebalancing(
    id: u64,
    seed: u64,
    snapshot_entries: u64,
    leader_rebalance: Option<(Duration, u32)>,
) -> NodeConfig {
    NodeConfig {
        id,
        voters: VOTERS.to_vec(),
        election_ticks: 10,
        heartbeat_ticks: 2,
        session_timeout_ms: 3_000,
        snapshot_entries,
        seed,
        leader_rebalance,
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let snapshot_entries = rng.gen_range(3..20);
        let leader_rebalance = rng.gen_ratio(1, 2).then(|| {
            (
                Duration::from_millis(rng.gen_range(5..30) * TICK_MS),
                rng.gen_range(0..30),
            )
        });
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
            log: BTreeMap::new(),
            images: vec![MetadataImage::default()],
            checked: BTreeMap::new(),
            leaders: BTreeMap::new(),
            acknowledged: Vec::new(),
            next_token: 1,
            snapshot_entries,
            leader_rebalance,
            brokers: BTreeMap::new(),
        };
        for id in BROKERS {
            let incarnation = sim.rng.gen();
            sim.brokers.insert(
                id,
                Broker {
                    alive: true,
                    incarnation,
                    offline: Vec::new(),
                },
            );
        }
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
        let config = config_rebalancing(id, seed, self.snapshot_entries, self.leader_rebalance);
        self.checked.remove(&id);
        Node::open(config, store).expect("node")
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
        if faults {
            self.submit_requests();
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
            for (index, records) in output.applied {
                match self.log.get(&index) {
                    Some(theirs) => assert_eq!(
                        *theirs, records,
                        "node {id} applied an entry at {index} another node applied differently"
                    ),
                    None => {
                        self.log.insert(index, records);
                    }
                }
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
        self.extend_images();
        self.check_nodes();
    }

    /// A client request now and then, and heartbeats (or registrations)
    /// from the live brokers, all to whoever leads, crafted from its image.
    fn submit_requests(&mut self) {
        let Some(leader) = self.current_leader() else {
            return;
        };
        let Some(Some(node)) = self.nodes.get(&leader) else {
            return;
        };
        let image = node.image().clone();
        let mut requests = Vec::new();
        if self.rng.gen_ratio(1, 3) {
            requests.push(self.random_request(&image));
        }
        let ids: Vec<i32> = self.brokers.keys().copied().collect();
        for id in ids {
            if let Some(request) = self.broker_request(&image, id) {
                requests.push(request);
            }
        }
        let Some(Some(node)) = self.nodes.get_mut(&leader) else {
            return;
        };
        for request in requests {
            node.submit(self.next_token, request);
            self.next_token += 1;
        }
    }

    /// Brokers stop and come back (a new process now and then); a live one
    /// heartbeats every few steps, well within its session.
    fn broker_request(&mut self, image: &MetadataImage, id: i32) -> Option<Request> {
        let rng = &mut self.rng;
        let broker = self.brokers.get_mut(&id)?;
        if rng.gen_ratio(1, 80) {
            broker.alive = !broker.alive;
            if broker.alive && rng.gen_ratio(1, 2) {
                broker.incarnation = rng.gen();
                broker.offline.clear();
            }
        }
        if !broker.alive || !rng.gen_ratio(1, 4) {
            return None;
        }
        match image.brokers.get(&id) {
            Some(registered) if registered.incarnation == broker.incarnation => {
                // Now and then one of its replicas' directory fails.
                if rng.gen_ratio(1, 40) {
                    let hosted: Vec<(controller::TopicId, i32)> = image
                        .topics
                        .values()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .enumerate()
                                .filter(|(_, p)| p.replicas.contains(&id))
                                .map(move |(i, _)| (t.id, i as i32))
                        })
                        .collect();
                    if !hosted.is_empty() {
                        let failed = hosted[rng.gen_range(0..hosted.len())];
                        if !broker.offline.contains(&failed) {
                            broker.offline.push(failed);
                        }
                    }
                }
                Some(Request::Heartbeat {
                    broker_id: id,
                    broker_epoch: registered.epoch,
                    metadata_offset: image.applied,
                    offline_replicas: broker.offline.clone(),
                })
            }
            _ => Some(Request::RegisterBroker {
                broker_id: id,
                incarnation: broker.incarnation,
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                }],
                rack: None,
            }),
        }
    }

    /// Extends `images` over the log as far as it is known without a gap,
    /// checking the leader and ISR rules of each entry.
    fn extend_images(&mut self) {
        loop {
            let next = self.images.len() as u64;
            let Some(records) = self.log.get(&next) else {
                return;
            };
            let Some(before) = self.images.last() else {
                return;
            };
            let mut after = before.clone();
            after.apply(next, records);
            check_entry(before, &after, next, records);
            self.images.push(after);
        }
    }

    /// Every running node's image is the log's image at its applied index,
    /// so what `extend_images` checked holds on every node.
    fn check_nodes(&mut self) {
        for node in self.nodes.values().flatten() {
            let image = node.image();
            // Unchanged since the last check (a restarted node starts over).
            if self.checked.insert(node.id(), image.applied) == Some(image.applied) {
                continue;
            }
            let expected = self.images.get(image.applied as usize);
            assert!(
                expected == Some(image),
                "node {} at {}: its image is not the log's ({} entries known)",
                node.id(),
                image.applied,
                self.images.len()
            );
        }
    }

    fn random_request(&mut self, image: &MetadataImage) -> Request {
        let rng = &mut self.rng;
        // Topics u* enable unclean election; t* follow the cluster default.
        let name = |rng: &mut StdRng| {
            let kind = if rng.gen_ratio(1, 3) { 'u' } else { 't' };
            format!("{kind}{}", rng.gen_range(0..10))
        };
        match rng.gen_range(0..24) {
            0..=4 => {
                let name = name(rng);
                let mut configs = BTreeMap::new();
                if name.starts_with('u') {
                    configs.insert(UNCLEAN_LEADER_ELECTION_ENABLE.into(), "true".into());
                }
                Request::CreateTopics {
                    topics: vec![NewTopic {
                        name,
                        partitions: rng.gen_range(1..4),
                        replication_factor: rng.gen_range(1..4),
                        assignments: Vec::new(),
                        configs,
                    }],
                    validate_only: false,
                }
            }
            5..=6 => Request::DeleteTopics {
                names: vec![name(rng)],
            },
            7..=12 => self.alter_partition(image),
            13..=18 => {
                let election = if rng.gen_ratio(1, 2) {
                    Election::Preferred
                } else {
                    Election::Unclean
                };
                let partitions = if rng.gen_ratio(1, 4) {
                    None
                } else {
                    Some(vec![self.some_partition(image)])
                };
                Request::ElectLeaders {
                    election,
                    partitions,
                }
            }
            20..=22 => self.reassign(image),
            23 => Request::ListReassignments {
                partitions: rng
                    .gen_ratio(1, 2)
                    .then(|| vec![self.some_partition(image)]),
            },
            _ => Request::AlterConfigs {
                changes: vec![(
                    ConfigResource::Broker(-1),
                    UNCLEAN_LEADER_ELECTION_ENABLE.into(),
                    rng.gen_ratio(1, 2).then(|| "true".into()),
                )],
                validate_only: false,
            },
        }
    }

    /// Reassignments of a partition or two: to some of the brokers in a
    /// random order, now and then cancelled or to an invalid target.
    fn reassign(&mut self, image: &MetadataImage) -> Request {
        let count = self.rng.gen_range(1..3);
        let mut reassignments = Vec::new();
        for _ in 0..count {
            let (topic, partition) = self.some_partition(image);
            let rng = &mut self.rng;
            let target = match rng.gen_range(0..10) {
                0..=2 => None,
                3 => Some(
                    (0..rng.gen_range(0..3))
                        .map(|_| rng.gen_range(0..5))
                        .collect(),
                ),
                _ => {
                    let mut brokers = BROKERS.to_vec();
                    brokers.shuffle(rng);
                    brokers.truncate(rng.gen_range(1..=BROKERS.len()));
                    Some(brokers)
                }
            };
            reassignments.push((topic, partition, target));
        }
        Request::AlterReassignments { reassignments }
    }

    /// A partition of the image, or now and then one that may not exist.
    fn some_partition(&mut self, image: &MetadataImage) -> (String, i32) {
        let partitions: Vec<(String, i32)> = image
            .topics
            .values()
            .flat_map(|t| (0..t.partitions.len() as i32).map(|p| (t.name.clone(), p)))
            .collect();
        let rng = &mut self.rng;
        match partitions.get(rng.gen_range(0..partitions.len().max(1))) {
            Some(partition) if !rng.gen_ratio(1, 10) => partition.clone(),
            _ => (format!("t{}", rng.gen_range(0..10)), rng.gen_range(0..4)),
        }
    }

    /// An AlterPartition as a partition leader sends one, mostly at the
    /// epochs the leader's image holds (they may be stale by the time it
    /// is decided), now and then from another broker or at other epochs.
    fn alter_partition(&mut self, image: &MetadataImage) -> Request {
        let partitions: Vec<_> = image
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().enumerate().map(|(i, p)| (t.id, i, p)))
            .collect();
        let rng = &mut self.rng;
        let Some(&(topic_id, index, partition)) =
            partitions.get(rng.gen_range(0..partitions.len().max(1)))
        else {
            return Request::DeleteTopics { names: Vec::new() };
        };
        let mut broker = partition.leader;
        if broker == -1 || rng.gen_ratio(1, 10) {
            broker = BROKERS[rng.gen_range(0..BROKERS.len())];
        }
        let mut isr: Vec<i32> = partition
            .replicas
            .iter()
            .copied()
            .filter(|&r| r == broker || rng.gen_ratio(1, 2))
            .collect();
        if rng.gen_ratio(1, 10) {
            isr = (0..rng.gen_range(0..4))
                .map(|_| rng.gen_range(0..5))
                .collect();
        }
        let skew = |rng: &mut StdRng| {
            if rng.gen_ratio(1, 10) {
                rng.gen_range(-1..2)
            } else {
                0
            }
        };
        Request::AlterPartition {
            broker_id: broker,
            broker_epoch: image.brokers.get(&broker).map_or(0, |b| b.epoch),
            topic_id,
            partition: index as i32,
            leader_epoch: partition.leader_epoch + skew(rng),
            partition_epoch: partition.partition_epoch + skew(rng),
            isr,
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

/// The leader and ISR rules of the entry at `index` (`records`), from
/// `before` to `after`.
fn check_entry(
    before: &MetadataImage,
    after: &MetadataImage,
    index: u64,
    records: &[MetadataRecord],
) {
    // An ElectLeaders Unclean entry (and only it): leader changes alone,
    // each making the new leader the whole ISR. Fencing and unfencing
    // entries hold a broker record, AlterPartition changes no leader, a
    // preferred election or rebalance no ISR. (A reassignment such an
    // election completes rides along in its record.)
    let explicit_unclean = !records.is_empty()
        && records.iter().all(|r| {
            matches!(r, MetadataRecord::PartitionChange {
                leader: Some(leader),
                isr: Some(isr),
                ..
            } if *isr == [*leader])
        });
    for topic in after.topics.values() {
        let old_topic = before.topic_by_id(topic.id);
        for (partition_index, partition) in topic.partitions.iter().enumerate() {
            let at = format!("{}-{partition_index} at {index}", topic.name);
            let isr: BTreeSet<i32> = partition.isr.iter().copied().collect();
            assert!(!isr.is_empty(), "{at}: empty ISR");
            assert_eq!(isr.len(), partition.isr.len(), "{at}: duplicate in ISR");
            assert!(
                isr.iter().all(|r| partition.replicas.contains(r)),
                "{at}: ISR {:?} not within replicas {:?}",
                partition.isr,
                partition.replicas
            );
            assert!(
                partition.leader == -1 || isr.contains(&partition.leader),
                "{at}: leader {} not in ISR {:?}",
                partition.leader,
                partition.isr
            );
            check_reassignment(partition, &at);
            let Some(old) = old_topic.and_then(|t| t.partition(partition_index as i32)) else {
                continue;
            };
            assert!(
                partition.leader_epoch >= old.leader_epoch
                    && partition.partition_epoch >= old.partition_epoch,
                "{at}: epochs went back"
            );
            if partition != old {
                assert!(
                    partition.partition_epoch > old.partition_epoch,
                    "{at}: changed without a partition epoch bump"
                );
            }
            if partition.leader == old.leader {
                continue;
            }
            assert!(
                partition.leader_epoch > old.leader_epoch,
                "{at}: new leader {} without a leader epoch bump",
                partition.leader
            );
            // A replica its broker reported offline never becomes leader.
            let offline_here = |image: &MetadataImage| {
                image.brokers.get(&partition.leader).is_some_and(|b| {
                    b.offline_replicas
                        .contains(&(topic.id, partition_index as i32))
                })
            };
            assert!(
                !offline_here(before) && !offline_here(after),
                "{at}: leader {} elected on a replica it reported offline, by {records:?}",
                partition.leader
            );
            let unclean =
                explicit_unclean || old_topic.is_some_and(|t| unclean_election_enabled(before, t));
            // A reassignment completed by the ISR expansion of this entry
            // may elect a replica that just joined (Kafka's rule).
            let completed = old.reassigning()
                && !partition.reassigning()
                && partition.replicas != old.original_replicas()
                && isr.contains(&partition.leader);
            assert!(
                partition.leader == -1
                    || unclean
                    || completed
                    || old.isr.contains(&partition.leader),
                "{at}: leader {} elected from outside the ISR {:?} with unclean election disabled {old:?} -> {partition:?} by {records:?}",
                partition.leader,
                old.isr
            );
        }
    }
}

/// The reassignment state of a partition: the replicas are distinct, and
/// end with those being removed; adding and removing replicas are
/// distinct replicas, disjoint; and a reassignment in progress is one its
/// ISR does not complete yet (completion is checked on every change).
fn check_reassignment(partition: &PartitionImage, at: &str) {
    let replicas: BTreeSet<i32> = partition.replicas.iter().copied().collect();
    assert_eq!(
        replicas.len(),
        partition.replicas.len(),
        "{at}: duplicate replica in {:?}",
        partition.replicas
    );
    let adding: BTreeSet<i32> = partition.adding_replicas.iter().copied().collect();
    let removing: BTreeSet<i32> = partition.removing_replicas.iter().copied().collect();
    assert_eq!(
        adding.len(),
        partition.adding_replicas.len(),
        "{at}: duplicate adding"
    );
    assert_eq!(
        removing.len(),
        partition.removing_replicas.len(),
        "{at}: duplicate removing"
    );
    assert!(
        adding.is_subset(&replicas) && removing.is_subset(&replicas),
        "{at}: adding {adding:?} or removing {removing:?} not within replicas {replicas:?}"
    );
    assert!(
        adding.is_disjoint(&removing),
        "{at}: adding and removing {adding:?}"
    );
    assert!(
        partition.replicas.ends_with(&partition.removing_replicas),
        "{at}: replicas {:?} do not end with removing {:?}",
        partition.replicas,
        partition.removing_replicas
    );
    if !partition.reassigning() {
        return;
    }
    let target = partition.target_replicas();
    assert!(!target.is_empty(), "{at}: empty reassignment target");
    let staying: Vec<i32> = partition
        .isr
        .iter()
        .copied()
        .filter(|r| !removing.contains(r))
        .collect();
    assert!(
        staying.is_empty() || !target.iter().all(|r| staying.contains(r)),
        "{at}: ISR {:?} completes the reassignment to {target:?} but it is still in progress",
        partition.isr
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

/// Submits `request` to a single voter and polls until it is answered.
fn call(node: &mut Node, token: u64, request: Request) -> Response {
    node.submit(token, request);
    for _ in 0..10 {
        let output = node.poll().expect("poll");
        if let Some((_, answer)) = output.answers.into_iter().find(|(t, _)| *t == token) {
            return answer.expect("answered").1;
        }
    }
    panic!("request {token} not answered");
}

#[test]
fn a_single_voter_rebalances_leaders_on_its_tick() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RaftStore::open(dir.path(), &[1], Durability::NoSync).expect("store");
    let interval = Duration::from_millis(1_000);
    let mut node = Node::open(
        NodeConfig {
            voters: vec![1],
            ..config_rebalancing(1, 7, 1000, Some((interval, 10)))
        },
        store,
    )
    .expect("node");
    for _ in 0..3 {
        node.poll().expect("poll");
    }
    assert!(node.is_leader());
    let heartbeat = |node: &Node, broker: i32| Request::Heartbeat {
        broker_id: broker,
        broker_epoch: node.image().brokers[&broker].epoch,
        metadata_offset: node.image().applied,
        offline_replicas: Vec::new(),
    };
    for broker in [1, 2] {
        let registered = Request::RegisterBroker {
            broker_id: broker,
            incarnation: broker as u128,
            endpoints: Vec::new(),
            rack: None,
        };
        call(&mut node, 10 + broker as u64, registered);
        let request = heartbeat(&node, broker);
        call(&mut node, 20 + broker as u64, request);
    }
    let topic = Request::CreateTopics {
        topics: vec![NewTopic {
            name: "t".into(),
            partitions: -1,
            replication_factor: -1,
            assignments: vec![vec![1, 2]],
            configs: BTreeMap::new(),
        }],
        validate_only: false,
    };
    call(&mut node, 30, topic);
    let partition = |node: &Node| node.image().topics["t"].partitions[0].clone();
    assert_eq!(
        (partition(&node).leader, partition(&node).isr),
        (1, vec![1, 2])
    );
    // Broker 1's session runs out (3 s): broker 2 leads, alone in the ISR.
    node.tick(3_500);
    let request = heartbeat(&node, 2);
    call(&mut node, 40, request);
    for _ in 0..3 {
        node.poll().expect("poll");
    }
    assert_eq!(
        (partition(&node).leader, partition(&node).isr),
        (2, vec![2])
    );
    // Broker 1 returns and catches up: broker 2 takes it back in the ISR.
    let request = heartbeat(&node, 1);
    call(&mut node, 41, request);
    let p = partition(&node);
    let expand = Request::AlterPartition {
        broker_id: 2,
        broker_epoch: node.image().brokers[&2].epoch,
        topic_id: node.image().topics["t"].id,
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        isr: vec![2, 1],
    };
    assert!(matches!(
        call(&mut node, 42, expand),
        Response::PartitionAltered(Ok(_))
    ));
    // The check at 3.5 s found nothing to move (broker 1 was fenced); the
    // next is due a second later, not before.
    node.tick(4_400);
    for _ in 0..3 {
        node.poll().expect("poll");
    }
    assert_eq!(partition(&node).leader, 2);
    node.tick(4_600);
    for _ in 0..3 {
        node.poll().expect("poll");
    }
    let p = partition(&node);
    assert_eq!((p.leader, p.isr), (1, vec![2, 1]));
}
