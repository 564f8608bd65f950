//! Start-up: the VMs a previous daemon left under the base directory.
//! Each whose QEMU is still alive is adopted (its QMP reconnected, its
//! exit watched); each whose QEMU died meanwhile becomes QUIT. A VM is
//! never registered twice and a live QEMU is never forgotten.
//!
//! With `-recover=false` the previous VMs are not adopted: each live QEMU
//! is asked to quit (then killed), its unit or cgroup released and its
//! folder removed, every one logged. Leaving them running unmanaged would
//! orphan them, which the daemon never does.
//!
//! A record is only a claim: a process is signalled only once /proc shows
//! it is this VM's QEMU (its start time, its user, its `-chardev` naming
//! the VM's QMP socket under this base), and only the VM's own scope and
//! cgroups are released. A record naming a live process that is not its
//! QEMU is marked ERROR and left alone, folder and all.

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
    /// Records whose process could not be proven to be their QEMU: ERROR,
    /// left alone.
    pub unproven: usize,
}

/// A record's QEMU, as /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Found {
    /// This VM's QEMU: its pid and start time.
    Proven(u32, u64),
    /// No QEMU of this VM runs.
    Gone,
    /// The record names a live process that is not this VM's QEMU, and
    /// nothing shows that the one it named has died: a forged or corrupt
    /// record. Nothing may be signalled or removed on its word.
    Unproven(String),
}

/// Judges a record against what /proc shows. `recorded` is the process at
/// the recorded pid, if any lives (its start time, and whether it is this
/// VM's QEMU: see `process::is_qemu_of`); `scanned` the VM's QEMU found by
/// its command line, looked for only when the first does not settle it.
pub(super) fn judge(
    pid: Option<u32>,
    start: Option<u64>,
    recorded: Option<(u64, bool)>,
    scanned: impl FnOnce() -> Option<(u32, u64)>,
) -> Found {
    if let (Some(pid), Some((now, ours))) = (pid, recorded) {
        if ours {
            return Found::Proven(pid, now);
        }
        match start {
            Some(then) if then != now => {} // it died; the pid is reused
            Some(_) => {
                return Found::Unproven(format!(
                    "pid {pid}, started when the record says, is not this VM's QEMU"
                ))
            }
            None => {
                return Found::Unproven(format!(
                    "pid {pid} is not this VM's QEMU and the record has no start time"
                ))
            }
        }
    }
    match scanned() {
        Some((pid, start)) => Found::Proven(pid, start),
        None => Found::Gone,
    }
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
            // A write a crash cut short left its temporary file.
            crate::durable::sweep(&dir);
            let me = self.clone();
            tasks.spawn(async move {
                let r = match rec {
                    Err(e) => return me.unreadable(id, &dir, &e, recover).await,
                    Ok(r) if r.id != id => {
                        warn!("{}: the record says id {}; left alone", dir.display(), r.id);
                        return Outcome::Unproven;
                    }
                    Ok(r) => me.confined(r),
                };
                // A QUIT record kept since a clean kill has no process to
                // look for; one being discarded is looked for all the same.
                let look = !recover || r.state.is_live() || r.pid.is_some();
                let found = if look {
                    me.find_qemu(&r).await
                } else {
                    Found::Gone
                };
                match found {
                    Found::Unproven(why) => me.unproven(r, &why),
                    found if !recover => me.discard(&dir, r, found, "-recover=false").await,
                    found => me.adopt_one(r, found, false).await,
                }
            });
        }
        while let Some(j) = tasks.join_next().await {
            match j {
                Ok(Outcome::Live) => out.live += 1,
                Ok(Outcome::Dead) => out.dead += 1,
                Ok(Outcome::Unproven) => out.unproven += 1,
                Ok(Outcome::Removed) | Err(_) => out.removed += 1,
            }
        }
        out
    }

    /// The record with only the placement this daemon would have made for
    /// it: its own scope, its own cgroups. A launch that crashed between
    /// making the VM's cgroup and recording it left a record without it:
    /// the cgroup's name is the VM's, so it is found all the same.
    fn confined(&self, mut r: Record) -> Record {
        let unit = crate::systemd::units::scope_name(&r.namespace, &r.name);
        let leaf = format!("{}-{}", self.inner.tag, r.id);
        let (mut placed, dropped) = self.placement().confine(&r.placed, &unit, &leaf);
        if !dropped.is_empty() {
            warn!(vm = %r.name, id = r.id, "the record names what is not this VM's, ignored: {}", dropped.join(", "));
        }
        if placed.cgroups.is_empty() {
            placed.cgroups = self.placement().cgroups_of(&leaf);
        }
        r.placed = placed;
        r
    }

    async fn find_qemu(&self, r: &Record) -> Found {
        let qmp = self.inner.base.join(r.id.to_string()).join("qmp");
        let (pid, start) = (r.pid, r.pid_start);
        tokio::task::spawn_blocking(move || {
            // SAFETY: getuid cannot fail.
            let uid = unsafe { libc::getuid() };
            let recorded = pid
                .and_then(process::inspect)
                .map(|s| (s.start, process::is_qemu_of(&s, &qmp, uid)));
            judge(pid, start, recorded, || process::find_qemu_of(&qmp, uid))
        })
        .await
        .unwrap_or_else(|e| Found::Unproven(e.to_string()))
    }

    /// A record that could not be proven: registered as ERROR without a
    /// process, so nothing (kill, flush, a later restart) signals what it
    /// names, and its folder stays until the user flushes it.
    fn unproven(&self, mut r: Record, why: &str) -> Outcome {
        warn!(vm = %r.name, id = r.id, "cannot prove the record's process is its QEMU ({why}); marking it ERROR and leaving it alone");
        r.state = VmState::Error;
        r.error = why.to_string();
        r.pid = None;
        r.pid_start = None;
        r.placed = Default::default();
        if self.register_adopted(&r).is_none() {
            warn!(vm = %r.name, id = r.id, "a VM of that name or id is already registered");
        }
        Outcome::Unproven
    }

    /// A folder without a readable record (a launch records its VM before
    /// making anything, so this is an older version's folder, or a record
    /// someone removed). A QEMU there that /proc proves is this VM's is
    /// never killed in silence: it is adopted with a record rebuilt from
    /// its command line, or, when that cannot be, logged and left to `vm
    /// flush`. A folder with no QEMU goes.
    async fn unreadable(
        &self,
        id: u64,
        dir: &std::path::Path,
        why: &str,
        recover: bool,
    ) -> Outcome {
        let qmp = dir.join("qmp");
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let Some((pid, start)) = process::find_qemu_of(&qmp, uid) else {
            warn!("{why}: removing the folder");
            let _ = std::fs::remove_dir_all(dir);
            return Outcome::Removed;
        };
        if !recover {
            warn!("{why}: -recover=false: stopping its qemu (pid {pid}), which has no record");
            stop_process(pid, Some(start), None).await;
            let _ = std::fs::remove_dir_all(dir);
            return Outcome::Removed;
        }
        let rebuilt = process::inspect(pid)
            .filter(|s| s.start == start)
            .and_then(|s| super::rebuild::record(id, &s.argv));
        match rebuilt {
            Some(mut r) => {
                r.pid = Some(pid);
                r.pid_start = Some(start);
                warn!(vm = %r.name, id, pid, "{why}: its QEMU runs; adopting it with a record rebuilt from its command line, in namespace {}", r.namespace);
                let r = self.confined(r);
                self.adopt_one(r, Found::Proven(pid, start), true).await
            }
            None => {
                self.keep_stray(pid, start, dir, why);
                Outcome::Unproven
            }
        }
    }

    /// A QEMU of ours that cannot be managed: logged, and ended by the
    /// next `vm flush`.
    fn keep_stray(&self, pid: u32, start: u64, dir: &std::path::Path, why: &str) {
        warn!("{why}: its QEMU (pid {pid}) runs and cannot be adopted; left running until `vm flush` ends it");
        self.strays().push(super::manager::Stray {
            pid,
            start,
            dir: dir.to_path_buf(),
        });
    }

    /// A record not to adopt (`why`): its QEMU stopped, its unit or cgroup
    /// and its folder removed.
    async fn discard(&self, dir: &std::path::Path, r: Record, found: Found, why: &str) -> Outcome {
        if let Found::Proven(pid, start) = found {
            warn!(vm = %r.name, id = r.id, pid, "{why}: stopping the previous instance's VM");
            stop_process(pid, Some(start), None).await;
        }
        self.placement().release(&r.placed).await;
        let vm = Vm::from_record(&r, &self.inner.base);
        self.hooks().release(&vm).await;
        self.hooks().forget(&vm).await;
        let _ = std::fs::remove_dir_all(dir);
        Outcome::Removed
    }

    /// `rebuilt`: the record was made from the QEMU's command line, and a
    /// conflict keeps the QEMU running (as a stray) rather than ending it.
    async fn adopt_one(&self, r: Record, found: Found, rebuilt: bool) -> Outcome {
        let dir = self.inner.base.join(r.id.to_string());
        // An ERROR VM may still have its QEMU (one whose QMP did not answer).
        let was_live = r.state.is_live() || r.pid.is_some();
        let Some(vm) = self.register_adopted(&r) else {
            if let (true, Found::Proven(pid, start)) = (rebuilt, &found) {
                self.keep_stray(
                    *pid,
                    *start,
                    &dir,
                    &format!("{}: vm {} exists already", dir.display(), r.name),
                );
                return Outcome::Unproven;
            }
            // Two records of one name: this one could never be managed, and
            // its QEMU must not be left running without an owner.
            warn!(vm = %r.name, id = r.id, "a VM of that name or id is already registered; discarding {}", dir.display());
            return self.discard(&dir, r, found, "a duplicate record").await;
        };
        let Found::Proven(pid, start) = found else {
            if was_live {
                info!(vm = %r.name, id = r.id, "qemu is gone; marking QUIT");
                let placed = std::mem::take(&mut vm.lock().placed);
                self.placement().release(&placed).await;
                {
                    let mut s = vm.lock();
                    s.pid = None;
                    s.pid_start = None;
                }
                self.set_state_quiet(&vm, VmState::Quit, "").await;
            }
            // Whatever the hooks made for it (taps, ...) may outlive it.
            self.hooks().release(&vm).await;
            return Outcome::Dead;
        };
        let start = Some(start);
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
                self.set_state_quiet(&vm, to, "").await;
                self.hooks().started(&vm, true).await;
                info!(vm = %r.name, id = r.id, pid, "adopted ({to})");
            }
            Err(e) => {
                warn!(vm = %r.name, id = r.id, pid, "adopted, but QMP does not answer: {e}");
                self.watch_adopted(&vm, pid, start, None);
                self.set_state_quiet(&vm, VmState::Error, &format!("QMP: {e}"))
                    .await;
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
    Unproven,
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
/// SIGTERM, then SIGKILL (each only while `pid` is still the process
/// started at `start`).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Option<(u32, u64)> {
        None
    }

    #[test]
    fn only_a_proven_qemu_is_signalled() {
        // The recorded pid is this VM's QEMU: proven, with the start time
        // seen now (the record may have none).
        assert_eq!(
            judge(Some(9), Some(5), Some((5, true)), none),
            Found::Proven(9, 5)
        );
        assert_eq!(
            judge(Some(9), None, Some((5, true)), none),
            Found::Proven(9, 5)
        );
        // A forged record: a foreign live pid, no start time.
        assert!(matches!(
            judge(Some(1), None, Some((77, false)), || Some((3, 4))),
            Found::Unproven(w) if w.contains("no start time")
        ));
        // ... or the foreign process's true start time.
        assert!(matches!(
            judge(Some(1), Some(77), Some((77, false)), none),
            Found::Unproven(_)
        ));
        // The recorded QEMU died and its pid went to someone else: the
        // VM's QEMU is looked for by its command line, else it is gone.
        assert_eq!(
            judge(Some(1), Some(70), Some((77, false)), none),
            Found::Gone
        );
        assert_eq!(
            judge(Some(1), Some(70), Some((77, false)), || Some((3, 4))),
            Found::Proven(3, 4)
        );
        assert_eq!(judge(Some(1), Some(70), None, none), Found::Gone);
        assert_eq!(
            judge(None, None, None, || Some((3, 4))),
            Found::Proven(3, 4)
        );
    }
}
