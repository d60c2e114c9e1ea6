//! Every broker knob, under its Kafka name where one exists.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use storage::LogConfig;

type Result<T> = std::result::Result<T, ConfigError>;

/// Why a setting, a flag or the `--config` file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown setting {0}")]
    Unknown(String),
    #[error("{key}={value}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{flag}: {reason}")]
    Flag { flag: String, reason: String },
    #[error("--config {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error(transparent)]
    Log(#[from] storage::config::ConfigError),
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// `.or_invalid(key, value, reason)` on an Option or a Result.
trait OrInvalid<T> {
    fn or_invalid(self, key: &str, value: &str, reason: &str) -> Result<T>;
}

impl<T> OrInvalid<T> for Option<T> {
    fn or_invalid(self, key: &str, value: &str, reason: &str) -> Result<T> {
        self.ok_or_else(|| invalid(key, value, reason))
    }
}

impl<T, E> OrInvalid<T> for std::result::Result<T, E> {
    fn or_invalid(self, key: &str, value: &str, reason: &str) -> Result<T> {
        self.map_err(|_| invalid(key, value, reason))
    }
}

pub const IDLE_POLL_US_DEFAULT: u64 = 50;
/// `sluice.admin.listen`'s default port (Redpanda's admin API port).
pub const ADMIN_PORT_DEFAULT: u16 = 9644;
/// Beyond this an idle broker burns a core for nothing.
pub const IDLE_POLL_US_MAX: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct Config {
    /// The first client listener's address (the one `--listen` sets).
    pub listen: SocketAddr,
    /// `--listen` was given: it wins over the PLAINTEXT entry of `listeners`.
    listen_from_flag: bool,
    /// `advertised.listeners` as given (`NAME://host:port`, a bare
    /// `host:port` being PLAINTEXT's).
    advertised: Vec<(String, String, u16)>,
    /// `--advertised-listener`: the PLAINTEXT listener's.
    advertised_flag: Option<String>,
    /// The client listeners of `listeners` (not the controller's), each
    /// with its security protocol and advertised address; resolved.
    pub listeners: Vec<Listener>,
    /// `listener.security.protocol.map` as given (NAME:PROTOCOL,...).
    protocol_map: Option<String>,
    /// `inter.broker.listener.name` (or the listener named after
    /// `security.inter.broker.protocol`): the one replica fetchers use.
    pub inter_broker_listener: String,
    /// `ssl.*`, `sasl.*`, `listener.name.*`: read per listener.
    pub security: crate::security::SecuritySettings,
    /// `authorizer.class.name`, `super.users`, `allow.everyone.if.no.acl.found`.
    pub authorizer: crate::security::authorizer::AuthorizerConfig,
    /// The metadata directory, and the first log directory.
    pub data_dir: PathBuf,
    /// `log.dirs` past the first (which is `data_dir`): more directories
    /// that partitions are spread over. Empty: `data_dir` alone.
    pub more_log_dirs: Vec<PathBuf>,
    pub cores: usize,
    /// `sluice.cpus`: the CPU each core's executor is pinned to, in core
    /// order (default: core i on CPU i). Several brokers on one machine
    /// (a local cluster) each take their own.
    pub cpus: Option<Vec<usize>>,
    /// How long an idle core keeps polling before it sleeps (seastar's and
    /// Redpanda's `--idle-poll-time-us`). A sleeping core takes ~70 us to
    /// wake for a cross-core request on this VM, a polling one ~8 us
    /// (docs/benchmarks.md).
    pub idle_poll_us: u64,
    pub node_id: i32,
    /// `auto.create.topics.enable`
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of an auto-created topic.
    pub num_partitions: i32,
    /// `socket.request.max.bytes`: a larger claimed frame closes the connection.
    pub request_bytes_max: usize,
    /// `max.connections`
    pub connections_max: usize,
    /// `max.connections.per.ip`: open client connections from one IP.
    pub connections_max_per_ip: usize,
    /// `max.connections.per.ip.overrides`: `ip:count,...` (IP addresses;
    /// Kafka's host names are not resolved).
    pub connections_max_per_ip_overrides: Vec<(std::net::IpAddr, usize)>,
    /// `connections.max.idle.ms`: a client connection that sends no whole
    /// request for this long is closed (0: never).
    pub connections_max_idle_ms: u64,
    /// `queued.max.request.bytes`: request bytes read and not yet answered
    /// on the broker (split over the cores); when they are taken,
    /// connections stop reading until answers give some back (0: no bound,
    /// Kafka's -1).
    pub queued_request_bytes_max: usize,
    /// Defaults for every topic's log (`log.segment.bytes`, ...).
    pub log: LogConfig,
    /// `log.retention.check.interval.ms`: how often each core applies
    /// `retention.ms` / `retention.bytes` to its partitions.
    pub retention_check_interval_ms: u64,
    /// `sluice.ssl.reload.interval.ms`: how often TLS listeners look for
    /// changed keystore and truststore files (0: never).
    pub ssl_reload_interval_ms: u64,
    /// `sluice.producer.snapshot.interval.ms`: how often each partition
    /// whose idempotent-producer state changed snapshots it (besides at
    /// every segment roll and at a clean close); bounds the log a crash
    /// recovery replays (0: at rolls and close only).
    pub producer_snapshot_interval_ms: u64,
    /// `sluice.shutdown.timeout.ms`: the longest a clean stop (SIGTERM:
    /// stop accepting, finish the requests in flight, flush and close)
    /// may take before the process exits anyway (0: no bound).
    pub shutdown_timeout_ms: u64,
    /// `log.cleaner.enable`: each core compacts its `cleanup.policy=compact`
    /// partitions.
    pub cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: how long a core's cleaner sleeps when no
    /// partition of it needs cleaning.
    pub cleaner_backoff_ms: u64,
    /// `sluice.tail.cache.bytes`: tail cache budget of one core.
    pub tail_cache_bytes_max: usize,
    /// `sluice.write.buffer.bytes`: bytes appended but not yet written, on
    /// one core (all its partitions together).
    pub write_buffer_bytes_max: usize,
    /// `sluice.admin.listen`: the admin HTTP endpoint (`/metrics`,
    /// `/v1/status/*`); None (an empty value) turns it off.
    pub admin_listen: Option<SocketAddr>,
    /// Consumer-group settings (`group.*`, `offsets.*`).
    pub group: GroupConfig,
    /// Roles, the controller quorum and membership (`process.roles`, ...).
    pub cluster: ClusterConfig,
}

/// One client listener of `listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub protocol: crate::security::SecurityProtocol,
    pub address: SocketAddr,
    /// What Metadata answers clients of this listener with.
    pub advertised_host: String,
    pub advertised_port: u16,
}

/// KRaft's settings, under Kafka's names.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `process.roles` has `broker`.
    pub broker: bool,
    /// `process.roles` has `controller`.
    pub controller: bool,
    /// `controller.quorum.voters` (id@host:port); empty: this node alone.
    pub voters: Vec<(u64, SocketAddr)>,
    /// The listener named in `controller.listener.names`.
    pub controller_listen: Option<SocketAddr>,
    /// `controller.listener.names`
    pub controller_listener_names: Vec<String>,
    /// The first controller listener's protocol: PLAINTEXT or SSL.
    pub controller_protocol: crate::security::SecurityProtocol,
    /// `broker.heartbeat.interval.ms`
    pub heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`
    pub session_timeout_ms: u64,
    /// `controller.quorum.election.timeout.ms`
    pub election_timeout_ms: u64,
    /// `default.replication.factor`
    pub default_replication_factor: i32,
    /// `offsets.topic.replication.factor` (capped by the brokers there are)
    pub offsets_replication_factor: i32,
    /// `broker.rack`
    pub rack: Option<String>,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long
    /// leaves the ISR.
    pub replica_lag_time_max: Duration,
    /// `replica.fetch.wait.max.ms`: a follower fetch's long-poll.
    pub replica_fetch_wait_max: Duration,
    /// `replica.fetch.max.bytes`: per partition of a follower fetch.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: per follower fetch.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: after a failed follower fetch.
    pub replica_fetch_backoff: Duration,
    /// `replica.socket.timeout.ms`: a follower fetch without an answer
    /// for this long reconnects.
    pub replica_socket_timeout: Duration,
    /// `auto.leader.rebalance.enable`
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`
    pub leader_imbalance_check_interval: Duration,
    /// `leader.imbalance.per.broker.percentage`
    pub leader_imbalance_percentage: u32,
    /// `listeners` as given, resolved once `controller.listener.names` is known.
    listeners: Vec<(String, String, u16)>,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            broker: true,
            controller: true,
            voters: Vec::new(),
            controller_listen: None,
            controller_listener_names: vec!["CONTROLLER".to_string()],
            controller_protocol: crate::security::SecurityProtocol::Plaintext,
            heartbeat_interval_ms: 2_000,
            session_timeout_ms: 9_000,
            election_timeout_ms: 1_000,
            default_replication_factor: 1,
            offsets_replication_factor: 3,
            rack: None,
            replica_lag_time_max: Duration::from_millis(30_000),
            replica_fetch_wait_max: Duration::from_millis(500),
            replica_fetch_max_bytes: 1_048_576,
            replica_fetch_response_max_bytes: 10_485_760,
            replica_fetch_backoff: Duration::from_millis(1_000),
            replica_socket_timeout: Duration::from_millis(30_000),
            auto_leader_rebalance: true,
            leader_imbalance_check_interval: Duration::from_secs(300),
            leader_imbalance_percentage: 10,
            listeners: Vec::new(),
        }
    }
}

impl ClusterConfig {
    /// The voters, or this node alone when no quorum is configured.
    pub fn voters_or_self(&self, node_id: i32) -> Vec<(u64, SocketAddr)> {
        if self.voters.is_empty() {
            let unused: SocketAddr = ([127, 0, 0, 1], 0).into();
            vec![(node_id as u64, unused)]
        } else {
            self.voters.clone()
        }
    }
}

/// What the command line gave. `None`: not given, so the `--config` file
/// or the default decides. Precedence: flags > `--set` > file > defaults.
#[derive(Debug, Default)]
pub struct Flags {
    pub listen: Option<SocketAddr>,
    pub advertised_listener: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub cores: Option<usize>,
    pub idle_poll_us: Option<u64>,
    pub node_id: Option<i32>,
    pub config_file: Option<PathBuf>,
    /// `key=value`, in order (a later one wins).
    pub settings: Vec<String>,
}

impl Config {
    /// Every log directory, the metadata one (`data_dir`) first.
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        std::iter::once(self.data_dir.clone())
            .chain(self.more_log_dirs.iter().cloned())
            .collect()
    }

    /// `max.connections.per.ip` for `ip`, its override if it has one.
    pub fn connections_max_for(&self, ip: std::net::IpAddr) -> usize {
        self.connections_max_per_ip_overrides
            .iter()
            .find(|(over, _)| *over == ip)
            .map_or(self.connections_max_per_ip, |(_, max)| *max)
    }

    pub fn resolve(flags: Flags) -> Result<Config> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let listen: SocketAddr = ([127, 0, 0, 1], 9092).into();
        let mut config = Config {
            listen,
            listen_from_flag: false,
            advertised: Vec::new(),
            advertised_flag: None,
            listeners: Vec::new(),
            protocol_map: None,
            inter_broker_listener: "PLAINTEXT".to_string(),
            security: Default::default(),
            authorizer: Default::default(),
            data_dir: PathBuf::from("./data"),
            more_log_dirs: Vec::new(),
            cores: cpus,
            cpus: None,
            idle_poll_us: IDLE_POLL_US_DEFAULT,
            node_id: 0,
            auto_create_topics: true,
            num_partitions: 1,
            request_bytes_max: 100 * 1024 * 1024,
            connections_max: 10_000,
            connections_max_per_ip: usize::MAX,
            connections_max_per_ip_overrides: Vec::new(),
            connections_max_idle_ms: 600_000,
            queued_request_bytes_max: 0,
            log: LogConfig::default(),
            retention_check_interval_ms: 300_000,
            ssl_reload_interval_ms: 60_000,
            producer_snapshot_interval_ms: 60_000,
            shutdown_timeout_ms: 30_000,
            cleaner_enable: true,
            cleaner_backoff_ms: 15_000,
            tail_cache_bytes_max: storage::limits::TAIL_CACHE_BYTES_DEFAULT_MAX,
            write_buffer_bytes_max: storage::limits::WRITE_BUFFER_CORE_BYTES_DEFAULT_MAX,
            admin_listen: Some(([127, 0, 0, 1], ADMIN_PORT_DEFAULT).into()),
            group: Default::default(),
            cluster: Default::default(),
        };
        if let Some(path) = &flags.config_file {
            for (key, value) in read_config_file(path)? {
                config.set(&key, &value).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        for setting in &flags.settings {
            let (key, value) = setting.split_once('=').ok_or_else(|| ConfigError::Flag {
                flag: format!("--set {setting}"),
                reason: "expected key=value".into(),
            })?;
            config.set(key.trim(), value.trim())?;
        }
        config.listen_from_flag = flags.listen.is_some();
        config.listen = flags.listen.unwrap_or(config.listen);
        config.advertised_flag = flags.advertised_listener;
        if let Some(dir) = flags.data_dir {
            // With several log.dirs, --data-dir may only repeat the first
            // (the metadata directory); alone it names the one directory.
            if !config.more_log_dirs.is_empty() && dir != config.data_dir {
                return Err(ConfigError::Flag {
                    flag: format!("--data-dir {}", dir.display()),
                    reason: format!(
                        "log.dirs names several directories; --data-dir must be the first, {}, or left out",
                        config.data_dir.display()
                    ),
                });
            }
            config.data_dir = dir;
        }
        config.cores = flags.cores.unwrap_or(config.cores);
        config.idle_poll_us = flags.idle_poll_us.unwrap_or(config.idle_poll_us);
        config.node_id = flags.node_id.unwrap_or(config.node_id);
        config.resolve_listeners()?;
        config.check_roles()?;
        if !(1..=cpus).contains(&config.cores) {
            return Err(ConfigError::Flag {
                flag: format!("--cores {}", config.cores),
                reason: format!("must be between 1 and the {cpus} CPUs this process may run on"),
            });
        }
        if let Some(list) = &config.cpus {
            if list.len() < config.cores || list.iter().any(|&c| c >= cpus) {
                return Err(ConfigError::Flag {
                    flag: format!("--set sluice.cpus={list:?}"),
                    reason: format!(
                        "needs one CPU below {cpus} for each of the {} cores",
                        config.cores
                    ),
                });
            }
        }
        if config.idle_poll_us > IDLE_POLL_US_MAX {
            return Err(ConfigError::Flag {
                flag: format!("--idle-poll-time-us {}", config.idle_poll_us),
                reason: format!("is above {IDLE_POLL_US_MAX}"),
            });
        }
        if config.queued_request_bytes_max > 0
            && config.queued_request_bytes_max < config.request_bytes_max
        {
            // Kafka's check: one largest request must fit.
            return Err(invalid(
                "queued.max.request.bytes",
                &config.queued_request_bytes_max.to_string(),
                format!(
                    "must be at least socket.request.max.bytes ({})",
                    config.request_bytes_max
                ),
            ));
        }
        config.resolve_advertised()?;
        Ok(config)
    }

    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let number = || -> Result<i64> {
            value
                .parse::<i64>()
                .or_invalid(key, value, "not an integer")
        };
        match key {
            "listeners" => {
                self.cluster.listeners = value
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|listener| parse_named_listener(key, listener))
                    .collect::<Result<_>>()?;
            }
            "process.roles" => {
                let roles: Vec<&str> = value.split(',').map(str::trim).collect();
                if roles.is_empty() || roles.iter().any(|r| *r != "broker" && *r != "controller") {
                    return Err(invalid(key, value, "expected broker, controller or both"));
                }
                self.cluster.broker = roles.contains(&"broker");
                self.cluster.controller = roles.contains(&"controller");
            }
            "controller.quorum.voters" => {
                self.cluster.voters = value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|voter| parse_voter(key, value, voter))
                    .collect::<Result<_>>()?;
            }
            "controller.listener.names" => {
                self.cluster.controller_listener_names =
                    value.split(',').map(|n| n.trim().to_string()).collect();
            }
            "broker.heartbeat.interval.ms" => {
                self.cluster.heartbeat_interval_ms = positive_i32(key, value)? as u64
            }
            "broker.session.timeout.ms" => {
                self.cluster.session_timeout_ms = positive_i32(key, value)? as u64
            }
            "controller.quorum.election.timeout.ms" => {
                self.cluster.election_timeout_ms = positive_i32(key, value)? as u64
            }
            "default.replication.factor" => {
                self.cluster.default_replication_factor = positive_i32(key, value)?
            }
            "offsets.topic.replication.factor" => {
                self.cluster.offsets_replication_factor = positive_i32(key, value)?
            }
            "broker.rack" => self.cluster.rack = Some(value.to_string()),
            "replica.lag.time.max.ms" => {
                self.cluster.replica_lag_time_max = millis(key, value)?;
            }
            "replica.fetch.wait.max.ms" => {
                self.cluster.replica_fetch_wait_max = millis(key, value)?;
            }
            "replica.fetch.backoff.ms" => {
                self.cluster.replica_fetch_backoff = millis(key, value)?;
            }
            "replica.socket.timeout.ms" => {
                self.cluster.replica_socket_timeout = millis(key, value)?;
            }
            "replica.fetch.max.bytes" => {
                self.cluster.replica_fetch_max_bytes = positive_i32(key, value)?
            }
            "replica.fetch.response.max.bytes" => {
                self.cluster.replica_fetch_response_max_bytes = positive_i32(key, value)?
            }
            "auto.leader.rebalance.enable" => {
                self.cluster.auto_leader_rebalance = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid(key, value, "must be true or false")),
                }
            }
            "leader.imbalance.check.interval.seconds" => {
                let seconds = positive_i32(key, value)?;
                self.cluster.leader_imbalance_check_interval = Duration::from_secs(seconds as u64);
            }
            "leader.imbalance.per.broker.percentage" => {
                self.cluster.leader_imbalance_percentage = positive_i32(key, value)? as u32
            }
            "advertised.listeners" => {
                self.advertised = value
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|listener| parse_named_listener(key, listener))
                    .collect::<Result<_>>()?;
            }
            "listener.security.protocol.map" => self.protocol_map = Some(value.to_string()),
            "inter.broker.listener.name" => self.inter_broker_listener = value.trim().to_string(),
            "security.inter.broker.protocol" => {
                crate::security::SecurityProtocol::parse(value).or_invalid(
                    key,
                    value,
                    "expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                )?;
                self.inter_broker_listener = value.trim().to_ascii_uppercase();
            }
            key if crate::security::SecuritySettings::owns(key) => self.security.set(key, value),
            "authorizer.class.name" => self
                .authorizer
                .set_class(value)
                .map_err(|reason| invalid(key, value, &reason))?,
            "super.users" => self
                .authorizer
                .set_super_users(value)
                .map_err(|reason| invalid(key, value, &reason))?,
            "allow.everyone.if.no.acl.found" => {
                self.authorizer.allow_everyone_if_no_acl_found =
                    value.parse().or_invalid(key, value, "not true/false")?
            }
            "log.dirs" | "log.dir" => {
                let dirs: Vec<PathBuf> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
                    .collect();
                let Some((first, more)) = dirs.split_first() else {
                    return Err(invalid(key, value, "no directory"));
                };
                let mut seen = std::collections::HashSet::new();
                if !dirs.iter().all(|d| seen.insert(d)) {
                    return Err(invalid(key, value, "a directory is named twice"));
                }
                self.data_dir = first.clone();
                self.more_log_dirs = more.to_vec();
            }
            "node.id" | "broker.id" => {
                self.node_id = i32::try_from(number()?)
                    .ok()
                    .filter(|id| *id >= 0)
                    .or_invalid(key, value, "must be 0..=2147483647")?;
            }
            "sluice.cpus" => {
                let cpus: std::result::Result<Vec<usize>, _> = value
                    .split(',')
                    .map(|c| c.trim().parse::<usize>())
                    .collect();
                let cpus = cpus.ok().filter(|c| !c.is_empty()).or_invalid(
                    key,
                    value,
                    "expected CPU ids, e.g. 0,1",
                )?;
                self.cpus = Some(cpus);
            }
            "sluice.cores" => {
                self.cores =
                    usize::try_from(number()?).or_invalid(key, value, "must be positive")?;
            }
            "sluice.idle.poll.time.us" => {
                self.idle_poll_us =
                    u64::try_from(number()?).or_invalid(key, value, "must not be negative")?;
            }
            "sluice.admin.listen" => {
                self.admin_listen = match value.trim() {
                    "" => None,
                    address => Some(address.parse().or_invalid(
                        key,
                        value,
                        "expected ip:port, or empty for none",
                    )?),
                }
            }
            "sluice.tail.cache.bytes" => {
                self.tail_cache_bytes_max =
                    usize::try_from(number()?).or_invalid(key, value, "must not be negative")?;
            }
            "sluice.write.buffer.bytes" => {
                self.write_buffer_bytes_max = usize::try_from(number()?)
                    .ok()
                    .filter(|n| *n >= 1)
                    .or_invalid(key, value, "must be positive")?;
            }
            "auto.create.topics.enable" => {
                self.auto_create_topics = value.parse().or_invalid(key, value, "not true/false")?
            }
            "num.partitions" => {
                let n = number()?;
                if !(1..=100_000).contains(&n) {
                    return Err(invalid(key, value, "must be between 1 and 100000"));
                }
                self.num_partitions = n as i32;
            }
            "socket.request.max.bytes" => {
                let n = number()?;
                if !(1024..=i32::MAX as i64).contains(&n) {
                    return Err(invalid(key, value, "must be between 1024 and 2147483647"));
                }
                self.request_bytes_max = n as usize;
            }
            "max.connections" => self.connections_max = number()?.max(1) as usize,
            "max.connections.per.ip" => {
                let n = number()?;
                if n < 0 {
                    return Err(invalid(key, value, "must be 0 or more"));
                }
                self.connections_max_per_ip = usize::try_from(n).unwrap_or(usize::MAX);
            }
            "max.connections.per.ip.overrides" => {
                self.connections_max_per_ip_overrides =
                    parse_ip_overrides(value).map_err(|reason| invalid(key, value, reason))?
            }
            "connections.max.idle.ms" => {
                let n = number()?;
                // Kafka's -1 and 0 both mean: never.
                self.connections_max_idle_ms = n.max(0) as u64;
            }
            "queued.max.request.bytes" => {
                let n = number()?;
                // Kafka's -1 (and 0): no bound.
                self.queued_request_bytes_max = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
            }
            "sluice.ssl.reload.interval.ms" => {
                self.ssl_reload_interval_ms = non_negative(key, value, number()?, "off")?;
            }
            "sluice.shutdown.timeout.ms" => {
                self.shutdown_timeout_ms = non_negative(key, value, number()?, "no bound")?;
            }
            "sluice.producer.snapshot.interval.ms" => {
                self.producer_snapshot_interval_ms = non_negative(key, value, number()?, "off")?;
            }
            "log.retention.check.interval.ms" => {
                let n = number()?;
                if n < 1 {
                    return Err(invalid(key, value, "must be at least 1"));
                }
                self.retention_check_interval_ms = n as u64;
            }
            "log.cleaner.enable" => {
                self.cleaner_enable = value.parse().or_invalid(key, value, "not true/false")?
            }
            "log.cleaner.backoff.ms" => {
                let n = number()?;
                if n < 1 {
                    return Err(invalid(key, value, "must be at least 1"));
                }
                self.cleaner_backoff_ms = n as u64;
            }
            "group.min.session.timeout.ms" => {
                self.group.min_session_timeout_ms = positive_i32(key, value)?
            }
            "group.max.session.timeout.ms" => {
                self.group.max_session_timeout_ms = positive_i32(key, value)?
            }
            "group.initial.rebalance.delay.ms" => {
                self.group.initial_rebalance_delay_ms = i32::try_from(number()?)
                    .ok()
                    .filter(|n| *n >= 0)
                    .or_invalid(key, value, "must be 0..=2147483647")?
            }
            "group.max.size" => self.group.max_size = positive_i32(key, value)? as usize,
            "offsets.retention.minutes" => {
                let minutes = positive_i32(key, value)?;
                self.group.offsets_retention_ms = i64::from(minutes) * 60_000;
            }
            "offsets.retention.check.interval.ms" => {
                let n = number()?;
                if n < 1 {
                    return Err(invalid(key, value, "must be at least 1"));
                }
                self.group.offsets_retention_check_interval_ms = n as u64;
            }
            "offsets.topic.segment.bytes" => {
                let n = number()?;
                if !(1024..=i32::MAX as i64).contains(&n) {
                    return Err(invalid(key, value, "must be between 1024 and 2147483647"));
                }
                self.group.offsets_topic_segment_bytes = n;
            }
            "offset.metadata.max.bytes" => {
                self.group.offset_metadata_max_bytes = positive_i32(key, value)? as usize
            }
            "offsets.topic.num.partitions" => {
                let n = positive_i32(key, value)?;
                if n > 1000 {
                    return Err(invalid(key, value, "must be between 1 and 1000"));
                }
                self.group.offsets_topic_partitions = n;
            }
            "log.cleanup.policy" => self.log.set("cleanup.policy", value)?,
            "log.cleaner.delete.retention.ms" => self.log.set("delete.retention.ms", value)?,
            "log.cleaner.min.cleanable.ratio" => {
                self.log.set("min.cleanable.dirty.ratio", value)?
            }
            "log.cleaner.min.compaction.lag.ms" => self.log.set("min.compaction.lag.ms", value)?,
            "log.cleaner.max.compaction.lag.ms" => self.log.set("max.compaction.lag.ms", value)?,
            "message.max.bytes" => self.log.set("max.message.bytes", value)?,
            "min.insync.replicas" => self.log.set("min.insync.replicas", value)?,
            "log.segment.bytes" => self.log.set("segment.bytes", value)?,
            "sluice.log.dir.min.free.bytes" => {
                self.log.min_free_bytes = u64::try_from(number()?).or_invalid(
                    key,
                    value,
                    "must be 0 (no check) or more",
                )?
            }
            "log.roll.ms" => self.log.set("segment.ms", value)?,
            "log.retention.ms" => self.log.set("retention.ms", value)?,
            "log.retention.bytes" => self.log.set("retention.bytes", value)?,
            "log.flush.interval.messages" => self.log.set("flush.messages", value)?,
            "log.flush.interval.ms" => self.log.set("flush.ms", value)?,
            "log.index.interval.bytes" => self.log.set("index.interval.bytes", value)?,
            "log.message.timestamp.type" => self.log.set("message.timestamp.type", value)?,
            _ => return Err(ConfigError::Unknown(key.to_string())),
        }
        Ok(())
    }
}

/// A positive number of milliseconds (Kafka's `*.ms` settings).
/// `max.connections.per.ip.overrides`: `ip:count` pairs, comma-separated
/// (an IPv6 address as `[::1]:count` or `::1:count`, the count after the
/// last colon).
fn parse_ip_overrides(value: &str) -> std::result::Result<Vec<(std::net::IpAddr, usize)>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (host, count) = entry
                .rsplit_once(':')
                .ok_or_else(|| format!("{entry:?} is not ip:count"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let ip = host.parse().map_err(|_| {
                format!("{host:?} is not an IP address (host names are not resolved)")
            })?;
            let count = count
                .parse::<usize>()
                .map_err(|_| format!("{count:?} is not a count"))?;
            Ok((ip, count))
        })
        .collect()
}

/// A count or duration where 0 has the meaning `zero` names.
fn non_negative(key: &str, value: &str, n: i64, zero: &str) -> Result<u64> {
    u64::try_from(n).map_err(|_| invalid(key, value, format!("must be 0 ({zero}) or more")))
}

fn millis(key: &str, value: &str) -> Result<Duration> {
    Ok(Duration::from_millis(positive_i32(key, value)? as u64))
}

fn positive_i32(key: &str, value: &str) -> Result<i32> {
    value.parse::<i32>().ok().filter(|n| *n >= 1).or_invalid(
        key,
        value,
        "must be an integer 1..=2147483647",
    )
}

/// `NAME://host:port` (Kafka's listener form; the name defaults to PLAINTEXT).
fn parse_named_listener(key: &str, value: &str) -> Result<(String, String, u16)> {
    let (name, address) = value.split_once("://").unwrap_or(("PLAINTEXT", value));
    let (host, port) = parse_host_port(key, address)?;
    Ok((name.to_string(), host, port))
}

/// `id@host:port`
fn parse_voter(key: &str, value: &str, voter: &str) -> Result<(u64, SocketAddr)> {
    let (id, address) =
        voter
            .split_once('@')
            .or_invalid(key, value, "expected id@host:port,...")?;
    let id: u64 = id
        .parse()
        .or_invalid(key, value, "voter id is not a number")?;
    let address = std::net::ToSocketAddrs::to_socket_addrs(address)
        .ok()
        .and_then(|mut a| a.next())
        .or_invalid(key, value, "voter address is not host:port")?;
    Ok((id, address))
}

/// The controller's Raft tick: heartbeats every 2 ticks, elections after
/// `controller.quorum.election.timeout.ms` worth of them.
const CONTROLLER_TICK_MS: u64 = 100;
/// Metadata log entries applied between two controller snapshots (the log
/// before a snapshot is dropped; KRaft bounds it by bytes and time with
/// `metadata.log.max.record.bytes.between.snapshots`).
const METADATA_SNAPSHOT_ENTRIES: u64 = 1000;

impl Config {
    /// The controller's settings from the broker's.
    pub fn controller_config(&self) -> controller::ControllerConfig {
        let cluster = &self.cluster;
        controller::ControllerConfig {
            node_id: self.node_id,
            voters: cluster.voters_or_self(self.node_id),
            is_voter: cluster.controller,
            listen: cluster.controller_listen,
            dir: self.data_dir.join("__cluster_metadata-0"),
            tick_ms: CONTROLLER_TICK_MS,
            election_ticks: (cluster.election_timeout_ms / CONTROLLER_TICK_MS).max(3) as usize,
            session_timeout_ms: cluster.session_timeout_ms,
            snapshot_entries: METADATA_SNAPSHOT_ENTRIES,
            durability: controller::Durability::Sync,
            leader_rebalance: cluster.auto_leader_rebalance.then_some((
                cluster.leader_imbalance_check_interval,
                cluster.leader_imbalance_percentage,
            )),
            // TLS needs the PEM files read: server.rs fills it in.
            tls: None,
        }
    }

    /// `listeners`: the one named by `controller.listener.names` is the
    /// controller's, every other one a client listener with the security
    /// protocol `listener.security.protocol.map` gives its name. `--listen`
    /// sets the PLAINTEXT listener's address (adding it if absent); no
    /// client listener at all means PLAINTEXT on 127.0.0.1:9092.
    fn resolve_listeners(&mut self) -> Result<()> {
        use crate::security::SecurityProtocol;
        let map = self.protocol_map()?;
        // Brokers that do not vote dial the controller listener too: its
        // protocol comes from the map whether or not this node binds it.
        if let Some(name) = self.cluster.controller_listener_names.first() {
            let protocol = map
                .get(name)
                .copied()
                .unwrap_or(SecurityProtocol::Plaintext);
            if protocol.uses_sasl() {
                return Err(invalid(
                    "listener.security.protocol.map",
                    self.protocol_map.as_deref().unwrap_or_default(),
                    format!("the controller listener {name} may be PLAINTEXT or SSL (with ssl.client.auth=required to authenticate peers): SASL on it is not served"),
                ));
            }
            self.cluster.controller_protocol = protocol;
        }
        let mut listeners: Vec<Listener> = Vec::new();
        for (name, host, port) in self.cluster.listeners.clone() {
            let value = format!("{name}://{host}:{port}");
            let address: SocketAddr = format!("{host}:{port}").parse().or_invalid(
                "listeners",
                &value,
                "expected ip:port",
            )?;
            let protocol = map.get(&name).copied().ok_or_else(|| {
                invalid(
                    "listener.security.protocol.map",
                    self.protocol_map.as_deref().unwrap_or_default(),
                    format!("has no security protocol for listener {name}"),
                )
            })?;
            if self.cluster.controller_listener_names.contains(&name) {
                self.cluster.controller_listen = Some(address);
                continue;
            }
            if listeners
                .iter()
                .any(|l| l.name == name || l.address == address)
            {
                return Err(invalid(
                    "listeners",
                    &value,
                    "listener names and ports must be unique",
                ));
            }
            listeners.push(Listener {
                name,
                protocol,
                address,
                advertised_host: String::new(),
                advertised_port: 0,
            });
        }
        let plaintext = listeners.iter().position(|l| l.name == "PLAINTEXT");
        if let Some(i) = plaintext.filter(|_| self.listen_from_flag) {
            listeners[i].address = self.listen;
        } else if plaintext.is_none()
            && (self.listen_from_flag || (listeners.is_empty() && self.cluster.broker))
        {
            listeners.insert(
                0,
                Listener {
                    name: "PLAINTEXT".into(),
                    protocol: SecurityProtocol::Plaintext,
                    address: self.listen,
                    advertised_host: String::new(),
                    advertised_port: 0,
                },
            );
        }
        // A controller-only node serves no clients: no client listener.
        if let Some(first) = listeners.first() {
            self.listen = first.address;
        }
        self.listeners = listeners;
        Ok(())
    }

    /// Kafka's default map (every protocol's own name, and CONTROLLER as
    /// PLAINTEXT) unless `listener.security.protocol.map` is given.
    fn protocol_map(&self) -> Result<BTreeMap<String, crate::security::SecurityProtocol>> {
        use crate::security::SecurityProtocol;
        let given = self
            .protocol_map
            .as_deref()
            .unwrap_or("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT");
        let mut map = BTreeMap::new();
        for entry in given.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, protocol) = entry.split_once(':').or_invalid(
                "listener.security.protocol.map",
                given,
                "expected NAME:PROTOCOL,...",
            )?;
            let protocol = SecurityProtocol::parse(protocol.trim()).or_invalid(
                "listener.security.protocol.map",
                given,
                "protocols are PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL",
            )?;
            map.insert(name.trim().to_string(), protocol);
        }
        Ok(map)
    }

    /// Each client listener's advertised address: its `advertised.listeners`
    /// entry (`--advertised-listener` for PLAINTEXT), else where it binds.
    /// Then the inter-broker listener must exist when there are other
    /// brokers.
    fn resolve_advertised(&mut self) -> Result<()> {
        let flag = match &self.advertised_flag {
            Some(address) => Some(parse_host_port("--advertised-listener", address)?),
            None => None,
        };
        for listener in &mut self.listeners {
            let given = self
                .advertised
                .iter()
                .find(|(name, _, _)| *name == listener.name)
                .map(|(_, host, port)| (host.clone(), *port));
            let from_flag = flag.clone().filter(|_| listener.name == "PLAINTEXT");
            (listener.advertised_host, listener.advertised_port) = from_flag
                .or(given)
                .unwrap_or_else(|| (listener.address.ip().to_string(), listener.address.port()));
        }
        if let Some((name, _, _)) = self
            .advertised
            .iter()
            .find(|(name, _, _)| !self.listeners.iter().any(|l| l.name == *name))
        {
            return Err(invalid(
                "advertised.listeners",
                name,
                "names a listener that `listeners` does not have",
            ));
        }
        let several_brokers = self.cluster.voters.len() > 1 || !self.cluster.controller;
        if several_brokers
            && !self
                .listeners
                .iter()
                .any(|l| l.name == self.inter_broker_listener)
        {
            return Err(invalid(
                "inter.broker.listener.name",
                &self.inter_broker_listener,
                "is not one of the client listeners",
            ));
        }
        Ok(())
    }

    /// The advertised endpoints of every client listener, for registration.
    pub fn endpoints(&self) -> Vec<controller::Endpoint> {
        self.listeners
            .iter()
            .map(|l| controller::Endpoint {
                name: l.name.clone(),
                host: l.advertised_host.clone(),
                port: l.advertised_port,
            })
            .collect()
    }

    fn check_roles(&self) -> Result<()> {
        let cluster = &self.cluster;
        if cluster.voters.is_empty() {
            if !(cluster.broker && cluster.controller) {
                return Err(invalid(
                    "process.roles",
                    if cluster.broker {
                        "broker"
                    } else {
                        "controller"
                    },
                    "a node without controller.quorum.voters must be broker and controller",
                ));
            }
            return Ok(());
        }
        let is_voter = cluster
            .voters
            .iter()
            .any(|(id, _)| *id == self.node_id as u64);
        if cluster.controller && !is_voter {
            return Err(invalid(
                "node.id",
                &self.node_id.to_string(),
                "a controller must be one of controller.quorum.voters",
            ));
        }
        if cluster.controller && cluster.voters.len() > 1 && cluster.controller_listen.is_none() {
            return Err(invalid(
                "listeners",
                "",
                "a controller needs a listener named in controller.listener.names",
            ));
        }
        Ok(())
    }
}

/// `host:port`, with Kafka's optional `NAME://` listener prefix.
fn parse_host_port(key: &str, value: &str) -> Result<(String, u16)> {
    let address = match value.split_once("://") {
        Some((_, rest)) => rest,
        None => value,
    };
    let (host, port) = address
        .rsplit_once(':')
        .or_invalid(key, value, "expected host:port")?;
    let port = port.parse().or_invalid(key, value, "bad port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), port))
}

/// The `--config` file: TOML whose keys are the `--set` names. Dotted keys
/// may be written bare (`log.segment.bytes = 104857600`, which TOML reads
/// as nested tables), quoted, or under a table (`[log] segment.bytes = ..`):
/// nested tables are flattened back into dotted names.
pub fn read_config_file(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| file_error(format!("cannot read: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| file_error(format!("not valid TOML: {e}")))?;
    let mut settings = Vec::new();
    flatten("", &table, &mut settings).map_err(file_error)?;
    Ok(settings)
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut Vec<(String, String)>,
) -> std::result::Result<(), String> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let text = match value {
            toml::Value::Table(inner) => {
                flatten(&name, inner, out)?;
                continue;
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => return Err(format!("{name}: unsupported value {}", other.type_str())),
        };
        out.push((name, text));
    }
    Ok(())
}

/// Kafka's `group.*` / `offsets.*` broker settings.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`
    pub max_size: usize,
    /// `offsets.retention.minutes`, in ms: offsets of a group that stayed
    /// empty this long expire.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are
    /// removed and empty groups without offsets are forgotten (until then
    /// such a group stays listed, as in Kafka).
    pub offsets_retention_check_interval_ms: u64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `offsets.topic.num.partitions`
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.segment.bytes`
    pub offsets_topic_segment_bytes: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: 1_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            offsets_topic_partitions: 50,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(settings: &[&str]) -> Flags {
        Flags {
            cores: Some(1),
            settings: settings.iter().map(|s| s.to_string()).collect(),
            ..Flags::default()
        }
    }

    #[test]
    fn log_dirs_spread_partitions_and_the_first_holds_the_metadata() {
        let config = Config::resolve(flags(&["log.dirs=/d/a, /d/b,/d/c"])).expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("/d/a"));
        assert_eq!(
            config.log_dirs(),
            vec![
                PathBuf::from("/d/a"),
                PathBuf::from("/d/b"),
                PathBuf::from("/d/c")
            ]
        );
        for bad in ["log.dirs=", "log.dirs= , ", "log.dirs=/d/a,/d/a"] {
            assert!(Config::resolve(flags(&[bad])).is_err(), "{bad}");
        }
        // With several, --data-dir may only repeat the first.
        let with = |dir: &str| {
            Config::resolve(Flags {
                data_dir: Some(PathBuf::from(dir)),
                ..flags(&["log.dirs=/d/a,/d/b"])
            })
        };
        assert!(with("/e").is_err());
        let config = with("/d/a").expect("valid");
        assert_eq!(
            config.log_dirs(),
            vec![PathBuf::from("/d/a"), PathBuf::from("/d/b")]
        );
        let config = Config::resolve(Flags {
            data_dir: Some(PathBuf::from("/e")),
            ..flags(&["log.dirs=/d/a"])
        })
        .expect("valid");
        assert_eq!(config.log_dirs(), vec![PathBuf::from("/e")]);
    }

    #[test]
    fn connection_limits_as_kafka_writes_them() {
        let config = Config::resolve(flags(&[
            "max.connections.per.ip=10",
            "max.connections.per.ip.overrides=127.0.0.1:200, [::1]:50,10.0.0.7:0",
            "connections.max.idle.ms=-1",
        ]))
        .expect("valid");
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        assert_eq!(config.connections_max_for(ip("127.0.0.1")), 200);
        assert_eq!(config.connections_max_for(ip("::1")), 50);
        assert_eq!(config.connections_max_for(ip("10.0.0.7")), 0);
        assert_eq!(config.connections_max_for(ip("10.0.0.8")), 10);
        assert_eq!(config.connections_max_idle_ms, 0, "-1: never");
        for bad in ["localhost:5", "127.0.0.1", "127.0.0.1:many"] {
            let setting = format!("max.connections.per.ip.overrides={bad}");
            assert!(
                Config::resolve(flags(&[setting.as_str()])).is_err(),
                "{bad}"
            );
        }
        // Kafka's check: the largest request must fit in the queue's bound.
        assert!(Config::resolve(flags(&["queued.max.request.bytes=2000"])).is_err());
        assert!(Config::resolve(flags(&[
            "socket.request.max.bytes=2000",
            "queued.max.request.bytes=2000"
        ]))
        .is_ok());
    }

    #[test]
    fn config_file_keys_in_every_toml_spelling_reach_the_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            "listeners = \"PLAINTEXT://127.0.0.1:19092\"\n\
             log.dirs = \"/var/lib/sluice\"\n\
             num.partitions = 3\n\
             \"auto.create.topics.enable\" = false\n\
             [log.segment]\nbytes = 1048576\n",
        )
        .expect("write");
        let config = Config::resolve(Flags {
            config_file: Some(path),
            ..flags(&[])
        })
        .expect("valid");
        assert_eq!(config.listen.port(), 19092);
        assert_eq!(config.listeners[0].advertised_port, 19092);
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/sluice"));
        assert_eq!(config.num_partitions, 3);
        assert!(!config.auto_create_topics);
        assert_eq!(config.log.segment_bytes, 1 << 20);
    }

    #[test]
    fn flags_beat_set_which_beats_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "num.partitions = 3\nnode.id = 4\n").expect("write");
        let config = Config::resolve(Flags {
            config_file: Some(path),
            node_id: Some(9),
            ..flags(&["num.partitions=5"])
        })
        .expect("valid");
        assert_eq!(config.num_partitions, 5);
        assert_eq!(config.node_id, 9);
    }

    #[test]
    fn cores_are_pinned_to_the_cpus_given() {
        let config = Config::resolve(Flags {
            cores: Some(1),
            ..flags(&["sluice.cpus=0"])
        })
        .expect("valid");
        assert_eq!(config.cpus, Some(vec![0]));
        for bad in ["sluice.cpus=x", "sluice.cpus=", "sluice.cpus=100000"] {
            let refused = Config::resolve(Flags {
                cores: Some(1),
                ..flags(&[bad])
            });
            assert!(refused.is_err(), "{bad}");
        }
        // Fewer CPUs than cores.
        if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
            let refused = Config::resolve(Flags {
                cores: Some(2),
                ..flags(&["sluice.cpus=1"])
            });
            assert!(refused.is_err(), "one CPU for two cores");
        }
    }

    #[test]
    fn core_memory_bounds_are_settings() {
        let config = Config::resolve(flags(&[
            "sluice.tail.cache.bytes=1048576",
            "sluice.write.buffer.bytes=2097152",
        ]))
        .expect("valid");
        assert_eq!(config.tail_cache_bytes_max, 1 << 20);
        assert_eq!(config.write_buffer_bytes_max, 2 << 20);
        let error = Config::resolve(flags(&["sluice.write.buffer.bytes=0"])).expect_err("zero");
        assert!(format!("{error:#}").contains("must be positive"));
    }

    #[test]
    fn listeners_get_protocols_advertised_addresses_and_prefixed_settings() {
        use crate::security::SecurityProtocol;
        let config = Config::resolve(flags(&[
            "listeners=LOCAL://127.0.0.1:19092,OUTSIDE://127.0.0.1:19093,SSL://127.0.0.1:19094",
            "listener.security.protocol.map=LOCAL:PLAINTEXT,OUTSIDE:SASL_SSL,SSL:SSL",
            "advertised.listeners=OUTSIDE://broker.example:9093",
            "listener.name.outside.sasl.enabled.mechanisms=SCRAM-SHA-512",
        ]))
        .expect("valid");
        let seen: Vec<(&str, SecurityProtocol, u16, &str, u16)> = config
            .listeners
            .iter()
            .map(|l| {
                (
                    l.name.as_str(),
                    l.protocol,
                    l.address.port(),
                    l.advertised_host.as_str(),
                    l.advertised_port,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "LOCAL",
                    SecurityProtocol::Plaintext,
                    19092,
                    "127.0.0.1",
                    19092
                ),
                (
                    "OUTSIDE",
                    SecurityProtocol::SaslSsl,
                    19093,
                    "broker.example",
                    9093
                ),
                ("SSL", SecurityProtocol::Ssl, 19094, "127.0.0.1", 19094),
            ]
        );
        assert_eq!(config.listen.port(), 19092);
        assert_eq!(
            config.security.get("OUTSIDE", "sasl.enabled.mechanisms"),
            Some("SCRAM-SHA-512")
        );
        assert_eq!(config.endpoints().len(), 3);
        // --listen adds (or moves) the PLAINTEXT listener.
        let moved = Config::resolve(Flags {
            listen: Some("127.0.0.1:29092".parse().expect("addr")),
            ..flags(&["listeners=SASL_PLAINTEXT://127.0.0.1:19095"])
        })
        .expect("valid");
        let names: Vec<&str> = moved.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["PLAINTEXT", "SASL_PLAINTEXT"]);
        assert_eq!(moved.listen.port(), 29092);
        // A cluster may replicate over a secured listener, and run its
        // quorum over SSL, even on a broker that does not vote.
        let secured = Config::resolve(flags(&[
            "listeners=SASL_SSL://127.0.0.1:19096",
            "process.roles=broker",
            "controller.quorum.voters=1@127.0.0.1:19097",
            "node.id=2",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        ]))
        .expect("secured replication");
        assert_eq!(secured.cluster.controller_protocol, SecurityProtocol::Ssl);
        let error = Config::resolve(flags(&[
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_SSL",
        ]))
        .expect_err("SASL controller");
        assert!(
            format!("{error:#}").contains("PLAINTEXT or SSL"),
            "{error:#}"
        );
        let error = Config::resolve(flags(&[
            "listeners=PLAINTEXT://127.0.0.1:19096",
            "process.roles=broker",
            "controller.quorum.voters=1@127.0.0.1:19097",
            "node.id=2",
            "inter.broker.listener.name=INTERNAL",
        ]))
        .expect_err("no such inter-broker listener");
        assert!(
            format!("{error:#}").contains("not one of the client listeners"),
            "{error:#}"
        );
        let error = Config::resolve(flags(&[
            "listeners=PLAINTEXT://127.0.0.1:19098",
            "advertised.listeners=OTHER://h:1",
        ]))
        .expect_err("unknown advertised");
        assert!(format!("{error:#}").contains("does not have"), "{error:#}");
    }

    #[test]
    fn bad_config_files_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sluice.toml");
        for (text, expected) in [
            ("num.partitions = ", "not valid TOML"),
            ("no.such.key = 1", "unknown setting no.such.key"),
            ("num.partitions = \"many\"", "not an integer"),
            (
                "listeners = \"OUTSIDE://127.0.0.1:9093\"",
                "no security protocol for listener OUTSIDE",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let error = Config::resolve(Flags {
                config_file: Some(path.clone()),
                ..flags(&[])
            })
            .expect_err(text);
            let message = format!("{error:#}");
            assert!(message.contains(expected), "{text}: {message}");
        }
        let missing = Config::resolve(Flags {
            config_file: Some(dir.path().join("absent.toml")),
            ..flags(&[])
        })
        .expect_err("missing file");
        assert!(format!("{missing:#}").contains("cannot read"));
    }
}
