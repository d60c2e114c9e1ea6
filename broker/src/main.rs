//! The `broker` binary: CLI -> Config -> Server::run, nothing else.

use clap::Parser;

use broker::{config, server};

#[derive(Parser, Debug)]
#[command(
    name = "broker",
    about = "Sluice: a Kafka-wire-compatible event streaming broker",
    after_help = "Examples:\n  broker --data-dir ./data\n  broker --listen 127.0.0.1:9093 --set num.partitions=3 --set log.segment.bytes=104857600\n  broker --config sluice.toml --cores 2"
)]
struct Cli {
    /// Address to accept Kafka clients on [default: 127.0.0.1:9092].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// host:port that clients are told to connect to (default: --listen).
    #[arg(long)]
    advertised_listener: Option<String>,
    /// Directory for topic data and metadata [default: ./data].
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Executor threads, one pinned to each of the first N CPUs; each owns
    /// a share of the partitions. Default: every CPU.
    #[arg(long)]
    cores: Option<usize>,
    /// Microseconds an idle core keeps polling before it sleeps: lower
    /// saves CPU, higher answers cross-core requests sooner (0..=10000)
    /// [default: 50].
    #[arg(long)]
    idle_poll_time_us: Option<u64>,
    /// This broker's node id [default: 0].
    #[arg(long)]
    node_id: Option<i32>,
    /// A TOML file of settings under their Kafka names (`listeners`,
    /// `log.dirs`, `node.id`, `num.partitions`, `log.segment.bytes`, ...).
    /// --set and the flags above override it.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
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
    let flags = config::Flags {
        listen: cli.listen,
        advertised_listener: cli.advertised_listener,
        data_dir: cli.data_dir,
        cores: cli.cores,
        idle_poll_us: cli.idle_poll_time_us,
        node_id: cli.node_id,
        config_file: cli.config,
        settings: cli.settings,
    };
    let config = match config::Config::resolve(flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("broker: bad configuration: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match server::run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("broker: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
