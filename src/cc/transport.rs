//! Bytes to and from agents. Each connection has a reader task (the `RON`
//! magic, then gob frames decoded to messages, bounded) and a writer task
//! (messages encoded and written with a deadline), so a stuck or hostile
//! agent costs its own tasks only. Agents arrive two ways: the VM's
//! virtio-serial port, a unix socket QEMU serves that we dial and redial
//! for as long as the VM runs; and TCP listeners (`cc listen`).

use super::gob::{self, GobError};
use super::ron::{self, Message};
use super::server::Cc;
use super::session::{self, End, Via};
use crate::vm::Vm;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Bytes a TCP peer may send before `RON` (a serial port may carry any
/// amount of an earlier agent's leftovers, which are skipped).
pub const HANDSHAKE_LIMIT: usize = 64 << 10;
/// One write to an agent.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const MAGIC: &[u8; 3] = b"RON";

/// What the reader saw.
#[derive(Debug)]
pub(crate) enum Event {
    /// `RON`: an agent (re)starts its stream.
    Hello,
    Msg(Box<Message>),
    /// Malformed input: the connection is dropped, this says why.
    Bad(String),
}

/// What the writer is asked to do.
#[derive(Debug)]
pub(crate) enum Out {
    /// Answer the magic and start a new gob stream.
    Ron,
    Msg(Box<Message>),
}

/// Reads `RON`, then frames; a `RON` where a frame would start is a new
/// agent on the same port (a guest rebooted), so decoding starts over.
pub(crate) async fn read<R>(rd: R, events: mpsc::Sender<Event>, tcp: bool)
where
    R: AsyncRead + Unpin + Send,
{
    let mut r = BufReader::new(rd);
    let bad = |why: String| Event::Bad(why);
    match scan(&mut r, tcp.then_some(HANDSHAKE_LIMIT)).await {
        Ok(true) => {}
        Ok(false) => {
            let _ = events
                .send(bad(format!(
                    "no RON handshake in the first {HANDSHAKE_LIMIT} bytes"
                )))
                .await;
            return;
        }
        Err(_) => return,
    }
    let mut dec = gob::Decoder::new();
    if events.send(Event::Hello).await.is_err() {
        return;
    }
    loop {
        let ev = match frame(&mut r).await {
            Ok(Frame::Magic) => {
                dec = gob::Decoder::new();
                Event::Hello
            }
            Ok(Frame::Body(body)) => match dec.message(&body) {
                Ok(None) => continue,
                Ok(Some((_, v))) => match Message::from_gob(&v) {
                    Ok(m) => Event::Msg(Box::new(m)),
                    Err(e) => bad(format!("malformed message: {e}")),
                },
                Err(e) => bad(format!("malformed message: {e}")),
            },
            Err(FrameError::Gob(e)) => bad(e.to_string()),
            Err(FrameError::Io(e)) => {
                debug!("cc: read: {e}");
                return;
            }
        };
        let stop = matches!(ev, Event::Bad(_));
        if events.send(ev).await.is_err() || stop {
            return;
        }
    }
}

/// Skips bytes up to and including `RON`. `Ok(false)` past `limit`.
async fn scan<R: AsyncRead + Unpin>(r: &mut R, limit: Option<usize>) -> std::io::Result<bool> {
    let mut last = [0u8; 3];
    let mut n = 0usize;
    loop {
        let b = r.read_u8().await?;
        last = [last[1], last[2], b];
        n += 1;
        if &last == MAGIC {
            return Ok(true);
        }
        if limit.is_some_and(|l| n > l) {
            return Ok(false);
        }
    }
}

enum Frame {
    Body(Vec<u8>),
    Magic,
}

enum FrameError {
    Io(std::io::Error),
    Gob(GobError),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// One length-prefixed frame, read as it arrives (a peer announcing a huge
/// frame gets an error before anything is allocated for it).
async fn frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, FrameError> {
    let first = r.read_u8().await?;
    let mut body = Vec::new();
    let len = if first == MAGIC[0] {
        // 'R' is also the length 82; a stream's type ids never start with
        // 'O', so "RO" can only be the magic.
        let second = r.read_u8().await?;
        if second == MAGIC[1] {
            let third = r.read_u8().await?;
            if third == MAGIC[2] {
                return Ok(Frame::Magic);
            }
            body.extend([second, third]);
        } else {
            body.push(second);
        }
        first as usize
    } else {
        let mut head = vec![first];
        if first >= 0x80 {
            let n = (first as i8).unsigned_abs() as usize;
            if n > 8 {
                return Err(FrameError::Gob(GobError::IntOverflow));
            }
            let mut rest = vec![0u8; n];
            r.read_exact(&mut rest).await?;
            head.extend(rest);
        }
        match gob::frame_len(&head).map_err(FrameError::Gob)? {
            Some((_, len)) => len,
            None => return Err(FrameError::Gob(GobError::Truncated)),
        }
    };
    let want = len - body.len();
    let got = (&mut *r).take(want as u64).read_to_end(&mut body).await?;
    if got < want {
        return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(Frame::Body(body))
}

/// Writes what the session sends, each message within [`WRITE_TIMEOUT`];
/// ends (and so ends the session) on the first failure.
pub(crate) async fn write<W>(mut w: W, mut rx: mpsc::Receiver<Out>, label: String)
where
    W: AsyncWrite + Unpin + Send,
{
    let mut enc = gob::Encoder::new();
    while let Some(out) = rx.recv().await {
        let bytes = match out {
            Out::Ron => {
                enc = gob::Encoder::new();
                MAGIC.to_vec()
            }
            Out::Msg(m) => match enc.encode(&ron::T_MESSAGE, &m.to_gob()) {
                Ok(b) => b,
                Err(e) => {
                    warn!(
                        "cc: {label}: cannot encode a {} message: {e}",
                        ron::kind::name(m.kind)
                    );
                    continue;
                }
            },
        };
        let done = async {
            w.write_all(&bytes).await?;
            w.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, done).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!("cc: {label}: write: {e}");
                return;
            }
            Err(_) => {
                warn!("cc: {label}: a write took longer than {WRITE_TIMEOUT:?}; dropping the connection");
                return;
            }
        }
    }
}

/// The daemon's end of a VM's `cc` virtio-serial port: connects, serves
/// the agent, and connects again after it leaves (the guest rebooted, or
/// this daemon restarted), until the task is dropped with the VM.
pub(crate) async fn serial(cc: Cc, vm: Arc<Vm>, path: PathBuf) {
    let mut failures = 0u32;
    loop {
        let pause = match tokio::net::UnixStream::connect(&path).await {
            Ok(stream) => {
                failures = 0;
                match session::serve(cc.clone(), stream, Via::Serial(vm.clone())).await {
                    End::Closed => Duration::from_millis(500),
                    // An agent that cannot be served is tried now and then.
                    End::Refused => Duration::from_secs(30),
                }
            }
            Err(e) => {
                failures += 1;
                if failures == 20 {
                    debug!(vm = %vm.name, "cc: cannot connect to {}: {e}", path.display());
                }
                Duration::from_millis(500).saturating_mul(failures.min(10))
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// Serves every agent that connects to a `cc listen` port.
pub(crate) async fn accept(cc: Cc, ns: String, listener: tokio::net::TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let via = Via::Tcp {
                    namespace: ns.clone(),
                    peer,
                };
                tokio::spawn(session::serve(cc.clone(), stream, via));
            }
            Err(e) => {
                warn!(namespace = %ns, "cc: accept: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
