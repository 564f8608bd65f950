//! QEMU processes: spawning one so it outlives the daemon, recognising it
//! again after a restart, and noticing when it exits.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The daemon's OOM score adjustment (the unit's OOMScoreAdjust says the
/// same): the kernel's OOM killer takes nearly anything before it.
pub const DAEMON_OOM_SCORE_ADJ: i32 = -900;
/// Each QEMU's: above every ordinary process, so a memory-starved node
/// loses a VM, never its manager (nor its sshd).
pub const QEMU_OOM_SCORE_ADJ: i32 = 500;

/// Outside systemd (whose unit sets it), lowers the daemon's OOM score as
/// far as [`DAEMON_OOM_SCORE_ADJ`]. Lowering needs privilege; a daemon
/// without it says so and goes on.
pub fn protect_daemon() {
    if crate::config::under_systemd() {
        return;
    }
    let now: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if now <= DAEMON_OOM_SCORE_ADJ {
        return;
    }
    match std::fs::write("/proc/self/oom_score_adj", DAEMON_OOM_SCORE_ADJ.to_string()) {
        Ok(()) => tracing::debug!("oom_score_adj {DAEMON_OOM_SCORE_ADJ}"),
        Err(e) => tracing::info!(
            "cannot lower the daemon's oom_score_adj to {DAEMON_OOM_SCORE_ADJ} ({e}); the OOM killer may take it before a VM"
        ),
    }
}

/// Spawns QEMU in its own process group (signals to the daemon's terminal
/// never reach it), with its output in `log`, its working and temporary
/// directory in `dir` (snapshot overlays land there), then moves it into
/// the cgroups whose `cgroup.procs` files are given.
///
/// Without a hook between fork and exec the standard library can use
/// posix_spawn (vfork): forking the whole daemon for each of a hundred
/// QEMUs costs more than the launch itself. QEMU starts paused (-S), so the
/// few milliseconds before it joins its cgroup touch no guest memory; a
/// systemd scope is entered the same way, after the spawn. Returns the
/// child and its pid. QEMU's OOM score is raised to [`QEMU_OOM_SCORE_ADJ`]
/// at the same moment (it inherited the daemon's low one).
pub fn spawn(
    argv: &[String],
    dir: &Path,
    log: &Path,
    cgroup_procs: &[PathBuf],
) -> std::io::Result<(tokio::process::Child, u32)> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .env("TMPDIR", dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd.spawn()?;
    // Never a default: "0" written to cgroup.procs would move the daemon.
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("QEMU exited before it had a pid"))?;
    for p in cgroup_procs {
        if let Err(e) = std::fs::write(p, pid.to_string()) {
            let _ = child.start_kill();
            return Err(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", p.display()),
            ));
        }
    }
    // Raising a score needs no privilege; it can only fail when QEMU is
    // already gone, which the launch finds out by itself.
    if let Err(e) = std::fs::write(
        format!("/proc/{pid}/oom_score_adj"),
        QEMU_OOM_SCORE_ADJ.to_string(),
    ) {
        tracing::warn!("cannot set oom_score_adj of qemu (pid {pid}): {e}");
    }
    Ok((child, pid))
}

/// Field 22 of /proc/<pid>/stat (start time in clock ticks since boot),
/// or None when the process is gone or a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// The stat line's fields after the `(comm)`, which may hold spaces.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 is fields[19].
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// True when `pid` is a live process started at `start` (when known).
pub fn alive(pid: u32, start: Option<u64>) -> bool {
    match (start_time(pid), start) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// What /proc shows of a live process, as far as proving it is a VM's
/// QEMU needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub start: u64,
    /// The real uid.
    pub uid: u32,
    pub argv: Vec<String>,
}

/// Reads `pid`'s start time, owner and command line; None when it is gone
/// (or was replaced while we read: the start time is read twice).
pub fn inspect(pid: u32) -> Option<Seen> {
    let start = start_time(pid)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = parse_status_uid(&status)?;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (start_time(pid)? == start).then_some(Seen { start, uid, argv })
}

/// The real uid from /proc/<pid>/status text (`Uid: real effective ...`).
pub fn parse_status_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// True when `seen` is a QEMU this daemon could have started for the VM
/// whose QMP socket is `qmp`: run by the daemon's user (`uid`), with a
/// `-chardev` whose `path=` is exactly that socket. Another process that
/// merely mentions the path (`less .../qmp`) has no such argument.
pub fn is_qemu_of(seen: &Seen, qmp: &Path, uid: u32) -> bool {
    let want = format!("path={}", qmp.display());
    seen.uid == uid
        && seen
            .argv
            .windows(2)
            .any(|w| w[0] == "-chardev" && w[1].split(',').any(|f| f == want))
}

/// Finds the live QEMU of the VM whose QMP socket is `qmp` (see
/// [`is_qemu_of`]), with its start time.
pub fn find_qemu_of(qmp: &Path, uid: u32) -> Option<(u32, u64)> {
    let needle = qmp.as_os_str().as_encoded_bytes();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // A cheap filter first: most processes do not name the path at all.
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !cmd.windows(needle.len()).any(|w| w == needle) {
            continue;
        }
        if let Some(seen) = inspect(pid).filter(|s| is_qemu_of(s, qmp, uid)) {
            return Some((pid, seen.start));
        }
    }
    None
}

/// Sends `sig` to `pid` only if it is still the process started at
/// `start`: never to a pid whose start time is unknown, which could be
/// anyone's by now.
pub fn signal(pid: u32, start: Option<u64>, sig: i32) {
    if start.is_some() && alive(pid, start) {
        // SAFETY: a plain kill(2).
        unsafe { libc::kill(pid as i32, sig) };
    }
}

/// Resolves when a process that is not our child exits: through a pidfd
/// where the kernel has them, else by polling /proc.
pub async fn wait_exit(pid: u32, start: Option<u64>) {
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if fd >= 0 {
        // SAFETY: the descriptor is ours.
        let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // The pid might have been recycled between our check and the open.
        if !alive(pid, start) {
            return;
        }
        // SAFETY: the AsyncFd owns the descriptor for its whole life.
        let afd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE)
        };
        if let Ok(afd) = afd {
            let _ = afd.readable().await;
            return;
        }
    }
    while alive(pid, start) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing() {
        let s = "1234 (qemu (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 4 0 987654 1000 200";
        assert_eq!(parse_start_time(s), Some(987654));
        let z = "1234 (q) Z 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 4 0 987654 0 0";
        assert_eq!(parse_start_time(z), None);
    }

    #[test]
    fn a_qemu_is_known_by_its_owner_and_its_qmp_chardev() {
        let qmp = Path::new("/run/minimega/7/qmp");
        let seen = |uid, argv: &[&str]| Seen {
            start: 1,
            uid,
            argv: argv.iter().map(|a| a.to_string()).collect(),
        };
        let qemu = [
            "qemu-system-x86_64",
            "-chardev",
            "socket,id=qmp,path=/run/minimega/7/qmp,server=on,wait=off",
        ];
        assert!(is_qemu_of(&seen(0, &qemu), qmp, 0));
        assert!(!is_qemu_of(&seen(1000, &qemu), qmp, 0), "another user's");
        assert!(!is_qemu_of(
            &seen(0, &qemu),
            Path::new("/run/minimega/70/qmp"),
            0
        ));
        assert!(!is_qemu_of(
            &seen(0, &["less", "/run/minimega/7/qmp"]),
            qmp,
            0
        ));
        assert!(!is_qemu_of(
            &seen(0, &["sh", "-chardev", "path=/run/minimega/7/qmp.x"]),
            qmp,
            0
        ));
        assert_eq!(
            parse_status_uid("Name:\tqemu\nUid:\t1000\t0\t0\t0\n"),
            Some(1000)
        );
    }

    #[test]
    fn ourselves_seen_and_signals_need_a_start_time() {
        let me = std::process::id();
        let seen = inspect(me).unwrap();
        assert_eq!(seen.start, start_time(me).unwrap());
        assert!(seen.argv[0].contains("minimega"), "{:?}", seen.argv);
        // Would kill the test runner if a pid alone were enough.
        signal(me, None, libc::SIGKILL);
    }

    #[test]
    fn ourselves() {
        let me = std::process::id();
        let t = start_time(me).unwrap();
        assert!(alive(me, Some(t)));
        assert!(!alive(me, Some(t + 1)));
    }
}
