//! The pipes of this node (bookkeeping, no I/O): mode, via, counters, the
//! last message, open writers, and each local reader's queue.
//!
//! A reader's queue is bounded by bytes: minimega's writes never block, so
//! a reader that stops reading loses messages (counted, logged once)
//! instead of stalling every writer of the pipe or growing without end.

use super::modes::{Mode, ReaderKey};
use super::production;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Bytes one reader may have waiting before its messages are dropped.
pub const QUEUE_BYTES: usize = 16 << 20;

/// The longest message, as minimega's scanners allow (TOKEN_MAX).
pub const MAX_MESSAGE: usize = 1 << 20;

struct Slot {
    tx: mpsc::UnboundedSender<String>,
    queued: Arc<AtomicUsize>,
    dropped: u64,
    /// For a pipeline's readers: messages received and not yet passed on.
    unfinished: Option<Arc<AtomicUsize>>,
}

#[derive(Default)]
pub struct Pipe {
    pub mode: Mode,
    pub log: bool,
    /// The via command; empty when none.
    pub via: Vec<String>,
    /// The node that runs the via, where every write goes first.
    pub via_host: Option<String>,
    /// Messages written to the pipe on this node.
    pub count: u64,
    pub last: String,
    pub writers: usize,
    pub last_recipient: Option<ReaderKey>,
    readers: BTreeMap<u64, Slot>,
}

impl Pipe {
    pub fn reader_ids(&self) -> Vec<u64> {
        self.readers.keys().copied().collect()
    }
}

/// One row of `pipe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeInfo {
    pub name: String,
    pub mode: Mode,
    pub readers: usize,
    pub writers: usize,
    pub count: u64,
    pub via: String,
    pub last: String,
}

/// The receiving end of a reader's queue.
pub struct Queue {
    pub rx: mpsc::UnboundedReceiver<String>,
    pub queued: Arc<AtomicUsize>,
    unfinished: Option<Arc<AtomicUsize>>,
}

impl Queue {
    /// The next message; None once the pipe is gone (and the queue drained).
    pub async fn recv(&mut self) -> Option<String> {
        let m = self.rx.recv().await?;
        self.queued.fetch_sub(m.len(), Ordering::Relaxed);
        Some(m)
    }

    /// A tracked reader has passed its last message on.
    pub fn finished(&self) {
        if let Some(u) = &self.unfinished {
            let _ = u.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }
}

#[derive(Default)]
pub struct Table {
    pipes: BTreeMap<String, Pipe>,
    next_id: u64,
}

impl Table {
    pub fn get(&self, name: &str) -> Option<&Pipe> {
        self.pipes.get(name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Pipe> {
        self.pipes.get_mut(name)
    }

    /// The pipe, made on first use as minimega makes it.
    pub fn entry(&mut self, name: &str) -> &mut Pipe {
        self.pipes.entry(name.to_string()).or_default()
    }

    /// A new reader; a `tracked` one counts the messages it has not yet
    /// passed on (see [`Table::settled`]).
    pub fn add_reader(&mut self, name: &str, tracked: bool) -> (u64, Queue) {
        self.next_id += 1;
        let id = self.next_id;
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let unfinished = tracked.then(|| Arc::new(AtomicUsize::new(0)));
        self.entry(name).readers.insert(
            id,
            Slot {
                tx,
                queued: queued.clone(),
                dropped: 0,
                unfinished: unfinished.clone(),
            },
        );
        (
            id,
            Queue {
                rx,
                queued,
                unfinished,
            },
        )
    }

    /// True when no tracked reader holds a message it has not passed on:
    /// whatever was written has gone through the pipelines' pipes.
    pub fn settled(&self) -> bool {
        self.pipes
            .values()
            .flat_map(|p| p.readers.values())
            .all(|s| {
                s.unfinished
                    .as_ref()
                    .is_none_or(|u| u.load(Ordering::Relaxed) == 0)
            })
    }

    pub fn remove_reader(&mut self, name: &str, id: u64) {
        if let Some(p) = self.pipes.get_mut(name) {
            p.readers.remove(&id);
        }
    }

    pub fn add_writer(&mut self, name: &str) {
        self.entry(name).writers += 1;
    }

    pub fn remove_writer(&mut self, name: &str) {
        if let Some(p) = self.pipes.get_mut(name) {
            p.writers = p.writers.saturating_sub(1);
        }
    }

    /// Counts a message written to the pipe here and keeps it as the last.
    pub fn record(&mut self, name: &str, value: &str) {
        let p = self.entry(name);
        p.count += 1;
        p.last = value.to_string();
        if p.log {
            info!(pipe = name, "pipe {name}: {}", value.trim());
        }
    }

    /// Hands messages to local readers (by id); unknown ids are skipped.
    pub fn deliver(&mut self, name: &str, items: impl IntoIterator<Item = (u64, String)>) {
        let Some(p) = self.pipes.get_mut(name) else {
            return;
        };
        for (id, value) in items {
            let Some(slot) = p.readers.get_mut(&id) else {
                continue;
            };
            let size = value.len();
            if slot.queued.load(Ordering::Relaxed) + size > QUEUE_BYTES {
                if slot.dropped == 0 {
                    warn!(
                        pipe = name,
                        "a reader of pipe {name} is not keeping up; its messages are dropped"
                    );
                }
                slot.dropped += 1;
                continue;
            }
            slot.queued.fetch_add(size, Ordering::Relaxed);
            if let Some(u) = &slot.unfinished {
                u.fetch_add(1, Ordering::Relaxed);
            }
            if slot.tx.send(value).is_err() {
                slot.queued.fetch_sub(size, Ordering::Relaxed);
                if let Some(u) = &slot.unfinished {
                    u.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Hands one message to every local reader.
    pub fn deliver_all(&mut self, name: &str, value: &str) {
        let ids = self
            .pipes
            .get(name)
            .map(Pipe::reader_ids)
            .unwrap_or_default();
        self.deliver(name, ids.into_iter().map(|id| (id, value.to_string())));
    }

    /// Removes a pipe; its readers see the end of their input. A pipe
    /// with open writers stays (minimega's rule).
    pub fn delete(&mut self, name: &str) -> Result<(), String> {
        match self.pipes.get(name) {
            None => Err(format!("no such pipe: {name}")),
            Some(p) if p.writers != 0 => {
                Err("cannot delete named pipe with open writers".to_string())
            }
            Some(_) => {
                self.pipes.remove(name);
                Ok(())
            }
        }
    }

    /// The pipes of one namespace, by name.
    pub fn names(&self, ns: &str) -> Vec<String> {
        self.pipes
            .keys()
            .filter(|n| production::in_namespace(n, ns))
            .cloned()
            .collect()
    }

    pub fn info(&self, ns: &str) -> Vec<PipeInfo> {
        self.pipes
            .iter()
            .filter(|(n, _)| production::in_namespace(n, ns))
            .map(|(n, p)| PipeInfo {
                name: n.clone(),
                mode: p.mode,
                readers: p.readers.len(),
                writers: p.writers,
                count: p.count,
                via: p.via.join(" "),
                last: p.last.trim().to_string(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut Queue) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(m) = q.rx.try_recv() {
            q.queued.fetch_sub(m.len(), Ordering::Relaxed);
            out.push(m);
        }
        out
    }

    #[test]
    fn readers_writers_counts_and_the_last_message() {
        let mut t = Table::default();
        let (a, mut qa) = t.add_reader("ns//p", false);
        let (b, mut qb) = t.add_reader("ns//p", false);
        t.add_writer("ns//p");
        t.record("ns//p", "hello");
        t.deliver_all("ns//p", "hello");
        t.record("ns//p", "only b");
        t.deliver("ns//p", [(b, "only b".to_string()), (999, "nobody".into())]);
        assert_eq!(drain(&mut qa), ["hello"]);
        assert_eq!(drain(&mut qb), ["hello", "only b"]);
        let info = t.info("ns");
        assert_eq!(info.len(), 1);
        assert_eq!((info[0].readers, info[0].writers, info[0].count), (2, 1, 2));
        assert_eq!(info[0].last, "only b");
        t.remove_reader("ns//p", a);
        assert_eq!(t.get("ns//p").unwrap().reader_ids(), [b]);
        assert!(t.info("other").is_empty());
    }

    #[test]
    fn settled_once_tracked_readers_passed_everything_on() {
        let mut t = Table::default();
        let (_, mut q) = t.add_reader("ns//p", true);
        let (_, _untracked) = t.add_reader("ns//p", false);
        assert!(t.settled());
        t.deliver_all("ns//p", "m");
        assert!(!t.settled());
        assert_eq!(drain(&mut q), ["m"]);
        assert!(!t.settled(), "received is not yet passed on");
        q.finished();
        assert!(t.settled());
        q.finished();
        assert!(t.settled(), "never below zero");
    }

    #[test]
    fn a_pipe_with_writers_stays_and_deleting_ends_its_readers() {
        let mut t = Table::default();
        let (_, mut q) = t.add_reader("ns//p", false);
        t.add_writer("ns//p");
        assert_eq!(
            t.delete("ns//p").unwrap_err(),
            "cannot delete named pipe with open writers"
        );
        t.remove_writer("ns//p");
        t.delete("ns//p").unwrap();
        assert!(matches!(
            q.rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        assert_eq!(t.delete("ns//p").unwrap_err(), "no such pipe: ns//p");
    }

    #[test]
    fn a_reader_that_does_not_read_loses_messages_past_its_bound() {
        let mut t = Table::default();
        let (id, mut q) = t.add_reader("ns//p", false);
        let big = "x".repeat(QUEUE_BYTES / 4 + 1);
        for _ in 0..5 {
            t.deliver("ns//p", [(id, big.clone())]);
        }
        assert_eq!(drain(&mut q).len(), 3, "the fourth would pass the bound");
        // Once read, there is room again.
        t.deliver("ns//p", [(id, big)]);
        assert_eq!(drain(&mut q).len(), 1);
    }
}
