//! Frames over a byte stream: the thin async edge around [`super::wire`].

use super::stats::Counters;
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

/// One frame read: the message, and (but for Routed) its raw payload.
pub struct Received {
    pub msg: Message,
    pub payload: Vec<u8>,
}

/// Reads, authenticates and decodes one frame of at most `max` payload
/// bytes, and counts it.
pub async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    opener: &mut Opener,
    max: usize,
    counters: &Counters,
) -> Result<Received, FrameError> {
    let mut head = [0u8; HEADER_LEN];
    r.read_exact(&mut head).await?;
    // The header is checked (size caps included) before the body is read.
    let h = wire::parse_header(&head)?;
    if h.len > max {
        return Err(FrameError::TooLarge { len: h.len, max });
    }
    let mut body = vec![0u8; h.body_len()];
    r.read_exact(&mut body).await?;
    let (msg, payload) = opener.open(&h, &head, body)?;
    counters.received(h.kind, h.frame_len());
    Ok(Received { msg, payload })
}

/// [`read`] with a deadline.
pub async fn read_within<R: AsyncRead + Unpin>(
    r: &mut R,
    opener: &mut Opener,
    max: usize,
    limit: Duration,
    counters: &Counters,
) -> Result<Received, FrameError> {
    tokio::time::timeout(limit, read(r, opener, max, counters))
        .await
        .map_err(|_| FrameError::Timeout(limit))?
}

/// Seals, writes and counts one frame.
pub async fn write<W: AsyncWrite + Unpin>(
    w: &mut W,
    sealer: &mut Sealer,
    m: &Message,
    counters: &Counters,
) -> Result<(), FrameError> {
    let frame = sealer.seal(m)?;
    w.write_all(&frame).await?;
    counters.sent(m.kind(), frame.len());
    Ok(())
}
