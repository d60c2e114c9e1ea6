//! How a connection is secured, set with Kafka's client property names
//! (`security.protocol`, `sasl.mechanism`, `sasl.username`,
//! `sasl.password` or `sasl.jaas.config`, `ssl.ca.location` or
//! `ssl.truststore.location`, `ssl.certificate.location` +
//! `ssl.key.location` for mTLS), as librdkafka and Kafka's tools read a
//! properties file. TLS is rustls; the SASL exchange is in sasl.rs.

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub fn parse(name: &str) -> Result<Protocol> {
        Ok(match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Protocol::Plaintext,
            "SSL" => Protocol::Ssl,
            "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
            "SASL_SSL" => Protocol::SaslSsl,
            _ => bail!(
                "security.protocol {name}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            ),
        })
    }

    fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub fn parse(name: &str) -> Result<Mechanism> {
        Ok(match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Mechanism::Plain,
            "SCRAM-SHA-256" => Mechanism::ScramSha256,
            "SCRAM-SHA-512" => Mechanism::ScramSha512,
            _ => bail!("sasl.mechanism {name}: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(Clone)]
pub struct Sasl {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

/// Everything a connection needs besides its address.
#[derive(Clone)]
pub struct Security {
    pub protocol: Protocol,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<Sasl>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field(
                "sasl",
                &self.sasl.as_ref().map(|s| (s.mechanism, &s.username)),
            )
            .finish()
    }
}

impl Default for Security {
    fn default() -> Security {
        Security {
            protocol: Protocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }
}

/// The security every `Connection::connect` uses unless told otherwise
/// (bench sets it once from its flags; the CLI leaves it plaintext).
static DEFAULT: OnceLock<Security> = OnceLock::new();

pub fn set_default(security: Security) -> Result<()> {
    DEFAULT
        .set(security)
        .map_err(|_| anyhow::anyhow!("the default security is already set"))
}

pub fn default_security() -> Security {
    DEFAULT.get().cloned().unwrap_or_default()
}

impl Security {
    /// From Kafka client properties (unknown keys are refused, so a
    /// misspelt one is not silently plaintext).
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Security> {
        const KNOWN: &[&str] = &[
            "security.protocol",
            "sasl.mechanism",
            "sasl.mechanisms",
            "sasl.username",
            "sasl.password",
            "sasl.jaas.config",
            "ssl.ca.location",
            "ssl.truststore.location",
            "ssl.truststore.type",
            "ssl.certificate.location",
            "ssl.key.location",
            "ssl.endpoint.identification.algorithm",
        ];
        if let Some(unknown) = properties.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            bail!("unknown client property {unknown}");
        }
        let get = |key: &str| properties.get(key).map(String::as_str);
        let protocol = Protocol::parse(get("security.protocol").unwrap_or("PLAINTEXT"))?;
        let tls = if protocol.tls() {
            let ca = get("ssl.ca.location").or(get("ssl.truststore.location"));
            let client = match (get("ssl.certificate.location"), get("ssl.key.location")) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => bail!("mTLS needs both ssl.certificate.location and ssl.key.location"),
            };
            let check_hostname = checks_hostname(get("ssl.endpoint.identification.algorithm"))?;
            Some(tls_config(ca, client, check_hostname)?)
        } else {
            None
        };
        let sasl = if protocol.sasl() {
            let mechanism = get("sasl.mechanism")
                .or(get("sasl.mechanisms"))
                .context("a SASL protocol needs sasl.mechanism")?;
            let jaas = get("sasl.jaas.config").map(jaas_credentials).transpose()?;
            let username = get("sasl.username")
                .map(str::to_string)
                .or(jaas.as_ref().map(|j| j.0.clone()))
                .context("a SASL protocol needs sasl.username")?;
            let password = get("sasl.password")
                .map(str::to_string)
                .or(jaas.map(|j| j.1))
                .context("a SASL protocol needs sasl.password")?;
            Some(Sasl {
                mechanism: Mechanism::parse(mechanism)?,
                username,
                password,
            })
        } else {
            None
        };
        Ok(Security {
            protocol,
            tls,
            sasl,
        })
    }

    /// Reads a Java-style properties file (`key=value`, `#` comments).
    pub fn from_file(path: &std::path::Path) -> Result<Security> {
        Security::from_properties(&Security::properties_file(path)?)
    }

    /// The `key=value` lines of a properties file.
    pub fn properties_file(path: &std::path::Path) -> Result<BTreeMap<String, String>> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let mut properties = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                bail!("{}: not key=value: {line}", path.display());
            };
            properties.insert(key.trim().to_string(), value.trim().to_string());
        }
        Ok(properties)
    }

    pub fn server_name(address: &str) -> Result<ServerName<'static>> {
        let host = address
            .rsplit_once(':')
            .map_or(address, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        ServerName::try_from(host.to_string()).with_context(|| format!("TLS server name {host}"))
    }
}

/// `username="..." password="..."` of a PlainLoginModule or
/// ScramLoginModule line.
fn jaas_credentials(jaas: &str) -> Result<(String, String)> {
    let field = |name: &str| -> Option<String> {
        let at = jaas.find(&format!("{name}=\""))? + name.len() + 2;
        let end = jaas[at..].find('"')?;
        Some(jaas[at..at + end].to_string())
    };
    match (field("username"), field("password")) {
        (Some(user), Some(password)) => Ok((user, password)),
        _ => bail!("sasl.jaas.config has no username=\"...\" password=\"...\""),
    }
}

fn tls_config(
    ca: Option<&str>,
    client: Option<(&str, &str)>,
    check_hostname: bool,
) -> Result<Arc<rustls::ClientConfig>> {
    let ca = ca.context("TLS needs ssl.ca.location (PEM CA certificates)")?;
    let ca_pem = std::fs::read(ca).with_context(|| format!("read {ca}"))?;
    let client = match client {
        None => None,
        Some((cert, key)) => Some((
            std::fs::read(cert).with_context(|| format!("read {cert}"))?,
            std::fs::read(key).with_context(|| format!("read {key}"))?,
        )),
    };
    let client = client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
    tls_client_config(&ca_pem, client, check_hostname)
}

/// A rustls client config from PEM: the CA certificates the server's chain
/// must lead to, an optional client chain and key (mTLS), and whether the
/// server's certificate must name the host dialled (Kafka's
/// `ssl.endpoint.identification.algorithm=https`, its default).
pub fn tls_client_config(
    ca_pem: &[u8],
    client: Option<(&[u8], &[u8])>,
    check_hostname: bool,
) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.context("CA certificate")?)
            .context("CA certificate")?;
    }
    if roots.is_empty() {
        bail!("no CA certificate in the truststore");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if check_hostname {
        builder.with_root_certificates(roots)
    } else {
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
    };
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(chain)
                .collect::<Result<Vec<_>, _>>()
                .context("client certificates")?;
            let key = PrivateKeyDer::from_pem_slice(key).context("client key")?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    Ok(Arc::new(config))
}

/// `ssl.endpoint.identification.algorithm` empty (Java) or `none`
/// (librdkafka): the chain must still lead to a trusted CA, and only the
/// name in it is not compared with the host dialled.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `ssl.endpoint.identification.algorithm`: `https` (the default) checks
/// the host name; empty or `none` does not.
pub fn checks_hostname(value: Option<&str>) -> Result<bool> {
    match value.map(str::trim) {
        None => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("https") => Ok(true),
        Some(v) if v.is_empty() || v.eq_ignore_ascii_case("none") => Ok(false),
        Some(v) => {
            bail!("ssl.endpoint.identification.algorithm {v}: expected https, none or empty")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_as_kafka_tools_write_them() {
        let mut properties = BTreeMap::new();
        properties.insert(
            "security.protocol".to_string(),
            "SASL_PLAINTEXT".to_string(),
        );
        properties.insert("sasl.mechanism".to_string(), "SCRAM-SHA-512".to_string());
        properties.insert(
            "sasl.jaas.config".to_string(),
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3cret";"#.to_string(),
        );
        let security = Security::from_properties(&properties).expect("properties");
        let sasl = security.sasl.expect("sasl");
        assert_eq!(sasl.mechanism, Mechanism::ScramSha512);
        assert_eq!(
            (sasl.username.as_str(), sasl.password.as_str()),
            ("alice", "s3cret")
        );
        assert!(security.tls.is_none());
        properties.insert("ssl.keystore.location".to_string(), "x".to_string());
        assert!(Security::from_properties(&properties).is_err());
        assert!(Security::server_name("127.0.0.1:9092").is_ok());
        assert!(Security::server_name("localhost:9092").is_ok());
    }
}
