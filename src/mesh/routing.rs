//! Announcements and messages: this node's link-state announcement, the
//! topology recomputed from everyone's, messages passed hop by hop along
//! shortest paths (a request for many nodes as one copy per next hop), and
//! requests waiting for their answers.
//!
//! Flooding: an announcement is passed on only the first time it is seen
//! (a newer sequence number than the one stored), so each crosses each
//! link at most once each way. One that changes the origin's links goes
//! to every link but the one it came by; a periodic refresh of links
//! already known only down the origin's shortest-path tree, which every
//! node computes alike, so it reaches each node once. A node's own
//! announcement coming back to it is never newer than its current one;
//! only one of a previous run of the node is outbid.

use super::requests::Admit;
use super::routed::{Blob, Body, Routed};
use super::*;

/// How long a change announced by another node waits for more before this
/// node recomputes its topology.
const COALESCE: Duration = Duration::from_millis(20);

impl Mesh {
    /// Recomputes the topology; fails requests to nodes that left. Returns
    /// the membership events to publish once the lock is released.
    pub(super) fn recompute(&self, st: &mut State) -> Vec<Event> {
        let me = &self.0.me;
        let links: BTreeSet<String> = st.links.keys().cloned().collect();
        let lsdb = &st.lsdb;
        let topo = Topology::from_lookup(me, &links, |n| {
            lsdb.get(n).filter(|_| n != me).map(|s| &s.peers)
        });
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
        st.pending.fail_gone(&topo);
        if st.topo.lost_any(&topo) {
            let again = st.pending.resends(now);
            st.resend.extend(again);
        }
        st.trees.clear();
        st.topo = topo;
        st.stale = false;
        events
    }

    /// Publishes what [`Mesh::recompute`] found, and sends again what it
    /// asked to; after the lock is released.
    pub(super) fn publish(&self, events: Vec<Event>) {
        let again = std::mem::take(&mut self.state().resend);
        for r in again {
            debug!("sending request {} again to {:?}", r.id, r.dst);
            self.route(r);
        }
        if events.is_empty() {
            return;
        }
        // The membership changed: if this node now links newcomers for its
        // mesh (one node per mesh), its discovery is eager again, so meshes
        // forming side by side merge at once, not a backed-off period later.
        if self.state().topo.least_linked() == self.0.me {
            self.0.changed.notify_one();
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

    /// Refreshes this node's announcement about every `msa` and forgets
    /// announcements nobody refreshed for three periods. The period is
    /// jittered so that nodes started together do not refresh together.
    pub(super) async fn announce_loop(self) {
        loop {
            tokio::time::sleep(jittered(self.0.msa, discovery::random())).await;
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
                "unexpected {} frame on an open link",
                other.kind().name()
            )),
        }
    }

    fn on_lsa(&self, from: &str, l: Lsa) {
        let me = &self.0.me;
        let mut st = self.state();
        if l.origin == *me {
            // Ours, from before a restart and newer than what we announce:
            // outbid it so the mesh believes the current one. Our current
            // announcement coming back is no news.
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
        let changed = st.lsdb.get(&l.origin).is_none_or(|s| s.peers != peers);
        st.lsdb.insert(
            l.origin.clone(),
            Stored {
                seq: l.seq,
                peers,
                at: Instant::now(),
            },
        );
        if !changed {
            // A refresh changes no route: down the origin's tree only.
            match refresh_children(&mut st, &l.origin) {
                Some(children) => {
                    for c in children.iter().filter(|c| *c != from) {
                        if let Some(link) = st.links.get(c) {
                            link.send(Message::Lsa(l.clone()));
                        }
                    }
                }
                None => flood(&st, &l, Some(from)),
            }
            return;
        }
        flood(&st, &l, Some(from));
        // Recomputed a moment later, once for a burst of changes (a mesh
        // forming, or losing a node, sends hundreds): the flood above goes
        // on at once, only this node's own view waits.
        st.stale = true;
        if !std::mem::replace(&mut st.recompute_due, true) {
            let mesh = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(COALESCE).await;
                mesh.refresh();
            });
        }
    }

    /// The recomputation [`Mesh::on_lsa`] put off.
    fn refresh(&self) {
        let mut st = self.state();
        st.recompute_due = false;
        if !st.stale {
            return;
        }
        let events = self.recompute(&mut st);
        drop(st);
        self.publish(events);
    }

    /// Delivers a message here if this node is among its destinations,
    /// and passes it on toward the others: one copy per next hop, naming
    /// the destinations behind that hop. A request that cannot go on is
    /// answered as Failed in the name of each node it cannot reach.
    pub(super) fn route(&self, mut r: Routed) {
        let me = &self.0.me;
        let here = r.dst.iter().any(|d| d == me);
        r.dst.retain(|d| d != me);
        let mut unreached: Vec<(String, String)> = Vec::new();
        if !r.dst.is_empty() && r.ttl == 0 {
            unreached.extend(r.dst.drain(..).map(|d| (d, "TTL expired".to_string())));
        }
        if !r.dst.is_empty() {
            r.ttl -= 1;
            let st = self.state();
            let mut by_hop: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for d in std::mem::take(&mut r.dst) {
                match st.topo.next_hop(&d) {
                    Some(hop) => by_hop.entry(hop).or_default().push(d),
                    None => {
                        let why = format!("no route from {me} to {d}");
                        unreached.push((d, why));
                    }
                }
            }
            for (hop, dst) in by_hop {
                let copy = r.to(dst);
                let why =
                    if copy.payload_len() > wire::MAX_PAYLOAD {
                        format!(
                            "the message ({} bytes) exceeds the mesh frame limit of {} bytes",
                            copy.payload_len(),
                            wire::MAX_PAYLOAD
                        )
                    } else {
                        match st.links.get(hop) {
                            None => format!("no link from {me} to {hop}"),
                            Some(link) => {
                                let names = copy.dst.clone();
                                if link.send(Message::Routed(copy)) {
                                    continue;
                                }
                                unreached.extend(names.into_iter().map(|d| {
                                    (d, format!("the link from {me} to {hop} is congested"))
                                }));
                                continue;
                            }
                        }
                    };
                unreached.extend(copy.dst.into_iter().map(|d| (d, why.clone())));
            }
        }
        if here {
            self.deliver(&r.src, r.id, r.request, &r.body);
        }
        if unreached.is_empty() {
            return;
        }
        if !r.request {
            debug!(
                "dropping answer {} from {} for {}: {}",
                r.id, r.src, unreached[0].0, unreached[0].1
            );
            return;
        }
        for (about, why) in unreached {
            let failed = answer_blob(&Body::Failed { error: why });
            self.answer_as(about, r.src.clone(), r.id, failed);
        }
    }

    /// Sends an answer to `to` in the name of `src` (this node, or one a
    /// request could not reach).
    fn answer_as(&self, src: String, to: String, id: u64, body: Blob) {
        self.route(Routed {
            src,
            dst: vec![to],
            request: false,
            ttl: TTL,
            id,
            body,
        });
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

    fn deliver(&self, src: &str, id: u64, request: bool, body: &Blob) {
        let decoded = Body::decode(body);
        match (request, decoded) {
            (true, Ok(Body::Request { line, namespace })) => {
                let me = self.0.me.clone();
                let src = src.to_string();
                // Bound first: a guard in the scrutinee would be held
                // through the arms, and answering takes the lock again.
                let admit = self.state().seen.admit(&src, id, Instant::now());
                match admit {
                    Admit::New => {}
                    Admit::Done(Some(answer)) => return self.answer_as(me, src, id, answer),
                    Admit::Running | Admit::Done(None) => {
                        return debug!("request {id} from {src} came again; not run twice")
                    }
                }
                let mesh = self.clone();
                tokio::spawn(async move {
                    debug!("running `{line}` for {src}");
                    let body = match mesh.run_here(src.clone(), namespace, line).await {
                        Ok(responses) => Body::Response { responses },
                        Err(error) => Body::Failed { error },
                    };
                    let answer = answer_blob(&body);
                    mesh.state().seen.done(&src, id, &answer);
                    mesh.answer_as(me, src, id, answer);
                });
            }
            (false, Ok(Body::Response { responses })) => self.complete(src, id, Ok(responses)),
            (false, Ok(Body::Failed { error })) => self.complete(src, id, Err(error)),
            (_, other) => {
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "a request where an answer belongs, or the reverse".into(),
                };
                self.malformed(&format!("message {id} from {src}"), &why);
                let error = format!("malformed message: {why}");
                if request {
                    let failed = answer_blob(&Body::Failed { error });
                    self.answer_as(self.0.me.clone(), src.to_string(), id, failed);
                } else {
                    self.complete(src, id, Err(error));
                }
            }
        }
    }

    fn complete(&self, src: &str, id: u64, result: Result<Vec<Response>, String>) {
        if !self.state().pending.complete(id, src, result) {
            debug!("answer {id} from {src} is not awaited (late, or a second one)");
        }
    }

    /// Runs `line` on each target (this node included, if named) and
    /// returns every response, with one error response per target that
    /// failed or did not answer within the mesh timeout.
    pub async fn send(&self, targets: &[String], line: &str) -> Vec<Response> {
        self.send_within(targets, line, self.timeout()).await
    }

    /// [`Mesh::send`] with its own timeout (`None`: until each target
    /// answers or leaves the mesh), for commands known to take long. One
    /// request travels along the routing graph, one copy per node; each
    /// answer comes back on its own, so a slow node delays no other.
    pub async fn send_within(
        &self,
        targets: &[String],
        line: &str,
        timeout: Option<Duration>,
    ) -> Vec<Response> {
        let me = self.0.me.clone();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let id = self.0.ids.fetch_add(1, Ordering::Relaxed);
        enum Wait {
            Here,
            There(String, oneshot::Receiver<Result<Vec<Response>, String>>),
            Done(Response),
        }
        let mut waits = Vec::with_capacity(targets.len());
        let mut owed = Vec::new();
        let mut request = Routed {
            src: me.clone(),
            dst: Vec::new(),
            request: true,
            ttl: TTL,
            id,
            body: Blob::default(),
        };
        {
            let mut st = self.state();
            for t in targets {
                if *t == me {
                    waits.push(Wait::Here);
                } else if !st.topo.contains(t) {
                    waits.push(Wait::Done(Response::error(
                        t,
                        format!("{t} is not in the mesh"),
                    )));
                } else {
                    let (tx, rx) = oneshot::channel();
                    owed.push((t.clone(), tx));
                    request.dst.push(t.clone());
                    waits.push(Wait::There(t.clone(), rx));
                }
            }
            if !owed.is_empty() {
                request.body = Body::Request {
                    line: line.to_string(),
                    namespace: None,
                }
                .encode();
                st.pending.add(request.clone(), owed, Instant::now());
            }
        }
        if !request.dst.is_empty() {
            self.route(request);
        }
        let late = |t: Duration| {
            format!(
                "no answer within {} (mesh timeout)",
                crate::timefmt::go_duration(t)
            )
        };
        let within = |f: BoxFuture<'static, Result<Vec<Response>, String>>| async move {
            match (deadline, timeout) {
                (Some(d), Some(t)) => tokio::time::timeout_at(d, f)
                    .await
                    .unwrap_or_else(|_| Err(late(t))),
                _ => f.await,
            }
        };
        let asks = waits.into_iter().map(|w| {
            let (host, f): (String, BoxFuture<'static, _>) = match w {
                Wait::Done(r) => return futures_util::future::Either::Left(async move { vec![r] }),
                Wait::Here => (
                    me.clone(),
                    self.run_here(me.clone(), None, line.to_string()),
                ),
                Wait::There(t, rx) => (
                    t,
                    Box::pin(async move {
                        rx.await
                            .unwrap_or_else(|_| Err("the request was dropped".into()))
                    }),
                ),
            };
            futures_util::future::Either::Right(async move {
                within(f)
                    .await
                    .unwrap_or_else(|e| vec![Response::error(&host, e)])
            })
        });
        let out: Vec<Response> = futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        self.state().pending.forget(id);
        out
    }
}

/// An answer's body, serialized once; one too big for a frame becomes a
/// Failed saying so.
fn answer_blob(body: &Body) -> Blob {
    let blob = body.encode();
    // The envelope of an answer is well under 1 KiB (two names, an id).
    if blob.len() + 1024 > wire::MAX_PAYLOAD {
        return Body::Failed {
            error: format!(
                "the answer ({} bytes) exceeds the mesh frame limit of {} bytes",
                blob.len(),
                wire::MAX_PAYLOAD
            ),
        }
        .encode();
    }
    blob
}

/// `period` times a random factor in [0.8, 1).
fn jittered(period: Duration, random: u64) -> Duration {
    period.mul_f64(0.8 + (random % 1000) as f64 / 5000.0)
}

/// The links a refresh of `origin`'s announcement goes on by (cached until
/// the topology changes); `None` when `origin` is not in it.
fn refresh_children(st: &mut State, origin: &str) -> Option<Vec<String>> {
    if let Some(c) = st.trees.get(origin) {
        return Some(c.clone());
    }
    let c = st.topo.tree_children(origin)?;
    st.trees.insert(origin.to_string(), c.clone());
    Some(c)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_periods_are_spread_below_the_period() {
        let p = Duration::from_secs(10);
        assert_eq!(jittered(p, 0), Duration::from_secs(8));
        assert!(jittered(p, 999) < p && jittered(p, 999) > Duration::from_millis(9990));
    }
}
