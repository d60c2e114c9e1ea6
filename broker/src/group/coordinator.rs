//! The classic consumer-group protocol on one core: the groups whose
//! `__consumer_offsets` partition this core owns. Join/sync rounds,
//! generations, leaders, static members, session and rebalance timeouts,
//! and the committed offsets, as Kafka's GroupCoordinator does them. The
//! broker only relays the client-side assignor's bytes (range, roundrobin,
//! cooperative-sticky all work).
//!
//! State is `RefCell` and never borrowed across an `.await`: handlers
//! decide under a borrow and return either an answer or a one-shot
//! receiver that the completion of the round fills.

pub use crate::config::GroupConfig;
use crate::group::store::{CommittedOffset, Entry, GroupRecord};
use crate::limits::{
    GROUPS_PER_CORE_MAX, GROUP_ASSIGNMENT_BYTES_MAX, GROUP_PROTOCOLS_MAX,
    GROUP_PROTOCOL_METADATA_BYTES_MAX,
};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

/// What a finished join round tells one member.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Kafka error code (0: none).
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader: every member (id, instance id, metadata of the
    /// chosen protocol); empty for the others.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl Joined {
    fn failed(error: ResponseError, member_id: &str) -> Joined {
        Joined {
            error: error.code(),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

pub type SyncAnswer = Result<(Option<String>, Option<String>, Bytes), ResponseError>;

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat: Instant,
    /// Order of joining: the first member of a round leads it.
    joined_seq: u64,
    join_waiter: Option<flume::Sender<Joined>>,
    sync_waiter: Option<flume::Sender<SyncAnswer>>,
}

impl Member {
    pub fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| Some(name.as_str()) == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

pub struct Group {
    pub id: String,
    pub state: State,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, awaiting the rejoin
    /// within the session timeout the request asked for.
    pending: HashMap<String, (Instant, Duration)>,
    join_deadline: Option<Instant>,
    initial_delay_until: Option<Instant>,
    sync_deadline: Option<Instant>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// When the group last became empty (offset expiry counts from it).
    pub empty_since_ms: i64,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: State::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            join_deadline: None,
            initial_delay_until: None,
            sync_deadline: None,
            offsets: BTreeMap::new(),
            empty_since_ms: now_ms,
        }
    }

    pub fn record(&self, now_ms: i64) -> Entry {
        Entry::Group {
            group: self.id.clone(),
            value: Some(GroupRecord {
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                generation: self.generation,
                protocol: self.protocol.clone(),
                leader: self.leader.clone(),
                state_timestamp_ms: now_ms,
            }),
        }
    }

    fn instance_member(&self, instance_id: &str) -> Option<String> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
            .map(|m| m.id.clone())
    }

    /// Protocols every member supports, in `first`'s order of preference.
    fn common_protocols(&self, first: &[(String, Bytes)]) -> Vec<String> {
        first
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect()
    }

    /// Kafka's vote: each member votes for its most preferred protocol that
    /// all support; most votes wins, ties go to the earlier preference.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().min_by_key(|m| m.joined_seq)?;
        let candidates = self.common_protocols(&first.protocols);
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(name))
            {
                if let Some(vote) = votes.iter_mut().find(|(c, _)| c == name) {
                    vote.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }

    fn rebalance_timeout(&self) -> Duration {
        let ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(m.session_timeout_ms))
            .max()
            .unwrap_or(0);
        Duration::from_millis(ms.max(0) as u64)
    }

    fn current_join(&self, member_id: &str) -> Joined {
        let is_leader = self.leader.as_deref() == Some(member_id);
        let members = if is_leader {
            self.members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.metadata_for(self.protocol.as_deref()),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        Joined {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
        }
    }
}

/// A join request as the coordinator needs it.
pub struct JoinArgs {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: unknown members first get an id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

pub enum Answer<T> {
    Now(T),
    Wait(flume::Receiver<T>),
}

pub struct Coordinator {
    pub config: GroupConfig,
    pub groups: RefCell<HashMap<String, Group>>,
    /// Held from a `__consumer_offsets` append to the in-memory change it
    /// records, so memory changes in log order.
    pub write_order: glommio::sync::Semaphore,
    next_member: Cell<u64>,
    /// When offsets were last expired and empty groups forgotten.
    last_cleanup: Cell<Instant>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Coordinator {
        Coordinator {
            config,
            groups: RefCell::new(HashMap::new()),
            write_order: glommio::sync::Semaphore::new(1),
            next_member: Cell::new(0),
            last_cleanup: Cell::new(Instant::now()),
        }
    }

    /// Applies one reloaded `__consumer_offsets` entry.
    pub fn load(&self, entry: Entry) {
        let mut groups = self.groups.borrow_mut();
        match entry {
            Entry::Offset {
                group,
                topic,
                partition,
                value,
            } => match value {
                Some(committed) => {
                    let stamp = committed.commit_timestamp_ms;
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, stamp));
                    g.empty_since_ms = g.empty_since_ms.max(stamp);
                    g.offsets.insert((topic, partition), committed);
                }
                None => {
                    if let Some(g) = groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            },
            Entry::Group { group, value } => match value {
                Some(record) => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, record.state_timestamp_ms));
                    g.generation = record.generation;
                    g.protocol_type = Some(record.protocol_type).filter(|t| !t.is_empty());
                    g.empty_since_ms = g.empty_since_ms.max(record.state_timestamp_ms);
                }
                None => {
                    groups.remove(&group);
                }
            },
        }
    }

    fn new_member_id(&self, client_id: &str) -> String {
        let n = self.next_member.get();
        self.next_member.set(n + 1);
        // Unique across restarts: the clock plus a per-core counter.
        format!("{client_id}-{:x}-{n:x}", now_ms())
    }

    /// The groups as `/metrics` shows them.
    pub fn snapshot(&self) -> Vec<crate::metrics::GroupSnapshot> {
        self.groups
            .borrow()
            .values()
            .map(|group| crate::metrics::GroupSnapshot {
                id: group.id.clone(),
                state: group.state.name(),
                members: group.members.len(),
                generation: group.generation,
                offsets: group
                    .offsets
                    .iter()
                    .map(|((topic, partition), committed)| {
                        (topic.clone(), *partition, committed.offset)
                    })
                    .collect(),
            })
            .collect()
    }

    pub fn join(&self, args: JoinArgs) -> Answer<Joined> {
        match self.try_join(args) {
            Ok(answer) => answer,
            Err((error, member_id)) => Answer::Now(Joined::failed(error, &member_id)),
        }
    }

    fn try_join(&self, args: JoinArgs) -> Result<Answer<Joined>, (ResponseError, String)> {
        let fail = |error| Err((error, args.member_id.clone()));
        if args.group.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        if !(self.config.min_session_timeout_ms..=self.config.max_session_timeout_ms)
            .contains(&args.session_timeout_ms)
        {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        if args.protocol_type.is_empty()
            || args.protocols.is_empty()
            || args.protocols.len() > GROUP_PROTOCOLS_MAX
            || args
                .protocols
                .iter()
                .any(|(_, m)| m.len() > GROUP_PROTOCOL_METADATA_BYTES_MAX)
        {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let mut groups = self.groups.borrow_mut();
        if !groups.contains_key(&args.group) {
            if !args.member_id.is_empty() {
                return fail(ResponseError::UnknownMemberId);
            }
            if groups.len() >= GROUPS_PER_CORE_MAX {
                tracing::warn!(max = GROUPS_PER_CORE_MAX, "groups per core at the bound");
                return fail(ResponseError::CoordinatorNotAvailable);
            }
            groups.insert(args.group.clone(), Group::new(&args.group, now_ms()));
        }
        let Some(group) = groups.get_mut(&args.group) else {
            return fail(ResponseError::CoordinatorNotAvailable);
        };
        if !group.members.is_empty()
            && (group.protocol_type.as_deref() != Some(args.protocol_type.as_str())
                || group.common_protocols(&args.protocols).is_empty())
        {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let now = Instant::now();
        if args.member_id.is_empty() {
            if let Some(instance) = &args.instance_id {
                if let Some(old_id) = group.instance_member(instance) {
                    return Ok(self.rejoin_static(group, &old_id, args, now));
                }
            }
            let new_id = self.new_member_id(&args.client_id);
            if args.require_known_member_id && args.instance_id.is_none() {
                let session = Duration::from_millis(args.session_timeout_ms.max(0) as u64);
                group.pending.insert(new_id.clone(), (now, session));
                return Err((ResponseError::MemberIdRequired, new_id));
            }
            return self.add_member(group, new_id, args, now);
        }
        if group.pending.remove(&args.member_id).is_some() {
            let id = args.member_id.clone();
            return self.add_member(group, id, args, now);
        }
        let Some(member) = group.members.get_mut(&args.member_id) else {
            let fenced = args
                .instance_id
                .as_deref()
                .is_some_and(|i| group.instance_member(i).is_some());
            return fail(if fenced {
                ResponseError::FencedInstanceId
            } else {
                ResponseError::UnknownMemberId
            });
        };
        if args.instance_id.is_some() && member.instance_id != args.instance_id {
            return fail(ResponseError::FencedInstanceId);
        }
        let unchanged = member.protocols == args.protocols;
        member.protocols = args.protocols;
        member.session_timeout_ms = args.session_timeout_ms;
        member.rebalance_timeout_ms = args.rebalance_timeout_ms;
        member.last_heartbeat = now;
        let is_leader = group.leader.as_deref() == Some(args.member_id.as_str());
        match group.state {
            State::CompletingRebalance if unchanged => {
                Ok(Answer::Now(group.current_join(&args.member_id)))
            }
            State::Stable if unchanged && !is_leader => {
                Ok(Answer::Now(group.current_join(&args.member_id)))
            }
            _ => Ok(Answer::Wait(self.await_join(group, &args.member_id, now))),
        }
    }

    fn add_member(
        &self,
        group: &mut Group,
        id: String,
        args: JoinArgs,
        now: Instant,
    ) -> Result<Answer<Joined>, (ResponseError, String)> {
        if group.members.len() >= self.config.max_size {
            return Err((ResponseError::GroupMaxSizeReached, id));
        }
        if group.members.is_empty() {
            group.protocol_type = Some(args.protocol_type.clone());
        }
        let seq = self.next_member.get();
        self.next_member.set(seq + 1);
        group.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: args.instance_id,
                client_id: args.client_id,
                client_host: args.client_host,
                session_timeout_ms: args.session_timeout_ms,
                rebalance_timeout_ms: args.rebalance_timeout_ms,
                protocols: args.protocols,
                assignment: Bytes::new(),
                last_heartbeat: now,
                joined_seq: seq,
                join_waiter: None,
                sync_waiter: None,
            },
        );
        Ok(Answer::Wait(self.await_join(group, &id, now)))
    }

    /// A static member (group.instance.id) came back with no member id:
    /// it takes over its old identity under a new member id; the old one is
    /// fenced. A stable group with unchanged protocols does not rebalance.
    fn rejoin_static(
        &self,
        group: &mut Group,
        old_id: &str,
        args: JoinArgs,
        now: Instant,
    ) -> Answer<Joined> {
        let new_id = self.new_member_id(&args.client_id);
        let Some(mut member) = group.members.remove(old_id) else {
            return Answer::Now(Joined::failed(ResponseError::UnknownMemberId, ""));
        };
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(Joined::failed(ResponseError::FencedInstanceId, old_id));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(Err(ResponseError::FencedInstanceId));
        }
        let unchanged = member.protocols == args.protocols;
        member.id = new_id.clone();
        member.protocols = args.protocols;
        member.session_timeout_ms = args.session_timeout_ms;
        member.rebalance_timeout_ms = args.rebalance_timeout_ms;
        member.client_id = args.client_id;
        member.client_host = args.client_host;
        member.last_heartbeat = now;
        if group.leader.as_deref() == Some(old_id) {
            group.leader = Some(new_id.clone());
        }
        let is_leader = group.leader.as_deref() == Some(new_id.as_str());
        group.members.insert(new_id.clone(), member);
        if group.state == State::Stable && unchanged && !is_leader {
            return Answer::Now(group.current_join(&new_id));
        }
        Answer::Wait(self.await_join(group, &new_id, now))
    }

    fn await_join(
        &self,
        group: &mut Group,
        member_id: &str,
        now: Instant,
    ) -> flume::Receiver<Joined> {
        let (sender, receiver) = flume::bounded(1);
        if let Some(member) = group.members.get_mut(member_id) {
            if let Some(old) = member.join_waiter.replace(sender) {
                // A second join while the first waits: the first is superseded.
                let _ = old.send(Joined::failed(
                    ResponseError::RebalanceInProgress,
                    member_id,
                ));
            }
        }
        if group.state != State::PreparingRebalance {
            self.prepare_rebalance(group, now);
        }
        self.maybe_complete_join(group, now);
        receiver
    }

    fn prepare_rebalance(&self, group: &mut Group, now: Instant) {
        tracing::debug!(group = %group.id, from = group.state.name(), members = group.members.len(), "rebalance");
        if group.state == State::CompletingRebalance {
            for member in group.members.values_mut() {
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(Err(ResponseError::RebalanceInProgress));
                }
            }
        }
        let was_empty = group.state == State::Empty;
        group.state = State::PreparingRebalance;
        group.sync_deadline = None;
        let timeout = group.rebalance_timeout();
        group.join_deadline = Some(now + timeout);
        group.initial_delay_until = was_empty.then(|| {
            now + Duration::from_millis(self.config.initial_rebalance_delay_ms.max(0) as u64)
                .min(timeout)
        });
    }

    /// Completes the join round once every member has rejoined (and the
    /// initial delay of a new group passed), or at the rebalance deadline.
    /// Returns true when the group changed in a way worth persisting.
    fn maybe_complete_join(&self, group: &mut Group, now: Instant) -> bool {
        if group.state != State::PreparingRebalance {
            return false;
        }
        let all_joined =
            group.pending.is_empty() && group.members.values().all(|m| m.join_waiter.is_some());
        let delay_over = group.initial_delay_until.is_none_or(|t| now >= t);
        let deadline_passed = group.join_deadline.is_some_and(|t| now >= t);
        if !(deadline_passed || all_joined && delay_over) {
            return false;
        }
        group.members.retain(|_, m| m.join_waiter.is_some());
        group.pending.clear();
        group.generation = group.generation.wrapping_add(1).max(1);
        group.join_deadline = None;
        group.initial_delay_until = None;
        if group.members.is_empty() {
            group.state = State::Empty;
            group.protocol = None;
            group.leader = None;
            group.empty_since_ms = now_ms();
            return true;
        }
        group.protocol = group.select_protocol();
        if !group
            .leader
            .as_ref()
            .is_some_and(|l| group.members.contains_key(l))
        {
            group.leader = group
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.id.clone());
        }
        tracing::debug!(group = %group.id, generation = group.generation, members = group.members.len(), "join round complete");
        group.state = State::CompletingRebalance;
        group.sync_deadline = Some(now + group.rebalance_timeout());
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in ids {
            let joined = group.current_join(&id);
            if let Some(member) = group.members.get_mut(&id) {
                member.last_heartbeat = now;
                if let Some(waiter) = member.join_waiter.take() {
                    let _ = waiter.send(joined);
                }
            }
        }
        true
    }

    /// SyncGroup. `assignments` is the leader's; others send none.
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
    ) -> Answer<SyncAnswer> {
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(group_id) else {
            return Answer::Now(Err(ResponseError::UnknownMemberId));
        };
        if let Err(error) = check_member(group, member_id, instance_id, generation) {
            return Answer::Now(Err(error));
        }
        let (protocol_type, protocol_name) = protocol;
        if protocol_type.is_some_and(|t| Some(t) != group.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != group.protocol.as_deref())
        {
            return Answer::Now(Err(ResponseError::InconsistentGroupProtocol));
        }
        let now = Instant::now();
        match group.state {
            State::Empty => Answer::Now(Err(ResponseError::UnknownMemberId)),
            State::PreparingRebalance => Answer::Now(Err(ResponseError::RebalanceInProgress)),
            State::Stable => {
                let Some(member) = group.members.get_mut(member_id) else {
                    return Answer::Now(Err(ResponseError::UnknownMemberId));
                };
                member.last_heartbeat = now;
                Answer::Now(Ok((
                    group.protocol_type.clone(),
                    group.protocol.clone(),
                    member.assignment.clone(),
                )))
            }
            State::CompletingRebalance => {
                let (sender, receiver) = flume::bounded(1);
                if let Some(member) = group.members.get_mut(member_id) {
                    member.last_heartbeat = now;
                    member.sync_waiter = Some(sender);
                }
                if group.leader.as_deref() == Some(member_id) {
                    if assignments
                        .iter()
                        .any(|(_, a)| a.len() > GROUP_ASSIGNMENT_BYTES_MAX)
                    {
                        if let Some(member) = group.members.get_mut(member_id) {
                            member.sync_waiter = None;
                        }
                        return Answer::Now(Err(ResponseError::InvalidRequest));
                    }
                    let mut assigned: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for member in group.members.values_mut() {
                        // Unknown member ids in the leader's plan are ignored;
                        // a member the plan forgot gets an empty assignment.
                        member.assignment = assigned.remove(&member.id).unwrap_or_default();
                    }
                    group.state = State::Stable;
                    group.sync_deadline = None;
                    let (protocol_type, protocol) =
                        (group.protocol_type.clone(), group.protocol.clone());
                    for member in group.members.values_mut() {
                        if let Some(waiter) = member.sync_waiter.take() {
                            let _ = waiter.send(Ok((
                                protocol_type.clone(),
                                protocol.clone(),
                                member.assignment.clone(),
                            )));
                        }
                    }
                }
                Answer::Wait(receiver)
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(group_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if let Err(error) = check_member(group, member_id, instance_id, generation) {
            return error.code();
        }
        if let Some(member) = group.members.get_mut(member_id) {
            member.last_heartbeat = Instant::now();
        }
        match group.state {
            State::Empty => ResponseError::UnknownMemberId.code(),
            State::PreparingRebalance => ResponseError::RebalanceInProgress.code(),
            State::CompletingRebalance | State::Stable => 0,
        }
    }

    /// Removes members (LeaveGroup); one error per identity.
    pub fn leave(&self, group_id: &str, identities: &[(String, Option<String>)]) -> Vec<i16> {
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(group_id) else {
            return vec![ResponseError::UnknownMemberId.code(); identities.len()];
        };
        let now = Instant::now();
        let mut errors = Vec::with_capacity(identities.len());
        for (member_id, instance_id) in identities {
            let id = match (member_id.as_str(), instance_id) {
                ("", Some(instance)) => group.instance_member(instance),
                (id, Some(instance)) => match group.instance_member(instance) {
                    Some(found) if found == id => Some(found),
                    Some(_) => {
                        errors.push(ResponseError::FencedInstanceId.code());
                        continue;
                    }
                    None => None,
                },
                (id, None) => group.members.contains_key(id).then(|| id.to_string()),
            };
            match id {
                Some(id) => {
                    self.remove_member(group, &id, now);
                    errors.push(0);
                }
                None if group.pending.remove(member_id).is_some() => errors.push(0),
                None => errors.push(ResponseError::UnknownMemberId.code()),
            }
        }
        errors
    }

    fn remove_member(&self, group: &mut Group, id: &str, now: Instant) {
        if let Some(mut member) = group.members.remove(id) {
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(Joined::failed(ResponseError::UnknownMemberId, id));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Err(ResponseError::UnknownMemberId));
            }
        }
        match group.state {
            State::Stable | State::CompletingRebalance => self.prepare_rebalance(group, now),
            State::PreparingRebalance | State::Empty => {}
        }
        self.maybe_complete_join(group, now);
    }

    /// Session and rebalance timers. Returns the groups whose metadata
    /// changed (to persist) and the groups whose offsets expired (to
    /// tombstone).
    /// Only groups for which `loaded` holds are looked at (the others are
    /// still being replayed).
    pub fn tick(&self, loaded: impl Fn(&str) -> bool) -> (Vec<Entry>, Vec<Entry>) {
        let now = Instant::now();
        let wall_ms = now_ms();
        let mut changed = Vec::new();
        let mut expired = Vec::new();
        // Kafka's cleanupGroupMetadata: every offsets.retention.check.interval.ms.
        let interval = Duration::from_millis(self.config.offsets_retention_check_interval_ms);
        let cleanup = now.duration_since(self.last_cleanup.get()) >= interval;
        if cleanup {
            self.last_cleanup.set(now);
        }
        let mut groups = self.groups.borrow_mut();
        for group in groups.values_mut().filter(|g| loaded(&g.id)) {
            let before = (group.generation, group.state);
            let pending_before = group.pending.len();
            group
                .pending
                .retain(|_, (since, session)| now.duration_since(*since) <= *session);
            if group.pending.len() != pending_before {
                // A member that never came back with its id no longer holds
                // up the join round.
                self.maybe_complete_join(group, now);
            }
            let dead: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    m.join_waiter.is_none()
                        && now.duration_since(m.last_heartbeat)
                            > Duration::from_millis(m.session_timeout_ms.max(0) as u64)
                })
                .map(|m| m.id.clone())
                .collect();
            for id in dead {
                tracing::info!(group = %group.id, member = %id, "session timeout: member removed");
                self.remove_member(group, &id, now);
            }
            if group.state == State::CompletingRebalance
                && group.sync_deadline.is_some_and(|t| now >= t)
            {
                let unsynced: Vec<String> = group
                    .members
                    .values()
                    .filter(|m| m.sync_waiter.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for id in unsynced {
                    self.remove_member(group, &id, now);
                }
                if group.state == State::CompletingRebalance {
                    self.prepare_rebalance(group, now);
                }
            }
            self.maybe_complete_join(group, now);
            if (group.generation, group.state) != before {
                changed.push(group.record(wall_ms));
            }
            if cleanup
                && group.state == State::Empty
                && !group.offsets.is_empty()
                && wall_ms.saturating_sub(group.empty_since_ms) > self.config.offsets_retention_ms
            {
                tracing::info!(group = %group.id, "offsets expired (offsets.retention.minutes)");
                expired.extend(tombstones(group));
                group.offsets.clear();
            }
        }
        // Empty groups with nothing committed are forgotten at the cleanup,
        // as in Kafka: until then they stay listed (a deleted topic's
        // offsets going does not make its group vanish at once).
        if cleanup {
            groups.retain(|_, g| {
                !(loaded(&g.id)
                    && g.state == State::Empty
                    && g.offsets.is_empty()
                    && g.pending.is_empty())
            });
        }
        (changed, expired)
    }
}

/// Tombstones for a group's offsets and metadata.
pub fn tombstones(group: &Group) -> Vec<Entry> {
    let mut entries: Vec<Entry> = group
        .offsets
        .keys()
        .map(|(topic, partition)| Entry::Offset {
            group: group.id.clone(),
            topic: topic.clone(),
            partition: *partition,
            value: None,
        })
        .collect();
    entries.push(Entry::Group {
        group: group.id.clone(),
        value: None,
    });
    entries
}

/// Member and generation checks shared by SyncGroup, Heartbeat and
/// OffsetCommit.
pub(crate) fn check_member(
    group: &Group,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> Result<(), ResponseError> {
    let Some(member) = group.members.get(member_id) else {
        if instance_id.is_some_and(|i| group.instance_member(i).is_some()) {
            return Err(ResponseError::FencedInstanceId);
        }
        return Err(ResponseError::UnknownMemberId);
    };
    if instance_id.is_some() && member.instance_id.as_deref() != instance_id {
        return Err(ResponseError::FencedInstanceId);
    }
    if generation != group.generation {
        return Err(ResponseError::IllegalGeneration);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordinator() -> Coordinator {
        Coordinator::new(GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        })
    }

    fn args(member_id: &str, protocols: &[&str]) -> JoinArgs {
        JoinArgs {
            group: "g".into(),
            member_id: member_id.into(),
            instance_id: None,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
                .collect(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 60_000,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
        }
    }

    fn now(answer: Answer<Joined>) -> Joined {
        match answer {
            Answer::Now(joined) => joined,
            Answer::Wait(_) => panic!("expected an immediate answer"),
        }
    }

    fn waiting(answer: Answer<Joined>) -> flume::Receiver<Joined> {
        match answer {
            Answer::Wait(receiver) => receiver,
            Answer::Now(joined) => panic!("expected to wait, got {joined:?}"),
        }
    }

    /// Joins a new member through MEMBER_ID_REQUIRED; returns its id and
    /// the pending join.
    fn join_new(c: &Coordinator, protocols: &[&str]) -> (String, flume::Receiver<Joined>) {
        let first = now(c.join(args("", protocols)));
        assert_eq!(first.error, ResponseError::MemberIdRequired.code());
        let id = first.member_id.clone();
        (id.clone(), waiting(c.join(args(&id, protocols))))
    }

    fn sync_now(
        c: &Coordinator,
        id: &str,
        generation: i32,
        plan: Vec<(String, Bytes)>,
    ) -> SyncAnswer {
        match c.sync("g", id, None, generation, (None, None), plan) {
            Answer::Now(answer) => answer,
            Answer::Wait(receiver) => receiver.try_recv().expect("sync answered"),
        }
    }

    #[test]
    fn a_lone_member_gets_an_id_then_leads_generation_one() {
        let c = coordinator();
        let (id, joined) = join_new(&c, &["range"]);
        let joined = joined.try_recv().expect("round complete");
        assert_eq!(joined.error, 0);
        assert_eq!(joined.generation, 1);
        assert_eq!(joined.leader, id);
        assert_eq!(joined.protocol.as_deref(), Some("range"));
        assert_eq!(joined.members.len(), 1);
        let assignment = Bytes::from_static(b"all of it");
        let synced = sync_now(&c, &id, 1, vec![(id.clone(), assignment.clone())]);
        assert_eq!(synced.expect("synced").2, assignment);
        assert_eq!(c.heartbeat("g", &id, None, 1), 0);
    }

    #[test]
    fn a_second_member_rebalances_and_both_get_their_assignment() {
        let c = coordinator();
        let (a, joined_a) = join_new(&c, &["range"]);
        joined_a.try_recv().expect("gen 1");
        sync_now(&c, &a, 1, vec![(a.clone(), Bytes::from_static(b"a1"))]).expect("sync");
        let (b, joined_b) = join_new(&c, &["range"]);
        assert!(joined_b.try_recv().is_err(), "waits for the old member");
        assert_eq!(
            c.heartbeat("g", &a, None, 1),
            ResponseError::RebalanceInProgress.code()
        );
        let joined_a = waiting(c.join(args(&a, &["range"])));
        let (ja, jb) = (
            joined_a.try_recv().expect("a"),
            joined_b.try_recv().expect("b"),
        );
        assert_eq!((ja.generation, jb.generation), (2, 2));
        assert_eq!(ja.leader, a, "the old leader keeps leading");
        assert_eq!(ja.members.len(), 2);
        assert!(jb.members.is_empty(), "only the leader sees members");
        // The follower waits for the leader's plan.
        let follower = match c.sync("g", &b, None, 2, (None, None), Vec::new()) {
            Answer::Wait(receiver) => receiver,
            Answer::Now(answer) => panic!("follower answered early: {answer:?}"),
        };
        let plan = vec![
            (a.clone(), Bytes::from_static(b"a2")),
            (b.clone(), Bytes::from_static(b"b2")),
        ];
        assert_eq!(
            sync_now(&c, &a, 2, plan).expect("leader").2,
            Bytes::from_static(b"a2")
        );
        assert_eq!(
            follower.try_recv().expect("follower").expect("ok").2,
            Bytes::from_static(b"b2")
        );
        assert_eq!(
            c.heartbeat("g", &b, None, 1),
            ResponseError::IllegalGeneration.code()
        );
        assert_eq!(
            c.heartbeat("g", "nobody", None, 2),
            ResponseError::UnknownMemberId.code()
        );
    }

    #[test]
    fn leaving_rebalances_the_rest_and_the_last_leave_empties_the_group() {
        let c = coordinator();
        let (a, ja) = join_new(&c, &["range"]);
        ja.try_recv().expect("gen 1");
        let (b, jb) = join_new(&c, &["range"]);
        let ja = waiting(c.join(args(&a, &["range"])));
        let generation = ja.try_recv().expect("a").generation;
        jb.try_recv().expect("b");
        assert_eq!(c.leave("g", &[(b.clone(), None)]), vec![0]);
        assert_eq!(
            c.heartbeat("g", &a, None, generation),
            ResponseError::RebalanceInProgress.code()
        );
        let alone = waiting(c.join(args(&a, &["range"])))
            .try_recv()
            .expect("alone");
        assert_eq!(alone.generation, generation + 1);
        assert_eq!(alone.members.len(), 1);
        assert_eq!(c.leave("g", &[(a.clone(), None)]), vec![0]);
        assert_eq!(c.groups.borrow()["g"].state, State::Empty);
        assert_eq!(
            c.leave("g", &[("ghost".into(), None)]),
            vec![ResponseError::UnknownMemberId.code()]
        );
    }

    #[test]
    fn members_must_share_the_protocol_type_and_a_protocol() {
        let c = coordinator();
        let (_, ja) = join_new(&c, &["range"]);
        ja.try_recv().expect("gen 1");
        let mut other = args("", &["range"]);
        other.protocol_type = "connect".into();
        assert_eq!(
            now(c.join(other)).error,
            ResponseError::InconsistentGroupProtocol.code()
        );
        assert_eq!(
            now(c.join(args("", &["roundrobin"]))).error,
            ResponseError::InconsistentGroupProtocol.code()
        );
        let mut short = args("", &["range"]);
        short.session_timeout_ms = 10;
        assert_eq!(
            now(c.join(short)).error,
            ResponseError::InvalidSessionTimeout.code()
        );
    }

    #[test]
    fn the_protocol_most_members_prefer_wins() {
        let c = coordinator();
        let (a, ja) = join_new(&c, &["roundrobin", "range"]);
        ja.try_recv().expect("gen 1");
        let (b, jb) = join_new(&c, &["range", "roundrobin"]);
        let (_, jc) = join_new(&c, &["range", "roundrobin"]);
        let ja = waiting(c.join(args(&a, &["roundrobin", "range"])));
        let _ = b;
        for joined in [ja, jb, jc] {
            assert_eq!(
                joined.try_recv().expect("joined").protocol.as_deref(),
                Some("range")
            );
        }
    }

    #[test]
    fn a_static_member_rejoins_without_a_rebalance_and_fences_its_old_id() {
        let c = coordinator();
        let (leader, joined) = join_new(&c, &["range"]);
        joined.try_recv().expect("gen 1");
        sync_now(&c, &leader, 1, Vec::new()).expect("sync");
        let mut static_join = args("", &["range"]);
        static_join.instance_id = Some("host-1".into());
        let joined_static = waiting(c.join(static_join));
        let rejoined_leader = waiting(c.join(args(&leader, &["range"])));
        let static_joined = joined_static
            .try_recv()
            .expect("static members skip MEMBER_ID_REQUIRED");
        let generation = rejoined_leader.try_recv().expect("leader").generation;
        assert_eq!(static_joined.leader, leader);
        let old = static_joined.member_id;
        let follower = match c.sync(
            "g",
            &old,
            Some("host-1"),
            generation,
            (None, None),
            Vec::new(),
        ) {
            Answer::Wait(receiver) => receiver,
            Answer::Now(answer) => panic!("answered before the leader: {answer:?}"),
        };
        let plan = vec![(old.clone(), Bytes::from_static(b"p0"))];
        sync_now(&c, &leader, generation, plan).expect("leader sync");
        assert_eq!(
            follower.try_recv().expect("synced").expect("ok").2,
            Bytes::from_static(b"p0")
        );
        // The static member restarts: same instance id, no member id.
        let mut restart = args("", &["range"]);
        restart.instance_id = Some("host-1".into());
        let rejoined = now(c.join(restart));
        assert_eq!(rejoined.error, 0);
        assert_ne!(rejoined.member_id, old);
        assert_eq!(rejoined.generation, generation, "no rebalance");
        assert_eq!(
            c.heartbeat("g", &old, Some("host-1"), generation),
            ResponseError::FencedInstanceId.code()
        );
        assert_eq!(
            c.heartbeat("g", &rejoined.member_id, Some("host-1"), generation),
            0
        );
        let kept = sync_now(&c, &rejoined.member_id, generation, Vec::new()).expect("stable sync");
        assert_eq!(
            kept.2,
            Bytes::from_static(b"p0"),
            "the assignment follows the instance"
        );
    }

    #[test]
    fn an_empty_group_without_offsets_stays_listed_until_the_retention_check() {
        let hourly = Coordinator::new(GroupConfig {
            offsets_retention_check_interval_ms: 3_600_000,
            ..GroupConfig::default()
        });
        // An interval of 0: every tick is a retention check.
        let checked_now = Coordinator::new(GroupConfig {
            offsets_retention_check_interval_ms: 0,
            ..GroupConfig::default()
        });
        for coordinator in [&hourly, &checked_now] {
            coordinator
                .groups
                .borrow_mut()
                .insert("left".into(), Group::new("left", now_ms()));
        }
        hourly.tick(|_| true);
        checked_now.tick(|_| true);
        assert!(
            hourly.groups.borrow().contains_key("left"),
            "kept until the check"
        );
        assert!(
            !checked_now.groups.borrow().contains_key("left"),
            "forgotten at the check"
        );
    }

    #[test]
    fn the_timers_leave_a_group_alone_until_its_partition_is_replayed() {
        // Expired by retention: a decision on a half-replayed group would
        // be written after the newer records still to be replayed.
        let coordinator = Coordinator::new(GroupConfig {
            offsets_retention_check_interval_ms: 0,
            offsets_retention_ms: 1,
            ..GroupConfig::default()
        });
        let mut group = Group::new("replaying", 0);
        group.offsets.insert(
            ("t".into(), 0),
            crate::group::store::CommittedOffset {
                offset: 7,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 0,
            },
        );
        coordinator
            .groups
            .borrow_mut()
            .insert("replaying".into(), group);
        let (changed, expired) = coordinator.tick(|_| false);
        assert!(changed.is_empty() && expired.is_empty());
        assert_eq!(coordinator.groups.borrow()["replaying"].offsets.len(), 1);
        let (_, expired) = coordinator.tick(|_| true);
        assert!(!expired.is_empty(), "expired once loaded");
        assert!(!coordinator.groups.borrow().contains_key("replaying"));
    }
}
