//! Listener security, as Kafka configures it: each listener of `listeners`
//! has a security protocol (`listener.security.protocol.map`), PLAINTEXT,
//! SSL, SASL_PLAINTEXT or SASL_SSL. SSL settings (`ssl.*`) and SASL
//! settings (`sasl.*`, `<mechanism>.sasl.jaas.config`) are read for a
//! listener under its `listener.name.<name>.` prefix first, then
//! unprefixed, as Kafka reads them.
//!
//! Where it sits: the accept loop (server.rs) wraps each connection in its
//! listener's transport (tls.rs for SSL listeners, after the handshake);
//! the connection (connection.rs) runs SASL's exchange (sasl.rs, with
//! plain.rs and scram.rs) before it serves anything else. The principal
//! that comes out (mTLS subject, or the SASL user) rides on every request's
//! `ConnectionInfo`.

pub mod authorizer;
pub mod plain;
pub mod principal;
pub mod sasl;
pub mod scram;
pub mod tls;
pub mod x509;

use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// Every security setting read (README, "Security"). The SCRAM JAAS
/// entries are accepted because Kafka configs carry them for the
/// inter-broker client; the broker's SCRAM users live in cluster metadata.
const KNOWN_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.principal.mapping.rules",
    "sasl.enabled.mechanisms",
    "sasl.server.max.receive.size",
    "plain.sasl.jaas.config",
    "scram-sha-256.sasl.jaas.config",
    "scram-sha-512.sasl.jaas.config",
    "connections.max.reauth.ms",
    "sluice.sasl.scram.accept.long.nonce",
    "sasl.mechanism.inter.broker.protocol",
    "ssl.endpoint.identification.algorithm",
];

/// The `ssl.*`, `sasl.*`, `listener.name.*` and re-authentication settings
/// as given. `Debug` shows the keys only: values hold passwords.
#[derive(Clone, Default)]
pub struct SecuritySettings(BTreeMap<String, String>);

impl std::fmt::Debug for SecuritySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecuritySettings {
    /// Whether `key` is one of these (the config's `set` routes it here):
    /// a known key, bare or under `listener.name.<listener>.`. Anything
    /// else stays an unknown setting, so a misspelt key is not ignored.
    pub fn owns(key: &str) -> bool {
        let base = match key.strip_prefix("listener.name.") {
            Some(rest) => match rest.split_once('.') {
                Some((listener, base)) if !listener.is_empty() => base,
                _ => return false,
            },
            None => key,
        };
        KNOWN_KEYS.contains(&base)
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_string(), value.to_string());
    }

    /// As `get`, but an empty value counts as given (an empty
    /// `ssl.endpoint.identification.algorithm` turns the check off).
    pub fn get_or_empty(&self, listener: &str, key: &str) -> Option<&str> {
        let prefixed = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
        self.0
            .get(&prefixed)
            .or_else(|| self.0.get(key))
            .map(String::as_str)
    }

    /// `key` for `listener`: `listener.name.<listener lower-case>.<key>`,
    /// else `<key>`.
    pub fn get(&self, listener: &str, key: &str) -> Option<&str> {
        self.get_or_empty(listener, key)
            .filter(|v| !v.trim().is_empty())
    }
}

/// `sasl.server.max.receive.size`'s default (Kafka's).
pub const SASL_RECEIVE_MAX_DEFAULT: usize = 524_288;

/// Everything a core needs to secure one listener's connections; built
/// once at start-up and shared by the cores.
pub struct ListenerSecurity {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub tls: Option<ReloadableTls>,
    pub principal_mapper: principal::PrincipalMapper,
    pub sasl: Option<Arc<sasl::SaslSettings>>,
}

impl ListenerSecurity {
    /// Reads the listener's settings (and its PEM files). The error says
    /// which setting is wrong.
    pub fn build(
        name: &str,
        protocol: SecurityProtocol,
        settings: &SecuritySettings,
    ) -> Result<ListenerSecurity, (String, String)> {
        let get = |key: &str| settings.get(name, key);
        let fail = |key: &str, reason: String| (format!("{key} (listener {name})"), reason);
        let tls = if protocol.uses_tls() {
            Some(ReloadableTls::build(name, settings)?)
        } else {
            None
        };
        let principal_mapper = match get("ssl.principal.mapping.rules") {
            Some(rules) => principal::PrincipalMapper::parse(rules)
                .map_err(|r| fail("ssl.principal.mapping.rules", r))?,
            None => principal::PrincipalMapper::default(),
        };
        let sasl = if protocol.uses_sasl() {
            Some(Arc::new(
                sasl_settings(name, settings).map_err(|(k, r)| fail(&k, r))?,
            ))
        } else {
            None
        };
        Ok(ListenerSecurity {
            name: name.to_string(),
            protocol,
            tls,
            principal_mapper,
            sasl,
        })
    }
}

/// A TLS listener's acceptor, rebuilt when the PEM files it was read from
/// change (`ReloadableTls::reload_if_changed`, which server.rs calls every
/// `sluice.ssl.reload.interval.ms`): a renewed certificate or CA is served
/// to new connections without a restart; established ones keep theirs.
pub struct ReloadableTls {
    listener: String,
    settings: SecuritySettings,
    current: std::sync::RwLock<futures_rustls::TlsAcceptor>,
    /// The keystore and truststore files and their modification times
    /// when last read (none for PEM given inline).
    files: std::sync::Mutex<Vec<(String, Option<std::time::SystemTime>)>>,
}

impl ReloadableTls {
    fn build(
        listener: &str,
        settings: &SecuritySettings,
    ) -> Result<ReloadableTls, (String, String)> {
        let files = watched_files(listener, settings);
        let acceptor = acceptor(listener, settings)?;
        Ok(ReloadableTls {
            listener: listener.to_string(),
            settings: settings.clone(),
            current: std::sync::RwLock::new(acceptor),
            files: std::sync::Mutex::new(files),
        })
    }

    /// The acceptor for a new connection (a read lock held for a clone).
    pub fn acceptor(&self) -> futures_rustls::TlsAcceptor {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the files if one changed since the last read. Ok(true):
    /// replaced. An error (a file half-written, a key that does not match)
    /// keeps the old acceptor; the change is not retried until the files
    /// change again, so a bad file is reported once.
    pub fn reload_if_changed(&self) -> Result<bool, (String, String)> {
        let now = watched_files(&self.listener, &self.settings);
        {
            let mut seen = match self.files.lock() {
                Ok(seen) => seen,
                Err(poisoned) => poisoned.into_inner(),
            };
            if *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        let fresh = acceptor(&self.listener, &self.settings)?;
        match self.current.write() {
            Ok(mut current) => *current = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(true)
    }
}

fn acceptor(
    listener: &str,
    settings: &SecuritySettings,
) -> Result<futures_rustls::TlsAcceptor, (String, String)> {
    let fail = |key: &str, reason: String| (format!("{key} (listener {listener})"), reason);
    let files = tls_files(listener, settings).map_err(|(key, reason)| fail(&key, reason))?;
    let config = tls::server_config(&files).map_err(|r| fail("ssl.keystore", r))?;
    Ok(futures_rustls::TlsAcceptor::from(config))
}

fn watched_files(
    listener: &str,
    settings: &SecuritySettings,
) -> Vec<(String, Option<std::time::SystemTime>)> {
    ["ssl.keystore.location", "ssl.truststore.location"]
        .iter()
        .filter_map(|key| settings.get(listener, key))
        .map(|path| {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            (path.to_string(), modified)
        })
        .collect()
}

impl std::fmt::Debug for ListenerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSecurity")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

/// How this node dials a listener of another node (the replica fetchers
/// the inter-broker listener, the controller quorum the controller
/// listener): the listener's protocol, a TLS client config checking the
/// peer's certificate against the listener's truststore (and offering this
/// node's own keystore for mTLS), and the SASL mechanism
/// `sasl.mechanism.inter.broker.protocol` with the `username` and
/// `password` of the listener's `<mechanism>.sasl.jaas.config`, as Kafka's
/// brokers log in to each other.
pub struct PeerSecurity {
    pub listener: String,
    pub protocol: SecurityProtocol,
    pub tls: Option<futures_rustls::TlsConnector>,
    pub sasl: Option<PeerSasl>,
}

pub struct PeerSasl {
    pub mechanism: sasl::Mechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for PeerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSecurity")
            .field("listener", &self.listener)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field(
                "sasl",
                &self.sasl.as_ref().map(|s| (s.mechanism, &s.username)),
            )
            .finish()
    }
}

impl PeerSecurity {
    pub fn build(
        listener: &str,
        protocol: SecurityProtocol,
        settings: &SecuritySettings,
    ) -> Result<PeerSecurity, (String, String)> {
        let fail = |key: &str, reason: String| {
            (format!("{key} (inter-broker listener {listener})"), reason)
        };
        let tls = if protocol.uses_tls() {
            let files =
                tls_files(listener, settings).map_err(|(key, reason)| fail(&key, reason))?;
            let truststore = files.truststore_pem.as_deref().ok_or_else(|| {
                fail(
                    "ssl.truststore.location",
                    "this node checks the certificates of the nodes it dials: give the CA in ssl.truststore.location or ssl.truststore.certificates".into(),
                )
            })?;
            let check_hostname = client::security::checks_hostname(
                settings.get_or_empty(listener, "ssl.endpoint.identification.algorithm"),
            )
            .map_err(|e| fail("ssl.endpoint.identification.algorithm", e.to_string()))?;
            let config = client::security::tls_client_config(
                truststore,
                Some((&files.chain_pem, &files.key_pem)),
                check_hostname,
            )
            .map_err(|e| fail("ssl.truststore", format!("{e:#}")))?;
            Some(futures_rustls::TlsConnector::from(config))
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            let key = "sasl.mechanism.inter.broker.protocol";
            let name = settings.get(listener, key).ok_or_else(|| {
                fail(key, "GSSAPI (Kafka's default) is not served: set PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512".into())
            })?;
            let mechanism = sasl::Mechanism::from_name(name.trim()).ok_or_else(|| {
                fail(
                    key,
                    format!("{name} is not served (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 are)"),
                )
            })?;
            let served = sasl_settings(listener, settings).map_err(|(k, r)| fail(&k, r))?;
            if !served.mechanisms.contains(&mechanism) {
                return Err(fail(
                    key,
                    format!("{name} must be one of the listener's sasl.enabled.mechanisms"),
                ));
            }
            let jaas_key = format!("{}.sasl.jaas.config", mechanism.name().to_ascii_lowercase());
            let jaas = settings.get(listener, &jaas_key).ok_or_else(|| {
                fail(
                    &jaas_key,
                    "the broker's own login: username=\"...\" password=\"...\"".into(),
                )
            })?;
            let options = plain::jaas_options(jaas).map_err(|r| fail(&jaas_key, r))?;
            let option = |name: &str| {
                options
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        fail(
                            &jaas_key,
                            format!("has no {name}=\"...\" for the broker's own login"),
                        )
                    })
            };
            Some(PeerSasl {
                mechanism,
                username: option("username")?,
                password: option("password")?,
            })
        } else {
            None
        };
        Ok(PeerSecurity {
            listener: listener.to_string(),
            protocol,
            tls,
            sasl,
        })
    }
}

fn read_file(key: &str, path: &str) -> Result<Vec<u8>, (String, String)> {
    std::fs::read(path).map_err(|e| (key.to_string(), format!("cannot read {path}: {e}")))
}

fn tls_files(name: &str, settings: &SecuritySettings) -> Result<tls::TlsFiles, (String, String)> {
    let get = |key: &str| settings.get(name, key);
    let bad = |key: &str, reason: &str| Err((key.to_string(), reason.to_string()));
    for key in ["ssl.keystore.type", "ssl.truststore.type"] {
        if let Some(kind) = get(key) {
            if !kind.eq_ignore_ascii_case("PEM") {
                return bad(key, "only PEM key and trust stores are supported");
            }
        }
    }
    if get("ssl.key.password").is_some() {
        return bad(
            "ssl.key.password",
            "encrypted keys are not supported: give an unencrypted PEM key",
        );
    }
    let (chain_pem, key_pem) = match (
        get("ssl.keystore.certificate.chain"),
        get("ssl.keystore.key"),
        get("ssl.keystore.location"),
    ) {
        (Some(chain), Some(key), _) => (chain.as_bytes().to_vec(), key.as_bytes().to_vec()),
        (_, _, Some(path)) => {
            // One PEM file with the key and the chain, as Kafka's PEM
            // keystore file holds them.
            let pem = read_file("ssl.keystore.location", path)?;
            (pem.clone(), pem)
        }
        _ => {
            return bad(
                "ssl.keystore.location",
                "a TLS listener needs ssl.keystore.location (PEM key and chain) or ssl.keystore.certificate.chain and ssl.keystore.key",
            )
        }
    };
    let truststore_pem = match (
        get("ssl.truststore.certificates"),
        get("ssl.truststore.location"),
    ) {
        (Some(pem), _) => Some(pem.as_bytes().to_vec()),
        (None, Some(path)) => Some(read_file("ssl.truststore.location", path)?),
        (None, None) => None,
    };
    let client_auth = match get("ssl.client.auth") {
        None => tls::ClientAuth::None,
        Some(value) => match tls::ClientAuth::parse(value) {
            Some(auth) => auth,
            None => return bad("ssl.client.auth", "expected none, requested or required"),
        },
    };
    let protocols = get("ssl.enabled.protocols").unwrap_or("TLSv1.2,TLSv1.3");
    let mut tls12 = false;
    let mut tls13 = false;
    for protocol in protocols
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match protocol {
            "TLSv1.2" => tls12 = true,
            "TLSv1.3" => tls13 = true,
            _ => {
                return bad(
                    "ssl.enabled.protocols",
                    "only TLSv1.2 and TLSv1.3 are served",
                )
            }
        }
    }
    Ok(tls::TlsFiles {
        chain_pem,
        key_pem,
        truststore_pem,
        client_auth,
        tls12,
        tls13,
    })
}

fn sasl_settings(
    name: &str,
    settings: &SecuritySettings,
) -> Result<sasl::SaslSettings, (String, String)> {
    let get = |key: &str| settings.get(name, key);
    let key = "sasl.enabled.mechanisms";
    // Kafka's default is GSSAPI, which is not served: PLAIN and SCRAM.
    let names = get(key).unwrap_or("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512");
    let mut mechanisms = Vec::new();
    for mechanism in names.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let parsed = sasl::Mechanism::from_name(mechanism).ok_or_else(|| {
            (
                key.to_string(),
                format!("{mechanism} is not served (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 are)"),
            )
        })?;
        mechanisms.push(parsed);
    }
    if mechanisms.is_empty() {
        return Err((key.to_string(), "no mechanism enabled".into()));
    }
    let jaas_key = "plain.sasl.jaas.config";
    let plain_users = match get(jaas_key) {
        Some(jaas) => plain::PlainUsers::from_jaas(jaas).map_err(|r| {
            (
                format!("listener.name.{}.{jaas_key}", name.to_ascii_lowercase()),
                r,
            )
        })?,
        None => plain::PlainUsers::default(),
    };
    let number = |key: &str, default: u64| -> Result<u64, (String, String)> {
        get(key).map_or(Ok(default), |v| {
            v.trim().parse().map_err(|_| {
                (
                    key.to_string(),
                    format!("{v} is not a non-negative integer"),
                )
            })
        })
    };
    let flag = |key: &str| -> Result<bool, (String, String)> {
        match get(key) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err((key.to_string(), format!("{v} is not true or false"))),
        }
    };
    Ok(sasl::SaslSettings {
        mechanisms,
        plain_users,
        reauth_ms: number("connections.max.reauth.ms", 0)?,
        receive_max: number(
            "sasl.server.max.receive.size",
            SASL_RECEIVE_MAX_DEFAULT as u64,
        )?
        .max(64) as usize,
        long_nonce: flag("sluice.sasl.scram.accept.long.nonce")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_keys_are_security_settings() {
        assert!(SecuritySettings::owns("ssl.client.auth"));
        assert!(SecuritySettings::owns(
            "listener.name.sasl_ssl.plain.sasl.jaas.config"
        ));
        assert!(SecuritySettings::owns("connections.max.reauth.ms"));
        for misspelt in [
            "ssl.client.authentication",
            "sasl.enabled.mechanism",
            "listener.name.sasl_ssl",
            "listener.name..ssl.client.auth",
            "listener.name.sasl_ssl.ssl.keystore.locaton",
        ] {
            assert!(!SecuritySettings::owns(misspelt), "{misspelt}");
        }
    }

    #[test]
    fn listener_prefixed_settings_win_and_values_stay_out_of_debug() {
        let mut settings = SecuritySettings::default();
        settings.set("sasl.enabled.mechanisms", "PLAIN");
        settings.set(
            "listener.name.sasl_ssl.sasl.enabled.mechanisms",
            "SCRAM-SHA-512",
        );
        settings.set(
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            "M required user_a=\"hunter2\";",
        );
        assert_eq!(
            settings.get("SASL_SSL", "sasl.enabled.mechanisms"),
            Some("SCRAM-SHA-512")
        );
        assert_eq!(
            settings.get("OTHER", "sasl.enabled.mechanisms"),
            Some("PLAIN")
        );
        assert!(!format!("{settings:?}").contains("hunter2"));
        let built =
            ListenerSecurity::build("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext, &settings)
                .expect("listener");
        let sasl = built.sasl.expect("sasl");
        assert_eq!(sasl.mechanisms, vec![sasl::Mechanism::Plain]);
        assert_eq!(
            sasl.plain_users.authenticate(b"\0a\0hunter2"),
            Ok("a".into())
        );
        assert!(!format!("{sasl:?}").contains("hunter2"));
    }

    #[test]
    fn tls_listeners_say_which_setting_is_missing_or_wrong() {
        let mut settings = SecuritySettings::default();
        let error = ListenerSecurity::build("SSL", SecurityProtocol::Ssl, &settings)
            .expect_err("no keystore");
        assert!(error.0.starts_with("ssl.keystore.location"), "{error:?}");
        settings.set("ssl.keystore.type", "JKS");
        let error =
            ListenerSecurity::build("SSL", SecurityProtocol::Ssl, &settings).expect_err("jks");
        assert!(error.1.contains("PEM"), "{error:?}");
        settings.set("ssl.keystore.type", "PEM");
        settings.set("ssl.keystore.location", "/nonexistent/key.pem");
        let error =
            ListenerSecurity::build("SSL", SecurityProtocol::Ssl, &settings).expect_err("file");
        assert!(error.1.contains("/nonexistent/key.pem"), "{error:?}");
        settings.set("sasl.enabled.mechanisms", "GSSAPI");
        let error = ListenerSecurity::build("S", SecurityProtocol::SaslPlaintext, &settings)
            .expect_err("gssapi");
        assert!(error.1.contains("GSSAPI"), "{error:?}");
    }

    #[test]
    fn peer_logins_say_which_setting_is_missing() {
        let mut settings = SecuritySettings::default();
        let plain = PeerSecurity::build("INTERNAL", SecurityProtocol::Plaintext, &settings)
            .expect("plaintext needs nothing");
        assert!(plain.tls.is_none() && plain.sasl.is_none());
        let error = PeerSecurity::build("INTERNAL", SecurityProtocol::SaslPlaintext, &settings)
            .expect_err("no mechanism");
        assert!(error.1.contains("GSSAPI"), "{error:?}");
        settings.set("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512");
        settings.set("listener.name.internal.sasl.enabled.mechanisms", "PLAIN");
        let error = PeerSecurity::build("INTERNAL", SecurityProtocol::SaslPlaintext, &settings)
            .expect_err("not enabled");
        assert!(error.1.contains("sasl.enabled.mechanisms"), "{error:?}");
        settings.set(
            "listener.name.internal.sasl.enabled.mechanisms",
            "SCRAM-SHA-512",
        );
        let error = PeerSecurity::build("INTERNAL", SecurityProtocol::SaslPlaintext, &settings)
            .expect_err("no login");
        assert!(
            error.0.starts_with("scram-sha-512.sasl.jaas.config"),
            "{error:?}"
        );
        settings.set(
            "listener.name.internal.scram-sha-512.sasl.jaas.config",
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"b-secret\";",
        );
        let peer = PeerSecurity::build("INTERNAL", SecurityProtocol::SaslPlaintext, &settings)
            .expect("login");
        let sasl = peer.sasl.as_ref().expect("sasl");
        assert_eq!(
            (sasl.username.as_str(), sasl.password.as_str()),
            ("broker", "b-secret")
        );
        assert!(!format!("{peer:?}").contains("b-secret"));
        let error = PeerSecurity::build("INTERNAL", SecurityProtocol::SaslSsl, &settings)
            .expect_err("no keystore");
        assert!(error.0.starts_with("ssl.keystore.location"), "{error:?}");
    }
}
