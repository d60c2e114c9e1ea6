//! `bench`: a Kafka-protocol load generator. This first slice measures
//! produce throughput and produce-ack latency (HdrHistogram) for each acks
//! setting in turn, closed-loop or open-loop at a fixed rate, against any
//! Kafka-compatible broker.

mod batch;
mod broker_cpu;
mod broker_metrics;
mod client;
mod compare;
mod connect;
mod consume;
mod e2e;
mod produce;
mod progress;
mod report;
mod security;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Kafka-protocol load generator: latency histograms across acks settings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce load; one run per --acks value, reported side by side.
    #[command(
        after_help = "Examples:\n  bench produce --acks 0,1,all --duration-s 10\n  bench produce --rate 100000 --message-bytes 1024 --batch-bytes 131072 --json out.json"
    )]
    Produce(Box<produce::Options>),
    /// Read a topic from its start to its current end as fast as Fetch
    /// allows, verifying every batch's CRC; reports MB/s.
    #[command(
        after_help = "Examples:\n  bench consume --topic data\n  bench consume --topic data --repeat 3 --partition-bytes 1048576"
    )]
    Consume(consume::Options),
    /// Overlay reports of `bench produce --json` (several brokers or
    /// settings) in one table and one percentile chart (SVG and/or PNG).
    #[command(
        after_help = "Examples:\n  bench compare sluice.json kafka.json\n  bench compare sluice.json kafka.json --svg latency.svg --png latency.png"
    )]
    Compare(compare::Options),
    /// Open connections one after another (TLS handshake and SASL exchange
    /// per the security flags, then ApiVersions); reports connections/s.
    #[command(
        after_help = "Examples:\n  bench connect --count 500\n  bench connect --security-protocol SASL_SSL --sasl-mechanism SCRAM-SHA-256 --sasl-username u --ssl-ca-location ca.pem"
    )]
    Connect(connect::Options),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Produce(options) => {
            let options = options.with_preset();
            options.security.install()?;
            let results = produce::run(&options)?;
            report::print_table(&results);
            report::print_e2e_table(&results);
            report::print_broker_cpu_table(&results);
            report::print_broker_metrics_table(&results);
            if let Some(path) = &options.json {
                std::fs::write(path, report::json(&options, &results))?;
                eprintln!("wrote {}", path.display());
            }
            compare::charts(
                &report::series(&options.label(), &results),
                &format!("{}: produce-ack latency by acks", options.label()),
                options.svg.as_deref(),
                options.png.as_deref(),
                std::path::Path::new(compare::DEFAULT_FONT),
            )?;
            if let Some(dir) = &options.hgrm_dir {
                report::write_hgrm(dir, &options.label(), &results)?;
                eprintln!("wrote .hgrm files to {}", dir.display());
            }
            let errors: u64 = results.iter().map(|r| r.errors).sum();
            if errors > 0 {
                bail!("{errors} produce requests failed");
            }
            let failures: u64 = results
                .iter()
                .filter_map(|r| r.e2e.as_ref())
                .map(|e| e.failures())
                .sum();
            if failures > 0 {
                bail!("{failures} records lost, duplicated or corrupted (see the table)");
            }
            Ok(())
        }
        Command::Compare(options) => compare::run(&options),
        Command::Connect(options) => {
            connect::print(&connect::run(&options)?);
            Ok(())
        }
        Command::Consume(options) => {
            options.security.install()?;
            let results = consume::run(&options)?;
            consume::print(&results);
            Ok(())
        }
    }
}
