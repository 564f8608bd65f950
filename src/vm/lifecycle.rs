//! The lifecycle after launch: `vm start` (a QUIT VM is launched again),
//! `vm stop`, `vm kill`, `vm flush`, tags and the cdrom, each applied to
//! many VMs concurrently.

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
        match vm.state() {
            VmState::Running => return Ok(()),
            VmState::Error => return Err(VmError::Errored(vm.name.clone())),
            VmState::Quit => {
                let cfg = vm.lock().config.clone();
                self.validate(&cfg)?;
                self.hooks()
                    .admit(&super::hooks::Admission {
                        namespace: &vm.namespace,
                        config: &cfg,
                        count: 1,
                    })
                    .await?;
                if let Err(e) = self.start_process(vm).await {
                    self.set_state_quiet(vm, VmState::Quit, &e.to_string());
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
        self.transition(vm, VmState::Running);
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
            vm.qmp()?
                .execute("stop", None)
                .await
                .map_err(|e| VmError::qmp(&vm.name, "", e))?;
            me.transition(&vm, VmState::Paused);
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

    /// `vm flush`: forgets QUIT and ERROR VMs and removes their folders.
    pub async fn flush(&self, ns: &str) -> Result<usize, VmError> {
        self.flush_vms(self.in_namespace(ns)).await
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

    /// `vm tag`: sets one tag on each VM.
    pub fn set_tag(&self, vms: &[Arc<Vm>], key: &str, value: &str) {
        for vm in vms {
            vm.lock().tags.insert(key.to_string(), value.to_string());
            self.save(vm);
        }
    }

    /// Changes a VM's recorded configuration (a NIC added or moved while
    /// it runs, ...) and saves the record, so a relaunch or a restarted
    /// daemon has it.
    pub fn update_config<R>(
        &self,
        vm: &Vm,
        f: impl FnOnce(&mut super::config::VmConfig) -> R,
    ) -> R {
        let r = f(&mut vm.lock().config);
        self.save(vm);
        r
    }

    /// `clear vm tag`: removes one tag (or all, `None`) from each VM.
    pub fn clear_tag(&self, vms: &[Arc<Vm>], key: Option<&str>) {
        for vm in vms {
            {
                let mut s = vm.lock();
                match key {
                    Some(k) => {
                        s.tags.remove(k);
                    }
                    None => s.tags.clear(),
                }
            }
            self.save(vm);
        }
    }

    /// Remembers a changed cdrom so a relaunch boots with it.
    pub fn set_cdrom(&self, vm: &Vm, path: &str) {
        vm.lock().config.cdrom = path.to_string();
        self.save(vm);
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
