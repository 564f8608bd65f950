//! Creating the container: the payload's cgroup, the network namespace,
//! and the stage (`container-init`) spawned into fresh namespaces on the
//! pty's slave side, then held frozen until the first `cont`.

use super::cgroup::Payload;
use super::init::{GO_FD, REPORT_FD};
use super::net;
use crate::container::spec::{Spec, INIT_VERB};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use thiserror::Error;
use tokio::io::AsyncReadExt;

#[derive(Debug, Error)]
pub enum CreateError {
    #[error(transparent)]
    Cgroup(#[from] super::cgroup::CgroupError),
    #[error(transparent)]
    Net(#[from] super::net::NetError),
    #[error("{0}")]
    Os(String),
    /// What the stage reported (`error: ...`).
    #[error("{0}")]
    Init(String),
}

fn os(what: &str) -> CreateError {
    CreateError::Os(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// A running container: the stage's process and what to undo.
pub struct Container {
    pub cgroup: Payload,
    pub netns: String,
    pub stage: tokio::process::Child,
}

/// A new pty: (master, slave). The slave opens with O_NOCTTY (glibc's
/// openpty), so it never becomes the monitor's controlling terminal.
pub fn open_pty() -> Result<(OwnedFd, OwnedFd), CreateError> {
    let (mut m, mut s) = (0, 0);
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(os("openpty"));
    }
    unsafe {
        libc::fcntl(m, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(s, libc::F_SETFD, libc::FD_CLOEXEC);
        Ok((OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)))
    }
}

/// A close-on-exec pipe whose ends are above the stage's fds 3 and 4, so
/// the dup2s in pre_exec never overwrite one another.
fn pipe() -> Result<(OwnedFd, OwnedFd), CreateError> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os("pipe"));
    }
    let high = |fd: i32| unsafe {
        let h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
        libc::close(fd);
        OwnedFd::from_raw_fd(h)
    };
    Ok((high(fds[0]), high(fds[1])))
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// Writes `what` to the file at `path`, with raw syscalls only (safe
/// after fork).
unsafe fn put(path: &CString, what: &[u8]) -> std::io::Result<()> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = libc::write(fd, what.as_ptr() as *const libc::c_void, what.len());
    libc::close(fd);
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn undo(cgroup: &Payload, netns: &str) {
    let _ = cgroup.kill();
    cgroup.remove();
    net::remove(netns);
}

impl Container {
    /// Makes the container and leaves it frozen with init about to exec.
    /// On failure nothing is left (no process, namespace or cgroup).
    pub async fn create(
        spec: &Spec,
        spec_path: &Path,
        slave: OwnedFd,
    ) -> Result<Container, CreateError> {
        let cgroup = Payload::create(&spec.cgroup_leaf)?;
        if let Err(e) = net::setup(spec) {
            cgroup.remove();
            return Err(CreateError::Net(e));
        }
        match Self::spawn(spec, spec_path, slave, &cgroup).await {
            Ok(stage) => Ok(Container {
                cgroup,
                netns: spec.netns.clone(),
                stage,
            }),
            Err(e) => {
                undo(&cgroup, &spec.netns);
                Err(e)
            }
        }
    }

    async fn spawn(
        spec: &Spec,
        spec_path: &Path,
        slave: OwnedFd,
        cgroup: &Payload,
    ) -> Result<tokio::process::Child, CreateError> {
        let (report_r, report_w) = pipe()?;
        let (go_r, go_w) = pipe()?;
        let joins: Vec<CString> = cgroup.join_files().iter().map(|p| cpath(p)).collect();
        let netns = cpath(&Path::new("/run/netns").join(&spec.netns));
        let oom = cpath(Path::new("/proc/self/oom_score_adj"));
        let (rw, gr) = (report_w.as_raw_fd(), go_r.as_raw_fd());
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| CreateError::Os(format!("dup: {e}")))
        };
        let mut cmd = tokio::process::Command::new("/proc/self/exe");
        cmd.arg(INIT_VERB)
            .arg(spec_path)
            .stdin(dup(&slave)?)
            .stdout(dup(&slave)?)
            .stderr(slave)
            .kill_on_drop(false);
        unsafe {
            cmd.pre_exec(move || {
                // A dead monitor takes its container along.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // "0": the writing process itself.
                for j in &joins {
                    put(j, b"0")?;
                }
                let fd = libc::open(netns.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                let flags = libc::CLONE_NEWNS
                    | libc::CLONE_NEWUTS
                    | libc::CLONE_NEWIPC
                    | libc::CLONE_NEWPID;
                if libc::unshare(flags) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The OOM killer picks the payload before the monitor.
                put(&oom, b"500")?;
                libc::setsid();
                if libc::dup2(rw, REPORT_FD) < 0 || libc::dup2(gr, GO_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut stage = cmd
            .spawn()
            .map_err(|e| CreateError::Os(format!("start container-init: {e}")))?;
        drop((report_w, go_r));
        match Self::handshake(report_r, go_w, cgroup).await {
            Ok(()) => Ok(stage),
            Err(e) => {
                let _ = cgroup.kill();
                let st = stage.wait().await;
                Err(match (e, st) {
                    (CreateError::Init(m), Ok(st)) if m.is_empty() => CreateError::Init(format!(
                        "container-init ended before the container was ready ({st})"
                    )),
                    (e, _) => e,
                })
            }
        }
    }

    /// Waits for PID 1's `ready`, freezes the payload, then lets PID 1
    /// go: it execs init when thawed, at the first `cont`.
    async fn handshake(report: OwnedFd, go: OwnedFd, cgroup: &Payload) -> Result<(), CreateError> {
        let mut r = tokio::net::unix::pipe::Receiver::from_owned_fd(report)
            .map_err(|e| CreateError::Os(format!("report pipe: {e}")))?;
        let mut text = Vec::new();
        let mut buf = [0u8; 512];
        while !text.contains(&b'\n') {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&text);
        let line = text.lines().next().unwrap_or("").trim();
        if line != "ready" {
            return Err(CreateError::Init(
                line.strip_prefix("error: ").unwrap_or(line).to_string(),
            ));
        }
        cgroup.freeze()?;
        let n = unsafe { libc::write(go.as_raw_fd(), b"go\n".as_ptr() as *const libc::c_void, 3) };
        if n != 3 {
            return Err(os("tell container-init to go"));
        }
        Ok(())
    }

    /// Kills everything in the container and removes what the monitor
    /// made for it.
    pub async fn destroy(mut self) {
        let _ = self.cgroup.kill();
        let _ = self.stage.wait().await;
        self.cgroup.remove();
        net::remove(&self.netns);
    }
}
