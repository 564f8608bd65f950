//! The language as real clients use it, end to end against a real daemon
//! with real (paused, or BIOS-only) QEMUs: a phenix-style experiment run
//! with `read` and line by line as phenix sends lines; `quit` on every
//! front door; the exit status of `-e` over D-Bus and the socket; `args`;
//! the daemon-wide active namespace beside per-client dot settings;
//! screenshots in the response's Data; virtio-ports and qemu-override in
//! QEMU's real command line.

mod common;

use common::qemus::{qemus_under, QemuGuard};
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// One command's answer: its rendered text, and its errors.
fn answer(c: &mut Conn, line: &str) -> (String, Vec<String>) {
    let objects = c.run(line);
    let text = objects
        .iter()
        .filter_map(|v| v["Rendered"].as_str().map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let errors = objects
        .iter()
        .flat_map(|v| v["Resp"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["Error"].as_str().map(str::to_string))
        .filter(|e| !e.is_empty())
        .collect();
    (text, errors)
}

fn errors(c: &mut Conn, line: &str) -> Vec<String> {
    answer(c, line).1
}

fn text(c: &mut Conn, line: &str) -> String {
    answer(c, line).0
}

fn ok(c: &mut Conn, line: &str) -> String {
    let (text, e) = answer(c, line);
    assert!(e.is_empty(), "`{line}` failed: {e:?}");
    text
}

/// The command line of the QEMU whose VM folder is `dir`.
fn qemu_cmdline(base: &Path, dir: &Path) -> String {
    let needle = dir.join("qmp").display().to_string();
    qemus_under(base)
        .into_iter()
        .map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&raw).replace('\0', " ")
        })
        .find(|cmd| cmd.contains(&needle))
        .unwrap_or_default()
}

/// The experiment, as phenix's deploy script writes it: one VM each
/// `clear vm config` ... `vm launch kvm NAME`, values quoted.
fn experiment(ns: &str, host: &str) -> String {
    let mut s =
        format!("namespace {ns}\nns queueing true\nns del-host all\nns add-host localhost\n");
    for (name, role) in [("web", "web server"), ("db", "database")] {
        s.push_str(&format!(
            "clear vm config\nvm config schedule {host}\nvm config vcpus 1\nvm config memory 64\n\
             vm config snapshot true\nvm config qemu-append \"-rtc\" \"base=utc,clock=vm\"\n\
             vm config tags \"phenix/role\" \"{role}\"\nvm config virtio-ports 2\n\
             vm config qemu-override \"-vga std\" \"-vga cirrus\"\nvm launch kvm {name}\n"
        ));
    }
    s
}

/// What phenix checks after its script: the queue, the launch, the VMs.
fn check_experiment(c: &mut Conn, d: &Daemon, ns: &str) {
    let q = ok(c, &format!(".record false namespace \"{ns}\" ns queue"));
    assert!(
        q.contains("Names: web\n") && q.contains("Names: db\n"),
        "{q}"
    );
    assert!(
        q.contains(r#"Tags:             {"phenix/role":"web server"}"#),
        "{q}"
    );
    assert!(
        q.contains("QEMU Append:              [-rtc base=utc,clock=vm]"),
        "{q}"
    );
    let queued = text(
        c,
        &format!(".record false namespace \"{ns}\" .columns name vm info"),
    );
    assert_eq!(queued, "", "queued VMs do not exist yet");
    ok(c, &format!("namespace \"{ns}\" vm launch"));
    let info = ok(
        c,
        &format!(
            ".record false namespace \"{ns}\" .columns \"name\",\"state\",\"tags\" .filter state=building vm info"
        ),
    );
    assert_eq!(
        info,
        "name | state    | tags\n\
         db   | BUILDING | {\"phenix/role\":\"database\"}\n\
         web  | BUILDING | {\"phenix/role\":\"web server\"}"
    );
    ok(c, &format!("namespace \"{ns}\" vm start all"));
    let running = ok(
        c,
        &format!(".record false namespace \"{ns}\" .columns name .filter state=running vm info"),
    );
    assert_eq!(running, "name\ndb\nweb");
    // What the configuration asked for is in QEMU's command line.
    let ids = ok(
        c,
        &format!(
            ".record false namespace \"{ns}\" .headers false .columns id .filter name=web vm info"
        ),
    );
    let dir = d.base.join(ids.trim());
    let cmd = qemu_cmdline(&d.base, &dir);
    assert!(
        cmd.contains("-vga cirrus") && !cmd.contains("-vga std"),
        "{cmd}"
    );
    assert!(cmd.contains("-rtc base=utc,clock=vm"), "{cmd}");
    assert!(cmd.contains("name=virtio-serial1"), "{cmd}");
    for n in 0..2 {
        assert!(dir.join(format!("virtio-serial{n}")).exists(), "{n}");
    }
}

#[test]
fn a_phenix_experiment_by_read_and_line_by_line() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _qemus = QemuGuard {
        base: d.base.clone(),
    };
    let mut c = Conn::to(&d);
    ok(&mut c, ".annotate false");
    ok(&mut c, "clear history");

    // With read: its `namespace EXP` makes EXP the daemon's active namespace.
    let script = d.scratch.path.join("deploy.mm");
    std::fs::write(&script, experiment("exp1", &d.name)).unwrap();
    ok(&mut c, &format!("read {}", script.display()));
    check_experiment(&mut c, &d, "exp1");
    let mut later = Conn::to(&d);
    let active = ok(
        &mut later,
        ".annotate false .columns namespace .filter active=true namespace",
    );
    assert_eq!(
        active, "namespace\nexp1",
        "a client that comes later starts there"
    );
    let history = ok(&mut c, "history");
    assert!(
        history.starts_with("namespace exp1\nns queueing true\n"),
        "{history}"
    );
    assert!(!history.contains("read "), "{history}");
    assert!(!history.contains(".record false"), "{history}");
    ok(&mut c, "clear namespace");

    // Line by line, every line in the namespace, as phenix sends them:
    // nothing of it is recorded, and the daemon's namespace stays.
    ok(&mut c, "clear history");
    for line in experiment("exp2", &d.name).lines().skip(1) {
        let e = errors(&mut c, &format!(".record false namespace \"exp2\" {line}"));
        assert!(e.is_empty(), "{line}: {e:?}");
    }
    check_experiment(&mut c, &d, "exp2");
    let history = ok(&mut c, "history");
    assert!(!history.contains("vm config"), "{history}");
    let active = ok(
        &mut later,
        ".annotate false .columns namespace .filter active=true namespace",
    );
    assert_eq!(active, "namespace\nminimega");

    // Destroying the namespaces ends their VMs.
    ok(&mut c, "clear namespace exp1");
    ok(&mut c, "clear namespace exp2");
    assert_eq!(text(&mut c, "namespace exp2 vm info"), "");
    wait_for("the QEMUs to go", Duration::from_secs(30), || {
        qemus_under(&d.base).is_empty().then_some(())
    });
}

#[test]
fn quit_ends_the_session_on_every_front_door() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);

    // The command socket: the answer, then the daemon hangs up.
    let mut c = Conn::to(&d);
    ok(&mut c, ".headers false");
    let r = c.run("quit");
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(c.next().is_none(), "the connection is closed");

    // D-Bus: the caller's next command gets a fresh session.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt
        .block_on(minimega::dbus::client::Client::connect(
            &minimega::config::Bus::Address(bus.address.clone()),
        ))
        .unwrap();
    let exec = |line: &str| rt.block_on(client.exec(line)).unwrap().text;
    exec(".headers false");
    assert_eq!(exec(".headers"), "false");
    exec("quit");
    assert_eq!(exec(".headers"), "true");

    // -attach: the shell ends at `quit`, successfully.
    let out = attach(&d.bus, &[], "echo before\nquit\necho after\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "before");

    // The daemon itself keeps running.
    assert_eq!(d.ok("echo still here"), "still here");
}

#[test]
fn e_exits_1_when_any_answer_is_an_error_over_dbus_and_the_socket() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    // One line of the file answers, the next fails: the error decides.
    let script = d.scratch.path.join("mixed.mm");
    std::fs::write(&script, "echo fine\nvm start nothere\n").unwrap();
    let read = format!("read {}", script.display());
    type Client<'a> = Box<dyn Fn(&[&str]) -> Output + 'a>;
    let via: [(&str, Client); 2] = [
        ("dbus", Box::new(|a: &[&str]| mm(&d.bus, a))),
        ("socket", Box::new(|a: &[&str]| mm_nobus(&d.base, a))),
    ];
    for (how, run) in &via {
        let out = run(&["-e", "echo hi"]);
        assert!(out.status.success(), "{how}");
        assert_eq!(stdout(&out), "hi", "{how}");
        let out = run(&["-e", "vm start nothere"]);
        assert_eq!(out.status.code(), Some(1), "{how}");
        assert_eq!(stdout(&out), "E: vm not found: nothere", "{how}");
        let out = run(&["-e", &read]);
        assert_eq!(out.status.code(), Some(1), "{how}");
        assert_eq!(
            stdout(&out),
            "fine\nE: vm not found: nothere",
            "{how}: output, then the error"
        );
    }
}

#[test]
fn args_active_namespace_and_per_client_settings() {
    let bus = Bus::start();
    let files = Scratch::new("files");
    let d = Daemon::start_with(
        &bus,
        DaemonOpts {
            extra: vec!["-filepath".into(), files.path.display().to_string()],
            ..DaemonOpts::default()
        },
    );
    let mut a = Conn::to(&d);
    let mut b = Conn::to(&d);
    ok(&mut a, ".annotate false");
    ok(&mut b, ".annotate false");
    // phenix reads the files directory there.
    assert_eq!(
        ok(&mut a, ".headers false .columns filepath args"),
        files.path.display().to_string()
    );
    assert_eq!(
        ok(&mut a, ".headers false .columns base,port args"),
        format!("{} | {}", d.base.display(), d.port)
    );

    // `namespace exp` alone moves every client; dot settings do not move.
    ok(&mut a, ".headers false");
    ok(&mut a, "namespace exp");
    assert_eq!(
        ok(&mut b, ".columns namespace .filter active=true namespace"),
        "namespace\nexp"
    );
    ok(&mut b, "vm config memory 99");
    assert_eq!(ok(&mut a, "vm config memory"), "99");
    assert_eq!(ok(&mut a, "namespace minimega vm config memory"), "2048");
    assert_eq!(ok(&mut b, ".headers"), "true");
    assert_eq!(ok(&mut a, ".headers"), "false");
    assert_eq!(
        errors(&mut b, "namespace exp"),
        ["already in namespace: exp"]
    );
    ok(&mut b, "clear namespace");
    assert_eq!(ok(&mut a, "vm config memory"), "2048");
    assert_eq!(ok(&mut a, "namespace exp vm config memory"), "99");
}

#[test]
fn screenshots_come_back_in_data_as_base64_png() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _qemus = QemuGuard {
        base: d.base.clone(),
    };
    let mut c = Conn::to(&d);
    ok(&mut c, "vm config memory 64");
    ok(&mut c, "vm launch kvm shot");
    assert_eq!(
        errors(&mut c, "vm screenshot nothere"),
        ["vm not found: nothere"]
    );
    ok(&mut c, "vm start shot");
    // As miniweb asks for it.
    let r = c.run("vm screenshot shot file /dev/null 64");
    let resp: &Value = &r[0]["Resp"][0];
    assert_eq!(resp["Error"], "", "{resp}");
    let data = resp["Data"].as_str().expect("Data is a base64 string");
    // The PNG signature, base64-encoded.
    assert!(
        data.starts_with("iVBORw0KGgo"),
        "{}",
        &data[..data.len().min(40)]
    );
    // Without a file, it goes into the VM's folder.
    ok(&mut c, "vm screenshot shot");
    let png = std::fs::read(d.base.join("0/screenshot.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    ok(&mut c, "vm kill all");
    assert_eq!(
        errors(&mut c, "vm screenshot shot"),
        ["vm not running: shot"]
    );
    ok(&mut c, "vm flush");
}
