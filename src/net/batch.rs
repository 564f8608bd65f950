//! Coalesces the switch changes of concurrent callers into one batch: a
//! launch of a hundred VMs prepares them concurrently (one hook call per
//! VM), and each VM's ports would otherwise be a transaction of its own.
//! The worker takes what is queued, waits a few milliseconds while more
//! keeps arriving, and applies it all at once. A launch announces how many
//! VMs will ask ([`Batcher::expect`], from the hook's admission), and the
//! worker waits for all of them (within bounds): otherwise a VM whose
//! prepare runs late (its task queued behind the others' QEMU spawns)
//! would get a transaction, and a QEMU start, of its own after everyone
//! else's. When the batch as a whole is refused, each caller's part is
//! retried alone, so one bad request fails only its own caller.
//!
//! The announcement is a guard ([`Expecting`], the launch's ticket): a VM
//! either arrives (its job is queued) or settles without arriving (its
//! launch failed before it got here), and when the launch ends whatever
//! it announced and never came is withdrawn. So a failed launch never
//! leaves the worker waiting for VMs that will not come.

use super::ovs::{Op, Switch};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};

/// How long the worker waits for more requests after the last arrived.
const TICK: Duration = Duration::from_millis(3);
/// The most it waits in all, with nothing announced.
const WINDOW: Duration = Duration::from_millis(60);
/// How long announced callers are waited for, at most.
const EXPECT_FOR: Duration = Duration::from_secs(3);

/// Callers announced and not yet arrived, and until when to wait for them.
#[derive(Default)]
struct Expected {
    n: usize,
    until: Option<Instant>,
    /// VMs that arrived and whose launch has not settled yet: their
    /// settling withdraws nothing.
    arrived: HashSet<u64>,
}

impl Expected {
    fn waiting(&self) -> bool {
        self.n > 0 && self.until.is_some_and(|t| Instant::now() < t)
    }
}

struct Job {
    ops: Vec<Op>,
    done: oneshot::Sender<Result<(), String>>,
}

pub struct Batcher {
    switch: Arc<dyn Switch>,
    tx: OnceLock<mpsc::UnboundedSender<Job>>,
    expected: Arc<Mutex<Expected>>,
}

fn lock(e: &Mutex<Expected>) -> std::sync::MutexGuard<'_, Expected> {
    e.lock().unwrap_or_else(|p| p.into_inner())
}

impl Batcher {
    pub fn new(switch: Arc<dyn Switch>) -> Batcher {
        Batcher {
            switch,
            tx: OnceLock::new(),
            expected: Arc::default(),
        }
    }

    /// `n` VMs of a launch will call [`Batcher::run_announced`]; the
    /// guard withdraws, when dropped, those that did not.
    pub fn expect(&self, n: usize) -> Expecting {
        let mut e = lock(&self.expected);
        e.n += n;
        e.until = Some(Instant::now() + EXPECT_FOR);
        Expecting {
            expected: self.expected.clone(),
            left: AtomicUsize::new(n),
        }
    }

    /// Announced VMs neither arrived nor withdrawn: what the next batch
    /// would wait for. Zero whenever no launch is under way.
    pub fn awaited(&self) -> usize {
        lock(&self.expected).n
    }

    /// Announced VM `vm` is here (it sends its job now, or has none).
    fn arrive(&self, vm: u64) {
        let mut e = lock(&self.expected);
        if e.arrived.insert(vm) {
            e.n = e.n.saturating_sub(1);
        }
    }

    pub fn switch(&self) -> &Arc<dyn Switch> {
        &self.switch
    }

    /// Applies `ops` in the next batch; an error is one line naming the
    /// port or bridge that failed.
    pub async fn run(&self, ops: Vec<Op>) -> Result<(), String> {
        self.send(ops, None).await
    }

    /// [`Batcher::run`] for VM `vm`, announced by [`Batcher::expect`].
    pub async fn run_announced(&self, ops: Vec<Op>, vm: u64) -> Result<(), String> {
        self.send(ops, Some(vm)).await
    }

    async fn send(&self, ops: Vec<Op>, announced: Option<u64>) -> Result<(), String> {
        if ops.is_empty() {
            if let Some(vm) = announced {
                self.arrive(vm);
            }
            return Ok(());
        }
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(worker(self.switch.clone(), rx, self.expected.clone()));
            tx
        });
        let (done, wait) = oneshot::channel();
        let sent = tx.send(Job { ops, done });
        // After the job is queued, so the worker never sees neither.
        if let Some(vm) = announced {
            self.arrive(vm);
        }
        sent.map_err(|_| "the switch worker is gone".to_string())?;
        wait.await
            .unwrap_or_else(|_| Err("the switch worker is gone".into()))
    }
}

/// One launch's announcement (see the module doc): a ticket of the
/// launch, told as each of its VMs settles, dropped when it ends.
pub struct Expecting {
    expected: Arc<Mutex<Expected>>,
    /// VMs of the launch that have not settled.
    left: AtomicUsize,
}

impl Expecting {
    /// VM `vm` of the launch is done with the switch, or will never come.
    pub fn settle(&self, vm: u64) {
        let had = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1));
        if had.is_err() {
            return;
        }
        let mut e = lock(&self.expected);
        if !e.arrived.remove(&vm) {
            e.n = e.n.saturating_sub(1);
        }
    }
}

impl Drop for Expecting {
    fn drop(&mut self) {
        let left = *self.left.get_mut();
        if left > 0 {
            let mut e = lock(&self.expected);
            e.n = e.n.saturating_sub(left);
        }
    }
}

async fn worker(
    switch: Arc<dyn Switch>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    expected: Arc<Mutex<Expected>>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let start = Instant::now();
        // Announced VMs not here when the wait ended: only ever non-zero
        // when the wait ran out (a launch announcing more extends it).
        let awaited = loop {
            while let Ok(j) = rx.try_recv() {
                jobs.push(j);
            }
            let seen = jobs.len();
            let (waiting, n) = {
                let e = lock(&expected);
                (e.waiting(), e.n)
            };
            if !waiting && start.elapsed() >= WINDOW {
                break n;
            }
            tokio::time::sleep(TICK).await;
            while let Ok(j) = rx.try_recv() {
                jobs.push(j);
            }
            if jobs.len() == seen && !waiting {
                break n;
            }
        };
        if awaited > 0 {
            // Only a hook that announced VMs and dropped no ticket gets
            // here: say so, since every later batch pays for it.
            warn!("switch: gave up waiting for {awaited} announced VMs after {EXPECT_FOR:?}");
        }
        apply(&*switch, jobs, awaited).await;
    }
}

async fn apply(switch: &dyn Switch, jobs: Vec<Job>, awaited: usize) {
    let all: Vec<Op> = jobs.iter().flat_map(|j| j.ops.iter().cloned()).collect();
    debug!(
        "switch: one transaction of {} changes for {} callers ({awaited} announced VMs still awaited)",
        all.len(),
        jobs.len()
    );
    match switch.apply(&all).await {
        Ok(failed) => {
            for j in jobs {
                let _ = j.done.send(verdict(&j.ops, &failed));
            }
        }
        Err(e) if jobs.len() == 1 => {
            for j in jobs {
                let _ = j.done.send(Err(e.to_string()));
            }
        }
        Err(_) => {
            for j in jobs {
                let r = match switch.apply(&j.ops).await {
                    Ok(failed) => verdict(&j.ops, &failed),
                    Err(e) => Err(e.to_string()),
                };
                let _ = j.done.send(r);
            }
        }
    }
}

/// A job fails when one of its ports, or a bridge it needed, did.
fn verdict(ops: &[Op], failed: &BTreeMap<String, String>) -> Result<(), String> {
    for op in ops {
        let (bridge, port) = match op {
            Op::AddPort(p) | Op::EnsurePort(p) => (Some(&p.bridge), Some(&p.name)),
            Op::AddMirror { bridge, port } => (Some(bridge), Some(port)),
            // A bond fails with any of its members.
            Op::AddBond(b) => (
                Some(&b.bridge),
                b.members.iter().find(|m| failed.contains_key(*m)),
            ),
            _ => (None, None),
        };
        if let Some(e) = bridge.and_then(|b| failed.get(b)) {
            return Err(format!("bridge {}: {e}", bridge.unwrap_or(&String::new())));
        }
        if let Some(e) = port.and_then(|p| failed.get(p)) {
            return Err(format!("port {}: {e}", port.unwrap_or(&String::new())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::BoxFuture;
    use crate::net::ovs::{BridgeState, Datapath, PortKind, PortSpec, SwitchError};
    use std::sync::Mutex;

    /// Records each batch; refuses any batch holding a port named "bad";
    /// reports a port named "broken" as not set up.
    #[derive(Default)]
    struct Fake {
        batches: Mutex<Vec<usize>>,
    }

    impl Switch for Fake {
        fn datapath(&self) -> Datapath {
            Datapath::Userspace
        }
        fn check(&self) -> BoxFuture<'_, Result<(), SwitchError>> {
            Box::pin(async { Ok(()) })
        }
        fn apply<'a>(
            &'a self,
            ops: &'a [Op],
        ) -> BoxFuture<'a, Result<BTreeMap<String, String>, SwitchError>> {
            Box::pin(async move {
                self.batches.lock().unwrap().push(ops.len());
                let names: Vec<&str> = ops
                    .iter()
                    .filter_map(|o| match o {
                        Op::AddPort(p) => Some(p.name.as_str()),
                        _ => None,
                    })
                    .collect();
                if names.contains(&"bad") {
                    return Err(SwitchError::Refused("duplicate".into()));
                }
                let mut failed = BTreeMap::new();
                if names.contains(&"broken") {
                    failed.insert("broken".to_string(), "no such device".to_string());
                }
                Ok(failed)
            })
        }
        fn bridges(&self) -> BoxFuture<'_, Result<Vec<BridgeState>, SwitchError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    fn add(name: &str) -> Vec<Op> {
        vec![Op::AddPort(PortSpec {
            bridge: "b".into(),
            name: name.into(),
            tag: Some(5),
            qinq: false,
            kind: PortKind::System,
            owner: None,
        })]
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_batch_and_fail_alone() {
        let fake = Arc::new(Fake::default());
        let b = Arc::new(Batcher::new(fake.clone()));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..50 {
            let b = b.clone();
            set.spawn(async move { b.run(add(&format!("t{i}"))).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(*fake.batches.lock().unwrap(), [50]);

        fake.batches.lock().unwrap().clear();
        let (a, bad, broken) =
            tokio::join!(b.run(add("ok")), b.run(add("bad")), b.run(add("broken")));
        assert_eq!(a, Ok(()));
        assert_eq!(
            bad.unwrap_err(),
            "Open vSwitch refused the change: duplicate"
        );
        assert_eq!(broken.unwrap_err(), "port broken: no such device");
        // One refused batch of three, then each alone.
        assert_eq!(*fake.batches.lock().unwrap(), [3, 1, 1, 1]);
        assert_eq!(b.run(Vec::new()).await, Ok(()));
    }

    #[tokio::test]
    async fn announced_callers_are_waited_for() {
        let fake = Arc::new(Fake::default());
        let b = Arc::new(Batcher::new(fake.clone()));
        let ticket = Arc::new(b.expect(3));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..3u64 {
            let (b, ticket) = (b.clone(), ticket.clone());
            set.spawn(async move {
                // Far apart, as prepares queued behind QEMU spawns are.
                tokio::time::sleep(Duration::from_millis(100 * i)).await;
                let r = b.run_announced(add(&format!("t{i}")), i).await;
                ticket.settle(i);
                r
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(*fake.batches.lock().unwrap(), [3]);
        assert_eq!(b.awaited(), 0);
        drop(ticket);
        assert_eq!(b.awaited(), 0);
    }

    #[test]
    fn what_will_not_come_is_withdrawn() {
        let b = Batcher::new(Arc::new(Fake::default()));
        // A launch of four: one arrives, one fails before the switch (it
        // settles without arriving), then the launch ends (its other two
        // never started): nothing is awaited any more.
        let ticket = b.expect(4);
        b.arrive(10);
        assert_eq!(b.awaited(), 3);
        ticket.settle(11);
        assert_eq!(b.awaited(), 2);
        ticket.settle(10);
        assert_eq!(b.awaited(), 2, "an arrived VM's settling withdraws nothing");
        drop(ticket);
        assert_eq!(b.awaited(), 0);
        // Two launches at once: each withdraws only its own.
        let (one, two) = (b.expect(2), b.expect(1));
        drop(one);
        assert_eq!(b.awaited(), 1);
        two.settle(5);
        two.settle(6); // more than announced: ignored
        assert_eq!(b.awaited(), 0);
    }
}
