//! Every broker knob, under its Kafka name where one exists.

use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use storage::LogConfig;

pub const IDLE_POLL_US_DEFAULT: u64 = 50;
/// Beyond this an idle broker burns a core for nothing.
pub const IDLE_POLL_US_MAX: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
    pub data_dir: PathBuf,
    pub cores: usize,
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
    /// Defaults for every topic's log (`log.segment.bytes`, ...).
    pub log: LogConfig,
    /// `log.retention.check.interval.ms`: how often each core applies
    /// `retention.ms` / `retention.bytes` to its partitions.
    pub retention_check_interval_ms: u64,
    /// Tail cache budget of one core, bytes.
    pub tail_cache_bytes_max: usize,
}

impl Config {
    pub fn from_cli(
        listen: SocketAddr,
        advertised: Option<String>,
        data_dir: PathBuf,
        cores: Option<usize>,
        node_id: i32,
        settings: &[String],
    ) -> Result<Config> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cores = cores.unwrap_or(cpus);
        if !(1..=cpus).contains(&cores) {
            bail!("--cores {cores}: must be between 1 and the {cpus} CPUs this process may run on");
        }
        let (advertised_host, advertised_port) = match advertised {
            Some(address) => {
                let (host, port) = address.rsplit_once(':').with_context(|| {
                    format!("--advertised-listener {address}: expected host:port")
                })?;
                (
                    host.to_string(),
                    port.parse()
                        .with_context(|| format!("bad port in {address}"))?,
                )
            }
            None => (listen.ip().to_string(), listen.port()),
        };
        let mut config = Config {
            listen,
            advertised_host,
            advertised_port,
            data_dir,
            cores,
            idle_poll_us: IDLE_POLL_US_DEFAULT,
            node_id,
            auto_create_topics: true,
            num_partitions: 1,
            request_bytes_max: 100 * 1024 * 1024,
            connections_max: 10_000,
            log: LogConfig::default(),
            retention_check_interval_ms: 300_000,
            tail_cache_bytes_max: storage::limits::TAIL_CACHE_BYTES_DEFAULT_MAX,
        };
        for setting in settings {
            let (key, value) = setting
                .split_once('=')
                .with_context(|| format!("--set {setting}: expected key=value"))?;
            config.set(key.trim(), value.trim())?;
        }
        Ok(config)
    }

    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let number = || -> Result<i64> {
            value
                .parse::<i64>()
                .with_context(|| format!("{key}={value}: not an integer"))
        };
        match key {
            "auto.create.topics.enable" => {
                self.auto_create_topics = value
                    .parse()
                    .with_context(|| format!("{key}={value}: not true/false"))?
            }
            "num.partitions" => {
                let n = number()?;
                if !(1..=100_000).contains(&n) {
                    bail!("{key}={value}: must be between 1 and 100000");
                }
                self.num_partitions = n as i32;
            }
            "socket.request.max.bytes" => {
                let n = number()?;
                if !(1024..=i32::MAX as i64).contains(&n) {
                    bail!("{key}={value}: must be between 1024 and 2147483647");
                }
                self.request_bytes_max = n as usize;
            }
            "max.connections" => self.connections_max = number()?.max(1) as usize,
            "log.retention.check.interval.ms" => {
                let n = number()?;
                if n < 1 {
                    bail!("{key}={value}: must be at least 1");
                }
                self.retention_check_interval_ms = n as u64;
            }
            "message.max.bytes" => self.log.set("max.message.bytes", value)?,
            "log.segment.bytes" => self.log.set("segment.bytes", value)?,
            "log.roll.ms" => self.log.set("segment.ms", value)?,
            "log.retention.ms" => self.log.set("retention.ms", value)?,
            "log.retention.bytes" => self.log.set("retention.bytes", value)?,
            "log.flush.interval.messages" => self.log.set("flush.messages", value)?,
            "log.flush.interval.ms" => self.log.set("flush.ms", value)?,
            "log.index.interval.bytes" => self.log.set("index.interval.bytes", value)?,
            "log.message.timestamp.type" => self.log.set("message.timestamp.type", value)?,
            _ => bail!("unknown setting {key}"),
        }
        Ok(())
    }
}
