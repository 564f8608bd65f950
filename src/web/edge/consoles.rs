//! A VM's screen and serial console joined to a page's websocket.
//!
//! Where the bytes come from is behind [`Doors`]. Today [`QemuSockets`]
//! opens QEMU's own sockets in the VM's folder (`<base>/<id>/vnc`,
//! `<base>/<id>/serialN`), which works where the console can reach that
//! folder (root, the tests). The daemon's VNC port per VM (`vm info`
//! `vnc_port`) and its serial relay over the command socket take that
//! place by another `Doors` implementation, with no change to the pages
//! or the proxies here.

use super::claim::Claim;
use super::link::Link;
use crate::command::BoxFuture;
use crate::web::lines;
use crate::web::tables;
use crate::web::viewonly::ViewOnly;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

/// A byte stream both ways.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Stream = Box<dyn Io>;

/// How the console reaches a VM's screen and serial ports.
pub trait Doors: Send + Sync {
    /// The VM's RFB stream, from its first byte (the server's version).
    fn vnc<'a>(&'a self, ns: &'a str, vm: &'a str) -> BoxFuture<'a, Result<Stream, String>>;
    /// Serial port `port` of the VM.
    fn serial<'a>(
        &'a self,
        ns: &'a str,
        vm: &'a str,
        port: u64,
    ) -> BoxFuture<'a, Result<Stream, String>>;
}

/// QEMU's sockets in the VM's folder under the daemon's base directory.
pub struct QemuSockets {
    pub link: Arc<Link>,
    pub base: PathBuf,
    pub host: String,
}

/// What the console needs to know of a VM to open its sockets.
struct Located {
    id: String,
    serial_ports: u64,
}

impl QemuSockets {
    async fn locate(&self, ns: &str, vm: &str) -> Result<Located, String> {
        let line = lines::vm_where(ns, vm).map_err(|e| e.to_string())?;
        let t = tables::merge(&self.link.exec(&line).await?);
        let col = |n: &str| t.columns.iter().position(|c| c == n);
        let (Some(id), Some(state), Some(sp)) = (col("id"), col("state"), col("serial-ports"))
        else {
            return Err(format!("no VM named {vm} in namespace {ns}"));
        };
        let row =
            t.rows
                .iter()
                .find(|r| r[0] == self.host)
                .ok_or_else(|| match t.rows.first() {
                    Some(r) => format!(
                        "vm {vm} runs on {}; this console reaches only the VMs of {}",
                        r[0], self.host
                    ),
                    None => format!("no VM named {vm} in namespace {ns}"),
                })?;
        if !matches!(row[state].as_str(), "RUNNING" | "PAUSED") {
            return Err(format!("vm not running: {vm} is {}", row[state]));
        }
        Ok(Located {
            id: row[id].clone(),
            serial_ports: row[sp].parse().unwrap_or(0),
        })
    }
}

async fn connect(path: PathBuf) -> Result<Stream, String> {
    let s = tokio::net::UnixStream::connect(&path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Ok(Box::new(s))
}

impl Doors for QemuSockets {
    fn vnc<'a>(&'a self, ns: &'a str, vm: &'a str) -> BoxFuture<'a, Result<Stream, String>> {
        Box::pin(async move {
            let at = self.locate(ns, vm).await?;
            connect(self.base.join(&at.id).join("vnc")).await
        })
    }

    fn serial<'a>(
        &'a self,
        ns: &'a str,
        vm: &'a str,
        port: u64,
    ) -> BoxFuture<'a, Result<Stream, String>> {
        Box::pin(async move {
            let at = self.locate(ns, vm).await?;
            if port >= at.serial_ports {
                return Err(format!(
                    "vm {vm} has no serial port {port} (vm config serial-ports is {})",
                    at.serial_ports
                ));
            }
            connect(self.base.join(&at.id).join(format!("serial{port}"))).await
        })
    }
}

pub type Ws = WebSocketStream<TokioIo<Upgraded>>;
type WsTx = SplitSink<Ws, Message>;
type WsRx = SplitStream<Ws>;

/// What the page's bytes pass through on the way to the VM.
pub enum Input {
    /// Everything passes.
    Free,
    /// VNC of a viewer: only requests to see.
    ViewOnly(ViewOnly),
    /// A serial console of a viewer: nothing.
    Nothing,
}

/// How often the console asks a quiet page whether it is still there, and
/// how long it waits for any answer before it lets the VM's socket go. A
/// page that vanished without closing its websocket (a frozen or cached
/// tab, a lost network, a suspended laptop) would otherwise hold a serial
/// port, which QEMU serves to one client at a time, for good.
const PING: Duration = Duration::from_secs(15);
const SILENT: Duration = Duration::from_secs(45);

/// Why the console closed a page's websocket, for the page to show.
const TAKEN: &str = "opened in another page";
const LOST: &str = "no answer from this page";

/// Joins the websocket to the stream until either side ends, the page
/// stops answering, or (with a claim) a newer page claims the port. The
/// VM's bytes go to the page as binary messages; the page's come back
/// either as binary (noVNC) or text (xterm.js). The VM's socket is closed
/// before the claim is given up, so the next page finds the port free.
pub async fn join(ws: Ws, stream: Stream, input: Input, claim: Option<Claim>) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (wtx, wrx) = ws.split();
    let wtx = tokio::sync::Mutex::new(wtx);
    let start = Instant::now();
    let heard = AtomicU64::new(0);
    let mut claim = claim;
    let why = {
        let down = down(&mut rd, &wtx);
        let up = up(wrx, &mut wr, input, &heard, start);
        let alive = alive(&wtx, &heard, start);
        let taken = async {
            match claim.as_mut() {
                Some(c) => {
                    let _ = (&mut c.kicked).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = down => (None, "the VM's socket closed"),
            _ = up => (None, "the page closed"),
            _ = alive => (Some(LOST), LOST),
            _ = taken => (Some(TAKEN), TAKEN),
        }
    };
    let (why, what) = why;
    debug!(after = ?start.elapsed(), "console closed: {what}");
    // The VM's socket first, then the claim: the next page waits on it.
    drop(rd);
    drop(wr);
    drop(claim);
    if let Some(reason) = why {
        let mut wtx = wtx.into_inner();
        let frame = CloseFrame {
            code: CloseCode::Library(4000),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(PING, wtx.send(Message::Close(Some(frame)))).await;
    }
}

/// The VM's bytes to the page.
async fn down<R: AsyncRead + Unpin>(rd: &mut R, wtx: &tokio::sync::Mutex<WsTx>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let msg = Message::Binary(buf[..n].to_vec().into());
                if wtx.lock().await.send(msg).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = wtx.lock().await.close().await;
}

/// The page's bytes to the VM, through what `input` lets pass. Every
/// message, pongs included, counts as the page being there.
async fn up<W: AsyncWrite + Unpin>(
    mut wrx: WsRx,
    wr: &mut W,
    mut input: Input,
    heard: &AtomicU64,
    start: Instant,
) {
    while let Some(Ok(msg)) = wrx.next().await {
        heard.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        let data: Vec<u8> = match msg {
            Message::Binary(b) => b.to_vec(),
            Message::Text(t) => t.as_bytes().to_vec(),
            Message::Close(_) => break,
            _ => continue,
        };
        let pass = match &mut input {
            Input::Free => data,
            Input::Nothing => continue,
            Input::ViewOnly(v) => match v.filter(&data) {
                Ok(d) => d,
                Err(e) => {
                    debug!("viewer's VNC stream: {e}");
                    break;
                }
            },
        };
        if !pass.is_empty() && wr.write_all(&pass).await.is_err() {
            break;
        }
    }
}

/// Pings the page and ends when nothing came back for [`SILENT`]. Also
/// ends when a write to the VM blocks that long, as `up` then reads
/// nothing (the page's keys would go nowhere anyway), or when a send to
/// the page does.
async fn alive(wtx: &tokio::sync::Mutex<WsTx>, heard: &AtomicU64, start: Instant) {
    let mut tick = tokio::time::interval(PING);
    tick.tick().await;
    loop {
        tick.tick().await;
        let quiet = start
            .elapsed()
            .saturating_sub(Duration::from_millis(heard.load(Ordering::Relaxed)));
        if quiet >= SILENT {
            return;
        }
        // The lock too: `down` holds it while a page that stopped reading
        // leaves its send unfinished.
        let ping = async {
            let mut tx = wtx.lock().await;
            tx.send(Message::Ping(Vec::new().into())).await
        };
        if !matches!(tokio::time::timeout(SILENT, ping).await, Ok(Ok(()))) {
            return;
        }
    }
}
