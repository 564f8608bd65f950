//! The lifecycle after launch: `vm start` (a QUIT VM is launched again),
//! `vm stop`, `vm kill`, `vm flush`, tags and the cdrom, each applied to
//! many VMs concurrently.

use super::hooks::{Admission, Attempt, Tickets};
use super::manager::{Life, Vm, VmError, Vms};
use super::process;
use super::state::VmState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// How long `vm kill` waits for a polite exit before SIGKILL.
const QUIT_GRACE: Duration = Duration::from_secs(5);

impl Vms {
    /// `vm start`: BUILDING/PAUSED resume, QUIT relaunches, RUNNING is
    /// left alone.
    pub async fn start(&self, vms: Vec<Arc<Vm>>) -> Result<(), VmError> {
        self.each(vms, |me, vm| async move { me.start_one(&vm).await })
            .await
    }

    async fn start_one(&self, vm: &Arc<Vm>) -> Result<(), VmError> {
        let _op = vm.op.lock().await;
        // `vm flush` may have taken it while we waited for the lock.
        if !self.is_registered(vm) {
            return Err(VmError::Flushed(vm.name.clone()));
        }
        let from = vm.state();
        match from {
            VmState::Running => return Ok(()),
            VmState::Error => return Err(VmError::Errored(vm.name.clone())),
            VmState::Quit => {
                let cfg = vm.lock().config.clone();
                self.validate(&cfg)?;
                let tickets = Arc::new(Tickets::default());
                self.hooks()
                    .admit(&Admission {
                        namespace: &vm.namespace,
                        config: &cfg,
                        count: 1,
                        tickets: &tickets,
                    })
                    .await?;
                let attempt = Attempt {
                    tickets,
                    vm: vm.clone(),
                };
                let started = self.start_process(vm).await;
                drop(attempt);
                if let Err(e) = started {
                    self.set_state_quiet(vm, VmState::Quit, &e.to_string())
                        .await;
                    return Err(e);
                }
                self.announce(vm, VmState::Building);
            }
            VmState::Building | VmState::Paused => {}
        }
        let q = vm.qmp()?;
        q.execute("cont", None)
            .await
            .map_err(|e| VmError::qmp(&vm.name, "", e))?;
        if let Err(e) = self.transition(vm, VmState::Running).await {
            // Not on disk, so not done: paused again, as it was.
            if q.execute("stop", None).await.is_ok() {
                let back = if from == VmState::Quit {
                    VmState::Building
                } else {
                    from
                };
                vm.lock().state = back;
                self.announce(vm, back);
            }
            return Err(e);
        }
        Ok(())
    }

    /// `vm stop`: RUNNING -> PAUSED.
    pub async fn stop(&self, vms: Vec<Arc<Vm>>) -> Result<(), VmError> {
        self.each(vms, |me, vm| async move {
            let _op = vm.op.lock().await;
            match vm.state() {
                VmState::Running => {}
                VmState::Paused => return Ok(()),
                s => {
                    return Err(VmError::State {
                        vm: vm.name.clone(),
                        state: s,
                        wanted: "RUNNING",
                    })
                }
            }
            let q = vm.qmp()?;
            q.execute("stop", None)
                .await
                .map_err(|e| VmError::qmp(&vm.name, "", e))?;
            if let Err(e) = me.transition(&vm, VmState::Paused).await {
                // Not on disk, so not done: running again, as it was.
                if q.execute("cont", None).await.is_ok() {
                    vm.lock().state = VmState::Running;
                    me.announce(&vm, VmState::Running);
                }
                return Err(e);
            }
            Ok(())
        })
        .await
    }

    /// `vm kill`: QEMU is asked to quit, then killed; returns once each VM
    /// is QUIT with its cgroup or unit gone.
    pub async fn kill(&self, vms: Vec<Arc<Vm>>) -> Result<(), VmError> {
        self.each(vms, |me, vm| async move {
            let _op = vm.op.lock().await;
            me.kill_one(&vm).await
        })
        .await
    }

    pub(super) async fn kill_one(&self, vm: &Arc<Vm>) -> Result<(), VmError> {
        let (pid, start, qmp, life) = {
            let s = vm.lock();
            (s.pid, s.pid_start, s.qmp.clone(), s.life.clone())
        };
        let Some(pid) = pid else {
            return Ok(());
        };
        let Some(mut life) = life else {
            // Nobody watches this process (not expected): end it directly.
            if process::alive(pid, start) {
                super::adopt::stop_process(pid, start, qmp.as_deref()).await;
            }
            let mut s = vm.lock();
            s.pid = None;
            s.pid_start = None;
            return Ok(());
        };
        let gone = |life: &mut watch::Receiver<Life>, t: Duration| {
            let mut life = life.clone();
            async move {
                tokio::time::timeout(t, life.wait_for(|l| *l == Life::Settled))
                    .await
                    .is_ok()
            }
        };
        match qmp {
            Some(q) => {
                let _ = q.execute("quit", None).await;
            }
            None => process::signal(pid, start, libc::SIGTERM),
        }
        if !gone(&mut life, QUIT_GRACE).await {
            warn!(vm = %vm.name, pid, "qemu did not quit; sending SIGKILL");
            process::signal(pid, start, libc::SIGKILL);
            if !gone(&mut life, Duration::from_secs(10)).await {
                return Err(VmError::Undying {
                    vm: vm.name.clone(),
                    pid,
                });
            }
        }
        Ok(())
    }

    /// `vm flush`: forgets QUIT and ERROR VMs and removes their folders;
    /// also ends the QEMUs start-up found without a record and could not
    /// adopt (see `adopt`), which nothing else can reach.
    pub async fn flush(&self, ns: &str) -> Result<usize, VmError> {
        let n = self.flush_vms(self.in_namespace(ns)).await?;
        let strays = std::mem::take(&mut *self.strays());
        for s in strays {
            warn!(
                pid = s.pid,
                "vm flush: ending the qemu of {}, which no record names",
                s.dir.display()
            );
            super::adopt::stop_process(s.pid, Some(s.start), None).await;
            let _ = std::fs::remove_dir_all(&s.dir);
        }
        Ok(n)
    }

    /// `vm flush TARGET`: the QUIT and ERROR VMs among `vms`; others stay.
    pub async fn flush_vms(&self, vms: Vec<Arc<Vm>>) -> Result<usize, VmError> {
        let dead: Vec<Arc<Vm>> = vms
            .into_iter()
            .filter(|v| matches!(v.state(), VmState::Quit | VmState::Error))
            .collect();
        let n = dead.len();
        self.each(dead, |me, vm| async move {
            let _op = vm.op.lock().await;
            if !matches!(vm.state(), VmState::Quit | VmState::Error) {
                return Ok(());
            }
            // An ERROR VM may still have a QEMU: never orphan one.
            me.kill_one(&vm).await?;
            let placed = std::mem::take(&mut vm.lock().placed);
            me.placement().release(&placed).await;
            if let Err(e) = std::fs::remove_dir_all(&vm.paths.dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(VmError::io("remove", &vm.paths.dir, e));
                }
            }
            me.unregister(&vm);
            me.hooks().forget(&vm).await;
            Ok(())
        })
        .await?;
        Ok(n)
    }

    /// Changes each VM's tags with `f` and saves each record; a VM whose
    /// record cannot be written gets its old tags back, and the error
    /// names the first (the others' tags are changed and on disk).
    async fn retag(
        &self,
        vms: &[Arc<Vm>],
        f: impl Fn(&mut std::collections::BTreeMap<String, String>),
    ) -> Result<(), VmError> {
        let mut errors = Vec::new();
        for vm in vms {
            let before = {
                let mut s = vm.lock();
                let before = s.tags.clone();
                f(&mut s.tags);
                before
            };
            if let Err(e) = self.save(vm).await {
                vm.lock().tags = before;
                errors.push(e);
            }
        }
        let more = errors.len().saturating_sub(1);
        match errors.into_iter().next() {
            None => Ok(()),
            Some(e) if more == 0 => Err(e),
            Some(e) => Err(VmError::Several {
                first: Box::new(e),
                more,
            }),
        }
    }

    /// `vm tag`: sets one tag on each VM.
    pub async fn set_tag(&self, vms: &[Arc<Vm>], key: &str, value: &str) -> Result<(), VmError> {
        self.retag(vms, |t| {
            t.insert(key.to_string(), value.to_string());
        })
        .await
    }

    /// Changes a VM's recorded configuration (a NIC added or moved while
    /// it runs, ...) and saves the record, so a relaunch or a restarted
    /// daemon has it. When the record cannot be written the configuration
    /// is put back and the error returned: the caller undoes what it did.
    pub async fn update_config<R>(
        &self,
        vm: &Vm,
        f: impl FnOnce(&mut super::config::VmConfig) -> R,
    ) -> Result<R, VmError> {
        let (r, before) = {
            let mut s = vm.lock();
            let before = s.config.clone();
            (f(&mut s.config), before)
        };
        if let Err(e) = self.save(vm).await {
            vm.lock().config = before;
            return Err(e);
        }
        Ok(r)
    }

    /// `clear vm tag`: removes one tag (or all, `None`) from each VM.
    pub async fn clear_tag(&self, vms: &[Arc<Vm>], key: Option<&str>) -> Result<(), VmError> {
        self.retag(vms, |t| match key {
            Some(k) => {
                t.remove(k);
            }
            None => t.clear(),
        })
        .await
    }

    /// Remembers a changed cdrom so a relaunch boots with it.
    pub async fn set_cdrom(&self, vm: &Vm, path: &str) -> Result<(), VmError> {
        self.update_config(vm, |c| c.cdrom = path.to_string()).await
    }

    /// Runs `f` on every VM concurrently; the first error (by VM id) is
    /// reported with a count of the others.
    pub async fn each<F, Fut>(&self, vms: Vec<Arc<Vm>>, f: F) -> Result<(), VmError>
    where
        F: Fn(Vms, Arc<Vm>) -> Fut,
        Fut: std::future::Future<Output = Result<(), VmError>> + Send + 'static,
    {
        let mut set = tokio::task::JoinSet::new();
        for vm in vms {
            let id = vm.id;
            let fut = f(self.clone(), vm);
            set.spawn(async move { (id, fut.await) });
        }
        let mut errors: Vec<(u64, VmError)> = Vec::new();
        while let Some(j) = set.join_next().await {
            match j {
                Ok((_, Ok(()))) => {}
                Ok((id, Err(e))) => errors.push((id, e)),
                Err(e) => errors.push((u64::MAX, VmError::Task(e.to_string()))),
            }
        }
        errors.sort_by_key(|(id, _)| *id);
        let more = errors.len().saturating_sub(1);
        match errors.into_iter().next() {
            None => Ok(()),
            Some((_, e)) if more == 0 => Err(e),
            Some((_, e)) => Err(VmError::Several {
                first: Box::new(e),
                more,
            }),
        }
    }
}
