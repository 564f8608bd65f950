//! miniccc: the in-guest agent of minimega's command and control, for
//! Linux guests. It speaks the stock Go agent's protocol (the `RON` magic,
//! then gob-encoded ron messages), so it works with this daemon and with a
//! stock minimega alike:
//!
//!     miniccc -serial /dev/virtio-ports/cc        over the VM's virtio port
//!     miniccc -parent 10.0.0.1 -port 9002         over TCP (`cc listen 9002`)
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
#[path = "miniccc/pipes.rs"]
mod pipes;
#[path = "miniccc/run.rs"]
mod run;

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
}

impl Agent {
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

    /// A heartbeat with the responses gathered since the last one; they
    /// are kept for the next one if it cannot be sent.
    fn heartbeat(&self) -> std::io::Result<()> {
        let (ips, macs) = self.addresses();
        let responses = std::mem::take(&mut *self.responses.lock().unwrap());
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
            tags: BTreeMap::new(),
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
        if r.is_err() {
            let mut back = m.client.map(|c| c.responses).unwrap_or_default();
            let mut now = self.responses.lock().unwrap();
            back.append(&mut now);
            *now = back;
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

fn usage() -> ExitCode {
    eprintln!(
        "usage: miniccc [-serial DEVICE | -parent HOST [-port 9002] [-family tcp|unix]] [-path /tmp/miniccc] [-uuid UUID] [-level LEVEL] [-version]"
    );
    ExitCode::from(2)
}

/// Go-style flags: `-name value`, `-name=value`, one or two dashes.
fn flags(args: &[String]) -> Result<Option<Flags>, String> {
    let mut v: BTreeMap<String, String> = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].trim_start_matches('-');
        if a.len() == args[i].len() {
            return Err(format!("unexpected argument {}", args[i]));
        }
        let (k, val) = match a.split_once('=') {
            Some((k, val)) => (k.to_string(), val.to_string()),
            None if matches!(a, "version" | "h" | "help") => (a.to_string(), "true".into()),
            None => {
                i += 1;
                let val = args.get(i).ok_or(format!("flag -{a} needs a value"))?;
                (a.to_string(), val.clone())
            }
        };
        match k.as_str() {
            "serial" | "parent" | "port" | "family" | "path" | "uuid" | "level" | "version"
            | "h" | "help" => {}
            "tag" | "pipe" => return Err(format!("-{k} is not supported by this agent")),
            _ => return Err(format!("flag provided but not defined: -{k}")),
        }
        v.insert(k, val);
        i += 1;
    }
    if v.contains_key("h") || v.contains_key("help") {
        return Err(String::new());
    }
    if v.contains_key("version") {
        println!("miniccc {VERSION}");
        return Ok(None);
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
    Ok(Some(Flags {
        target,
        path: v
            .get("path")
            .map(PathBuf::from)
            .unwrap_or("/tmp/miniccc".into()),
        uuid: v.get("uuid").map(|u| u.to_ascii_lowercase()),
        debug: v.get("level").is_some_and(|l| l == "debug"),
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let f = match flags(&args) {
        Ok(Some(f)) => f,
        Ok(None) => return ExitCode::SUCCESS,
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
    let (files_tx, files_rx) = mpsc::channel();
    let agent = Arc::new(Agent {
        uuid,
        path: f.path.clone(),
        responses: Mutex::new(Vec::new()),
        last_id: AtomicI64::new(0),
        procs: Mutex::new(BTreeMap::new()),
        link: Mutex::new(None),
        files: Mutex::new(files_rx),
        files_tx,
        debug: std::sync::atomic::AtomicBool::new(f.debug),
        addrs: Mutex::new(None),
        pipes: pipes::Readers::default(),
    });
    agent.log(&format!(
        "{VERSION}, UUID {}, via {}",
        agent.uuid,
        f.target.describe()
    ));
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
    let result = serve(agent, &link, &mut reader, work);
    link.kill();
    *agent.link.lock().unwrap() = None;
    result
}

fn serve(
    agent: &Arc<Agent>,
    link: &Arc<Link>,
    reader: &mut Reader<'_>,
    work: &mpsc::Sender<BTreeMap<i64, ron::Command>>,
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
            ron::kind::UFS | ron::kind::TUNNEL => {
                agent.debug(&format!("{} message ignored", ron::kind::name(m.kind)));
            }
            _ => {}
        }
        if !link.alive() {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
    }
}
