//! Start-up: the VMs a previous daemon left under the base directory.
//! Each whose QEMU is still alive is adopted (its QMP reconnected, its
//! exit watched); each whose QEMU died meanwhile becomes QUIT. A VM is
//! never registered twice and a live QEMU is never forgotten.
//!
//! With `-recover=false` the previous VMs are not adopted: each live QEMU
//! is asked to quit (then killed), its unit or cgroup released and its
//! folder removed, every one logged. Leaving them running unmanaged would
//! orphan them, which the daemon never does.

use super::manager::{Vm, Vms, QMP_CALL_TIMEOUT};
use super::process;
use super::qmp::Qmp;
use super::state::{self, Record, VmState};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// What adoption found, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Adopted {
    pub live: usize,
    pub dead: usize,
    pub removed: usize,
}

impl Vms {
    pub async fn adopt(&self, recover: bool) -> Adopted {
        let base = self.inner.base.clone();
        let found = tokio::task::spawn_blocking(move || state::scan(&base))
            .await
            .unwrap_or_default();
        let mut tasks = tokio::task::JoinSet::new();
        let mut out = Adopted::default();
        for (id, dir, rec) in found {
            self.bump_next_id(id);
            let me = self.clone();
            tasks.spawn(async move {
                match rec {
                    Err(e) => me.unreadable(&dir, &e).await,
                    Ok(r) if !recover => me.discard(&dir, r, "-recover=false").await,
                    Ok(r) => me.adopt_one(r).await,
                }
            });
        }
        while let Some(j) = tasks.join_next().await {
            match j {
                Ok(Outcome::Live) => out.live += 1,
                Ok(Outcome::Dead) => out.dead += 1,
                Ok(Outcome::Removed) | Err(_) => out.removed += 1,
            }
        }
        out
    }

    /// A folder without a readable record: a launch that crashed before
    /// its first save. Its QEMU, if any, cannot be managed, so it goes.
    async fn unreadable(&self, dir: &std::path::Path, why: &str) -> Outcome {
        let qmp = dir.join("qmp");
        if let Some(pid) = process::find_by_cmdline(&qmp.to_string_lossy()) {
            warn!("{why}: killing its qemu (pid {pid}), which has no record");
            stop_process(pid, process::start_time(pid), None).await;
        } else {
            warn!("{why}: removing the folder");
        }
        let _ = std::fs::remove_dir_all(dir);
        Outcome::Removed
    }

    /// A record not to adopt (`why`): its QEMU stopped, its unit or cgroup
    /// and its folder removed.
    async fn discard(&self, dir: &std::path::Path, r: Record, why: &str) -> Outcome {
        if let Some(pid) = find_qemu(&r, dir) {
            warn!(vm = %r.name, id = r.id, pid, "{why}: stopping the previous instance's VM");
            stop_process(pid, process::start_time(pid), None).await;
        }
        self.placement().release(&r.placed).await;
        let vm = Vm::from_record(&r, &self.inner.base);
        self.hooks().release(&vm).await;
        self.hooks().forget(&vm).await;
        let _ = std::fs::remove_dir_all(dir);
        Outcome::Removed
    }

    async fn adopt_one(&self, r: Record) -> Outcome {
        let dir = self.inner.base.join(r.id.to_string());
        // An ERROR VM may still have its QEMU (one whose QMP did not answer).
        let was_live = r.state.is_live() || r.pid.is_some();
        let pid = if was_live { find_qemu(&r, &dir) } else { None };
        let Some(vm) = self.register_adopted(&r) else {
            // Two records of one name: this one could never be managed, and
            // its QEMU must not be left running without an owner.
            warn!(vm = %r.name, id = r.id, "a VM of that name or id is already registered; discarding {}", dir.display());
            return self.discard(&dir, r, "a duplicate record").await;
        };
        let Some(pid) = pid else {
            if was_live {
                info!(vm = %r.name, id = r.id, "qemu is gone; marking QUIT");
                let placed = std::mem::take(&mut vm.lock().placed);
                self.placement().release(&placed).await;
                {
                    let mut s = vm.lock();
                    s.pid = None;
                    s.pid_start = None;
                }
                self.set_state_quiet(&vm, VmState::Quit, "");
            }
            // Whatever the hooks made for it (taps, ...) may outlive it.
            self.hooks().release(&vm).await;
            return Outcome::Dead;
        };
        let start = process::start_time(pid);
        {
            let mut s = vm.lock();
            s.pid = Some(pid);
            s.pid_start = start;
        }
        self.ensure_unit(&vm, pid).await;
        match connect(&vm).await {
            Ok((q, events, status)) => {
                let to = match (status.as_str(), r.state) {
                    ("running", _) => VmState::Running,
                    (_, VmState::Building) => VmState::Building,
                    _ => VmState::Paused,
                };
                self.watch_adopted(&vm, pid, start, Some((q, events)));
                self.set_state_quiet(&vm, to, "");
                self.hooks().started(&vm, true).await;
                info!(vm = %r.name, id = r.id, pid, "adopted ({to})");
            }
            Err(e) => {
                warn!(vm = %r.name, id = r.id, pid, "adopted, but QMP does not answer: {e}");
                self.watch_adopted(&vm, pid, start, None);
                self.set_state_quiet(&vm, VmState::Error, &format!("QMP: {e}"));
            }
        }
        Outcome::Live
    }

    /// Under systemd, a QEMU the previous daemon spawned but had not yet
    /// moved into its scope gets its scope now.
    async fn ensure_unit(&self, vm: &Arc<Vm>, pid: u32) {
        let unit = vm.lock().placed.unit.clone();
        let p = self.placement();
        if !matches!(p, super::placement::Placement::Systemd(_)) {
            return;
        }
        if let Some(u) = &unit {
            if p.unit_active(u).await {
                return;
            }
        }
        let limits = super::limits::Limits::for_vm(&vm.lock().config.clone(), self.accel());
        match p.attach(&vm.namespace, &vm.name, pid, &limits).await {
            Ok(u) => vm.lock().placed.unit = u,
            Err(e) => warn!(vm = %vm.name, "cannot give the adopted qemu a scope: {e}"),
        }
    }
}

enum Outcome {
    Live,
    Dead,
    Removed,
}

/// The VM's QEMU if it still runs: by its recorded pid and start time,
/// else (a crash before the pid was saved) by its QMP path in /proc.
fn find_qemu(r: &Record, dir: &std::path::Path) -> Option<u32> {
    if let Some(pid) = r.pid {
        if process::alive(pid, r.pid_start) {
            return Some(pid);
        }
    }
    process::find_by_cmdline(&dir.join("qmp").to_string_lossy())
}

async fn connect(
    vm: &Vm,
) -> Result<
    (
        Arc<Qmp>,
        tokio::sync::mpsc::UnboundedReceiver<super::qmp::QmpEvent>,
        String,
    ),
    String,
> {
    let (q, events) = Qmp::connect(&vm.paths.qmp(), QMP_CALL_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let st = q
        .execute("query-status", None)
        .await
        .map_err(|e| e.to_string())?;
    let status = st["status"].as_str().unwrap_or("").to_string();
    Ok((Arc::new(q), events, status))
}

/// Ends a QEMU we will not manage: quit over QMP if it answers, else
/// SIGTERM, then SIGKILL.
pub(super) async fn stop_process(pid: u32, start: Option<u64>, qmp: Option<&Qmp>) {
    match qmp {
        Some(q) => {
            let _ = q.execute("quit", None).await;
        }
        None => process::signal(pid, start, libc::SIGTERM),
    }
    let wait = tokio::time::timeout(Duration::from_secs(5), process::wait_exit(pid, start)).await;
    if wait.is_err() {
        process::signal(pid, start, libc::SIGKILL);
        let _ = tokio::time::timeout(Duration::from_secs(5), process::wait_exit(pid, start)).await;
    }
}
