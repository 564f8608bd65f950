//! The container's file system as a list of steps: planned as pure data
//! from the spec (so it is tested without root), applied one by one by the
//! container's PID 1 in its own mount namespace (so nothing of it is ever
//! mounted in the host's).

use super::spec::{Spec, CC_AGENT_SOCKET};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where PID 1's UUID file is written (host side), bound over the DMI
/// product UUID inside, which is where the cc agent looks for it.
pub const UUID_FILE: &str = "uuid";
pub const PRODUCT_UUID: &str = "sys/devices/virtual/dmi/id/product_uuid";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Mkdir(PathBuf),
    /// An empty file as a bind mount point (parents made too).
    Touch(PathBuf),
    Write(PathBuf, String),
    Mount {
        src: Option<PathBuf>,
        dst: PathBuf,
        fstype: Option<&'static str>,
        flags: libc::c_ulong,
        data: Option<String>,
    },
    /// A bind whose target may be absent (then skipped).
    BindIfExists(PathBuf, PathBuf),
    /// A character device: path, major, minor (mode 0666).
    Mknod(PathBuf, u32, u32),
    Symlink(&'static str, PathBuf),
    /// A path made read-only by a bind onto itself, remounted read-only
    /// (skipped if absent).
    ReadOnly(PathBuf),
}

/// In the fresh /proc, what would reach the host's kernel: read-only
/// (as Docker does), and files hidden under /dev/null.
const PROC_READ_ONLY: &[&str] = &[
    "/proc/sys",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sysrq-trigger",
];
const PROC_MASKED: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
];

fn bind(src: PathBuf, dst: PathBuf, recursive: bool) -> Step {
    let rec = if recursive { libc::MS_REC } else { 0 };
    Step::Mount {
        src: Some(src),
        dst,
        fstype: None,
        flags: libc::MS_BIND | rec,
        data: None,
    }
}

fn fresh(fstype: &'static str, dst: PathBuf, flags: libc::c_ulong, data: Option<&str>) -> Step {
    Step::Mount {
        src: Some(PathBuf::from(fstype)),
        dst,
        fstype: Some(fstype),
        flags,
        data: data.map(str::to_string),
    }
}

/// A path inside the container under the root's mount point: `/a/b` ->
/// `root/a/b`.
pub fn inside(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// The root file system on `vmdir/rootfs`, before preinit runs.
pub fn root_plan(spec: &Spec) -> Vec<Step> {
    let root = spec.rootfs();
    let mut steps = vec![Step::Mkdir(root.clone())];
    if spec.snapshot {
        let upper = spec.vmdir.join(super::spec::UPPER_DIR);
        let work = spec.vmdir.join(super::spec::WORK_DIR);
        steps.push(Step::Mkdir(upper.clone()));
        steps.push(Step::Mkdir(work.clone()));
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            spec.filesystem.display(),
            upper.display(),
            work.display()
        );
        steps.push(fresh("overlay", root, 0, Some(&data)));
    } else {
        steps.push(bind(spec.filesystem.clone(), root, true));
    }
    steps
}

/// The error a plan stops at: what is wrong, for the one-line report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("volume source {0}: no such file or directory")]
pub struct MissingSource(pub String);

/// Everything mounted inside the root once it exists. `kind` tells
/// whether a host path is a directory (`Some(true)`), something else
/// (`Some(false)`), or missing (`None`): a volume's mount point inside is
/// made to match its source.
pub fn inside_plan(
    spec: &Spec,
    console: &Path,
    kind: impl Fn(&Path) -> Option<bool>,
) -> Result<Vec<Step>, MissingSource> {
    let r = spec.rootfs();
    let rr = |p: &str| inside(&r, p);
    let (nosuid, nodev, noexec) = (libc::MS_NOSUID, libc::MS_NODEV, libc::MS_NOEXEC);
    let mut s = vec![
        Step::Mkdir(rr("/proc")),
        fresh("proc", rr("/proc"), nosuid | nodev | noexec, None),
    ];
    s.extend(PROC_READ_ONLY.iter().map(|p| Step::ReadOnly(rr(p))));
    s.extend(
        PROC_MASKED
            .iter()
            .map(|p| Step::BindIfExists("/dev/null".into(), rr(p))),
    );
    s.extend([
        Step::Mkdir(rr("/sys")),
        fresh(
            "sysfs",
            rr("/sys"),
            libc::MS_RDONLY | nosuid | nodev | noexec,
            None,
        ),
        Step::Mkdir(rr("/dev")),
        fresh(
            "tmpfs",
            rr("/dev"),
            nosuid | libc::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        ),
    ]);
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        s.push(Step::Mknod(rr(&format!("/dev/{name}")), major, minor));
    }
    s.extend([
        Step::Mkdir(rr("/dev/pts")),
        Step::Mount {
            src: Some("devpts".into()),
            dst: rr("/dev/pts"),
            fstype: Some("devpts"),
            flags: nosuid | noexec,
            data: Some("newinstance,ptmxmode=0666,mode=0620".into()),
        },
        Step::Symlink("pts/ptmx", rr("/dev/ptmx")),
        Step::Mkdir(rr("/dev/shm")),
        fresh(
            "tmpfs",
            rr("/dev/shm"),
            nosuid | nodev,
            Some("mode=1777,size=65536k"),
        ),
        Step::Touch(rr("/dev/console")),
        bind(console.to_path_buf(), rr("/dev/console"), false),
    ]);
    if spec.fifos > 0 {
        s.push(Step::Mkdir(rr("/dev/fifos")));
    }
    for n in 0..spec.fifos {
        let dst = rr(&format!("/dev/fifos/fifo{n}"));
        s.push(Step::Touch(dst.clone()));
        s.push(bind(spec.fifo(n), dst, false));
    }
    for (dst, src) in &spec.volumes {
        let d = rr(dst);
        match kind(src) {
            None => return Err(MissingSource(src.display().to_string())),
            Some(true) => s.push(Step::Mkdir(d.clone())),
            Some(false) => s.push(Step::Touch(d.clone())),
        }
        s.push(bind(src.clone(), d, true));
    }
    let cc = rr(super::spec::CC_IN_CONTAINER);
    s.push(Step::Touch(cc.clone()));
    s.push(bind(spec.vmdir.join(CC_AGENT_SOCKET), cc, false));
    let uuid = spec.vmdir.join(UUID_FILE);
    s.push(Step::Write(uuid.clone(), format!("{}\n", spec.uuid)));
    s.push(Step::BindIfExists(uuid, rr(PRODUCT_UUID)));
    Ok(s)
}

/// `path` (under `root`) with every symlink on the way resolved as the
/// container will see it: an absolute target starts again at `root`, and
/// `..` stops at it. Mount points and files made inside are resolved so,
/// so a file system's symlink cannot make the monitor create or mount
/// anything outside it. Paths not under `root` are returned as they are.
pub fn resolve_in_root(root: &Path, path: &Path) -> PathBuf {
    use std::path::Component;
    let Ok(rel) = path.strip_prefix(root) else {
        return path.to_path_buf();
    };
    let mut todo: Vec<std::ffi::OsString> = rel
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut done: Vec<std::ffi::OsString> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let here: PathBuf = root.join(done.iter().collect::<PathBuf>()).join(&c);
        match std::fs::read_link(&here) {
            Ok(target) if hops < 40 => {
                hops += 1;
                if target.is_absolute() {
                    done.clear();
                }
                for t in target.components().rev() {
                    match t {
                        Component::Normal(n) => todo.push(n.to_os_string()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => done.push(c),
        }
    }
    root.join(done.iter().collect::<PathBuf>())
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// A step that failed: what it did, and why it failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {why}")]
pub struct StepError {
    pub what: String,
    pub why: std::io::Error,
}

fn errno(what: String) -> StepError {
    StepError {
        what,
        why: std::io::Error::last_os_error(),
    }
}

fn failed(what: String) -> impl FnOnce(std::io::Error) -> StepError {
    move |why| StepError { what, why }
}

/// [`apply`] with the step's paths under `root` resolved there
/// ([`resolve_in_root`]).
pub fn apply_inside(step: &Step, root: &Path) -> Result<(), StepError> {
    let r = |p: &Path| resolve_in_root(root, p);
    match step {
        Step::Mkdir(p) => apply(&Step::Mkdir(r(p))),
        Step::Touch(p) => apply(&Step::Touch(r(p))),
        Step::Mount {
            src,
            dst,
            fstype,
            flags,
            data,
        } => apply(&Step::Mount {
            src: src.clone(),
            dst: r(dst),
            fstype: *fstype,
            flags: *flags,
            data: data.clone(),
        }),
        Step::BindIfExists(src, dst) => apply(&Step::BindIfExists(src.clone(), r(dst))),
        Step::Mknod(p, a, b) => apply(&Step::Mknod(r(p), *a, *b)),
        Step::Symlink(t, p) => apply(&Step::Symlink(t, r(p))),
        Step::ReadOnly(p) => apply(&Step::ReadOnly(r(p))),
        Step::Write(..) => apply(step),
    }
}

/// Carries out one step (in the container's mount namespace).
pub fn apply(step: &Step) -> Result<(), StepError> {
    match step {
        Step::Mkdir(p) => {
            std::fs::create_dir_all(p).map_err(failed(format!("mkdir {}", p.display())))
        }
        Step::Touch(p) => {
            if p.symlink_metadata().is_ok() {
                return Ok(());
            }
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).map_err(failed(format!("mkdir {}", d.display())))?;
            }
            std::fs::File::create(p)
                .map(drop)
                .map_err(failed(format!("create {}", p.display())))
        }
        Step::Write(p, text) => {
            std::fs::write(p, text).map_err(failed(format!("write {}", p.display())))
        }
        Step::Mount {
            src,
            dst,
            fstype,
            flags,
            data,
        } => {
            let src_c = src.as_deref().map(cstr);
            let dst_c = cstr(dst);
            let fs_c = fstype.map(|f| CString::new(f).unwrap_or_default());
            let data_c = data.as_deref().map(|d| CString::new(d).unwrap_or_default());
            let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
            let rc = unsafe {
                libc::mount(
                    ptr(&src_c),
                    dst_c.as_ptr(),
                    ptr(&fs_c),
                    *flags,
                    ptr(&data_c) as *const libc::c_void,
                )
            };
            if rc != 0 {
                let what = match (src, fstype) {
                    (_, Some(f)) => format!("mount {f} on {}", dst.display()),
                    (Some(s), None) => format!("bind {} on {}", s.display(), dst.display()),
                    (None, None) => format!("remount {}", dst.display()),
                };
                return Err(errno(what));
            }
            Ok(())
        }
        Step::BindIfExists(src, dst) => {
            if dst.exists() {
                apply(&bind(src.clone(), dst.clone(), false))
            } else {
                Ok(())
            }
        }
        Step::ReadOnly(p) => {
            if !p.exists() {
                return Ok(());
            }
            apply(&bind(p.clone(), p.clone(), true))?;
            let (nosuid, nodev, noexec) = (libc::MS_NOSUID, libc::MS_NODEV, libc::MS_NOEXEC);
            apply(&Step::Mount {
                src: None,
                dst: p.clone(),
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | nosuid | nodev | noexec,
                data: None,
            })
        }
        Step::Mknod(p, major, minor) => {
            let dev = libc::makedev(*major, *minor);
            let c = cstr(p);
            if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, dev) } != 0 {
                return Err(errno(format!("mknod {}", p.display())));
            }
            // The umask took bits off.
            if unsafe { libc::chmod(c.as_ptr(), 0o666) } != 0 {
                return Err(errno(format!("chmod {}", p.display())));
            }
            Ok(())
        }
        Step::Symlink(target, p) => std::os::unix::fs::symlink(target, p)
            .map_err(failed(format!("symlink {}", p.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::spec::NicSpec;
    use super::*;

    fn spec() -> Spec {
        Spec {
            name: "c1".into(),
            uuid: "u-u-i-d".into(),
            hostname: "h".into(),
            vmdir: "/vm".into(),
            filesystem: "/fs".into(),
            snapshot: true,
            init: vec!["/init".into()],
            preinit: String::new(),
            fifos: 2,
            volumes: vec![
                ("/data".into(), "/host/data".into()),
                ("/etc/x.conf".into(), "/host/x".into()),
            ],
            nics: vec![NicSpec {
                peer: "p".into(),
                name: "eth0".into(),
                mac: "00:11:22:33:44:55".into(),
            }],
            netns: "mm".into(),
            memory: 64,
            cgroup_leaf: "leaf".into(),
        }
    }

    fn binds(steps: &[Step]) -> Vec<(PathBuf, PathBuf)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Mount {
                    src: Some(src),
                    dst,
                    fstype: None,
                    ..
                } => Some((src.clone(), dst.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn snapshot_is_an_overlay_else_a_bind() {
        let mut s = spec();
        let p = root_plan(&s);
        assert!(p.contains(&Step::Mkdir("/vm/upper".into())));
        let Some(Step::Mount {
            fstype, data, dst, ..
        }) = p.last()
        else {
            panic!()
        };
        assert_eq!(*fstype, Some("overlay"));
        assert_eq!(dst, Path::new("/vm/rootfs"));
        assert_eq!(
            data.as_deref(),
            Some("lowerdir=/fs,upperdir=/vm/upper,workdir=/vm/work")
        );
        s.snapshot = false;
        let p = root_plan(&s);
        assert_eq!(binds(&p), vec![("/fs".into(), "/vm/rootfs".into())]);
    }

    #[test]
    fn inside_binds_console_fifos_volumes_cc_uuid() {
        let s = spec();
        let p = inside_plan(&s, Path::new("/dev/pts/9"), |p| Some(p.ends_with("data"))).unwrap();
        let b = binds(&p);
        for (src, dst) in [
            ("/dev/pts/9", "/vm/rootfs/dev/console"),
            ("/vm/fifo0", "/vm/rootfs/dev/fifos/fifo0"),
            ("/vm/fifo1", "/vm/rootfs/dev/fifos/fifo1"),
            ("/host/data", "/vm/rootfs/data"),
            ("/host/x", "/vm/rootfs/etc/x.conf"),
            ("/vm/cc-agent", "/vm/rootfs/cc"),
        ] {
            assert!(b.contains(&(src.into(), dst.into())), "{src} -> {dst}");
        }
        // A directory's mount point is a directory, a file's a file.
        assert!(p.contains(&Step::Mkdir("/vm/rootfs/data".into())));
        assert!(p.contains(&Step::Touch("/vm/rootfs/etc/x.conf".into())));
        assert!(p.contains(&Step::BindIfExists(
            "/vm/uuid".into(),
            "/vm/rootfs/sys/devices/virtual/dmi/id/product_uuid".into()
        )));
        assert!(p.contains(&Step::Write("/vm/uuid".into(), "u-u-i-d\n".into())));
        assert!(p.contains(&Step::Mknod("/vm/rootfs/dev/null".into(), 1, 3)));
        // /dev exists before anything is made in it.
        let dev = p
            .iter()
            .position(|s| matches!(s, Step::Mount { fstype: Some("tmpfs"), dst, .. } if dst.ends_with("dev")))
            .unwrap();
        let null = p.iter().position(|s| matches!(s, Step::Mknod(..))).unwrap();
        assert!(dev < null);
    }

    #[test]
    fn proc_sys_is_read_only_and_sys_too() {
        let p = inside_plan(&spec(), Path::new("/dev/pts/0"), |_| Some(true)).unwrap();
        assert!(p.contains(&Step::ReadOnly("/vm/rootfs/proc/sys".into())));
        assert!(p.contains(&Step::ReadOnly("/vm/rootfs/proc/sysrq-trigger".into())));
        assert!(p.contains(&Step::BindIfExists(
            "/dev/null".into(),
            "/vm/rootfs/proc/kcore".into()
        )));
        // After /proc itself.
        let proc_at = p.iter().position(|s| {
            matches!(
                s,
                Step::Mount {
                    fstype: Some("proc"),
                    ..
                }
            )
        });
        let ro_at = p.iter().position(|s| matches!(s, Step::ReadOnly(_)));
        assert!(proc_at < ro_at);
        assert!(p.iter().any(
            |s| matches!(s, Step::Mount { fstype: Some("sysfs"), flags, .. }
            if flags & libc::MS_RDONLY != 0)
        ));
    }

    #[test]
    fn a_missing_volume_source_is_an_error() {
        let e = inside_plan(&spec(), Path::new("/dev/pts/0"), |_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "volume source /host/data: no such file or directory"
        );
        let mut s = spec();
        s.fifos = 0;
        s.volumes.clear();
        let p = inside_plan(&s, Path::new("/dev/pts/0"), |_| None).unwrap();
        assert!(!p.contains(&Step::Mkdir("/vm/rootfs/dev/fifos".into())));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("rel")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("usr/up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("cc")).unwrap();
        let r = |p: &str| resolve_in_root(&root, &inside(&root, p));
        assert_eq!(r("/abs/x"), root.join("usr/lib/x"));
        assert_eq!(r("/rel/x"), root.join("usr/lib/x"));
        assert_eq!(r("/usr/up/x"), root.join("etc/x"));
        assert_eq!(r("/cc"), root.join("etc/passwd"));
        assert_eq!(r("/new/dir"), root.join("new/dir"));
        assert_eq!(
            resolve_in_root(&root, Path::new("/vm/fifo0")),
            PathBuf::from("/vm/fifo0")
        );
    }

    #[test]
    fn inside_paths_stay_under_the_root() {
        assert_eq!(inside(Path::new("/r"), "/a/b"), PathBuf::from("/r/a/b"));
        assert_eq!(inside(Path::new("/r"), "a"), PathBuf::from("/r/a"));
    }
}
