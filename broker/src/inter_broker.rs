//! A connection from this broker to another broker's inter-broker
//! listener (the replica fetchers'): TCP, then TLS when the listener's
//! protocol has it (the other broker's certificate checked against the
//! truststore, this broker's keystore offered for mTLS), then SASL
//! (SaslHandshake v1, SaslAuthenticate v2 with PLAIN or SCRAM, the
//! server's signature checked), as a Kafka broker's NetworkClient does.
//! What the listener needs is read once at start-up
//! (security::PeerSecurity).

use crate::security::{sasl, PeerSecurity};
use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 2;

/// Answers to the SASL exchange are small; anything larger is refused.
const SASL_RESPONSE_BYTES_MAX: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("connect to {0}: {1}")]
    Connect(String, io::Error),
    #[error("TLS handshake with {0}: {1}")]
    Tls(String, io::Error),
    #[error("TLS server name {0}: {1}")]
    ServerName(String, String),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("SASL with {0}: {1}")]
    Sasl(String, String),
    #[error("undecodable response: {0}")]
    Decode(String),
}

/// The byte stream to another broker, plain or through rustls.
pub enum Link {
    Plain(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Link {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Link::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Link::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_flush(cx),
            Link::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_close(cx),
            Link::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// Connects to `host:port` and secures the connection as the inter-broker
/// listener's protocol says, all within `timeout`.
pub async fn dial(
    host: &str,
    port: u16,
    security: &PeerSecurity,
    timeout: Duration,
) -> Result<Link, LinkError> {
    let address = format!("{host}:{port}");
    let dialled = async {
        let stream = TcpStream::connect(address.as_str())
            .await
            .map_err(|e| LinkError::Connect(address.clone(), io::Error::other(e.to_string())))?;
        stream
            .set_nodelay(true)
            .map_err(|e| LinkError::Connect(address.clone(), io::Error::other(e.to_string())))?;
        let mut link = match &security.tls {
            None => Link::Plain(stream),
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| LinkError::ServerName(host.to_string(), e.to_string()))?;
                let tls = connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| LinkError::Tls(address.clone(), e))?;
                Link::Tls(Box::new(tls))
            }
        };
        if let Some(login) = &security.sasl {
            authenticate(&mut link, login).await.map_err(|e| match e {
                LinkError::Sasl(_, why) => LinkError::Sasl(address.clone(), why),
                other => other,
            })?;
        }
        Ok(link)
    };
    let expired = async {
        glommio::timer::sleep(timeout).await;
        Err(LinkError::Timeout(timeout))
    };
    futures_lite::future::or(dialled, expired).await
}

async fn authenticate(link: &mut Link, login: &crate::security::PeerSasl) -> Result<(), LinkError> {
    let refused = |why: String| LinkError::Sasl(String::new(), why);
    let mechanism = login.mechanism.name();
    let handshake: SaslHandshakeResponse = call(
        link,
        ApiKey::SaslHandshake,
        HANDSHAKE_VERSION,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        0,
    )
    .await?;
    if handshake.error_code != 0 {
        let enabled: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(refused(format!(
            "{mechanism} refused (error {}); the listener enables {enabled:?}",
            handshake.error_code
        )));
    }
    match login.mechanism {
        sasl::Mechanism::Plain => {
            let token = client::sasl::plain_token(&login.username, &login.password);
            exchange(link, token, 1).await?;
        }
        sasl::Mechanism::Scram(scram) => {
            let mechanism = client::security::Mechanism::parse(scram.name())
                .map_err(|e| refused(e.to_string()))?;
            let mut client = client::sasl::ScramClient::for_mechanism(
                mechanism,
                &login.username,
                &login.password,
            )
            .map_err(|e| refused(e.to_string()))?;
            let server_first = exchange(link, client.client_first(), 1).await?;
            let client_final = client
                .client_final(&server_first)
                .map_err(|e| refused(e.to_string()))?;
            let server_final = exchange(link, client_final, 2).await?;
            client
                .check_server_final(&server_final)
                .map_err(|e| refused(e.to_string()))?;
        }
    }
    Ok(())
}

async fn exchange(
    link: &mut Link,
    token: Vec<u8>,
    correlation_id: i32,
) -> Result<Bytes, LinkError> {
    let answer: SaslAuthenticateResponse = call(
        link,
        ApiKey::SaslAuthenticate,
        AUTHENTICATE_VERSION,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
        correlation_id,
    )
    .await?;
    if answer.error_code != 0 {
        return Err(LinkError::Sasl(
            String::new(),
            format!(
                "authentication failed (error {}): {}",
                answer.error_code,
                answer.error_message.as_deref().unwrap_or_default()
            ),
        ));
    }
    Ok(answer.auth_bytes)
}

/// One request and its answer (the SASL exchange is strictly in turn).
async fn call<Q: Encodable + HeaderVersion, A: Decodable + HeaderVersion>(
    link: &mut Link,
    api: ApiKey,
    version: i16,
    request: &Q,
    correlation_id: i32,
) -> Result<A, LinkError> {
    let frame = request_frame(api, version, request, correlation_id, "sluice-broker")?;
    link.write_all(&frame).await?;
    link.flush().await?;
    let mut body = read_frame(link, SASL_RESPONSE_BYTES_MAX).await?;
    let header = ResponseHeader::decode(&mut body, A::header_version(version))
        .map_err(|e| LinkError::Decode(e.to_string()))?;
    if header.correlation_id != correlation_id {
        return Err(LinkError::Decode(format!(
            "correlation id {} answers {correlation_id}",
            header.correlation_id
        )));
    }
    A::decode(&mut body, version).map_err(|e| LinkError::Decode(e.to_string()))
}

/// A request's frame: length, header, body.
pub fn request_frame<Q: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    request: &Q,
    correlation_id: i32,
    client_id: &'static str,
) -> Result<Bytes, LinkError> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header
        .encode(&mut frame, Q::header_version(version))
        .map_err(|e| LinkError::Decode(e.to_string()))?;
    request
        .encode(&mut frame, version)
        .map_err(|e| LinkError::Decode(e.to_string()))?;
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(frame.freeze())
}

/// One response frame's body (after the length), refused above `max`.
pub async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S, max: usize) -> io::Result<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await?;
    let size = i32::from_be_bytes(size);
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= max)
        .ok_or_else(|| io::Error::other(format!("response frame of {size} bytes")))?;
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body).await?;
    Ok(Bytes::from(body))
}
