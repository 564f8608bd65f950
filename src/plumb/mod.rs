//! minimega's plumber: named pipes that carry newline-delimited messages
//! between the command line, programs, VMs (through cc) and other nodes,
//! and `plumb` pipelines of pipes and programs.
//!
//! A pipe is made on first use and has any number of readers and writers;
//! a message written goes to its readers by the pipe's mode (all,
//! round-robin, random) through its via, if any, once per reader. Writes
//! never block and are not buffered: with no reader, a message is only
//! counted. Pipes are named `<namespace>//<pipe>` and span the mesh.
//!
//! - [`modes`], [`production`], [`pipes`]: pure (who gets a message, names
//!   and productions, the table of this node's pipes)
//! - [`via`], [`pipeline`]: programs (vias, `plumb` pipelines)
//! - [`remote`]: the plumbers of other nodes, over the mesh
//! - [`socket`]: the command socket's `PlumbPipe` streams
//! - [`commands`]: `plumb`, `pipe`, `clear plumb`, `clear pipe`
//!
//! The in-process API (what cc uses for its agents' pipes): [`Plumber::reader`]
//! and [`Plumber::writer`] open a reader or writer on a pipe by its full
//! name ([`qualify`] makes one); dropping them closes them.

pub mod modes;
pub mod pipeline;
pub mod pipes;
pub mod production;
pub mod remote;
pub mod socket;
pub mod via;

pub use modes::Mode;
pub use production::qualify;

use modes::{Delivery, ReaderKey};
use pipes::{PipeInfo, Table};
use remote::{Message, Remote, To};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tracing::{debug, warn};
use via::Via;

/// This node's plumber. Cheap to clone: every clone is the same plumber.
#[derive(Clone)]
pub struct Plumber(Arc<Inner>);

struct Inner {
    me: String,
    table: Mutex<Table>,
    pipelines: Mutex<BTreeMap<String, pipeline::Running>>,
    remote: OnceLock<Arc<dyn Remote>>,
    via: Arc<dyn Via>,
}

impl Plumber {
    pub fn new(me: &str) -> Plumber {
        Plumber::with_via(me, Arc::new(via::ProcessVia))
    }

    pub fn with_via(me: &str, via: Arc<dyn Via>) -> Plumber {
        Plumber(Arc::new(Inner {
            me: me.to_string(),
            table: Mutex::new(Table::default()),
            pipelines: Mutex::new(BTreeMap::new()),
            remote: OnceLock::new(),
            via,
        }))
    }

    /// Joins the plumbers of other nodes; once, when the node is built.
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        let _ = self.0.remote.set(remote);
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.0.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn others(&self) -> Vec<String> {
        self.0.remote.get().map(|r| r.others()).unwrap_or_default()
    }

    async fn send(&self, targets: Vec<String>, msg: Message) -> Vec<remote::Answer> {
        match self.0.remote.get() {
            Some(r) if !targets.is_empty() => r.send(targets, msg).await,
            _ => Vec::new(),
        }
    }

    // ---- the in-process API ----

    /// A new reader of `pipe` (a full name, `ns//name`). It receives each
    /// message delivered to it, until the pipe is deleted.
    pub fn reader(&self, pipe: &str) -> PipeReader {
        self.new_reader(pipe, false)
    }

    fn new_reader(&self, pipe: &str, tracked: bool) -> PipeReader {
        let (id, queue) = self.table().add_reader(pipe, tracked);
        debug!(pipe, id, "new pipe reader");
        PipeReader {
            plumber: self.clone(),
            pipe: pipe.to_string(),
            id,
            queue,
        }
    }

    /// A new writer of `pipe` (a full name). A pipe with open writers
    /// cannot be deleted.
    pub fn writer(&self, pipe: &str) -> PipeWriter {
        self.table().add_writer(pipe);
        PipeWriter {
            plumber: self.clone(),
            pipe: pipe.to_string(),
        }
    }

    /// Writes one message (without its newline) to `pipe`, as `pipe NAME
    /// DATA` does: delivered by the pipe's mode to readers on every node.
    pub async fn write(&self, pipe: &str, value: &str) {
        self.write_here(pipe, trim_newline(value), false).await
    }

    async fn write_here(&self, pipe: &str, value: &str, forwarded: bool) {
        let plan = {
            let mut t = self.table();
            let p = t.entry(pipe);
            match p.via_host.clone().filter(|h| *h != self.0.me && !forwarded) {
                Some(host) => Err(host),
                None => Ok((
                    p.mode,
                    p.via.clone(),
                    p.reader_ids(),
                    p.last_recipient.clone(),
                )),
            }
        };
        let (mode, via, local, last) = match plan {
            Ok(plan) => plan,
            Err(host) => {
                let msg = Message::Write {
                    pipe: pipe.to_string(),
                    value: value.to_string(),
                };
                for (h, r) in self.send(vec![host], msg).await {
                    if let Err(e) = r {
                        warn!(pipe, "cannot pass a write to {h}, which runs the via: {e}");
                    }
                }
                return;
            }
        };
        let others = self.others();
        let remote_readers = if mode != Mode::All || !via.is_empty() {
            self.remote_readers(pipe, &others).await
        } else {
            Vec::new()
        };
        let me = self.0.me.clone();
        let mut keys: Vec<ReaderKey> = local
            .iter()
            .map(|id| ReaderKey {
                host: me.clone(),
                id: *id,
            })
            .collect();
        keys.extend(remote_readers.iter().cloned());
        let delivery = modes::schedule(mode, &keys, last.as_ref(), random());
        let recipients: Vec<ReaderKey> = match &delivery {
            Delivery::All => keys,
            Delivery::One(k) => vec![k.clone()],
        };
        // Each recipient's value: the message itself, or its own via run.
        let mut values: Vec<(ReaderKey, String)> = Vec::with_capacity(recipients.len());
        for k in recipients {
            if via.is_empty() {
                values.push((k, value.to_string()));
                continue;
            }
            match self.0.via.run(&via, value).await {
                Ok(v) => values.push((k, v)),
                Err(e) => warn!(pipe, "{e}"),
            }
        }
        {
            let mut t = self.table();
            t.record(pipe, value);
            if let (Delivery::One(k), Some(p)) = (&delivery, t.get_mut(pipe)) {
                p.last_recipient = Some(k.clone());
            }
            let mine = values
                .iter()
                .filter(|(k, _)| k.host == me)
                .map(|(k, v)| (k.id, v.clone()));
            t.deliver(pipe, mine);
        }
        if others.is_empty() {
            return;
        }
        let to = if via.is_empty() && delivery == Delivery::All {
            To::All
        } else {
            To::Readers(values.into_iter().filter(|(k, _)| k.host != me).collect())
        };
        let msg = Message::Deliver {
            pipe: pipe.to_string(),
            value: value.to_string(),
            to,
        };
        for (h, r) in self.send(others, msg).await {
            if let Err(e) = r {
                debug!(pipe, "cannot deliver to {h}: {e}");
            }
        }
    }

    /// The readers other nodes hold on `pipe`.
    async fn remote_readers(&self, pipe: &str, others: &[String]) -> Vec<ReaderKey> {
        let msg = Message::Readers {
            pipe: pipe.to_string(),
        };
        let mut out = Vec::new();
        for (host, r) in self.send(others.to_vec(), msg).await {
            match r {
                Ok(v) => {
                    let ids: Vec<u64> = serde_json::from_value(v).unwrap_or_default();
                    out.extend(ids.into_iter().map(|id| ReaderKey {
                        host: host.clone(),
                        id,
                    }));
                }
                Err(e) => debug!(pipe, "no readers from {host}: {e}"),
            }
        }
        out
    }

    /// Handles a message from another node's plumber; the answer goes back
    /// as the response's data.
    pub async fn handle(&self, msg: Message) -> Result<serde_json::Value, String> {
        match msg {
            Message::Deliver { pipe, value, to } => {
                let mut t = self.table();
                if t.get(&pipe).is_none() {
                    return Ok(serde_json::Value::Null);
                }
                t.record(&pipe, &value);
                match to {
                    To::All => t.deliver_all(&pipe, &value),
                    To::Readers(items) => {
                        let me = &self.0.me;
                        let mine = items
                            .into_iter()
                            .filter(|(k, _)| k.host == *me)
                            .map(|(k, v)| (k.id, v));
                        t.deliver(&pipe, mine);
                    }
                }
                Ok(serde_json::Value::Null)
            }
            Message::Readers { pipe } => {
                let ids = self
                    .table()
                    .get(&pipe)
                    .map(pipes::Pipe::reader_ids)
                    .unwrap_or_default();
                Ok(serde_json::json!(ids))
            }
            Message::Write { pipe, value } => {
                self.write_here(&pipe, &value, true).await;
                Ok(serde_json::Value::Null)
            }
            Message::ViaHost { pipe, host } => {
                self.table().entry(&pipe).via_host = host;
                Ok(serde_json::Value::Null)
            }
        }
    }

    // ---- pipe settings ----

    pub fn set_mode(&self, pipe: &str, mode: Mode) {
        self.table().entry(pipe).mode = mode;
    }

    pub fn set_log(&self, pipe: &str, log: bool) {
        self.table().entry(pipe).log = log;
    }

    /// Sets (or, with an empty command, clears) the pipe's via; it runs on
    /// this node, so the other nodes pass their writes here.
    pub async fn set_via(&self, pipe: &str, command: Vec<String>) {
        let host = (!command.is_empty()).then(|| self.0.me.clone());
        {
            let mut t = self.table();
            let p = t.entry(pipe);
            p.via = command;
            p.via_host = host.clone();
        }
        let msg = Message::ViaHost {
            pipe: pipe.to_string(),
            host,
        };
        for (h, r) in self.send(self.others(), msg).await {
            if let Err(e) = r {
                warn!(pipe, "cannot tell {h} where the via runs: {e}");
            }
        }
    }

    pub fn exists(&self, pipe: &str) -> bool {
        self.table().get(pipe).is_some()
    }

    /// Deletes a pipe: its readers see the end of their input.
    pub fn delete(&self, pipe: &str) -> Result<(), String> {
        self.table().delete(pipe)
    }

    /// Deletes every pipe of a namespace; the first refusal is returned
    /// after the others went.
    pub fn delete_all(&self, ns: &str) -> Result<(), String> {
        let mut t = self.table();
        let mut first = None;
        for name in t.names(ns) {
            if let Err(e) = t.delete(&name) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The pipes of a namespace, by name.
    pub fn pipes(&self, ns: &str) -> Vec<PipeInfo> {
        self.table().info(ns)
    }

    /// Waits (up to `limit`) until the messages already written have gone
    /// through the pipes of every pipeline, so a listing right after a
    /// write shows where they went.
    pub async fn settle(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.table().settled() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
}

/// minimega adds the newline a message lacks; here messages are kept
/// without it, and the edges (sockets, programs) add it back.
fn trim_newline(v: &str) -> &str {
    v.strip_suffix('\n').unwrap_or(v)
}

fn random() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    u64::from_le_bytes(b)
}

/// A reader of one pipe; closed when dropped.
pub struct PipeReader {
    plumber: Plumber,
    pipe: String,
    id: u64,
    queue: pipes::Queue,
}

impl PipeReader {
    /// The next message (without a newline); None once the pipe is deleted.
    pub async fn recv(&mut self) -> Option<String> {
        self.queue.recv().await
    }

    pub fn pipe(&self) -> &str {
        &self.pipe
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.plumber.table().remove_reader(&self.pipe, self.id);
    }
}

/// A writer of one pipe; closed when dropped.
pub struct PipeWriter {
    plumber: Plumber,
    pipe: String,
}

impl PipeWriter {
    /// Writes one message, as [`Plumber::write`].
    pub async fn send(&self, value: &str) {
        self.plumber.write(&self.pipe, value).await
    }

    pub fn pipe(&self) -> &str {
        &self.pipe
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.plumber.table().remove_writer(&self.pipe);
    }
}

#[cfg(test)]
mod tests;
