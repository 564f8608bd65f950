//! A VM's screen and serial console joined to a page's websocket.
//!
//! Where the bytes come from is behind [`Doors`]: [`DaemonDoors`] opens
//! the daemon's VNC port of the VM (`vm info` `vnc_port`) and its serial
//! relay over the command socket, both open to a member of group
//! `minimega`, never QEMU's own sockets (root's).

use super::link::Link;
use crate::command::BoxFuture;
use crate::sock::client::SocketClient;
use crate::web::lines;
use crate::web::tables;
use crate::web::viewonly::ViewOnly;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
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

/// The daemon's own doors, what a member of group `minimega` may open:
/// the VM's VNC port (`vm info` `vnc_port`, on the node that runs it, as
/// miniweb joins `<host>:<vnc_port>`) and its serial relay over the
/// command socket (as `minimega -console VM`; the daemon reaches a VM of
/// another node itself). The relay takes any number of viewers.
pub struct DaemonDoors {
    pub link: Arc<Link>,
    /// The daemon's command socket.
    pub socket: PathBuf,
    /// This node's name (`vm info` host).
    pub host: String,
    /// Where this node's VNC ports listen (the daemon's `-vncaddr`);
    /// None: loopback, then the node's name.
    pub vnc_addr: Option<IpAddr>,
}

impl DaemonDoors {
    /// The VM's host and VNC port.
    async fn vnc_port(&self, ns: &str, vm: &str) -> Result<(String, u16), String> {
        let line = lines::vm_where(ns, vm).map_err(|e| e.to_string())?;
        let t = tables::merge(&self.link.exec(&line).await?);
        let col = |n: &str| t.columns.iter().position(|c| c == n);
        let (Some(state), Some(port)) = (col("state"), col("vnc_port")) else {
            return Err(format!("no VM named {vm} in namespace {ns}"));
        };
        let row = t
            .rows
            .first()
            .ok_or_else(|| format!("no VM named {vm} in namespace {ns}"))?;
        if !matches!(row[state].as_str(), "RUNNING" | "PAUSED") {
            return Err(format!("vm not running: {vm} is {}", row[state]));
        }
        let port: u16 = row[port]
            .parse()
            .map_err(|_| format!("vm {vm} has no VNC port"))?;
        Ok((row[0].clone(), port))
    }

    /// Where to reach a VNC port of node `host`, in order of trying.
    fn vnc_addrs(&self, host: &str, port: u16) -> Vec<String> {
        if host != self.host {
            return vec![format!("{host}:{port}")];
        }
        match self.vnc_addr {
            Some(a) => vec![SocketAddr::new(a, port).to_string()],
            None => vec![
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
                format!("{host}:{port}"),
            ],
        }
    }
}

impl Doors for DaemonDoors {
    fn vnc<'a>(&'a self, ns: &'a str, vm: &'a str) -> BoxFuture<'a, Result<Stream, String>> {
        Box::pin(async move {
            let (host, port) = self.vnc_port(ns, vm).await?;
            let mut last = String::new();
            for addr in self.vnc_addrs(&host, port) {
                match tokio::net::TcpStream::connect(&addr).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok(Box::new(s) as Stream);
                    }
                    Err(e) => last = format!("cannot reach {vm}'s VNC port at {addr}: {e}"),
                }
            }
            Err(last)
        })
    }

    fn serial<'a>(
        &'a self,
        ns: &'a str,
        vm: &'a str,
        port: u64,
    ) -> BoxFuture<'a, Result<Stream, String>> {
        Box::pin(async move {
            let client = SocketClient::connect(&self.socket)
                .await
                .map_err(|e| e.to_string())?;
            let (stream, early) = client
                .console(vm, port, ns)
                .await
                .map_err(|e| e.to_string())?;
            let (rd, wr) = tokio::io::split(stream);
            let rd = std::io::Cursor::new(early).chain(rd);
            Ok(Box::new(tokio::io::join(rd, wr)) as Stream)
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
/// tab, a lost network, a suspended laptop) would otherwise hold a VNC
/// connection or a viewer of the daemon's serial relay for good.
const PING: Duration = Duration::from_secs(15);
const SILENT: Duration = Duration::from_secs(45);

/// Why the console closed a page's websocket, for the page to show.
const LOST: &str = "no answer from this page";

/// Joins the websocket to the stream until either side ends or the page
/// stops answering. The VM's bytes go to the page as binary messages; the
/// page's come back either as binary (noVNC) or text (xterm.js).
pub async fn join(ws: Ws, stream: Stream, input: Input) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (wtx, wrx) = ws.split();
    let wtx = tokio::sync::Mutex::new(wtx);
    let start = Instant::now();
    let heard = AtomicU64::new(0);
    let why = {
        let down = down(&mut rd, &wtx);
        let up = up(wrx, &mut wr, input, &heard, start);
        let alive = alive(&wtx, &heard, start);
        tokio::select! {
            _ = down => (None, "the VM's socket closed"),
            _ = up => (None, "the page closed"),
            _ = alive => (Some(LOST), LOST),
        }
    };
    let (why, what) = why;
    debug!(after = ?start.elapsed(), "console closed: {what}");
    drop(rd);
    drop(wr);
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
