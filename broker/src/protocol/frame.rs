//! Length-prefixed Kafka frames. A claimed size over the limit closes the
//! connection before anything is allocated for it.

use futures_lite::{AsyncRead, AsyncReadExt};
use std::io;

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

/// Reads one frame body. `Closed` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
    bytes_max: usize,
) -> Result<bytes::BytesMut, FrameError> {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size);
    let len = usize::try_from(size).map_err(|_| FrameError::Negative(size))?;
    if len > bytes_max {
        return Err(FrameError::TooLarge {
            size: i64::from(size),
            max: bytes_max,
        });
    }
    let mut body = bytes::BytesMut::zeroed(len);
    stream.read_exact(&mut body).await?;
    Ok(body)
}
