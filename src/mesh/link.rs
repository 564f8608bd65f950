//! One linked peer: a reader task that authenticates every frame and hands
//! it to the mesh, and a writer task that sends queued frames, with a
//! heartbeat whenever the link is idle. Silence longer than
//! [`super::DEAD_AFTER`], a bad frame, or a write that stalls ends the link.

use super::auth::Authenticated;
use super::frames::{self, FrameError};
use super::wire::{Kind, Message};
use super::{Mesh, Registered, DEAD_AFTER, HEARTBEAT};
use std::time::Duration;
use tokio::net::TcpStream;
use tracing::warn;

/// A write that takes this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn spawn(
    mesh: Mesh,
    name: String,
    stream: TcpStream,
    authd: Authenticated,
    reg: Registered,
) {
    let (mut rd, mut wr) = stream.into_split();
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
    let sent = counters.clone();

    let writer_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            let m = match tokio::time::timeout(HEARTBEAT, queue.recv()).await {
                Ok(Some(m)) => m,
                // The mesh dropped this link: say goodbye and close.
                Ok(None) => {
                    let _ = tokio::time::timeout(
                        WRITE_TIMEOUT,
                        frames::write(&mut wr, &mut sealer, &Message::Bye),
                    )
                    .await;
                    return;
                }
                Err(_) => Message::Heartbeat,
            };
            let written =
                tokio::time::timeout(WRITE_TIMEOUT, frames::write(&mut wr, &mut sealer, &m)).await;
            if let Ok(Ok(n)) = written {
                sent.sent(m.kind(), n);
            } else {
                writer_stop.notify_one();
                return;
            }
        }
    });

    tokio::spawn(async move {
        let why = loop {
            tokio::select! {
                _ = stop.notified() => break "closed".to_string(),
                r = frames::read_within(&mut rd, &mut opener, super::wire::MAX_PAYLOAD, DEAD_AFTER) => match r {
                    Ok((Message::Bye, raw)) => {
                        counters.received(Kind::Bye, frames::frame_len(raw.len()));
                        break "the peer hung up".to_string();
                    }
                    Ok((m, raw)) => {
                        counters.received(m.kind(), frames::frame_len(raw.len()));
                        if let Err(e) = mesh.handle(&name, m) {
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
