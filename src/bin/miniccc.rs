//! miniccc: the in-guest agent of minimega's command and control, for
//! Linux guests. It speaks the stock Go agent's protocol (the `RON` magic,
//! then gob-encoded ron messages), so it works with this daemon and with a
//! stock minimega alike:
//!
//!     miniccc -serial /dev/virtio-ports/cc        over the VM's virtio port
//!     miniccc -parent 10.0.0.1 -port 9002         over TCP (`cc listen 9002`)
//!     miniccc -tag KEY VALUE                      tag this VM, through the running agent
//!     miniccc -pipe NAME                          stdin to pipe NAME, NAME to stdout
//!
//! It names itself by the SMBIOS UUID (the VM's), heartbeats every 5 s with
//! its hostname, addresses, background processes and the responses it has,
//! runs the commands it is sent in order, and reconnects whenever the
//! daemon goes away (a daemon restart, a serial port closed). Linked
//! statically, it needs nothing from the guest.

#[path = "miniccc/host.rs"]
mod host;
#[path = "miniccc/link.rs"]
mod link;
#[path = "miniccc/local.rs"]
mod local;
#[path = "miniccc/pipes.rs"]
mod pipes;
#[path = "miniccc/run.rs"]
mod run;
#[path = "miniccc/tunnel.rs"]
mod tunnel;
#[path = "miniccc/ufs.rs"]
mod ufs;

use link::{Link, Reader, Target};
use minimega::cc::ron::{self, Message, Response};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VERSION: &str = concat!("minimega-rs ", env!("CARGO_PKG_VERSION"));
const HEARTBEAT: Duration = Duration::from_secs(5);
/// The daemon heartbeats every 5 s; this much silence means it is gone.
const SILENCE: Duration = Duration::from_secs(15);

/// (IPs, MACs).
type Addresses = (Vec<String>, Vec<String>);

struct Background {
    command: Vec<String>,
}

pub struct Agent {
    uuid: String,
    path: PathBuf,
    responses: Mutex<Vec<Response>>,
    /// Tags set with `miniccc -tag` not yet sent.
    tags: Mutex<BTreeMap<String, String>>,
    last_id: AtomicI64,
    procs: Mutex<BTreeMap<i64, Background>>,
    link: Mutex<Option<Arc<Link>>>,
    files: Mutex<mpsc::Receiver<Message>>,
    files_tx: mpsc::Sender<Message>,
    debug: std::sync::atomic::AtomicBool,
    /// The interfaces' addresses, read at most once a second.
    addrs: Mutex<Option<(Instant, Addresses)>>,
    /// Processes reading named pipes.
    pipes: pipes::Readers,
    /// `cc mount`'s file server.
    ufs: ufs::Ufs,
}

impl Agent {
    fn new(uuid: String, path: PathBuf, debug: bool) -> Arc<Agent> {
        let (files_tx, files_rx) = mpsc::channel();
        Arc::new(Agent {
            uuid,
            path,
            responses: Mutex::new(Vec::new()),
            tags: Mutex::new(BTreeMap::new()),
            last_id: AtomicI64::new(0),
            procs: Mutex::new(BTreeMap::new()),
            link: Mutex::new(None),
            files: Mutex::new(files_rx),
            files_tx,
            debug: std::sync::atomic::AtomicBool::new(debug),
            addrs: Mutex::new(None),
            pipes: pipes::Readers::default(),
            ufs: ufs::Ufs::default(),
        })
    }

    fn addresses(&self) -> Addresses {
        let mut a = self.addrs.lock().unwrap();
        match &*a {
            Some((at, found)) if at.elapsed() < Duration::from_secs(1) => found.clone(),
            _ => {
                let found = host::addresses();
                *a = Some((Instant::now(), found.clone()));
                found
            }
        }
    }

    fn files_dir(&self) -> PathBuf {
        self.path.join("files")
    }

    fn log(&self, msg: &str) {
        eprintln!("miniccc: {msg}");
    }

    fn debug(&self, msg: &str) {
        if self.debug.load(Ordering::Relaxed) {
            self.log(msg);
        }
    }

    fn set_level(&self, level: i64) {
        self.debug.store(level <= 1, Ordering::Relaxed);
    }

    /// A tag goes with the next heartbeat: at once when connected (not
    /// in 5 s, as minimega's agent would), else with the handshake's.
    fn add_tag(&self, key: String, value: String) {
        self.debug(&format!("tag {key}={value}"));
        self.tags.lock().unwrap().insert(key, value);
        if self.link.lock().unwrap().is_some() {
            let _ = self.heartbeat();
        }
    }

    fn send(&self, m: &Message) -> std::io::Result<()> {
        let link = self.link.lock().unwrap().clone();
        match link {
            Some(l) => l.send(m),
            None => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// Keeps a background process in the heartbeat until it exits, then
    /// runs `exited`.
    fn adopt(
        self: &Arc<Agent>,
        mut child: std::process::Child,
        command: Vec<String>,
        exited: impl FnOnce() + Send + 'static,
    ) {
        let pid = child.id() as i64;
        self.procs
            .lock()
            .unwrap()
            .insert(pid, Background { command });
        let me = self.clone();
        std::thread::spawn(move || {
            let _ = child.wait();
            exited();
            me.procs.lock().unwrap().remove(&pid);
            me.debug(&format!("process {pid} exited"));
        });
    }

    fn kill(&self, which: impl Fn(i64, &[String]) -> bool) {
        for (pid, p) in self.procs.lock().unwrap().iter() {
            if which(*pid, &p.command) {
                self.log(&format!("killing {pid}: {:?}", p.command));
                // SAFETY: signalling a child we started and still track.
                unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
            }
        }
    }

    /// A heartbeat with the responses and tags gathered since the last
    /// one; they are kept for the next one if it cannot be sent.
    fn heartbeat(&self) -> std::io::Result<()> {
        let (ips, macs) = self.addresses();
        let responses = std::mem::take(&mut *self.responses.lock().unwrap());
        let tags = std::mem::take(&mut *self.tags.lock().unwrap());
        let client = ron::Client {
            uuid: self.uuid.clone(),
            arch: ron::go_arch().into(),
            os: std::env::consts::OS.into(),
            version: VERSION.into(),
            hostname: host::hostname(),
            ips,
            macs,
            processes: self
                .procs
                .lock()
                .unwrap()
                .iter()
                .map(|(pid, p)| {
                    (
                        *pid,
                        ron::Process {
                            pid: *pid,
                            command: p.command.clone(),
                        },
                    )
                })
                .collect(),
            tags,
            responses,
            last_command_id: self.last_id.load(Ordering::Relaxed),
        };
        let m = Message {
            kind: ron::kind::CLIENT,
            uuid: self.uuid.clone(),
            client: Some(client),
            version: ron::VERSION.into(),
            ..Message::default()
        };
        let r = self.send(&m);
        if let (Err(_), Some(c)) = (&r, m.client) {
            let mut back = c.responses;
            let mut now = self.responses.lock().unwrap();
            back.append(&mut now);
            *now = back;
            let mut now = self.tags.lock().unwrap();
            for (k, v) in c.tags {
                now.entry(k).or_insert(v);
            }
        }
        r
    }
}

struct Flags {
    target: Target,
    path: PathBuf,
    uuid: Option<String>,
    debug: bool,
}

/// What this run of miniccc does.
enum Mode {
    Agent(Flags),
    Version,
    /// `-tag KEY VALUE`, through the running agent's command socket.
    Tag {
        path: PathBuf,
        key: String,
        value: String,
    },
    /// `-pipe NAME`, likewise.
    Pipe {
        path: PathBuf,
        name: String,
    },
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: miniccc [-serial DEVICE | -parent HOST [-port 9002] [-family tcp|unix]] [-path /tmp/miniccc] [-uuid UUID] [-level LEVEL] [-version]\n       miniccc [-path /tmp/miniccc] -tag KEY VALUE\n       miniccc [-path /tmp/miniccc] -pipe NAME"
    );
    ExitCode::from(2)
}

/// Go's strconv.ParseBool, which Go's boolean flags take (`-tag=true`).
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Go-style flags, as minimega's agent takes them: `-name value`,
/// `-name=value`, one or two dashes; boolean flags take no value; the
/// first argument that is not a flag (or `--`) ends them. `Err("")` asks
/// for the usage.
fn flags(args: &[String]) -> Result<Mode, String> {
    let mut v: BTreeMap<String, String> = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        let a = arg.trim_start_matches('-');
        if a.len() == arg.len() || a.is_empty() || arg.len() - a.len() > 2 {
            break;
        }
        let boolean = matches!(a.split('=').next(), Some("version" | "tag" | "h" | "help"));
        let (k, val) = match a.split_once('=') {
            Some((k, val)) => (k.to_string(), val.to_string()),
            None if boolean => (a.to_string(), "true".into()),
            None => {
                i += 1;
                let val = args.get(i).ok_or(format!("flag -{a} needs a value"))?;
                (a.to_string(), val.clone())
            }
        };
        match k.as_str() {
            "serial" | "parent" | "port" | "family" | "path" | "uuid" | "level" | "pipe" => {}
            "version" | "tag" | "h" | "help" => {
                go_bool(&val).ok_or(format!("invalid boolean value {val:?} for -{k}"))?;
            }
            _ => return Err(format!("flag provided but not defined: -{k}")),
        }
        v.insert(k, val);
        i += 1;
    }
    let rest = &args[i..];
    let on = |k: &str| v.get(k).and_then(|b| go_bool(b)).unwrap_or(false);
    if on("h") || on("help") {
        return Err(String::new());
    }
    if on("version") {
        return Ok(Mode::Version);
    }
    let path = v
        .get("path")
        .map(PathBuf::from)
        .unwrap_or("/tmp/miniccc".into());
    // The stock agent looks at -pipe first, then -tag.
    match (v.get("pipe").filter(|p| !p.is_empty()), on("tag"), rest) {
        (Some(name), _, []) => {
            return Ok(Mode::Pipe {
                path,
                name: name.clone(),
            })
        }
        (None, true, [key, value]) => {
            return Ok(Mode::Tag {
                path,
                key: key.clone(),
                value: value.clone(),
            })
        }
        (None, true, _) => return Err("-tag takes KEY VALUE".into()),
        (_, _, [first, ..]) => return Err(format!("unexpected argument {first}")),
        (None, false, []) => {}
    }
    let port: u16 = v
        .get("port")
        .map(|p| p.parse().map_err(|_| format!("invalid port {p}")))
        .transpose()?
        .unwrap_or(9002);
    let target = match (v.get("serial"), v.get("parent")) {
        (Some(s), _) if !s.is_empty() => Target::Serial(s.clone()),
        (_, Some(p)) if !p.is_empty() => match v.get("family").map(String::as_str) {
            None | Some("tcp") => Target::Tcp(format!("{p}:{port}")),
            Some("unix") => Target::Unix(p.clone()),
            Some(f) => return Err(format!("invalid ron dial network family: {f}")),
        },
        _ => return Err("give -serial DEVICE or -parent HOST".into()),
    };
    Ok(Mode::Agent(Flags {
        target,
        path,
        uuid: v.get("uuid").map(|u| u.to_ascii_lowercase()),
        debug: v.get("level").is_some_and(|l| l == "debug"),
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let f = match flags(&args) {
        Ok(Mode::Agent(f)) => f,
        Ok(Mode::Version) => {
            println!("miniccc {VERSION}");
            return ExitCode::SUCCESS;
        }
        Ok(Mode::Tag { path, key, value }) => return client(local::tag(&path, &key, &value)),
        Ok(Mode::Pipe { path, name }) => return client(local::pipe(&path, &name)),
        Err(e) if e.is_empty() => return usage(),
        Err(e) => {
            eprintln!("miniccc: {e}");
            return usage();
        }
    };
    let uuid = match f.uuid.clone().map(Ok).unwrap_or_else(host::uuid) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("miniccc: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::create_dir_all(f.path.join("files")) {
        eprintln!("miniccc: mkdir {}: {e}", f.path.display());
        return ExitCode::FAILURE;
    }
    let agent = Agent::new(uuid, f.path.clone(), f.debug);
    agent.log(&format!(
        "{VERSION}, UUID {}, via {}",
        agent.uuid,
        f.target.describe()
    ));
    if let Err(e) = local::listen(&agent) {
        // The agent still serves the daemon; only -tag and -pipe fail.
        agent.log(&format!(
            "command socket {}: {e}",
            local::socket(&f.path).display()
        ));
    }
    let (work_tx, work_rx) = mpsc::channel::<BTreeMap<i64, ron::Command>>();
    let worker = agent.clone();
    std::thread::spawn(move || {
        for batch in work_rx {
            for cmd in batch.values() {
                let resp = run::process(&worker, cmd);
                worker.last_id.store(cmd.id, Ordering::Relaxed);
                worker.responses.lock().unwrap().push(resp);
                // Answer now rather than at the next beat.
                let _ = worker.heartbeat();
            }
        }
    });
    let mut pause = Duration::from_millis(200);
    loop {
        match session(&agent, &f.target, &work_tx) {
            Ok(()) => pause = Duration::from_millis(200),
            Err(e) => {
                agent.debug(&format!("{}: {}", f.target.describe(), link::describe(&e)));
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
        std::thread::sleep(pause);
    }
}

/// How `-tag` and `-pipe` end: minimega's agent exits 0 whatever happened,
/// but a script deserves to know.
fn client(r: Result<(), local::LocalError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("miniccc: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One connection: the handshake, then the daemon's messages until it
/// goes away.
fn session(
    agent: &Arc<Agent>,
    target: &Target,
    work: &mpsc::Sender<BTreeMap<i64, ron::Command>>,
) -> std::io::Result<()> {
    let link = Arc::new(Link::dial(target)?);
    link.write_all(b"RON")?;
    let mut reader = Reader::new(&link);
    reader.magic(Instant::now() + Duration::from_secs(5))?;
    *agent.link.lock().unwrap() = Some(link.clone());
    let logger = agent.clone();
    let tunnel = tunnel::Tunnel::new(link.clone(), &agent.uuid, move |m| logger.log(m));
    let result = serve(agent, &link, &mut reader, work, &tunnel);
    tunnel.shutdown();
    // The next daemon opens its own.
    agent.ufs.close();
    link.kill();
    *agent.link.lock().unwrap() = None;
    result
}

fn serve(
    agent: &Arc<Agent>,
    link: &Arc<Link>,
    reader: &mut Reader<'_>,
    work: &mpsc::Sender<BTreeMap<i64, ron::Command>>,
    tunnel: &Arc<tunnel::Tunnel>,
) -> std::io::Result<()> {
    // The handshake is the first heartbeat; the daemon echoes it.
    agent.heartbeat()?;
    let mut beating = false;
    loop {
        let m = reader.next(SILENCE)?;
        match m.kind {
            ron::kind::CLIENT if !beating => {
                agent.log("handshake complete");
                beating = true;
                let (agent, link) = (agent.clone(), link.clone());
                std::thread::spawn(move || {
                    while link.alive() {
                        std::thread::sleep(HEARTBEAT);
                        if link.alive() && agent.heartbeat().is_err() {
                            link.kill();
                        }
                    }
                });
            }
            ron::kind::COMMAND => {
                agent.debug(&format!(
                    "commands {:?}",
                    m.commands.keys().collect::<Vec<_>>()
                ));
                let _ = work.send(m.commands);
            }
            ron::kind::FILE => {
                let _ = agent.files_tx.send(m);
            }
            ron::kind::PIPE => match m.pipe_mode {
                ron::pipe::DATA => agent.pipes.deliver(&m.pipe, &m.pipe_data),
                ron::pipe::CLOSE_READER => agent.pipes.close(&m.pipe),
                other => agent.log(&format!("pipe {}: unexpected mode {other}", m.pipe)),
            },
            ron::kind::TUNNEL => tunnel.piece(&m.tunnel),
            ron::kind::UFS => agent.ufs.message(agent, &m),
            _ => {}
        }
        if !link.alive() {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
    }
}

#[cfg(test)]
#[path = "miniccc/tests.rs"]
mod tests;
