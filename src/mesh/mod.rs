//! The mesh: every daemon links to others over authenticated TCP, learns
//! the whole graph from the others' announcements, and sends commands along
//! shortest paths, so one command can act on every node.
//!
//! - [`wire`]: frames and messages (pure); [`routed`]: the envelope of a
//!   message routed hop by hop (pure)
//! - [`auth`]: the shared key and the handshake that opens each link
//! - [`graph`]: topology and routes from announcements (pure)
//! - [`discovery`]: UDP broadcast to find nodes of the same context
//! - `link`: one task pair per linked peer (frames in, frames out,
//!   heartbeats); `linking`: opening, admitting and closing links
//! - `routing`: announcements, the topology, messages hop by hop, and
//!   requests waiting for answers
//! - [`commands`]: `mesh status`, `mesh list`, `mesh send`, `mesh stats`, ...
//! - [`stats`]: frame counters per peer and kind (pure bookkeeping);
//!   [`ratelimit`]: for log lines a peer can provoke
//!
//! This module holds the shared state: links, announcements, the computed
//! topology and the requests waiting for an answer.

pub mod auth;
pub mod discovery;
pub mod frames;
pub mod graph;
pub mod ifaces;
mod link;
mod linking;
pub mod ratelimit;
pub mod requests;
pub mod routed;
mod routing;
pub mod stats;
pub mod wire;

use crate::command::{BoxFuture, Group, Response, Session};
use crate::config::Config;
use crate::event::Event;
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
use wire::{Hello, Lsa, Message};

/// How often an idle link sends a heartbeat: five per direction in the
/// default announcement period. A peer that dies is noticed at once (its
/// kernel closes the connection); heartbeats only find one cut off or hung.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A link silent this long is dead: its peer was cut off, or hangs. Three
/// heartbeats and a half, so a late one on a loaded machine is no death.
pub const DEAD_AFTER: Duration = Duration::from_millis(7000);
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
    broadcast: Option<Ipv4Addr>,
    key_path: PathBuf,
    key: Mutex<Option<Arc<MeshKey>>>,
    state: Mutex<State>,
    events: broadcast::Sender<Event>,
    runner: OnceLock<Runner>,
    /// Wakes discovery (see [`Mesh::changed`]).
    changed: Notify,
    ids: AtomicU64,
    /// Frames and bytes per peer and kind (`mesh stats`).
    stats: Mutex<stats::Book>,
    /// Malformed frames and messages are logged, but only so often.
    malformed: Mutex<ratelimit::RateLimit>,
}

struct State {
    degree: usize,
    /// `None`: wait for answers forever (`mesh timeout 0`).
    timeout: Option<Duration>,
    links: BTreeMap<String, Link>,
    lsdb: BTreeMap<String, Stored>,
    my_seq: u64,
    topo: Topology,
    /// Requests waiting for answers.
    pending: requests::Requests,
    /// Requests from other nodes run here lately (a resend is not run twice).
    seen: requests::Seen,
    /// Requests to send again, after a loss in the mesh, once the lock is
    /// released.
    resend: Vec<routed::Routed>,
    /// Where each origin's periodic announcement goes on from here, for
    /// the current topology.
    trees: HashMap<String, Vec<String>>,
    /// `topo` is behind the announcements; a recomputation is due.
    stale: bool,
    recompute_due: bool,
    dialing: BTreeSet<String>,
    key_error_logged: bool,
    /// Nodes that left the mesh, and when: `mesh send all` still names them
    /// for a while (see [`Mesh::recently_lost`]).
    lost: BTreeMap<String, std::time::Instant>,
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

/// What a link task gets once its peer is registered.
struct Registered {
    id: u64,
    queue: mpsc::Receiver<Message>,
    stop: Arc<Notify>,
    counters: Arc<stats::Counters>,
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
                pending: requests::Requests::default(),
                seen: requests::Seen::default(),
                resend: Vec::new(),
                trees: HashMap::new(),
                stale: false,
                recompute_due: false,
                dialing: BTreeSet::new(),
                key_error_logged: false,
                lost: BTreeMap::new(),
            }),
            me,
            events,
            runner: OnceLock::new(),
            changed: Notify::new(),
            // A restarted node's request ids must not be ones its peers
            // remember running (`requests::Seen` would not run them again).
            ids: AtomicU64::new(discovery::random() >> 1),
            stats: Mutex::new(stats::Book::default()),
            malformed: Mutex::new(ratelimit::RateLimit::new(10, Duration::from_secs(60))),
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
        tokio::spawn(self.clone().stats_loop());
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn book(&self) -> MutexGuard<'_, stats::Book> {
        self.0.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The frame counters of one peer, kept across its links.
    pub(crate) fn counters(&self, peer: &str) -> Arc<stats::Counters> {
        self.book().counters(peer, Instant::now())
    }

    /// `mesh stats`: a row per peer and frame kind.
    pub fn stats(&self) -> Vec<stats::Row> {
        self.book().rows(Instant::now())
    }

    /// Logs a malformed frame or message (rate-limited: a peer can send
    /// them at will).
    fn malformed(&self, from: &str, why: &str) {
        let allowed = self
            .0
            .malformed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allow(Instant::now());
        match allowed {
            Some(0) => warn!("dropped a malformed mesh frame from {from}: {why}"),
            Some(held) => {
                warn!("dropped a malformed mesh frame from {from}: {why} ({held} more not logged)")
            }
            None => {}
        }
    }

    /// Keeps the rates of `mesh stats` current.
    async fn stats_loop(self) {
        let mut tick = tokio::time::interval(stats::WINDOW);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.book().mark(Instant::now());
        }
    }

    /// The mesh key, read again from its file while it is missing.
    pub fn key(&self) -> Result<Arc<MeshKey>, String> {
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
                let k = Arc::new(k);
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

    /// `-broadcast`, if given.
    pub fn broadcast_addr(&self) -> Option<Ipv4Addr> {
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

    /// Whether the mesh knows `node` (reachable through some link).
    pub fn knows(&self, node: &str) -> bool {
        self.state().topo.contains(node)
    }

    /// Every node of the mesh, this one included, sorted.
    pub fn nodes(&self) -> Vec<String> {
        self.state().topo.nodes().cloned().collect()
    }

    /// Nodes that left the mesh within the last three announcement
    /// periods, and how long ago. minimega forgets a node only when its
    /// announcements stop, so `mesh send all` right after a node dies
    /// reports it as an error row rather than silently answering for fewer
    /// nodes; we keep that, though our links notice a death at once.
    pub fn recently_lost(&self) -> Vec<(String, Duration)> {
        let horizon = self.0.msa * 3;
        let mut st = self.state();
        st.lost.retain(|_, at| at.elapsed() < horizon);
        st.lost
            .iter()
            .map(|(n, at)| (n.clone(), at.elapsed()))
            .collect()
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

    /// Resolves when this node's links or degree changed since the last
    /// call, or the membership while this node links newcomers (what makes
    /// discovery eager again).
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
            software: crate::VERSION.to_string(),
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
