//! One linked peer: a reader task that authenticates every frame and hands
//! it to the mesh, and a writer task that sends queued frames, with a
//! heartbeat whenever the link is idle. Silence longer than
//! [`super::DEAD_AFTER`], a bad frame, or a write that stalls ends the link.
//! The writer seals whatever is queued into one buffer and writes it at
//! once; the reader reads through a buffer, so a burst of small frames
//! costs a system call or two, not two per frame.

use super::auth::Authenticated;
use super::frames::{self, FrameError, Received};
use super::stats::Counters;
use super::wire::{Kind, Message, Sealer};
use super::{Mesh, Registered, DEAD_AFTER, HEARTBEAT};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc::error::TryRecvError;
use tracing::warn;

/// A write that takes this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames sealed into one write, at most (a larger frame goes alone).
const BATCH: usize = 256 << 10;
/// The reader's buffer.
const READ_BUFFER: usize = 32 << 10;

pub(super) fn spawn(
    mesh: Mesh,
    name: String,
    stream: TcpStream,
    authd: Authenticated,
    reg: Registered,
) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(READ_BUFFER, rd);
    let Authenticated {
        tx: mut sealer,
        rx: mut opener,
        ..
    } = authd;
    let Registered {
        id,
        mut queue,
        stop,
        counters,
    } = reg;

    let writer_stop = stop.clone();
    let sent = counters.clone();
    let peer = name.clone();
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let first = match tokio::time::timeout(HEARTBEAT, queue.recv()).await {
                Ok(m) => m,
                Err(_) => Some(Message::Heartbeat),
            };
            // `None`: the mesh dropped this link; say goodbye and close.
            let mut closing = first.is_none();
            buf.clear();
            if let Some(m) = first {
                seal(&mut sealer, &m, &mut buf, &sent, &peer);
                while buf.len() < BATCH {
                    match queue.try_recv() {
                        Ok(m) => seal(&mut sealer, &m, &mut buf, &sent, &peer),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            closing = true;
                            break;
                        }
                    }
                }
            }
            if closing {
                seal(&mut sealer, &Message::Bye, &mut buf, &sent, &peer);
            }
            let written = tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&buf)).await;
            if closing || !matches!(written, Ok(Ok(()))) {
                writer_stop.notify_one();
                return;
            }
            // One large answer must not pin its buffer for the link's life.
            if buf.capacity() > 4 * BATCH {
                buf = Vec::new();
            }
        }
    });

    tokio::spawn(async move {
        let why = loop {
            tokio::select! {
                _ = stop.notified() => break "closed".to_string(),
                r = frames::read_within(&mut rd, &mut opener, super::wire::MAX_PAYLOAD, DEAD_AFTER, &counters) => match r {
                    Ok(Received { msg: Message::Bye, .. }) => break "the peer hung up".to_string(),
                    Ok(Received { msg, .. }) => {
                        if let Err(e) = mesh.handle(&name, msg) {
                            warn!("dropping link to {name}: {e}");
                            break e;
                        }
                    }
                    Err(FrameError::Timeout(t)) => {
                        warn!("no heartbeat from {name} for {t:?}; dropping the link");
                        break format!("silent for {t:?}");
                    }
                    Err(FrameError::Wire(e)) => {
                        warn!("dropping link to {name}: {e}");
                        break e.to_string();
                    }
                    Err(e) => break e.to_string(),
                },
            }
        };
        mesh.link_down(&name, id, &why);
    });
}

/// Seals one frame into the batch. A message that cannot be framed (too
/// large, a name too long) is dropped with a warning; the link stays.
fn seal(sealer: &mut Sealer, m: &Message, buf: &mut Vec<u8>, counters: &Counters, peer: &str) {
    let kind: Kind = m.kind();
    match sealer.seal_into(m, buf) {
        Ok(n) => counters.sent(kind, n),
        Err(e) => warn!("not sending a {} frame to {peer}: {e}", kind.name()),
    }
}
