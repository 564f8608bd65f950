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

use super::ovs::{Op, Switch};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::debug;

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

    /// `n` callers of [`Batcher::arrive`] are on their way.
    pub fn expect(&self, n: usize) {
        let mut e = lock(&self.expected);
        e.n += n;
        e.until = Some(Instant::now() + EXPECT_FOR);
    }

    /// One announced caller is here (it sends its job now, or has none).
    pub fn arrive(&self) {
        let mut e = lock(&self.expected);
        e.n = e.n.saturating_sub(1);
    }

    pub fn switch(&self) -> &Arc<dyn Switch> {
        &self.switch
    }

    /// Applies `ops` in the next batch; an error is one line naming the
    /// port or bridge that failed.
    pub async fn run(&self, ops: Vec<Op>) -> Result<(), String> {
        self.send(ops, false).await
    }

    /// [`Batcher::run`] for an announced caller.
    pub async fn run_announced(&self, ops: Vec<Op>) -> Result<(), String> {
        self.send(ops, true).await
    }

    async fn send(&self, ops: Vec<Op>, announced: bool) -> Result<(), String> {
        if ops.is_empty() {
            if announced {
                self.arrive();
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
        if announced {
            self.arrive();
        }
        sent.map_err(|_| "the switch worker is gone".to_string())?;
        wait.await
            .unwrap_or_else(|_| Err("the switch worker is gone".into()))
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
        loop {
            while let Ok(j) = rx.try_recv() {
                jobs.push(j);
            }
            let seen = jobs.len();
            let waiting = lock(&expected).waiting();
            if !waiting && start.elapsed() >= WINDOW {
                break;
            }
            tokio::time::sleep(TICK).await;
            while let Ok(j) = rx.try_recv() {
                jobs.push(j);
            }
            if jobs.len() == seen && !waiting {
                break;
            }
        }
        apply(&*switch, jobs).await;
    }
}

async fn apply(switch: &dyn Switch, jobs: Vec<Job>) {
    let all: Vec<Op> = jobs.iter().flat_map(|j| j.ops.iter().cloned()).collect();
    debug!(
        "switch: one transaction of {} changes for {} callers",
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
        b.expect(3);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..3u64 {
            let b = b.clone();
            set.spawn(async move {
                // Far apart, as prepares queued behind QEMU spawns are.
                tokio::time::sleep(Duration::from_millis(100 * i)).await;
                b.run_announced(add(&format!("t{i}"))).await
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(*fake.batches.lock().unwrap(), [3]);
        // One that never comes holds nobody up for long.
        b.expect(1);
        b.arrive();
        b.run(add("late")).await.unwrap();
        assert_eq!(*fake.batches.lock().unwrap(), [3, 1]);
    }
}
