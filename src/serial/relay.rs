//! One console's relay: the daemon is the one client of the console's
//! source (QEMU's serial socket; later a container's pty) for as long as
//! it lives (connecting again if the connection drops), keeps the recent
//! output and hands it, then the live output, to every viewer; what
//! viewers type goes to the guest, in arrival order.

use super::ring::Ring;
use super::{lock, Viewer, SCROLLBACK};
use crate::command::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};
use tracing::debug;

/// Output chunks a viewer may fall behind by before it skips some.
const BACKLOG: usize = 1024;
/// Typed chunks waiting for the guest.
const INPUT_QUEUE: usize = 256;
/// Between two attempts to reach QEMU's socket.
const RETRY: Duration = Duration::from_millis(500);

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Where a console's bytes come from, opened again whenever the last
/// connection ended.
pub trait Source: Send + Sync + 'static {
    fn open(&self) -> BoxFuture<'_, std::io::Result<(BoxRead, BoxWrite)>>;
    /// For logs.
    fn describe(&self) -> String;
}

/// A unix socket QEMU serves a serial port on (`server=on,wait=off`: one
/// client at a time).
pub struct UnixSocket(pub PathBuf);

impl Source for UnixSocket {
    fn open(&self) -> BoxFuture<'_, std::io::Result<(BoxRead, BoxWrite)>> {
        Box::pin(async move {
            let (r, w) = UnixStream::connect(&self.0).await?.into_split();
            Ok((Box::new(r) as BoxRead, Box::new(w) as BoxWrite))
        })
    }

    fn describe(&self) -> String {
        self.0.display().to_string()
    }
}

struct Shared {
    ring: Ring,
    /// None once closed: viewers see the end.
    tx: Option<broadcast::Sender<Arc<[u8]>>>,
}

pub struct Relay {
    shared: Mutex<Shared>,
    input: mpsc::Sender<Vec<u8>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The last `SCROLLBACK` bytes of a log, to seed a relay that starts on a
/// VM already running (adopted after a daemon restart).
pub(super) fn log_tail(path: &Path) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(SCROLLBACK as u64);
    let mut out = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_ok() {
        let _ = f.take(SCROLLBACK as u64).read_to_end(&mut out);
    }
    out
}

impl Relay {
    /// Starts relaying `source`; `seed` is output from before (a log's
    /// tail), shown to viewers first.
    pub fn start(source: impl Source, seed: &[u8]) -> Arc<Relay> {
        let (tx, _) = broadcast::channel(BACKLOG);
        let (input, input_rx) = mpsc::channel(INPUT_QUEUE);
        let mut ring = Ring::new(SCROLLBACK);
        ring.push(seed);
        let r = Arc::new(Relay {
            shared: Mutex::new(Shared { ring, tx: Some(tx) }),
            input,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(r.clone(), source, input_rx));
        *lock(&r.task) = Some(task);
        r
    }

    fn publish(&self, data: &[u8]) {
        let mut s = lock(&self.shared);
        s.ring.push(data);
        if let Some(tx) = &s.tx {
            let _ = tx.send(Arc::from(data));
        }
    }

    /// A viewer sees the kept output and then everything after it, no byte
    /// twice and none lost: both are taken under the one lock.
    pub fn viewer(&self, vm: &str, port: u64) -> Viewer {
        let s = lock(&self.shared);
        let output = match &s.tx {
            Some(tx) => tx.subscribe(),
            None => {
                // Closed already: a receiver that ends at once.
                let (tx, rx) = broadcast::channel(1);
                drop(tx);
                rx
            }
        };
        Viewer {
            vm: vm.to_string(),
            port,
            replay: s.ring.replay(),
            output,
            input: self.input.clone(),
        }
    }

    pub fn viewer_count(&self) -> usize {
        lock(&self.shared)
            .tx
            .as_ref()
            .map_or(0, |t| t.receiver_count())
    }

    /// The VM's QEMU is gone: every viewer is told, the task ends.
    pub fn close(&self) {
        lock(&self.shared).tx = None;
        if let Some(t) = lock(&self.task).take() {
            t.abort();
        }
    }
}

async fn run(relay: Arc<Relay>, source: impl Source, mut input: mpsc::Receiver<Vec<u8>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let (mut rd, mut wr) = match source.open().await {
            Ok(s) => s,
            Err(e) => {
                debug!("console {}: {e}; trying again", source.describe());
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => relay.publish(&buf[..n]),
                },
                typed = input.recv() => match typed {
                    Some(data) => {
                        if wr.write_all(&data).await.is_err() {
                            break;
                        }
                    }
                    None => return,
                },
            }
        }
        debug!("console {}: hung up; connecting again", source.describe());
        tokio::time::sleep(RETRY).await;
    }
}
