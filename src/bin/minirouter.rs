//! minirouter: the guest agent of minimega's `router` command.
//!
//! `minirouter -u FILE` applies a configuration `router VM commit` sent
//! (cc runs it as `minirouter -u /tmp/miniccc/files/minirouter-VM`): it is
//! checked whole, applied with ip, dnsmasq, bird 2 and nftables, and on a
//! failure the last good configuration is put back and the exit status is
//! 1 with the failing line named. Without `-u` it stays up and reports
//! each interface's byte counters as tags every second, as the stock
//! minirouter daemon does. Tags go through `miniccc -tag KEY VALUE`.
//!
//! Flags are the stock one's (Go style, `-flag value` or `-flag=value`);
//! its logging flags (`-v`, `-level`, `-logfile`, `-verbose`) and
//! `-force` are taken and ignored: the log goes to stderr and the
//! `minirouter_log` tag.

use minimega::router::minirouter::run::{counter_tags, System};
use minimega::router::minirouter::{update, Paths};
use minimega::timefmt::civil;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: minirouter [-u FILE] [-path DIR] [-miniccc PATH]";

struct Flags {
    update: Option<PathBuf>,
    path: PathBuf,
    miniccc: Option<PathBuf>,
}

fn flags() -> Result<Flags, String> {
    let mut f = Flags {
        update: None,
        path: PathBuf::from("/tmp/minirouter"),
        miniccc: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let name = arg.trim_start_matches('-');
        if name.len() == arg.len() {
            return Err(format!("unexpected argument `{arg}`"));
        }
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("-{name} needs a value"))
        };
        match name {
            "u" => f.update = Some(value()?.into()),
            "path" => f.path = value()?.into(),
            "miniccc" => f.miniccc = Some(value()?.into()),
            "level" | "logfile" => {
                value()?;
            }
            // Go's boolean flags take their value only after `=`.
            "v" | "verbose" | "force" | "cli" => {}
            "h" | "help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown flag -{name}\n{USAGE}")),
        }
    }
    Ok(f)
}

/// The guest, for real.
struct Guest {
    miniccc: PathBuf,
    /// Where a command's output goes: a file, not a pipe, since dnsmasq
    /// and bird leave daemons behind that would hold a pipe open.
    output: PathBuf,
}

/// UTC as minilog writes it: `2006/01/02 15:04:05`.
fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil(secs);
    let rem = secs % 86_400;
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The pid in a pid file, if that process runs and is the daemon the file
/// is named for (`dnsmasq.pid`, `bird.pid`): a pid file outlives its
/// daemon, and its pid may be another process's by now.
fn daemon(pidfile: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let want = pidfile.file_stem()?.to_string_lossy().into_owned();
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    // A zombie keeps its name but is gone.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit(')')
        .next()
        .is_some_and(|s| s.trim_start().starts_with('Z'));
    (pid > 1 && comm.trim() == want && !zombie && alive(pid)).then_some(pid)
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

impl System for Guest {
    fn interfaces(&mut self) -> Result<Vec<String>, String> {
        let dir = fs::read_dir("/sys/class/net").map_err(|e| e.to_string())?;
        Ok(dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }

    fn run(&mut self, argv: &[String]) -> Result<(), String> {
        let out = fs::File::create(&self.output)
            .map_err(|e| format!("{}: {e}", self.output.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
        if status.success() {
            return Ok(());
        }
        let said = fs::read_to_string(&self.output).unwrap_or_default();
        Err(format!("{status}: {}", said.trim()))
    }

    fn write(&mut self, path: &Path, contents: &str) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        // Kernel settings take a plain write; files are replaced whole.
        if path.starts_with("/proc") {
            return fs::write(path, contents).map_err(fail);
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(fail)?;
        }
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, contents).map_err(fail)?;
        fs::rename(&tmp, path).map_err(fail)
    }

    fn read(&mut self, path: &Path) -> Result<Option<String>, String> {
        match fs::read_to_string(path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn stop(&mut self, pidfile: &Path) -> Result<(), String> {
        let pid = daemon(pidfile);
        let _ = fs::remove_file(pidfile);
        let Some(pid) = pid else {
            return Ok(());
        };
        // SAFETY: plain kill(2) of the daemon's own pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..50 {
            if !alive(pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above; it ignored SIGTERM for 5 s.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        Ok(())
    }

    fn running(&mut self, pidfile: &Path) -> bool {
        daemon(pidfile).is_some()
    }

    fn tag(&mut self, key: &str, value: &str) -> Result<(), String> {
        let status = Command::new(&self.miniccc)
            .args(["-tag", key, value])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", self.miniccc.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{} -tag: {status}", self.miniccc.display()))
        }
    }

    fn timestamp(&mut self) -> String {
        timestamp(SystemTime::now())
    }
}

/// The stock default, else the agent on the PATH.
fn miniccc(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| {
        let stock = PathBuf::from("/miniccc");
        if stock.exists() {
            stock
        } else {
            PathBuf::from("miniccc")
        }
    })
}

/// Reports every interface's byte counters, every second, for good.
fn report_counters(g: &mut Guest) -> ! {
    loop {
        for iface in g.interfaces().unwrap_or_default() {
            if iface == "lo" {
                continue;
            }
            let stat =
                |f: &str| fs::read_to_string(format!("/sys/class/net/{iface}/statistics/{f}"));
            let (Ok(rx), Ok(tx)) = (stat("rx_bytes"), stat("tx_bytes")) else {
                continue;
            };
            for (k, v) in counter_tags(&iface, &rx, &tx) {
                if let Err(e) = g.tag(&k, &v) {
                    eprintln!("minirouter: {e}");
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn main() -> ExitCode {
    let f = match flags() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("minirouter: {e}");
            return ExitCode::from(2);
        }
    };
    let mut guest = Guest {
        miniccc: miniccc(f.miniccc),
        output: f.path.join(".output"),
    };
    let Some(file) = f.update else {
        if let Err(e) = fs::create_dir_all(&f.path) {
            eprintln!("minirouter: {}: {e}", f.path.display());
        }
        report_counters(&mut guest);
    };
    if let Err(e) = fs::create_dir_all(&f.path) {
        eprintln!("minirouter: {}: {e}", f.path.display());
        return ExitCode::FAILURE;
    }
    let text = match fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("minirouter: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    match update(&mut guest, &Paths::new(&f.path), &text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minirouter: {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::timestamp;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_read_as_minilog_writes_them() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970/01/01 00:00:00");
        // 2024-02-29T23:59:58Z, a leap day.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_198);
        assert_eq!(timestamp(t), "2024/02/29 23:59:58");
    }
}
