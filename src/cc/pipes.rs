//! An agent's named pipes (`miniccc -pipe`, `cc exec stdout=PIPE ...`):
//! the PIPE messages of one session, tied to the node's plumber as
//! minimega's ron server ties them to miniplumber. Pipes are the agent's
//! namespace's; messages going back to the agent name the pipe as it did.
//! Everything is closed when the session ends (dropped).

use super::ron::{kind, pipe, Message};
use super::server::Task;
use super::transport::Out;
use crate::plumb::{self, PipeWriter, Plumber};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// The most pipes one agent may hold open (readers and writers each), so a
/// looping agent cannot grow the plumber's table without end.
const MAX_PIPES: usize = 1024;

pub(crate) struct Pipes {
    plumber: Plumber,
    ns: String,
    label: String,
    out: mpsc::Sender<Out>,
    readers: HashMap<String, Task>,
    writers: HashMap<String, PipeWriter>,
}

fn message(name: &str, mode: i64, data: String) -> Message {
    Message {
        kind: kind::PIPE,
        pipe: name.to_string(),
        pipe_mode: mode,
        pipe_data: data,
        ..Message::default()
    }
}

impl Pipes {
    pub(crate) fn new(plumber: Plumber, ns: &str, label: &str, out: mpsc::Sender<Out>) -> Pipes {
        Pipes {
            plumber,
            ns: ns.to_string(),
            label: label.to_string(),
            out,
            readers: HashMap::new(),
            writers: HashMap::new(),
        }
    }

    /// One PIPE message from the agent. Nothing it sends is fatal to the
    /// session: minimega logs and goes on, and so do we.
    pub(crate) async fn handle(&mut self, name: &str, mode: i64, data: &str) {
        let full = match plumb::production::checked(&self.ns, name) {
            Ok(f) => f,
            Err(e) => {
                warn!("cc: {}: pipe message for a bad pipe name: {e}", self.label);
                return;
            }
        };
        match mode {
            pipe::NEW_READER => self.new_reader(name, full),
            pipe::NEW_WRITER => {
                if self.writers.len() >= MAX_PIPES {
                    warn!(
                        "cc: {}: more than {MAX_PIPES} pipe writers; ignoring {full}",
                        self.label
                    );
                    return;
                }
                let plumber = &self.plumber;
                self.writers
                    .entry(full)
                    .or_insert_with_key(|f| plumber.writer(f));
            }
            pipe::CLOSE_READER => {
                self.readers.remove(&full);
            }
            pipe::CLOSE_WRITER => {
                self.writers.remove(&full);
            }
            // Data from the agent is a write (its reading end is ours).
            pipe::DATA => match self.writers.get(&full) {
                Some(w) => w.send(data).await,
                None => warn!("cc: {}: no such pipe: {full}", self.label),
            },
            other => warn!("cc: {}: unknown pipe mode {other} for {full}", self.label),
        }
    }

    fn new_reader(&mut self, name: &str, full: String) {
        self.readers.retain(|_, t| !t.is_finished());
        if self.readers.contains_key(&full) {
            return;
        }
        if self.readers.len() >= MAX_PIPES {
            warn!(
                "cc: {}: more than {MAX_PIPES} pipe readers; ignoring {full}",
                self.label
            );
            return;
        }
        let mut reader = self.plumber.reader(&full);
        let out = self.out.clone();
        let name = name.to_string();
        let label = self.label.clone();
        let task = Task::spawn(async move {
            loop {
                let (mode, data) = match reader.recv().await {
                    Some(v) => (pipe::DATA, v),
                    None => (pipe::CLOSE_READER, String::new()),
                };
                let m = message(&name, mode, data);
                if out.send(Out::Msg(Box::new(m))).await.is_err() || mode == pipe::CLOSE_READER {
                    debug!("cc: {label}: reader of {} done", reader.pipe());
                    return;
                }
            }
        });
        if let Some(t) = task {
            self.readers.insert(full, t);
        }
    }
}
