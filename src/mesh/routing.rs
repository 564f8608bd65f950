//! Announcements and messages: this node's link-state announcement, the
//! topology recomputed from everyone's, messages passed hop by hop along
//! shortest paths, and requests waiting for their answers.

use super::*;

impl Mesh {
    /// Recomputes the topology; fails requests to nodes that left. Returns
    /// the membership events to publish once the lock is released.
    pub(super) fn recompute(&self, st: &mut State) -> Vec<Event> {
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
        let now = std::time::Instant::now();
        let left: Vec<String> = st
            .topo
            .nodes()
            .filter(|n| !topo.contains(n))
            .cloned()
            .collect();
        // Lost nodes are kept only as long as `recently_lost` looks back.
        let horizon = self.0.msa * 3;
        st.lost.retain(|_, at| now.duration_since(*at) < horizon);
        for n in left {
            st.lost.insert(n.clone(), now);
            events.push(Event::PeerLeft(n));
        }
        for n in topo.nodes().filter(|n| !st.topo.contains(n)) {
            st.lost.remove(n);
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

    pub(super) fn publish(&self, events: Vec<Event>) {
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
    pub(super) async fn announce_loop(self) {
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
    pub(super) fn handle(&self, from: &str, m: Message) -> Result<(), String> {
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
            if l.seq > st.my_seq {
                st.my_seq = l.seq;
                let own = bump_own(&mut st, me);
                flood(&st, &own, None);
            }
            return;
        }
        if st.lsdb.get(&l.origin).is_some_and(|s| s.seq >= l.seq) {
            return;
        }
        let peers: BTreeSet<String> = l.peers.iter().cloned().collect();
        // A periodic refresh of links already known changes no route.
        let changed = st.lsdb.get(&l.origin).is_none_or(|s| s.peers != peers);
        st.lsdb.insert(
            l.origin.clone(),
            Stored {
                seq: l.seq,
                peers,
                at: Instant::now(),
            },
        );
        flood(&st, &l, Some(from));
        if !changed {
            return;
        }
        let events = self.recompute(&mut st);
        drop(st);
        if !events.is_empty() {
            self.publish(events);
            self.0.changed.notify_one();
        }
    }

    /// Delivers a message here or passes it one hop on.
    pub(super) fn route(&self, mut r: Routed) {
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
        // Only these are needed if it cannot go on: no copy of the body.
        let (src, dst, id) = (r.src.clone(), r.dst.clone(), r.id);
        let request = matches!(r.body, Body::Request { .. });
        if let Err(why) = self.forward(r) {
            if request {
                let _ = self.forward(Routed {
                    src: self.0.me.clone(),
                    dst: src,
                    ttl: TTL,
                    id,
                    body: Body::Failed { error: why },
                });
            } else {
                debug!("dropping answer {id} for {dst}: {why}");
            }
        }
    }

    pub(super) fn forward(&self, r: Routed) -> Result<(), String> {
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

    /// Runs a line sent by `src` on this node, as the mesh runs commands.
    fn run_here(
        &self,
        src: String,
        namespace: Option<String>,
        line: String,
    ) -> BoxFuture<'static, Result<Vec<Response>, String>> {
        let run = self.0.runner.get().cloned();
        Box::pin(async move {
            let run = run.ok_or("not ready to run commands")?;
            let groups = run(Session::from_mesh(&src, namespace), line).await;
            Ok(groups.into_iter().flat_map(|g| g.responses).collect())
        })
    }

    pub(super) fn deliver(&self, r: Routed) {
        match r.body {
            Body::Request { line, namespace } => {
                let mesh = self.clone();
                tokio::spawn(async move {
                    debug!("running `{line}` for {}", r.src);
                    let body = match mesh.run_here(r.src.clone(), namespace, line).await {
                        Ok(responses) => Body::Response { responses },
                        Err(error) => Body::Failed { error },
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

    pub(super) fn complete(&self, src: &str, id: u64, result: Result<Vec<Response>, String>) {
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
        self.send_within(targets, line, self.timeout()).await
    }

    /// [`Mesh::send`] with its own timeout (`None`: until the target
    /// answers or leaves the mesh), for commands known to take long.
    pub async fn send_within(
        &self,
        targets: &[String],
        line: &str,
        timeout: Option<Duration>,
    ) -> Vec<Response> {
        let asks = targets
            .iter()
            .map(|t| self.request(t.clone(), line.to_string(), timeout));
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    pub(super) async fn request(
        &self,
        dst: String,
        line: String,
        timeout: Option<Duration>,
    ) -> Vec<Response> {
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
            return wait(self.run_here(dst.clone(), None, line))
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
}

pub(super) fn bump_own(st: &mut State, me: &str) -> Lsa {
    st.my_seq = st.my_seq.saturating_add(1).max(now_nanos());
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

pub(super) fn flood(st: &State, lsa: &Lsa, except: Option<&str>) {
    for (name, link) in &st.links {
        if Some(name.as_str()) != except {
            link.send(Message::Lsa(lsa.clone()));
        }
    }
}
