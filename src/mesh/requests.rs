//! Bookkeeping of requests, on both ends. Pure.
//!
//! The requester's side ([`Requests`]) waits for one answer per node. A
//! request in flight through a node that dies is lost with it, so when a
//! link or a node vanishes from the topology, each request sent within the
//! last [`RESEND_WINDOW`] goes again to the nodes that have not answered
//! (a request older than that has long been delivered, or failed).
//!
//! The destination's side ([`Seen`]) makes that resend safe: a request it
//! has seen (same sender, same id) is not run again; if it already has the
//! answer, that answer goes again (it may be what was lost).

use super::graph::Topology;
use super::routed::{Blob, Routed};
use crate::command::Response;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Requests younger than this are sent again after a loss in the mesh.
pub const RESEND_WINDOW: Duration = Duration::from_secs(3);
/// How long a destination remembers the requests it ran: far longer than
/// a resend can come after its original.
pub const SEEN_FOR: Duration = Duration::from_secs(60);
/// Answers at most this big are kept to send again; a larger one is sent
/// once (a resend of it then gets nothing, and its requester times out).
pub const KEEP_ANSWER: usize = 64 << 10;
/// At most this many remembered requests.
const SEEN_MAX: usize = 1 << 16;

pub type Outcome = Result<Vec<Response>, String>;
pub type Answer = oneshot::Sender<Outcome>;

struct Waiting {
    sent: Instant,
    /// The request as first sent, to send again (its body is shared).
    request: Routed,
    /// Nodes that owe an answer.
    owed: HashMap<String, Answer>,
}

#[derive(Default)]
pub struct Requests {
    by_id: HashMap<u64, Waiting>,
}

impl Requests {
    pub fn add(&mut self, request: Routed, owed: Vec<(String, Answer)>, now: Instant) {
        if owed.is_empty() {
            return;
        }
        self.by_id.insert(
            request.id,
            Waiting {
                sent: now,
                request,
                owed: owed.into_iter().collect(),
            },
        );
    }

    /// `src`'s answer to request `id`; false if none was owed.
    pub fn complete(&mut self, id: u64, src: &str, outcome: Outcome) -> bool {
        let Some(w) = self.by_id.get_mut(&id) else {
            return false;
        };
        let Some(tx) = w.owed.remove(src) else {
            return false;
        };
        let _ = tx.send(outcome);
        if w.owed.is_empty() {
            self.by_id.remove(&id);
        }
        true
    }

    /// Gives up waiting for request `id` (its caller timed out).
    pub fn forget(&mut self, id: u64) {
        self.by_id.remove(&id);
    }

    /// Fails what nodes no longer in `topo` owe.
    pub fn fail_gone(&mut self, topo: &Topology) {
        for w in self.by_id.values_mut() {
            let gone: Vec<String> = w
                .owed
                .keys()
                .filter(|n| !topo.contains(n))
                .cloned()
                .collect();
            for n in gone {
                if let Some(tx) = w.owed.remove(&n) {
                    let _ = tx.send(Err("left the mesh before answering".into()));
                }
            }
        }
        self.by_id.retain(|_, w| !w.owed.is_empty());
    }

    /// After a loss in the mesh: the young requests again, each to the
    /// nodes that still owe an answer.
    pub fn resends(&self, now: Instant) -> Vec<Routed> {
        let mut out = Vec::new();
        for w in self.by_id.values() {
            if now.saturating_duration_since(w.sent) < RESEND_WINDOW {
                let mut owed: Vec<String> = w.owed.keys().cloned().collect();
                owed.sort();
                out.push(w.request.to(owed));
            }
        }
        out
    }
}

/// What a destination knows of a request it is handed.
#[derive(Debug, Clone, PartialEq)]
pub enum Admit {
    /// Not seen before: run it.
    New,
    /// Seen and still running: its answer will come.
    Running,
    /// Seen and answered: this answer again, if it was kept.
    Done(Option<Blob>),
}

#[derive(Default)]
pub struct Seen {
    runs: HashMap<(String, u64), Option<Option<Blob>>>,
    order: VecDeque<(Instant, String, u64)>,
}

impl Seen {
    pub fn admit(&mut self, src: &str, id: u64, now: Instant) -> Admit {
        self.expire(now);
        let key = (src.to_string(), id);
        match self.runs.get(&key) {
            Some(None) => Admit::Running,
            Some(Some(answer)) => Admit::Done(answer.clone()),
            None => {
                self.runs.insert(key, None);
                self.order.push_back((now, src.to_string(), id));
                Admit::New
            }
        }
    }

    /// The request ran; `answer` is what went back, kept if small.
    pub fn done(&mut self, src: &str, id: u64, answer: &Blob) {
        if let Some(slot) = self.runs.get_mut(&(src.to_string(), id)) {
            *slot = Some((answer.len() <= KEEP_ANSWER).then(|| answer.clone()));
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, src, id)) = self.order.front() {
            if now.saturating_duration_since(*at) < SEEN_FOR && self.order.len() < SEEN_MAX {
                break;
            }
            self.runs.remove(&(src.clone(), *id));
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::routed::Body;
    use std::collections::{BTreeMap, BTreeSet};

    fn request(id: u64, dst: &[&str]) -> Routed {
        Routed {
            src: "n1".into(),
            dst: dst.iter().map(|s| s.to_string()).collect(),
            request: true,
            ttl: 64,
            id,
            body: Body::Request {
                line: "version".into(),
                namespace: None,
            }
            .encode(),
        }
    }

    fn owe(names: &[&str]) -> (Vec<(String, Answer)>, Vec<oneshot::Receiver<Outcome>>) {
        names
            .iter()
            .map(|n| {
                let (tx, rx) = oneshot::channel();
                ((n.to_string(), tx), rx)
            })
            .unzip()
    }

    #[test]
    fn answers_complete_once_and_lost_nodes_fail() {
        let t0 = Instant::now();
        let mut r = Requests::default();
        let (owed, mut rx) = owe(&["n2", "n3", "n4"]);
        r.add(request(7, &["n2", "n3", "n4"]), owed, t0);
        assert!(r.complete(7, "n2", Ok(vec![])));
        assert!(!r.complete(7, "n2", Ok(vec![])), "answered twice");
        assert!(!r.complete(8, "n3", Ok(vec![])), "no such request");
        assert_eq!(rx[0].try_recv().unwrap(), Ok(vec![]));
        // n4 left; n3 is still there.
        let mut links = BTreeSet::new();
        links.insert("n3".to_string());
        let topo = Topology::compute("n1", &links, &BTreeMap::new());
        r.fail_gone(&topo);
        assert_eq!(
            rx[2].try_recv().unwrap(),
            Err("left the mesh before answering".into())
        );
        assert!(rx[1].try_recv().is_err(), "n3 still owes its answer");
        // A resend goes to n3 alone, with the same id and body.
        let again = r.resends(t0 + Duration::from_millis(10));
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].id, again[0].dst.clone()), (7, vec!["n3".into()]));
        // Not once the request is old.
        assert!(r.resends(t0 + RESEND_WINDOW).is_empty());
        r.forget(7);
        assert!(!r.complete(7, "n3", Ok(vec![])));
    }

    #[test]
    fn a_destination_runs_a_request_once_and_answers_it_again() {
        let t0 = Instant::now();
        let mut s = Seen::default();
        assert_eq!(s.admit("n1", 1, t0), Admit::New);
        assert_eq!(s.admit("n1", 1, t0), Admit::Running);
        assert_eq!(s.admit("n2", 1, t0), Admit::New, "ids are per sender");
        let answer = Body::Failed { error: "x".into() }.encode();
        s.done("n1", 1, &answer);
        assert_eq!(s.admit("n1", 1, t0), Admit::Done(Some(answer)));
        let big = Blob::new(vec![b' '; KEEP_ANSWER + 1]);
        s.done("n2", 1, &big);
        assert_eq!(s.admit("n2", 1, t0), Admit::Done(None));
        // Forgotten after a while.
        assert_eq!(s.admit("n1", 1, t0 + SEEN_FOR), Admit::New);
    }
}
