//! Opening, admitting and closing links: `mesh dial`, the listener, the
//! listening side's policy, and what a link coming or going changes.

use super::routing::{bump_own, flood};
use super::*;

impl Mesh {
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
        let handshake = stats::Counters::default();
        let mut authd = auth::initiate(&mut stream, &key, self.hello(explicit), &handshake)
            .await
            .map_err(|source| MeshError::Handshake {
                addr: addr.to_string(),
                source,
            })?;
        let name = authd.peer.name.clone();
        if name == self.0.me {
            return Err(MeshError::Myself);
        }
        let counters = self.counters(&name);
        counters.absorb(&handshake);
        note_version(&authd.peer);
        if authd.peer.context != self.0.context {
            let _ = frames::write(&mut stream, &mut authd.tx, &Message::Bye, &counters).await;
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
                let _ = frames::write(&mut stream, &mut authd.tx, &Message::Bye, &counters).await;
                Err(MeshError::AlreadyLinked(name))
            }
        }
    }

    pub(super) async fn accept_loop(self, listener: TcpListener) {
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

    pub(super) async fn incoming(self, mut stream: TcpStream, addr: SocketAddr) {
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
        let handshake = stats::Counters::default();
        let hello = self.hello(false);
        let mut authd = match auth::respond(&mut stream, &key, hello, &handshake).await {
            Ok(a) => a,
            Err(HandshakeError::Auth(why)) => {
                warn!("refused mesh connection from {addr}: authentication failed: {why}");
                return;
            }
            Err(e) if malformed(&e) => {
                self.malformed(&addr.to_string(), &e.to_string());
                return;
            }
            Err(e) => {
                debug!("mesh connection from {addr} failed: {e}");
                return;
            }
        };
        let peer = authd.peer.clone();
        let counters = self.counters(&peer.name);
        counters.absorb(&handshake);
        note_version(&peer);
        match self.register(&peer, &peer.name, addr, true) {
            Ok(reg) => {
                let accept = frames::write(&mut stream, &mut authd.tx, &Message::Accept, &counters);
                if let Err(e) = accept.await {
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
                let refuse = Message::Refuse(why);
                let _ = frames::write(&mut stream, &mut authd.tx, &refuse, &counters).await;
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
        let counters = self.counters(&peer.name);
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
        Ok(Registered {
            id,
            queue,
            stop,
            counters,
        })
    }

    /// A link ended (or was hung up); a no-op when that link is already
    /// gone or was replaced.
    pub(super) fn link_down(&self, name: &str, id: u64, why: &str) {
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
}

/// Different releases may link (the frame format is versioned on its
/// own), but say so, as minimega does.
fn note_version(peer: &Hello) {
    if peer.software != crate::VERSION {
        warn!(
            "{} runs minimega {}, this node {}",
            peer.name,
            peer.software,
            crate::VERSION
        );
    }
}

/// A handshake that failed on a frame that is not ours or not well made
/// (rather than on silence, a closed connection, or a wrong key, which are
/// reported apart).
fn malformed(e: &HandshakeError) -> bool {
    use super::frames::FrameError;
    matches!(
        e,
        HandshakeError::Unexpected { .. }
            | HandshakeError::Frame(FrameError::Wire(_) | FrameError::TooLarge { .. })
    )
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
