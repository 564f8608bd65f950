//! The parts of the daemon that take part in every VM's life beside QEMU
//! itself: the experiment networks (taps on a switch), command and control
//! (the agent's serial port), disks and mesh files (images made or fetched
//! before boot), admission control. Each is a [`VmHook`] registered once
//! when the node is built; the lifecycle calls every hook, in registration
//! order, at the same few points, so no subsystem reaches into `launch` or
//! `adopt` and none of them knows about the others.
//!
//! The contract, for every hook:
//! - [`VmHook::admit`] sees a whole launch before any VM of it exists and
//!   may refuse it with one clear error; nothing is made yet. What it
//!   reserves for the launch (a count of VMs a batcher waits for) it hands
//!   over as a [`Ticket`]: the launch tells the ticket when each VM's part
//!   is over, from a guard, on every path, and drops it when the launch
//!   ends, which gives back whatever was not used. Nothing depends on a
//!   release call someone must remember.
//! - [`VmHook::prepare`] makes what one VM's QEMU needs and returns the
//!   QEMU arguments that use it. It runs at each (re)launch of the VM. When
//!   it fails, or anything after it does, [`VmHook::release`] is called on
//!   every hook that had prepared, in reverse order, so a failed launch
//!   leaves nothing behind.
//! - [`VmHook::started`] runs once QEMU answers on QMP: after a launch, or
//!   after a daemon restart re-adopted the running VM (`adopted`), which is
//!   when a hook re-attaches to what it made (nothing is made again).
//! - [`VmHook::release`] runs when the VM's QEMU is gone (killed, quit, a
//!   failed launch, found dead at restart): free what `prepare` made.
//! - [`VmHook::forget`] runs when the VM itself goes (flushed, or a record
//!   discarded at start): drop anything kept about it.
//! - [`VmHook::recover`] runs once at start-up, after adoption: remove
//!   what the hook made (and marked as this daemon's) that no registered
//!   VM claims, left by a crash or an older version.
//!
//! Hooks must be idempotent in `release` and `forget` (a crash may have
//! undone part of their work already) and must not block: long work is
//! awaited, not spun.

use super::config::{Kind, VmConfig};
use super::manager::{Vm, VmError};
use crate::command::BoxFuture;
use std::sync::Arc;

/// A whole launch, as [`VmHook::admit`] sees it.
pub struct Admission<'a> {
    pub namespace: &'a str,
    pub config: &'a VmConfig,
    /// VMs the launch would create.
    pub count: usize,
    /// Where a hook leaves what it reserved for the launch.
    pub tickets: &'a Tickets,
}

/// What a hook reserved for one launch. The launch keeps it while it
/// runs; dropping it (when the launch ends, however it ends) gives back
/// what was not used.
pub trait Ticket: Send + Sync {
    /// `vm`'s part of the launch is over: its QEMU runs, or its launch
    /// failed, before or after reaching the hook's `prepare`. Called once
    /// per VM of the launch, from a guard, on every path.
    fn settled(&self, _vm: &Vm) {}
}

/// The tickets of one launch.
#[derive(Default)]
pub struct Tickets(std::sync::Mutex<Vec<Box<dyn Ticket>>>);

impl Tickets {
    pub fn hold(&self, t: Box<dyn Ticket>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(t);
    }

    fn settled(&self, vm: &Vm) {
        for t in self.0.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            t.settled(vm);
        }
    }
}

/// One VM's part of a launch: tells every ticket when it is over, when
/// dropped (the VM's launch returned, failed, or its task was aborted).
pub struct Attempt {
    pub tickets: Arc<Tickets>,
    pub vm: Arc<Vm>,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.tickets.settled(&self.vm);
    }
}

pub trait VmHook: Send + Sync + 'static {
    /// Shown in logs.
    fn name(&self) -> &'static str;

    /// The kinds of VM the hook takes part in: QEMU's guests only, unless
    /// it says otherwise (a screen, disks, USB mean nothing to a
    /// container). The others' `admit`, `prepare`, `started` and
    /// `release` are not called for it.
    fn serves(&self, kind: Kind) -> bool {
        kind == Kind::Kvm
    }

    fn admit<'a>(&'a self, _launch: &'a Admission<'a>) -> BoxFuture<'a, Result<(), VmError>> {
        Box::pin(async { Ok(()) })
    }

    /// `config` is the VM's configuration for this launch (also in
    /// `vm.lock().config`, which a hook may update with what it assigned,
    /// e.g. a generated MAC, so the record keeps it).
    fn prepare<'a>(
        &'a self,
        _vm: &'a Arc<Vm>,
        _config: &'a VmConfig,
    ) -> BoxFuture<'a, Result<Vec<String>, VmError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn started<'a>(&'a self, _vm: &'a Arc<Vm>, _adopted: bool) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn release<'a>(&'a self, _vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn forget<'a>(&'a self, _vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// `vms`: every registered VM, after adoption (what their records
    /// name is theirs; a dead VM's was released and cleared already).
    fn recover<'a>(&'a self, _vms: &'a [Arc<Vm>]) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// The registered hooks, in order.
#[derive(Clone, Default)]
pub struct Hooks(Vec<Arc<dyn VmHook>>);

impl Hooks {
    pub fn push(&mut self, hook: Arc<dyn VmHook>) {
        self.0.push(hook);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub async fn admit(&self, launch: &Admission<'_>) -> Result<(), VmError> {
        for h in self.serving(launch.config.kind) {
            h.admit(launch).await?;
        }
        Ok(())
    }

    fn serving(&self, kind: Kind) -> Vec<&Arc<dyn VmHook>> {
        self.0.iter().filter(|h| h.serves(kind)).collect()
    }

    /// Every hook's arguments, in order; on an error the hooks that had
    /// prepared are released again (last first) before it is returned.
    pub async fn prepare(&self, vm: &Arc<Vm>, config: &VmConfig) -> Result<Vec<String>, VmError> {
        let mut argv = Vec::new();
        let hooks = self.serving(config.kind);
        for (i, h) in hooks.iter().enumerate() {
            match h.prepare(vm, config).await {
                Ok(a) => argv.extend(a),
                Err(e) => {
                    for done in hooks[..=i].iter().rev() {
                        done.release(vm).await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(argv)
    }

    pub async fn started(&self, vm: &Arc<Vm>, adopted: bool) {
        let kind = vm.lock().config.kind;
        for h in self.serving(kind) {
            h.started(vm, adopted).await;
        }
    }

    pub async fn release(&self, vm: &Vm) {
        let kind = vm.lock().config.kind;
        for h in self.serving(kind).into_iter().rev() {
            h.release(vm).await;
        }
    }

    pub async fn forget(&self, vm: &Vm) {
        for h in self.0.iter().rev() {
            h.forget(vm).await;
        }
    }

    pub async fn recover(&self, vms: &[Arc<Vm>]) {
        for h in &self.0 {
            h.recover(vms).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records calls; fails `prepare` when asked to.
    struct Probe {
        name: &'static str,
        fail: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl VmHook for Probe {
        fn name(&self) -> &'static str {
            self.name
        }
        fn prepare<'a>(
            &'a self,
            _vm: &'a Arc<Vm>,
            _c: &'a VmConfig,
        ) -> BoxFuture<'a, Result<Vec<String>, VmError>> {
            Box::pin(async move {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("prepare {}", self.name));
                if self.fail {
                    return Err(VmError::hook(format!("{} failed", self.name)));
                }
                Ok(vec![format!("-{}", self.name)])
            })
        }
        fn release<'a>(&'a self, _vm: &'a Vm) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("release {}", self.name));
            })
        }
    }

    fn hooks(names: &[(&'static str, bool)], log: &Arc<Mutex<Vec<String>>>) -> Hooks {
        let mut h = Hooks::default();
        for (name, fail) in names {
            h.push(Arc::new(Probe {
                name,
                fail: *fail,
                log: log.clone(),
            }));
        }
        h
    }

    /// Counts what a launch tells it, and whether it was given back.
    struct Counting(Arc<Mutex<Vec<String>>>);

    impl Ticket for Counting {
        fn settled(&self, vm: &Vm) {
            self.0.lock().unwrap().push(format!("settled {}", vm.id));
        }
    }

    impl Drop for Counting {
        fn drop(&mut self) {
            self.0.lock().unwrap().push("given back".into());
        }
    }

    #[test]
    fn every_vm_settles_on_every_path_then_the_ticket_is_given_back() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let tickets = Arc::new(Tickets::default());
        tickets.hold(Box::new(Counting(log.clone())));
        let vm = |id| Arc::new(Vm::detached(id, "a", "ns", std::path::Path::new("/x")));
        let a = Attempt {
            tickets: tickets.clone(),
            vm: vm(1),
        };
        // A VM whose task panicked (or was aborted) settles all the same.
        let b = Attempt {
            tickets: tickets.clone(),
            vm: vm(2),
        };
        let panicked = std::thread::spawn(move || {
            let _b = b;
            panic!("a launch task died");
        })
        .join();
        assert!(panicked.is_err());
        drop(a);
        assert_eq!(*log.lock().unwrap(), ["settled 2", "settled 1"]);
        drop(tickets);
        assert_eq!(log.lock().unwrap().last().unwrap(), "given back");
    }

    #[tokio::test]
    async fn arguments_in_order_and_a_failure_releases_what_was_prepared() {
        let vm = Arc::new(Vm::detached(
            7,
            "a",
            "ns",
            std::path::Path::new("/nonexistent"),
        ));
        let cfg = VmConfig::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let ok = hooks(&[("net", false), ("cc", false)], &log);
        assert_eq!(ok.prepare(&vm, &cfg).await.unwrap(), ["-net", "-cc"]);

        log.lock().unwrap().clear();
        let bad = hooks(&[("net", false), ("disk", true), ("cc", false)], &log);
        let e = bad.prepare(&vm, &cfg).await.unwrap_err();
        assert_eq!(e.to_string(), "disk failed");
        assert!(matches!(e, VmError::Hook(_)));
        assert_eq!(
            *log.lock().unwrap(),
            ["prepare net", "prepare disk", "release disk", "release net"]
        );
    }
}
