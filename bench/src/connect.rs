//! `bench connect`: how fast the broker takes new connections with their
//! security: each round opens a TCP connection, does the TLS handshake and
//! the SASL exchange the security flags ask for, sends ApiVersions and
//! closes. Reports connections per second and the latency percentiles of
//! the whole set-up, from `--clients` threads at once.

use crate::client::Connection;
use crate::security::SecurityArgs;
use anyhow::{bail, Result};
use clap::Args;
use hdrhistogram::Histogram;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct Options {
    /// Broker address (also SLUICE_BOOTSTRAP).
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Connections per client thread.
    #[arg(long, default_value_t = 200)]
    pub count: u32,
    /// Threads connecting at once.
    #[arg(long, default_value_t = 1)]
    pub clients: u32,
    #[command(flatten)]
    pub security: SecurityArgs,
}

pub struct ConnectResult {
    pub connections: u64,
    pub seconds: f64,
    pub latency_us: Histogram<u64>,
}

fn one(bootstrap: &str) -> Result<()> {
    let mut connection = Connection::connect(bootstrap)?;
    let response: ApiVersionsResponse =
        connection.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())?;
    if response.error_code != 0 {
        bail!("ApiVersions error {}", response.error_code);
    }
    Ok(())
}

pub fn run(options: &Options) -> Result<ConnectResult> {
    options.security.install()?;
    one(&options.bootstrap)?; // fails fast on a wrong setting
    let started = Instant::now();
    let threads: Vec<_> = (0..options.clients)
        .map(|_| {
            let bootstrap = options.bootstrap.clone();
            let count = options.count;
            std::thread::spawn(move || -> Result<Histogram<u64>> {
                let mut latency = Histogram::<u64>::new(3)?;
                for _ in 0..count {
                    let at = Instant::now();
                    one(&bootstrap)?;
                    latency.record(at.elapsed().as_micros() as u64)?;
                }
                Ok(latency)
            })
        })
        .collect();
    let mut latency_us = Histogram::<u64>::new(3)?;
    for thread in threads {
        let histogram = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a connecting thread panicked"))??;
        latency_us.add(histogram)?;
    }
    Ok(ConnectResult {
        connections: latency_us.len(),
        seconds: started.elapsed().as_secs_f64(),
        latency_us,
    })
}

pub fn print(result: &ConnectResult) {
    let h = &result.latency_us;
    println!(
        "{} connections in {:.2} s: {:.0} connections/s; set-up latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        result.connections,
        result.seconds,
        result.connections as f64 / result.seconds.max(f64::EPSILON),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    );
}
