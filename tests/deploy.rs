//! `deploy launch node[1-3]` end to end on the test bed: a head node with
//! the package installed, three fresh nodes with sshd and the head's key,
//! and the nodes joining the head's mesh. Then the refusals: an unknown
//! host key, a changed host key, an unreachable host.

mod common;

use common::testbed::Testbed;
use std::time::{Duration, Instant};

/// Builds the packages once (make package) and returns the .deb path.
fn deb() -> String {
    let root = common::project_root();
    let out = std::process::Command::new("make")
        .arg("-C")
        .arg(&root)
        .arg("package")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make package: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dist = root.join("dist");
    let deb = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb in dist/");
    deb.display().to_string()
}

/// A deploy command's table (errors included) as `-e` prints it.
fn run(head: &common::testbed::Node, cmd: &str) -> String {
    let o = head.sh(&format!("minimega -e .annotate false {cmd}"));
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn deploy_launch_installs_starts_and_meshes_three_nodes() {
    let deb = deb();
    let dist = std::path::Path::new(&deb)
        .parent()
        .unwrap()
        .display()
        .to_string();
    // node5 runs no systemd at all: sshd alone, as on some compute nodes.
    let bed = Testbed::boot_mixed(
        &["head", "node1", "node2", "node3", "node4", "node5"],
        &["node5"],
    );
    let head = bed.node("head");
    // A cluster network with no default route (minimega's 255.255.255.255
    // is unreachable there): the nodes below find each other by
    // discovery alone, on their interface's own broadcast address.
    for n in ["head", "node1", "node2", "node3"] {
        assert_eq!(bed.node(n).ok("ip route show default"), "", "{n}");
    }
    head.ok(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q {deb} >/dev/null"
    ));
    head.ok("systemctl is-active minimega || systemctl start minimega");
    for n in ["node1", "node2", "node3", "node4", "node5"] {
        bed.authorize("head", n);
    }
    // The head trusts node1..3's host keys; node4's is unknown to it.
    head.ok("ssh-keyscan -t ed25519 node1 node2 node3 node5 2>/dev/null >> /root/.ssh/known_hosts");
    head.ok(&format!("minimega -e deploy packages {dist}"));

    let started = Instant::now();
    let rows = head.ok("minimega -e .annotate false deploy launch node[1-3]");
    let launched = started.elapsed();
    for n in ["node1", "node2", "node3"] {
        let row = rows
            .lines()
            .find(|l| l.starts_with(n))
            .unwrap_or_else(|| panic!("no row for {n}:\n{rows}"));
        assert!(
            row.contains("installed") && row.contains(env!("CARGO_PKG_VERSION")),
            "{rows}"
        );
    }
    head.wait_ok(
        "minimega -e .annotate false .columns mesh mesh status | grep -qx 4",
        Duration::from_secs(30),
    );
    let formed = started.elapsed();
    eprintln!("deploy launch node[1-3]: rows after {launched:?}, mesh size 4 after {formed:?} (target < 15 s)");

    let status = head.ok("minimega -e mesh status");
    let mut lines = status.lines();
    assert!(lines.next().unwrap().starts_with("host"), "{status}");
    assert!(lines.next().unwrap().starts_with("head"), "{status}");
    let list = head.ok("minimega -e mesh list");
    for n in ["head", "node1", "node2", "node3"] {
        assert!(
            list.lines().any(|l| l == n),
            "`{n}` is not a node of:\n{list}"
        );
        assert!(
            list.contains(&format!(" |--{n}")),
            "nobody links to `{n}`:\n{list}"
        );
    }
    let answers = head.ok("minimega -e .compress false mesh send all version");
    for n in ["node1", "node2", "node3"] {
        assert!(
            answers.contains(&format!("{n}: minimega {}", env!("CARGO_PKG_VERSION"))),
            "{answers}"
        );
    }
    for n in ["node1", "node2", "node3"] {
        let node = bed.node(n);
        assert_eq!(node.ok("systemctl is-active minimega"), "active");
        assert_eq!(node.ok("stat -c %a /etc/minimega/mesh.key"), "600");
        assert_eq!(
            node.ok("sha256sum < /etc/minimega/mesh.key"),
            head.ok("sha256sum < /etc/minimega/mesh.key")
        );
    }

    // Again: nothing to do, and it says so.
    let again = head.ok("minimega -e .annotate false deploy launch node1");
    assert!(again.contains("up to date"), "{again}");

    // Refusals, each its own row with the real cause; nothing left running.
    let out = head.sh("minimega -e .annotate false deploy launch node4");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("unknown host key for node4"), "{text}");
    assert!(!bed
        .node("node4")
        .sh("test -e /usr/bin/minimega")
        .status
        .success());
    assert_eq!(out.status.code(), Some(1), "a failed host fails -e: {text}");
    let wrong = bed
        .node("node1")
        .ok("cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f1,2");
    head.ok(&format!("echo 'node4 {wrong}' >> /root/.ssh/known_hosts"));
    let out = head.sh("minimega -e .annotate false deploy launch node4");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("HOST KEY CHANGED for node4"), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    // One host fine, one failed: both rows, then the error, and exit 1.
    let out = head.sh("minimega -e .annotate false deploy launch node1,nosuchnode");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(lines[0].starts_with("host "), "{text}");
    assert!(
        lines[1].starts_with("node1 ") && lines[1].contains("up to date"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("nosuchnode ")
            && lines[2].contains("failed")
            && lines[2].contains("cannot connect"),
        "{text}"
    );
    assert_eq!(
        lines[3], "E: deploy launch failed on 1 of 2 hosts: nosuchnode",
        "{text}"
    );
    assert!(
        bed.node("node4")
            .sh("systemctl is-active --quiet minimega")
            .status
            .code()
            != Some(0)
    );

    // With `accept-new`, node4's key is learned; then each later failure
    // is its own row, and leaves nothing of ours running there.
    let node4 = bed.node("node4");
    head.ok("sed -i '/^node4 /d' /root/.ssh/known_hosts");
    head.ok("minimega -e deploy hostkeys accept-new");
    node4.ok("mv /root/.ssh/authorized_keys /root/.ssh/authorized_keys.off");
    let text = run(head, "deploy launch node4");
    assert!(
        text.contains("authentication refused for root@node4"),
        "{text}"
    );
    head.ok("grep -q '^node4 ' /root/.ssh/known_hosts");
    node4.ok("mv /root/.ssh/authorized_keys.off /root/.ssh/authorized_keys");

    // A daemon that cannot start (a bad flag) is undone: no package, no
    // service, no process.
    head.ok("minimega -e deploy flags -level shouting");
    let text = run(head, "deploy launch node4");
    assert!(
        text.contains("failed") && text.contains("the service did not start"),
        "{text}"
    );
    assert!(text.contains("invalid log level"), "{text}");
    assert!(!node4.sh("test -e /usr/bin/minimega").status.success());
    assert!(!node4.sh("pgrep -x minimega").status.success());
    head.ok("minimega -e clear deploy flags");

    // No package for the node: the running binary goes, as minimega does,
    // with the unit and the policy, and the node joins.
    head.ok("mkdir -p /var/tmp/no-packages && minimega -e deploy packages /var/tmp/no-packages");
    let text = run(head, "deploy launch node4");
    assert!(text.contains("installed"), "{text}");
    assert_eq!(node4.ok("systemctl is-active minimega"), "active");
    node4.ok("test -x /usr/local/bin/minimega && ! test -e /usr/bin/minimega");
    head.wait_ok(
        "minimega -e .annotate false .columns mesh mesh status | grep -qx 5",
        Duration::from_secs(60),
    );
    let text = run(head, "deploy remove node4");
    assert!(text.contains("removed"), "{text}");
    node4.ok("! test -e /usr/local/bin/minimega && ! test -e /etc/systemd/system/minimega.service");
    head.ok(&format!("minimega -e deploy packages {dist}"));

    // A login other than root, through sudo.
    let node2 = bed.node("node2");
    node2.ok("useradd -m -s /bin/sh ops && chmod 755 /home /home/ops \
         && echo 'ops ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/ops");
    let key = head.ok("cat /root/.ssh/id_ed25519.pub");
    node2.ok(&format!(
        "install -d -m 700 -o ops -g ops /home/ops/.ssh && echo '{key}' > /home/ops/.ssh/authorized_keys && chown ops:ops /home/ops/.ssh/authorized_keys"
    ));
    head.ok("minimega -e deploy user ops");
    let text = run(head, "deploy launch node2");
    assert!(
        text.contains("failed") && text.contains("logged in as ops without `deploy sudo true`"),
        "{text}\nnode2's sshd:\n{}",
        node2.ok("journalctl -u ssh --no-pager -n 30 || true")
    );
    // The failed attempt left node2's working daemon alone.
    assert_eq!(node2.ok("systemctl is-active minimega"), "active");
    head.ok("minimega -e deploy sudo true");
    let text = run(head, "deploy launch node2");
    assert!(text.contains("up to date"), "{text}");
    head.ok("minimega -e clear deploy");

    // Without systemd: the binary and the key go, and the daemon runs
    // under nohup with the head's flags, as minimega deploys; it joins.
    let node5 = bed.node("node5");
    let text = run(head, "deploy launch node5");
    assert!(text.contains("installed"), "{text}");
    node5.ok("test -x /usr/local/bin/minimega && pgrep -x minimega");
    assert!(node5
        .ok("tr '\\0' ' ' < /proc/$(pgrep -xo minimega)/cmdline")
        .contains("-port 9000"));
    head.wait_ok(
        "minimega -e .annotate false .columns mesh mesh status | grep -qx 5",
        Duration::from_secs(60),
    );
    assert!(run(head, "deploy launch node5").contains("up to date"));
    let text = run(head, "deploy remove node5");
    assert!(text.contains("removed"), "{text}");
    assert!(!node5.sh("pgrep -x minimega").status.success());
    node5.ok("! test -e /usr/local/bin/minimega && ! test -e /etc/minimega/mesh.key");

    // Remove undoes it, and the mesh notices.
    let text = head.ok("minimega -e .annotate false deploy remove node3");
    assert!(text.contains("removed"), "{text}");
    assert!(!bed
        .node("node3")
        .sh("test -e /usr/bin/minimega")
        .status
        .success());
    head.wait_ok(
        "minimega -e .annotate false .columns mesh mesh status | grep -qx 3",
        Duration::from_secs(60),
    );
}
