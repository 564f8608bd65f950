//! Frames over a byte stream: the thin async edge around [`super::wire`].

use super::wire::{self, Message, Opener, Sealer, WireError, HEADER_LEN};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(std::io::Error),
    #[error("no frame within {0:?}")]
    Timeout(Duration),
    #[error("frame of {len} bytes exceeds the {max}-byte limit here")]
    TooLarge { len: usize, max: usize },
}

/// The most a handshake frame (a Hello, a verdict) may carry: read before
/// the peer has proved anything, so no large buffer is made for it.
pub const HANDSHAKE_MAX: usize = 64 << 10;

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> FrameError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            FrameError::Io(e)
        }
    }
}

/// Reads, authenticates and decodes one frame of at most `max` payload
/// bytes; also returns its payload.
pub async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    opener: &mut Opener,
    max: usize,
) -> Result<(Message, Vec<u8>), FrameError> {
    let mut head = [0u8; HEADER_LEN];
    r.read_exact(&mut head).await?;
    // The header is checked (size caps included) before the body is read.
    let h = wire::parse_header(&head)?;
    if h.len > max {
        return Err(FrameError::TooLarge { len: h.len, max });
    }
    let mut body = vec![0u8; h.body_len()];
    r.read_exact(&mut body).await?;
    Ok(opener.open(&head, &body)?)
}

/// [`read`] with a deadline.
pub async fn read_within<R: AsyncRead + Unpin>(
    r: &mut R,
    opener: &mut Opener,
    max: usize,
    limit: Duration,
) -> Result<(Message, Vec<u8>), FrameError> {
    tokio::time::timeout(limit, read(r, opener, max))
        .await
        .map_err(|_| FrameError::Timeout(limit))?
}

/// The length of a whole frame carrying `payload` bytes.
pub fn frame_len(payload: usize) -> usize {
    HEADER_LEN + payload + wire::MAC_LEN
}

/// Seals and writes one frame; returns its length.
pub async fn write<W: AsyncWrite + Unpin>(
    w: &mut W,
    sealer: &mut Sealer,
    m: &Message,
) -> Result<usize, FrameError> {
    let frame = sealer.seal(m)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(frame.len())
}
