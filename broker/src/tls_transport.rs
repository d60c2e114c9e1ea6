//! The transport of TLS listeners (SSL, SASL_SSL): a connection's bytes
//! through rustls, after the handshake (security/tls.rs builds the config).
//!
//! It keeps futures-rustls' `TlsStream` in a `RefCell` borrowed only
//! inside one `poll_*` call (transport.rs says why). A response in parts
//! (a Fetch: record slices that are the storage's own memory) is handed to
//! rustls as one vectored write, so rustls encrypts straight from the
//! slices into its TLS records: the encryption is the one copy, as on
//! Kafka's SSL path, which turns sendfile off.

use crate::api::context::{ConnectionInfo, Principal};
use crate::security::principal::PrincipalMapper;
use crate::transport::Transport;
use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::server::TlsStream;
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::io::{self, IoSlice, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

/// An accepted connection after its TLS handshake.
pub struct Tls {
    stream: RefCell<TlsStream<TcpStream>>,
    info: ConnectionInfo,
}

impl Tls {
    /// The transport for a finished handshake. The principal is the client
    /// certificate's subject, mapped by `ssl.principal.mapping.rules`
    /// (`User:ANONYMOUS` without one); an error when no rule maps it.
    pub fn new(
        stream: TlsStream<TcpStream>,
        listener: &str,
        mapper: &PrincipalMapper,
    ) -> io::Result<Tls> {
        let (tcp, session) = stream.get_ref();
        let peer = tcp.peer_addr()?;
        let principal = match session.peer_certificates().and_then(|c| c.first()) {
            None => Principal::anonymous(),
            Some(leaf) => {
                let dn = crate::security::x509::subject_rfc2253(leaf).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "unreadable client certificate subject",
                    )
                })?;
                let name = mapper.name(&dn).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("no ssl.principal.mapping.rules rule maps {dn}"),
                    )
                })?;
                Principal { kind: "User", name }
            }
        };
        Ok(Tls {
            stream: RefCell::new(stream),
            info: ConnectionInfo {
                peer,
                listener: listener.into(),
                principal,
            },
        })
    }
}

impl Transport for Tls {
    fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_read(cx, buf)
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_flush(cx)
    }

    /// Vectored plaintext into rustls (encrypted from the parts' memory),
    /// its records out to the socket whenever it holds any, until every
    /// part is in; `poll_flush` (called by the writer after this) sends
    /// the last records.
    async fn write_parts(&self, parts: &[&[u8]]) -> io::Result<()> {
        let slices: Vec<&[u8]> = parts.iter().copied().filter(|s| !s.is_empty()).collect();
        let (mut index, mut offset) = (0usize, 0usize);
        futures_lite::future::poll_fn(|cx| {
            let mut stream = self.stream.borrow_mut();
            let (tcp, session) = stream.get_mut();
            loop {
                while session.wants_write() {
                    let mut socket = SocketWriter { tcp, cx };
                    match session.write_tls(&mut socket) {
                        Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                if index >= slices.len() {
                    return Poll::Ready(Ok(()));
                }
                let window = &slices[index..slices.len().min(index + 64)];
                let iovecs: Vec<IoSlice<'_>> = window
                    .iter()
                    .enumerate()
                    .map(|(i, s)| IoSlice::new(if i == 0 { &s[offset..] } else { s }))
                    .collect();
                let taken = session.writer().write_vectored(&iovecs)?;
                if taken == 0 && !session.wants_write() {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                (index, offset) = crate::transport::advance(&slices, index, offset, taken);
            }
        })
        .await
    }
}

/// The socket as a `std::io::Write` for rustls' `write_tls` inside a poll:
/// "not ready" becomes `WouldBlock` (and the waker is registered).
struct SocketWriter<'a, 'b> {
    tcp: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

impl Write for SocketWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_write(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
