//! The console's I/O: the listener (systemd's socket, or one of its own),
//! TLS, HTTP/1.1 and websockets, the D-Bus link and the consoles.

pub mod consoles;
mod http;
pub mod hub;
pub mod link;
mod tls;

use crate::config::Bus;
use crate::web::passwd::Users;
use crate::web::session::Sessions;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

#[derive(Debug, Error)]
pub enum WebError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot read the password file {path}: {why}")]
    Passwords { path: PathBuf, why: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot reach the daemon: {0}")]
    Daemon(String),
}

pub struct Options {
    pub addr: String,
    pub passwords: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub bus: Bus,
    /// The daemon's base directory (its command socket, for the serial
    /// consoles).
    pub base: PathBuf,
    /// Where this node's VNC ports listen (the daemon's `-vncaddr`).
    pub vnc_addr: Option<std::net::IpAddr>,
    /// How often tables refresh when no signal says anything changed.
    pub refresh: Duration,
    pub novnc: PathBuf,
    pub xterm: PathBuf,
    pub xterm_lib: PathBuf,
}

/// What every request handler shares.
pub struct State {
    pub users: Users,
    pub sessions: Mutex<Sessions>,
    pub link: Arc<link::Link>,
    pub hub: Arc<hub::Hub>,
    pub doors: Box<dyn consoles::Doors>,
    pub secure: bool,
    pub novnc: PathBuf,
    pub xterm: PathBuf,
    pub xterm_lib: PathBuf,
    /// xterm.js as the browser gets it, made once.
    pub xterm_js: OnceLock<Result<String, String>>,
}

/// The listening socket systemd passed (`LISTEN_FDS`), if any.
fn activated() -> Option<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // SAFETY: systemd hands fd 3 to this process as a listening socket.
    let l = unsafe { std::net::TcpListener::from_raw_fd(3) };
    l.set_nonblocking(true).ok()?;
    Some(l)
}

pub async fn run(opts: Options) -> Result<(), WebError> {
    let text = std::fs::read_to_string(&opts.passwords).map_err(|e| WebError::Passwords {
        path: opts.passwords.clone(),
        why: e.to_string(),
    })?;
    let users = Users::parse(&text).map_err(|e| WebError::Passwords {
        path: opts.passwords.clone(),
        why: e.to_string(),
    })?;
    let acceptor = match (&opts.cert, &opts.key) {
        (Some(c), Some(k)) => Some(tls::acceptor(c, k).map_err(WebError::Tls)?),
        (None, None) => None,
        _ => return Err(WebError::Tls("give both -cert and -key".into())),
    };
    let listener = match activated() {
        Some(l) => TcpListener::from_std(l).map_err(|source| WebError::Listen {
            addr: "the socket systemd passed".into(),
            source,
        })?,
        None => TcpListener::bind(&opts.addr)
            .await
            .map_err(|source| WebError::Listen {
                addr: opts.addr.clone(),
                source,
            })?,
    };
    let link = Arc::new(
        link::Link::connect(&opts.bus)
            .await
            .map_err(WebError::Daemon)?,
    );
    let host = link.hostname().await.map_err(WebError::Daemon)?;
    let hub = hub::Hub::new(link.clone(), host.clone(), opts.refresh);
    match link.signals().await {
        Ok(rx) => {
            tokio::spawn(hub.clone().relay(rx));
        }
        Err(e) => warn!(
            "no signals from the daemon ({e}); tables refresh every {:?}",
            opts.refresh
        ),
    }
    let state = Arc::new(State {
        users,
        sessions: Mutex::default(),
        doors: Box::new(consoles::DaemonDoors {
            link: link.clone(),
            socket: opts.base.join("minimega"),
            host,
            vnc_addr: opts.vnc_addr,
        }),
        link,
        hub,
        secure: acceptor.is_some(),
        novnc: opts.novnc,
        xterm: opts.xterm,
        xterm_lib: opts.xterm_lib,
        xterm_js: OnceLock::new(),
    });
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(
        "listening on {}://{local} ({} users)",
        if state.secure { "https" } else { "http" },
        state.users.len()
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(a) => match a.accept(tcp).await {
                    Ok(s) => serve(state, TokioIo::new(s), peer).await,
                    Err(e) => debug!(%peer, "TLS handshake: {e}"),
                },
                None => serve(state, TokioIo::new(tcp), peer).await,
            }
        });
    }
}

async fn serve<I>(state: Arc<State>, io: I, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| http::handle(state.clone(), req));
    if let Err(e) = http1::Builder::new()
        .serve_connection(io, svc)
        .with_upgrades()
        .await
    {
        debug!(%peer, "connection: {e}");
    }
}
