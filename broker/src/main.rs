//! The `broker` binary: CLI -> Config -> Server::run, nothing else.

use clap::Parser;

use broker::{config, server};

#[derive(Parser, Debug)]
#[command(
    name = "broker",
    about = "Sluice: a Kafka-wire-compatible event streaming broker",
    after_help = "Examples:\n  broker --data-dir ./data\n  broker --listen 127.0.0.1:9093 --set num.partitions=3 --set log.segment.bytes=104857600"
)]
struct Cli {
    /// Address to accept Kafka clients on.
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: std::net::SocketAddr,
    /// host:port that clients are told to connect to (default: --listen).
    #[arg(long)]
    advertised_listener: Option<String>,
    /// Directory for topic data and metadata.
    #[arg(long, default_value = "./data")]
    data_dir: std::path::PathBuf,
    /// Executor threads, one pinned to each of the first N CPUs; each owns
    /// a share of the partitions. Default: every CPU.
    #[arg(long)]
    cores: Option<usize>,
    /// Microseconds an idle core keeps polling before it sleeps: lower
    /// saves CPU, higher answers cross-core requests sooner (0..=10000).
    #[arg(long, default_value_t = config::IDLE_POLL_US_DEFAULT)]
    idle_poll_time_us: u64,
    /// This broker's node id.
    #[arg(long, default_value_t = 0)]
    node_id: i32,
    /// Any Kafka-named setting, repeatable: --set num.partitions=3
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if cli.idle_poll_time_us > config::IDLE_POLL_US_MAX {
        eprintln!(
            "broker: bad configuration: --idle-poll-time-us {} is above {}",
            cli.idle_poll_time_us,
            config::IDLE_POLL_US_MAX
        );
        return std::process::ExitCode::from(2);
    }
    let mut config = match config::Config::from_cli(
        cli.listen,
        cli.advertised_listener,
        cli.data_dir,
        cli.cores,
        cli.node_id,
        &cli.settings,
    ) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("broker: bad configuration: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    config.idle_poll_us = cli.idle_poll_time_us;
    match server::run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("broker: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
