//! The controller thread: its own glommio executor (unpinned), so the Raft
//! store's blocking writes and fdatasyncs never stall a data core. It runs
//! this node's voter (if `process.roles` has `controller`), the controller
//! listener, one sender per peer voter, and forwards requests to the active
//! controller. Brokers talk to it through the `Controller` handle: calls
//! (answered once committed), the current image, and a stream of applied
//! updates. A broker that does not vote follows the committed log from a
//! voter instead (`follow`).

use crate::decide::{ControllerError, Request};
use crate::image::MetadataImage;
use crate::node::{Answer, Node, NodeConfig};
use crate::records::MetadataRecord;
use crate::rpc::{self, Fetched, Kind, QuorumStatus, RpcError};
use crate::store::{Durability, RaftStore, StoreError};
use futures_lite::{future, AsyncRead, AsyncWrite};
use glommio::net::{TcpListener, TcpStream};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

fn raft_id(node_id: i32) -> u64 {
    node_id as u64 + 1
}

fn node_id(raft_id: u64) -> u64 {
    raft_id.saturating_sub(1)
}

/// io_uring memory of the controller's executor (small: it moves little).
pub const IO_MEMORY_BYTES: usize = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: i32,
    /// `controller.quorum.voters`: (id, controller listener address).
    pub voters: Vec<(u64, SocketAddr)>,
    /// `process.roles` has `controller`.
    pub is_voter: bool,
    /// This voter's controller listener.
    pub listen: Option<SocketAddr>,
    /// `<data-dir>/__cluster_metadata-0`
    pub dir: PathBuf,
    pub tick_ms: u64,
    pub election_ticks: usize,
    pub session_timeout_ms: u64,
    pub snapshot_entries: u64,
    pub durability: Durability,
    /// Kafka's `auto.leader.rebalance.enable`: (`leader.imbalance.check
    /// .interval.seconds`, `leader.imbalance.per.broker.percentage`), by
    /// default (300 s, 10); None: disabled.
    pub leader_rebalance: Option<(Duration, u32)>,
    /// The controller listener's TLS (its protocol is SSL); None: plain.
    pub tls: Option<ControllerTls>,
}

/// TLS on every controller connection: the listener's acceptor (with
/// `ssl.client.auth=required` it admits only peers whose certificate the
/// truststore trusts, which is what authenticates a controller or broker
/// here) and the connector voters and brokers dial with (the peer's
/// certificate checked against the truststore and for the voter's IP
/// address, this node's own certificate offered).
#[derive(Clone)]
pub struct ControllerTls {
    pub acceptor: Option<futures_rustls::TlsAcceptor>,
    pub connector: futures_rustls::TlsConnector,
}

impl std::fmt::Debug for ControllerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerTls")
            .field("acceptor", &self.acceptor.is_some())
            .finish()
    }
}

/// A controller connection, plain or TLS.
trait Duplex: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Duplex for T {}
type Link = Box<dyn Duplex>;

/// How long an accepted connection may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("metadata log {}: {source}", dir.display())]
    Store { dir: PathBuf, source: StoreError },
    #[error("node.id {0} is not among controller.quorum.voters")]
    NotAVoter(i32),
    #[error("controller thread: {0}")]
    Thread(String),
}

/// One applied entry, published to every subscriber in log order.
#[derive(Debug, Clone)]
pub struct Update {
    pub index: u64,
    pub records: Arc<Vec<MetadataRecord>>,
    /// The image right after it.
    pub image: Arc<MetadataImage>,
}

struct Shared {
    image: Mutex<Arc<MetadataImage>>,
    subscribers: Mutex<Vec<flume::Sender<Update>>>,
    status: Mutex<QuorumStatus>,
    commit_latency: Mutex<CommitLatency>,
}

/// Upper bounds of the commit latency buckets, in seconds (+Inf implied).
pub const COMMIT_LATENCY_BOUNDS_S: [f64; 12] = [
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How long requests submitted on this node (its voter, while it leads)
/// took from submission to their answer: proposed, replicated to a
/// majority, committed and applied (Kafka's raft-metrics commit-latency).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitLatency {
    /// Per bucket of `COMMIT_LATENCY_BOUNDS_S`, then +Inf (not cumulative).
    pub buckets: [u64; COMMIT_LATENCY_BOUNDS_S.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl CommitLatency {
    fn record(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = COMMIT_LATENCY_BOUNDS_S
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(COMMIT_LATENCY_BOUNDS_S.len());
        self.buckets[bucket] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Held only for plain assignments; a panic cannot leave it half-done.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn publish(&self, index: u64, records: Vec<MetadataRecord>, image: MetadataImage) {
        let image = Arc::new(image);
        *lock(&self.image) = image.clone();
        let update = Update {
            index,
            records: Arc::new(records),
            image,
        };
        lock(&self.subscribers).retain(|s| s.send(update.clone()).is_ok());
    }
}

enum Command {
    Call {
        request: Request,
        reply: flume::Sender<Answer>,
        /// The caller gives up then: the request must not reach a leader
        /// after it (a write answered "timed out" must not commit later).
        deadline: Instant,
    },
    Status {
        reply: flume::Sender<QuorumStatus>,
    },
}

/// What brokers hold: cheap to clone, `Send`.
#[derive(Clone)]
pub struct Controller {
    shared: Arc<Shared>,
    commands: flume::Sender<Command>,
}

impl Controller {
    pub fn start(mut config: ControllerConfig) -> Result<Controller, StartError> {
        // raft-rs reserves id 0 and Kafka's node ids start at 0: inside the
        // quorum a node is `node.id + 1` (QuorumStatus reports node ids).
        for (id, _) in &mut config.voters {
            *id += 1;
        }
        let store = if config.is_voter {
            if !config
                .voters
                .iter()
                .any(|(id, _)| *id == raft_id(config.node_id))
            {
                return Err(StartError::NotAVoter(config.node_id));
            }
            let ids: Vec<u64> = config.voters.iter().map(|(id, _)| *id).collect();
            let store =
                RaftStore::open(&config.dir, &ids, config.durability).map_err(|source| {
                    StartError::Store {
                        dir: config.dir.clone(),
                        source,
                    }
                })?;
            Some(store)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            image: Mutex::new(Arc::new(MetadataImage::default())),
            subscribers: Mutex::new(Vec::new()),
            status: Mutex::new(QuorumStatus::default()),
            commit_latency: Mutex::new(CommitLatency::default()),
        });
        let (commands, receiver) = flume::unbounded();
        let thread_shared = shared.clone();
        let (recovered, recovery) = flume::bounded(1);
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name("sluice-controller")
            .io_memory(IO_MEMORY_BYTES)
            .spawn(
                move || async move { run(config, store, thread_shared, receiver, recovered).await },
            )
            .map_err(|e| StartError::Thread(e.to_string()))?;
        // The image holds everything committed before a restart once this
        // returns, so the broker opens its partitions from a whole picture.
        match recovery.recv() {
            Ok(Ok(())) => Ok(Controller { shared, commands }),
            Ok(Err(reason)) => Err(StartError::Thread(reason)),
            Err(_) => Err(StartError::Thread("stopped while recovering".into())),
        }
    }

    /// The request, answered by the active controller once its records
    /// committed (`Ok((index, response))`), or refused; `Timeout` when no
    /// quorum answered within `timeout`.
    pub async fn call(&self, request: Request, timeout: Duration) -> Answer {
        let (reply, answer) = flume::bounded(1);
        let deadline = Instant::now() + timeout;
        if self
            .commands
            .send(Command::Call {
                request,
                reply,
                deadline,
            })
            .is_err()
        {
            return Err(ControllerError::Stopping);
        }
        let answered = async { answer.recv_async().await.ok() };
        let expired = async {
            glommio::timer::sleep(timeout).await;
            None
        };
        match future::or(answered, expired).await {
            Some(answer) => answer,
            None => Err(ControllerError::Timeout(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// The quorum as the active controller sees it (or this node, if it
    /// cannot reach one).
    pub async fn quorum(&self, timeout: Duration) -> QuorumStatus {
        let (reply, answer) = flume::bounded(1);
        if self.commands.send(Command::Status { reply }).is_ok() {
            let answered = async { answer.recv_async().await.ok() };
            let expired = async {
                glommio::timer::sleep(timeout).await;
                None
            };
            if let Some(status) = future::or(answered, expired).await {
                return status;
            }
        }
        lock(&self.shared.status).clone()
    }

    pub fn local_status(&self) -> QuorumStatus {
        lock(&self.shared.status).clone()
    }

    /// The commit latency of requests this node's voter took as leader.
    pub fn commit_latency(&self) -> CommitLatency {
        lock(&self.shared.commit_latency).clone()
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        lock(&self.shared.image).clone()
    }

    /// The current image and every update after it, in order.
    pub fn subscribe(&self) -> (Arc<MetadataImage>, flume::Receiver<Update>) {
        let (sender, receiver) = flume::unbounded();
        // Both under the subscriber lock: no update falls between them.
        let mut subscribers = lock(&self.shared.subscribers);
        let image = lock(&self.shared.image).clone();
        subscribers.push(sender);
        (image, receiver)
    }
}

struct Thread {
    config: ControllerConfig,
    node: Option<RefCell<Node>>,
    shared: Arc<Shared>,
    started: Instant,
    next_token: std::cell::Cell<u64>,
    /// Submitted requests awaiting their answer, and when they were.
    waiting: RefCell<HashMap<u64, (flume::Sender<Answer>, Instant)>>,
    peers: HashMap<u64, flume::Sender<raft::prelude::Message>>,
    wake: flume::Sender<()>,
    /// Without a vote: the leader the voters last named (raft id).
    observed_leader: std::cell::Cell<Option<u64>>,
}

async fn run(
    config: ControllerConfig,
    store: Option<RaftStore>,
    shared: Arc<Shared>,
    commands: flume::Receiver<Command>,
    recovered: flume::Sender<Result<(), String>>,
) {
    let (wake, woken) = flume::unbounded();
    let node = match store {
        Some(store) => {
            let node_config = NodeConfig {
                id: raft_id(config.node_id),
                voters: config.voters.iter().map(|(id, _)| *id).collect(),
                election_ticks: config.election_ticks,
                heartbeat_ticks: 2,
                session_timeout_ms: config.session_timeout_ms,
                snapshot_entries: config.snapshot_entries,
                seed: rand::random(),
                leader_rebalance: config.leader_rebalance,
            };
            // The snapshot, then the committed entries after it (raft-rs
            // hands them out in the first ready).
            let opened = Node::open(node_config, store).and_then(|mut node| {
                node.poll()?;
                Ok(node)
            });
            match opened {
                Ok(node) => {
                    *lock(&shared.image) = Arc::new(node.image().clone());
                    let _ = recovered.send(Ok(()));
                    Some(RefCell::new(node))
                }
                Err(error) => {
                    let _ = recovered.send(Err(error.to_string()));
                    return;
                }
            }
        }
        None => {
            let _ = recovered.send(Ok(()));
            None
        }
    };
    let mut peers = HashMap::new();
    if node.is_some() {
        for (id, address) in &config.voters {
            if *id != raft_id(config.node_id) {
                let (sender, receiver) = flume::bounded(4096);
                peers.insert(*id, sender);
                glommio::spawn_local(send_to_peer(*id, *address, config.tls.clone(), receiver))
                    .detach();
            }
        }
    }
    let thread = Rc::new(Thread {
        config,
        node,
        shared,
        started: Instant::now(),
        next_token: std::cell::Cell::new(1),
        waiting: RefCell::new(HashMap::new()),
        peers,
        wake,
        observed_leader: std::cell::Cell::new(None),
    });
    if let Some(address) = thread.config.listen.filter(|_| thread.node.is_some()) {
        match TcpListener::bind(address) {
            Ok(listener) => {
                glommio::spawn_local(accept(thread.clone(), listener)).detach();
            }
            Err(error) => {
                tracing::error!(%address, %error, "controller listener cannot bind");
                return;
            }
        }
    }
    if thread.node.is_none() {
        glommio::spawn_local(follow(thread.clone())).detach();
    }
    glommio::spawn_local(serve_commands(thread.clone(), commands)).detach();
    if thread.node.is_some() {
        drive(thread, woken).await;
    } else {
        // No voter to drive: the tasks above are the whole thread.
        future::pending::<()>().await;
    }
}

/// Ticks the node and runs its ready cycle whenever something happened.
async fn drive(thread: Rc<Thread>, woken: flume::Receiver<()>) {
    let tick = Duration::from_millis(thread.config.tick_ms);
    let mut next_tick = Instant::now() + tick;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let woke = async {
            let _ = woken.recv_async().await;
        };
        future::or(woke, glommio::timer::sleep(wait)).await;
        while woken.try_recv().is_ok() {}
        let Some(node) = &thread.node else {
            return;
        };
        if Instant::now() >= next_tick {
            node.borrow_mut().tick(thread.now_ms());
            next_tick += tick;
            if next_tick < Instant::now() {
                next_tick = Instant::now() + tick;
            }
        }
        let output = node.borrow_mut().poll();
        let output = match output {
            Ok(output) => output,
            Err(error) => {
                // The log cannot be made durable: stop voting rather than
                // acknowledge what is not on disk.
                tracing::error!(%error, "metadata log write failed; controller stops");
                std::process::abort();
            }
        };
        for message in output.messages {
            if let Some(peer) = thread.peers.get(&message.to) {
                let _ = peer.try_send(message);
            }
        }
        for (index, records) in output.applied {
            if records.is_empty() {
                // Raft's own entries: nothing for brokers to apply.
                continue;
            }
            let image = node.borrow().image().clone();
            thread.shared.publish(index, records, image);
        }
        for (token, answer) in output.answers {
            if let Some((reply, submitted)) = thread.waiting.borrow_mut().remove(&token) {
                lock(&thread.shared.commit_latency).record(submitted.elapsed());
                let _ = reply.send(answer);
            }
        }
        *lock(&thread.shared.status) = thread.status();
    }
}

impl Thread {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn status(&self) -> QuorumStatus {
        match &self.node {
            Some(node) => {
                let node = node.borrow();
                QuorumStatus {
                    node_id: node_id(node.id()),
                    leader: node.leader().map(node_id),
                    term: node.term(),
                    commit_index: node.commit_index(),
                    applied: node.image().applied,
                    voters: node
                        .progress()
                        .into_iter()
                        .map(|(id, matched)| (node_id(id), matched))
                        .collect(),
                }
            }
            None => QuorumStatus {
                node_id: self.config.node_id as u64,
                leader: self.observed_leader.get().map(node_id),
                applied: lock(&self.shared.image).applied,
                ..Default::default()
            },
        }
    }

    /// Submits to the local voter if it leads: the answer comes from
    /// `drive`. None if it does not lead.
    fn submit_here(&self, request: Request) -> Option<flume::Receiver<Answer>> {
        let node = self.node.as_ref()?;
        if !node.borrow().is_leader() {
            return None;
        }
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        let (reply, answer) = flume::bounded(1);
        self.waiting
            .borrow_mut()
            .insert(token, (reply, Instant::now()));
        node.borrow_mut().submit(token, request);
        let _ = self.wake.send(());
        Some(answer)
    }

    fn leader_hint(&self) -> Option<u64> {
        match &self.node {
            Some(node) => node.borrow().leader(),
            None => self.observed_leader.get(),
        }
    }

    fn address_of(&self, id: u64) -> Option<SocketAddr> {
        self.config
            .voters
            .iter()
            .find(|(voter, _)| *voter == id)
            .map(|(_, a)| *a)
    }

    /// The voters to try, the likely leader first.
    fn targets(&self, hint: Option<u64>) -> Vec<SocketAddr> {
        let mut targets: Vec<SocketAddr> = hint
            .and_then(|id| self.address_of(id))
            .into_iter()
            .collect();
        for (id, address) in &self.config.voters {
            if *id != raft_id(self.config.node_id) && !targets.contains(address) {
                targets.push(*address);
            }
        }
        targets
    }
}

async fn serve_commands(thread: Rc<Thread>, commands: flume::Receiver<Command>) {
    while let Ok(command) = commands.recv_async().await {
        let thread = thread.clone();
        glommio::spawn_local(async move {
            match command {
                Command::Call {
                    request,
                    reply,
                    deadline,
                } => {
                    let answer = call_anywhere(&thread, request, deadline).await;
                    let _ = reply.send(answer);
                }
                Command::Status { reply } => {
                    let status = status_anywhere(&thread).await;
                    let _ = reply.send(status);
                }
            }
        })
        .detach();
    }
}

/// Here if this node leads, else at the leader (following NotController
/// hints), until the caller's deadline. A request already handed to a
/// leader may still commit after the deadline (Raft cannot take it back);
/// one not yet handed over never is.
async fn call_anywhere(thread: &Rc<Thread>, request: Request, deadline: Instant) -> Answer {
    let pause = Duration::from_millis(thread.config.tick_ms);
    let mut hint = thread.leader_hint();
    let expired = || {
        Err(ControllerError::Timeout(
            "no active controller took the request in time".into(),
        ))
    };
    loop {
        if Instant::now() >= deadline {
            return expired();
        }
        if let Some(answer) = thread.submit_here(request.clone()) {
            match answer.recv_async().await {
                Ok(Err(ControllerError::NotController { leader })) => hint = leader,
                Ok(answer) => return answer,
                Err(_) => return Err(ControllerError::Stopping),
            }
        } else {
            for address in thread.targets(hint.or_else(|| thread.leader_hint())) {
                if Instant::now() >= deadline {
                    return expired();
                }
                match remote_call(address, thread.config.tls.as_ref(), &request, deadline).await {
                    Ok(Err(ControllerError::NotController { leader })) => {
                        if leader.is_some() {
                            hint = leader;
                        }
                    }
                    Ok(answer) => return answer,
                    Err(error) => tracing::debug!(%address, %error, "controller call"),
                }
            }
        }
        glommio::timer::sleep(pause).await;
        hint = thread.leader_hint().or(hint);
    }
}

async fn remote_call(
    address: SocketAddr,
    tls: Option<&ControllerTls>,
    request: &Request,
    deadline: Instant,
) -> Result<Answer, RpcError> {
    let left = deadline.saturating_duration_since(Instant::now());
    let called = async { Some(remote_call_once(address, tls, request).await) };
    let expired = async {
        glommio::timer::sleep(left).await;
        None
    };
    match future::or(called, expired).await {
        Some(result) => result,
        None => Ok(Err(ControllerError::Timeout(format!(
            "controller at {address} did not answer in time"
        )))),
    }
}

async fn remote_call_once(
    address: SocketAddr,
    tls: Option<&ControllerTls>,
    request: &Request,
) -> Result<Answer, RpcError> {
    let mut stream = connect(address, tls).await?;
    let frame = rpc::RequestFrame {
        request: request.clone(),
    };
    rpc::write_frame(&mut stream, Kind::Request, &rpc::to_json(&frame)).await?;
    let (kind, body) = rpc::read_frame(&mut stream).await?;
    if kind != Kind::Answer {
        return Err(RpcError::UnknownKind(kind as u8));
    }
    Ok(rpc::from_json::<rpc::AnswerFrame>(&body)?.answer)
}

async fn status_anywhere(thread: &Rc<Thread>) -> QuorumStatus {
    let here = thread.status();
    if thread.node.is_some() && here.leader == Some(here.node_id) {
        return here;
    }
    for address in thread.targets(here.leader.map(|id| id + 1)) {
        let asked = async {
            let mut stream = connect(address, thread.config.tls.as_ref()).await?;
            rpc::write_frame(&mut stream, Kind::Status, b"{}").await?;
            let (_, body) = rpc::read_frame(&mut stream).await?;
            rpc::from_json::<QuorumStatus>(&body)
        };
        if let Ok(status) = asked.await {
            if status.leader == Some(status.node_id) {
                return status;
            }
        }
    }
    here
}

async fn connect(address: SocketAddr, tls: Option<&ControllerTls>) -> Result<Link, RpcError> {
    let timed_out = || {
        RpcError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        ))
    };
    let connected = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|error| RpcError::Io(std::io::Error::other(error.to_string())))?;
        let _ = stream.set_nodelay(true);
        match tls {
            None => Ok(Box::new(stream) as Link),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
                let secured = tls.connector.connect(name, stream).await?;
                Ok(Box::new(secured) as Link)
            }
        }
    };
    let expired = async {
        glommio::timer::sleep(CONNECT_TIMEOUT + tls.map_or(Duration::ZERO, |_| CONNECT_TIMEOUT))
            .await;
        Err(timed_out())
    };
    future::or(connected, expired).await
}

/// Keeps one connection to a peer voter and writes its Raft messages; while
/// it is unreachable they are dropped (Raft sends again).
async fn send_to_peer(
    id: u64,
    address: SocketAddr,
    tls: Option<ControllerTls>,
    messages: flume::Receiver<raft::prelude::Message>,
) {
    let mut stream: Option<Link> = None;
    while let Ok(message) = messages.recv_async().await {
        if stream.is_none() {
            match connect(address, tls.as_ref()).await {
                Ok(connected) => stream = Some(connected),
                Err(error) => {
                    tracing::debug!(peer = id, %address, %error, "controller peer unreachable");
                    while messages.try_recv().is_ok() {}
                    continue;
                }
            }
        }
        if let Some(connected) = stream.as_mut() {
            let body = rpc::encode_raft(&message);
            if rpc::write_frame(connected, Kind::Raft, &body)
                .await
                .is_err()
            {
                stream = None;
            }
        }
    }
}

async fn accept(thread: Rc<Thread>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let thread = thread.clone();
                glommio::spawn_local(async move {
                    let acceptor = thread.config.tls.as_ref().and_then(|t| t.acceptor.clone());
                    let link = match acceptor {
                        None => Box::new(stream) as Link,
                        Some(acceptor) => {
                            let peer = stream.peer_addr().ok();
                            let handshake = async { Some(acceptor.accept(stream).await) };
                            let expired = async {
                                glommio::timer::sleep(TLS_HANDSHAKE_TIMEOUT).await;
                                None
                            };
                            match future::or(handshake, expired).await {
                                Some(Ok(secured)) => Box::new(secured) as Link,
                                Some(Err(error)) => {
                                    tracing::warn!(?peer, %error, "controller connection refused: TLS handshake failed");
                                    return;
                                }
                                None => return,
                            }
                        }
                    };
                    serve_peer(thread, link).await;
                })
                .detach();
            }
            Err(error) => tracing::warn!(%error, "controller accept failed"),
        }
    }
}

/// One inbound connection: Raft messages from a voter, or requests.
async fn serve_peer(thread: Rc<Thread>, mut stream: Link) {
    loop {
        let (kind, body) = match rpc::read_frame(&mut stream).await {
            Ok(frame) => frame,
            Err(_) => return,
        };
        let written = match kind {
            Kind::Raft => {
                match rpc::decode_raft(&body) {
                    Ok(message) => {
                        if let Some(node) = &thread.node {
                            node.borrow_mut().step(message);
                            let _ = thread.wake.send(());
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "bad raft frame; closing");
                        return;
                    }
                }
                Ok(())
            }
            Kind::Request => {
                let Ok(frame) = rpc::from_json::<rpc::RequestFrame>(&body) else {
                    return;
                };
                let answer = match thread.submit_here(frame.request) {
                    Some(answer) => answer
                        .recv_async()
                        .await
                        .unwrap_or(Err(ControllerError::Stopping)),
                    None => Err(ControllerError::NotController {
                        leader: thread.leader_hint(),
                    }),
                };
                let frame = rpc::AnswerFrame { answer };
                rpc::write_frame(&mut stream, Kind::Answer, &rpc::to_json(&frame)).await
            }
            Kind::Fetch => {
                let Ok(fetch) = rpc::from_json::<rpc::FetchFrame>(&body) else {
                    return;
                };
                let answer = rpc::FetchAnswer {
                    leader: thread.leader_hint(),
                    fetched: fetch_committed(&thread, fetch.after),
                };
                rpc::write_frame(&mut stream, Kind::Fetched, &rpc::to_json(&answer)).await
            }
            Kind::Status => {
                let status = thread.status();
                rpc::write_frame(&mut stream, Kind::StatusAnswer, &rpc::to_json(&status)).await
            }
            Kind::Answer | Kind::Fetched | Kind::StatusAnswer => return,
        };
        if written.is_err() {
            return;
        }
    }
}

fn fetch_committed(thread: &Thread, after: u64) -> Fetched {
    let Some(node) = &thread.node else {
        return Fetched::Refused(ControllerError::NotController { leader: None });
    };
    let node = node.borrow();
    match node.committed_entries(after, 1024 * 1024) {
        Some(entries) => Fetched::Entries(
            entries
                .iter()
                .map(|e| (e.index, crate::records::decode(&e.data).unwrap_or_default()))
                .collect(),
        ),
        None => Fetched::Image(node.image().clone()),
    }
}

/// A broker without a vote: follows the committed log from any voter
/// (KRaft's observers), applying it to its own image.
async fn follow(thread: Rc<Thread>) {
    let pause = Duration::from_millis(thread.config.tick_ms);
    let mut image = MetadataImage::default();
    let mut turn = 0usize;
    loop {
        let targets = thread.targets(None);
        let Some(address) = targets.get(turn % targets.len().max(1)).copied() else {
            return;
        };
        let fetched = async {
            let mut stream = connect(address, thread.config.tls.as_ref()).await?;
            let frame = rpc::FetchFrame {
                after: image.applied,
            };
            rpc::write_frame(&mut stream, Kind::Fetch, &rpc::to_json(&frame)).await?;
            let (_, body) = rpc::read_frame(&mut stream).await?;
            rpc::from_json::<rpc::FetchAnswer>(&body)
        };
        let fetched = fetched.await.map(|answer| {
            thread.observed_leader.set(answer.leader);
            answer.fetched
        });
        match fetched {
            Ok(Fetched::Entries(entries)) if !entries.is_empty() => {
                for (index, records) in entries {
                    image.apply(index, &records);
                    thread.shared.publish(index, records, image.clone());
                }
                continue;
            }
            Ok(Fetched::Image(fresh)) => {
                image = fresh;
                let index = image.applied;
                thread.shared.publish(index, Vec::new(), image.clone());
                continue;
            }
            Ok(_) => {}
            Err(_) => turn += 1,
        }
        *lock(&thread.shared.status) = thread.status();
        glommio::timer::sleep(pause).await;
    }
}
