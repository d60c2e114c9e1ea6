//! One client connection, pipelined: a reader decodes frames and starts each
//! request's handler at once, a writer sends the responses strictly in
//! request order. So a producer with several requests in flight gets them
//! appended back to back and covered by one group-commit fdatasync, instead
//! of paying one fsync per request. Requests in flight per connection are
//! bounded (`limits::CONNECTION_REQUESTS_IN_FLIGHT_MAX`); reading pauses at
//! the bound (back-pressure through TCP).

use crate::limits::CONNECTION_REQUESTS_IN_FLIGHT_MAX;
use crate::protocol::dispatch::{self, Outcome};
use crate::protocol::fetch_response::Part;
use crate::protocol::frame::{read_frame, FrameError};
use crate::shard::Shard;
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

pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: String) {
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
    // The client's IP without the port, as Kafka shows client hosts.
    let peer_host: Rc<str> = peer
        .rsplit_once(':')
        .map_or(peer.as_str(), |(host, _)| host)
        .into();
    let mut reader = stream;
    loop {
        let closed = closing.event.listen();
        if closing.closed.get() {
            break;
        }
        let next = async { Some(read_frame(&mut reader, shard.config.request_bytes_max).await) };
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
        let handler_shard = shard.clone();
        let host = peer_host.clone();
        let task =
            glommio::spawn_local(
                async move { dispatch::handle(&handler_shard, frame, &host).await },
            );
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

/// Parts below this size are gathered into one buffer before writing; larger
/// record slices are written straight from the storage's memory.
const COALESCE_BYTES_MAX: usize = 16 * 1024;

async fn write_parts(stream: &mut SharedStream, parts: &[Part]) -> io::Result<()> {
    let mut small = Vec::with_capacity(COALESCE_BYTES_MAX);
    for part in parts {
        let bytes = part.as_slice();
        if bytes.len() < COALESCE_BYTES_MAX && small.len() + bytes.len() <= COALESCE_BYTES_MAX {
            small.extend_from_slice(bytes);
            continue;
        }
        if !small.is_empty() {
            stream.write_all(&small).await?;
            small.clear();
        }
        if bytes.len() < COALESCE_BYTES_MAX {
            small.extend_from_slice(bytes);
        } else {
            stream.write_all(bytes).await?;
        }
    }
    if !small.is_empty() {
        stream.write_all(&small).await?;
    }
    Ok(())
}
