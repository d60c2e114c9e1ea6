//! TLS listeners (SSL, SASL_SSL): the rustls server config from Kafka's
//! PEM keystore and truststore settings. The transport that carries a
//! connection's bytes through rustls is tls_transport.rs.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::sync::Arc;

/// `ssl.client.auth`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

impl ClientAuth {
    pub fn parse(value: &str) -> Option<ClientAuth> {
        match value.to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "requested" => Some(ClientAuth::Requested),
            "required" => Some(ClientAuth::Required),
            _ => None,
        }
    }
}

/// What a TLS listener's server config is built from (already read).
pub struct TlsFiles {
    /// The certificate chain, leaf first, and its unencrypted key.
    pub chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// CA certificates client certificates are checked against.
    pub truststore_pem: Option<Vec<u8>>,
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`: TLSv1.2 and/or TLSv1.3.
    pub tls12: bool,
    pub tls13: bool,
}

/// The rustls server config, or why it cannot be built.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&files.chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("keystore certificates: {e}"))?;
    if chain.is_empty() {
        return Err("keystore has no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&files.key_pem).map_err(|e| {
        format!("keystore key (an unencrypted PKCS#8, PKCS#1 or SEC1 PEM key): {e}")
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut versions = Vec::new();
    if files.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if files.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if versions.is_empty() {
        return Err("ssl.enabled.protocols names neither TLSv1.2 nor TLSv1.3".into());
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = match files.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let pem = files.truststore_pem.as_ref().ok_or(
                "ssl.client.auth=requested|required needs ssl.truststore.location or ssl.truststore.certificates",
            )?;
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(pem) {
                let certificate = certificate.map_err(|e| format!("truststore: {e}"))?;
                roots
                    .add(certificate)
                    .map_err(|e| format!("truststore certificate: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier.build().map_err(|e| format!("truststore: {e}"))?,
            )
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("keystore: {e}"))?;
    Ok(Arc::new(config))
}
