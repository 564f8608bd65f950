//! Frame counters: per peer and frame kind, frames and bytes each way,
//! and rates over the last few seconds, for `mesh stats`. The link tasks
//! count with atomics (no lock on the hot path); the book that names the
//! peers and remembers earlier readings for the rates is pure bookkeeping.

use super::wire::{Kind, KINDS};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Readings this far apart (at least) give the rates: a rate covers
/// between one and two of these.
pub const WINDOW: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Tally {
    fn since(&self, earlier: &Tally) -> Tally {
        Tally {
            frames_in: self.frames_in.saturating_sub(earlier.frames_in),
            frames_out: self.frames_out.saturating_sub(earlier.frames_out),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
        }
    }
}

/// One reading of a peer's counters, per kind.
pub type Reading = [Tally; KINDS.len()];

fn index(kind: Kind) -> usize {
    kind as usize - 1
}

/// The live counters of one peer (shared by its link tasks, and kept across
/// its links, so churn shows as Hello frames piling up).
#[derive(Debug, Default)]
pub struct Counters {
    cells: [[AtomicU64; 4]; KINDS.len()],
}

impl Counters {
    pub fn sent(&self, kind: Kind, bytes: usize) {
        let c = &self.cells[index(kind)];
        c[1].fetch_add(1, Ordering::Relaxed);
        c[3].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn received(&self, kind: Kind, bytes: usize) {
        let c = &self.cells[index(kind)];
        c[0].fetch_add(1, Ordering::Relaxed);
        c[2].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn read(&self) -> Reading {
        let mut r = Reading::default();
        for (t, c) in r.iter_mut().zip(&self.cells) {
            let get = |i: usize| c[i].load(Ordering::Relaxed);
            *t = Tally {
                frames_in: get(0),
                frames_out: get(1),
                bytes_in: get(2),
                bytes_out: get(3),
            };
        }
        r
    }

    /// Adds counts made elsewhere (a handshake, before the peer's name was
    /// known).
    pub fn absorb(&self, other: &Counters) {
        for (mine, theirs) in self.cells.iter().zip(&other.cells) {
            for (m, t) in mine.iter().zip(theirs) {
                m.fetch_add(t.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }
}

/// One row of `mesh stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub peer: String,
    pub kind: Kind,
    pub total: Tally,
    /// Frames per second in and out over the last [`WINDOW`] or two.
    pub rate_in: f64,
    pub rate_out: f64,
}

struct Peer {
    counters: Arc<Counters>,
    /// The two latest readings at least [`WINDOW`] apart, oldest first.
    marks: Vec<(Instant, Reading)>,
}

/// Every peer this node has counted frames for.
#[derive(Default)]
pub struct Book {
    peers: BTreeMap<String, Peer>,
}

impl Book {
    /// The counters of `peer`, made on first use.
    pub fn counters(&mut self, peer: &str, now: Instant) -> Arc<Counters> {
        let p = self.peers.entry(peer.to_string()).or_insert_with(|| Peer {
            counters: Arc::default(),
            marks: vec![(now, Reading::default())],
        });
        p.counters.clone()
    }

    /// Takes a reading where the last one is a [`WINDOW`] old; called by a
    /// periodic tick and before every report, so rates never span much
    /// more than two windows.
    pub fn mark(&mut self, now: Instant) {
        for p in self.peers.values_mut() {
            let newest = p.marks.last().map(|m| m.0);
            if newest.is_none_or(|t| now.saturating_duration_since(t) >= WINDOW) {
                p.marks.push((now, p.counters.read()));
                if p.marks.len() > 2 {
                    p.marks.remove(0);
                }
            }
        }
    }

    /// Rows for every peer and kind that ever carried a frame.
    pub fn rows(&mut self, now: Instant) -> Vec<Row> {
        self.mark(now);
        let mut out = Vec::new();
        for (name, p) in &self.peers {
            let current = p.counters.read();
            let (at, earlier) = p
                .marks
                .first()
                .copied()
                .unwrap_or((now, Reading::default()));
            let secs = now.saturating_duration_since(at).as_secs_f64();
            for (i, kind) in KINDS.iter().enumerate() {
                let total = current[i];
                if total == Tally::default() {
                    continue;
                }
                let d = total.since(&earlier[i]);
                let per = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
                out.push(Row {
                    peer: name.clone(),
                    kind: *kind,
                    total,
                    rate_in: per(d.frames_in),
                    rate_out: per(d.frames_out),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_kind_and_direction() {
        let c = Counters::default();
        c.sent(Kind::Lsa, 100);
        c.sent(Kind::Lsa, 50);
        c.received(Kind::Heartbeat, 52);
        let r = c.read();
        assert_eq!(
            r[index(Kind::Lsa)],
            Tally {
                frames_out: 2,
                bytes_out: 150,
                ..Default::default()
            }
        );
        assert_eq!(r[index(Kind::Heartbeat)].frames_in, 1);
        let other = Counters::default();
        other.received(Kind::Hello, 300);
        c.absorb(&other);
        assert_eq!(c.read()[index(Kind::Hello)].bytes_in, 300);
    }

    #[test]
    fn rows_skip_silent_kinds_and_rates_cover_the_window() {
        let t0 = Instant::now();
        let mut b = Book::default();
        let c = b.counters("n2", t0);
        for _ in 0..10 {
            c.sent(Kind::Heartbeat, 52);
        }
        let rows = b.rows(t0 + WINDOW);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].peer.as_str(), rows[0].kind),
            ("n2", Kind::Heartbeat)
        );
        assert!((rows[0].rate_out - 2.0).abs() < 1e-9, "{rows:?}");
        // Quiet since: the rate falls to 0 once a window passes without frames.
        let rows = b.rows(t0 + WINDOW * 2);
        assert_eq!(rows[0].rate_out, 0.0);
        assert_eq!(rows[0].total.frames_out, 10);
        assert_eq!(rows[0].total.bytes_out, 520);
        // The same peer keeps its counters across links.
        assert!(Arc::ptr_eq(&c, &b.counters("n2", t0)));
    }
}
