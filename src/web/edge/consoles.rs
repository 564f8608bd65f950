//! A VM's screen and serial console joined to a page's websocket.
//!
//! Where the bytes come from is behind [`Doors`]. Today [`QemuSockets`]
//! opens QEMU's own sockets in the VM's folder (`<base>/<id>/vnc`,
//! `<base>/<id>/serialN`), which works where the console can reach that
//! folder (root, the tests). The daemon's VNC port per VM (`vm info`
//! `vnc_port`) and its serial relay over the command socket take that
//! place by another `Doors` implementation, with no change to the pages
//! or the proxies here.

use super::link::Link;
use crate::command::BoxFuture;
use crate::web::lines;
use crate::web::tables;
use crate::web::viewonly::ViewOnly;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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

/// What the page's bytes pass through on the way to the VM.
pub enum Input {
    /// Everything passes.
    Free,
    /// VNC of a viewer: only requests to see.
    ViewOnly(ViewOnly),
    /// A serial console of a viewer: nothing.
    Nothing,
}

/// Joins the websocket to the stream until either side ends. The VM's
/// bytes go to the page as binary messages; the page's come back either
/// as binary (noVNC) or text (xterm.js).
pub async fn join(ws: Ws, stream: Stream, mut input: Input) {
    let (mut wtx, mut wrx) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if wtx
                        .send(Message::Binary(buf[..n].to_vec().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = wtx.close().await;
    };
    let up = async {
        while let Some(Ok(msg)) = wrx.next().await {
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
    };
    tokio::select! {
        _ = down => {}
        _ = up => {}
    }
}
