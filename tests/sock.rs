//! minimega's command socket at `<base>/minimega`, driven by a client
//! written here from the protocol (not the project's own client): answers,
//! sessions, suggestions, misbehaving clients, peer credentials, stale
//! sockets, and `minimega -e`/`-attach` falling back to it without a bus.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn rendered(v: &Value) -> &str {
    v["Rendered"].as_str().expect("Rendered is a string")
}

#[test]
fn commands_tables_and_errors_as_minimega_answers_them() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let mut c = Conn::to(&d);

    let v = c.one("version");
    let version = format!("minimega {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(v["Resp"][0]["Host"], "node");
    assert_eq!(v["Resp"][0]["Response"], version.as_str());
    assert_eq!(v["Resp"][0]["Error"], "");
    assert!(v["Resp"][0]["Header"].is_null() && v["Resp"][0]["Tabular"].is_null());
    assert_eq!(rendered(&v), version);
    assert_eq!((&v["More"], &v["Status"]), (&json!(false), &json!(false)));

    let v = c.one("host");
    let r = &v["Resp"][0];
    assert_eq!(r["Header"][0], "name");
    assert_eq!(r["Header"][1], "cpus");
    assert_eq!(r["Tabular"][0][0], "node");
    assert!(rendered(&v).starts_with("host | name | cpus |"), "{v}");
    // Rendered is what `minimega -e` prints (columns that do not change
    // between the two calls).
    let v = c.one(".columns name,cpus,memtotal host");
    assert_eq!(v["Resp"][0]["Header"], json!(["name", "cpus", "memtotal"]));
    assert_eq!(rendered(&v), d.ok(".columns name,cpus,memtotal host"));

    // Once the vm commands are in the table, `vm info` too.
    if c.one("help vm info")["Resp"][0]["Error"] == "" {
        let v = c.one("vm info");
        let header = &v["Resp"][0]["Header"];
        assert!(
            header.is_null() || header.as_array().unwrap().contains(&json!("name")),
            "{v}"
        );
        assert_eq!(rendered(&v), d.ok("vm info"));
    }

    // An error travels in Resp; like minimega, Rendered stays empty.
    let v = c.one("frobnicate now");
    assert_eq!(
        v["Resp"][0]["Error"],
        "no such command: `frobnicate` (try `help`)"
    );
    assert_eq!(v["Resp"][0]["Host"], "node");
    assert_eq!(rendered(&v), "");
    assert_eq!(v["More"], false);

    // A comment has no answer but still ends.
    let v = c.one("# nothing");
    assert!(v["Resp"].is_null() && rendered(&v).is_empty());

    // Neither command nor suggestion: minimega's own words, and the
    // connection carries on.
    c.send(&json!({}));
    let v = c.next().unwrap();
    assert_eq!(
        v["Resp"][0]["Error"],
        "must specify either command or suggest"
    );
    c.send(&json!({"command": "echo any case"}));
    assert_eq!(rendered(&c.next().unwrap()), "any case");
    c.send(&json!({"Command": 7}));
    assert_eq!(
        c.next().unwrap()["Resp"][0]["Error"],
        "`Command` must be a string"
    );
    assert_eq!(rendered(&c.one("echo still here")), "still here");

    // JSON mode: Rendered is the JSON, errors included, as minimega's.
    let v = c.one(".json true help nosuchthing");
    let inner: Value = serde_json::from_str(rendered(&v)).unwrap();
    assert_eq!(inner[0]["Error"], v["Resp"][0]["Error"]);
}

#[test]
fn read_answers_one_object_per_command() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let script = d.scratch.path.join("script.mm");
    std::fs::write(
        &script,
        "# a script\necho one\nhelp nosuchthing\n.annotate false\necho two\n",
    )
    .unwrap();
    let mut c = Conn::to(&d);
    let all = c.run(&format!("read {}", script.display()));
    let more: Vec<&Value> = all.iter().map(|v| &v["More"]).collect();
    assert_eq!(more, [true, true, true, false], "{all:?}");
    assert_eq!(rendered(&all[0]), "one");
    assert_eq!(
        all[1]["Resp"][0]["Error"],
        "no help on `nosuchthing`: no such command"
    );
    assert_eq!(rendered(&all[3]), "two");
    // The file ran in this connection's session.
    assert_eq!(rendered(&c.one(".annotate")), "false");

    // The same through `minimega -e`, and a file relative to -filepath.
    let files = d.base.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::copy(&script, files.join("rel.mm")).unwrap();
    let out = d.e("read rel.mm");
    assert_eq!(out.status.code(), Some(1), "an error in the file");
    assert_eq!(
        stdout(&out),
        "one\nE: no help on `nosuchthing`: no such command\ntwo"
    );
    assert_eq!(d.ok("read rel.mm check"), "");
}

#[test]
fn a_stalled_half_request_is_dropped_after_the_timeout() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let mut idle = Conn::to(&d);
    let mut half = Conn::to(&d);
    half.stream.write_all(b"{\"Command\": \"ech").unwrap();
    let v = half.next().expect("told before the hang-up");
    let e = v["Resp"][0]["Error"].as_str().unwrap();
    assert!(
        e.starts_with("request not completed (silent for 10s"),
        "{e}"
    );
    assert!(half.next().is_none(), "then dropped");
    // Silence between requests is no stall: minimega's clients keep their
    // connection open between commands.
    assert_eq!(rendered(&idle.one("echo still here")), "still here");
}

#[test]
fn history_stays_under_its_byte_cap_after_many_long_lines() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let mut c = Conn::to(&d);
    c.one("echo warm up");
    let long = format!("echo {}", "x".repeat((1 << 20) - 200));
    for _ in 0..24 {
        assert_eq!(rendered(&c.one(&long)).len(), long.len() - 5);
    }
    // 24 MiB of lines went in; the history keeps a few KiB of each, and
    // never more than its 4 MiB in all.
    let history = rendered(&c.one("history")).to_string();
    assert!(
        history.len() < 4 << 20,
        "{} bytes of history",
        history.len()
    );
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 25, "every command is remembered");
    assert!(lines.iter().all(|l| l.len() <= 4096), "each one shortened");
    assert!(lines[1].ends_with(&format!("({} bytes)", long.len())));
}

#[test]
fn dot_settings_belong_to_one_connection() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let mut a = Conn::to(&d);
    let mut b = Conn::to(&d);
    a.one(".annotate false");
    a.one(".alias zz=echo hello");
    assert!(rendered(&a.one("host")).starts_with("name | cpus"));
    assert_eq!(rendered(&a.one("zz world")), "hello world");
    // A command-scoped setting does not stick.
    assert!(rendered(&a.one(".headers false host")).starts_with("node "));
    assert!(rendered(&a.one("host")).starts_with("name | cpus"));

    assert!(rendered(&b.one("host")).starts_with("host | name | cpus"));
    let v = b.one("zz world");
    assert_eq!(v["Resp"][0]["Error"], "no such command: `zz` (try `help`)");
    // A new connection starts afresh too.
    let mut c = Conn::to(&d);
    assert_eq!(rendered(&c.one(".annotate")), "true");
    assert_eq!(rendered(&a.one(".annotate")), "false");
}

#[test]
fn suggestions_come_from_the_command_table() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let mut c = Conn::to(&d);
    assert_eq!(c.suggest("vers"), ["version"]);
    assert!(c.suggest(".col").contains(&".columns".to_string()));
    // The same table answers D-Bus `Complete`.
    assert!(c.suggest("rea").contains(&"read".to_string()));
    assert!(c.suggest("zzz").is_empty());
    // Once `vm launch` is in the table (the vm commands), `vm la` offers it.
    let has_vm_launch = c.one("help vm launch")["Resp"][0]["Error"] == "";
    if has_vm_launch {
        assert!(
            c.suggest("vm la").contains(&"vm launch".to_string()),
            "{:?}",
            c.suggest("vm la")
        );
    }
    // Suggestions and commands interleave on one connection.
    assert_eq!(rendered(&c.one("version")), d.ok("version"));
}

/// The daemon still serves: an old connection keeps its session, a new
/// one and D-Bus answer, and nothing panicked.
fn assert_serving(d: &Daemon, old: &mut Conn) {
    assert_eq!(rendered(&old.one(".annotate")), "false");
    assert_eq!(rendered(&Conn::to(d).one("echo fine")), "fine");
    assert_eq!(d.ok("echo bus"), "bus");
    assert!(!d.log_text().contains("panicked"), "{}", d.log_text());
}

#[test]
fn bad_clients_do_not_disturb_the_others() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let mut good = Conn::to(&d);
    good.one(".annotate false");

    // Garbage: an error object, then the daemon hangs up.
    let mut g = Conn::to(&d);
    g.stream.write_all(b"hello there\n").unwrap();
    let v = g.next().expect("an error object");
    let err = v["Resp"][0]["Error"].as_str().unwrap();
    assert!(
        err.starts_with("expected a JSON object such as {\"Command\": \"version\"}, found `hello`"),
        "{err}"
    );
    assert!(g.next().is_none());
    assert_serving(&d, &mut good);

    // Invalid JSON inside an object: answered, and the connection goes on.
    let mut j = Conn::to(&d);
    j.stream
        .write_all(b"{\"Command\": \"echo\" \"x\"}\n")
        .unwrap();
    let v = j.next().unwrap();
    assert!(
        v["Resp"][0]["Error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON"),
        "{v}"
    );
    assert_eq!(rendered(&j.one("echo ok")), "ok");

    // An oversized request: refused before it ends.
    let mut o = Conn::to(&d);
    let mut huge = b"{\"Command\": \"echo ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 4 << 20));
    huge.extend(b"\"}\n");
    // The daemon stops reading at the cap, so this write may fail.
    let _ = o.stream.write_all(&huge);
    let v = o.next().expect("an error object");
    assert_eq!(
        v["Resp"][0]["Error"],
        format!("request larger than {} bytes", 1 << 20)
    );
    assert!(o.next().is_none());
    assert_serving(&d, &mut good);

    // Hanging up in the middle of a request, and of a command's answer.
    let mut h = Conn::to(&d);
    h.stream.write_all(b"{\"Command\": \"ech").unwrap();
    drop(h);
    let script = d.scratch.path.join("long.mm");
    std::fs::write(&script, "echo some output to write back\n".repeat(20_000)).unwrap();
    for _ in 0..3 {
        let mut h = Conn::to(&d);
        h.send(&json!({"Command": format!("read {}", script.display())}));
        drop(h);
    }
    // One that reads part of the answer, then leaves.
    let mut h = Conn::to(&d);
    h.send(&json!({"Command": format!("read {}", script.display())}));
    assert_eq!(h.next().unwrap()["More"], true);
    drop(h);
    assert_serving(&d, &mut good);

    // After PlumbPipe the connection carries JSON strings (tests/plumb.rs):
    // a client that sends anything else is hung up on.
    let mut p = Conn::to(&d);
    p.send(&json!({"PlumbPipe": "foo"}));
    p.send(&json!({"Command": "version"}));
    assert!(p.next().is_none());
    assert_serving(&d, &mut good);
}

fn as_nobody(base: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            BIN,
            "-base",
            base.to_str().unwrap(),
            "-bus",
            "none",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn other_users_are_refused_by_mode_and_by_credentials() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let socket = d.base.join("minimega");
    // Let `nobody` reach the directory, so only the socket decides.
    for dir in [&d.scratch.path, &d.base] {
        set_mode(dir, 0o755);
    }
    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o660
    );
    let out = as_nobody(&d.base, &["-e", "version"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("permission denied") && stderr(&out).contains("group minimega"),
        "{}",
        stderr(&out)
    );

    // A socket opened up by hand still refuses strangers: the daemon
    // checks who is calling.
    set_mode(&socket, 0o666);
    let out = as_nobody(&d.base, &["-e", "version"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        "E: permission denied: uid 65534 is not root, the daemon's user, or a member of group minimega"
    );
    // And root still gets in.
    assert_eq!(rendered(&Conn::to(&d).one("echo root")), "root");
}

#[test]
fn without_a_bus_the_client_uses_the_socket() {
    let bus = Bus::start();
    let d = Daemon::start_with(
        &bus,
        DaemonOpts {
            extra: vec!["-bus".into(), "none".into()],
            ..Default::default()
        },
    );
    let out = mm_nobus(&d.base, &["-e", "version"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("minimega {}", env!("CARGO_PKG_VERSION"))
    );
    let out = mm_nobus(&d.base, &["-bus", "none", "-e", ".columns", "name", "host"]);
    assert_eq!(stdout(&out), "host | name\nnode | node");
    let out = mm_nobus(&d.base, &["-e", "frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "E: no such command: `frobnicate` (try `help`)"
    );

    // -attach: one session over one connection, completion included.
    let out = attach(
        &bus.address,
        &["-base", d.base.to_str().unwrap(), "-bus", "none"],
        ".alias hi=echo hello\nhi world\n.annotate false\n.annotate\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello world\nfalse");

    // A working bus without the daemon on it: "not running", no fallback.
    let out = mm(
        &bus.address,
        &["-base", d.base.to_str().unwrap(), "-e", "version"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
}

#[test]
fn no_bus_and_no_daemon_is_one_line() {
    let s = Scratch::new("nodaemon");
    let out = mm_nobus(&s.path, &["-e", "version"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("not running")
            && err.contains(&s.path.join("minimega").display().to_string())
            && err.contains("no D-Bus"),
        "{err}"
    );
    // A socket nobody listens on (a crash's leftover) says so.
    drop(std::os::unix::net::UnixListener::bind(s.path.join("minimega")).unwrap());
    let err = stderr(&mm_nobus(&s.path, &["-e", "version"]));
    assert!(err.contains("nothing listens"), "{err}");
}

fn start_on(bus: &Bus, base: &Path, extra: &[&str]) -> Daemon {
    Daemon::start_with(
        bus,
        DaemonOpts {
            name: "again",
            extra: extra.iter().map(|s| s.to_string()).collect(),
            base: Some(base.to_path_buf()),
            ..Default::default()
        },
    )
}

#[test]
fn stale_socket_after_a_crash_and_none_after_a_clean_stop() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus);
    let socket: PathBuf = d.base.join("minimega");
    assert!(socket.exists());
    d.crash();
    assert!(socket.exists(), "a crash leaves the socket");

    // With neither -force nor -recover, startup stops and names the fix.
    let out = Command::new(BIN)
        .args(["-base", d.base.to_str().unwrap()])
        .args([
            "-port",
            &free_port().to_string(),
            "-nostdin",
            "-bus",
            "none",
        ])
        .args(["-recover=false"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&socket.display().to_string())
            && err.contains("stale")
            && err.contains("-force"),
        "{err}"
    );
    assert!(socket.exists(), "refusing leaves it alone");

    // -force replaces it, as does -recover (the default).
    let mut again = start_on(&bus, &d.base, &["-recover=false", "-force"]);
    assert!(again
        .log_text()
        .contains("replaced the stale command socket"));
    assert_eq!(rendered(&Conn::open(&socket).one("echo up")), "up");
    again.crash();
    let mut third = start_on(&bus, &d.base, &[]);
    assert_eq!(rendered(&Conn::open(&socket).one("echo up")), "up");

    // A clean stop removes it.
    assert!(third.stop().success());
    assert!(!socket.exists(), "SIGTERM removes the socket");
}
