//! One connection's SASL state on a SASL_PLAINTEXT or SASL_SSL listener,
//! with Kafka's rules (`SaslServerAuthenticator`): ApiVersions is allowed
//! before the handshake, then SaslHandshake picks a mechanism, then the
//! mechanism's tokens travel in SaslAuthenticate requests (handshake v1)
//! or as raw size-prefixed frames (handshake v0). Any other request
//! before authentication closes the connection without an answer;
//! failures are answered with Kafka's error codes and a generic message,
//! then the connection closes. After authentication a SaslHandshake
//! starts re-authentication (KIP-368) under the same principal, and once
//! the session given by `connections.max.reauth.ms` has expired any other
//! request closes the connection.
//!
//! No I/O here: the connection feeds requests in and writes what comes
//! out; the credential lookup and the randomness are passed in.

use crate::security::plain::PlainUsers;
use crate::security::scram::{self, ScramServer};
use bytes::Bytes;
use controller::ScramCredential;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(scram::Mechanism),
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            other => scram::Mechanism::from_name(other).map(Mechanism::Scram),
        }
    }
}

/// A listener's SASL settings.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    /// `sasl.enabled.mechanisms`, in the order given.
    pub mechanisms: Vec<Mechanism>,
    /// The `user_*` options of `listener.name.<l>.plain.sasl.jaas.config`.
    pub plain_users: PlainUsers,
    /// `connections.max.reauth.ms`; 0: sessions do not expire.
    pub reauth_ms: u64,
    /// `sasl.server.max.receive.size`: the largest frame read before
    /// authentication.
    pub receive_max: usize,
    /// `sluice.sasl.scram.accept.long.nonce`.
    pub long_nonce: bool,
}

/// Kafka's message for every authentication failure, whatever the cause.
pub fn failure_message(mechanism: Mechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per connection, for its authentication only"
)]
enum State {
    /// Nothing yet (or authenticated, see `user`): ApiVersions or
    /// SaslHandshake.
    Start,
    /// A mechanism was chosen; tokens come raw (`raw`, handshake v0) or in
    /// SaslAuthenticate.
    Exchanging {
        mechanism: Mechanism,
        raw: bool,
        scram: Option<ScramServer>,
    },
}

/// What to do with a request that arrived on a SASL listener.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Serve it as any request.
    Serve,
    /// A SASL request: pass it to `handshake` or `authenticate`.
    Sasl,
    /// Close the connection without answering.
    Close(String),
}

/// An answer from the authenticator, and what follows it.
#[derive(Debug)]
pub struct Answer<R> {
    pub response: R,
    pub next: Next,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Authenticated as this user (also after a re-authentication).
    Authenticated(String),
    /// Write the answer, then close.
    Close(String),
}

pub struct Authenticator {
    settings: std::sync::Arc<SaslSettings>,
    state: State,
    /// The user once authenticated; kept through a re-authentication.
    user: Option<String>,
    /// When the session ends (`connections.max.reauth.ms`).
    expires: Option<Instant>,
}

impl Authenticator {
    pub fn new(settings: std::sync::Arc<SaslSettings>) -> Authenticator {
        Authenticator {
            settings,
            state: State::Start,
            user: None,
            expires: None,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.user.is_some() && matches!(self.state, State::Start)
    }

    /// The largest frame to read next: small until authenticated.
    pub fn frame_bytes_max(&self, otherwise: usize) -> usize {
        if self.is_authenticated() {
            otherwise
        } else {
            self.settings.receive_max.min(otherwise)
        }
    }

    /// The next frame is a raw SASL token (after a v0 handshake).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Exchanging { raw: true, .. })
    }

    pub fn admit(&self, api: ApiKey, now: Instant) -> Admit {
        match &self.state {
            State::Start if self.user.is_none() => match api {
                ApiKey::ApiVersions => Admit::Serve,
                ApiKey::SaslHandshake => Admit::Sasl,
                other => Admit::Close(format!("{other:?} request before SASL authentication")),
            },
            State::Start => match api {
                ApiKey::SaslHandshake => Admit::Sasl,
                _ if self.expires.is_some_and(|at| now >= at) => Admit::Close(
                    "SASL session expired (connections.max.reauth.ms) without re-authentication"
                        .into(),
                ),
                _ => Admit::Serve,
            },
            State::Exchanging { raw: false, .. } => match api {
                ApiKey::SaslAuthenticate => Admit::Sasl,
                other => Admit::Close(format!(
                    "{other:?} request during SASL authentication (illegal SASL state)"
                )),
            },
            State::Exchanging { raw: true, .. } => {
                Admit::Close("a Kafka request where a raw SASL token was expected".into())
            }
        }
    }

    pub fn handshake(&mut self, version: i16, mechanism: &str) -> Answer<SaslHandshakeResponse> {
        let enabled: Vec<StrBytes> = self
            .settings
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
        if !matches!(self.state, State::Start) {
            return Answer {
                response: response.with_error_code(ResponseError::IllegalSaslState.code()),
                next: Next::Close("SaslHandshake during SASL authentication".into()),
            };
        }
        let chosen =
            Mechanism::from_name(mechanism).filter(|m| self.settings.mechanisms.contains(m));
        let Some(chosen) = chosen else {
            return Answer {
                response: response.with_error_code(ResponseError::UnsupportedSaslMechanism.code()),
                next: Next::Close(format!("unsupported SASL mechanism {mechanism:?}")),
            };
        };
        self.state = State::Exchanging {
            mechanism: chosen,
            raw: version == 0,
            scram: match chosen {
                Mechanism::Plain => None,
                Mechanism::Scram(m) => Some(ScramServer::new(m, self.settings.long_nonce)),
            },
        };
        Answer {
            response,
            next: Next::Continue,
        }
    }

    /// One token (from SaslAuthenticate, or raw after a v0 handshake).
    /// `lookup` finds a SCRAM credential; `random` fills a buffer with
    /// fresh randomness; `decoy_salt` salts an unknown user's challenge.
    pub fn authenticate(
        &mut self,
        version: i16,
        token: &[u8],
        now: Instant,
        lookup: impl FnOnce(&str, scram::Mechanism) -> Option<ScramCredential>,
        server_nonce: impl FnOnce() -> String,
        decoy_salt: impl FnOnce(&str) -> Vec<u8>,
    ) -> Answer<SaslAuthenticateResponse> {
        let State::Exchanging {
            mechanism, scram, ..
        } = &mut self.state
        else {
            return Answer {
                response: SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate before SaslHandshake",
                    ))),
                next: Next::Close("SaslAuthenticate before SaslHandshake".into()),
            };
        };
        let mechanism = *mechanism;
        let step = match (mechanism, scram) {
            (Mechanism::Plain, _) => self
                .settings
                .plain_users
                .authenticate(token)
                .map(|user| (Bytes::new(), Some(user)))
                .map_err(|e| e.to_string()),
            (Mechanism::Scram(m), Some(server)) => server
                .step(token, |user| lookup(user, m), &server_nonce(), decoy_salt)
                .map(|step| match step {
                    scram::Step::Challenge(bytes) => (Bytes::from(bytes), None),
                    scram::Step::Done { user, response } => (Bytes::from(response), Some(user)),
                })
                .map_err(|e| e.to_string()),
            (Mechanism::Scram(_), None) => Err("no SCRAM exchange".to_string()),
        };
        let fail = |reason: String| Answer {
            response: SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(failure_message(mechanism)))),
            next: Next::Close(format!(
                "SASL {} authentication failed: {reason}",
                mechanism.name()
            )),
        };
        match step {
            Err(reason) => fail(reason),
            Ok((bytes, None)) => Answer {
                response: SaslAuthenticateResponse::default().with_auth_bytes(bytes),
                next: Next::Continue,
            },
            Ok((bytes, Some(user))) => {
                if self.user.as_ref().is_some_and(|before| *before != user) {
                    return fail(format!(
                        "re-authentication as {user} on a connection of {}",
                        self.user.as_deref().unwrap_or_default()
                    ));
                }
                self.state = State::Start;
                self.user = Some(user.clone());
                let reauth = self.settings.reauth_ms;
                self.expires = (reauth > 0).then(|| now + Duration::from_millis(reauth));
                let mut response = SaslAuthenticateResponse::default().with_auth_bytes(bytes);
                if version >= 1 && reauth > 0 {
                    response = response.with_session_lifetime_ms(reauth as i64);
                }
                Answer {
                    response,
                    next: Next::Authenticated(user),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn settings(reauth_ms: u64) -> Arc<SaslSettings> {
        Arc::new(SaslSettings {
            mechanisms: vec![Mechanism::Scram(scram::Mechanism::Sha256), Mechanism::Plain],
            plain_users: PlainUsers::from_jaas("M required user_alice=\"pw\" user_bob=\"pw2\";")
                .expect("jaas"),
            reauth_ms,
            receive_max: 512,
            long_nonce: false,
        })
    }

    fn plain(
        auth: &mut Authenticator,
        token: &[u8],
        now: Instant,
    ) -> Answer<SaslAuthenticateResponse> {
        auth.authenticate(1, token, now, |_, _| None, || "n".into(), |_| vec![1])
    }

    #[test]
    fn only_api_versions_and_the_handshake_come_before_authentication() {
        let now = Instant::now();
        let mut auth = Authenticator::new(settings(0));
        assert_eq!(auth.frame_bytes_max(1 << 20), 512);
        assert_eq!(auth.admit(ApiKey::ApiVersions, now), Admit::Serve);
        assert!(matches!(auth.admit(ApiKey::Metadata, now), Admit::Close(_)));
        assert!(matches!(
            auth.admit(ApiKey::SaslAuthenticate, now),
            Admit::Close(_)
        ));
        assert_eq!(auth.admit(ApiKey::SaslHandshake, now), Admit::Sasl);
        let shook = auth.handshake(1, "PLAIN");
        assert_eq!(shook.response.error_code, 0);
        assert_eq!(shook.response.mechanisms.len(), 2);
        assert!(matches!(auth.admit(ApiKey::Produce, now), Admit::Close(_)));
        assert!(matches!(
            auth.admit(ApiKey::ApiVersions, now),
            Admit::Close(_)
        ));
        assert_eq!(auth.admit(ApiKey::SaslAuthenticate, now), Admit::Sasl);
        let done = plain(&mut auth, b"\0alice\0pw", now);
        assert_eq!(done.next, Next::Authenticated("alice".into()));
        assert_eq!(done.response.error_code, 0);
        assert_eq!(done.response.session_lifetime_ms, 0);
        assert!(auth.is_authenticated());
        assert_eq!(auth.frame_bytes_max(1 << 20), 1 << 20);
        assert_eq!(
            auth.admit(ApiKey::Produce, now + Duration::from_secs(86_400)),
            Admit::Serve
        );
    }

    #[test]
    fn unknown_mechanisms_and_wrong_passwords_are_answered_then_closed() {
        let now = Instant::now();
        let mut auth = Authenticator::new(settings(0));
        let refused = auth.handshake(1, "GSSAPI");
        assert_eq!(
            refused.response.error_code,
            ResponseError::UnsupportedSaslMechanism.code()
        );
        let names: Vec<String> = refused
            .response
            .mechanisms
            .iter()
            .map(|m| m.to_string())
            .collect();
        assert_eq!(names, ["SCRAM-SHA-256", "PLAIN"]);
        assert!(matches!(refused.next, Next::Close(_)));

        let mut auth = Authenticator::new(settings(0));
        auth.handshake(1, "PLAIN");
        let failed = plain(&mut auth, b"\0alice\0nope", now);
        assert_eq!(
            failed.response.error_code,
            ResponseError::SaslAuthenticationFailed.code()
        );
        let message = failed
            .response
            .error_message
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert_eq!(message, failure_message(Mechanism::Plain));
        assert!(!message.contains("alice"));
        assert!(matches!(failed.next, Next::Close(_)));

        let mut auth = Authenticator::new(settings(0));
        auth.handshake(1, "PLAIN");
        let twice = auth.handshake(1, "PLAIN");
        assert_eq!(
            twice.response.error_code,
            ResponseError::IllegalSaslState.code()
        );
        assert!(matches!(twice.next, Next::Close(_)));
    }

    #[test]
    fn a_v0_handshake_takes_raw_tokens() {
        let mut auth = Authenticator::new(settings(0));
        auth.handshake(0, "PLAIN");
        assert!(auth.expects_raw_token());
        assert!(matches!(
            auth.admit(ApiKey::SaslAuthenticate, Instant::now()),
            Admit::Close(_)
        ));
        let done = auth.authenticate(
            0,
            b"\0bob\0pw2",
            Instant::now(),
            |_, _| None,
            || "n".into(),
            |_| vec![],
        );
        assert_eq!(done.next, Next::Authenticated("bob".into()));
        assert!(!auth.expects_raw_token());
    }

    #[test]
    fn sessions_expire_and_re_authentication_keeps_the_principal() {
        let now = Instant::now();
        let mut auth = Authenticator::new(settings(1_000));
        auth.handshake(1, "PLAIN");
        let done = plain(&mut auth, b"\0alice\0pw", now);
        assert_eq!(done.response.session_lifetime_ms, 1_000);
        assert_eq!(
            auth.admit(ApiKey::Fetch, now + Duration::from_millis(999)),
            Admit::Serve
        );
        let late = now + Duration::from_millis(1_000);
        assert!(matches!(auth.admit(ApiKey::Fetch, late), Admit::Close(_)));
        // Re-authentication renews the session.
        assert_eq!(auth.admit(ApiKey::SaslHandshake, late), Admit::Sasl);
        auth.handshake(1, "PLAIN");
        let again = plain(&mut auth, b"\0alice\0pw", late);
        assert_eq!(again.next, Next::Authenticated("alice".into()));
        assert_eq!(
            auth.admit(ApiKey::Fetch, late + Duration::from_millis(500)),
            Admit::Serve
        );
        // As someone else: refused.
        auth.handshake(1, "PLAIN");
        let other = plain(&mut auth, b"\0bob\0pw2", late);
        assert_eq!(
            other.response.error_code,
            ResponseError::SaslAuthenticationFailed.code()
        );
        assert!(matches!(other.next, Next::Close(_)));
    }

    #[test]
    fn scram_through_the_authenticator() {
        let m = scram::Mechanism::Sha256;
        let salted = m.salted_password(b"secret", b"salt", 4096);
        let credential = m.credential("carol", b"salt", &salted, 4096);
        let mut auth = Authenticator::new(settings(0));
        auth.handshake(1, "SCRAM-SHA-256");
        let lookup = |user: &str, mech| (user == "carol" && mech == m).then(|| credential.clone());
        let first = auth.authenticate(
            1,
            b"n,,n=carol,r=c1",
            Instant::now(),
            lookup,
            || "s1".into(),
            |_| vec![],
        );
        assert_eq!(first.next, Next::Continue);
        let server_first = String::from_utf8(first.response.auth_bytes.to_vec()).expect("utf8");
        let last = scram::client_final(m, "secret", "n=carol,r=c1", &server_first, "n,,");
        let done = auth.authenticate(
            1,
            last.as_bytes(),
            Instant::now(),
            |_, _| None,
            || "x".into(),
            |_| vec![],
        );
        assert_eq!(done.next, Next::Authenticated("carol".into()));
        assert!(done.response.auth_bytes.starts_with(b"v="));
    }
}
