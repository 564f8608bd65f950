//! A VM's VNC port: a TCP listener whose every connection is joined to
//! QEMU's unix socket. Server-to-client bytes are copied as they come;
//! client-to-server bytes are copied too and, beside the copy, followed
//! message by message for the kb recording and for ClientCutText, which is
//! typed into the guest as the original does. A client stream the parser
//! cannot follow is still relayed, only no longer recorded.

use super::{lock, Display, Vnc, VncError};
use crate::console::keys;
use crate::console::rfb::{ClientMessage, ClientStream, Limits};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// Bytes read at a time, each way.
const CHUNK: usize = 64 * 1024;

/// Binds the VM's port: `preferred` (its previous number) when it is free,
/// else the next the pool offers. Nothing is left bound on an error.
pub(super) fn bind(vnc: &Vnc, preferred: Option<u16>) -> Result<StdListener, VncError> {
    let inner = &vnc.0;
    let mut cursor = lock(&inner.cursor);
    let held = vnc.ports_held();
    let candidates = inner.pool.candidates(preferred, &held, *cursor);
    for port in candidates {
        match listen(inner.settings.addr, port) {
            Ok(l) => {
                let got = l.local_addr().map(|a| a.port()).unwrap_or(port);
                *cursor = inner.pool.advance(got);
                return Ok(l);
            }
            Err(e) if e.kind() == ErrorKind::AddrInUse => continue,
            Err(source) => {
                return Err(VncError::Listen {
                    addr: describe(inner.settings.addr, port),
                    source,
                })
            }
        }
    }
    Err(VncError::Exhausted {
        pool: inner.pool.describe(),
        held: held.len(),
    })
}

fn describe(addr: Option<IpAddr>, port: u16) -> String {
    match addr {
        Some(a) => SocketAddr::new(a, port).to_string(),
        None => format!("every address, port {port}"),
    }
}

/// Every address means IPv6 and IPv4 on one socket where the host has
/// IPv6 (Linux maps IPv4 onto it unless told otherwise), IPv4 alone where
/// it has not.
fn listen(addr: Option<IpAddr>, port: u16) -> std::io::Result<StdListener> {
    let l = match addr {
        Some(a) => StdListener::bind((a, port))?,
        None => match StdListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::AddrInUse => return Err(e),
            Err(_) => StdListener::bind((Ipv4Addr::UNSPECIFIED, port))?,
        },
    };
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Accepts until the VM's display is closed (which aborts this task and,
/// with it, every connection).
pub(super) async fn serve(listener: TcpListener, d: Arc<Display>, vnc: Vnc) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    info!(vm = %d.name, "vnc connection from {peer}");
                    let (d, vnc) = (d.clone(), vnc.clone());
                    conns.spawn(async move {
                        if let Err(e) = relay(tcp, &d, &vnc).await {
                            debug!(vm = %d.name, "vnc connection from {peer} ended: {e}");
                        }
                        info!(vm = %d.name, "vnc connection from {peer} closed");
                    });
                }
                Err(e) => {
                    // Out of descriptors, typically: wait rather than spin.
                    warn!(vm = %d.name, "vnc port {}: cannot accept: {e}", d.port);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn relay(tcp: TcpStream, d: &Arc<Display>, vnc: &Vnc) -> std::io::Result<()> {
    let unix = UnixStream::connect(&d.socket).await?;
    let _ = tcp.set_nodelay(true);
    let (mut ur, mut uw) = unix.into_split();
    let (mut tr, mut tw) = tcp.into_split();
    let down = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = ur.read(&mut buf).await?;
            if n == 0 {
                return tw.shutdown().await;
            }
            tw.write_all(&buf[..n]).await?;
        }
    };
    let up = async {
        let mut parser = Some(ClientStream::new(d.password.is_some(), Limits::default()));
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = tr.read(&mut buf).await?;
            if n == 0 {
                return uw.shutdown().await;
            }
            uw.write_all(&buf[..n]).await?;
            if let Some(p) = parser.as_mut() {
                p.push(&buf[..n]);
                if !follow(p, d, vnc) {
                    parser = None;
                }
            }
        }
    };
    // Either side hanging up ends the connection.
    tokio::select! {
        r = down => r,
        r = up => r,
    }
}

/// Handles every whole message the client sent; false once the stream can
/// no longer be followed.
fn follow(p: &mut ClientStream, d: &Arc<Display>, vnc: &Vnc) -> bool {
    loop {
        match p.next_message() {
            Ok(None) => return true,
            Ok(Some(msg)) => {
                if let ClientMessage::CutText(bytes) = &msg {
                    paste(d, vnc, bytes);
                }
                d.record(&msg);
            }
            Err(e) if e.is_fatal() => {
                warn!(vm = %d.name, "vnc client stream not followed any further (still relayed): {e}");
                return false;
            }
            Err(e) => debug!(vm = %d.name, "vnc client message skipped: {e}"),
        }
    }
}

/// A ClientCutText: the text typed as keystrokes, in the background.
fn paste(d: &Arc<Display>, vnc: &Vnc, bytes: &[u8]) {
    let text = keys::cut_text_string(bytes);
    if text.is_empty() {
        return;
    }
    info!(vm = %d.name, "typing {} characters of pasted text", text.chars().count());
    let (d, vnc) = (d.clone(), vnc.clone());
    tokio::spawn(async move {
        if let Err(e) = vnc.type_into(&d, &text).await {
            warn!(vm = %d.name, "cannot type pasted text: {e}");
        }
    });
}
