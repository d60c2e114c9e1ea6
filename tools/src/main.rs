//! `sluice`: the admin and data CLI. It speaks the Kafka protocol (so it
//! works against Apache Kafka and Redpanda too) and reads segment files
//! offline; it depends on no broker internals.

mod cluster;
mod data;
mod group;
mod kafka;
mod log;
mod output;
mod topic;

use clap::{Parser, Subcommand};
use output::Format;

#[derive(Parser)]
#[command(
    name = "sluice",
    about = "Admin and data CLI for Sluice (and any Kafka-compatible broker)",
    after_help = "Examples:\n  sluice topic create orders --partitions 6\n  echo 'k:v' | sluice produce orders -K :\n  sluice consume orders -e --print key,offset\n  sluice group describe billing\n  sluice log verify data/orders-0"
)]
struct Cli {
    /// Broker address.
    #[arg(
        long,
        global = true,
        env = "SLUICE_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap: String,
    /// Human tables, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value = "table")]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, describe, delete and configure topics.
    #[command(subcommand)]
    Topic(topic::Command),
    /// Write lines from stdin or a file as records.
    Produce(data::ProduceArgs),
    /// Read records.
    Consume(data::ConsumeArgs),
    /// Consumer groups: list, describe (lag), seek.
    #[command(subcommand)]
    Group(group::Command),
    /// Cluster info and health.
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// Inspect segment files offline (no broker needed).
    #[command(subcommand)]
    Log(log::Command),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (bootstrap, format) = (cli.bootstrap.as_str(), cli.format);
    let result = match cli.command {
        Command::Topic(command) => topic::run(bootstrap, format, command),
        Command::Produce(args) => data::produce(bootstrap, format, args),
        Command::Consume(args) => data::consume(bootstrap, format, args),
        Command::Group(command) => group::run(bootstrap, format, command),
        Command::Cluster(command) => cluster::run(bootstrap, format, command),
        Command::Log(command) => log::run(format, command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A reader that went away (`sluice consume ... | head`) is not an error.
        Err(error)
            if error.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sluice: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
