//! minimega-format compatibility scripts. Each `tests/compat/NAME.mm`
//! runs line by line, and the transcript (each line echoed after `## `,
//! blank lines as they are, then the line's output) must equal
//! `tests/compat/NAME.want`.
//!
//! The scripts run twice, each time all of them against ONE daemon over ONE
//! connection, as minimega's own runner (minitest) runs its tests: over the
//! command socket, writing each answer as minitest does (the `E: ` lines of
//! an answer, sorted, then its rendered output), and over D-Bus, writing
//! what `minimega -e` prints. Before every script the prolog
//! `.annotate false` and `clear all` runs, so each script starts from a
//! reset daemon: a leak of state from one script into the next fails.
//! Scripts must leave the session's dot settings as they found them.
//!
//! `MM_COMPAT_BLESS=1` rewrites the .want files from the socket run
//! (review the diff before committing). `MM_ORIGINAL_TESTS=DIR` (an
//! ignored test) runs another directory of such scripts, e.g. minimega's
//! own `tests/`, each against a fresh daemon, and reports how many pass.

mod common;

use common::qemus::QemuGuard;
use common::{Bus, Conn, Daemon, DaemonOpts};
use minimega::config::Bus as BusAddr;
use minimega::dbus::client::Client;
use std::path::{Path, PathBuf};

const PROLOG: &[&str] = &[".annotate false", "clear all"];

/// Something that runs one line and returns its transcript text (no
/// trailing newline; empty when the line printed nothing).
trait Runner {
    fn run(&mut self, line: &str) -> String;
}

/// minimega's command socket, answered as minitest writes answers.
struct Socket(Conn);

impl Runner for Socket {
    fn run(&mut self, line: &str) -> String {
        // minitest's client sends nothing for an empty line.
        if line.is_empty() {
            return String::new();
        }
        let mut out: Vec<String> = Vec::new();
        for v in self.0.run(line) {
            let mut errs: Vec<String> = v["Resp"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["Error"].as_str())
                .filter(|e| !e.is_empty())
                .map(|e| format!("E: {e}"))
                .collect();
            errs.sort();
            out.extend(errs);
            if let Some(r) = v["Rendered"].as_str().filter(|r| !r.is_empty()) {
                out.push(r.to_string());
            }
        }
        out.join("\n")
    }
}

/// D-Bus `Exec`, printed as `minimega -e` prints it.
struct Dbus {
    client: Client,
    rt: tokio::runtime::Runtime,
}

impl Dbus {
    fn connect(bus: &Bus) -> Dbus {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(Client::connect(&BusAddr::Address(bus.address.clone())))
            .unwrap();
        Dbus { client, rt }
    }
}

impl Runner for Dbus {
    fn run(&mut self, line: &str) -> String {
        if line.trim().is_empty() {
            return String::new();
        }
        self.rt.block_on(self.client.exec(line)).unwrap().text
    }
}

/// One script's transcript, minitest's way: every line is sent as it is.
fn transcript(r: &mut dyn Runner, script: &str) -> String {
    let mut out = String::new();
    for line in script.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str(&format!("## {line}\n"));
        }
        let text = r.run(line);
        if !text.is_empty() {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}

fn scripts(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| match ext {
            Some(ext) => p.extension().is_some_and(|e| e == ext),
            None => {
                let name = p.file_name().unwrap().to_string_lossy();
                !name.starts_with('.')
                    && p.extension().is_none()
                    && !["prolog", "epilog", "enter", "exit"].contains(&name.as_ref())
            }
        })
        .collect();
    v.sort();
    v
}

fn diff(want_path: &Path, got: &str, tag: &str) -> String {
    let got_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{}.{tag}.got",
        want_path.file_stem().unwrap().to_string_lossy()
    ));
    std::fs::write(&got_path, got).unwrap();
    std::process::Command::new("diff")
        .args([
            "-u",
            want_path.to_str().unwrap(),
            got_path.to_str().unwrap(),
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// VNC ports the scripts' VMs get: a range of ten per daemon (the two
/// daemons run at once), each shown as the socket daemon's, so one `.want`
/// serves both; a range, not the kernel's pick, so `vnc_port` is fixed text.
const VNC_PORTS: u16 = 25900;

fn vnc_range(first: u16) -> DaemonOpts<'static> {
    DaemonOpts {
        extra: vec![format!("-vncports={first}-{}", first + 9)],
        ..DaemonOpts::default()
    }
}

/// Runs every script through `r`, the prolog before each; returns the
/// failures. The daemon's base directory shows as minimega's default,
/// `/tmp/minimega`, its VNC ports (from `vnc_first`) as the socket
/// daemon's.
fn run_all(r: &mut dyn Runner, base: &Path, vnc_first: u16, tag: &str, bless: bool) -> Vec<String> {
    let dir = common::project_root().join("tests/compat");
    let list = scripts(&dir, Some("mm"));
    assert!(!list.is_empty(), "no scripts in {}", dir.display());
    let mut failures = Vec::new();
    for path in list {
        for line in PROLOG {
            r.run(line);
        }
        let mut got = transcript(r, &std::fs::read_to_string(&path).unwrap())
            .replace(base.to_str().unwrap(), "/tmp/minimega");
        if vnc_first != VNC_PORTS {
            for i in 0..10 {
                got = got.replace(&(vnc_first + i).to_string(), &(VNC_PORTS + i).to_string());
            }
        }
        let want_path = path.with_extension("want");
        if bless {
            std::fs::write(&want_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&want_path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{} ({tag}) differs from its .want:\n{}",
                path.display(),
                diff(&want_path, &got, tag)
            ));
        }
    }
    failures
}

#[test]
fn compat_scripts_over_the_socket_and_dbus() {
    let bless = std::env::var_os("MM_COMPAT_BLESS").is_some();
    let socket = std::thread::spawn(move || {
        let bus = Bus::start();
        let d = Daemon::start_with(&bus, vnc_range(VNC_PORTS));
        let _qemus = QemuGuard {
            base: d.base.clone(),
        };
        let mut s = Socket(Conn::to(&d));
        let f = run_all(&mut s, &d.base, VNC_PORTS, "socket", bless);
        drop(s);
        (f, d.log_text())
    });
    let dbus = (!bless).then(|| {
        std::thread::spawn(|| {
            let bus = Bus::start();
            let d = Daemon::start_with(&bus, vnc_range(VNC_PORTS + 10));
            let _qemus = QemuGuard {
                base: d.base.clone(),
            };
            let mut c = Dbus::connect(&bus);
            let f = run_all(&mut c, &d.base, VNC_PORTS + 10, "dbus", false);
            (f, d.log_text())
        })
    });
    let mut failures = Vec::new();
    for (f, log) in [
        Some(socket.join().unwrap()),
        dbus.map(|t| t.join().unwrap()),
    ]
    .into_iter()
    .flatten()
    {
        if !f.is_empty() {
            failures.extend(f);
            failures.push(format!("daemon log:\n{log}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A runner that sends `$images` as the images directory (the transcript
/// keeps the line as written, as minimega's runner echoes it).
struct Images<R: Runner>(R, String);

impl<R: Runner> Runner for Images<R> {
    fn run(&mut self, line: &str) -> String {
        self.0.run(&line.replace("$images", &self.1))
    }
}

/// `MM_ORIGINAL_TESTS=DIR cargo test --test compat -- --ignored`: runs a
/// directory of minimega-format scripts (`NAME` + `NAME.want`, with the
/// directory's `prolog` and `epilog`), each against a fresh daemon whose
/// files directory shows as `/tmp/minimega/files`, and prints which pass.
#[test]
#[ignore]
fn original_scripts() {
    let Some(dir) = std::env::var_os("MM_ORIGINAL_TESTS") else {
        eprintln!("set MM_ORIGINAL_TESTS to a directory of scripts");
        return;
    };
    let dir = PathBuf::from(dir);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let (prolog, epilog) = (read("prolog"), read("epilog"));
    // minimega's scripts name their images `$images/NAME`: a container
    // file system with the agent (`minicccfs`) is made here as the
    // project's script makes one; others (`minirouterfs`, kernels) come
    // from MM_ORIGINAL_IMAGES when given.
    let images = std::env::var_os("MM_ORIGINAL_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("original-images"));
    if !images.join("minicccfs/init").exists() {
        let o = std::process::Command::new(common::project_root().join("scripts/container-fs.sh"))
            .arg(images.join("minicccfs"))
            .arg(env!("CARGO_BIN_EXE_miniccc"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "container-fs.sh: {}",
            common::stderr(&o)
        );
    }
    let images = images.display().to_string();
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for path in scripts(&dir, None) {
        let Ok(want) = std::fs::read_to_string(path.with_extension("want")) else {
            continue;
        };
        // Each script gets a switch of its own, as minimega's runner has
        // Open vSwitch.
        let site = common::ovs::Site::new("orig");
        let bus = Bus::start();
        let d = site.daemon_with(&bus, None, true);
        let _qemus = QemuGuard {
            base: d.base.clone(),
        };
        let _containers = common::container::CtGuard(d.base.clone());
        let mut s = Images(Socket(Conn::to(&d)), images.clone());
        for line in prolog.lines() {
            s.run(line);
        }
        let got = transcript(&mut s, &std::fs::read_to_string(&path).unwrap());
        for line in epilog.lines() {
            s.run(line);
        }
        let got = got.replace(d.base.to_str().unwrap(), "/tmp/minimega");
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if got == want {
            passed.push(name);
        } else {
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("original");
            std::fs::create_dir_all(&out).unwrap();
            std::fs::write(out.join(format!("{name}.got")), &got).unwrap();
            failed.push(name);
        }
    }
    eprintln!(
        "passed {} of {}: {}\nfailed: {}",
        passed.len(),
        passed.len() + failed.len(),
        passed.join(" "),
        failed.join(" ")
    );
}
