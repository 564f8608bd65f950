//! `minimega container-shim`: the container's monitor, standing where
//! QEMU stands for a KVM VM. The daemon starts it, puts it in the VM's
//! cgroup, then connects to its QMP socket; only then is the container
//! made (so everything in it is born inside the VM's limits), and the
//! monitor greets. It serves a QMP subset (pause, resume, status, quit)
//! to one client at a time, relays the console and cc, and exits when
//! init does.
//!
//! - [`qmp`]: the QMP subset as pure code
//! - [`cgroup`]: the payload's freezer cgroup
//! - [`net`]: the network namespace
//! - [`create`]: the stage spawned into new namespaces, held frozen
//! - [`init`]: the stage itself and PID 1 (`container-init`)
//! - [`console`]: the console and cc relays

pub mod cgroup;
pub mod console;
pub mod create;
pub mod init;
pub mod net;
pub mod qmp;

use crate::container::spec::{Spec, CC_AGENT_SOCKET, CC_SOCKET, CONSOLE_LOG, CONSOLE_SOCKET};
use create::Container;
use qmp::{Action, Session};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixListener;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgError {
    #[error(
        "usage: minimega container-shim -name NAME -chardev socket,id=qmp,path=PATH,... -spec FILE"
    )]
    Usage,
    #[error("-chardev {0:?}: no path=")]
    NoPath(String),
    #[error("spec: {0}")]
    Spec(String),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub name: String,
    pub qmp: PathBuf,
    pub spec: PathBuf,
}

/// The arguments after the verb, as [`crate::container::spec::shim_args`]
/// writes them.
pub fn parse_args(args: &[String]) -> Result<Args, ArgError> {
    let (mut name, mut qmp, mut spec) = (None, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(ArgError::Usage)?;
        match flag.as_str() {
            "-name" => name = Some(value.clone()),
            "-chardev" => {
                let path = value
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("path="))
                    .ok_or_else(|| ArgError::NoPath(value.clone()))?;
                qmp = Some(PathBuf::from(path));
            }
            "-spec" => spec = Some(PathBuf::from(value)),
            _ => return Err(ArgError::Usage),
        }
    }
    match (name, qmp, spec) {
        (Some(name), Some(qmp), Some(spec)) => Ok(Args { name, qmp, spec }),
        _ => Err(ArgError::Usage),
    }
}

/// What the monitor cannot work without, checked before anything is made.
pub fn validate(spec: &Spec) -> Result<(), ArgError> {
    let bad = |m: &str| Err(ArgError::Spec(m.to_string()));
    if spec.init.first().is_none_or(|i| i.is_empty()) {
        return bad("no init");
    }
    if spec.netns.is_empty() || spec.netns.contains('/') {
        return bad("the network namespace needs a plain name");
    }
    if spec.cgroup_leaf.is_empty()
        || spec.cgroup_leaf.contains('/')
        || spec.cgroup_leaf.starts_with('.')
    {
        return bad("cgroup_leaf needs a plain name");
    }
    if !spec.filesystem.is_absolute() || !spec.vmdir.is_absolute() {
        return bad("filesystem and vmdir must be absolute paths");
    }
    Ok(())
}

struct Sockets {
    qmp: std::os::unix::net::UnixListener,
    console: std::os::unix::net::UnixListener,
    cc: std::os::unix::net::UnixListener,
    cc_agent: std::os::unix::net::UnixListener,
}

fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, String> {
    let _ = std::fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| format!("bind {}: {e}", path.display()))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(l)
}

fn mkfifo(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
        return Ok(());
    }
    let _ = std::fs::remove_file(path);
    let c =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    if unsafe { libc::mkfifo(c.as_ptr(), 0o660) } != 0 {
        return Err(format!(
            "mkfifo {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn prepare(args: &Args) -> Result<(Spec, Sockets), String> {
    let spec: Spec = std::fs::read(&args.spec)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("spec {}: {e}", args.spec.display()))?;
    validate(&spec).map_err(|e| e.to_string())?;
    let v = &spec.vmdir;
    let sockets = Sockets {
        qmp: bind(&args.qmp)?,
        console: bind(&v.join(CONSOLE_SOCKET))?,
        cc: bind(&v.join(CC_SOCKET))?,
        cc_agent: bind(&v.join(CC_AGENT_SOCKET))?,
    };
    for n in 0..spec.fifos {
        mkfifo(&spec.fifo(n))?;
    }
    // An OOM inside the container must take the payload, not the monitor.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-500");
    Ok((spec, sockets))
}

/// The monitor's entry: `args` are what follows the verb; the exit code.
pub fn main(args: &[String]) -> i32 {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("container-shim: {e}");
            return 2;
        }
    };
    let (spec, sockets) = match prepare(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("container-shim: {e}");
            return 1;
        }
    };
    // One thread: the stage is forked from it, and PR_SET_PDEATHSIG
    // follows the thread that forked.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("container-shim: {e}");
            return 1;
        }
    };
    let vmdir = spec.vmdir.clone();
    let code = rt.block_on(run(&args, spec, sockets));
    for p in [CONSOLE_SOCKET, CC_SOCKET, CC_AGENT_SOCKET] {
        let _ = std::fs::remove_file(vmdir.join(p));
    }
    let _ = std::fs::remove_file(&args.qmp);
    code
}

fn now() -> (u64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_micros())
}

async fn send(w: &mut OwnedWriteHalf, v: &serde_json::Value) -> std::io::Result<()> {
    let mut line = v.to_string();
    line.push('\n');
    w.write_all(line.as_bytes()).await
}

/// How serving one client ended.
enum End {
    /// The client left; wait for the next.
    Left,
    /// `quit` or init's exit: the container is gone, the monitor exits.
    Exit(i32),
}

async fn run(args: &Args, spec: Spec, s: Sockets) -> i32 {
    let listen = |l: std::os::unix::net::UnixListener| UnixListener::from_std(l);
    let (qmp_l, console_l, cc_l, agent_l) = match (
        listen(s.qmp),
        listen(s.console),
        listen(s.cc),
        listen(s.cc_agent),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        _ => {
            eprintln!("container-shim: cannot listen on the sockets");
            return 1;
        }
    };
    // The daemon connects only once the monitor is in the VM's cgroup.
    let first = match qmp_l.accept().await {
        Ok((c, _)) => c,
        Err(e) => {
            eprintln!("container-shim: qmp: {e}");
            return 1;
        }
    };
    let (master, slave) = match create::open_pty() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("container-shim: {e}");
            return 1;
        }
    };
    // Draining the console starts first: preinit and init write there.
    tokio::spawn(console::serve_console(
        master,
        console_l,
        spec.vmdir.join(CONSOLE_LOG),
    ));
    let mut ct = match Container::create(&spec, &args.spec, slave).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("container-shim: {e}");
            return 1;
        }
    };
    tokio::spawn(console::serve_cc(cc_l, agent_l));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut session = Session::default();
    let mut client = Some(first);
    loop {
        let stream = match client.take() {
            Some(c) => c,
            None => tokio::select! {
                r = qmp_l.accept() => match r { Ok((c, _)) => c, Err(_) => continue },
                _ = ct.stage.wait() => break,
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => break,
            },
        };
        match serve(stream, &mut session, &mut ct, &mut term).await {
            End::Left => continue,
            End::Exit(code) => {
                return code;
            }
        }
    }
    ct.destroy().await;
    0
}

/// One QMP client, until it leaves or the container ends.
async fn serve(
    stream: tokio::net::UnixStream,
    session: &mut Session,
    ct: &mut Container,
    term: &mut Option<tokio::signal::unix::Signal>,
) -> End {
    let (r, mut w) = stream.into_split();
    if send(&mut w, &qmp::greeting()).await.is_err() {
        return End::Left;
    }
    let mut lines = BufReader::new(r).lines();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => match l {
                Ok(Some(l)) => l,
                _ => return End::Left,
            },
            _ = ct.stage.wait() => {
                let _ = send(&mut w, &qmp::event("SHUTDOWN", now())).await;
                return finish(ct).await;
            }
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {
                return finish(ct).await;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let req = match qmp::parse_request(&line) {
            Ok(r) => r,
            Err(answer) => {
                let _ = send(&mut w, &answer).await;
                continue;
            }
        };
        let action = session.handle(&req);
        let result = match &action {
            Action::Reply(_) => Ok(()),
            Action::Freeze => ct.cgroup.freeze().map_err(|e| e.to_string()),
            Action::Thaw => ct.cgroup.thaw().map_err(|e| e.to_string()),
            Action::Quit => {
                let _ = ct.cgroup.kill();
                let _ = ct.stage.wait().await;
                Ok(())
            }
        };
        let quit = matches!(action, Action::Quit);
        if quit {
            let done = finish(ct).await;
            for v in session.done(&req, &action, result, now()) {
                let _ = send(&mut w, &v).await;
            }
            return done;
        }
        for v in session.done(&req, &action, result, now()) {
            if send(&mut w, &v).await.is_err() {
                return End::Left;
            }
        }
    }
}

async fn finish(ct: &mut Container) -> End {
    let _ = ct.cgroup.kill();
    let _ = ct.stage.wait().await;
    ct.cgroup.remove();
    net::remove(&ct.netns);
    End::Exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_what_the_daemon_passes() {
        let a = crate::container::spec::shim_args("web", Path::new("/run/mm/vm/3"));
        let p = parse_args(&a[1..]).unwrap();
        assert_eq!(
            p,
            Args {
                name: "web".into(),
                qmp: "/run/mm/vm/3/qmp".into(),
                spec: "/run/mm/vm/3/container.json".into(),
            }
        );
        assert_eq!(parse_args(&v(&["-name"])), Err(ArgError::Usage));
        assert_eq!(parse_args(&v(&["-x", "y"])), Err(ArgError::Usage));
        assert!(matches!(
            parse_args(&v(&[
                "-name",
                "a",
                "-chardev",
                "socket,id=qmp",
                "-spec",
                "s"
            ])),
            Err(ArgError::NoPath(_))
        ));
    }

    #[test]
    fn validates_names_and_paths() {
        let mut s: Spec = serde_json::from_value(serde_json::json!({
            "name": "c", "uuid": "u", "hostname": "h", "vmdir": "/vm", "filesystem": "/fs",
            "snapshot": true, "init": ["/init"], "preinit": "", "fifos": 0, "volumes": [],
            "nics": [], "netns": "mm-c", "memory": 64, "cgroup_leaf": "mm-c"
        }))
        .unwrap();
        assert_eq!(validate(&s), Ok(()));
        s.cgroup_leaf = "../x".into();
        assert!(validate(&s).is_err());
        s.cgroup_leaf = "x".into();
        s.init.clear();
        assert!(validate(&s).is_err());
        s.init = vec!["/init".into()];
        s.filesystem = "fs".into();
        assert!(validate(&s).is_err());
    }
}
