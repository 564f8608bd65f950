//! The daemon's end of an agent's file server (`cc mount`). The agent
//! serves its whole file system as 9P2000; the stream rides in UFS
//! messages. Here a TCP port stands for it: each connection to the port is
//! one 9P session (the agent is told OPEN before its first bytes and CLOSE
//! after its last), one at a time, as a mount needs. One task per agent
//! connection owns the port and the connection; it ends with the agent's
//! connection, and the port with it.

use super::ron::{self, Message};
use super::server::Task;
use super::transport::Out;
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum UfsError {
    #[error("no such client: {0}")]
    NoClient(String),
    #[error("ufs is already running for {0}")]
    Running(String),
    #[error("ufs is not running")]
    NotRunning,
    #[error("cannot listen on {addr}: {why}")]
    Listen { addr: String, why: String },
    #[error("the connection to {0}'s agent ended")]
    Gone(String),
}

enum Req {
    /// UFS DATA bytes from the agent.
    Data(Vec<u8>),
    Listen {
        bind: IpAddr,
        allow: Option<IpAddr>,
        reply: oneshot::Sender<Result<u16, UfsError>>,
    },
    Close(oneshot::Sender<Result<(), UfsError>>),
    Accepted(TcpStream, SocketAddr),
    /// From the connection's reader: bytes, or its end.
    Read(u64, Vec<u8>),
    Ended(u64),
}

/// What the commands hold: cheap to clone, dead once the agent is gone.
#[derive(Clone, Debug)]
pub struct Handle {
    tx: mpsc::Sender<Req>,
    uuid: String,
}

impl Handle {
    async fn ask<T>(
        &self,
        req: impl FnOnce(oneshot::Sender<Result<T, UfsError>>) -> Req,
    ) -> Result<T, UfsError> {
        let (reply, rx) = oneshot::channel();
        let gone = || UfsError::Gone(self.uuid.clone());
        self.tx.send(req(reply)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Opens the port standing for the agent's file system, on `bind`
    /// (loopback for a mount here); connections from other addresses than
    /// `allow` (when given) are refused. The port.
    pub async fn listen(&self, bind: IpAddr, allow: Option<IpAddr>) -> Result<u16, UfsError> {
        self.ask(|reply| Req::Listen { bind, allow, reply }).await
    }

    /// Closes the port and the session on it, if any.
    pub async fn close(&self) -> Result<(), UfsError> {
        self.ask(Req::Close).await
    }

    /// Whether both are the same agent connection's.
    pub fn same(&self, other: &Handle) -> bool {
        self.tx.same_channel(&other.tx)
    }

    /// UFS bytes the agent sent. Waits when the relay is busy.
    pub(crate) async fn piece(&self, mode: i64, bytes: Vec<u8>) {
        if mode == ron::ufs::DATA {
            let _ = self.tx.send(Req::Data(bytes)).await;
        } else {
            debug!(
                "cc: ufs of {}: mode {mode} from the agent ignored",
                self.uuid
            );
        }
    }
}

/// Starts the relay of an agent just connected. `wire_uuid` is the UUID as
/// the agent knows itself.
pub(crate) fn start(out: mpsc::Sender<Out>, uuid: &str, wire_uuid: &str) -> (Handle, Option<Task>) {
    let (tx, rx) = mpsc::channel(64);
    let relay = Relay {
        out,
        uuid: uuid.to_string(),
        wire_uuid: wire_uuid.to_string(),
        tx: tx.clone(),
        port: None,
        conn: None,
        next_conn: 1,
    };
    let task = Task::spawn(relay.run(rx));
    (
        Handle {
            tx,
            uuid: uuid.to_string(),
        },
        task,
    )
}

struct Conn {
    id: u64,
    /// Bytes for the socket; dropped to end the connection.
    to_sock: mpsc::UnboundedSender<Vec<u8>>,
    _reader: Option<Task>,
}

struct Relay {
    out: mpsc::Sender<Out>,
    uuid: String,
    wire_uuid: String,
    tx: mpsc::Sender<Req>,
    /// The port and the task accepting on it.
    port: Option<(u16, Option<Task>)>,
    conn: Option<Conn>,
    next_conn: u64,
}

impl Relay {
    async fn run(mut self, mut rx: mpsc::Receiver<Req>) {
        while let Some(req) = rx.recv().await {
            self.handle(req).await;
        }
    }

    async fn send(&self, mode: i64, data: Vec<u8>) {
        let msg = Message {
            kind: ron::kind::UFS,
            uuid: self.wire_uuid.clone(),
            ufs_mode: mode,
            tunnel: data,
            ..Message::default()
        };
        // A closed outbox means the session is ending; this task goes too.
        let _ = self.out.send(Out::Msg(Box::new(msg))).await;
    }

    async fn handle(&mut self, req: Req) {
        match req {
            Req::Data(bytes) => match &self.conn {
                Some(c) => {
                    let _ = c.to_sock.send(bytes);
                }
                None => debug!("cc: ufs of {}: data with no connection dropped", self.uuid),
            },
            Req::Listen { bind, allow, reply } => {
                let r = match &self.port {
                    Some(_) => Err(UfsError::Running(self.uuid.clone())),
                    None => self.listen(bind, allow),
                };
                let _ = reply.send(r);
            }
            Req::Close(reply) => {
                let r = match self.port.take() {
                    Some((port, _)) => {
                        info!("cc: ufs of {}: port {port} closed", self.uuid);
                        self.end_conn().await;
                        Ok(())
                    }
                    None => Err(UfsError::NotRunning),
                };
                let _ = reply.send(r);
            }
            Req::Accepted(stream, peer) => {
                if self.conn.is_some() {
                    // One 9P session at a time: the agent serves one.
                    warn!(
                        "cc: ufs of {}: refusing {peer}: a file system session is open",
                        self.uuid
                    );
                    return;
                }
                let id = self.next_conn;
                self.next_conn += 1;
                info!("cc: ufs of {}: session {id} from {peer}", self.uuid);
                self.send(ron::ufs::OPEN, Vec::new()).await;
                self.conn = Some(self.connection(id, stream));
            }
            Req::Read(id, data) => {
                if self.conn.as_ref().is_some_and(|c| c.id == id) {
                    self.send(ron::ufs::DATA, data).await;
                }
            }
            Req::Ended(id) => {
                if self.conn.as_ref().is_some_and(|c| c.id == id) {
                    self.end_conn().await;
                }
            }
        }
    }

    async fn end_conn(&mut self) {
        if self.conn.take().is_some() {
            self.send(ron::ufs::CLOSE, Vec::new()).await;
        }
    }

    /// Binds at once, so a failure is the command's error.
    fn listen(&mut self, bind: IpAddr, allow: Option<IpAddr>) -> Result<u16, UfsError> {
        let l = std::net::TcpListener::bind((bind, 0))
            .and_then(|l| {
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)
            })
            .map_err(|e| UfsError::Listen {
                addr: format!("{bind}:0"),
                why: e.to_string(),
            })?;
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        let tx = self.tx.clone();
        let uuid = self.uuid.clone();
        let accept = Task::spawn(async move {
            loop {
                let Ok((s, peer)) = l.accept().await else {
                    return;
                };
                if allow.is_some_and(|a| a != peer.ip()) {
                    warn!("cc: ufs of {uuid}: refusing {peer}: not the mounting host");
                    continue;
                }
                if tx.send(Req::Accepted(s, peer)).await.is_err() {
                    return;
                }
            }
        });
        info!("cc: ufs of {}: listening on {bind}:{port}", self.uuid);
        self.port = Some((port, accept));
        Ok(port)
    }

    fn connection(&self, id: u64, stream: TcpStream) -> Conn {
        let (mut rd, mut wr) = stream.into_split();
        let (to_sock, mut from_agent) = mpsc::unbounded_channel::<Vec<u8>>();
        let tx = self.tx.clone();
        let reader = Task::spawn(async move {
            let writer = async move {
                while let Some(b) = from_agent.recv().await {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                let _ = wr.shutdown().await;
            };
            let reader = async {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tx.send(Req::Read(id, buf[..n].to_vec())).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = tx.send(Req::Ended(id)).await;
            };
            // Either side ending ends the session: a mount gone, or the
            // relay dropping this connection.
            tokio::select! {
                _ = writer => {}
                _ = reader => {}
            }
        });
        Conn {
            id,
            to_sock,
            _reader: reader,
        }
    }
}
