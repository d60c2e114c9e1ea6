//! SCRAM-SHA-256 and SCRAM-SHA-512, the server side (RFC 5802, RFC 7677),
//! as Kafka's `ScramSaslServer` speaks it: no channel binding, an optional
//! authorization id equal to the user, the `tokenauth` extension refused
//! (no delegation tokens). Pure: the credential lookup and the server nonce
//! are passed in, so the RFC's test vector runs as a unit test.
//!
//! Credentials hold the salt, StoredKey and ServerKey only (what Kafka's
//! UserScramCredentialRecord holds); the salted password that
//! AlterUserScramCredentials carries is turned into them on arrival and
//! dropped.

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use controller::ScramCredential;
use std::num::NonZeroU32;

/// Kafka's bounds on a credential's iteration count.
pub const ITERATIONS_MIN: i32 = 4096;
pub const ITERATIONS_MAX: i32 = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's ScramMechanism code in the SCRAM APIs and records.
    pub fn code(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Mechanism::Sha256 => hmac::HMAC_SHA256,
            Mechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::Sha256 => &digest::SHA256,
            Mechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac_of(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), message)
            .as_ref()
            .to_vec()
    }

    fn hash(self, bytes: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), bytes).as_ref().to_vec()
    }

    /// Hi(password, salt, i) of RFC 5802 (PBKDF2 with this HMAC).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: i32) -> Vec<u8> {
        let rounds = NonZeroU32::new(iterations.max(1) as u32).unwrap_or(NonZeroU32::MIN);
        let mut out = vec![0u8; self.digest().output_len()];
        pbkdf2::derive(self.pbkdf2(), rounds, salt, password, &mut out);
        out
    }

    /// The credential stored for a salted password.
    pub fn credential(
        self,
        name: &str,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = self.hmac_of(salted_password, b"Client Key");
        ScramCredential {
            name: name.to_string(),
            mechanism: self.code(),
            salt: salt.to_vec(),
            stored_key: self.hash(&client_key),
            server_key: self.hmac_of(salted_password, b"Server Key"),
            iterations,
        }
    }
}

/// A fresh server nonce: 18 random bytes in base64 (no `,`).
pub fn server_nonce() -> String {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 18];
    // The system's randomness failing leaves zeros; the nonce then still
    // differs per connection through the client's part.
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes);
    BASE64.encode(bytes)
}

/// The salt an unknown user is challenged with: the same for a name across
/// attempts (so probing does not tell who exists), unrelated across
/// broker runs.
pub fn decoy_salt(user: &str) -> Vec<u8> {
    use aws_lc_rs::rand::SecureRandom;
    static SECRET: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        let mut bytes = [0u8; 32];
        let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes);
        bytes
    });
    Mechanism::Sha256.hmac_of(secret, user.as_bytes())[..16].to_vec()
}

/// Why an exchange failed. The client only ever sees Kafka's generic
/// message; the reason goes to the broker's debug log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("authorization id differs from the user name")]
    AuthorizationId,
    #[error("delegation tokens (tokenauth) are not supported")]
    TokenAuth,
    #[error("nonce does not match the server's")]
    Nonce,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("exchange already finished")]
    Finished,
}

/// One step's result.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this, then expect the client's next message.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send `response` (server-final) with success.
    Done { user: String, response: Vec<u8> },
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per connection, for its authentication only"
)]
enum State {
    First,
    Final {
        user: String,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        /// None: an unknown user, answered with a made-up salt so the
        /// exchange fails at the proof, never telling who exists.
        credential: Option<ScramCredential>,
    },
    Finished,
}

pub struct ScramServer {
    mechanism: Mechanism,
    /// Accept a client-final nonce that merely ends with the expected one
    /// (librdkafka before its 2024-11 fix sent a longer one).
    long_nonce: bool,
    state: State,
}

impl ScramServer {
    pub fn new(mechanism: Mechanism, long_nonce: bool) -> ScramServer {
        ScramServer {
            mechanism,
            long_nonce,
            state: State::First,
        }
    }

    /// Feeds the client's next message. `lookup` finds a user's
    /// credential; `server_nonce` is fresh randomness (printable, no
    /// comma); `decoy_salt` salts an unknown user's made-up challenge.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &str,
        decoy_salt: impl FnOnce(&str) -> Vec<u8>,
    ) -> Result<Step, ScramError> {
        let message =
            std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        match std::mem::replace(&mut self.state, State::Finished) {
            State::First => {
                let first = parse_client_first(message)?;
                let credential = lookup(&first.user);
                let (salt, iterations) = match &credential {
                    Some(c) => (c.salt.clone(), c.iterations),
                    None => (decoy_salt(&first.user), ITERATIONS_MIN),
                };
                let nonce = format!("{}{server_nonce}", first.nonce);
                let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(salt));
                self.state = State::Final {
                    user: first.user,
                    gs2_header: first.gs2_header,
                    client_first_bare: first.bare,
                    server_first: server_first.clone(),
                    nonce,
                    credential,
                };
                Ok(Step::Challenge(server_first.into_bytes()))
            }
            State::Final {
                user,
                gs2_header,
                client_first_bare,
                server_first,
                nonce,
                credential,
            } => {
                let last = parse_client_final(message)?;
                if last.channel_binding != gs2_header.as_bytes() {
                    return Err(ScramError::Malformed("channel binding data"));
                }
                let nonce_ok =
                    last.nonce == nonce || (self.long_nonce && last.nonce.ends_with(&nonce));
                if !nonce_ok {
                    return Err(ScramError::Nonce);
                }
                let credential = credential.ok_or(ScramError::InvalidCredentials)?;
                let auth_message =
                    format!("{client_first_bare},{server_first},{}", last.without_proof);
                let signature = self
                    .mechanism
                    .hmac_of(&credential.stored_key, auth_message.as_bytes());
                if last.proof.len() != signature.len() {
                    return Err(ScramError::InvalidCredentials);
                }
                let client_key: Vec<u8> = last
                    .proof
                    .iter()
                    .zip(&signature)
                    .map(|(p, s)| p ^ s)
                    .collect();
                let stored = self.mechanism.hash(&client_key);
                constant_time::verify_slices_are_equal(&stored, &credential.stored_key)
                    .map_err(|_| ScramError::InvalidCredentials)?;
                let server_signature = self
                    .mechanism
                    .hmac_of(&credential.server_key, auth_message.as_bytes());
                let response = format!("v={}", BASE64.encode(server_signature)).into_bytes();
                Ok(Step::Done { user, response })
            }
            State::Finished => Err(ScramError::Finished),
        }
    }
}

struct ClientFirst {
    gs2_header: String,
    bare: String,
    user: String,
    nonce: String,
}

/// `gs2-header client-first-message-bare`: `n,[a=authzid],n=user,r=nonce[,ext...]`.
fn parse_client_first(message: &str) -> Result<ClientFirst, ScramError> {
    let (flag, rest) = message
        .split_once(',')
        .ok_or(ScramError::Malformed("no gs2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("gs2 flag")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no gs2 header end"))?;
    let gs2_header = format!("{flag},{authzid},");
    let mut fields = bare.split(',');
    let user = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .ok_or(ScramError::Malformed("no user name"))?;
    let user = decode_saslname(user)?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .filter(|n| !n.is_empty())
        .ok_or(ScramError::Malformed("no client nonce"))?;
    for extension in fields {
        if extension == "tokenauth=true" {
            return Err(ScramError::TokenAuth);
        }
    }
    if let Some(authzid) = authzid.strip_prefix("a=") {
        if decode_saslname(authzid)? != user {
            return Err(ScramError::AuthorizationId);
        }
    } else if !authzid.is_empty() {
        return Err(ScramError::Malformed("authorization id"));
    }
    Ok(ClientFirst {
        gs2_header,
        bare: bare.to_string(),
        user,
        nonce: nonce.to_string(),
    })
}

struct ClientFinal<'a> {
    channel_binding: Vec<u8>,
    nonce: &'a str,
    without_proof: &'a str,
    proof: Vec<u8>,
}

/// `c=binding,r=nonce[,ext...],p=proof` (the proof is last).
fn parse_client_final(message: &str) -> Result<ClientFinal<'_>, ScramError> {
    let (without_proof, proof) = message
        .rsplit_once(",p=")
        .ok_or(ScramError::Malformed("no proof"))?;
    let mut fields = without_proof.split(',');
    let binding = fields
        .next()
        .and_then(|f| f.strip_prefix("c="))
        .ok_or(ScramError::Malformed("no channel binding"))?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no nonce"))?;
    Ok(ClientFinal {
        channel_binding: BASE64
            .decode(binding)
            .map_err(|_| ScramError::Malformed("channel binding is not base64"))?,
        nonce,
        without_proof,
        proof: BASE64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?,
    })
}

/// RFC 5802's saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is
/// malformed.
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("user name escape")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A client's side of the exchange, for tests (the broker never acts as
/// a SCRAM client).
#[cfg(test)]
pub(crate) fn client_final(
    mechanism: Mechanism,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
    gs2_header: &str,
) -> String {
    client_final_with_nonce(
        mechanism,
        password,
        client_first_bare,
        server_first,
        gs2_header,
        |n| n.into(),
    )
}

/// `client_final` sending the nonce `nonce` makes of the server's.
#[cfg(test)]
pub(crate) fn client_final_with_nonce(
    mechanism: Mechanism,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
    gs2_header: &str,
    nonce: impl Fn(&str) -> String,
) -> String {
    let fields: Vec<&str> = server_first.split(',').collect();
    let nonce = nonce(&fields[0][2..]);
    let salt = BASE64.decode(&fields[1][2..]).expect("salt");
    let iterations: i32 = fields[2][2..].parse().expect("iterations");
    let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = mechanism.hmac_of(&salted, b"Client Key");
    let stored = mechanism.hash(&client_key);
    let without_proof = format!("c={},r={nonce}", BASE64.encode(gs2_header));
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mechanism.hmac_of(&stored, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    format!("{without_proof},p={}", BASE64.encode(proof))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoy(_: &str) -> Vec<u8> {
        b"decoy-salt".to_vec()
    }

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn rfc_7677_test_vector() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let mechanism = Mechanism::Sha256;
        let salted = mechanism.salted_password(b"pencil", &salt, 4096);
        let credential = mechanism.credential("user", &salt, &salted, 4096);
        let mut server = ScramServer::new(mechanism, false);
        let first = server
            .step(
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                |_| Some(credential.clone()),
                "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
                decoy,
            )
            .expect("first");
        assert_eq!(
            first,
            Step::Challenge(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .to_vec()
            )
        );
        let last = server
            .step(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                |_| None,
                "",
                decoy,
            )
            .expect("final");
        assert_eq!(
            last,
            Step::Done {
                user: "user".into(),
                response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
            }
        );
        assert_eq!(
            server.step(b"again", |_| None, "", decoy),
            Err(ScramError::Finished)
        );
    }

    fn exchange(
        mechanism: Mechanism,
        stored_password: &str,
        password: &str,
        first: &str,
        long_nonce: bool,
        tamper_nonce: impl Fn(&str) -> String,
    ) -> Result<Step, ScramError> {
        let salt = b"0123456789abcdef";
        let salted = mechanism.salted_password(stored_password.as_bytes(), salt, 8192);
        let credential = mechanism.credential("al,i=ce", salt, &salted, 8192);
        let mut server = ScramServer::new(mechanism, long_nonce);
        let Step::Challenge(server_first) = server.step(
            first.as_bytes(),
            |user| (user == "al,i=ce").then(|| credential.clone()),
            "SERVERNONCE",
            decoy,
        )?
        else {
            panic!("no challenge");
        };
        let server_first = String::from_utf8(server_first).expect("utf8");
        let (gs2, bare) = first.split_at(first.find("n=").expect("bare"));
        let last =
            client_final_with_nonce(mechanism, password, bare, &server_first, gs2, tamper_nonce);
        server.step(last.as_bytes(), |_| None, "", decoy)
    }

    #[test]
    fn sha512_round_trip_with_escaped_name_and_authzid() {
        let first = "n,a=al=2Ci=3Dce,n=al=2Ci=3Dce,r=abc";
        let step = exchange(Mechanism::Sha512, "pw", "pw", first, false, |n| n.into());
        assert!(
            matches!(step, Ok(Step::Done { ref user, .. }) if user == "al,i=ce"),
            "{step:?}"
        );
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike_at_the_proof() {
        let first = "n,,n=al=2Ci=3Dce,r=abc";
        assert_eq!(
            exchange(Mechanism::Sha256, "pw", "wrong", first, false, |n| n.into()),
            Err(ScramError::InvalidCredentials)
        );
        // An unknown user still gets a challenge (with the decoy salt).
        let mut server = ScramServer::new(Mechanism::Sha256, false);
        let challenge = server
            .step(b"n,,n=nobody,r=abc", |_| None, "S", decoy)
            .expect("challenge");
        let Step::Challenge(server_first) = challenge else {
            panic!("no challenge")
        };
        let server_first = String::from_utf8(server_first).expect("utf8");
        assert!(server_first.contains(&BASE64.encode(b"decoy-salt")));
        let last = client_final(
            Mechanism::Sha256,
            "x",
            "n=nobody,r=abc",
            &server_first,
            "n,,",
        );
        assert_eq!(
            server.step(last.as_bytes(), |_| None, "", decoy),
            Err(ScramError::InvalidCredentials)
        );
    }

    #[test]
    fn nonces_must_match_exactly_unless_long_nonces_are_accepted() {
        let first = "n,,n=al=2Ci=3Dce,r=abc";
        let longer = |n: &str| format!("abc{n}");
        assert_eq!(
            exchange(Mechanism::Sha256, "pw", "pw", first, false, longer),
            Err(ScramError::Nonce)
        );
        assert!(matches!(
            exchange(Mechanism::Sha256, "pw", "pw", first, true, longer),
            Ok(Step::Done { .. })
        ));
        assert_eq!(
            exchange(Mechanism::Sha256, "pw", "pw", first, true, |n| n
                [..n.len() - 1]
                .into()),
            Err(ScramError::Nonce)
        );
    }

    #[test]
    fn malformed_and_unsupported_first_messages_are_refused() {
        let step = |m: &str| {
            ScramServer::new(Mechanism::Sha256, false).step(m.as_bytes(), |_| None, "S", decoy)
        };
        assert_eq!(
            step("p=tls-unique,,n=u,r=a"),
            Err(ScramError::ChannelBinding)
        );
        assert_eq!(step("n,a=other,n=u,r=a"), Err(ScramError::AuthorizationId));
        assert_eq!(
            step("n,,n=u,r=a,tokenauth=true"),
            Err(ScramError::TokenAuth)
        );
        assert!(matches!(
            step("n,,n=u=2X,r=a"),
            Err(ScramError::Malformed(_))
        ));
        assert!(matches!(step("n,,n=u"), Err(ScramError::Malformed(_))));
        assert!(matches!(step(""), Err(ScramError::Malformed(_))));
        assert!(matches!(
            ScramServer::new(Mechanism::Sha256, false).step(&[0xff, 0xfe], |_| None, "S", decoy),
            Err(ScramError::Malformed(_))
        ));
    }

    /// The inter-broker client (the client crate's ScramClient, which the
    /// replica fetchers use) against this server: it logs in, checks the
    /// server's signature, and a wrong password or a forged server-final
    /// fails on the side that must notice.
    #[test]
    fn inter_broker_client_against_the_server() {
        for (mechanism, client_mechanism) in [
            (Mechanism::Sha256, client::security::Mechanism::ScramSha256),
            (Mechanism::Sha512, client::security::Mechanism::ScramSha512),
        ] {
            let salt = b"salt-of-the-broker";
            let salted = mechanism.salted_password(b"b-secret", salt, 4096);
            let credential = mechanism.credential("broker", salt, &salted, 4096);
            let run = |password: &str, forge: bool| -> Result<(), String> {
                let mut client =
                    client::sasl::ScramClient::for_mechanism(client_mechanism, "broker", password)
                        .map_err(|e| e.to_string())?;
                let mut server = ScramServer::new(mechanism, false);
                let lookup = |user: &str| (user == "broker").then(|| credential.clone());
                let Ok(Step::Challenge(first)) =
                    server.step(&client.client_first(), lookup, &server_nonce(), decoy)
                else {
                    return Err("no challenge".into());
                };
                let last = client.client_final(&first).map_err(|e| e.to_string())?;
                match server.step(&last, |_| None, "", decoy) {
                    Ok(Step::Done { user, mut response }) => {
                        assert_eq!(user, "broker");
                        if forge {
                            response = format!("v={}", BASE64.encode([7u8; 32])).into_bytes();
                        }
                        client
                            .check_server_final(&response)
                            .map_err(|e| e.to_string())
                    }
                    other => Err(format!("server: {other:?}")),
                }
            };
            assert_eq!(run("b-secret", false), Ok(()), "{mechanism:?}");
            let wrong = run("not-it", false).expect_err("wrong password");
            assert!(wrong.contains("InvalidCredentials"), "{wrong}");
            let forged = run("b-secret", true).expect_err("forged signature");
            assert!(forged.contains("signature"), "{forged}");
        }
    }
}
