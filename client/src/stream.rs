//! The socket under a `Connection`: plain TCP, or TLS through rustls. A
//! connection is written by one thread and read by another (bench's
//! pipelined producers), so the TLS stream splits into a reading and a
//! writing half over one rustls session behind a mutex. The blocking
//! socket read happens outside the lock (a reader waiting for a response
//! never stops the writer); only the decryption and encryption take it.

use anyhow::{Context, Result};
use rustls::ClientConnection;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};

/// Raw bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// One TLS session shared by a connection's reading and writing halves.
pub struct Shared {
    session: Mutex<ClientConnection>,
    /// Held while encrypted bytes go out, so records leave in the order
    /// the session produced them.
    socket_out: Mutex<TcpStream>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

pub enum Socket {
    Plain(TcpStream),
    Tls {
        shared: Arc<Shared>,
        socket: TcpStream,
    },
}

impl Socket {
    /// TLS over `socket`, handshake done.
    pub fn tls(
        mut socket: TcpStream,
        config: Arc<rustls::ClientConfig>,
        server: rustls::pki_types::ServerName<'static>,
    ) -> Result<Socket> {
        let mut session = ClientConnection::new(config, server).context("TLS session")?;
        // The writer hands over whole requests; no partial writes.
        session.set_buffer_limit(None);
        while session.is_handshaking() {
            session.complete_io(&mut socket).context("TLS handshake")?;
        }
        Ok(Socket::Tls {
            shared: Arc::new(Shared {
                session: Mutex::new(session),
                socket_out: Mutex::new(socket.try_clone()?),
            }),
            socket,
        })
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Socket::Plain(socket) | Socket::Tls { socket, .. } => socket,
        }
    }

    pub fn try_clone(&self) -> io::Result<Socket> {
        Ok(match self {
            Socket::Plain(socket) => Socket::Plain(socket.try_clone()?),
            Socket::Tls { shared, socket } => Socket::Tls {
                shared: shared.clone(),
                socket: socket.try_clone()?,
            },
        })
    }

    pub fn reader(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Socket::Plain(socket) => Box::new(socket.try_clone()?),
            Socket::Tls { shared, socket } => Box::new(TlsReader {
                shared: shared.clone(),
                socket: socket.try_clone()?,
                raw: vec![0; READ_CHUNK],
                plain: Vec::new(),
                at: 0,
            }),
        })
    }

    pub fn writer(&self) -> io::Result<Box<dyn Write + Send>> {
        Ok(match self {
            Socket::Plain(socket) => Box::new(socket.try_clone()?),
            Socket::Tls { shared, .. } => Box::new(TlsWriter {
                shared: shared.clone(),
                out: Vec::new(),
            }),
        })
    }
}

/// Sends what the session has to send. Called with the session locked;
/// takes the socket lock before letting the session go.
fn flush_session(
    mut session: MutexGuard<'_, ClientConnection>,
    shared: &Shared,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    out.clear();
    while session.wants_write() {
        session.write_tls(out)?;
    }
    let mut socket = lock(&shared.socket_out);
    drop(session);
    socket.write_all(out)
}

struct TlsReader {
    shared: Arc<Shared>,
    socket: TcpStream,
    raw: Vec<u8>,
    /// Decrypted bytes not handed out yet, from `at`.
    plain: Vec<u8>,
    at: usize,
}

impl Read for TlsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.plain.len() {
                let n = buf.len().min(self.plain.len() - self.at);
                buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            self.plain.clear();
            self.at = 0;
            let n = self.socket.read(&mut self.raw)?;
            if n == 0 {
                return Ok(0);
            }
            let mut session = lock(&self.shared.session);
            let mut raw = &self.raw[..n];
            let mut closed = false;
            while !raw.is_empty() {
                // 0: the peer closed (close_notify); the rest is not TLS.
                if session.read_tls(&mut raw)? == 0 {
                    closed = true;
                    break;
                }
                let state = session.process_new_packets().map_err(tls_error)?;
                closed |= state.peer_has_closed();
                // Drain the plaintext so the session's buffer never fills.
                let mut reader = session.reader();
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match reader.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(got) => self.plain.extend_from_slice(&chunk[..got]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            // What the session has to say back (a key update): sent only if
            // the writer is not mid-write, else the writer's next write
            // carries it. Waiting for the writer here could deadlock: a
            // writer blocked on a full socket needs this reader to read.
            if session.wants_write() {
                if let Ok(mut socket) = self.shared.socket_out.try_lock() {
                    let mut out = Vec::new();
                    while session.wants_write() {
                        session.write_tls(&mut out)?;
                    }
                    drop(session);
                    socket.write_all(&out)?;
                }
            }
            if closed && self.plain.is_empty() {
                return Ok(0);
            }
        }
    }
}

struct TlsWriter {
    shared: Arc<Shared>,
    out: Vec<u8>,
}

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut session = lock(&self.shared.session);
        session.writer().write_all(buf)?;
        flush_session(session, &self.shared, &mut self.out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
