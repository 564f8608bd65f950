//! QEMU processes: spawning one so it outlives the daemon, recognising it
//! again after a restart, and noticing when it exits.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

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
/// child and its pid.
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

/// Finds a live process whose command line contains `needle` (a VM's
/// QMP socket path identifies its QEMU).
pub fn find_by_cmdline(needle: &str) -> Option<u32> {
    let needle = needle.as_bytes();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmd.windows(needle.len()).any(|w| w == needle) && start_time(pid).is_some() {
            return Some(pid);
        }
    }
    None
}

/// Sends `sig` to `pid` if it is still the process started at `start`.
pub fn signal(pid: u32, start: Option<u64>, sig: i32) {
    if alive(pid, start) {
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
    fn ourselves() {
        let me = std::process::id();
        let t = start_time(me).unwrap();
        assert!(alive(me, Some(t)));
        assert!(!alive(me, Some(t + 1)));
    }
}
