//! bench's security flags: Kafka's client settings, from a properties
//! file (`--command-config`, as Kafka's tools take it) and/or flags named
//! after librdkafka's properties; flags win over the file. They become the
//! process's default `client::security::Security`, so every connection
//! bench opens (producers, consumers, admin) is secured alike.

use anyhow::Result;
use clap::Args;
use client::security::Security;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args, Debug, Clone, Default)]
pub struct SecurityArgs {
    /// Kafka client properties file (security.protocol, sasl.*, ssl.*).
    #[arg(long)]
    pub command_config: Option<PathBuf>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long)]
    pub security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long)]
    pub sasl_mechanism: Option<String>,
    #[arg(long)]
    pub sasl_username: Option<String>,
    /// Also SLUICE_SASL_PASSWORD, to keep it out of the process list.
    #[arg(long, env = "SLUICE_SASL_PASSWORD", hide_env_values = true)]
    pub sasl_password: Option<String>,
    /// PEM file of the CAs that sign the broker's certificate.
    #[arg(long)]
    pub ssl_ca_location: Option<String>,
    /// PEM client certificate and key, for mTLS.
    #[arg(long)]
    pub ssl_certificate_location: Option<String>,
    #[arg(long)]
    pub ssl_key_location: Option<String>,
}

impl SecurityArgs {
    pub fn security(&self) -> Result<Security> {
        let mut properties = BTreeMap::new();
        if let Some(path) = &self.command_config {
            properties = Security::properties_file(path)?;
        }
        for (key, value) in [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
            ("ssl.certificate.location", &self.ssl_certificate_location),
            ("ssl.key.location", &self.ssl_key_location),
        ] {
            if let Some(value) = value {
                properties.insert(key.to_string(), value.clone());
            }
        }
        Security::from_properties(&properties)
    }

    /// Makes these settings every connection's.
    pub fn install(&self) -> Result<()> {
        client::security::set_default(self.security()?)
    }
}
