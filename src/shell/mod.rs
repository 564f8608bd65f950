//! `shell` and `background`: commands run on the host as the daemon's user.
//! Only callers the D-Bus policy and the command socket admit (root and
//! group `minimega`) or other mesh nodes (holding the mesh key) reach them.
//!
//! `shell` waits for the command, up to [`SHELL_LIMIT`], and returns its
//! standard output, its standard error as the error, and a non-zero exit
//! status. `background` starts one and returns at once; minimega's
//! `background-status`, `-output`, `-error` and `clear background-status`
//! list and read them, `background-kill` ends one. Each runs in a process
//! group of its own, so a time limit or a kill ends everything it started;
//! background commands still running end with the daemon.

use crate::paths::find_binary;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::info;

/// How long `shell` waits before it kills the command.
pub const SHELL_LIMIT: Duration = Duration::from_secs(600);
/// Output kept per stream: `shell` answers travel over the mesh, whose
/// messages are bounded.
pub const OUTPUT_MAX: usize = 4 << 20;
/// Finished background commands remembered (minimega keeps 50).
const KEEP: usize = 50;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShellError {
    /// Go's words, as minimega prints them.
    #[error("exec: \"{0}\": executable file not found in $PATH")]
    NotFound(String),
    #[error("cannot run {0}: {1}")]
    Spawn(String, String),
    #[error("no command")]
    Empty,
    #[error("provided id does not exist in background process table")]
    NoSuchId,
    #[error("wait for process to finish before reading output")]
    Running,
}

/// What a finished `shell` command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// `None`: killed by a signal, or by the time limit.
    pub code: Option<i32>,
    pub timed_out: bool,
}

impl Output {
    /// The error line(s) the user sees, if any: standard error, then what
    /// ended the command when it did not succeed.
    pub fn error(&self, limit: Duration) -> Option<String> {
        let mut parts = Vec::new();
        let err = self.stderr.trim_end();
        if !err.is_empty() {
            parts.push(err.to_string());
        }
        if self.timed_out {
            parts.push(format!(
                "killed after {} (the shell time limit)",
                crate::timefmt::go_duration(limit)
            ));
        } else {
            match self.code {
                Some(0) => {}
                Some(n) => parts.push(format!("exit status {n}")),
                None => parts.push("killed by a signal".into()),
            }
        }
        (!parts.is_empty()).then(|| parts.join("\n"))
    }
}

/// A command's process, in a group of its own.
fn command(argv: &[String]) -> Result<tokio::process::Command, ShellError> {
    let (prog, args) = argv.split_first().ok_or(ShellError::Empty)?;
    let path = find_binary(prog).ok_or_else(|| ShellError::NotFound(prog.clone()))?;
    let mut c = tokio::process::Command::new(path);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    Ok(c)
}

/// Reads a stream to its end, keeping the last `max` bytes.
async fn drain(mut r: impl AsyncRead + Unpin, max: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > max * 2 {
            kept.drain(..kept.len() - max);
        }
    }
    if kept.len() > max {
        kept.drain(..kept.len() - max);
    }
    kept
}

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        // SAFETY: signalling the process group we created for the child.
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
    }
}

/// Runs `argv` to its end or `limit`, whichever comes first.
pub async fn shell(argv: &[String], limit: Duration) -> Result<Output, ShellError> {
    let mut child = command(argv)?
        .spawn()
        .map_err(|e| ShellError::Spawn(argv[0].clone(), e.to_string()))?;
    info!("shell: {}", argv.join(" "));
    let pid = child.id();
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let (o, e, status) = tokio::join!(
            async {
                match out {
                    Some(r) => drain(r, OUTPUT_MAX).await,
                    None => Vec::new(),
                }
            },
            async {
                match err {
                    Some(r) => drain(r, OUTPUT_MAX).await,
                    None => Vec::new(),
                }
            },
            child.wait()
        );
        (o, e, status.ok().and_then(|s| s.code()))
    };
    let (stdout, stderr, code, timed_out) = match tokio::time::timeout(limit, work).await {
        Ok((o, e, code)) => (o, e, code, false),
        Err(_) => {
            kill_group(pid);
            (Vec::new(), Vec::new(), None, true)
        }
    };
    // Whatever the command left running in its group goes with it.
    kill_group(pid);
    Ok(Output {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        code,
        timed_out,
    })
}

/// One `background` command.
#[derive(Debug, Clone)]
pub struct Proc {
    pub id: u64,
    pub pid: u32,
    pub command: String,
    pub running: bool,
    pub error: String,
    pub started: SystemTime,
    pub ended: Option<SystemTime>,
    pub stdout: String,
    pub stderr: String,
}

/// minimega's `background-status` columns.
pub const STATUS_COLUMNS: [&str; 7] = [
    "ID",
    "PID",
    "RUNNING",
    "ERROR",
    "TIME_START",
    "TIME_END",
    "COMMAND",
];

impl Proc {
    pub fn row(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.pid.to_string(),
            self.running.to_string(),
            self.error.clone(),
            clock(self.started),
            self.ended.map(clock).unwrap_or_default(),
            self.command.clone(),
        ]
    }
}

/// `Jan 02 15:04:05 MST`, minimega's time format, in local time.
fn clock(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: localtime_r and strftime write only into our buffers.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return String::new();
        }
        let mut buf = [0u8; 64];
        let n = libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%b %d %H:%M:%S %Z".as_ptr(),
            &tm,
        );
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

struct Table {
    next: u64,
    procs: BTreeMap<u64, (Proc, Arc<tokio::sync::Notify>)>,
}

/// The node's background commands.
#[derive(Clone)]
pub struct Background(Arc<Mutex<Table>>);

impl Default for Background {
    fn default() -> Self {
        Background(Arc::new(Mutex::new(Table {
            next: 1,
            procs: BTreeMap::new(),
        })))
    }
}

/// Which finished entries to forget so at most `keep` remain, oldest end
/// first; running ones are never forgotten. Pure.
pub fn to_forget(procs: &[(u64, bool, Option<SystemTime>)], keep: usize) -> Vec<u64> {
    let excess = procs.len().saturating_sub(keep);
    let mut done: Vec<&(u64, bool, Option<SystemTime>)> =
        procs.iter().filter(|(_, running, _)| !running).collect();
    done.sort_by_key(|(id, _, end)| (*end, *id));
    done.iter().take(excess).map(|(id, _, _)| *id).collect()
}

impl Background {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `argv`; returns its id and pid.
    pub fn start(&self, argv: &[String]) -> Result<(u64, u32), ShellError> {
        let mut child = command(argv)?
            .spawn()
            .map_err(|e| ShellError::Spawn(argv[0].clone(), e.to_string()))?;
        let pid = child.id().unwrap_or(0);
        let stop = Arc::new(tokio::sync::Notify::new());
        let id = {
            let mut t = self.lock();
            let list: Vec<_> = t
                .procs
                .values()
                .map(|(p, _)| (p.id, p.running, p.ended))
                .collect();
            for old in to_forget(&list, KEEP.saturating_sub(1)) {
                t.procs.remove(&old);
            }
            let id = t.next;
            t.next += 1;
            let p = Proc {
                id,
                pid,
                command: argv.join(" "),
                running: true,
                error: String::new(),
                started: SystemTime::now(),
                ended: None,
                stdout: String::new(),
                stderr: String::new(),
            };
            t.procs.insert(id, (p, stop.clone()));
            id
        };
        info!(
            "starting background process {id} (pid {pid}): {}",
            argv.join(" ")
        );
        let me = self.clone();
        let (out, err) = (child.stdout.take(), child.stderr.take());
        tokio::spawn(async move {
            let waited = async { tokio::join!(logged(id, out), logged(id, err), child.wait()) };
            let (o, e, status) = tokio::select! {
                r = waited => r,
                _ = stop.notified() => {
                    kill_group(Some(pid));
                    (Vec::new(), Vec::new(), Err(std::io::Error::other("killed")))
                }
            };
            kill_group(Some(pid));
            let error = match status {
                Ok(s) if s.success() => String::new(),
                Ok(s) => match s.code() {
                    Some(c) => format!("exit status {c}"),
                    None => "killed by a signal".into(),
                },
                Err(_) => "killed (background-kill)".into(),
            };
            let how = if error.is_empty() { "exited" } else { &error };
            info!("background process {id}: {how}");
            if let Some((p, _)) = me.lock().procs.get_mut(&id) {
                p.running = false;
                p.error = error;
                p.ended = Some(SystemTime::now());
                p.stdout = String::from_utf8_lossy(&o).into_owned();
                p.stderr = String::from_utf8_lossy(&e).into_owned();
            }
        });
        Ok((id, pid))
    }

    pub fn list(&self) -> Vec<Proc> {
        self.lock().procs.values().map(|(p, _)| p.clone()).collect()
    }

    pub fn get(&self, id: u64) -> Result<Proc, ShellError> {
        self.lock()
            .procs
            .get(&id)
            .map(|(p, _)| p.clone())
            .ok_or(ShellError::NoSuchId)
    }

    /// A finished command's output (`stderr`: its error stream).
    pub fn output(&self, id: u64, stderr: bool) -> Result<String, ShellError> {
        let p = self.get(id)?;
        if p.running {
            return Err(ShellError::Running);
        }
        Ok(if stderr { p.stderr } else { p.stdout })
    }

    /// Ends a running command (and its process group); returns how many
    /// were asked to stop.
    pub fn kill(&self, id: Option<u64>) -> Result<usize, ShellError> {
        let t = self.lock();
        let targets: Vec<&(Proc, Arc<tokio::sync::Notify>)> = match id {
            Some(id) => vec![t.procs.get(&id).ok_or(ShellError::NoSuchId)?],
            None => t.procs.values().collect(),
        };
        let mut n = 0;
        for (p, stop) in targets.into_iter().filter(|(p, _)| p.running) {
            info!("ending background process {} (pid {})", p.id, p.pid);
            stop.notify_one();
            n += 1;
        }
        Ok(n)
    }

    /// Forgets finished commands; returns how many.
    pub fn clear(&self) -> usize {
        let mut t = self.lock();
        let before = t.procs.len();
        t.procs.retain(|_, (p, _)| p.running);
        before - t.procs.len()
    }
}

async fn logged(id: u64, r: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    match r {
        Some(r) => drain_logged(id, r).await,
        None => Vec::new(),
    }
}

/// Keeps a background stream's tail and logs each chunk, as minimega logs
/// background output.
async fn drain_logged(id: u64, mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        info!(
            "Background process {id}: {}",
            String::from_utf8_lossy(&buf[..n]).trim_end()
        );
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > OUTPUT_MAX {
            kept.drain(..kept.len() - OUTPUT_MAX);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[tokio::test]
    async fn output_errors_and_exit_status() {
        let o = shell(&argv("echo hello world"), SHELL_LIMIT).await.unwrap();
        assert_eq!(o.stdout, "hello world\n");
        assert_eq!(o.error(SHELL_LIMIT), None);
        let o = shell(
            &[
                "sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 3".into(),
            ],
            SHELL_LIMIT,
        )
        .await
        .unwrap();
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.error(SHELL_LIMIT).unwrap(), "err\nexit status 3");
        assert_eq!(
            shell(&argv("definitelynotarealcommand"), SHELL_LIMIT)
                .await
                .unwrap_err()
                .to_string(),
            "exec: \"definitelynotarealcommand\": executable file not found in $PATH"
        );
    }

    #[tokio::test]
    async fn the_time_limit_kills_the_whole_group() {
        let limit = Duration::from_secs(1);
        let t = std::time::Instant::now();
        let o = shell(
            &["sh".into(), "-c".into(), "sleep 30 & sleep 30".into()],
            limit,
        )
        .await
        .unwrap();
        assert!(o.timed_out);
        assert!(t.elapsed() < Duration::from_secs(20));
        assert_eq!(
            o.error(limit).unwrap(),
            "killed after 1s (the shell time limit)"
        );
    }

    #[tokio::test]
    async fn background_commands_are_listed_read_and_killed() {
        let b = Background::default();
        let (id, pid) = b.start(&argv("sleep 100")).unwrap();
        assert!(pid > 0);
        let (quick, _) = b.start(&argv("echo hi")).unwrap();
        let rows = b.list();
        assert_eq!(rows.len(), 2);
        assert_eq!(b.output(id, false).unwrap_err(), ShellError::Running);
        assert_eq!(b.kill(Some(id)).unwrap(), 1);
        for _ in 0..200 {
            if !b.get(id).unwrap().running && !b.get(quick).unwrap().running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let p = b.get(id).unwrap();
        assert!(!p.running);
        assert_eq!(p.error, "killed (background-kill)");
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
                let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                s.contains(") Z")
            }
        );
        assert_eq!(b.output(quick, false).unwrap(), "hi\n");
        assert_eq!(b.get(99).unwrap_err(), ShellError::NoSuchId);
        assert_eq!(b.clear(), 2);
        assert!(b.list().is_empty());
    }

    #[test]
    fn only_the_oldest_finished_are_forgotten() {
        let t = |s| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let procs = [
            (1, false, t(30)),
            (2, true, None),
            (3, false, t(10)),
            (4, false, t(20)),
        ];
        assert_eq!(to_forget(&procs, 2), [3, 4]);
        assert_eq!(to_forget(&procs, 4), Vec::<u64>::new());
        assert_eq!(to_forget(&procs, 0), [3, 4, 1]);
    }
}
