//! The Kafka helpers the CLI uses (shared with bench in the `client`
//! crate), and the CLI's own connection with its "is it running?" hint.

use anyhow::{Context, Result};
use client::Connection;

pub use client::kafka::*;

pub fn connect(bootstrap: &str) -> Result<Connection> {
    Connection::connect(bootstrap)
        .map(|c| c.with_client_id("sluice-cli"))
        .with_context(|| format!("cannot reach a broker at {bootstrap} (is it running? --bootstrap / SLUICE_BOOTSTRAP)"))
}
