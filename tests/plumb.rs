//! The plumber end to end: pipelines of real programs driven through
//! `minimega -e` (D-Bus) and through the command socket, read and written
//! by a Go client that speaks minimega's own socket protocol (PlumbPipe)
//! and by `minimega -pipe`; and pipes spanning a mesh of two daemons.
//! Needs sed, tr and go (scripts/deps.sh).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// tests/plumb_client, built once per run.
fn go_client() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let out = tmp.join("plumb_client");
        let o = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg("main.go")
            .current_dir(project_root().join("tests/plumb_client"))
            .env("GOCACHE", tmp.join("go-cache"))
            .env("GOPATH", tmp.join("go-path"))
            .env("GO111MODULE", "off")
            .output()
            .expect("go (install golang-go)");
        assert!(o.status.success(), "go build: {}", stderr(&o));
        out
    })
}

/// One command through the command socket, as minimega's Go client sends it.
fn socket_cmd(base: &Path, line: &str) -> String {
    let o = Command::new(go_client())
        .arg("-base")
        .arg(base)
        .args(["-e", line])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "`{line}` over the socket: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// A client attached to a pipe, whose messages arrive on a channel.
struct PipeClient {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl PipeClient {
    fn spawn(mut cmd: Command) -> PipeClient {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        PipeClient { child, lines }
    }

    /// The Go client on `pipe` of the daemon at `base`.
    fn go(base: &Path, pipe: &str) -> PipeClient {
        let mut c = Command::new(go_client());
        c.arg("-base").arg(base).args(["-pipe", pipe]);
        PipeClient::spawn(c)
    }

    /// `minimega -pipe`.
    fn ours(base: &Path, pipe: &str) -> PipeClient {
        let mut c = Command::new(BIN);
        c.arg("-base").arg(base).args(["-pipe", pipe]);
        PipeClient::spawn(c)
    }

    fn next(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .expect("a message on the pipe within 30s")
    }

    fn nothing_more(&self) {
        if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(300)) {
            panic!("unexpected message {l:?}");
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Ends its input; the client then ends, as `echo x | minimega -pipe p`.
    fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = wait_timeout(&mut self.child, WAIT).expect("the client ends with its input");
        assert!(status.success(), "{status}");
    }
}

impl Drop for PipeClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pipe` as CSV rows (name first), through -e.
fn pipes(d: &Daemon, columns: &str) -> Vec<String> {
    d.ok(&format!(
        ".annotate false .csv true .headers false .columns name,{columns} pipe"
    ))
    .lines()
    .map(String::from)
    .collect()
}

fn wait_row(d: &Daemon, columns: &str, row: &str) {
    wait_for(&format!("`{row}` in pipe on {}", d.name), WAIT, || {
        pipes(d, columns).iter().any(|r| r == row).then_some(())
    });
}

#[test]
fn a_pipeline_of_programs_through_the_socket_and_e() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let base = d.base.clone();

    d.ok(r#"plumb p1 "sed -u s/a/b/" p2"#);
    assert_eq!(
        d.ok(".annotate false plumb"),
        "pipeline\nminimega//p1 sed -u s/a/b/ minimega//p2"
    );
    let go_reader = PipeClient::go(&base, "p2");
    wait_row(&d, "readers", "minimega//p2,1");

    // Written with -e (D-Bus), read over the socket.
    d.ok("pipe p1 apple");
    assert_eq!(go_reader.next(), "bpple");
    // Written as minimega's Go client sends a command.
    socket_cmd(&base, "pipe p1 banana");
    assert_eq!(go_reader.next(), "bbnana");
    // Written through PlumbPipe, as `echo cabbage | minimega -pipe p1`.
    let mut writer = PipeClient::go(&base, "p1");
    writer.send("cabbage");
    writer.finish();
    assert_eq!(go_reader.next(), "cbbbage");
    // Many at once, the writer hanging up right after: none is lost, even
    // though it stopped reading its own pipe first.
    let mut bulk = PipeClient::go(&base, "p1");
    for i in 0..3000 {
        bulk.send(&format!("a{i}"));
    }
    bulk.finish();
    for i in 0..3000 {
        assert_eq!(go_reader.next(), format!("b{i}"));
    }

    // minimega -pipe, reading and writing.
    let ours = PipeClient::ours(&base, "p2");
    wait_row(&d, "readers", "minimega//p2,2");
    let mut our_writer = PipeClient::ours(&base, "p1");
    our_writer.send("date");
    our_writer.finish();
    assert_eq!(ours.next(), "dbte");
    assert_eq!(go_reader.next(), "dbte");
    go_reader.nothing_more();

    // The listing, over the socket: the pipeline reads p1 and writes p2;
    // each PlumbPipe client is a reader and a writer of its pipe.
    let rows = socket_cmd(
        &base,
        ".annotate false .csv true .headers false .columns name,readers,writers,count,previous pipe",
    );
    assert_eq!(
        rows, "minimega//p1,1,0,3004,date\nminimega//p2,2,3,3004,dbte",
        "{rows}"
    );

    let out = d.e("clear pipe p2");
    assert!(!out.status.success(), "an error exits 1");
    assert_eq!(
        stdout(&out),
        "E: cannot delete named pipe with open writers"
    );
    d.ok("clear plumb");
    assert_eq!(d.ok(".annotate false plumb"), "");
    wait_row(&d, "readers,writers", "minimega//p1,0,0");
    drop(go_reader);
    drop(ours);
    wait_row(&d, "readers,writers", "minimega//p2,0,0");
    d.ok("clear pipe");
    assert_eq!(d.ok("pipe"), "");
    // A client that sends something other than strings after PlumbPipe
    // is hung up on, its reader and writer closed; the daemon carries on.
    let mut raw = std::os::unix::net::UnixStream::connect(base.join("minimega")).unwrap();
    raw.write_all(b"{\"PlumbPipe\":\"p3\"}\n\"fine\\n\"\n{\"not\":\"a string\"}\n")
        .unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut raw, &mut rest).expect("the daemon hangs up");
    wait_row(&d, "readers,writers,count", "minimega//p3,0,0,1");
    assert_eq!(d.ok("version").split_whitespace().next(), Some("minimega"));
}

/// Two daemons, each on its own bus, linked by `mesh dial`.
fn two_node_mesh() -> (Bus, Daemon, Bus, Daemon, Scratch) {
    let keys = Scratch::new("plumbkey");
    let key = keys.path.join("mesh.key");
    std::fs::write(&key, "cGx1bWJlcidzIHNoYXJlZCBtZXNoIGtleSBmb3IgdGVzdHM=\n").unwrap();
    set_mode(&key, 0o600);
    let start = |bus: &Bus, name: &str| {
        Daemon::start_with(
            bus,
            DaemonOpts {
                name,
                extra: vec!["-meshkey".into(), key.display().to_string()],
                ..Default::default()
            },
        )
    };
    let (b1, b2) = (Bus::start(), Bus::start());
    let n1 = start(&b1, &format!("pa{}", std::process::id()));
    let n2 = start(&b2, &format!("pb{}", std::process::id()));
    n1.ok(&format!("mesh dial 127.0.0.1:{}", n2.port));
    for d in [&n1, &n2] {
        wait_for("a mesh of two", WAIT, || {
            let size = d.ok(".annotate false .headers false .columns mesh mesh status");
            (size == "2").then_some(())
        });
    }
    (b1, n1, b2, n2, keys)
}

#[test]
fn pipes_span_the_mesh() {
    let (_b1, n1, _b2, n2, _keys) = two_node_mesh();
    let r1 = PipeClient::go(&n1.base, "x");
    let r2 = PipeClient::go(&n2.base, "x");
    wait_row(&n1, "readers", "minimega//x,1");
    wait_row(&n2, "readers", "minimega//x,1");

    // Mode all: a write on one node reaches the readers of both.
    n1.ok("pipe x hello");
    assert_eq!(r1.next(), "hello");
    assert_eq!(r2.next(), "hello");
    wait_row(&n2, "count,previous", "minimega//x,1,hello");

    // Round-robin over both nodes' readers, in one order.
    n1.ok("pipe x mode round-robin");
    for i in 0..4 {
        n1.ok(&format!("pipe x m{i}"));
    }
    assert_eq!([r1.next(), r1.next()], ["m0", "m2"]);
    assert_eq!([r2.next(), r2.next()], ["m1", "m3"]);
    r1.nothing_more();
    r2.nothing_more();

    // A via set on n2 runs there, for writes from either node.
    n1.ok("pipe x mode all");
    n2.ok("pipe x via tr a-z A-Z");
    n1.ok("pipe x Mixed");
    assert_eq!(r1.next(), "MIXED");
    assert_eq!(r2.next(), "MIXED");
    n2.ok("clear pipe x via");
    n1.ok("pipe x plain");
    assert_eq!(r1.next(), "plain");
    assert_eq!(r2.next(), "plain");

    // A pipeline on n2, fed and read on n1 (minimega's distributed test).
    n1.ok(&format!(
        r#"mesh send {} plumb y "sed -u s/a/b/" z"#,
        n2.name
    ));
    let rz = PipeClient::go(&n1.base, "z");
    wait_row(&n1, "readers", "minimega//z,1");
    n1.ok("pipe y apple");
    assert_eq!(rz.next(), "bpple");
    let there = n1.ok(&format!(
        ".annotate true .csv true mesh send {} .columns name,readers,writers,count pipe",
        n2.name
    ));
    for row in ["minimega//y,1,0,1", "minimega//z,0,1,1"] {
        assert!(
            there
                .lines()
                .any(|l| l.ends_with(row) && l.starts_with(&n2.name)),
            "{row} in\n{there}"
        );
    }
}
