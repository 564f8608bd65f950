//! One connection to an agent: the handshake (`RON` both ways, then the
//! agent's first heartbeat, echoed back), then its messages: heartbeats
//! carrying responses, files it sends or asks for, pipe traffic. We send
//! it the commands meant for it, and a heartbeat every 5 s so a serial
//! agent notices a lost daemon. An agent silent for 30 s is dropped.

use super::files;
use super::filter::{self, Subject};
use super::pipes::Pipes;
use super::ron::{self, kind, Message};
use super::server::{Cc, Live, Task};
use super::transport::{self, Event, Out};
use super::tunnel;
use super::ufs;
use crate::vm::Vm;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A client that sent nothing for this long is dropped (minimega's
/// CLIENT_EXPIRED).
pub const SILENCE: Duration = Duration::from_secs(30);
/// The handshake, once `RON` was seen.
pub const HANDSHAKE: Duration = Duration::from_secs(30);
/// Messages queued to one agent.
const OUTBOX: usize = 64;
/// The largest file an agent may send (`cc recv`).
pub const MAX_RECEIVED: u64 = 64 << 30;

/// How the agent reached us.
pub(crate) enum Via {
    /// Its VM's virtio-serial port: the agent must be that VM's.
    Serial(Arc<Vm>),
    /// A `cc listen` port of a namespace: any VM of it.
    Tcp { namespace: String, peer: SocketAddr },
}

impl Via {
    fn label(&self) -> String {
        match self {
            Via::Serial(vm) => format!("vm {} (serial)", vm.name),
            Via::Tcp { peer, .. } => format!("agent at {peer}"),
        }
    }
}

/// How a connection ended, for the serial port's redial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Closed,
    /// The agent cannot be served (too old, or not this VM's).
    Refused,
}

pub(crate) async fn serve<S>(cc: Cc, stream: S, via: Via) -> End
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let label = via.label();
    let tcp = matches!(via, Via::Tcp { .. });
    let (rd, wr) = tokio::io::split(stream);
    let (ev_tx, mut events) = mpsc::channel(16);
    let (out, out_rx) = mpsc::channel(OUTBOX);
    let _reader = Task::spawn(transport::read(rd, ev_tx, tcp));
    let _writer = Task::spawn(transport::write(wr, out_rx, label.clone()));
    // Whether the reader already saw `RON` (a restarted agent).
    let mut hello = false;
    loop {
        if !hello {
            let wait = if tcp { HANDSHAKE } else { Duration::MAX };
            match tokio::time::timeout(wait, events.recv()).await {
                Ok(Some(Event::Hello)) => {}
                Ok(Some(Event::Bad(why))) => {
                    warn!("cc: {label}: {why}; dropping the connection");
                    return End::Closed;
                }
                Ok(Some(Event::Msg(_))) => continue,
                Ok(None) => return End::Closed,
                Err(_) => {
                    warn!("cc: {label}: no RON handshake within {HANDSHAKE:?}; dropping the connection");
                    return End::Closed;
                }
            }
        }
        if out.send(Out::Ron).await.is_err() {
            return End::Closed;
        }
        let first = match tokio::time::timeout(HANDSHAKE, events.recv()).await {
            Ok(Some(Event::Msg(m))) => m,
            Ok(Some(Event::Hello)) => {
                hello = true;
                continue;
            }
            Ok(Some(Event::Bad(why))) => {
                warn!("cc: {label}: malformed handshake ({why}); dropping the connection");
                return End::Closed;
            }
            Ok(None) => return End::Closed,
            Err(_) => {
                warn!("cc: {label}: no handshake message within {HANDSHAKE:?}; dropping the connection");
                return End::Closed;
            }
        };
        let (mut agent, attached) = match Agent::identify(&cc, &via, &label, *first, out.clone()) {
            Ok(a) => a,
            Err(end) => return end,
        };
        let next = agent.run(&mut events).await;
        drop(attached);
        match next {
            Next::Restart => hello = true,
            Next::End(e) => return e,
        }
    }
}

enum Next {
    /// `RON` again on the same connection: a new agent.
    Restart,
    End(End),
}

/// An agent past its handshake.
struct Agent {
    cc: Cc,
    vm: Arc<Vm>,
    uuid: String,
    ns: String,
    label: String,
    mangled: bool,
    live: Live,
    /// Commands up to this id were considered for this session...
    floor: i64,
    /// ... in this epoch of the book (see `Book::epoch`).
    epoch: u64,
    out: mpsc::Sender<Out>,
    root: std::path::PathBuf,
    /// Responses the handshake heartbeat carried (done while we were away).
    early: Vec<ron::Response>,
    pipes: Pipes,
    tunnel: tunnel::Handle,
    /// The tunnel's task: its listeners and connections end with it.
    _tunnel: Option<Task>,
    ufs: ufs::Handle,
    /// The file server relay's task (`cc mount`): its port ends with it.
    _ufs: Option<Task>,
}

/// Leaves the client list (and `cc_active`) however the session ends.
struct Attached {
    cc: Cc,
    vm: Arc<Vm>,
    uuid: String,
    session: u64,
    ufs: ufs::Handle,
}

impl Drop for Attached {
    fn drop(&mut self) {
        // A mount through this connection's file server cannot come back
        // (a new one needs a new 9P session): it goes, not left dead.
        self.cc.mounts().forget_via(&self.uuid, &self.ufs);
        if self.cc.detach(&self.uuid, self.session) {
            self.vm.cc_active.store(false, Ordering::Relaxed);
        }
    }
}

/// Tags an agent sends (`miniccc -tag`) become its VM's, as in minimega.
/// Tags the agent set (`miniccc -tag`, or kept while it was away) become
/// the VM's. No command waits: a tag that cannot be recorded is logged
/// (the agent sends its tags again).
async fn apply_tags(vms: &crate::vm::Vms, vm: &Arc<Vm>, tags: BTreeMap<String, String>) {
    for (k, v) in &tags {
        if let Err(e) = vms.set_tag(std::slice::from_ref(vm), k, v).await {
            warn!(vm = %vm.name, "cc: tag {k}: {e}");
        }
    }
}

fn major_version(v: &str) -> u64 {
    v.trim_start_matches(['v', 'V'])
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

impl Agent {
    fn identify(
        cc: &Cc,
        via: &Via,
        label: &str,
        first: Message,
        out: mpsc::Sender<Out>,
    ) -> Result<(Agent, Attached), End> {
        let Some(client) = first.client.clone().filter(|_| first.kind == kind::CLIENT) else {
            warn!(
                "cc: {label}: the first message is a {} without a client; dropping the connection",
                kind::name(first.kind)
            );
            return Err(End::Closed);
        };
        if major_version(&first.version) == 0 {
            warn!(
                "cc: {label}: miniccc client too old (no message version), please update it; refusing {}",
                client.uuid
            );
            return Err(End::Refused);
        }
        let said = client.uuid.trim().to_ascii_lowercase();
        let (vm, mangled) = match via {
            Via::Serial(vm) => {
                if said == vm.uuid {
                    (vm.clone(), false)
                } else if ron::unmangle(&said).as_deref() == Some(vm.uuid.as_str()) {
                    (vm.clone(), true)
                } else {
                    warn!(
                        "cc: {label}: the agent says it is {said}, not this VM ({}); refusing it",
                        vm.uuid
                    );
                    return Err(End::Refused);
                }
            }
            Via::Tcp { namespace, .. } => match cc.vm_for(&said) {
                Some((vm, m)) if vm.namespace == *namespace => (vm, m),
                _ => {
                    warn!("cc: {label}: unregistered client {said} (no running VM of namespace {namespace} has that UUID); refusing it");
                    return Err(End::Refused);
                }
            },
        };
        let uuid = vm.uuid.clone();
        let ns = vm.namespace.clone();
        let mut echo = first.clone();
        if let Some(c) = echo.client.as_mut() {
            c.responses.clear();
        }
        // The echo is the agent's signal that the handshake is done.
        if out.try_send(Out::Msg(Box::new(echo))).is_err() {
            return Err(End::Closed);
        }
        let mut shown = client.clone();
        shown.uuid = uuid.clone();
        let early = std::mem::take(&mut shown.responses);
        // Unlike minimega, the handshake's tags count too: an agent keeps
        // those set while it was away for it.
        let tags = std::mem::take(&mut shown.tags);
        // minimega dials the agent's tunnel as soon as it is connected.
        let (tunnel, tunnel_task) = tunnel::start(out.clone(), &uuid, &said);
        let (ufs, ufs_task) = ufs::start(out.clone(), &uuid, &said);
        let live = cc.attach(&uuid, &ns, shown, tunnel.clone(), ufs.clone());
        if !tags.is_empty() {
            // The handshake is not async; its tags are saved beside it.
            let (vms, vm) = (cc.inner.vms.clone(), vm.clone());
            tokio::spawn(async move { apply_tags(&vms, &vm, tags).await });
        }
        vm.cc_active.store(true, Ordering::Relaxed);
        let attached = Attached {
            cc: cc.clone(),
            vm: vm.clone(),
            uuid: uuid.clone(),
            session: live.session,
            ufs: ufs.clone(),
        };
        let fresh = client.last_command_id == 0;
        let (floor, epoch) = cc.with_book(&ns, |b| ((b.floor(&uuid, fresh), b.epoch), false));
        info!(
            vm = %vm.name, namespace = %ns,
            "cc: {label}: client {uuid} connected (hostname {}, version {}{})",
            client.hostname,
            client.version,
            if mangled { ", byte-swapped UUID" } else { "" }
        );
        let agent = Agent {
            pipes: Pipes::new(cc.inner.plumber.clone(), &ns, label, out.clone()),
            cc: cc.clone(),
            root: cc.responses_root(&ns),
            vm,
            uuid,
            ns,
            label: label.to_string(),
            mangled,
            live,
            floor,
            epoch,
            out,
            early,
            tunnel,
            _tunnel: tunnel_task,
            ufs,
            _ufs: ufs_task,
        };
        Ok((agent, attached))
    }
}

impl Agent {
    async fn run(&mut self, events: &mut mpsc::Receiver<Event>) -> Next {
        let early = std::mem::take(&mut self.early);
        self.ingest(early).await;
        self.deliver().await;
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut heard = Instant::now();
        let kick = self.live.kick.clone();
        let stop = self.live.stop.clone();
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(Event::Msg(m)) => {
                        heard = Instant::now();
                        if let Err(why) = self.handle(*m).await {
                            warn!("cc: {}: {why}; dropping the connection", self.label);
                            return Next::End(End::Closed);
                        }
                    }
                    Some(Event::Hello) => {
                        info!(vm = %self.vm.name, "cc: {}: the agent started over", self.label);
                        return Next::Restart;
                    }
                    Some(Event::Bad(why)) => {
                        warn!("cc: {}: {why}; dropping the connection", self.label);
                        return Next::End(End::Closed);
                    }
                    None => {
                        info!(vm = %self.vm.name, "cc: {}: client {} disconnected", self.label, self.uuid);
                        return Next::End(End::Closed);
                    }
                },
                _ = tick.tick() => {
                    if heard.elapsed() >= SILENCE {
                        warn!(vm = %self.vm.name, "cc: {}: client {} silent for {SILENCE:?}; dropping it", self.label, self.uuid);
                        return Next::End(End::Closed);
                    }
                    if self.out.is_closed() {
                        return Next::End(End::Closed);
                    }
                    let _ = self.out.try_send(Out::Msg(Box::new(Message::heartbeat())));
                }
                _ = kick.notified() => self.deliver().await,
                _ = stop.notified() => {
                    debug!("cc: {}: session of {} ended here", self.label, self.uuid);
                    return Next::End(End::Closed);
                }
            }
        }
    }

    async fn handle(&mut self, mut m: Message) -> Result<(), String> {
        match m.kind {
            kind::CLIENT => {
                let Some(mut client) = m.client.take() else {
                    return Err("a CLIENT message without a client".into());
                };
                client.uuid = self.uuid.clone();
                let responses = std::mem::take(&mut client.responses);
                let tags = std::mem::take(&mut client.tags);
                self.cc.update_client(&self.uuid, self.live.session, client);
                apply_tags(&self.cc.inner.vms, &self.vm, tags).await;
                self.ingest(responses).await;
            }
            kind::FILE => {
                let Some(file) = m.file.take() else {
                    return Err("a FILE message without a file".into());
                };
                if !m.error.is_empty() {
                    warn!(vm = %self.vm.name, "cc: file error from {}: {}", self.uuid, m.error);
                } else if file.data.is_empty() && file.offset == 0 && !file.eof {
                    self.serve_file(file.name);
                } else {
                    self.receive(file).await;
                }
            }
            kind::PIPE => self.pipes.handle(&m.pipe, m.pipe_mode, &m.pipe_data).await,
            kind::TUNNEL => self.tunnel.piece(m.tunnel).await,
            kind::UFS => self.ufs.piece(m.ufs_mode, m.tunnel).await,
            kind::COMMAND | kind::HEARTBEAT => {}
            other => return Err(format!("unknown message type {other}")),
        }
        Ok(())
    }

    /// Writes responses where phenix reads them, then counts them in.
    async fn ingest(&self, responses: Vec<ron::Response>) {
        if responses.is_empty() {
            return;
        }
        let root = self.root.clone();
        let uuid = self.uuid.clone();
        let ids: Vec<i64> = responses.iter().map(|r| r.id).collect();
        let wrote = tokio::task::spawn_blocking(move || {
            responses
                .iter()
                .map(|r| files::write_response(&root, &uuid, r).map_err(|e| (r.id, e)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for r in wrote {
            if let Err((id, e)) = r {
                warn!("cc: cannot record response {id} of {}: {e}", self.uuid);
            }
        }
        let uuid = self.uuid.clone();
        let unknown: Vec<i64> = self.cc.with_book(&self.ns, |b| {
            let unknown: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|id| !b.check_in(*id, &uuid))
                .collect();
            (unknown, true)
        });
        for id in unknown {
            debug!(
                "cc: response of {} to command {id}, which this node does not have",
                self.uuid
            );
        }
    }

    /// Offers the commands this client has not been offered yet; each
    /// command's filter is matched now, against the client as it last
    /// reported itself and its VM's tags and `vm info` columns.
    async fn deliver(&mut self) {
        let (pending, epoch) = self.cc.with_book(&self.ns, |b| {
            // Cleared since: the new ids start below the old floor.
            let floor = if b.epoch == self.epoch { self.floor } else { 0 };
            ((b.pending(&self.uuid, floor), b.epoch), false)
        });
        if epoch != self.epoch {
            self.epoch = epoch;
            self.floor = 0;
        }
        let Some(upto) = pending.last().map(|c| c.id) else {
            return;
        };
        let client = self
            .cc
            .client(&self.uuid)
            .unwrap_or_else(|| self.live.client.clone());
        let tags = self.tags_for(&pending).await;
        let subject = Subject {
            uuid: &self.uuid,
            hostname: &client.hostname,
            arch: &client.arch,
            os: &client.os,
            ips: &client.ips,
            macs: &client.macs,
            tags: &tags,
        };
        let mut commands = BTreeMap::new();
        for c in pending {
            if filter::matches(c.filter.as_ref(), &subject) {
                commands.insert(c.id, c);
            }
        }
        let sent: Vec<i64> = commands.keys().copied().collect();
        self.floor = upto;
        self.cc.with_book(&self.ns, |b| {
            b.offered(&self.uuid, upto, &sent);
            ((), true)
        });
        if commands.is_empty() {
            return;
        }
        // On disk before it goes out: a daemon killed right after sending
        // must not send it again (the agent would run it twice).
        if let Err(e) = self.cc.flush(&self.ns).await {
            warn!("cc: {}: commands {sent:?} go out unsaved: {e}", self.label);
        }
        debug!("cc: {}: sending commands {sent:?}", self.label);
        let m = Message {
            kind: kind::COMMAND,
            uuid: self.wire_uuid(),
            commands,
            ..Message::default()
        };
        if self.out.send(Out::Msg(Box::new(m))).await.is_err() {
            debug!("cc: {}: gone before its commands went out", self.label);
        }
    }

    /// The UUID as the agent knows itself.
    fn wire_uuid(&self) -> String {
        if self.mangled {
            ron::unmangle(&self.uuid).unwrap_or_else(|| self.uuid.clone())
        } else {
            self.uuid.clone()
        }
    }

    /// The VM's tags, overlaid with the `vm info` columns the pending
    /// commands' filters name (`cc filter name=web1`).
    async fn tags_for(&self, pending: &[ron::Command]) -> BTreeMap<String, String> {
        let mut tags = self.vm.lock().tags.clone();
        let keys: Vec<String> = pending
            .iter()
            .flat_map(|c| filter::tag_keys(c.filter.as_ref()))
            .collect();
        if keys.is_empty() {
            return tags;
        }
        let Some(net) = self.cc.inner.net.get() else {
            return tags;
        };
        let (header, rows) = crate::vm::info::table(
            &self.cc.inner.vms,
            &**net,
            std::slice::from_ref(&self.vm),
            false,
        )
        .await;
        if let Some(row) = rows.first() {
            for (h, v) in header.iter().zip(row) {
                if keys.iter().any(|k| k == h) && !v.is_empty() {
                    tags.insert(h.to_string(), v.clone());
                }
            }
        }
        tags
    }
}

mod transfer;
