//! The payload's own cgroup, made by the monitor inside the one the daemon
//! put it in: freezing needs a cgroup holding the payload and not the
//! monitor (the monitor must keep answering QMP while the payload is
//! frozen). The limits stay the daemon's: on cgroup v1 only the freezer
//! hierarchy gets a child, so memory/cpu/pids remain the monitor's; on v2
//! the child inherits its parent's limits.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

const ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Error)]
pub enum CgroupError {
    #[error("cgroup: {0}")]
    Parse(String),
    #[error("cgroup {path}: {why}")]
    Io { path: String, why: std::io::Error },
    #[error("cgroup {0}: still not {1} after 5s")]
    Timeout(String, &'static str),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |why| CgroupError::Io {
        path: path.display().to_string(),
        why,
    }
}

/// `/proc/self/cgroup`: the unified hierarchy's path (`0::/x`) and each v1
/// hierarchy's controllers with their path.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProcCgroup {
    pub unified: Option<String>,
    pub v1: Vec<(Vec<String>, String)>,
}

impl ProcCgroup {
    pub fn parse(text: &str) -> Result<ProcCgroup, CgroupError> {
        let mut out = ProcCgroup::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.splitn(3, ':');
            let (Some(_id), Some(ctl), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(CgroupError::Parse(format!(
                    "bad /proc/self/cgroup line {line:?}"
                )));
            };
            if ctl.is_empty() {
                out.unified = Some(path.to_string());
            } else {
                let names = ctl.split(',').map(str::to_string).collect();
                out.v1.push((names, path.to_string()));
            }
        }
        Ok(out)
    }

    pub fn v1_path(&self, controller: &str) -> Option<&str> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|n| n == controller))
            .map(|(_, p)| p.as_str())
    }
}

/// Our cgroup on a hybrid host's unified hierarchy
/// (`/sys/fs/cgroup/unified`), when it is a cgroup of our own (not the
/// root) that could take a freezer.
fn hybrid_unified(me: &ProcCgroup) -> Option<String> {
    let own = me.unified.as_deref().filter(|o| *o != "/")?;
    Path::new(ROOT)
        .join("unified/cgroup.controllers")
        .exists()
        .then(|| own.to_string())
}

/// `base` joined with a cgroup path (which starts with `/`).
pub fn under(base: &Path, cg: &str) -> PathBuf {
    base.join(cg.trim_start_matches('/'))
}

#[derive(Debug)]
pub enum Payload {
    /// `<own>/payload`, with the monitor moved to `<own>/supervisor`
    /// (v2 allows processes only in leaves once children exist under a
    /// cgroup with controllers).
    V2 {
        own: PathBuf,
        payload: PathBuf,
        supervisor: PathBuf,
    },
    /// `freezer/<own>/<leaf>`, and `devices/<own>/<leaf>` when the host
    /// has the v1 devices controller.
    V1 {
        freezer: PathBuf,
        devices: Option<PathBuf>,
    },
}

/// Docker's default device rules: any node may be made, only these
/// opened (the memory devices, ttys, the pty multiplexer and ptys, tun).
pub const DEVICES_ALLOWED: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

/// Removes a cgroup directory, retrying for a while: a killed process
/// leaves its cgroups a moment after it leaves their process lists.
fn rmdir(dir: &Path) {
    let end = Instant::now() + Duration::from_secs(3);
    while let Err(e) = std::fs::remove_dir(dir) {
        if e.kind() == std::io::ErrorKind::NotFound || Instant::now() > end {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes a cgroup directory; one left by a monitor that was killed (so
/// it could not clean up) is taken over once its processes are gone. The
/// name is this VM's, and the daemon starts a monitor only for a VM whose
/// monitor is dead, so what is left is a leftover: killed, and thawed (a
/// frozen process never acts on its SIGKILL, and a monitor killed while
/// its container was paused leaves it frozen).
fn fresh_dir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let procs = dir.join("cgroup.procs");
            for pid in read(&procs)?
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
            {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = write(&dir.join("freezer.state"), "THAWED");
            let _ = write(&dir.join("cgroup.freeze"), "0");
            wait_for("empty (another container of this name?)", &procs, || {
                Ok(read(&procs)?.trim().is_empty())
            })
        }
        r => r.map_err(io(dir)),
    }
}

fn write(path: &Path, what: &str) -> Result<(), CgroupError> {
    std::fs::write(path, what).map_err(io(path))
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(io(path))
}

fn wait_for(
    what: &'static str,
    path: &Path,
    mut ok: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<(), CgroupError> {
    let end = Instant::now() + Duration::from_secs(5);
    while !ok()? {
        if Instant::now() > end {
            return Err(CgroupError::Timeout(path.display().to_string(), what));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

impl Payload {
    /// Makes the payload's cgroup (and on v2 moves the monitor aside).
    pub fn create(leaf: &str) -> Result<Payload, CgroupError> {
        let me = ProcCgroup::parse(&read(Path::new("/proc/self/cgroup"))?)?;
        if Path::new(ROOT).join("cgroup.controllers").exists() {
            let own = me.unified.ok_or_else(|| {
                CgroupError::Parse("no unified cgroup in /proc/self/cgroup".into())
            })?;
            return Payload::create_v2(Path::new(ROOT), &own);
        }
        match Payload::create_v1(&me, leaf) {
            Ok(p) => Ok(p),
            // A hybrid host whose v1 hierarchies are not ours to write (a
            // systemd container: only its unified subtree is delegated to
            // it): the v2 freezer of our own unit's cgroup there. Never
            // the unified root, which every container would share.
            Err(e) => match hybrid_unified(&me) {
                Some(own) => Payload::create_v2(&Path::new(ROOT).join("unified"), &own),
                None => Err(e),
            },
        }
    }

    /// On the unified hierarchy mounted at `root`, the monitor being in
    /// `own`.
    pub fn create_v2(root: &Path, own: &str) -> Result<Payload, CgroupError> {
        let own = under(root, own);
        let payload = own.join("payload");
        let supervisor = own.join("supervisor");
        for d in [&supervisor, &payload] {
            fresh_dir(d)?;
        }
        let p = Payload::V2 {
            own,
            payload,
            supervisor: supervisor.clone(),
        };
        if let Err(e) = write(&supervisor.join("cgroup.procs"), "0") {
            p.remove();
            return Err(e);
        }
        Ok(p)
    }

    fn create_v1(me: &ProcCgroup, leaf: &str) -> Result<Payload, CgroupError> {
        let own = me.v1_path("freezer").unwrap_or("/");
        let freezer = under(&Path::new(ROOT).join("freezer"), own).join(leaf);
        fresh_dir(&freezer)?;
        let mut p = Payload::V1 {
            freezer,
            devices: None,
        };
        if let Some(own) = me.v1_path("devices") {
            let dir = under(&Path::new(ROOT).join("devices"), own).join(leaf);
            let made = fresh_dir(&dir).and_then(|()| {
                write(&dir.join("devices.deny"), "a")?;
                DEVICES_ALLOWED
                    .iter()
                    .try_for_each(|rule| write(&dir.join("devices.allow"), rule))
            });
            if let Payload::V1 { devices, .. } = &mut p {
                *devices = Some(dir);
            }
            if let Err(e) = made {
                p.remove();
                return Err(e);
            }
        }
        Ok(p)
    }

    /// Where the payload's processes are listed (and killed from).
    pub fn procs_file(&self) -> PathBuf {
        match self {
            Payload::V2 { payload, .. } => payload.join("cgroup.procs"),
            Payload::V1 { freezer, .. } => freezer.join("cgroup.procs"),
        }
    }

    /// Where a process writes `0` to join the payload: every cgroup made
    /// for it.
    pub fn join_files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.procs_file()];
        if let Payload::V1 {
            devices: Some(d), ..
        } = self
        {
            v.push(d.join("cgroup.procs"));
        }
        v
    }

    pub fn freeze(&self) -> Result<(), CgroupError> {
        match self {
            Payload::V2 { payload, .. } => {
                write(&payload.join("cgroup.freeze"), "1")?;
                let ev = payload.join("cgroup.events");
                wait_for("frozen", &ev, || {
                    Ok(read(&ev)?.lines().any(|l| l.trim() == "frozen 1"))
                })
            }
            Payload::V1 { freezer, .. } => {
                let st = freezer.join("freezer.state");
                // FREEZING until every task stopped; writing again retries
                // the stragglers.
                wait_for("FROZEN", &st, || {
                    write(&st, "FROZEN")?;
                    Ok(read(&st)?.trim() == "FROZEN")
                })
            }
        }
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self {
            Payload::V2 { payload, .. } => write(&payload.join("cgroup.freeze"), "0"),
            Payload::V1 { freezer, .. } => write(&freezer.join("freezer.state"), "THAWED"),
        }
    }

    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        Ok(read(&self.procs_file())?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    /// Kills every process of the payload and waits until none is left.
    pub fn kill(&self) -> Result<(), CgroupError> {
        if let Payload::V2 { payload, .. } = self {
            // Since 5.14; older kernels fall through to the loop below.
            let _ = write(&payload.join("cgroup.kill"), "1");
        }
        let procs = self.procs_file();
        wait_for("empty", &procs, || {
            // Frozen, nothing forks between reading the list and killing.
            let _ = self.freeze();
            let pids = self.pids()?;
            for p in &pids {
                unsafe { libc::kill(*p, libc::SIGKILL) };
            }
            let _ = self.thaw();
            if pids.is_empty() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
            Ok(self.pids()?.is_empty())
        })
    }

    /// Removes what [`Payload::create`] made; best effort (the caller is
    /// on its way out), after [`Payload::kill`].
    pub fn remove(&self) {
        match self {
            Payload::V2 {
                own,
                payload,
                supervisor,
            } => {
                rmdir(payload);
                let _ = write(&own.join("cgroup.procs"), "0");
                rmdir(supervisor);
            }
            Payload::V1 { freezer, devices } => {
                let _ = self.thaw();
                rmdir(freezer);
                if let Some(d) = devices {
                    rmdir(d);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid_and_unified() {
        let text = "9:name=systemd:/\n6:freezer:/a/b\n2:cpu,cpuacct:/x\n0::/\n";
        let p = ProcCgroup::parse(text).unwrap();
        assert_eq!(p.unified.as_deref(), Some("/"));
        assert_eq!(p.v1_path("freezer"), Some("/a/b"));
        assert_eq!(p.v1_path("cpuacct"), Some("/x"));
        assert_eq!(p.v1_path("memory"), None);
        let u = ProcCgroup::parse("0::/system.slice/mm.scope\n").unwrap();
        assert_eq!(u.unified.as_deref(), Some("/system.slice/mm.scope"));
        assert!(u.v1.is_empty());
        assert!(ProcCgroup::parse("garbage\n").is_err());
    }

    #[test]
    fn joins_paths_under_a_root() {
        assert_eq!(
            under(Path::new("/sys/fs/cgroup/freezer"), "/"),
            PathBuf::from("/sys/fs/cgroup/freezer/")
        );
        assert_eq!(
            under(Path::new("/sys/fs/cgroup"), "/a/b"),
            PathBuf::from("/sys/fs/cgroup/a/b")
        );
    }
}
