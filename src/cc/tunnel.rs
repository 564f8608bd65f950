//! The daemon's end of one agent's minitunnel (`cc tunnel`, `cc rtunnel`):
//! one task per agent connection owns the stream, its forwards (a
//! listening port here for each `cc tunnel`) and its connections; the
//! session feeds it the TUNNEL bytes the agent sends, and the commands
//! reach it through a [`Handle`]. When the agent's connection ends the
//! task is dropped, and with it every listener and connection it made.

use super::minitunnel::{self as mt, kind, Forward, TunnelMessage};
use super::ron::{self, Message};
use super::server::Task;
use super::transport::Out;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info, warn};

/// How long the agent has to answer a `cc rtunnel`.
pub const REVERSE_WAIT: Duration = Duration::from_secs(30);
/// Dialing a reverse tunnel's destination from here.
pub const DIAL_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TunnelError {
    #[error("no such client: {0}")]
    NoClient(String),
    /// The agent has not answered the tunnel's handshake (yet, or ever: an
    /// agent without tunnels).
    #[error("tunnel has not been initialized for {0}")]
    NotReady(String),
    #[error("listen tcp :{port}: {why}")]
    Listen { port: u16, why: String },
    #[error("forwarder with ID {0} not found")]
    NoForward(i64),
    #[error("the connection to {0}'s agent ended")]
    Gone(String),
    #[error("{uuid}: {why}")]
    Agent { uuid: String, why: String },
    #[error("{0}'s agent did not answer within {REVERSE_WAIT:?}")]
    NoAnswer(String),
}

enum Req {
    /// TUNNEL bytes from the agent.
    Piece(Vec<u8>),
    Forward {
        fwd: Forward,
        reply: oneshot::Sender<Result<i64, TunnelError>>,
    },
    List(oneshot::Sender<Result<Vec<(i64, Forward)>, TunnelError>>),
    Close {
        id: i64,
        reply: oneshot::Sender<Result<(), TunnelError>>,
    },
    Reverse {
        fwd: Forward,
        reply: oneshot::Sender<Result<(), TunnelError>>,
    },
    /// A connection to a forward's port.
    Accepted {
        fid: i64,
        stream: TcpStream,
    },
    /// From a connection's task: bytes read, or its end (why).
    Read {
        tid: i64,
        data: Vec<u8>,
    },
    Ended {
        tid: i64,
        why: String,
    },
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
        req: impl FnOnce(oneshot::Sender<Result<T, TunnelError>>) -> Req,
    ) -> Result<T, TunnelError> {
        let (reply, rx) = oneshot::channel();
        let gone = || TunnelError::Gone(self.uuid.clone());
        self.tx.send(req(reply)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// `cc tunnel VM SRC HOST DST`: listen on SRC here; each connection
    /// is opened by the agent to HOST:DST. The forward's id.
    pub async fn forward(&self, fwd: Forward) -> Result<i64, TunnelError> {
        self.ask(|reply| Req::Forward { fwd, reply }).await
    }

    pub async fn list(&self) -> Result<Vec<(i64, Forward)>, TunnelError> {
        self.ask(Req::List).await
    }

    pub async fn close(&self, id: i64) -> Result<(), TunnelError> {
        self.ask(|reply| Req::Close { id, reply }).await
    }

    /// `cc rtunnel SRC HOST DST`: the agent listens on SRC in the guest;
    /// each connection is opened from here to HOST:DST.
    pub async fn reverse(&self, fwd: Forward) -> Result<(), TunnelError> {
        let uuid = self.uuid.clone();
        match tokio::time::timeout(REVERSE_WAIT, self.ask(|reply| Req::Reverse { fwd, reply }))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(TunnelError::NoAnswer(uuid)),
        }
    }

    /// TUNNEL bytes the agent sent. Waits when the tunnel is busy.
    pub(crate) async fn piece(&self, bytes: Vec<u8>) {
        let _ = self.tx.send(Req::Piece(bytes)).await;
    }
}

/// Starts the tunnel of an agent just connected: sends the handshake
/// (the daemon dials, as minimega does). `wire_uuid` is the UUID as the
/// agent knows itself; `uuid` the VM's.
pub(crate) fn start(out: mpsc::Sender<Out>, uuid: &str, wire_uuid: &str) -> (Handle, Option<Task>) {
    let (tx, rx) = mpsc::channel(64);
    let mux = Mux {
        out,
        uuid: uuid.to_string(),
        wire_uuid: wire_uuid.to_string(),
        tx: tx.clone(),
        writer: mt::Writer::new(),
        reader: mt::Reader::new(),
        ready: false,
        broken: false,
        next_fid: 1,
        forwards: BTreeMap::new(),
        conns: HashMap::new(),
        tasks: JoinSet::new(),
        reversing: HashMap::new(),
    };
    let task = Task::spawn(mux.run(rx));
    (
        Handle {
            tx,
            uuid: uuid.to_string(),
        },
        task,
    )
}

struct Listening {
    fwd: Forward,
    _accept: Option<Task>,
}

struct Conn {
    /// Bytes for the socket; dropped to end the connection once written.
    to_sock: mpsc::UnboundedSender<Vec<u8>>,
    task: AbortHandle,
    /// The forward it came through.
    fid: Option<i64>,
}

struct Mux {
    out: mpsc::Sender<Out>,
    uuid: String,
    wire_uuid: String,
    tx: mpsc::Sender<Req>,
    writer: mt::Writer,
    reader: mt::Reader,
    /// The agent acked the handshake.
    ready: bool,
    /// The agent's stream could not be read: nothing more is.
    broken: bool,
    next_fid: i64,
    forwards: BTreeMap<i64, Listening>,
    conns: HashMap<i64, Conn>,
    tasks: JoinSet<()>,
    reversing: HashMap<i64, oneshot::Sender<Result<(), TunnelError>>>,
}

impl Mux {
    async fn run(mut self, mut rx: mpsc::Receiver<Req>) {
        self.send(TunnelMessage::handshake(false)).await;
        loop {
            tokio::select! {
                req = rx.recv() => match req {
                    Some(r) => self.handle(r).await,
                    None => return,
                },
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
            }
        }
    }

    async fn send(&mut self, m: TunnelMessage) {
        let bytes = match self.writer.encode(&m) {
            Ok(b) => b,
            Err(e) => {
                warn!("cc: tunnel of {}: cannot encode: {e}", self.uuid);
                return;
            }
        };
        let msg = Message {
            kind: ron::kind::TUNNEL,
            uuid: self.wire_uuid.clone(),
            tunnel: bytes,
            ..Message::default()
        };
        // A closed outbox means the session is ending; this task goes too.
        let _ = self.out.send(Out::Msg(Box::new(msg))).await;
    }

    fn not_ready(&self) -> TunnelError {
        TunnelError::NotReady(self.uuid.clone())
    }

    async fn handle(&mut self, req: Req) {
        match req {
            Req::Piece(bytes) => self.incoming(&bytes).await,
            Req::Forward { fwd, reply } => {
                let r = if self.ready {
                    self.listen(fwd)
                } else {
                    Err(self.not_ready())
                };
                let _ = reply.send(r);
            }
            Req::List(reply) => {
                let r = if self.ready {
                    Ok(self
                        .forwards
                        .iter()
                        .map(|(id, l)| (*id, l.fwd.clone()))
                        .collect())
                } else {
                    Err(self.not_ready())
                };
                let _ = reply.send(r);
            }
            Req::Close { id, reply } => {
                let r = if !self.ready {
                    Err(self.not_ready())
                } else if let Some(l) = self.forwards.remove(&id) {
                    info!(
                        "cc: tunnel of {}: closed forward {id} ({})",
                        self.uuid, l.fwd
                    );
                    let tids: Vec<i64> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| c.fid == Some(id))
                        .map(|(t, _)| *t)
                        .collect();
                    for tid in tids {
                        if let Some(c) = self.conns.remove(&tid) {
                            c.task.abort();
                        }
                        self.send(TunnelMessage::closed(tid, "forward closed"))
                            .await;
                    }
                    Ok(())
                } else {
                    Err(TunnelError::NoForward(id))
                };
                let _ = reply.send(r);
            }
            Req::Reverse { fwd, reply } => {
                if !self.ready {
                    let _ = reply.send(Err(self.not_ready()));
                    return;
                }
                let tid = mt::new_tid();
                self.reversing.retain(|_, r| !r.is_closed());
                self.reversing.insert(tid, reply);
                self.send(TunnelMessage::forward(tid, fwd.src, &fwd.host, fwd.dst))
                    .await;
            }
            Req::Accepted { fid, stream } => {
                let Some(fwd) = self.forwards.get(&fid).map(|l| l.fwd.clone()) else {
                    return;
                };
                let tid = mt::new_tid();
                debug!(
                    "cc: tunnel of {}: connection {tid} to {}:{}",
                    self.uuid, fwd.host, fwd.dst
                );
                self.send(TunnelMessage::connect(tid, &fwd.host, fwd.dst))
                    .await;
                self.connection(tid, Some(fid), Ok(stream));
            }
            Req::Read { tid, data } => {
                if self.conns.contains_key(&tid) {
                    self.send(TunnelMessage::data(tid, &data)).await;
                }
            }
            Req::Ended { tid, why } => {
                if self.conns.remove(&tid).is_some() {
                    self.send(TunnelMessage::closed(tid, &why)).await;
                }
            }
        }
    }

    /// Binds the forward's port at once, so a port in use is the
    /// command's error and nothing is left behind.
    fn listen(&mut self, fwd: Forward) -> Result<i64, TunnelError> {
        let bind = |addr: &str| {
            std::net::TcpListener::bind((addr, fwd.src)).and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            })
        };
        // Every address, as Go's ":PORT"; IPv4 only where IPv6 is off.
        let listener = match bind("::") {
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => bind("0.0.0.0"),
            r => r,
        }
        .map_err(|e| TunnelError::Listen {
            port: fwd.src,
            why: e.to_string(),
        })?;
        let fid = self.next_fid;
        self.next_fid += 1;
        let tx = self.tx.clone();
        let accept = Task::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        if tx.send(Req::Accepted { fid, stream }).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        debug!("cc: tunnel accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        info!(
            "cc: tunnel of {}: forward {fid}: :{} -> {}:{}",
            self.uuid, fwd.src, fwd.host, fwd.dst
        );
        self.forwards.insert(
            fid,
            Listening {
                fwd,
                _accept: accept,
            },
        );
        Ok(fid)
    }

    async fn incoming(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        let msgs = match self.reader.push(bytes) {
            Ok(m) => m,
            Err(e) => {
                warn!(
                    "cc: tunnel of {}: malformed message ({e}); tunnel closed",
                    self.uuid
                );
                self.broken = true;
                self.ready = false;
                self.forwards.clear();
                for (_, c) in self.conns.drain() {
                    c.task.abort();
                }
                return;
            }
        };
        for m in msgs {
            self.message(m).await;
        }
    }

    async fn message(&mut self, m: TunnelMessage) {
        match m.kind {
            kind::HANDSHAKE if m.ack => {
                debug!("cc: tunnel of {} ready", self.uuid);
                self.ready = true;
            }
            kind::CONNECT => {
                // The agent accepted a connection on a `cc rtunnel` port.
                let Some(port) = m.port() else {
                    self.send(TunnelMessage::closed(m.tid, "invalid port"))
                        .await;
                    return;
                };
                let addr = format!("{}:{port}", m.host);
                let dial = async move {
                    match tokio::time::timeout(DIAL_WAIT, TcpStream::connect(&addr)).await {
                        Ok(Ok(s)) => Ok(s),
                        Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
                        Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
                    }
                };
                self.connection(m.tid, None, Err(Box::pin(dial)));
            }
            kind::DATA if m.ack => {
                if let Some(reply) = self.reversing.remove(&m.tid) {
                    let r = if m.error.is_empty() {
                        Ok(())
                    } else {
                        Err(TunnelError::Agent {
                            uuid: self.uuid.clone(),
                            why: m.error,
                        })
                    };
                    let _ = reply.send(r);
                }
            }
            kind::DATA => {
                if let Some(c) = self.conns.get(&m.tid) {
                    let _ = c.to_sock.send(m.data);
                } else {
                    debug!(
                        "cc: tunnel of {}: data for unknown TID {}",
                        self.uuid, m.tid
                    );
                }
            }
            kind::CLOSED => {
                if let Some(reply) = self.reversing.remove(&m.tid) {
                    let _ = reply.send(Err(TunnelError::Agent {
                        uuid: self.uuid.clone(),
                        why: m.error.clone(),
                    }));
                }
                // Dropping the sender ends the connection once what came
                // before is written.
                if self.conns.remove(&m.tid).is_some() && m.error != mt::EOF {
                    debug!(
                        "cc: tunnel of {}: connection {} closed: {}",
                        self.uuid, m.tid, m.error
                    );
                }
            }
            kind::FORWARD => {
                // Only the daemon asks for reverse tunnels.
                self.send(TunnelMessage::forwarded(
                    m.tid,
                    "reverse tunnels go from the daemon to the agent",
                ))
                .await;
            }
            other => debug!("cc: tunnel of {}: message type {other} ignored", self.uuid),
        }
    }

    /// Runs one connection: an accepted stream, or one still to dial.
    fn connection(&mut self, tid: i64, fid: Option<i64>, stream: Result<TcpStream, Dial>) {
        let (to_sock, rx) = mpsc::unbounded_channel();
        let task = self.tasks.spawn(carry(tid, stream, rx, self.tx.clone()));
        self.conns.insert(tid, Conn { to_sock, task, fid });
    }
}

type Dial = std::pin::Pin<Box<dyn std::future::Future<Output = Result<TcpStream, String>> + Send>>;

/// Moves bytes between a socket and the tunnel until either end closes.
async fn carry(
    tid: i64,
    stream: Result<TcpStream, Dial>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    tx: mpsc::Sender<Req>,
) {
    let stream = match stream {
        Ok(s) => s,
        Err(dial) => match dial.await {
            Ok(s) => s,
            Err(why) => {
                let _ = tx.send(Req::Ended { tid, why }).await;
                return;
            }
        },
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let reading = async {
        let mut buf = vec![0u8; mt::BUFFER_SIZE];
        let why = loop {
            match rd.read(&mut buf).await {
                Ok(0) => break String::new(),
                Ok(n) => {
                    let data = buf[..n].to_vec();
                    if tx.send(Req::Read { tid, data }).await.is_err() {
                        return;
                    }
                }
                Err(e) => break e.to_string(),
            }
        };
        let _ = tx.send(Req::Ended { tid, why }).await;
    };
    let writing = async {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    tokio::pin!(reading, writing);
    tokio::select! {
        _ = &mut writing => {}
        _ = &mut reading => writing.await,
    }
    // Ignored when the tunnel already knows (either end closed); tells it
    // when the socket could not be written.
    let why = "connection closed".to_string();
    let _ = tx.send(Req::Ended { tid, why }).await;
}
