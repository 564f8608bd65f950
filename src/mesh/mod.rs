//! The mesh: every daemon links to others over authenticated TCP, learns
//! the whole graph from the others' announcements, and sends commands along
//! shortest paths, so one command can act on every node.
//!
//! - [`wire`]: frames and messages (pure)
//! - [`auth`]: the shared key and the handshake that opens each link
//! - [`graph`]: topology and routes from announcements (pure)
//! - [`discovery`]: UDP broadcast to find nodes of the same context
//! - `link`: one task pair per linked peer (frames in, frames out,
//!   heartbeats)
//! - [`commands`]: `mesh status`, `mesh list`, `mesh send`, ...
//!
//! This module holds the shared state: links, announcements, the computed
//! topology and the requests waiting for an answer.

pub mod auth;
pub mod commands;
pub mod discovery;
pub mod frames;
pub mod graph;
mod link;
pub mod wire;

use crate::command::{BoxFuture, Group, Response, Session};
use crate::config::Config;
use crate::daemon::Event;
use auth::{HandshakeError, MeshKey};
use graph::Topology;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, Notify};
use tracing::{debug, info, warn};
use wire::{Body, Hello, Lsa, Message, Routed};

/// How often an idle link sends a heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A link silent this long is dead: its peer crashed or was cut off.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);
/// Hops a message may travel before it is dropped.
pub const TTL: u8 = 64;
/// Frames queued for one peer; a peer this far behind is dropped.
const QUEUE: usize = 4096;

/// Runs a command line that arrived over the mesh through the daemon's
/// one engine.
pub type Runner = Arc<dyn Fn(Session, String) -> BoxFuture<'static, Vec<Group>> + Send + Sync>;

#[derive(Debug, Error)]
pub enum MeshError {
    #[error("the mesh is disabled: {0}")]
    Disabled(String),
    #[error("invalid address `{0}`: {1}")]
    Address(String, String),
    #[error("cannot connect to {addr}: {why}")]
    Connect { addr: String, why: String },
    #[error("{addr}: {source}")]
    Handshake {
        addr: String,
        source: HandshakeError,
    },
    #[error("cannot mesh dial yourself")]
    Myself,
    #[error("{name} is in context `{context}`, not ours (`{ours}`)")]
    OtherContext {
        name: String,
        context: String,
        ours: String,
    },
    #[error("already connected to {0}")]
    AlreadyLinked(String),
    #[error("not connected to {0}")]
    NotLinked(String),
}

/// The handle every part of the daemon holds.
#[derive(Clone)]
pub struct Mesh(Arc<Inner>);

struct Inner {
    me: String,
    context: String,
    port: u16,
    msa: Duration,
    broadcast: Ipv4Addr,
    key_path: PathBuf,
    key: Mutex<Option<MeshKey>>,
    state: Mutex<State>,
    events: broadcast::Sender<Event>,
    runner: OnceLock<Runner>,
    /// Wakes discovery when links or membership change.
    changed: Notify,
    ids: AtomicU64,
}

struct State {
    degree: usize,
    /// `None`: wait for answers forever (`mesh timeout 0`).
    timeout: Option<Duration>,
    links: BTreeMap<String, Link>,
    lsdb: BTreeMap<String, Stored>,
    my_seq: u64,
    topo: Topology,
    pending: HashMap<u64, Pending>,
    dialing: BTreeSet<String>,
    key_error_logged: bool,
}

struct Link {
    id: u64,
    tx: mpsc::Sender<Message>,
    /// Who dialed: of two links between the same nodes, the one dialed by
    /// the smaller name stays, as both sides decide alike.
    initiator: String,
    addr: SocketAddr,
    stop: Arc<Notify>,
}

struct Stored {
    seq: u64,
    peers: BTreeSet<String>,
    at: Instant,
}

struct Pending {
    dst: String,
    tx: oneshot::Sender<Result<Vec<Response>, String>>,
}

/// What a link task gets once its peer is registered.
struct Registered {
    id: u64,
    queue: mpsc::Receiver<Message>,
    stop: Arc<Notify>,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Mesh {
    pub fn new(config: &Config, events: broadcast::Sender<Event>) -> Mesh {
        let me = config.hostname.clone();
        let mut lsdb = BTreeMap::new();
        let my_seq = now_nanos();
        lsdb.insert(
            me.clone(),
            Stored {
                seq: my_seq,
                peers: BTreeSet::new(),
                at: Instant::now(),
            },
        );
        Mesh(Arc::new(Inner {
            context: config.context.clone(),
            port: config.port,
            msa: config.msa.max(Duration::from_millis(100)),
            broadcast: config.broadcast,
            key_path: config.mesh_key.clone(),
            key: Mutex::new(None),
            state: Mutex::new(State {
                degree: config.degree,
                timeout: Some(config.mesh_timeout).filter(|t| !t.is_zero()),
                links: BTreeMap::new(),
                lsdb,
                my_seq,
                topo: Topology::alone(&me),
                pending: HashMap::new(),
                dialing: BTreeSet::new(),
                key_error_logged: false,
            }),
            me,
            events,
            runner: OnceLock::new(),
            changed: Notify::new(),
            ids: AtomicU64::new(1),
        }))
    }

    /// Sets how commands from other nodes are run; once, after the daemon
    /// is built.
    pub fn set_runner(&self, runner: Runner) {
        let _ = self.0.runner.set(runner);
    }

    /// Takes over the listener bound at startup and starts linking.
    pub fn start(&self, listener: TcpListener) {
        match self.key() {
            Ok(_) => {}
            Err(e) => warn!(
                "mesh disabled until a key is readable: {e}; every node of a mesh needs the same \
                 key file (e.g. `head -c 32 /dev/urandom | base64 > {path}; chmod 600 {path}`)",
                path = self.0.key_path.display()
            ),
        }
        tokio::spawn(self.clone().accept_loop(listener));
        tokio::spawn(discovery::run(self.clone()));
        tokio::spawn(self.clone().announce_loop());
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The mesh key, read again from its file while it is missing.
    pub fn key(&self) -> Result<MeshKey, String> {
        let mut slot = self.0.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = &*slot {
            return Ok(k.clone());
        }
        match MeshKey::load(&self.0.key_path) {
            Ok((k, warning)) => {
                if let Some(w) = warning {
                    warn!("{w}");
                }
                info!("mesh key {} loaded", self.0.key_path.display());
                *slot = Some(k.clone());
                Ok(k)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn hostname(&self) -> &str {
        &self.0.me
    }
    pub fn context(&self) -> &str {
        &self.0.context
    }
    pub fn port(&self) -> u16 {
        self.0.port
    }
    pub fn broadcast_addr(&self) -> Ipv4Addr {
        self.0.broadcast
    }
    pub fn msa(&self) -> Duration {
        self.0.msa
    }

    /// Nodes in the mesh, this one included.
    pub fn size(&self) -> usize {
        self.state().topo.size()
    }

    /// Nodes this one is linked to directly.
    pub fn peers(&self) -> Vec<String> {
        self.state().links.keys().cloned().collect()
    }

    /// Every node of the mesh, this one included, sorted.
    pub fn nodes(&self) -> Vec<String> {
        self.state().topo.nodes().cloned().collect()
    }

    /// Every node of the mesh but this one.
    pub fn others(&self) -> Vec<String> {
        self.nodes()
            .into_iter()
            .filter(|n| *n != self.0.me)
            .collect()
    }

    pub fn topology(&self) -> Topology {
        self.state().topo.clone()
    }

    pub fn degree(&self) -> usize {
        self.state().degree
    }

    pub fn set_degree(&self, degree: usize) {
        self.state().degree = degree;
        self.0.changed.notify_one();
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.state().timeout
    }

    pub fn set_timeout(&self, t: Option<Duration>) {
        self.state().timeout = t;
    }

    /// Resolves when links or membership changed since the last call.
    pub async fn changed(&self) {
        self.0.changed.notified().await
    }

    fn hello(&self, explicit: bool) -> Hello {
        Hello {
            name: self.0.me.clone(),
            context: self.0.context.clone(),
            nonce: auth::nonce(),
            port: self.0.port,
            explicit,
            software: crate::daemon::VERSION.to_string(),
        }
    }

    /// `mesh dial host[:port]`: links to that node whatever the degrees.
    pub async fn dial(&self, target: &str) -> Result<String, MeshError> {
        let addr = self.resolve(target).await?;
        self.connect(addr, true).await
    }

    async fn resolve(&self, target: &str) -> Result<SocketAddr, MeshError> {
        if let Ok(a) = target.parse::<SocketAddr>() {
            return Ok(a);
        }
        let (host, port) = match target.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| MeshError::Address(target.into(), "bad port".into()))?,
            ),
            _ => (target, self.0.port),
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| MeshError::Address(target.into(), e.to_string()))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| MeshError::Address(target.into(), "no address".into()))
    }

    /// Opens, authenticates and registers a link to `addr`.
    pub async fn connect(&self, addr: SocketAddr, explicit: bool) -> Result<String, MeshError> {
        let key = self.key().map_err(MeshError::Disabled)?;
        let connect_err = |why: String| MeshError::Connect {
            addr: addr.to_string(),
            why,
        };
        let mut stream = tokio::time::timeout(auth::STEP_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err("timed out".into()))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut authd = auth::initiate(&mut stream, &key, self.hello(explicit))
            .await
            .map_err(|source| MeshError::Handshake {
                addr: addr.to_string(),
                source,
            })?;
        let name = authd.peer.name.clone();
        if name == self.0.me {
            return Err(MeshError::Myself);
        }
        note_version(&authd.peer);
        if authd.peer.context != self.0.context {
            let _ = frames::write(&mut stream, &mut authd.tx, &Message::Bye).await;
            return Err(MeshError::OtherContext {
                name,
                context: authd.peer.context,
                ours: self.0.context.clone(),
            });
        }
        let me = self.0.me.clone();
        match self.register(&authd.peer, &me, addr, false) {
            Ok(reg) => {
                info!("linked to {name} at {addr}");
                link::spawn(self.clone(), name.clone(), stream, authd, reg);
                Ok(name)
            }
            Err(_) => {
                let _ = frames::write(&mut stream, &mut authd.tx, &Message::Bye).await;
                Err(MeshError::AlreadyLinked(name))
            }
        }
    }

    async fn accept_loop(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, addr)) => {
                    tokio::spawn(self.clone().incoming(stream, addr));
                }
                Err(e) => {
                    warn!("mesh listener: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn incoming(self, mut stream: TcpStream, addr: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let key = match self.key() {
            Ok(k) => k,
            Err(e) => {
                let mut st = self.state();
                if !st.key_error_logged {
                    st.key_error_logged = true;
                    warn!("refusing mesh connection from {addr}: no mesh key ({e})");
                } else {
                    debug!("refusing mesh connection from {addr}: no mesh key");
                }
                return;
            }
        };
        let mut authd = match auth::respond(&mut stream, &key, self.hello(false)).await {
            Ok(a) => a,
            Err(HandshakeError::Auth(why)) => {
                warn!("refused mesh connection from {addr}: authentication failed: {why}");
                return;
            }
            Err(e) => {
                debug!("mesh connection from {addr} failed: {e}");
                return;
            }
        };
        let peer = authd.peer.clone();
        note_version(&peer);
        match self.register(&peer, &peer.name, addr, true) {
            Ok(reg) => {
                if let Err(e) = frames::write(&mut stream, &mut authd.tx, &Message::Accept).await {
                    self.link_down(&peer.name, reg.id, &e.to_string());
                    return;
                }
                info!("linked to {} at {addr}", peer.name);
                link::spawn(self.clone(), peer.name.clone(), stream, authd, reg);
            }
            Err(Refusal { why, loud }) => {
                if loud {
                    warn!("refused mesh link from {} at {addr}: {why}", peer.name);
                } else {
                    debug!("refused mesh link from {} at {addr}: {why}", peer.name);
                }
                let _ = frames::write(&mut stream, &mut authd.tx, &Message::Refuse(why)).await;
            }
        }
    }

    /// Admits an authenticated peer (as the listening side, by policy) and
    /// records its link; announces the new link.
    fn register(
        &self,
        peer: &Hello,
        initiator: &str,
        addr: SocketAddr,
        listening: bool,
    ) -> Result<Registered, Refusal> {
        let me = &self.0.me;
        let mut st = self.state();
        if listening {
            admit(&st, me, &self.0.context, peer)?;
        }
        if let Some(old) = st.links.get(&peer.name) {
            if initiator < old.initiator.as_str() {
                old.stop.notify_one();
                st.links.remove(&peer.name);
            } else {
                return Err(Refusal {
                    why: format!("{me} is already connected to {}", peer.name),
                    loud: false,
                });
            }
        }
        let (tx, queue) = mpsc::channel(QUEUE);
        let stop = Arc::new(Notify::new());
        let id = self.0.ids.fetch_add(1, Ordering::Relaxed);
        st.links.insert(
            peer.name.clone(),
            Link {
                id,
                tx,
                initiator: initiator.to_string(),
                addr,
                stop: stop.clone(),
            },
        );
        let own = bump_own(&mut st, me);
        flood(&st, &own, None);
        // The newcomer learns the whole graph at once.
        if let Some(link) = st.links.get(&peer.name) {
            for (origin, s) in st.lsdb.iter().filter(|(o, _)| *o != me) {
                link.send(Message::Lsa(Lsa {
                    origin: origin.clone(),
                    seq: s.seq,
                    peers: s.peers.iter().cloned().collect(),
                }));
            }
        }
        let events = self.recompute(&mut st);
        drop(st);
        self.publish(events);
        self.0.changed.notify_one();
        Ok(Registered { id, queue, stop })
    }

    /// A link ended (or was hung up); a no-op when that link is already
    /// gone or was replaced.
    fn link_down(&self, name: &str, id: u64, why: &str) {
        let mut st = self.state();
        if st.links.get(name).map(|l| l.id) != Some(id) {
            return;
        }
        if let Some(l) = st.links.remove(name) {
            l.stop.notify_one();
            info!("link to {name} ({}) closed: {why}", l.addr);
        }
        let own = bump_own(&mut st, &self.0.me);
        flood(&st, &own, None);
        let events = self.recompute(&mut st);
        drop(st);
        self.publish(events);
        self.0.changed.notify_one();
    }

    /// `mesh hangup`.
    pub fn hangup(&self, name: &str) -> Result<(), MeshError> {
        let id = self
            .state()
            .links
            .get(name)
            .map(|l| l.id)
            .ok_or_else(|| MeshError::NotLinked(name.to_string()))?;
        self.link_down(name, id, "hung up");
        Ok(())
    }

    /// Recomputes the topology; fails requests to nodes that left. Returns
    /// the membership events to publish once the lock is released.
    fn recompute(&self, st: &mut State) -> Vec<Event> {
        let me = &self.0.me;
        let links: BTreeSet<String> = st.links.keys().cloned().collect();
        let announced: BTreeMap<String, BTreeSet<String>> = st
            .lsdb
            .iter()
            .filter(|(o, _)| *o != me)
            .map(|(o, s)| (o.clone(), s.peers.clone()))
            .collect();
        let topo = Topology::compute(me, &links, &announced);
        let mut events = Vec::new();
        for n in st.topo.nodes().filter(|n| !topo.contains(n)) {
            events.push(Event::PeerLeft(n.clone()));
        }
        for n in topo.nodes().filter(|n| !st.topo.contains(n)) {
            events.push(Event::PeerJoined(n.clone()));
        }
        let gone: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, p)| !topo.contains(&p.dst))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(p) = st.pending.remove(&id) {
                let _ = p.tx.send(Err("left the mesh before answering".into()));
            }
        }
        st.topo = topo;
        events
    }

    fn publish(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let size = self.size();
        for e in events {
            match &e {
                Event::PeerJoined(n) => info!("{n} joined the mesh (size {size})"),
                Event::PeerLeft(n) => info!("{n} left the mesh (size {size})"),
                _ => {}
            }
            let _ = self.0.events.send(e);
        }
    }

    /// Refreshes this node's announcement every `msa` and forgets
    /// announcements nobody refreshed for three periods.
    async fn announce_loop(self) {
        let mut tick = tokio::time::interval(self.0.msa);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut st = self.state();
            let own = bump_own(&mut st, &self.0.me);
            flood(&st, &own, None);
            let horizon = self.0.msa * 3;
            let me = self.0.me.clone();
            let before = st.lsdb.len();
            st.lsdb.retain(|o, s| *o == me || s.at.elapsed() < horizon);
            let events = if st.lsdb.len() != before {
                self.recompute(&mut st)
            } else {
                Vec::new()
            };
            drop(st);
            self.publish(events);
        }
    }

    /// A frame from a linked peer. An error ends that link.
    fn handle(&self, from: &str, m: Message) -> Result<(), String> {
        match m {
            Message::Heartbeat => Ok(()),
            Message::Lsa(l) => {
                self.on_lsa(from, l);
                Ok(())
            }
            Message::Routed(r) => {
                self.route(r);
                Ok(())
            }
            other => Err(format!(
                "unexpected {:?} frame on an open link",
                other.kind()
            )),
        }
    }

    fn on_lsa(&self, from: &str, l: Lsa) {
        let me = &self.0.me;
        let mut st = self.state();
        if l.origin == *me {
            // An announcement of ours from before a restart, newer than
            // ours: outbid it so the mesh believes the current one.
            if l.seq >= st.my_seq {
                st.my_seq = l.seq;
                let own = bump_own(&mut st, me);
                flood(&st, &own, None);
            }
            return;
        }
        if st.lsdb.get(&l.origin).is_some_and(|s| s.seq >= l.seq) {
            return;
        }
        st.lsdb.insert(
            l.origin.clone(),
            Stored {
                seq: l.seq,
                peers: l.peers.iter().cloned().collect(),
                at: Instant::now(),
            },
        );
        flood(&st, &l, Some(from));
        let events = self.recompute(&mut st);
        drop(st);
        if !events.is_empty() {
            self.publish(events);
            self.0.changed.notify_one();
        }
    }

    /// Delivers a message here or passes it one hop on.
    fn route(&self, mut r: Routed) {
        if r.dst == self.0.me {
            self.deliver(r);
            return;
        }
        if r.ttl == 0 {
            debug!(
                "dropping message {} from {} to {}: TTL expired",
                r.id, r.src, r.dst
            );
            return;
        }
        r.ttl -= 1;
        if let Err(why) = self.forward(r.clone()) {
            if matches!(r.body, Body::Request { .. }) {
                let _ = self.forward(Routed {
                    src: self.0.me.clone(),
                    dst: r.src.clone(),
                    ttl: TTL,
                    id: r.id,
                    body: Body::Failed { error: why },
                });
            } else {
                debug!("dropping answer {} for {}: {why}", r.id, r.dst);
            }
        }
    }

    fn forward(&self, r: Routed) -> Result<(), String> {
        let st = self.state();
        let hop = st
            .topo
            .next_hop(&r.dst)
            .ok_or_else(|| format!("no route from {} to {}", self.0.me, r.dst))?;
        let link = st
            .links
            .get(hop)
            .ok_or_else(|| format!("no link from {} to {hop}", self.0.me))?;
        if link.send(Message::Routed(r)) {
            Ok(())
        } else {
            Err(format!("link from {} to {hop} is congested", self.0.me))
        }
    }

    fn deliver(&self, r: Routed) {
        match r.body {
            Body::Request { line, namespace } => {
                let mesh = self.clone();
                tokio::spawn(async move {
                    let body = match mesh.0.runner.get() {
                        Some(run) => {
                            debug!("running `{line}` for {}", r.src);
                            let groups = run(Session::from_mesh(&r.src, namespace), line).await;
                            Body::Response {
                                responses: groups.into_iter().flat_map(|g| g.responses).collect(),
                            }
                        }
                        None => Body::Failed {
                            error: "not ready to run commands".into(),
                        },
                    };
                    let mut answer = Routed {
                        src: mesh.0.me.clone(),
                        dst: r.src,
                        ttl: TTL,
                        id: r.id,
                        body,
                    };
                    // An answer too big for one frame would end the link.
                    let size = Message::Routed(answer.clone()).payload().len();
                    if size > wire::MAX_PAYLOAD - 4096 {
                        answer.body = Body::Failed {
                            error: format!(
                                "the answer ({size} bytes) exceeds the mesh frame limit of {} bytes",
                                wire::MAX_PAYLOAD
                            ),
                        };
                    }
                    if let Err(why) = mesh.forward(answer) {
                        debug!("cannot answer request {}: {why}", r.id);
                    }
                });
            }
            Body::Response { responses } => self.complete(&r.src, r.id, Ok(responses)),
            Body::Failed { error } => self.complete(&r.src, r.id, Err(error)),
        }
    }

    fn complete(&self, src: &str, id: u64, result: Result<Vec<Response>, String>) {
        let mut st = self.state();
        if st.pending.get(&id).is_some_and(|p| p.dst == src) {
            if let Some(p) = st.pending.remove(&id) {
                let _ = p.tx.send(result);
            }
        }
    }

    /// Runs `line` on each target (this node included, if named) and
    /// returns every response, with one error response per target that
    /// failed or did not answer within the mesh timeout.
    pub async fn send(&self, targets: &[String], line: &str) -> Vec<Response> {
        let timeout = self.timeout();
        let asks = targets
            .iter()
            .map(|t| self.request(t.clone(), line.to_string(), timeout));
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn request(&self, dst: String, line: String, timeout: Option<Duration>) -> Vec<Response> {
        let wait = |rx: BoxFuture<'static, Result<Vec<Response>, String>>| async move {
            match timeout {
                Some(t) => tokio::time::timeout(t, rx).await.map_err(|_| {
                    format!(
                        "no answer within {} (mesh timeout)",
                        crate::daemon::hostinfo::go_duration(t)
                    )
                })?,
                None => rx.await,
            }
        };
        if dst == self.0.me {
            let Some(run) = self.0.runner.get().cloned() else {
                return vec![Response::error(&dst, "not ready to run commands")];
            };
            let me = dst.clone();
            let fut: BoxFuture<'static, Result<Vec<Response>, String>> = Box::pin(async move {
                let groups = run(Session::from_mesh(&me, None), line).await;
                Ok(groups.into_iter().flat_map(|g| g.responses).collect())
            });
            return wait(fut)
                .await
                .unwrap_or_else(|e| vec![Response::error(&dst, e)]);
        }
        let id = self.0.ids.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.state();
            if !st.topo.contains(&dst) {
                return vec![Response::error(&dst, format!("{dst} is not in the mesh"))];
            }
            st.pending.insert(
                id,
                Pending {
                    dst: dst.clone(),
                    tx,
                },
            );
        }
        let msg = Routed {
            src: self.0.me.clone(),
            dst: dst.clone(),
            ttl: TTL,
            id,
            body: Body::Request {
                line,
                namespace: None,
            },
        };
        if let Err(why) = self.forward(msg) {
            self.state().pending.remove(&id);
            return vec![Response::error(&dst, why)];
        }
        let rx: BoxFuture<'static, Result<Vec<Response>, String>> = Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("the request was dropped".into()))
        });
        let result = wait(rx).await;
        self.state().pending.remove(&id);
        match result {
            Ok(responses) => responses,
            Err(e) => vec![Response::error(&dst, e)],
        }
    }

    /// Marks a name as being dialed; false when a dial is already under way.
    fn start_dialing(&self, name: &str) -> bool {
        self.state().dialing.insert(name.to_string())
    }

    fn done_dialing(&self, name: &str) {
        self.state().dialing.remove(name);
    }

    /// What discovery decides from.
    fn view(&self) -> discovery::View {
        let st = self.state();
        discovery::View {
            me: self.0.me.clone(),
            context: self.0.context.clone(),
            degree: st.degree,
            wants: st.links.len() < st.degree,
            leader: st.topo.leader().to_string(),
            designated: st.topo.least_linked().to_string(),
            mesh: st.topo.nodes().cloned().collect(),
            linked: st.links.keys().cloned().collect(),
        }
    }
}

/// Different releases may link (the frame format is versioned on its
/// own), but say so, as minimega does.
fn note_version(peer: &Hello) {
    if peer.software != crate::daemon::VERSION {
        warn!(
            "{} runs minimega {}, this node {}",
            peer.name,
            peer.software,
            crate::daemon::VERSION
        );
    }
}

/// Why a listening node turned a peer away; `loud` ones are logged as
/// warnings.
struct Refusal {
    why: String,
    loud: bool,
}

/// The listening side's policy for an authenticated peer.
fn admit(st: &State, me: &str, context: &str, peer: &Hello) -> Result<(), Refusal> {
    let quiet = |why: String| Refusal { why, loud: false };
    if peer.name == me {
        return Err(Refusal {
            why: format!(
                "`{me}` is this node's own name (dialing yourself, or two nodes share a name)"
            ),
            loud: true,
        });
    }
    if peer.context != context {
        return Err(Refusal {
            why: format!("context `{}` is not ours (`{context}`)", peer.context),
            loud: true,
        });
    }
    if peer.explicit {
        return Ok(());
    }
    if st.degree == 0 {
        return Err(quiet(format!(
            "{me} does not link automatically (degree 0)"
        )));
    }
    if st.topo.contains(&peer.name) && st.links.len() >= st.degree {
        return Err(quiet(format!(
            "{me} has enough peers (degree {})",
            st.degree
        )));
    }
    Ok(())
}

impl Link {
    /// Queues a frame; a peer too far behind is dropped.
    fn send(&self, m: Message) -> bool {
        match self.tx.try_send(m) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!("peer at {} is not keeping up; dropping the link", self.addr);
                self.stop.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

fn bump_own(st: &mut State, me: &str) -> Lsa {
    st.my_seq = (st.my_seq + 1).max(now_nanos());
    let peers: BTreeSet<String> = st.links.keys().cloned().collect();
    st.lsdb.insert(
        me.to_string(),
        Stored {
            seq: st.my_seq,
            peers: peers.clone(),
            at: Instant::now(),
        },
    );
    Lsa {
        origin: me.to_string(),
        seq: st.my_seq,
        peers: peers.into_iter().collect(),
    }
}

fn flood(st: &State, lsa: &Lsa, except: Option<&str>) {
    for (name, link) in &st.links {
        if Some(name.as_str()) != except {
            link.send(Message::Lsa(lsa.clone()));
        }
    }
}

/// `deploy` dials the nodes it started and waits until the mesh knows them.
impl crate::deploy::MeshJoin for Mesh {
    fn dial(&self, addr: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match Mesh::dial(self, &addr).await {
                Ok(_) | Err(MeshError::AlreadyLinked(_)) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn knows(&self, host: &str) -> bool {
        self.state().topo.contains(host)
    }
}
