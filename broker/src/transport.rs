//! The byte stream under one client connection: plain TCP today, TLS next.
//!
//! `connection::serve_transport` is generic over a [`Transport`]: reading
//! frames, writing responses, and writing a response given in parts (a
//! Fetch response: a small encoded header around record slices that are
//! the storage's own memory). Each transport decides how parts reach the
//! wire:
//!
//! - [`PlainTcp`] sends them with vectored non-blocking `sendmsg` straight
//!   from the slices (no copy in user space); when the socket is full it
//!   waits for room through glommio and resumes where the kernel stopped.
//! - A TLS transport (rustls) cannot hand plaintext to the socket: its
//!   `write_parts` encrypts from the slices into its send buffer (one copy,
//!   the encryption itself) and writes the records. With rustls'
//!   `UnbufferedServerConnection` the records can be encrypted from the
//!   slices into one buffer the transport owns; with `futures-rustls` the
//!   default `write_parts` (each part through `poll_write`) does the same
//!   through rustls' own buffer. Kafka turns sendfile off under SSL for the
//!   same reason.
//!
//! Sharing: a connection's reader task and writer task both hold the
//! transport (`Rc<T>`), so every method takes `&self`. Implementations keep
//! their stream in a `RefCell` borrowed only inside one `poll_*` call, never
//! across an await, so the two tasks never hold it at once and never lock
//! each other out (the full-duplex deadlock of read/write halves behind an
//! async lock cannot happen). glommio keeps one waker per direction of a
//! socket (`add_waiter_single`), so a transport must read the socket only
//! from `poll_read` (and `poll_receive_body`, on the reader task too) and
//! write it only from `poll_write`/`poll_flush`/`write_parts`: otherwise
//! one task's waker replaces the other's and a wake-up is lost.
//! futures-rustls' `TlsStream` keeps to that (its `poll_read` writes only
//! a last alert on a protocol error); the TLS handshake runs before the
//! connection is served, so neither task sees it.

pub use crate::api::context::{ConnectionInfo, Principal};
use crate::protocol::frame::{ReceiveBody, Received};
use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::os::unix::io::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Kafka's name of the plain-TCP listener (`PLAINTEXT://host:port`).
pub const PLAINTEXT: &str = "PLAINTEXT";

/// A connection's byte stream, shared by its reader and writer tasks.
///
/// `poll_read` is called by the reader task only; `poll_write`,
/// `poll_flush` and `write_parts` by the writer task only.
pub trait Transport: 'static {
    fn info(&self) -> &ConnectionInfo;

    /// Reads some bytes into `buf`; `Ok(0)` at the end of the stream.
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Reads some bytes into `bufs`, filling each before the next. The
    /// default reads into the first non-empty one.
    fn poll_read_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_read_first(self, cx, bufs)
    }

    /// Whether `poll_receive_body` is implemented ([`ReceiveBody`]).
    const RECEIVES_INTO_SPARE: bool = false;

    /// [`ReceiveBody::poll_receive_body`] (called by the reader task only,
    /// and only when `RECEIVES_INTO_SPARE`).
    fn poll_receive_body(
        &self,
        cx: &mut Context<'_>,
        body: &mut BytesMut,
        want: usize,
        ahead: &mut [u8],
    ) -> Poll<io::Result<Received>> {
        let _ = (cx, body, want, ahead);
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }

    /// Writes some of `buf`, returning how much.
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// Pushes out what the transport buffered (TLS records); the writer
    /// calls it after each response. Plain sockets buffer nothing.
    fn poll_flush(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Writes all of `parts`, in order, as one run of bytes (parts may be
    /// empty). The default writes each part with `poll_write`.
    fn write_parts(&self, parts: &[&[u8]]) -> impl Future<Output = io::Result<()>> {
        write_each_part(self, parts)
    }
}

/// `Transport::write_parts` by one `write_all` per part.
pub async fn write_each_part<T: Transport + ?Sized>(
    transport: &T,
    parts: &[&[u8]],
) -> io::Result<()> {
    let mut writer = Writer(transport);
    for part in parts {
        writer.write_all(part).await?;
    }
    Ok(())
}

/// `Transport::poll_read` into the first non-empty buffer of `bufs`.
fn poll_read_first<T: Transport + ?Sized>(
    transport: &T,
    cx: &mut Context<'_>,
    bufs: &mut [IoSliceMut<'_>],
) -> Poll<io::Result<usize>> {
    match bufs.iter_mut().find(|b| !b.is_empty()) {
        Some(buf) => transport.poll_read(cx, buf),
        None => Poll::Ready(Ok(0)),
    }
}

/// Waits until `poll_flush` is done.
pub async fn flush<T: Transport + ?Sized>(transport: &T) -> io::Result<()> {
    futures_lite::future::poll_fn(|cx| transport.poll_flush(cx)).await
}

/// A transport as a futures `AsyncRead` (for `FrameReader`).
pub struct Reader<'a, T: ?Sized>(pub &'a T);

impl<T: Transport + ?Sized> AsyncRead for Reader<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read_vectored(cx, bufs)
    }
}

impl<T: Transport + ?Sized> ReceiveBody for Reader<'_, T> {
    const INTO_SPARE: bool = T::RECEIVES_INTO_SPARE;

    fn poll_receive_body(
        &mut self,
        cx: &mut Context<'_>,
        body: &mut BytesMut,
        want: usize,
        ahead: &mut [u8],
    ) -> Poll<io::Result<Received>> {
        self.0.poll_receive_body(cx, body, want, ahead)
    }
}

/// A transport as a futures `AsyncWrite`. Closing is a no-op: the
/// connection ends when the last holder drops the transport.
pub struct Writer<'a, T: ?Sized>(pub &'a T);

impl<T: Transport + ?Sized> AsyncWrite for Writer<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// An accepted TCP connection without TLS: principal `User:ANONYMOUS`.
pub struct PlainTcp {
    stream: RefCell<TcpStream>,
    fd: RawFd,
    info: ConnectionInfo,
}

impl PlainTcp {
    /// Fails if the peer is already gone (no peer address).
    pub fn new(stream: TcpStream, listener: &str) -> io::Result<PlainTcp> {
        let peer = stream.peer_addr()?;
        Ok(PlainTcp {
            fd: stream.as_raw_fd(),
            stream: RefCell::new(stream),
            info: ConnectionInfo {
                peer,
                listener: listener.into(),
                principal: Principal::anonymous(),
            },
        })
    }
}

impl Transport for PlainTcp {
    fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_read(cx, buf)
    }

    const RECEIVES_INTO_SPARE: bool = true;

    /// One non-blocking receive straight into the body's spare capacity
    /// (the kernel initialises what it writes: no zeroing) and the
    /// read-ahead. When nothing is there, a plain read of the read-ahead
    /// waits through glommio and reads what came (at most
    /// `READ_AHEAD_BYTES`, which the frame reader then copies into the
    /// body), as `write_parts` does for sends.
    fn poll_receive_body(
        &self,
        cx: &mut Context<'_>,
        body: &mut BytesMut,
        want: usize,
        ahead: &mut [u8],
    ) -> Poll<io::Result<Received>> {
        loop {
            match receive_into_spare(self.fd, body, want, ahead) {
                Ok(received) => return Poll::Ready(Ok(received)),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return self.poll_read(cx, ahead).map_ok(|read| Received {
                        into_body: 0,
                        into_ahead: read,
                    })
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, buf)
    }

    /// Vectored sends straight from the parts' memory (storage slices
    /// included), so a Fetch response costs one syscall per socket
    /// buffer's worth instead of one per part, and no copy in user space.
    /// The sends never block: when the socket is full, one plain async
    /// write of the current part's rest waits for room through glommio
    /// (and sends what fits, also from the part's memory), then the
    /// vectored sends resume.
    async fn write_parts(&self, parts: &[&[u8]]) -> io::Result<()> {
        let slices: Vec<&[u8]> = parts.iter().copied().filter(|s| !s.is_empty()).collect();
        let (mut index, mut offset) = (0usize, 0usize);
        while index < slices.len() {
            let window = &slices[index..slices.len().min(index + IOVECS_PER_SEND_MAX)];
            let sent = match send_vectored(self.fd, window, offset) {
                Ok(sent) => sent,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    let written = Writer(self).write(&slices[index][offset..]).await?;
                    if written == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    written
                }
                Err(error) => return Err(error),
            };
            (index, offset) = advance(&slices, index, offset, sent);
        }
        Ok(())
    }
}

/// Slices handed to one sendmsg (Linux's UIO_MAXIOV is 1024).
const IOVECS_PER_SEND_MAX: usize = 1024;

/// The position `sent` bytes after byte `offset` of `slices[index]`.
pub(crate) fn advance(
    slices: &[&[u8]],
    mut index: usize,
    mut offset: usize,
    sent: usize,
) -> (usize, usize) {
    let mut left = sent;
    while left > 0 && index < slices.len() {
        let rest = slices[index].len() - offset;
        if left < rest {
            offset += left;
            left = 0;
        } else {
            left -= rest;
            index += 1;
            offset = 0;
        }
    }
    (index, offset)
}

/// One non-blocking sendmsg of `slices` (the first from `offset` on).
fn send_vectored(fd: RawFd, slices: &[&[u8]], offset: usize) -> io::Result<usize> {
    let mut iovecs: Vec<libc::iovec> = slices
        .iter()
        .enumerate()
        .map(|(i, slice)| {
            let slice = if i == 0 { &slice[offset..] } else { slice };
            libc::iovec {
                iov_base: slice.as_ptr() as *mut libc::c_void,
                iov_len: slice.len(),
            }
        })
        .collect();
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    #[expect(unsafe_code)]
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = iovecs.as_mut_ptr();
    header.msg_iovlen = iovecs.len() as _;
    // SAFETY: every iovec points into a slice borrowed for this call and
    // sendmsg only reads them; the fd is the connection's open socket,
    // owned by the `PlainTcp` that `&self` borrows. MSG_DONTWAIT keeps the
    // executor thread from blocking; MSG_NOSIGNAL turns a closed peer into
    // EPIPE instead of SIGPIPE.
    #[expect(unsafe_code)]
    let sent = unsafe { libc::sendmsg(fd, &header, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// One non-blocking recvmsg into the spare capacity of `body` (at most
/// `want` bytes, appended to it) and then `ahead`.
fn receive_into_spare(
    fd: RawFd,
    body: &mut BytesMut,
    want: usize,
    ahead: &mut [u8],
) -> io::Result<Received> {
    let spare = body.spare_capacity_mut();
    let want = want.min(spare.len());
    let mut iovecs = [
        libc::iovec {
            iov_base: spare.as_mut_ptr().cast::<libc::c_void>(),
            iov_len: want,
        },
        libc::iovec {
            iov_base: ahead.as_mut_ptr().cast::<libc::c_void>(),
            iov_len: ahead.len(),
        },
    ];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    #[expect(unsafe_code)]
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = iovecs.as_mut_ptr();
    header.msg_iovlen = iovecs.len() as _;
    // SAFETY: the iovecs point at `want` bytes of the body's spare capacity
    // and at `ahead`, both exclusively borrowed for this call; recvmsg
    // writes at most their lengths (it never reads them, so memory not yet
    // initialised is fine). The fd is the connection's open socket, owned
    // by the `PlainTcp` the caller borrows. MSG_DONTWAIT keeps the executor
    // thread from blocking.
    #[expect(unsafe_code)]
    let read = unsafe { libc::recvmsg(fd, &mut header, libc::MSG_DONTWAIT) };
    if read < 0 {
        return Err(io::Error::last_os_error());
    }
    let read = read as usize;
    let into_body = read.min(want);
    // SAFETY: recvmsg filled the iovecs in order, so the first `into_body`
    // bytes of the spare capacity are initialised now; `into_body` is at
    // most `want`, within the capacity.
    #[expect(unsafe_code)]
    unsafe {
        body.set_len(body.len() + into_body)
    };
    Ok(Received {
        into_body,
        into_ahead: read - into_body,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use futures_lite::AsyncReadExt;
    use socket2::{SockRef, Socket};
    use std::os::unix::io::{FromRawFd, IntoRawFd};

    /// Runs `fut` to completion on a fresh glommio executor on this thread.
    pub(crate) fn run<T: 'static>(fut: impl Future<Output = T> + 'static) -> T {
        glommio::LocalExecutorBuilder::default()
            .io_memory(2 << 20)
            .make()
            .expect("glommio executor (is RLIMIT_MEMLOCK too low?)")
            .run(fut)
    }

    /// A connected loopback pair whose sending and receiving kernel buffers
    /// are limited to about `buffer_bytes`: (sender, receiver) and the bytes
    /// the two can hold together. Call inside an executor.
    fn tcp_pair(buffer_bytes: usize) -> (TcpStream, TcpStream, usize) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let receiver =
            Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        receiver
            .set_recv_buffer_size(buffer_bytes)
            .expect("SO_RCVBUF");
        receiver.connect(&address.into()).expect("connect");
        let (sender, _) = listener.accept().expect("accept");
        SockRef::from(&sender)
            .set_send_buffer_size(buffer_bytes)
            .expect("SO_SNDBUF");
        let held = SockRef::from(&sender)
            .send_buffer_size()
            .expect("SO_SNDBUF")
            + receiver.recv_buffer_size().expect("SO_RCVBUF");
        (
            glommio_stream(sender),
            glommio_stream(receiver.into()),
            held,
        )
    }

    fn glommio_stream(stream: std::net::TcpStream) -> TcpStream {
        #[expect(unsafe_code)]
        // SAFETY: into_raw_fd gives up ownership of an open, connected
        // socket; the glommio stream takes it over and closes it on drop.
        unsafe {
            TcpStream::from_raw_fd(stream.into_raw_fd())
        }
    }

    #[test]
    fn plain_tcp_write_parts_sends_exactly_the_concatenation_of_many_parts() {
        // 3,000 parts, so at least three sendmsg windows of 1,024; odd sizes
        // and some empty parts, so sends stop mid-part.
        let parts: Vec<Vec<u8>> = (0..3_000usize)
            .map(|i| {
                let len = if i % 97 == 0 { 0 } else { (i * 7_919) % 2_800 };
                (0..len).map(|j| (i * 31 + j) as u8).collect()
            })
            .collect();
        let expected = parts.concat();
        let received = run(async move {
            let (sender, receiver, held) = tcp_pair(64 * 1024);
            // The reader is a task of this thread: until write_parts waits,
            // nothing drains the socket, and the kernel holds far less than
            // the response, so the would-block path must run (repeatedly).
            assert!(expected.len() > 4 * held, "{} vs {held}", expected.len());
            let reading = glommio::spawn_local(async move {
                let mut receiver = receiver;
                let mut bytes = Vec::new();
                receiver.read_to_end(&mut bytes).await.expect("read");
                bytes
            });
            let transport = PlainTcp::new(sender, PLAINTEXT).expect("connected");
            assert_eq!(transport.info().principal.to_string(), "User:ANONYMOUS");
            let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            transport.write_parts(&slices).await.expect("write_parts");
            drop(transport); // closes the socket: the reader sees the end
            (reading.await, expected)
        });
        let (received, expected) = received;
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "bytes differ");
    }

    #[test]
    fn plain_tcp_receives_frame_bodies_whole_into_fresh_memory() {
        use crate::protocol::frame::{FrameError, FrameReader};
        // Around the read-ahead, and big bodies in many receives.
        let bodies: Vec<Vec<u8>> = [0usize, 1, 1019, 1020, 1025, 16_384, 70_000, 300_000, 3]
            .iter()
            .enumerate()
            .map(|(i, len)| (0..*len).map(|j| (i * 131 + j * 7) as u8).collect())
            .collect();
        let mut bytes = Vec::new();
        for body in &bodies {
            bytes.extend_from_slice(&(body.len() as i32).to_be_bytes());
            bytes.extend_from_slice(body);
        }
        let expected = bodies.clone();
        let received = run(async move {
            let (sender, receiver, _) = tcp_pair(64 * 1024);
            // One thread: the writer yields after every piece, so the reader
            // finds partial bodies and an empty socket (the wait through
            // glommio into the read-ahead), as well as whole ones.
            let writing = glommio::spawn_local(async move {
                let mut sender = sender;
                for piece in bytes.chunks(7_001) {
                    sender.write_all(piece).await.expect("write");
                    futures_lite::future::yield_now().await;
                }
            });
            let transport = PlainTcp::new(receiver, PLAINTEXT).expect("connected");
            let mut reader = Reader(&transport);
            let mut frames = FrameReader::default();
            let mut got = Vec::new();
            loop {
                match frames.next(&mut reader, 1 << 20).await {
                    Ok(body) => got.push(body.to_vec()),
                    Err(FrameError::Closed) => break,
                    Err(error) => panic!("after {} frames: {error}", got.len()),
                }
            }
            writing.await;
            got
        });
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "bodies differ");
    }

    #[test]
    fn plain_tcp_receive_body_waits_on_an_empty_socket_and_then_gets_the_bytes() {
        let sent = b"0123456789abcdef";
        let (body, got) = run(async move {
            let (mut sender, receiver, _) = tcp_pair(64 * 1024);
            let transport = PlainTcp::new(receiver, PLAINTEXT).expect("connected");
            let mut body = BytesMut::with_capacity(10);
            let mut ahead = [0u8; 1024];
            // Nothing sent yet: the receive waits, and takes nothing.
            let first = futures_lite::future::poll_once(futures_lite::future::poll_fn(|cx| {
                transport.poll_receive_body(cx, &mut body, 10, &mut ahead)
            }))
            .await;
            assert!(first.is_none(), "{first:?}");
            assert!(body.is_empty());
            sender.write_all(sent).await.expect("write");
            let mut got = Vec::new();
            while got.len() < sent.len() {
                let at = body.len();
                let received = futures_lite::future::poll_fn(|cx| {
                    transport.poll_receive_body(cx, &mut body, 10 - at, &mut ahead)
                })
                .await
                .expect("receive");
                assert_eq!(body.len() - at, received.into_body);
                assert!(body.len() <= 10, "past the wanted bytes: {}", body.len());
                got.extend_from_slice(&body[at..]);
                got.extend_from_slice(&ahead[..received.into_ahead]);
                if received.into_ahead > 0 {
                    break; // the body's room is full, or the wait read ahead
                }
            }
            (body.to_vec(), got)
        });
        // Whichever way the bytes came (straight into the body, or into the
        // read-ahead by the wait), they are the sent ones, in order.
        assert!(sent.starts_with(&got), "{got:?}");
        assert!(!got.is_empty());
        assert!(sent.starts_with(&body), "{body:?}");
    }

    #[test]
    fn advance_walks_across_parts() {
        let slices: [&[u8]; 3] = [b"abc", b"d", b"efgh"];
        assert_eq!(advance(&slices, 0, 0, 0), (0, 0));
        assert_eq!(advance(&slices, 0, 0, 2), (0, 2));
        assert_eq!(advance(&slices, 0, 2, 1), (1, 0));
        assert_eq!(advance(&slices, 0, 1, 4), (2, 1));
        assert_eq!(advance(&slices, 1, 0, 5), (3, 0));
    }
}
