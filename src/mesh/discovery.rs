//! Finding nodes of the same context: while `degree > 0` a node broadcasts
//! a small UDP datagram (its context, name, mesh port, whether it wants
//! more links, and the smallest name of its mesh) on the mesh port, to
//! `-broadcast` if given, else to every up interface's broadcast address
//! (see [`super::ifaces`]); often at first and then backing off
//! exponentially up to the announcement period; any change of this node's
//! links makes it eager again, and so does a change of membership for the
//! one node of a mesh that links newcomers (for the others it does not: a
//! forming mesh would have every node broadcasting at once, and the
//! broadcasts of a hundred nodes overflow the network's queues). Once a
//! node has its degree only one node per mesh (the one that links
//! newcomers) keeps broadcasting, so an idle cluster of N nodes hears one
//! datagram per mesh and period, not N.
//! Datagrams carry a MAC under a key derived from the mesh key, so nodes
//! without the key are not even dialed.
//!
//! Who dials whom ([`decide`]) keeps the mesh in one piece even with a low
//! degree: between two separate meshes, only the one whose smallest name is
//! smaller reaches out, and only through its least-linked node; inside one
//! mesh, a node short of links is dialed by the others, and accepts until
//! it has its degree. A node at or under its degree dials it at once; one
//! already over waits [`STARVED_STEP`] more of hearing it still short for
//! each link it has over, so the least-linked nodes link it first, and a
//! node that joins a mesh whose nodes are all at their degree still gets
//! its own.
//!
//! minimega differs: its nodes answer every solicitation of their context,
//! which with a small degree can leave the mesh split; and a node with
//! degree 0 still answers. Here degree 0 turns discovery off altogether.

use super::wire::mac;
use super::{ifaces, Mesh};
use hmac::Mac;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::{debug, info, warn};

const MAGIC: &[u8; 6] = b"MMDISC";
const VERSION: u8 = 1;
const MAC_LEN: usize = 32;
pub const MAX_DATAGRAM: usize = 1024;
/// First broadcast interval; it doubles up to the announcement period.
pub const BASE_INTERVAL: Duration = Duration::from_millis(100);
/// Dials triggered by one broadcast are spread over this long, and the
/// decision is taken again after the wait, so a burst of nodes hearing the
/// same datagram does not all link to its sender.
const DIAL_JITTER: Duration = Duration::from_millis(150);
/// How much longer a node waits, per link it has over its degree, before
/// it dials a node short of links.
pub const STARVED_STEP: Duration = Duration::from_secs(1);

/// What a node broadcasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    pub context: String,
    pub name: String,
    pub port: u16,
    /// Fewer links than its degree.
    pub wants: bool,
    /// The smallest name in its mesh.
    pub leader: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DatagramError {
    #[error("not a discovery datagram")]
    NotOurs,
    #[error("unsupported discovery version {0}")]
    Version(u8),
    #[error("bad MAC (different mesh key?)")]
    Mac,
    #[error("malformed announcement: {0}")]
    Malformed(String),
}

pub fn encode(a: &Announce, key: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(VERSION);
    out.extend(serde_json::to_vec(a).unwrap_or_default());
    let mut m = mac(key);
    m.update(&out);
    out.extend_from_slice(&m.finalize().into_bytes());
    out
}

pub fn decode(bytes: &[u8], key: &[u8]) -> Result<Announce, DatagramError> {
    if bytes.len() < MAGIC.len() + 1 + MAC_LEN || !bytes.starts_with(MAGIC) {
        return Err(DatagramError::NotOurs);
    }
    if bytes[MAGIC.len()] != VERSION {
        return Err(DatagramError::Version(bytes[MAGIC.len()]));
    }
    let (signed, tag) = bytes.split_at(bytes.len() - MAC_LEN);
    let mut m = mac(key);
    m.update(signed);
    m.verify_slice(tag).map_err(|_| DatagramError::Mac)?;
    serde_json::from_slice(&signed[MAGIC.len() + 1..])
        .map_err(|e| DatagramError::Malformed(e.to_string()))
}

/// This node's situation, as discovery needs it.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub me: String,
    pub context: String,
    pub degree: usize,
    pub wants: bool,
    pub leader: String,
    /// The node of this mesh that links newcomers.
    pub designated: String,
    pub mesh: BTreeSet<String>,
    pub linked: BTreeSet<String>,
}

impl View {
    /// Whether this node broadcasts now: when it wants links, or as the
    /// one node of its mesh that other meshes and newcomers should hear.
    pub fn speaks(&self) -> bool {
        self.wants || self.designated == self.me
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Dial,
    Ignore(Why),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Off,
    OtherContext,
    Myself,
    Linked,
    /// Another mesh; its side reaches out (or another node of ours does).
    NotOurTurn,
    /// Same mesh; the sender has links enough, or this node has more
    /// than enough.
    Satisfied,
}

/// Whether to dial the sender of `a`, heard short of links for `short_for`.
pub fn decide(v: &View, a: &Announce, short_for: Duration) -> Decision {
    use Decision::*;
    if v.degree == 0 {
        return Ignore(Why::Off);
    }
    if a.context != v.context {
        return Ignore(Why::OtherContext);
    }
    if a.name == v.me {
        return Ignore(Why::Myself);
    }
    if v.linked.contains(&a.name) {
        return Ignore(Why::Linked);
    }
    if !v.mesh.contains(&a.name) {
        // Two meshes: the one with the smaller leader dials, through its
        // least-linked node, so exactly one link joins them.
        if v.leader < a.leader && v.designated == v.me {
            return Dial;
        }
        return Ignore(Why::NotOurTurn);
    }
    // A node short of links gets them from the others, as in minimega,
    // the least linked first.
    let over = v.linked.len().saturating_sub(v.degree) as u32;
    if a.wants && short_for >= STARVED_STEP * over {
        Dial
    } else {
        Ignore(Why::Satisfied)
    }
}

/// Since when each node has been heard short of links (pure; the clock is
/// the caller's).
#[derive(Debug, Default)]
pub struct Short {
    since: HashMap<String, (Instant, Instant)>,
}

impl Short {
    /// How long `a`'s sender has been short of links, as of `now`. A node
    /// not heard for `forget` starts afresh.
    pub fn heard(&mut self, a: &Announce, now: Instant, forget: Duration) -> Duration {
        if !a.wants {
            self.since.remove(&a.name);
            return Duration::ZERO;
        }
        if self.since.len() >= 4096 {
            self.since
                .retain(|_, (_, last)| now.saturating_duration_since(*last) < forget);
        }
        let e = self.since.entry(a.name.clone()).or_insert((now, now));
        if now.saturating_duration_since(e.1) >= forget {
            e.0 = now;
        }
        e.1 = now;
        now.saturating_duration_since(e.0)
    }
}

/// The wait before broadcast number `attempt` (from 0): doubling from
/// [`BASE_INTERVAL`] up to `cap`, times a random factor in [0.5, 1).
pub fn backoff(attempt: u32, cap: Duration, random: u64) -> Duration {
    let full = BASE_INTERVAL
        .saturating_mul(1u32 << attempt.min(20))
        .min(cap.max(BASE_INTERVAL));
    let factor = 0.5 + (random % 1000) as f64 / 2000.0;
    full.mul_f64(factor)
}

pub(super) fn random() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    u64::from_le_bytes(b)
}

/// The discovery task: listens always, broadcasts while degree > 0.
pub async fn run(mesh: Mesh) {
    let sock = match bind(mesh.port()) {
        Ok(s) => s,
        Err(e) => {
            warn!(
                "mesh discovery off: cannot bind UDP port {}: {e}",
                mesh.port()
            );
            return;
        }
    };
    let mut attempt = 0u32;
    // Nodes started together do not broadcast together.
    let mut next = Instant::now() + backoff(0, mesh.msa(), random());
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut noted: HashSet<(IpAddr, &'static str)> = HashSet::new();
    let mut short = Short::default();
    let mut outage = Outage::default();
    loop {
        let active = mesh.degree() > 0;
        let wake = if active {
            next
        } else {
            Instant::now() + Duration::from_secs(3600)
        };
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                heard(&mesh, &buf[..n], from, &mut noted, &mut short);
            }
            _ = tokio::time::sleep_until(wake) => {
                if !active {
                    continue;
                }
                let v = mesh.view();
                if v.speaks() {
                    debug!("mesh discovery: broadcasting (wants links: {})", v.wants);
                    broadcast(&mesh, &sock, v, &mut outage).await;
                }
                next = Instant::now() + backoff(attempt, mesh.msa(), random());
                attempt = attempt.saturating_add(1);
            }
            _ = mesh.changed() => {
                // Eager again, but a stream of changes must not keep
                // pushing the next broadcast away.
                attempt = 0;
                next = next.min(Instant::now() + backoff(0, mesh.msa(), random()));
            }
        }
    }
}

/// Sends this node's datagram to every target. A failure (no interface to
/// broadcast on, or every send refused) is logged once until broadcasting
/// works again; the caller keeps retrying with backoff.
async fn broadcast(mesh: &Mesh, sock: &UdpSocket, v: View, outage: &mut Outage) {
    let key = match mesh.key() {
        Ok(k) => k,
        Err(e) => {
            debug!("no discovery broadcast: {e}");
            return;
        }
    };
    let a = Announce {
        context: v.context,
        name: v.me,
        port: mesh.port(),
        wants: v.wants,
        leader: v.leader,
    };
    let bytes = encode(&a, key.discovery_key());
    let targets = ifaces::targets(mesh.broadcast_addr(), &ifaces::list());
    let mut failures = Vec::new();
    for t in &targets {
        if let Err(e) = sock.send_to(&bytes, (*t, mesh.port())).await {
            failures.push(format!("{t}: {e}"));
        }
    }
    if targets.is_empty() || failures.len() == targets.len() {
        if outage.failed() {
            let why = if targets.is_empty() {
                "no interface with an IPv4 broadcast address is up".to_string()
            } else {
                failures.join("; ")
            };
            warn!(
                "cannot send mesh discovery ({why}); retrying with backoff \
                 (see -broadcast, or link with `mesh dial`)"
            );
        }
    } else {
        if outage.recovered() {
            info!(
                "mesh discovery broadcasts again, to {}",
                targets
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for f in failures {
            debug!("mesh discovery not sent to {f}");
        }
    }
}

/// Whether a failure to broadcast was logged, so it is logged once per
/// outage.
#[derive(Debug, Default)]
struct Outage {
    logged: bool,
}

impl Outage {
    /// A failed attempt: true if it is the first since broadcasting worked.
    fn failed(&mut self) -> bool {
        !std::mem::replace(&mut self.logged, true)
    }

    /// A good attempt: true if it ends a logged outage.
    fn recovered(&mut self) -> bool {
        std::mem::replace(&mut self.logged, false)
    }
}

fn bind(port: u16) -> std::io::Result<UdpSocket> {
    let s = std::net::UdpSocket::bind(("0.0.0.0", port))?;
    s.set_broadcast(true)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Handles one datagram. Problems are logged once per sender and kind.
fn heard(
    mesh: &Mesh,
    bytes: &[u8],
    from: SocketAddr,
    noted: &mut HashSet<(IpAddr, &'static str)>,
    short: &mut Short,
) {
    let Ok(key) = mesh.key() else { return };
    let mut first = |what: &'static str| noted.len() < 4096 && noted.insert((from.ip(), what));
    let a = match decode(bytes, key.discovery_key()) {
        Ok(a) => a,
        Err(DatagramError::Mac) => {
            if first("mac") {
                warn!(
                    "ignoring mesh discovery from {}: bad MAC (different mesh key?)",
                    from.ip()
                );
            }
            return;
        }
        Err(e) => {
            if first("bad") {
                warn!("ignoring a malformed mesh discovery datagram from {from}: {e}");
            }
            return;
        }
    };
    let v = mesh.view();
    // A node that stops broadcasting for three periods starts afresh.
    let short_for = short.heard(&a, Instant::now(), mesh.msa() * 3);
    match decide(&v, &a, short_for) {
        Decision::Ignore(Why::OtherContext) => {
            if first("context") {
                info!(
                    "ignoring {} at {}: context `{}` is not ours (`{}`)",
                    a.name,
                    from.ip(),
                    a.context,
                    v.context
                );
            }
        }
        Decision::Ignore(Why::NotOurTurn) => debug!(
            "heard {} of another mesh (leader {}); {} links newcomers here",
            a.name, a.leader, v.designated
        ),
        Decision::Ignore(_) => {}
        Decision::Dial => {
            let mesh = mesh.clone();
            let addr = SocketAddr::new(from.ip(), a.port);
            tokio::spawn(async move {
                let wait = DIAL_JITTER.mul_f64((random() % 1000) as f64 / 1000.0);
                tokio::time::sleep(wait).await;
                let short_for = short_for + wait;
                if decide(&mesh.view(), &a, short_for) != Decision::Dial
                    || !mesh.start_dialing(&a.name)
                {
                    return;
                }
                match mesh.connect(addr, false).await {
                    Ok(name) => debug!("discovery linked {name}"),
                    Err(e) => debug!("discovery could not link {} at {addr}: {e}", a.name),
                }
                mesh.done_dialing(&a.name);
            });
        }
    }
}

#[cfg(test)]
#[path = "discovery_tests.rs"]
mod tests;
