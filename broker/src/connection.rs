//! One client connection, pipelined: a reader decodes frames and starts each
//! request's handler at once, a writer sends the responses strictly in
//! request order. So a producer with several requests in flight gets them
//! appended back to back and covered by one group-commit fdatasync, instead
//! of paying one fsync per request. Requests in flight per connection are
//! bounded (`limits::CONNECTION_REQUESTS_IN_FLIGHT_MAX`); reading pauses at
//! the bound (back-pressure through TCP).

use crate::api::context::ConnectionInfo;
use crate::api::fetch_response::Part;
use crate::api::reply::Outcome;
use crate::core::Core;
use crate::limits::CONNECTION_REQUESTS_IN_FLIGHT_MAX;
use crate::protocol::dispatch;
use crate::protocol::frame::{read_frame, FrameError};
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::Task;
use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use storage::Event;

/// The socket shared by the reader and writer tasks of one connection. Each
/// poll borrows it only for that call (never across an await), and glommio
/// keeps separate read and write sources, so the two can wait at once.
#[derive(Clone)]
struct SharedStream(Rc<RefCell<TcpStream>>);

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}

/// Set when the writer gives up, so the reader stops too.
struct Closing {
    closed: Cell<bool>,
    event: Event,
}

pub async fn serve(core: Rc<Core>, stream: TcpStream) {
    let address = stream.peer_addr().ok();
    let peer = address.map_or_else(|| "?".to_string(), |a| a.to_string());
    let info = Rc::new(ConnectionInfo::plaintext(address));
    let stream = SharedStream(Rc::new(RefCell::new(stream)));
    let closing = Rc::new(Closing {
        closed: Cell::new(false),
        event: Event::default(),
    });
    let (queue, responses) =
        local_channel::new_bounded::<Task<Outcome>>(CONNECTION_REQUESTS_IN_FLIGHT_MAX);
    let writer = glommio::spawn_local(write_responses(
        stream.clone(),
        responses,
        closing.clone(),
        peer.clone(),
    ));
    let mut reader = stream;
    loop {
        let closed = closing.event.listen();
        if closing.closed.get() {
            break;
        }
        let next = async { Some(read_frame(&mut reader, core.config.request_bytes_max).await) };
        let stop = async {
            closed.await;
            None
        };
        let frame = match futures_lite::future::or(next, stop).await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(FrameError::Closed)) => break,
            Some(Err(error)) => {
                tracing::warn!(%peer, %error, "closing connection");
                break;
            }
        };
        let (core, info) = (core.clone(), info.clone());
        let task = glommio::spawn_local(async move { dispatch::handle(&core, frame, &info).await });
        if queue.send(task).await.is_err() {
            break;
        }
    }
    drop(queue);
    writer.await;
}

async fn write_responses(
    mut stream: SharedStream,
    responses: local_channel::LocalReceiver<Task<Outcome>>,
    closing: Rc<Closing>,
    peer: String,
) {
    while let Some(task) = responses.recv().await {
        let written = match task.await {
            Outcome::Respond(bytes) => stream.write_all(&bytes).await,
            Outcome::RespondParts(parts) => write_parts(&mut stream, &parts).await,
            Outcome::Silent => Ok(()),
            Outcome::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                Err(io::Error::other(reason))
            }
        };
        if let Err(error) = written {
            tracing::debug!(%peer, %error, "connection writer stops");
            break;
        }
    }
    closing.closed.set(true);
    closing.event.notify_all();
}

/// Slices handed to one sendmsg (Linux's UIO_MAXIOV is 1024).
const IOVECS_PER_SEND_MAX: usize = 1024;

/// Writes a response given in parts with vectored sends straight from the
/// parts' memory (storage slices included), so a Fetch response costs one
/// syscall per socket-buffer's worth instead of one per part. The sends
/// never block: when the socket is full, one plain async write waits for
/// room through glommio and the vectored sends resume.
async fn write_parts(stream: &mut SharedStream, parts: &[Part]) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let slices: Vec<&[u8]> = parts
        .iter()
        .map(Part::as_slice)
        .filter(|s| !s.is_empty())
        .collect();
    let fd = stream.0.borrow().as_raw_fd();
    let (mut index, mut offset) = (0usize, 0usize);
    while index < slices.len() {
        let window = &slices[index..slices.len().min(index + IOVECS_PER_SEND_MAX)];
        let sent = match send_vectored(fd, window, offset) {
            Ok(sent) => sent,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                let written = stream.write(&slices[index][offset..]).await?;
                if written == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                written
            }
            Err(error) => return Err(error),
        };
        // Advance past what was sent.
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
    }
    Ok(())
}

/// One non-blocking sendmsg of `slices` (the first from `offset` on).
fn send_vectored(
    fd: std::os::unix::io::RawFd,
    slices: &[&[u8]],
    offset: usize,
) -> io::Result<usize> {
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
    // sendmsg only reads them; the fd is the connection's open socket.
    // MSG_DONTWAIT keeps the executor thread from blocking; MSG_NOSIGNAL
    // turns a closed peer into EPIPE instead of SIGPIPE.
    #[expect(unsafe_code)]
    let sent = unsafe { libc::sendmsg(fd, &header, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}
