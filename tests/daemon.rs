//! The daemon on a private system bus: `minimega -e`, `busctl`, properties,
//! the policy, and the client when nothing is running.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn version_help_json_and_errors_through_e() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    assert_eq!(
        d.ok("version"),
        format!("minimega {}", env!("CARGO_PKG_VERSION"))
    );

    let help = d.ok("help");
    assert!(help.starts_with("Display help on a command."), "{help}");
    for cmd in [".columns", ".filter", "echo", "history", "host", "version"] {
        assert!(help.contains(cmd), "help lacks {cmd}: {help}");
    }
    assert!(d.ok("help .filter").contains("state!=running"));

    let json = d.ok(".json true host");
    let v: serde_json::Value = serde_json::from_str(&json).expect(&json);
    assert_eq!(v[0]["Host"], "node");
    assert_eq!(v[0]["Header"][0], "name");
    assert_eq!(v[0]["Tabular"][0][0], "node");

    let host = d.ok("host");
    assert!(host.starts_with("host | name | cpus |"), "{host}");

    let out = d.e("frobnicate now");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "E: no such command: `frobnicate` (try `help`)"
    );

    // Go-style and GNU-style flags reach the same daemon.
    let out = mm(&bus.address, &["--e", "echo", "hi"]);
    assert_eq!(stdout(&out), "hi");
}

#[test]
fn sessions_belong_to_one_connection() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    // Each -e is its own connection: a setting does not leak to the next.
    d.ok(".json true");
    assert_eq!(d.ok("echo plain"), "plain");
    // One -attach connection runs a whole script in one session.
    let out = attach(
        &bus.address,
        &[],
        ".alias hi=echo hello\nhi world\n.annotate false\n.annotate\n",
    );
    assert!(out.status.success());
    assert_eq!(stdout(&out), "hello world\nfalse");
}

#[test]
fn busctl_exec_properties_and_introspection() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let busctl = |args: &[&str]| {
        let o = Command::new("busctl")
            .arg(format!("--address={}", bus.address))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "busctl {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let obj = [
        "org.minimega.Minimega1",
        "/org/minimega/Minimega1",
        "org.minimega.Minimega1",
    ];
    let out = busctl(&[&["call"][..], &obj[..], &["Exec", "s", "version"][..]].concat());
    assert!(
        out.starts_with(&format!(
            "sa(sss)s \"minimega {}\" 1 \"node\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    assert_eq!(
        busctl(&[&["get-property"][..], &obj[..], &["Hostname"][..]].concat()),
        "s \"node\""
    );
    assert_eq!(
        busctl(&[&["get-property"][..], &obj[..], &["VmCount"][..]].concat()),
        "u 0"
    );
    assert_eq!(
        busctl(&[&["get-property"][..], &obj[..], &["MeshSize"][..]].concat()),
        "u 1"
    );
    let v = busctl(&[&["get-property"][..], &obj[..], &["Version"][..]].concat());
    assert_eq!(v, format!("s \"{}\"", env!("CARGO_PKG_VERSION")));
    let intro = busctl(&["introspect", obj[0], obj[1]]);
    for name in [
        ".Exec",
        ".Complete",
        ".Version",
        ".Hostname",
        ".MeshSize",
        ".VmCount",
        ".Peers",
        ".VmStateChanged",
        ".PeerJoined",
        ".PeerLeft",
    ] {
        assert!(intro.contains(name), "introspection lacks {name}:\n{intro}");
    }
    let out = busctl(&[&["call"][..], &obj[..], &["Complete", "s", "vers"][..]].concat());
    assert_eq!(out, "as 1 \"version\"");
    drop(d);
}

#[test]
fn policy_refuses_other_users_but_lets_them_read() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "busctl",
            ])
            .arg(format!("--address={}", bus.address))
            .args(args)
            .output()
            .unwrap()
    };
    let obj = [
        "org.minimega.Minimega1",
        "/org/minimega/Minimega1",
        "org.minimega.Minimega1",
    ];
    let started = Instant::now();
    let o = as_nobody(&[&["call"][..], &obj[..], &["Exec", "s", "version"][..]].concat());
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Access denied") || stderr(&o).contains("AccessDenied"),
        "{}",
        stderr(&o)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused call must not hang"
    );
    let o = as_nobody(&[&["get-property"][..], &obj[..], &["Version"][..]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = as_nobody(&["introspect", obj[0], obj[1]]);
    assert!(o.status.success(), "{}", stderr(&o));
    drop(d);
}

#[test]
fn no_daemon_is_one_line_within_a_second() {
    let bus = Bus::start();
    let started = Instant::now();
    let out = mm(&bus.address, &["-e", "version"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("not running") && err.contains("systemctl start minimega"),
        "{err}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // No bus at all: still one line, still fast.
    let started = Instant::now();
    let out = mm("unix:path=/nonexistent/bus", &["-e", "version"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn second_daemon_on_the_same_base_is_refused() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let out = Command::new(BIN)
        .args([
            "-base",
            d.base.to_str().unwrap(),
            "-port",
            &free_port().to_string(),
            "-nostdin",
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("another minimega (pid {})", d.pid())),
        "{err}"
    );
}

#[test]
fn a_base_directory_that_is_not_ours_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new("untrusted");
    let start = |base: &std::path::Path| {
        let out = Command::new(BIN)
            .args(["-base", base.to_str().unwrap(), "-nostdin", "-bus", "none"])
            .args(["-port", &free_port().to_string(), "-hostname", "h"])
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap();
        assert!(!out.status.success(), "started on {}", base.display());
        stderr(&out)
    };
    let empty = |dir: &std::path::Path| std::fs::read_dir(dir).unwrap().count() == 0;

    let open = s.path.join("open");
    std::fs::create_dir(&open).unwrap();
    set_mode(&open, 0o777);
    let e = start(&open);
    assert!(
        e.contains(&format!(
            "refusing base directory {0}: {0} is writable by others (mode 0777)",
            open.display()
        )),
        "{e}"
    );
    assert!(empty(&open), "nothing was made in it");

    // Another user's, as a /tmp/minimega made first by someone else is.
    let theirs = s.path.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    set_mode(&theirs, 0o700);
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let e = start(&theirs);
    assert!(
        e.contains("is owned by uid 65534, not by this daemon's user"),
        "{e}"
    );
    assert!(empty(&theirs));

    // A link someone else made, to a directory that would do.
    let good = s.path.join("good");
    std::fs::create_dir(&good).unwrap();
    set_mode(&good, 0o700);
    let link = s.path.join("link");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
    let e = start(&link);
    assert!(e.contains("is a symbolic link owned by uid 65534"), "{e}");
    assert!(empty(&good));

    // One the daemon makes itself is private: 0700, or 0750 with the
    // group that may use the command socket.
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let mode = std::fs::metadata(&d.base).unwrap().permissions().mode() & 0o777;
    assert!(mode == 0o700 || mode == 0o750, "{mode:o}");
}

#[test]
fn read_takes_regular_files_of_bounded_size_and_never_echoes_them() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    d.ok("version");
    let peak = proc_kib(d.pid(), "VmHWM");
    let o = d.e("read /dev/zero");
    assert_eq!(stdout(&o), "E: cannot read /dev/zero: not a regular file");

    let big = d.scratch.path.join("big.mm");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let o = d.e(&format!("read {}", big.display()));
    assert_eq!(
        stdout(&o),
        format!(
            "E: cannot read {}: 2147483648 bytes, more than the 16777216-byte limit of a command file",
            big.display()
        )
    );

    let shadow = d.scratch.path.join("shadow");
    std::fs::write(&shadow, "root:$6$notreallyahash:19000:0:99999:7:::\n").unwrap();
    let o = d.e(&format!("read {}", shadow.display()));
    assert_eq!(
        stdout(&o),
        format!(
            "E: {}: line 1: not a valid command (see help)",
            shadow.display()
        )
    );
    let grown = proc_kib(d.pid(), "VmHWM").saturating_sub(peak);
    assert!(
        grown < 32 << 10,
        "the daemon's peak memory grew {grown} KiB"
    );
}

#[test]
fn sigterm_is_a_clean_exit() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus);
    let status = d.stop();
    assert!(status.success(), "{status}");
    assert!(d.log_text().contains("shutting down"));
}

#[test]
fn bad_flags_and_config_name_the_problem() {
    let out = Command::new(BIN).args(["-bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--bogus"), "{}", stderr(&out));
    let s = Scratch::new("cfg");
    let cfg = s.path.join("m.toml");
    std::fs::write(&cfg, "port = \"nine\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["-config", cfg.to_str().unwrap(), "-nostdin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("m.toml"), "{}", stderr(&out));
}

/// Polls a tmux pane until it shows `want`.
fn pane_shows(session: &str, want: &str) -> String {
    wait_for(
        &format!("`{want}` in the -attach terminal"),
        Duration::from_secs(20),
        || {
            let o = Command::new("tmux")
                .args(["capture-pane", "-p", "-t", session])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            text.contains(want).then_some(text)
        },
    )
}

#[test]
fn attach_on_a_terminal_edits_completes_and_keeps_the_session() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus);
    let session = format!("mmattach{}", std::process::id());
    let ok = Command::new("tmux")
        .args(["new-session", "-d", "-x", "160", "-y", "40", "-s", &session])
        .arg(format!(
            "env DBUS_SYSTEM_BUS_ADDRESS={} {BIN} -attach",
            bus.address
        ))
        .status()
        .unwrap();
    assert!(ok.success());
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    let _kill = Kill(session.clone());
    let keys = |k: &[&str]| {
        assert!(Command::new("tmux")
            .args(["send-keys", "-t", &session])
            .args(k)
            .status()
            .unwrap()
            .success());
    };
    pane_shows(&session, "minimega$");
    // Tab completes from the command table.
    keys(&["vers", "Tab"]);
    pane_shows(&session, "minimega$ version");
    keys(&["Enter"]);
    pane_shows(&session, &format!("minimega {}", env!("CARGO_PKG_VERSION")));
    // One connection, one session: a setting persists to the next line.
    keys(&[".headers false", "Enter"]);
    keys(&[".headers", "Enter"]);
    pane_shows(&session, "\nfalse");
    // History: Up recalls the previous line.
    keys(&["Up", "Enter"]);
    let text = pane_shows(
        &session,
        "minimega$ .headers\nfalse\nminimega$ .headers\nfalse",
    );
    assert!(!text.contains("E: "), "{text}");
}

#[test]
fn config_file_settings_apply_and_flags_win() {
    let bus = Bus::start();
    let s = Scratch::new("cfgfile");
    let cfg = s.path.join("minimega.toml");
    let logfile = s.path.join("mm.log");
    std::fs::write(
        &cfg,
        format!(
            "hostname = \"fromfile\"\ncontext = \"lab\"\nlevel = \"debug\"\nlogfile = \"{}\"\nport = 1\n",
            logfile.display()
        ),
    )
    .unwrap();
    // -port from the harness overrides the file's port 1 (which would fail).
    let d = Daemon::start_with(
        &bus,
        DaemonOpts {
            name: "cfg",
            config: Some(cfg),
            ..Default::default()
        },
    );
    assert_eq!(d.ok(".annotate false .columns name host"), "name\nfromfile");
    let log = std::fs::read_to_string(&logfile).unwrap();
    assert!(
        log.contains("context=lab") && log.contains("ready"),
        "{log}"
    );
}
