//! Process set-up and the executors: locked-memory limit, data dir and port
//! checks, one pinned glommio executor per core (each accepting on the
//! listen port through SO_REUSEPORT and owning its share of partitions),
//! and a clean stop on SIGTERM/SIGINT.

use crate::config::Config;
use crate::core::Core;
use crate::error::ServerError;
use crate::metadata::cluster::{Cluster, ConnectionRefused};
use crate::metrics::CloseReason;
use crate::router::{Job, Router};
use crate::security::{ListenerSecurity, PeerSecurity, SecurityProtocol};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// io_uring memory registered per executor.
const IO_MEMORY_BYTES: usize = 16 * 1024 * 1024;
/// Below this the executor would do most I/O through bounce buffers.
const IO_MEMORY_BYTES_MIN: usize = 1024 * 1024;
/// How often the accept loop looks at the stop flag.
const STOP_POLL_MS: u64 = 50;
/// How often a drained core looks whether the others have drained too.
const DRAINED_POLL_MS: u64 = 5;
/// How long a busy port may take to come free at start-up before it counts
/// as held by a live listener (a killed broker's io_uring releases its
/// listeners some 50 ms after the process is gone).
const PORT_RELEASE_WAIT_MS_MAX: u64 = 2_000;
/// How often the port is re-checked meanwhile.
type Result<T> = std::result::Result<T, ServerError>;

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> ServerError {
    move |source| ServerError::Io { what, source }
}

const PORT_RECHECK_MS: u64 = 10;
/// Pending connections per core's listener (glommio's own bind uses 1024).
const LISTEN_BACKLOG: i32 = 1024;

pub fn run(mut config: Config) -> Result<()> {
    // One more executor: the controller's thread.
    let io_memory = raise_memlock_limit(config.cores + 1)?;
    check_data_dir(&config.data_dir)?;
    // Logs work with relative paths too (storage makes them absolute), but
    // logs, errors and `describe` output read better with the absolute one.
    config.data_dir = std::fs::canonicalize(&config.data_dir).map_err(io_error(format!(
        "resolve data dir {}",
        config.data_dir.display()
    )))?;
    // The other log directories: one that is unusable at start is offline
    // (as Kafka does), not fatal; the first holds the metadata and must work.
    let mut unusable = Vec::new();
    let mut resolved = vec![(config.data_dir.clone(), config.data_dir.clone())];
    for dir in &mut config.more_log_dirs {
        match check_data_dir(dir).and_then(|()| {
            std::fs::canonicalize(&*dir)
                .map_err(io_error(format!("resolve log dir {}", dir.display())))
        }) {
            Ok(absolute) => {
                if let Some((given, _)) = resolved.iter().find(|(_, r)| *r == absolute) {
                    return Err(ServerError::DuplicateLogDir {
                        dir: absolute,
                        first: given.clone(),
                        second: dir.clone(),
                    });
                }
                resolved.push((dir.clone(), absolute.clone()));
                *dir = absolute;
            }
            Err(error) => unusable.push((dir.clone(), error.to_string())),
        }
    }
    let log_dirs = crate::log_dirs::LogDirs::with_all_offline(&config.log_dirs(), halt_all_offline);
    for (dir, cause) in &unusable {
        for health in log_dirs.all().iter().filter(|h| h.path() == dir.as_path()) {
            health.mark_offline(cause);
        }
        tracing::error!(log_dir = %dir.display(), %cause,
            "log directory offline at start: its partitions are offline, new ones go to the others");
    }
    // Listeners bind with SO_REUSEPORT, which would silently share a port
    // with another broker; a bind without it first turns that into a clear
    // error.
    for listener in &config.listeners {
        check_port_free(listener.address).map_err(|source| ServerError::PortInUse {
            address: listener.address,
            source,
        })?;
    }
    // TLS keys, truststores and SASL users are read once, here: a bad
    // setting stops the start with the setting's name.
    let listeners: Vec<Arc<ListenerSecurity>> = config
        .listeners
        .iter()
        .map(|l| {
            ListenerSecurity::build(&l.name, l.protocol, &config.security)
                .map(Arc::new)
                .map_err(|(setting, reason)| ServerError::Security { setting, reason })
        })
        .collect::<Result<_>>()?;
    // A single node has no other broker to dial: its inter-broker listener
    // may be absent.
    let inter_protocol = config
        .listeners
        .iter()
        .find(|l| l.name == config.inter_broker_listener)
        .map_or(SecurityProtocol::Plaintext, |l| l.protocol);
    let inter_broker = PeerSecurity::build(
        &config.inter_broker_listener,
        inter_protocol,
        &config.security,
    )
    .map(Arc::new)
    .map_err(|(setting, reason)| ServerError::Security { setting, reason })?;
    let securities = Securities {
        listeners,
        inter_broker,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while stopping exits at once (status 1): the next
        // start recovers as after a crash. Registered first, so it sees the
        // flag before the first signal's handler sets it.
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())
            .map_err(io_error("install signal handler".into()))?;
        signal_hook::flag::register(signal, stop.clone())
            .map_err(io_error("install signal handler".into()))?;
    }
    bound_the_stop(stop.clone(), config.shutdown_timeout_ms)?;
    reload_tls_forever(
        &securities.listeners,
        config.ssl_reload_interval_ms,
        stop.clone(),
    )?;
    let legacy = crate::metadata::topics::TopicStore::open(&config.data_dir)?;
    let mut controller_config = config.controller_config();
    controller_config.tls = controller_tls(&config)?;
    let controller = controller::Controller::start(controller_config)?;
    // `__consumer_offsets` keeps the partition count it was created with:
    // groups are placed by it.
    let offsets = crate::group::store::OFFSETS_TOPIC;
    let existing = controller
        .image()
        .topic(offsets)
        .map(|t| t.partitions.len() as i32)
        .or_else(|| legacy.get(offsets).map(|t| t.partitions));
    if let Some(existing) = existing {
        if existing != config.group.offsets_topic_partitions {
            tracing::warn!(
                existing,
                wanted = config.group.offsets_topic_partitions,
                "{offsets} keeps its partition count; offsets.topic.num.partitions ignored"
            );
        }
        config.group.offsets_topic_partitions = existing;
    }
    if !config.cluster.broker {
        // The admin endpoint still reports the quorum (no cores, no
        // partitions): ready once it has a leader.
        // The controller lives until stop: in the endpoint's Cluster, or here.
        let _controller = match config.admin_listen {
            Some(address) => {
                let admin = crate::admin::Admin {
                    node_id: config.node_id,
                    router: None,
                    cluster: Cluster::new(config.node_id, controller, 0, log_dirs),
                    opened: Arc::new(AtomicBool::new(true)),
                    listeners: Vec::new(),
                };
                let bound = crate::admin::start(address, admin)
                    .map_err(|source| ServerError::Admin { address, source })?;
                tracing::info!(%bound, "admin endpoint listening (/metrics, /v1/status/ready, /v1/status/live)");
                None
            }
            None => Some(controller),
        };
        tracing::info!(node = config.node_id, controller = ?config.cluster.controller_listen, "sluice controller ready");
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(STOP_POLL_MS));
        }
        return Ok(());
    }
    let cluster = Cluster::new(config.node_id, controller, config.cores, log_dirs);
    let cores = config.cores;
    // Every core opens its partitions before any accepts a client, so a
    // request forwarded at start-up finds its partition open.
    let opened = Arc::new(Barrier::new(cores));
    let all_opened = Arc::new(AtomicBool::new(false));
    let mesh = Router::mesh(cores);
    if let (Some(address), Some((router, _))) = (config.admin_listen, mesh.first()) {
        let admin = crate::admin::Admin {
            node_id: config.node_id,
            router: Some(router.clone()),
            cluster: cluster.clone(),
            opened: all_opened.clone(),
            listeners: config.listeners.iter().map(|l| l.name.clone()).collect(),
        };
        let bound = crate::admin::start(address, admin)
            .map_err(|source| ServerError::Admin { address, source })?;
        tracing::info!(%bound, "admin endpoint listening (/metrics, /v1/status/ready, /v1/status/live)");
    }
    let drained = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(cores);
    for (core, (router, requests)) in mesh.into_iter().enumerate() {
        let (config, cluster, stop, opened, all_opened, securities, drained) = (
            config.clone(),
            cluster.clone(),
            stop.clone(),
            opened.clone(),
            all_opened.clone(),
            securities.clone(),
            drained.clone(),
        );
        let cpu = config.cpus.as_ref().and_then(|c| c.get(core)).copied();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu.unwrap_or(core)))
            .name(&format!("sluice-core-{core}"))
            .io_memory(io_memory)
            .spin_before_park(Duration::from_micros(config.idle_poll_us))
            .spawn(move || async move {
                let started = Started {
                    stop,
                    opened,
                    all_opened,
                    drained,
                };
                serve(config, securities, cluster, router, requests, started).await
            })
            .map_err(|e| ServerError::Executor {
                core,
                reason: e.to_string(),
            })?;
        handles.push(handle);
    }
    let mut result = Ok(());
    for (core, handle) in handles.into_iter().enumerate() {
        let joined = handle
            .join()
            .map_err(|e| ServerError::Executor {
                core,
                reason: format!("failed: {e}"),
            })
            .and_then(|served| served);
        if let Err(error) = joined {
            // One core failing (e.g. a partition that cannot be opened)
            // stops the others too.
            stop.store(true, Ordering::Relaxed);
            // It will not drain: the others must not wait for it.
            drained.fetch_add(cores, Ordering::AcqRel);
            opened.wait_abandoned();
            result = result.and(Err(error));
        }
    }
    result
}

/// A watchdog for the clean stop: once `stop` is set, the process exits
/// (status 1) if it is still running `timeout_ms` later, so a stuck disk or
/// a request that never finishes cannot hold a stop forever. Nothing is
/// lost that a crash would not lose: acknowledged records are durable, and
/// the next start recovers the rest.
fn bound_the_stop(stop: Arc<AtomicBool>, timeout_ms: u64) -> Result<()> {
    if timeout_ms == 0 {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("sluice-stop-watchdog".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(STOP_POLL_MS));
            }
            std::thread::sleep(Duration::from_millis(timeout_ms));
            tracing::error!(
                timeout_ms,
                "the stop did not finish within sluice.shutdown.timeout.ms; exiting now (the next start recovers as after a crash)"
            );
            std::process::exit(1);
        })
        .map(drop)
        .map_err(io_error("start the stop watchdog".into()))
}

/// Start-up rendezvous of the cores. A core that fails before it arrives
/// marks the barrier abandoned so the others do not wait forever.
struct Barrier {
    state: Mutex<(usize, bool)>,
    arrived: Condvar,
}

impl Barrier {
    fn new(cores: usize) -> Barrier {
        Barrier {
            state: Mutex::new((cores, false)),
            arrived: Condvar::new(),
        }
    }

    /// Blocks until every core arrived; false if one gave up instead.
    fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = state.0.saturating_sub(1);
        self.arrived.notify_all();
        while state.0 > 0 && !state.1 {
            state = self.arrived.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        !state.1
    }

    fn wait_abandoned(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 = true;
        self.arrived.notify_all();
    }
}

/// A thread that looks at the TLS listeners' PEM files every `interval_ms`
/// and swaps in a listener's new acceptor when they changed (a bad file
/// keeps the old one, logged once per change). None to watch: no thread.
fn reload_tls_forever(
    listeners: &[Arc<ListenerSecurity>],
    interval_ms: u64,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let watched: Vec<Arc<ListenerSecurity>> = listeners
        .iter()
        .filter(|l| l.tls.is_some())
        .cloned()
        .collect();
    if watched.is_empty() || interval_ms == 0 {
        return Ok(());
    }
    let interval = Duration::from_millis(interval_ms);
    std::thread::Builder::new()
        .name("sluice-tls-reload".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::park_timeout(interval);
                for listener in &watched {
                    let Some(tls) = &listener.tls else { continue };
                    match tls.reload_if_changed() {
                        Ok(true) => tracing::info!(listener = %listener.name, "TLS key and trust stores reloaded"),
                        Ok(false) => {}
                        Err((setting, reason)) => tracing::warn!(listener = %listener.name, %setting, %reason, "TLS files changed but cannot be read; still serving the previous ones"),
                    }
                }
            }
        })
        .map_err(io_error("start the TLS reload thread".into()))?;
    Ok(())
}

/// The controller listener's TLS when its protocol is SSL: the listener's
/// own acceptor (voters only) and a connector that checks the peer's
/// certificate against the same truststore and offers this node's.
fn controller_tls(config: &Config) -> Result<Option<controller::ControllerTls>> {
    let cluster = &config.cluster;
    if !cluster.controller_protocol.uses_tls() {
        return Ok(None);
    }
    let name = cluster
        .controller_listener_names
        .first()
        .map_or("CONTROLLER", String::as_str);
    let refused = |(setting, reason)| ServerError::Security { setting, reason };
    let acceptor = if cluster.controller && cluster.controller_listen.is_some() {
        ListenerSecurity::build(name, SecurityProtocol::Ssl, &config.security)
            .map_err(refused)?
            .tls
            .map(|tls| tls.acceptor())
    } else {
        None
    };
    let connector = PeerSecurity::build(name, SecurityProtocol::Ssl, &config.security)
        .map_err(refused)?
        .tls;
    Ok(connector.map(|connector| controller::ControllerTls {
        acceptor,
        connector,
    }))
}

/// Every listener's security, and how to dial other brokers.
#[derive(Clone)]
struct Securities {
    listeners: Vec<Arc<ListenerSecurity>>,
    inter_broker: Arc<PeerSecurity>,
}

/// What the cores share to start and stop together.
struct Started {
    stop: Arc<AtomicBool>,
    opened: Arc<Barrier>,
    all_opened: Arc<AtomicBool>,
    /// Cores that have answered their requests in flight at a stop: none
    /// closes its logs (and ends its executor) before all have, since a
    /// request on one core may wait on a job on another.
    drained: Arc<AtomicUsize>,
}

async fn serve(
    config: Config,
    securities: Securities,
    cluster: Arc<Cluster>,
    router: Router<Core>,
    requests: flume::Receiver<Job<Core>>,
    started: Started,
) -> Result<()> {
    let Started {
        stop,
        opened,
        all_opened,
        drained,
    } = started;
    let core_index = router.core();
    let mut listeners = Vec::with_capacity(config.listeners.len());
    for (listener, security) in config.listeners.iter().zip(&securities.listeners) {
        match bind_listener(listener.address) {
            Ok(bound) => listeners.push((bound, security.clone())),
            Err(source) => {
                opened.wait_abandoned();
                return Err(ServerError::Listen {
                    core: core_index,
                    address: listener.address,
                    source,
                });
            }
        }
    }
    let (core, updates) = match Core::open(config.clone(), cluster, router).await {
        Ok(opened) => opened,
        Err(e) => {
            opened.wait_abandoned();
            return Err(ServerError::Open {
                core: core_index,
                source: e,
            });
        }
    };
    let retention_interval = Duration::from_millis(config.retention_check_interval_ms);
    glommio::spawn_local(crate::router::serve(core.clone(), requests)).detach();
    glommio::spawn_local(core.clone().follow_metadata(updates)).detach();
    glommio::spawn_local(
        core.shard
            .clone()
            .enforce_retention_forever(retention_interval),
    )
    .detach();
    if config.producer_snapshot_interval_ms > 0 {
        let interval = Duration::from_millis(config.producer_snapshot_interval_ms);
        glommio::spawn_local(core.shard.clone().snapshot_producers_forever(interval)).detach();
    }
    glommio::spawn_local(core.groups.clone().run_timers()).detach();
    glommio::spawn_local(crate::replica_fetcher::run(
        core.clone(),
        securities.inter_broker.clone(),
    ))
    .detach();
    glommio::spawn_local(core.clone().expire_isr_forever()).detach();
    if config.cleaner_enable {
        let backoff = Duration::from_millis(config.cleaner_backoff_ms);
        glommio::spawn_local(core.shard.clone().clean_forever(backoff)).detach();
    }
    if !opened.wait() {
        return Err(ServerError::PeerFailed(core_index));
    }
    all_opened.store(true, Ordering::Relaxed);
    if core_index == 0 {
        // Prints "sluice broker ready" once registered and unfenced.
        glommio::spawn_local(crate::membership::run(core.clone())).detach();
    }
    let accepting: Vec<glommio::Task<()>> = listeners
        .into_iter()
        .map(|(listener, security)| {
            glommio::spawn_local(accept_forever(core.clone(), listener, security))
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(STOP_POLL_MS)).await;
    }
    for task in accepting {
        task.cancel().await;
    }
    tracing::info!(
        core = core_index,
        "stopping: no new requests, finishing the ones in flight"
    );
    let unanswered = core.drain_requests().await;
    if unanswered > 0 {
        tracing::info!(
            core = core_index,
            unanswered,
            "stopping: requests still parked are dropped"
        );
    }
    drained.fetch_add(1, Ordering::AcqRel);
    while drained.load(Ordering::Acquire) < core.config.cores {
        glommio::timer::sleep(Duration::from_millis(DRAINED_POLL_MS)).await;
    }
    tracing::info!(core = core_index, "stopping: flushing and closing logs");
    core.shard.close().await;
    tracing::info!(core = core_index, "stopped");
    Ok(())
}

/// Accepts on one listener until cancelled (at stop).
async fn accept_forever(core: Rc<Core>, listener: TcpListener, security: Arc<ListenerSecurity>) {
    let index = core
        .config
        .listeners
        .iter()
        .position(|l| l.name == security.name)
        .unwrap_or(0);
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(serve_client(core.clone(), stream, security.clone(), index))
                    .detach();
            }
            Err(error) => {
                tracing::warn!(core = core.router.core(), listener = %security.name, %error, "accept failed")
            }
        }
    }
}

/// Serves one client connection until it closes or misbehaves, within
/// `max.connections`.
async fn serve_client(
    core: Rc<Core>,
    stream: glommio::net::TcpStream,
    security: Arc<ListenerSecurity>,
    listener: usize,
) {
    let peer = stream.peer_addr().ok();
    let ip = peer.map(|p| p.ip());
    let ip_max = ip.map_or(usize::MAX, |ip| core.config.connections_max_for(ip));
    let slot = core
        .cluster
        .take_connection(core.config.connections_max, ip, ip_max);
    let _slot = match slot {
        Ok(slot) => slot,
        Err(ConnectionRefused::Total) => {
            core.counters.connection_rejected();
            let peer = peer.map_or_else(|| "?".to_string(), |a| a.to_string());
            tracing::warn!(%peer, max = core.config.connections_max, "max.connections reached; closing");
            return;
        }
        Err(ConnectionRefused::PerIp) => {
            core.counters.closed_by_broker(CloseReason::PerIpLimit);
            if let Some(peer) = peer {
                // Once per IP and reason per core: a client retrying in a
                // loop does not flood the log.
                let reason = format!(
                    "max.connections.per.ip ({ip_max}) reached for {}",
                    peer.ip()
                );
                core.refusals.warn_once("", peer, &reason);
            }
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    core.counters.connection_accepted(listener);
    crate::connection::serve(core.clone(), stream, &security).await;
    core.counters.connection_closed(listener);
}

/// Fails when a live listener holds `address`: binds and listens once with
/// SO_REUSEADDR but without SO_REUSEPORT. Linux then refuses the bind for a
/// LISTEN socket on the port (another broker, whose SO_REUSEPORT would
/// otherwise let us share its port silently) and for bound sockets without
/// SO_REUSEADDR, but not for connections of a previous run lingering in
/// FIN-WAIT/TIME-WAIT, since those inherited SO_REUSEADDR from
/// `bind_listener`. A just-killed broker's listeners outlive it briefly (its
/// io_uring is torn down after the process is gone, ~50 ms), so a busy port
/// is re-checked for up to `PORT_RELEASE_WAIT_MS_MAX` before it counts.
fn check_port_free(address: std::net::SocketAddr) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_millis(PORT_RELEASE_WAIT_MS_MAX);
    let mut waiting = false;
    loop {
        match listen_exclusive(address) {
            Err(error)
                if error.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                if !waiting {
                    tracing::info!(%address, wait_ms_max = PORT_RELEASE_WAIT_MS_MAX, "port busy; waiting in case it is a just-stopped broker's");
                    waiting = true;
                }
                std::thread::sleep(Duration::from_millis(PORT_RECHECK_MS));
            }
            result => return result,
        }
    }
}

fn listen_exclusive(address: std::net::SocketAddr) -> std::io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(1)
}

/// One core's listener on `address`. SO_REUSEPORT lets every core bind the
/// port (the kernel spreads connections over them). SO_REUSEADDR is for the
/// next start: accepted sockets inherit it, so when this process dies with
/// connections open, their leftovers (FIN-WAIT-2, TIME-WAIT, up to a minute
/// or more) do not fail the next start's `check_port_free`. glommio's own
/// `TcpListener::bind` sets SO_REUSEPORT only; Kafka (the JVM) sets
/// SO_REUSEADDR on its listeners too.
fn bind_listener(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    set_reuse_port(&socket)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    #[expect(unsafe_code)]
    // SAFETY: the fd is a bound, listening TCP socket that nothing else
    // owns (into_raw_fd gave it up); the glommio listener takes it over and
    // closes it on drop. We are on an executor thread, as from_raw_fd needs.
    let listener = unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) };
    Ok(listener)
}

/// SO_REUSEPORT (socket2 has it only behind its "all" feature).
fn set_reuse_port(socket: &socket2::Socket) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let on: libc::c_int = 1;
    #[expect(unsafe_code)]
    // SAFETY: setsockopt on a socket we own, reading a c_int we own for the
    // length we pass.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Kafka halts a broker whose log directories have all failed: serving
/// nothing while registered would keep a cluster from moving its
/// leaderships. Every acknowledged record is on disk (fdatasync before the
/// answer), so this is a crash that loses nothing; a restart after the disk
/// is fixed recovers. Exit status 1, no shutdown (it would only fail).
fn halt_all_offline(dirs: &crate::log_dirs::LogDirs) {
    let failed: Vec<String> = dirs
        .all()
        .iter()
        .map(|d| format!("{} ({})", d.path().display(), d.cause().unwrap_or_default()))
        .collect();
    tracing::error!(
        ?failed,
        "all log directories are offline: halting the broker"
    );
    std::process::exit(1);
}

fn check_data_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_error(format!(
        "data dir {} cannot be created",
        dir.display()
    )))?;
    let probe = dir.join(".sluice-write-check");
    std::fs::write(&probe, b"ok").map_err(io_error(format!(
        "data dir {} is not writable",
        dir.display()
    )))?;
    std::fs::remove_file(&probe).ok();
    Ok(())
}

/// glommio registers I/O memory with io_uring, which counts against
/// RLIMIT_MEMLOCK. Raise the soft limit to the hard one and size the I/O
/// memory of each of the `cores` executors to fit what we got; returns the
/// I/O memory per executor.
fn raise_memlock_limit(cores: usize) -> Result<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[expect(unsafe_code)]
    // SAFETY: getrlimit writes into the struct we pass and own.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if read != 0 {
        return Err(ServerError::Io {
            what: "getrlimit(RLIMIT_MEMLOCK)".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    let wanted = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    #[expect(unsafe_code)]
    // SAFETY: setrlimit reads a fully initialised rlimit struct we own.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &wanted) } == 0;
    if raised {
        return Ok(IO_MEMORY_BYTES);
    }
    let to_hard = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    #[expect(unsafe_code)]
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &to_hard) } == 0 {
        limit.rlim_cur = limit.rlim_max;
    }
    let fits = (limit.rlim_cur / 2 / cores.max(1) as u64).min(IO_MEMORY_BYTES as u64) as usize;
    if fits < IO_MEMORY_BYTES_MIN {
        return Err(ServerError::Memlock {
            have: limit.rlim_cur,
            need: IO_MEMORY_BYTES_MIN * 2 * cores,
            cores,
        });
    }
    tracing::info!(
        memlock_bytes = limit.rlim_cur,
        io_memory_bytes = fits,
        "RLIMIT_MEMLOCK not raised; I/O memory sized to fit"
    );
    Ok(fits)
}
