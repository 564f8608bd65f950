//! `cc mount`: a guest's file system mounted on this host, through the
//! agent's file server (see [`super::ufs`]). Where the kernel has a 9P
//! client the mount is the kernel's, as minimega's; where it has none
//! (many hardened hosts, this project's test machines) the daemon serves
//! the same 9P2000 session to the kernel through FUSE.
//!
//! A daemon under systemd runs in a mount namespace of its own
//! (ProtectSystem=), where a mount would be invisible to every shell; so
//! mounts are made, and unmade, in the mount namespace of PID 1, from a
//! thread that joined it alone.

use super::ufs::UfsError;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use thiserror::Error;
use tracing::{info, warn};

#[derive(Debug, Error)]
pub enum MountError {
    #[error("mount point does not exist")]
    NoMountPoint,
    #[error("mount point must be an absolute path: {0}")]
    Relative(String),
    #[error("already connected to {0}")]
    Already(String),
    #[error(transparent)]
    Ufs(#[from] UfsError),
    #[error("mount {path}: {why}")]
    Mount { path: String, why: String },
}

/// How a guest's file system is reached here.
#[derive(Debug)]
enum How {
    /// Only the port is open (`cc mount VM` without a path).
    Port,
    Kernel,
    /// Served by a thread of this daemon; its connection to the port is
    /// shut down on unmount, so the thread cannot outlive the mount.
    Fuse(TcpStream),
}

#[derive(Debug)]
pub struct Mount {
    pub namespace: String,
    pub name: String,
    pub uuid: String,
    /// Where the agent's file server is reached: `HOST:PORT`.
    pub addr: String,
    /// Empty when only the port was asked for.
    pub path: String,
    how: How,
    /// The agent connection whose file server it reaches.
    via: Option<super::ufs::Handle>,
}

/// The node's mounts, by VM UUID.
#[derive(Default)]
pub struct Mounts {
    by_uuid: Mutex<BTreeMap<String, Mount>>,
    /// The source FUSE mounts carry, naming this daemon (its base's tag):
    /// what a daemon that died leaves behind is found by it.
    source: String,
}

/// The mount source of a daemon's FUSE mounts.
pub fn source_of(tag: &str) -> String {
    format!("minimega-cc-{tag}")
}

/// The mount points of `source` in a mountinfo(5) text. Pure.
pub fn mounted_from(mountinfo: &str, source: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split_whitespace().nth(4)?;
            let mut r = right.split_whitespace();
            let (fstype, src) = (r.next()?, r.next()?);
            (fstype.starts_with("fuse") && src == source)
                .then(|| crate::paths::unescape_mountinfo(point))
        })
        .collect()
}

impl Mounts {
    /// The mounts of the daemon whose base has `tag`; unmounts what a
    /// previous run of it left (its FUSE server died with it: such a
    /// mount only answers "transport endpoint is not connected").
    pub fn new(tag: &str) -> Mounts {
        let source = source_of(tag);
        let info = std::fs::read_to_string("/proc/1/mountinfo")
            .or_else(|_| std::fs::read_to_string("/proc/self/mountinfo"))
            .unwrap_or_default();
        for point in mounted_from(&info, &source) {
            match unmount(Path::new(&point)) {
                Ok(()) => info!("cc: unmounted {point}, left by a previous run"),
                Err(e) => warn!("cc: cannot unmount {point}, left by a previous run: {e}"),
            }
        }
        Mounts {
            by_uuid: Mutex::default(),
            source,
        }
    }

    /// The daemon stops: nothing it serves may stay mounted.
    pub fn clear_all(&self) {
        let all: Vec<Mount> = std::mem::take(&mut *self.lock()).into_values().collect();
        for m in &all {
            detach(m);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Mount>> {
        self.by_uuid.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A namespace's mounts as `cc mount` lists them: name, uuid, addr, path.
    pub fn rows(&self, ns: &str) -> Vec<Vec<String>> {
        self.lock()
            .values()
            .filter(|m| m.namespace == ns)
            .map(|m| {
                vec![
                    m.name.clone(),
                    m.uuid.clone(),
                    m.addr.clone(),
                    m.path.clone(),
                ]
            })
            .collect()
    }

    /// Refuses a VM mounted already, minimega's words.
    pub fn check_free(&self, uuid: &str) -> Result<(), MountError> {
        match self.lock().get(uuid) {
            Some(m) => Err(MountError::Already(m.addr.clone())),
            None => Ok(()),
        }
    }

    /// Mounts the file server on local `port` (of host `host`) at `path` (absolute, in
    /// PID 1's mount namespace), or records the port alone when `path`
    /// is None. Blocking: the kernel's 9P client talks to the port before
    /// mount(2) returns.
    pub fn mount(
        &self,
        ns: &str,
        name: &str,
        uuid: &str,
        via: &super::ufs::Handle,
        (host, port): (&str, u16),
        path: Option<&str>,
    ) -> Result<(), MountError> {
        let addr = format!("{host}:{port}");
        let how = match path {
            None => How::Port,
            Some(p) => attach(Path::new(p), port, &self.source)?,
        };
        info!(vm = %name, "cc: mount of {uuid} from :{port} at {:?} ({how:?})", path);
        let mut by = self.lock();
        by.insert(
            uuid.to_string(),
            Mount {
                namespace: ns.to_string(),
                name: name.to_string(),
                uuid: uuid.to_string(),
                addr,
                path: path.unwrap_or_default().to_string(),
                how,
                via: Some(via.clone()),
            },
        );
        Ok(())
    }

    /// Takes out the namespace's mounts matching `which` (a UUID, a VM
    /// name or a path; all when empty) and unmounts them. The taken ones,
    /// so their ports can be closed.
    pub fn clear(&self, ns: &str, which: &str) -> Vec<Mount> {
        let taken: Vec<Mount> = {
            let mut by = self.lock();
            let keys: Vec<String> = by
                .values()
                .filter(|m| m.namespace == ns)
                .filter(|m| {
                    which.is_empty() || [&m.uuid, &m.name, &m.path].contains(&&which.to_string())
                })
                .map(|m| m.uuid.clone())
                .collect();
            keys.iter().filter_map(|k| by.remove(k)).collect()
        };
        for m in &taken {
            detach(m);
        }
        taken
    }

    /// Takes out and unmounts a VM's mount made through the agent
    /// connection `via` (which ended).
    pub fn forget_via(&self, uuid: &str, via: &super::ufs::Handle) -> Option<Mount> {
        let mut by = self.lock();
        if !by.get(uuid)?.via.as_ref().is_some_and(|v| v.same(via)) {
            return None;
        }
        let m = by.remove(uuid)?;
        drop(by);
        detach(&m);
        Some(m)
    }

    /// Takes out and unmounts a VM's mount, whatever its namespace (the VM
    /// is gone).
    pub fn forget(&self, uuid: &str) -> Option<Mount> {
        let m = self.lock().remove(uuid)?;
        detach(&m);
        Some(m)
    }
}

fn detach(m: &Mount) {
    if !matches!(m.how, How::Port) {
        if let Err(e) = unmount(Path::new(&m.path)) {
            warn!(vm = %m.name, "cc: unable to unmount {}: {e}", m.path);
        }
    }
    if let How::Fuse(s) = &m.how {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}

/// Whether this kernel has a 9P client (minimega's way).
fn kernel_9p() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|t| t.lines().any(|l| l.split_whitespace().last() == Some("9p")))
}

fn attach(path: &Path, port: u16, source: &str) -> Result<How, MountError> {
    if !path.is_absolute() {
        return Err(MountError::Relative(path.display().to_string()));
    }
    let failed = |e: io::Error| MountError::Mount {
        path: path.display().to_string(),
        why: e.to_string(),
    };
    let target = cstring(path.as_os_str().as_bytes()).map_err(failed)?;
    in_host_ns(|| exists(&target)).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => MountError::NoMountPoint,
        _ => failed(e),
    })?;
    if kernel_9p() {
        let data =
            cstring(format!("trans=tcp,port={port},version=9p2000").as_bytes()).map_err(failed)?;
        in_host_ns(|| sys_mount(c"127.0.0.1", &target, c"9p", 0, &data)).map_err(failed)?;
        return Ok(How::Kernel);
    }
    let conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(failed)?;
    let _ = conn.set_nodelay(true);
    // SAFETY: a plain open(2); the descriptor is owned at once.
    let fd = unsafe { libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(failed(io::Error::new(
            e.kind(),
            format!("/dev/fuse: {e} (and this kernel has no 9p client)"),
        )));
    }
    // SAFETY: fd was just opened and is not owned elsewhere.
    let fuse = unsafe { OwnedFd::from_raw_fd(fd) };
    let data = cstring(
        format!(
            "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
            fuse.as_raw_fd()
        )
        .as_bytes(),
    )
    .map_err(failed)?;
    let source = cstring(source.as_bytes()).map_err(failed)?;
    in_host_ns(|| {
        sys_mount(
            &source,
            &target,
            c"fuse",
            libc::MS_NOSUID | libc::MS_NODEV,
            &data,
        )
    })
    .map_err(failed)?;
    let theirs = conn.try_clone().map_err(failed)?;
    let shown = path.display().to_string();
    let spawned = std::thread::Builder::new()
        .name("cc-mount".into())
        .spawn(move || {
            if let Err(e) = crate::ninep::fuse::serve(fuse, theirs) {
                warn!("cc: mount at {shown} ended: {e}");
            }
        });
    if let Err(e) = spawned {
        let _ = unmount(path);
        return Err(failed(e));
    }
    Ok(How::Fuse(conn))
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))
}

fn exists(path: &CString) -> io::Result<()> {
    // SAFETY: stat into a zeroed buffer of the right type.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::stat(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sys_mount(
    src: &std::ffi::CStr,
    target: &CString,
    fstype: &std::ffi::CStr,
    flags: libc::c_ulong,
    data: &CString,
) -> io::Result<()> {
    // SAFETY: every pointer is a live NUL-terminated string.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lazily: a shell sitting in the mount must not keep it.
pub fn unmount(path: &Path) -> io::Result<()> {
    let target = cstring(path.as_os_str().as_bytes())?;
    in_host_ns(|| {
        // SAFETY: a live NUL-terminated path.
        if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
            let e = io::Error::last_os_error();
            // Unmounted already (by hand): nothing left to do.
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
        Ok(())
    })
}

/// PID 1's mount namespace when it is not this process's own.
fn host_ns() -> Option<OwnedFd> {
    let ino = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let (ours, theirs) = (ino("/proc/self/ns/mnt")?, ino("/proc/1/ns/mnt")?);
    if ours == theirs {
        return None;
    }
    std::fs::File::open("/proc/1/ns/mnt")
        .ok()
        .map(OwnedFd::from)
}

/// Runs `f` in PID 1's mount namespace: on a thread of its own, which
/// first stops sharing its file system attributes with the others (setns
/// refuses a thread that shares them), and then ends.
fn in_host_ns<T: Send>(f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let Some(ns) = host_ns() else {
        return f();
    };
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: plain syscalls on this thread alone; it ends after f.
            if unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
                return Err(io::Error::last_os_error());
            }
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) } != 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the mount thread panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(ns: &str, name: &str, uuid: &str, path: &str) -> Mount {
        Mount {
            namespace: ns.into(),
            name: name.into(),
            uuid: uuid.into(),
            addr: "h:1".into(),
            path: path.into(),
            how: How::Port,
            via: None,
        }
    }

    #[test]
    fn clear_matches_uuid_name_or_path_within_the_namespace() {
        let m = Mounts::default();
        for (ns, name, uuid, path) in [
            ("a", "vm1", "u1", "/m1"),
            ("a", "vm2", "u2", "/m2"),
            ("b", "vm3", "u3", ""),
        ] {
            m.lock().insert(uuid.into(), mount(ns, name, uuid, path));
        }
        assert_eq!(m.rows("a").len(), 2);
        assert!(m.clear("a", "nosuch").is_empty());
        assert!(m.clear("a", "u3").is_empty(), "another namespace's");
        assert_eq!(m.clear("a", "vm1")[0].uuid, "u1");
        assert_eq!(m.clear("a", "/m2")[0].uuid, "u2");
        assert!(m.rows("a").is_empty());
        assert!(matches!(m.check_free("u3"), Err(MountError::Already(a)) if a == "h:1"));
        assert_eq!(m.clear("b", "").len(), 1);
        assert!(m.check_free("u3").is_ok());
    }

    #[test]
    fn a_daemons_fuse_mounts_are_found_by_their_source() {
        let info = "\
36 25 0:32 / /tmp/a\\040b rw,nosuid - fuse minimega-cc-1a2b rw,user_id=0
37 25 0:33 / /tmp/other rw - fuse minimega-cc-ffff rw
38 25 0:34 / /tmp/c rw shared:5 - fuse.minimega minimega-cc-1a2b rw
39 25 8:1 / /tmp/d rw - ext4 minimega-cc-1a2b rw
";
        assert_eq!(
            mounted_from(info, &source_of("1a2b")),
            ["/tmp/a b", "/tmp/c"]
        );
        assert!(mounted_from("garbage\n", "x").is_empty());
    }

    #[test]
    fn relative_mount_points_are_refused() {
        assert!(matches!(
            attach(Path::new("mnt"), 1, "x"),
            Err(MountError::Relative(p)) if p == "mnt"
        ));
    }
}
