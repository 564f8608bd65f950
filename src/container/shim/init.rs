//! `minimega container-init SPEC`: the stage the monitor spawns into the
//! container's new namespaces, and the container's PID 1 before it execs
//! init. Single-threaded on purpose (it forks, and PID 1 execs), so no
//! tokio here.
//!
//! The stage is not PID 1 itself: `unshare(CLONE_NEWPID)` puts only the
//! children of the caller in the new PID namespace, so the stage forks
//! PID 1 and waits for it, exiting with its status (the monitor sees the
//! stage's exit as the container's). PID 1 talks to the monitor over two
//! pipes: `ready` or `error: ...` on fd 3 once the file system is built,
//! then waits for `go` on fd 4, read while the monitor holds the payload
//! frozen, so init starts only at the first `cont`.

use crate::container::mounts;
use crate::container::spec::Spec;
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::Path;

pub const REPORT_FD: i32 = 3;
pub const GO_FD: i32 = 4;

/// The capabilities init keeps, Docker's default set: enough for a
/// normal distribution's boot (chown, setuid daemons, raw sockets for
/// ping, mknod in /dev) without the ones that reach the host (SYS_ADMIN,
/// SYS_MODULE, SYS_PTRACE, SYS_TIME, ...). Plus NET_ADMIN: minimega's
/// routers configure interfaces and firewalls inside, and the network
/// namespace is the container's own.
pub const KEEP_CAPS: &[u32] = &[
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    12, // NET_ADMIN
    13, // NET_RAW
    18, // SYS_CHROOT
    27, // MKNOD
    29, // AUDIT_WRITE
    31, // SETFCAP
];

pub const INIT_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("TERM", "linux"),
    ("container", "minimega"),
    ("HOME", "/"),
];

fn say(fd: i32, text: &str) {
    let b = text.as_bytes();
    unsafe { libc::write(fd, b.as_ptr() as *const libc::c_void, b.len()) };
}

fn fail(why: &str) -> i32 {
    say(REPORT_FD, &format!("error: {}\n", why.replace('\n', " ")));
    1
}

/// The stage's entry: `args` are what follows the verb.
pub fn main(args: &[String]) -> i32 {
    let Some(path) = args.first() else {
        return fail("container-init: no spec given");
    };
    let spec: Spec = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => return fail(&format!("spec {path}: {e}")),
    };
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return fail(&format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let why = match pid1(&spec) {
            Ok(()) => return 0,
            Err(e) => e,
        };
        unsafe { libc::_exit(fail(&why.to_string())) };
    }
    // Only PID 1 holds the pipes now, so the monitor sees EOF when it dies.
    unsafe {
        libc::close(REPORT_FD);
        libc::close(GO_FD);
    }
    let mut status = 0;
    loop {
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        if rc < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 1;
        }
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// Why PID 1 could not get to init; reported as one line on fd 3.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Step(#[from] mounts::StepError),
    #[error(transparent)]
    Volume(#[from] mounts::MissingSource),
    #[error("preinit {0}: {1}")]
    PreinitStart(String, std::io::Error),
    #[error("preinit {0} failed: {1}")]
    Preinit(String, String),
    #[error("init {0}: no such file in the container's file system")]
    NoInit(String),
    #[error("init {0}: not an executable file")]
    NotExecutable(String),
    #[error("no init given")]
    NoInitGiven,
    #[error("{0:?}: contains a NUL byte")]
    Nul(String),
    #[error("{0}: {1}")]
    Os(String, std::io::Error),
}

fn errno(what: &str) -> InitError {
    InitError::Os(what.to_string(), std::io::Error::last_os_error())
}

fn cstr(s: &str) -> Result<CString, InitError> {
    CString::new(s).map_err(|_| InitError::Nul(s.to_string()))
}

fn exit_text(st: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => st.to_string(),
    }
}

fn console_name() -> Result<String, InitError> {
    let mut buf = [0 as libc::c_char; 256];
    if unsafe { libc::ttyname_r(0, buf.as_mut_ptr(), buf.len()) } != 0 {
        return Err(errno("console: stdin is no terminal"));
    }
    Ok(unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

fn kind(p: &Path) -> Option<bool> {
    std::fs::metadata(p).ok().map(|m| m.is_dir())
}

/// PID 1 until it execs init; returns only on failure (or `Ok` when the
/// monitor went away before `go`).
fn pid1(spec: &Spec) -> Result<(), InitError> {
    // The stage dies with the monitor (set in its pre_exec); PID 1 with
    // the stage, and the namespace's other processes with PID 1.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let root = cstr("/")?;
    if unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    } != 0
    {
        return Err(errno("make / private"));
    }
    let rootfs = spec.rootfs();
    for step in mounts::root_plan(spec) {
        mounts::apply(&step)?;
    }
    if !spec.preinit.is_empty() {
        let st = std::process::Command::new(&spec.preinit)
            .arg(&rootfs)
            .env("CONTAINER_ROOT", &rootfs)
            .status()
            .map_err(|e| InitError::PreinitStart(spec.preinit.clone(), e))?;
        if !st.success() {
            return Err(InitError::Preinit(spec.preinit.clone(), exit_text(st)));
        }
    }
    let console = console_name()?;
    let plan = mounts::inside_plan(spec, Path::new(&console), kind)?;
    for step in &plan {
        mounts::apply_inside(step, &rootfs)?;
    }
    let host = if spec.hostname.is_empty() {
        &spec.name
    } else {
        &spec.hostname
    };
    if unsafe { libc::sethostname(host.as_ptr() as *const libc::c_char, host.len()) } != 0 {
        return Err(errno(&format!("sethostname {host}")));
    }
    enter_root(&rootfs)?;
    check_init(spec)?;
    drop_caps()?;
    say(REPORT_FD, "ready\n");
    let mut buf = [0u8; 8];
    let n = unsafe { libc::read(GO_FD, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    if n <= 0 || !buf.starts_with(b"go") {
        // The monitor gave up on us; nothing to report to.
        return Ok(());
    }
    unsafe {
        libc::close(REPORT_FD);
        libc::close(GO_FD);
        libc::setsid();
        libc::ioctl(0, libc::TIOCSCTTY, 0);
    }
    let err = std::process::Command::new(&spec.init[0])
        .args(&spec.init[1..])
        .env_clear()
        .envs(INIT_ENV.iter().copied())
        // systemd's container interface: the machine's UUID for whoever
        // cannot read it from DMI (no DMI on this host, a cc agent).
        .env("container_uuid", &spec.uuid)
        .exec();
    // Too late for the report pipe: say it on the console.
    eprintln!("container-init: exec {}: {err}", spec.init[0]);
    unsafe { libc::_exit(127) };
}

/// Makes `rootfs` the root: `pivot_root(".", ".")` stacks the old root on
/// the new one, and the lazy unmount takes it away, with no directory for
/// the old root needed inside.
fn enter_root(rootfs: &Path) -> Result<(), InitError> {
    std::env::set_current_dir(rootfs)
        .map_err(|e| InitError::Os(format!("chdir {}", rootfs.display()), e))?;
    let dot = cstr(".")?;
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        return Err(errno("pivot_root"));
    }
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(errno("unmount the old root"));
    }
    std::env::set_current_dir("/").map_err(|e| InitError::Os("chdir /".into(), e))
}

fn check_init(spec: &Spec) -> Result<(), InitError> {
    let Some(init) = spec.init.first() else {
        return Err(InitError::NoInitGiven);
    };
    let meta = std::fs::metadata(init).map_err(|_| InitError::NoInit(init.clone()))?;
    let c = cstr(init)?;
    if !meta.is_file() || unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
        return Err(InitError::NotExecutable(init.clone()));
    }
    Ok(())
}

fn drop_caps() -> Result<(), InitError> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    for cap in (0..=last).filter(|c| !KEEP_CAPS.contains(c)) {
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(errno(&format!("drop capability {cap}")));
        }
    }
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    Ok(())
}
