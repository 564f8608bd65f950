//! What the agent does with a command, in minimega's order: fetch the
//! files it names, kill processes, set the log level, run the command (in
//! the foreground, recording its output and exit code, or in the
//! background), test connectivity, send files back.

use super::{pipes, Agent};
use minimega::cc::files;
use minimega::cc::ron::{self, Command, ConnTest, Message, Response};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn process(agent: &Arc<Agent>, cmd: &Command) -> Response {
    let mut resp = Response {
        id: cmd.id,
        ..Response::default()
    };
    if !cmd.files_send.is_empty() {
        fetch_files(agent, &cmd.files_send);
    }
    if cmd.pid != 0 {
        agent.kill(|pid, _| cmd.pid == -1 || pid == cmd.pid);
    }
    if !cmd.kill_all.is_empty() {
        agent.kill(|_, line| line.join(" ").contains(&cmd.kill_all));
    }
    if let Some(l) = cmd.level {
        agent.set_level(l);
    }
    if !cmd.command.is_empty() {
        let (out, err, code) = run(agent, cmd);
        resp.stdout = out;
        resp.stderr = err;
        resp.exit_code = code;
        resp.record_exit_code = !cmd.background;
    }
    if let Some(t) = &cmd.conn_test {
        resp.stdout = test_conn(t).into_bytes();
    }
    if !cmd.files_recv.is_empty() {
        send_files(agent, cmd.id, &cmd.files_recv);
    }
    resp
}

/// The program, searched as exec.LookPath does, then in the files
/// directory (where `cc send` puts things).
fn look_path(agent: &Agent, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into());
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .chain(std::iter::once(agent.files_dir().join(name)))
        .find(|p| runnable(p))
}

fn run(agent: &Arc<Agent>, cmd: &Command) -> (Vec<u8>, Vec<u8>, i64) {
    let Some(prog) = look_path(agent, &cmd.command[0]) else {
        let e = format!(
            "exec: \"{}\": executable file not found in $PATH",
            cmd.command[0]
        );
        agent.log(&e);
        return (Vec::new(), e.into_bytes(), -1);
    };
    let mut c = std::process::Command::new(&prog);
    c.args(&cmd.command[1..]);
    if std::env::var_os("PATH").is_none() {
        c.env("PATH", DEFAULT_PATH);
    }
    let piped = |name: &str, or: fn() -> Stdio| {
        if name.is_empty() {
            or()
        } else {
            Stdio::piped()
        }
    };
    c.stdin(piped(&cmd.stdin, Stdio::null));
    let quiet = if cmd.background {
        Stdio::null
    } else {
        Stdio::piped
    };
    c.stdout(piped(&cmd.stdout, quiet));
    c.stderr(piped(&cmd.stderr, quiet));
    agent.log(&format!("executing: {:?}", cmd.command));
    let mut child = match c.spawn() {
        Ok(child) => child,
        Err(e) => return (Vec::new(), e.to_string().into_bytes(), -1),
    };
    // The streams tied to pipes; the others are read below, or are null.
    let mut writers = Vec::new();
    if !cmd.stdout.is_empty() {
        let out = child.stdout.take().expect("piped stdout");
        writers.push(pipes::write_from(agent, &cmd.stdout, out));
    }
    if !cmd.stderr.is_empty() {
        let err = child.stderr.take().expect("piped stderr");
        writers.push(pipes::write_from(agent, &cmd.stderr, err));
    }
    let reader = (!cmd.stdin.is_empty()).then(|| {
        let input = child.stdin.take().expect("piped stdin");
        pipes::read_into(agent, &cmd.stdin, input)
    });
    if cmd.background {
        agent.adopt(child, cmd.command.clone(), move || drop((reader, writers)));
        return (Vec::new(), Vec::new(), 0);
    }
    let done = child.wait_with_output();
    drop(reader);
    for w in writers {
        let _ = w.join();
    }
    match done {
        Ok(o) => (
            o.stdout,
            o.stderr,
            o.status.code().map(i64::from).unwrap_or(-1),
        ),
        Err(e) => (Vec::new(), e.to_string().into_bytes(), -1),
    }
}

/// `cc send`: each file asked for in turn, its parts written to
/// `<path>/files/<name>` (`.partial` until the last). One that exists
/// already is kept, as minimega's agent does.
fn fetch_files(agent: &Arc<Agent>, names: &[String]) {
    for name in names {
        let Ok(rel) = files::relative(name) else {
            agent.log(&format!(
                "refusing to fetch {name}: not a plain relative path"
            ));
            continue;
        };
        let dst = agent.files_dir().join(rel);
        if dst.exists() {
            agent.log(&format!("skipping {} -- already exists", dst.display()));
            continue;
        }
        while agent.files.lock().unwrap().try_recv().is_ok() {}
        let ask = Message {
            kind: ron::kind::FILE,
            uuid: agent.uuid.clone(),
            file: Some(ron::File {
                name: name.clone(),
                ..Default::default()
            }),
            ..Message::default()
        };
        if let Err(e) = agent.send(&ask) {
            agent.log(&format!("cannot ask for {name}: {e}"));
            return;
        }
        loop {
            let got = agent
                .files
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(60));
            let Ok(m) = got else {
                agent.log(&format!("{name}: no answer from the daemon"));
                break;
            };
            if !m.error.is_empty() {
                agent.log(&format!("{name}: {}", m.error));
                break;
            }
            let Some(f) = m.file else { break };
            if f.name != *name {
                agent.log(&format!("filename mismatch: {} != {name}", f.name));
                break;
            }
            if let Err(e) = files::store_part(&dst, &f) {
                agent.log(&format!("{}: {e}", dst.display()));
                break;
            }
            if f.eof {
                break;
            }
        }
    }
}

/// `cc recv`: each matching file, in parts, named by its path from `/`.
fn send_files(agent: &Arc<Agent>, id: i64, patterns: &[String]) {
    use std::os::unix::fs::PermissionsExt;
    for pat in patterns {
        let found = files::expand(Path::new("/"), Path::new(pat));
        if found.is_empty() {
            agent.log(&format!("cc recv: no such file: {pat}"));
        }
        for rel in found {
            let path = Path::new("/").join(&rel);
            let name = rel.to_string_lossy().into_owned();
            let sent = (|| -> std::io::Result<()> {
                let mut f = std::fs::File::open(&path)?;
                let meta = f.metadata()?;
                if meta.is_dir() {
                    return Err(std::io::Error::other("cannot send directory"));
                }
                let perm = meta.permissions().mode() as u64 & 0o777;
                let mut offset = 0i64;
                loop {
                    let mut data = Vec::with_capacity(ron::PART_SIZE);
                    (&mut f)
                        .take(ron::PART_SIZE as u64)
                        .read_to_end(&mut data)?;
                    let eof = data.len() < ron::PART_SIZE;
                    let n = data.len() as i64;
                    let m = Message {
                        kind: ron::kind::FILE,
                        uuid: agent.uuid.clone(),
                        file: Some(ron::File {
                            id,
                            name: name.clone(),
                            perm,
                            data,
                            offset,
                            eof,
                        }),
                        ..Message::default()
                    };
                    agent.send(&m)?;
                    offset += n;
                    if eof {
                        return Ok(());
                    }
                }
            })();
            if let Err(e) = sent {
                agent.log(&format!("cc recv {}: {e}", path.display()));
            }
        }
    }
}

/// `cc test-conn`: `HOST:PORT | pass` once a connection (for udp, an
/// answer to the packet) is made within the wait, else `| fail`.
fn test_conn(t: &ConnTest) -> String {
    let (scheme, hostport) = t.endpoint.split_once("://").unwrap_or(("tcp", &t.endpoint));
    let wait = Duration::from_nanos(t.wait.max(0) as u64);
    let deadline = Instant::now() + wait;
    let step = Duration::from_millis(500);
    let verdict = |ok: bool| format!("{hostport} | {}", if ok { "pass" } else { "fail" });
    loop {
        let addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(hostport)
            .map(|a| a.collect())
            .unwrap_or_default();
        for a in &addrs {
            if scheme == "udp" {
                let ok = (|| -> std::io::Result<()> {
                    let bind = if a.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                    let s = std::net::UdpSocket::bind(bind)?;
                    s.connect(a)?;
                    s.set_read_timeout(Some(step))?;
                    if !t.packet.is_empty() {
                        s.send(&t.packet)?;
                    }
                    let mut buf = [0u8; 4096];
                    s.recv(&mut buf)?;
                    Ok(())
                })();
                // A UDP "connection" always succeeds; only an answer counts.
                return verdict(ok.is_ok());
            }
            if std::net::TcpStream::connect_timeout(a, step).is_ok() {
                return verdict(true);
            }
        }
        if Instant::now() >= deadline {
            return verdict(false);
        }
        std::thread::sleep(step.min(deadline.saturating_duration_since(Instant::now())));
    }
}
