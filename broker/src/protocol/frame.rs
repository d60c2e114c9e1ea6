//! Length-prefixed Kafka frames. A claimed size over the limit closes the
//! connection before anything is allocated for it.
//!
//! A connection's [`FrameReader`] reads each frame's remaining body and a
//! little read-ahead in one vectored receive: the body lands in its own
//! buffer (which becomes the request's memory, record batches included, so
//! nothing large is copied), the read-ahead catches the next frame's size
//! and often all of a small request. A pipelining producer then costs one
//! receive per request instead of one for the size and one for the body.
//!
//! A body buffer is fresh memory for every frame. A source that can write
//! into memory not yet initialised ([`ReceiveBody`]: a plain socket, whose
//! bytes the kernel writes) receives into it as it is; others have the
//! room zeroed first, as Rust's readers require. On a
//! producer's path that zeroing was 3.7% of the broker's CPU
//! (docs/benchmarks.md).

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt};
use std::io::{self, IoSliceMut};
use std::task::{Context, Poll};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {size} bytes exceeds socket.request.max.bytes {max}")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame size {0}")]
    Negative(i32),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Bytes read past the current frame's body in the same receive. Small, so
/// that what is copied out of it into the next body stays small: the size
/// field and the start of a produce request, or a whole metadata, fetch or
/// heartbeat request.
pub const READ_AHEAD_BYTES: usize = 1024;

/// Reads one connection's frames, keeping what it read past a frame.
pub struct FrameReader {
    ahead: Box<[u8; READ_AHEAD_BYTES]>,
    /// `ahead[start..end]` is read and not yet handed out.
    start: usize,
    end: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            ahead: Box::new([0; READ_AHEAD_BYTES]),
            start: 0,
            end: 0,
        }
    }
}

impl FrameReader {
    fn buffered(&self) -> &[u8] {
        &self.ahead[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
    }

    /// The next frame's body. `Closed` at a clean end of stream (between
    /// frames); an end inside a frame is an error.
    pub async fn next<R: ReceiveBody>(
        &mut self,
        stream: &mut R,
        bytes_max: usize,
    ) -> Result<BytesMut, FrameError> {
        let len = self.next_size(stream, bytes_max).await?;
        self.body(stream, len).await
    }

    /// The next frame's size, checked against `bytes_max`, before anything
    /// is allocated for its body (so the caller may first wait for room,
    /// `queued.max.request.bytes`); then [`FrameReader::body`].
    pub async fn next_size<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        bytes_max: usize,
    ) -> Result<usize, FrameError> {
        while self.buffered().len() < 4 {
            if self.start > 0 {
                // Fewer than 4 bytes left at the end: move them to the front.
                self.ahead.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            }
            let read = stream.read(&mut self.ahead[self.end..]).await?;
            if read == 0 {
                return Err(if self.end == 0 {
                    FrameError::Closed
                } else {
                    io::Error::from(io::ErrorKind::UnexpectedEof).into()
                });
            }
            self.end += read;
        }
        let head = self.buffered();
        let size = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let len = usize::try_from(size).map_err(|_| FrameError::Negative(size))?;
        if len > bytes_max {
            return Err(FrameError::TooLarge {
                size: i64::from(size),
                max: bytes_max,
            });
        }
        self.consume(4);
        Ok(len)
    }

    /// The body of the frame whose size [`FrameReader::next_size`] gave.
    pub async fn body<R: ReceiveBody>(
        &mut self,
        stream: &mut R,
        len: usize,
    ) -> Result<BytesMut, FrameError> {
        if !R::INTO_SPARE {
            return self.body_zeroed(stream, len).await;
        }
        let mut body = BytesMut::with_capacity(len);
        loop {
            let have = self.buffered().len().min(len - body.len());
            body.extend_from_slice(&self.buffered()[..have]);
            self.consume(have);
            if body.len() == len {
                return Ok(body);
            }
            // Nothing is buffered now: the read-ahead starts empty.
            let want = len - body.len();
            let received = futures_lite::future::poll_fn(|cx| {
                stream.poll_receive_body(cx, &mut body, want, &mut self.ahead[..])
            })
            .await?;
            if received.into_body == 0 && received.into_ahead == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            (self.start, self.end) = (0, received.into_ahead);
        }
    }

    /// `body` for a source that reads only into initialised memory.
    async fn body_zeroed<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        len: usize,
    ) -> Result<BytesMut, FrameError> {
        let mut body = BytesMut::zeroed(len);
        let have = self.buffered().len().min(len);
        body[..have].copy_from_slice(&self.buffered()[..have]);
        self.consume(have);
        let mut filled = have;
        while filled < len {
            // Nothing is buffered now: the read-ahead starts empty.
            let mut bufs = [
                IoSliceMut::new(&mut body[filled..]),
                IoSliceMut::new(&mut self.ahead[..]),
            ];
            let read = stream.read_vectored(&mut bufs).await?;
            if read == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            let into_body = read.min(len - filled);
            filled += into_body;
            (self.start, self.end) = (0, read - into_body);
        }
        Ok(body)
    }
}

/// What one receive of a frame body brought: bytes appended to the body,
/// and bytes at the start of the read-ahead (past the body, or, from a
/// source that had to wait, the body's next bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub into_body: usize,
    pub into_ahead: usize,
}

/// A stream a frame body is received from.
pub trait ReceiveBody: AsyncRead + Unpin {
    /// Whether `poll_receive_body` receives into memory not yet
    /// initialised. If not, the body is zeroed and read with
    /// `poll_read_vectored`, as Rust's readers require.
    const INTO_SPARE: bool = false;

    /// Receives some bytes: at most `want` appended to `body` (into its
    /// spare capacity, which holds at least `want`), what follows them
    /// into `ahead`. Nothing at all: the end of the stream. Called only
    /// when `INTO_SPARE`.
    fn poll_receive_body(
        &mut self,
        cx: &mut Context<'_>,
        body: &mut BytesMut,
        want: usize,
        ahead: &mut [u8],
    ) -> Poll<io::Result<Received>> {
        let _ = (cx, body, want, ahead);
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A stream that hands out its bytes in the given chunk sizes, one
    /// chunk per read (vectored reads spread a chunk over the buffers), so
    /// frames and sizes are split at every possible place.
    struct Chunked {
        bytes: Vec<u8>,
        at: usize,
        chunks: Vec<usize>,
        next: usize,
    }

    impl Chunked {
        fn chunk(&mut self) -> usize {
            let size = self.chunks[self.next % self.chunks.len()];
            self.next += 1;
            size.min(self.bytes.len() - self.at)
        }
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.chunk().min(buf.len());
            let at = self.at;
            buf[..n].copy_from_slice(&self.bytes[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(n))
        }

        fn poll_read_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &mut [IoSliceMut<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.chunk();
            let mut total = 0;
            for buf in bufs.iter_mut() {
                let n = left.min(buf.len());
                let at = self.at;
                buf[..n].copy_from_slice(&self.bytes[at..at + n]);
                self.at += n;
                (left, total) = (left - n, total + n);
            }
            Poll::Ready(Ok(total))
        }
    }

    impl ReceiveBody for Chunked {}

    /// `Chunked` as a source that receives into spare capacity; every
    /// third receive lands in the read-ahead only, as a plain socket's
    /// wait does.
    struct Spare(Chunked);

    impl AsyncRead for Spare {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl ReceiveBody for Spare {
        const INTO_SPARE: bool = true;

        fn poll_receive_body(
            &mut self,
            _cx: &mut Context<'_>,
            body: &mut BytesMut,
            want: usize,
            ahead: &mut [u8],
        ) -> Poll<io::Result<Received>> {
            assert!(body.capacity() - body.len() >= want, "room for the body");
            let waited = self.0.next.is_multiple_of(3);
            let n = self.0.chunk();
            let at = self.0.at;
            let into_body = if waited { 0 } else { n.min(want) };
            let into_ahead = (n - into_body).min(ahead.len());
            body.extend_from_slice(&self.0.bytes[at..at + into_body]);
            ahead[..into_ahead].copy_from_slice(&self.0.bytes[at + into_body..][..into_ahead]);
            self.0.at += into_body + into_ahead;
            Poll::Ready(Ok(Received {
                into_body,
                into_ahead,
            }))
        }
    }

    fn framed(bodies: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for body in bodies {
            bytes.extend_from_slice(&(body.len() as i32).to_be_bytes());
            bytes.extend_from_slice(body);
        }
        bytes
    }

    /// Every frame of `bytes` read in `chunks`, the same through both
    /// body paths (zeroed, and received into spare capacity).
    fn read_all(bytes: Vec<u8>, chunks: Vec<usize>) -> (Vec<Vec<u8>>, FrameError) {
        fn frames_of<R: ReceiveBody>(mut stream: R) -> (Vec<Vec<u8>>, FrameError) {
            let mut reader = FrameReader::default();
            let mut frames = Vec::new();
            loop {
                match futures_lite::future::block_on(reader.next(&mut stream, 1 << 20)) {
                    Ok(frame) => frames.push(frame.to_vec()),
                    Err(end) => return (frames, end),
                }
            }
        }
        let chunked = || Chunked {
            bytes: bytes.clone(),
            at: 0,
            chunks: chunks.clone(),
            next: 0,
        };
        let (zeroed, zeroed_end) = frames_of(chunked());
        let (spare, spare_end) = frames_of(Spare(chunked()));
        assert!(zeroed == spare, "the two paths differ, chunks {chunks:?}");
        assert_eq!(format!("{zeroed_end:?}"), format!("{spare_end:?}"));
        (zeroed, zeroed_end)
    }

    #[test]
    fn frames_come_out_whole_however_the_stream_splits_them() {
        // Sizes around the read-ahead: empty, tiny, just under, at and
        // over it, and large.
        let bodies: Vec<Vec<u8>> = [
            0usize, 1, 3, 700, 1019, 1020, 1024, 1025, 5000, 70_000, 600_000, 2,
        ]
        .iter()
        .enumerate()
        .map(|(i, len)| (0..*len).map(|j| (i * 131 + j) as u8).collect())
        .collect();
        let bytes = framed(&bodies);
        for chunks in [
            vec![1],
            vec![2, 3],
            vec![4],
            vec![5, 1024, 7],
            vec![1500],
            vec![65_536],
            vec![bytes.len()],
        ] {
            let (frames, end) = read_all(bytes.clone(), chunks.clone());
            assert!(frames == bodies, "chunks {chunks:?}");
            assert!(matches!(end, FrameError::Closed), "{end:?}");
        }
    }

    #[test]
    fn an_end_inside_a_frame_is_not_a_clean_close() {
        let mut bytes = framed(&[vec![7; 10], vec![8; 3000]]);
        bytes.truncate(bytes.len() - 1);
        let (frames, end) = read_all(bytes, vec![100]);
        assert_eq!(frames, vec![vec![7; 10]]);
        assert!(matches!(end, FrameError::Io(ref e) if e.kind() == io::ErrorKind::UnexpectedEof));
        let (frames, end) = read_all(vec![0, 0], vec![1]);
        assert!(frames.is_empty());
        assert!(matches!(end, FrameError::Io(_)), "{end:?}");
    }

    #[test]
    fn oversized_and_negative_sizes_are_refused_before_allocating() {
        let (_, end) = read_all((2i32 << 20).to_be_bytes().to_vec(), vec![4]);
        assert!(matches!(end, FrameError::TooLarge { size, .. } if size == 2 << 20));
        let (_, end) = read_all((-1i32).to_be_bytes().to_vec(), vec![4]);
        assert!(matches!(end, FrameError::Negative(-1)));
    }
}
