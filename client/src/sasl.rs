//! The client side of SASL on a fresh connection: SaslHandshake v1, then
//! SaslAuthenticate v1 with PLAIN's one token or SCRAM's two (RFC 5802 /
//! 7677), checking the server's signature before trusting the session.

use crate::security::{Mechanism, Sasl};
use crate::Connection;
use anyhow::{bail, Context, Result};
use aws_lc_rs::{digest, hmac, pbkdf2};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::num::NonZeroU32;

const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 1;

pub fn authenticate(connection: &mut Connection, sasl: &Sasl) -> Result<()> {
    let handshake: SaslHandshakeResponse = connection.call(
        ApiKey::SaslHandshake,
        HANDSHAKE_VERSION,
        &SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(sasl.mechanism.name())),
    )?;
    if handshake.error_code != 0 {
        let enabled: Vec<String> = handshake.mechanisms.iter().map(|m| m.to_string()).collect();
        bail!(
            "SASL mechanism {} refused (error {}); the broker enables {enabled:?}",
            sasl.mechanism.name(),
            handshake.error_code
        );
    }
    match sasl.mechanism {
        Mechanism::Plain => {
            exchange(connection, plain_token(&sasl.username, &sasl.password))?;
            Ok(())
        }
        Mechanism::ScramSha256 => scram(connection, sasl, Scram::SHA256),
        Mechanism::ScramSha512 => scram(connection, sasl, Scram::SHA512),
    }
}

fn exchange(connection: &mut Connection, token: Vec<u8>) -> Result<Bytes> {
    let response: SaslAuthenticateResponse = connection.call(
        ApiKey::SaslAuthenticate,
        AUTHENTICATE_VERSION,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
    )?;
    if response.error_code != 0 {
        bail!(
            "SASL authentication failed (error {}): {}",
            response.error_code,
            response
                .error_message
                .map(|m| m.to_string())
                .unwrap_or_default()
        );
    }
    Ok(response.auth_bytes)
}

struct Scram {
    digest: &'static digest::Algorithm,
    hmac: hmac::Algorithm,
    pbkdf2: pbkdf2::Algorithm,
}

impl Scram {
    const SHA256: Scram = Scram {
        digest: &digest::SHA256,
        hmac: hmac::HMAC_SHA256,
        pbkdf2: pbkdf2::PBKDF2_HMAC_SHA256,
    };
    const SHA512: Scram = Scram {
        digest: &digest::SHA512,
        hmac: hmac::HMAC_SHA512,
        pbkdf2: pbkdf2::PBKDF2_HMAC_SHA512,
    };

    /// ClientKey XOR HMAC(StoredKey, AuthMessage) (RFC 5802 section 3).
    fn client_proof(&self, salted: &[u8], auth_message: &str) -> Vec<u8> {
        let client_key = self.hmac(salted, b"Client Key");
        let stored_key = digest::digest(self.digest, &client_key);
        let signature = self.hmac(stored_key.as_ref(), auth_message.as_bytes());
        client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect()
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac, key), data)
            .as_ref()
            .to_vec()
    }
}

/// `=` and `,` in a SCRAM user name (RFC 5802 5.1).
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn attribute(message: &str, key: char) -> Option<&str> {
    message
        .split(',')
        .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
}

fn scram(connection: &mut Connection, sasl: &Sasl, scram: Scram) -> Result<()> {
    let mut client = ScramClient::new(scram, &sasl.username, &sasl.password)?;
    let server_first = exchange(connection, client.client_first())?;
    let client_final = client.client_final(&server_first)?;
    let server_final = exchange(connection, client_final)?;
    client.check_server_final(&server_final)
}

/// PLAIN's one token: no authorization id, then the user and password.
pub fn plain_token(username: &str, password: &str) -> Vec<u8> {
    format!("\0{username}\0{password}").into_bytes()
}

/// The client side of one SCRAM exchange, without I/O (the broker's
/// replica fetcher drives it over its own async connection): the first
/// message, the final message from the server's first, then the server's
/// signature checked.
pub struct ScramClient {
    scram: Scram,
    password: String,
    client_nonce: String,
    first_bare: String,
    /// The server signature the final message must carry, once known.
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// For SCRAM-SHA-256 or -512; an error for PLAIN.
    pub fn for_mechanism(mechanism: Mechanism, username: &str, password: &str) -> Result<Self> {
        let scram = match mechanism {
            Mechanism::ScramSha256 => Scram::SHA256,
            Mechanism::ScramSha512 => Scram::SHA512,
            Mechanism::Plain => bail!("PLAIN is not a SCRAM mechanism"),
        };
        ScramClient::new(scram, username, password)
    }

    fn new(scram: Scram, username: &str, password: &str) -> Result<ScramClient> {
        use aws_lc_rs::rand::SecureRandom;
        let mut random = [0u8; 24];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| anyhow::anyhow!("no randomness for the SCRAM nonce"))?;
        let client_nonce = B64.encode(random);
        Ok(ScramClient {
            scram,
            password: password.to_string(),
            first_bare: format!("n={},r={client_nonce}", escape(username)),
            client_nonce,
            server_signature: None,
        })
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// The client-final message (with the proof) for the server's first.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>> {
        let server_first = std::str::from_utf8(server_first).context("SCRAM server-first")?;
        if let Some(error) = attribute(server_first, 'e') {
            bail!("SCRAM: the server refused: {error}");
        }
        let nonce = attribute(server_first, 'r').context("SCRAM server-first without r=")?;
        if !nonce.starts_with(&self.client_nonce) {
            bail!("SCRAM: the server's nonce does not extend ours");
        }
        let salt = B64
            .decode(attribute(server_first, 's').context("SCRAM server-first without s=")?)
            .context("SCRAM salt")?;
        let iterations: u32 = attribute(server_first, 'i')
            .context("SCRAM server-first without i=")?
            .parse()
            .context("SCRAM iterations")?;
        let iterations = NonZeroU32::new(iterations).context("SCRAM iterations are 0")?;
        let scram = &self.scram;
        let mut salted = vec![0u8; scram.digest.output_len()];
        pbkdf2::derive(
            scram.pbkdf2,
            iterations,
            &salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let final_without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{final_without_proof}", self.first_bare);
        let proof = scram.client_proof(&salted, &auth_message);
        let server_key = scram.hmac(&salted, b"Server Key");
        self.server_signature = Some(scram.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{final_without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Whether the server proved it knows the credential too.
    pub fn check_server_final(&self, server_final: &[u8]) -> Result<()> {
        let server_final = std::str::from_utf8(server_final).context("SCRAM server-final")?;
        if let Some(error) = attribute(server_final, 'e') {
            bail!("SCRAM: the server refused: {error}");
        }
        let expected = self
            .server_signature
            .as_ref()
            .context("SCRAM: the server's final message came before its first")?;
        let given = B64
            .decode(attribute(server_final, 'v').context("SCRAM server-final without v=")?)
            .context("SCRAM server signature")?;
        if given != *expected {
            bail!("SCRAM: the server's signature is wrong (not the broker we meant?)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_attributes_read() {
        assert_eq!(escape("a=b,c"), "a=3Db=2Cc");
        let first = "r=abc,s=c2FsdA==,i=4096";
        assert_eq!(attribute(first, 'r'), Some("abc"));
        assert_eq!(attribute(first, 's'), Some("c2FsdA=="));
        assert_eq!(attribute(first, 'e'), None);
    }

    /// RFC 7677's SCRAM-SHA-256 example: the client proof for its nonces.
    #[test]
    fn rfc_7677_client_proof() {
        let scram = Scram::SHA256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            scram.pbkdf2,
            NonZeroU32::new(4096).expect("nonzero"),
            &salt,
            b"pencil",
            &mut salted,
        );
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let proof = scram.client_proof(&salted, auth_message);
        assert_eq!(
            B64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
    }
}
