//! The container monitor run directly as root, without a daemon: this
//! test does the daemon's part (a spec, a memory cgroup with a limit, a
//! QMP client) and looks at the container from the host and through its
//! console.
//!
//! Run: `cargo test --test container_shim` as root.

mod common;

use common::container::*;
use common::Scratch;
use minimega::container::spec::{NicSpec, Spec};
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

const LIFE_INIT: &str = r#"#!/bin/sh
echo started > /vol/started
hostname > /vol/hostname
ls /dev/fifos > /vol/fifos
cat /etc/fromhost > /vol/fromhost
cat /outside/v2/marker > /vol/marker2
echo written > /written-in-root
grep CapBnd /proc/self/status > /vol/caps
[ -S /cc ] && echo socket > /vol/cc
(echo x > /proc/sys/kernel/hostname) 2>/dev/null || echo ro > /vol/procsys
# h: sysrq's harmless help, should the write get through.
(echo h > /proc/sysrq-trigger) 2>/dev/null || echo ro > /vol/sysrq
[ -s /proc/kcore ] || echo masked > /vol/kcore
mknod /tmp/mem c 1 1 && { head -c1 /tmp/mem >/dev/null 2>&1 || echo denied > /vol/devmem; }
(i=0; while true; do i=$((i+1)); echo $i >> /vol/count; sleep 0.1; done) &
echo "init up"
while read line; do echo "echo:$line"; done
"#;

#[test]
fn lifecycle_freeze_console_volumes_nic_snapshot_reconnect_quit() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new("ct-life");
    let t = tag("l");
    let mut sp = spec(&s, &t, vec!["/init"]);
    filesystem(&sp.filesystem, LIFE_INIT);
    let vol = s.path.join("vol");
    std::fs::create_dir(&vol).unwrap();
    let conf = s.path.join("fromhost.conf");
    std::fs::write(&conf, "hello from the host\n").unwrap();
    // A symlink to a host path: the mount point made through it is made
    // inside the container's root, never on the host.
    let escaped = s.path.join("escaped");
    std::os::unix::fs::symlink(&escaped, sp.filesystem.join("outside")).unwrap();
    let vol2 = s.path.join("vol2");
    std::fs::create_dir(&vol2).unwrap();
    std::fs::write(vol2.join("marker"), "through the symlink\n").unwrap();
    let before = tree_listing(&sp.filesystem);
    sp.volumes = vec![
        ("/vol".into(), vol.clone()),
        ("/etc/fromhost".into(), conf),
        ("/outside/v2".into(), vol2),
    ];
    sp.fifos = 2;
    // A NIC: the daemon's veth pair, made here.
    let host_end = format!("{t}a");
    let peer = format!("{t}b");
    let _ = sh(&format!("ip link del {host_end}"));
    assert!(
        sh(&format!(
            "ip link add {host_end} type veth peer name {peer}"
        ))
        .0
    );
    sp.nics = vec![NicSpec {
        peer: peer.clone(),
        name: "eth0".into(),
        mac: "02:00:00:aa:bb:cc".into(),
    }];
    let cg = MemCgroup::new(&t, 256);
    let mut shim = Shim::start(&sp, &cg);
    // Nothing is made before the first QMP client (the daemon connects
    // only once the monitor is in the VM's cgroup).
    std::thread::sleep(Duration::from_millis(300));
    assert!(!sh("ip netns list").1.contains(&t));
    assert!(!Path::new("/sys/fs/cgroup/freezer").join(&t).exists());
    for f in ["console", "cc", "cc-agent", "fifo0", "fifo1"] {
        assert!(
            sp.vmdir.join(f).exists(),
            "{f} missing before the first client"
        );
    }

    let (mut q, greeting) =
        Qmp::connect(&shim.qmp).unwrap_or_else(|| panic!("no greeting: {}", shim.log()));
    assert!(greeting["QMP"]["capabilities"].is_array());
    assert_eq!(q.exec("qmp_capabilities")["return"], json!({}));
    assert_eq!(q.exec("query-status")["return"]["status"], "paused");

    // Launched frozen: init has not run.
    std::thread::sleep(Duration::from_millis(800));
    assert!(!vol.join("started").exists(), "init ran before cont");
    let link = sh(&format!("ip -n {t} link show eth0")).1;
    assert!(
        link.contains("02:00:00:aa:bb:cc"),
        "eth0 in the container: {link}"
    );

    assert_eq!(q.exec("cont")["return"], json!({}));
    assert_eq!(q.event()["event"], "RESUME");
    assert_eq!(q.exec("query-status")["return"]["running"], true);
    wait_until("init's start", 10, || vol.join("started").exists());
    wait_until("init's writes", 10, || lines(&vol.join("fifos")) == 2);
    assert_eq!(
        std::fs::read_to_string(vol.join("hostname"))
            .unwrap()
            .trim(),
        format!("{t}-host")
    );
    assert_eq!(
        std::fs::read_to_string(vol.join("fifos")).unwrap(),
        "fifo0\nfifo1\n"
    );
    assert_eq!(
        std::fs::read_to_string(vol.join("fromhost")).unwrap(),
        "hello from the host\n"
    );

    // Docker's capabilities plus NET_ADMIN; no kernel settings or raw
    // memory from inside; the cc socket is there.
    wait_until("the checks", 10, || vol.join("devmem").exists());
    assert_eq!(
        std::fs::read_to_string(vol.join("caps")).unwrap(),
        "CapBnd:\t00000000a80435fb\n"
    );
    assert_eq!(
        std::fs::read_to_string(vol.join("procsys")).unwrap(),
        "ro\n"
    );
    assert_eq!(std::fs::read_to_string(vol.join("cc")).unwrap(), "socket\n");
    assert_eq!(std::fs::read_to_string(vol.join("sysrq")).unwrap(), "ro\n");
    assert_eq!(
        std::fs::read_to_string(vol.join("kcore")).unwrap(),
        "masked\n"
    );

    // cc: bytes both ways between the daemon's end and the agent's (the
    // agent's end is /cc inside; dialled from here, it is the same socket).
    let mut daemon_end = UnixStream::connect(sp.vmdir.join("cc")).unwrap();
    let mut agent_end = UnixStream::connect(sp.vmdir.join("cc-agent")).unwrap();
    for s in [&daemon_end, &agent_end] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    daemon_end.write_all(b"to-agent").unwrap();
    let mut b = [0u8; 8];
    agent_end.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"to-agent");
    agent_end.write_all(b"to-daemn").unwrap();
    daemon_end.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"to-daemn");
    // One side leaves: the other is closed too.
    drop(daemon_end);
    assert_eq!(agent_end.read(&mut b).unwrap(), 0);

    // The counter stops while stopped and goes on after cont.
    wait_until("the counter", 10, || lines(&vol.join("count")) > 3);
    assert_eq!(q.exec("stop")["return"], json!({}));
    assert_eq!(q.event()["event"], "STOP");
    assert_eq!(q.exec("query-status")["return"]["status"], "paused");
    let frozen = lines(&vol.join("count"));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        lines(&vol.join("count")),
        frozen,
        "the counter ran while stopped"
    );
    q.exec("cont");
    assert_eq!(q.event()["event"], "RESUME");
    wait_until("the counter to go on", 10, || {
        lines(&vol.join("count")) > frozen + 2
    });

    // The console: init's output, and input reaching init.
    let mut con = UnixStream::connect(sp.vmdir.join("console")).unwrap();
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    con.write_all(b"ping-42\n").unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(10);
    while !seen.contains("echo:ping-42") && Instant::now() < end {
        if let Ok(n) = con.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(seen.contains("echo:ping-42"), "console said {seen:?}");
    let log = std::fs::read_to_string(sp.vmdir.join("console.log")).unwrap();
    assert!(
        log.contains("init up") && log.contains("echo:ping-42"),
        "console.log: {log:?}"
    );

    // A client leaving and a new one: a fresh greeting, still running.
    drop(q);
    let (mut q, g) = Qmp::connect(&shim.qmp).expect("a second greeting");
    assert!(g.get("QMP").is_some());
    q.exec("qmp_capabilities");
    assert_eq!(q.exec("query-status")["return"]["status"], "running");
    assert!(shim.child.try_wait().unwrap().is_none());
    assert_eq!(q.exec("bogus")["error"]["class"], "CommandNotFound");

    // The root was an overlay: the file system is as it was.
    assert_eq!(tree_listing(&sp.filesystem), before);
    assert!(sp.vmdir.join("upper/written-in-root").exists());

    assert_eq!(q.exec("quit")["return"], json!({}));
    assert_eq!(shim.wait_exit(20), 0, "{}", shim.log());
    shim.assert_clean();
    // The veth went with the namespace.
    wait_until("the veth's removal", 10, || {
        !sh(&format!("ip link show {host_end}")).0
    });
}

const HOG_INIT: &str = r#"#!/bin/sh
echo started > /vol/started
sh -c 'x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done'
echo "hog died: $?" > /vol/hog
while [ ! -e /vol/exit ]; do sleep 0.1; done
echo bye > /vol/bye
"#;

#[test]
fn memory_hog_dies_monitor_survives_and_init_exit_ends_it() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new("ct-oom");
    let t = tag("m");
    let mut sp = spec(&s, &t, vec!["/init"]);
    filesystem(&sp.filesystem, HOG_INIT);
    let vol = s.path.join("vol");
    std::fs::create_dir(&vol).unwrap();
    sp.volumes = vec![("/vol".into(), vol.clone())];
    sp.snapshot = false;
    let cg = MemCgroup::new(&t, 64);
    let mut shim = Shim::start(&sp, &cg);
    let (mut q, _) =
        Qmp::connect(&shim.qmp).unwrap_or_else(|| panic!("no greeting: {}", shim.log()));
    q.exec("qmp_capabilities");
    q.exec("cont");
    wait_until("the hog's death", 60, || vol.join("hog").exists());
    let hog = std::fs::read_to_string(vol.join("hog")).unwrap();
    assert!(hog.contains("137") || cg.0.is_none(), "hog: {hog}");
    assert!(
        shim.child.try_wait().unwrap().is_none(),
        "the monitor died: {}",
        shim.log()
    );
    assert_eq!(q.exec("query-status")["return"]["status"], "running");
    // Init exits by itself: the monitor cleans up and exits.
    std::fs::write(vol.join("exit"), "").unwrap();
    assert_eq!(shim.wait_exit(20), 0, "{}", shim.log());
    assert!(vol.join("bye").exists());
    shim.assert_clean();
}

fn assert_fails(sp: &Spec, want: &str) {
    let cg = MemCgroup::new(&sp.cgroup_leaf, 256);
    let mut shim = Shim::start(sp, &cg);
    assert!(
        Qmp::connect(&shim.qmp).is_none(),
        "greeted a broken container"
    );
    assert_eq!(shim.wait_exit(20), 1);
    let log = shim.log();
    let last = log.lines().last().unwrap_or("");
    assert!(last.contains(want), "last line {last:?}, want {want:?}");
    shim.assert_clean();
}

#[test]
fn bad_input_is_one_clear_line_and_nothing_left() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new("ct-bad");
    let t = tag("b");
    let mut sp = spec(&s, &t, vec!["/sbin/nope"]);
    filesystem(&sp.filesystem, "#!/bin/sh\nsleep 1000\n");
    assert_fails(
        &sp,
        "init /sbin/nope: no such file in the container's file system",
    );

    sp.init = vec!["/init".into()];
    let pre = s.path.join("preinit");
    std::fs::write(
        &pre,
        "#!/bin/sh\n[ \"$1\" = \"$CONTAINER_ROOT\" ] && [ -d \"$1/bin\" ] && exit 3\nexit 4\n",
    )
    .unwrap();
    common::set_mode(&pre, 0o755);
    sp.preinit = pre.display().to_string();
    assert_fails(
        &sp,
        &format!("preinit {} failed: exit status 3", pre.display()),
    );

    sp.preinit = String::new();
    let missing = s.path.join("missing");
    sp.volumes = vec![("/data".into(), missing.clone())];
    assert_fails(
        &sp,
        &format!(
            "volume source {}: no such file or directory",
            missing.display()
        ),
    );
}

#[test]
fn a_killed_monitor_takes_its_container_along_and_a_new_one_starts() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new("ct-kill");
    let t = tag("k");
    let mut sp = spec(&s, &t, vec!["/init"]);
    filesystem(
        &sp.filesystem,
        "#!/bin/sh\necho started > /vol/started\nwhile true; do echo x >> /vol/count; sleep 0.1; done\n",
    );
    let vol = s.path.join("vol");
    std::fs::create_dir(&vol).unwrap();
    sp.volumes = vec![("/vol".into(), vol.clone())];
    let cg = MemCgroup::new(&t, 256);
    let mut shim = Shim::start(&sp, &cg);
    let (mut q, _) =
        Qmp::connect(&shim.qmp).unwrap_or_else(|| panic!("no greeting: {}", shim.log()));
    q.exec("cont");
    wait_until("init's start", 10, || vol.join("started").exists());
    // Killed while the payload is frozen: the next monitor of this VM
    // thaws the leftover so it dies.
    q.exec("stop");
    shim.child.kill().unwrap();
    shim.child.wait().unwrap();
    drop(q);
    // What the killed monitor could not remove: its cgroups, holding the
    // frozen payload, and its network namespace.
    assert!(Path::new("/sys/fs/cgroup/freezer").join(&t).exists());
    assert!(sh("ip netns list").1.contains(&t));
    // No cleanup by the test: the next monitor of this VM does it.
    std::mem::forget(shim);
    let n = lines(&vol.join("count"));
    assert!(n > 0);

    let _ = std::fs::remove_file(vol.join("started"));
    let mut shim = Shim::start(&sp, &cg);
    let (mut q, _) =
        Qmp::connect(&shim.qmp).unwrap_or_else(|| panic!("no greeting: {}", shim.log()));
    // The old payload is gone (thawed, it would count on), the new one
    // waits for cont.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lines(&vol.join("count")), n, "the old payload lives on");
    q.exec("cont");
    wait_until("init's start", 10, || vol.join("started").exists());
    // Quitting a paused container.
    q.exec("stop");
    assert_eq!(q.event()["event"], "STOP");
    q.exec("quit");
    assert_eq!(shim.wait_exit(20), 0, "{}", shim.log());
    shim.assert_clean();
}

#[test]
fn our_cc_agent_reaches_the_daemon_side_through_the_relay() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new("ct-cc");
    let t = tag("c");
    let sp = spec(&s, &t, vec!["/init"]);
    // The script copies the agent and, for a dynamic build, its libraries.
    let script = common::project_root().join("scripts/container-fs.sh");
    let miniccc = env!("CARGO_BIN_EXE_miniccc");
    let (ok, out) = sh(&format!(
        "sh {} {} {miniccc}",
        script.display(),
        sp.filesystem.display()
    ));
    assert!(ok, "container-fs.sh: {out}");
    // -uuid: this host may have no DMI for the agent to read it from.
    let init = format!(
        "#!/bin/sh\n/usr/bin/miniccc -family unix -parent /cc -uuid {} &\nexec sleep 1000\n",
        sp.uuid
    );
    std::fs::write(sp.filesystem.join("init"), init).unwrap();
    let cg = MemCgroup::new(&t, 512);
    let mut shim = Shim::start(&sp, &cg);
    let (mut q, _) =
        Qmp::connect(&shim.qmp).unwrap_or_else(|| panic!("no greeting: {}", shim.log()));
    let mut daemon_end = UnixStream::connect(sp.vmdir.join("cc")).unwrap();
    daemon_end
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    q.exec("cont");
    let mut b = [0u8; 3];
    daemon_end.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"RON", "the agent's handshake");
    q.exec("quit");
    assert_eq!(shim.wait_exit(20), 0, "{}", shim.log());
    shim.assert_clean();
}

#[test]
fn sigterm_cleans_up_like_quit() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new("ct-term");
    let t = tag("t");
    let sp = spec(&s, &t, vec!["/init"]);
    filesystem(&sp.filesystem, "#!/bin/sh\nexec sleep 1000\n");
    let cg = MemCgroup::new(&t, 256);
    let mut shim = Shim::start(&sp, &cg);
    let (mut q, _) =
        Qmp::connect(&shim.qmp).unwrap_or_else(|| panic!("no greeting: {}", shim.log()));
    q.exec("cont");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(shim.child.id() as i32, libc::SIGTERM) };
    assert_eq!(shim.wait_exit(20), 0, "{}", shim.log());
    shim.assert_clean();
}
