//! Containers under real systemd, in a test-bed node: each is a scope
//! unit in minimega.slice that `systemctl status` shows by name, frozen
//! and thawed (`vm stop`/`vm start`: a counter inside stops and resumes),
//! and gone with its network namespace when killed.

mod common;

use common::testbed::Testbed;
use std::time::Duration;

const INIT: &str =
    "#!/bin/sh\\nminiccc -family unix -parent /cc -level error &\\nn=0\\nwhile true; do n=$((n+1)); echo $n > /data/count; sleep 0.2; done\\n";

#[test]
fn containers_are_scope_units_frozen_and_thawed() {
    let bed = Testbed::boot(&["node1"]);
    let n = bed.node("node1");
    n.install_build();
    n.ok("systemctl start minimega");
    let root = common::project_root();
    n.ok(&format!(
        "rm -rf /var/tmp/ct && mkdir -p /var/tmp/ct/data /var/tmp/ct/mnt && sh {}/scripts/container-fs.sh /var/tmp/ct/fs {} && printf '{INIT}' > /var/tmp/ct/fs/init && chmod 755 /var/tmp/ct/fs/init",
        root.display(),
        env!("CARGO_BIN_EXE_miniccc"),
    ));
    n.ok("minimega -e vm config filesystem /var/tmp/ct/fs");
    n.ok("minimega -e vm config volume /data /var/tmp/ct/data");
    n.ok("minimega -e vm config memory 64");
    n.ok("minimega -e vm launch container c1");
    let unit = "minimega-minimega-c1.scope";
    let info = n.ok(
        "minimega -e .annotate false .headers false .csv true .columns type,state,unit vm info",
    );
    assert_eq!(info, format!("container,BUILDING,{unit}"));
    let status = n.ok(&format!("systemctl status --no-pager '{unit}' || true"));
    assert!(status.contains("minimega VM c1"), "{status}");
    assert_eq!(
        n.ok(&format!("systemctl show -p Slice --value '{unit}'")),
        "minimega.slice"
    );
    // The container's memory and its monitor's 16 MiB, no QEMU overhead;
    // its cgroup subtree delegated (the monitor freezes a child of it).
    assert_eq!(
        n.ok(&format!("systemctl show -p MemoryMax --value '{unit}'")),
        ((64u64 + 16) << 20).to_string()
    );
    assert_eq!(
        n.ok(&format!("systemctl show -p Delegate --value '{unit}'")),
        "yes"
    );
    // machinectl knows it by name, as a container.
    let machines = n.ok("machinectl list --no-legend || true");
    assert!(machines.contains("minimega-minimega-c1"), "{machines}");
    let count = || -> u64 {
        n.ok("cat /var/tmp/ct/data/count 2>/dev/null || echo 0")
            .trim()
            .parse()
            .unwrap_or(0)
    };
    assert_eq!(count(), 0, "a launched container ran before vm start");
    n.ok("minimega -e vm start c1");
    n.wait_ok(
        "[ \"$(cat /var/tmp/ct/data/count)\" -gt 3 ]",
        Duration::from_secs(60),
    );
    n.ok("minimega -e vm stop c1");
    let a = count();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(count(), a, "a frozen container counted");
    n.ok("minimega -e vm start c1");
    n.wait_ok(
        &format!("[ \"$(cat /var/tmp/ct/data/count)\" -gt {} ]", a + 3),
        Duration::from_secs(60),
    );
    // cc mount: the daemon's own mount namespace is private under the
    // unit (ProtectSystem=), yet the mount is where the node's shells see it.
    assert_ne!(
        n.ok("readlink /proc/$(systemctl show -p MainPID --value minimega)/ns/mnt"),
        n.ok("readlink /proc/1/ns/mnt")
    );
    n.wait_ok(
        "minimega -e .annotate false .headers false .columns cc_active vm info | grep -q true",
        Duration::from_secs(60),
    );
    n.ok("minimega -e cc mount c1 /var/tmp/ct/mnt");
    assert!(n
        .ok("cat /var/tmp/ct/mnt/data/count")
        .parse::<u64>()
        .is_ok());
    n.ok("echo from-the-node > /var/tmp/ct/mnt/data/note");
    assert_eq!(n.ok("cat /var/tmp/ct/data/note"), "from-the-node");
    n.ok("minimega -e clear cc mount");
    assert_eq!(n.ok("grep -c minimega-cc /proc/self/mounts || true"), "0");
    // A daemon restart re-adopts it: same unit, still running.
    n.ok("systemctl restart minimega");
    let info =
        n.ok("minimega -e .annotate false .headers false .csv true .columns state,unit vm info");
    assert_eq!(info, format!("RUNNING,{unit}"));
    n.ok("minimega -e vm kill c1");
    n.wait_ok(
        &format!("! systemctl is-active --quiet '{unit}'"),
        Duration::from_secs(30),
    );
    assert_eq!(n.ok("ls /run/netns | grep -c minimega- || true"), "0");
}

const KEY: &str = "containers-mesh-key-0123456789abcdef";

#[test]
fn containers_are_spread_over_a_mesh_and_driven_from_the_head() {
    let bed = Testbed::mesh_of(&["head", "node2"], KEY);
    let root = common::project_root();
    for n in &["head", "node2"] {
        bed.node(n).ok(&format!(
            "rm -rf /var/tmp/ct && mkdir -p /var/tmp/ct/data /var/tmp/ct/mnt && sh {}/scripts/container-fs.sh /var/tmp/ct/fs {} && printf '{INIT}' > /var/tmp/ct/fs/init && chmod 755 /var/tmp/ct/fs/init",
            root.display(),
            env!("CARGO_BIN_EXE_miniccc"),
        ));
    }
    let head = bed.node("head");
    head.mm("namespace exp vm config filesystem /var/tmp/ct/fs");
    head.mm("namespace exp vm config volume /data /var/tmp/ct/data");
    head.mm("namespace exp vm config memory 64");
    // A namespace's hosts are the other nodes, as minimega's: add the head.
    head.mm("namespace exp ns add-hosts head");
    head.mm("namespace exp vm config schedule head");
    head.mm("namespace exp vm launch container c[1-2]");
    head.mm("namespace exp vm config schedule node2");
    head.mm("namespace exp vm launch container c[3-4]");
    let rows = head.mm(
        ".annotate true .headers false .csv true .columns name,type,state namespace exp vm info",
    );
    let hosts: std::collections::BTreeSet<&str> =
        rows.lines().map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(
        hosts.into_iter().collect::<Vec<_>>(),
        ["head", "node2"],
        "{rows}"
    );
    assert_eq!(rows.lines().count(), 4, "{rows}");
    assert!(
        rows.lines().all(|l| l.ends_with(",container,BUILDING")),
        "{rows}"
    );
    head.mm("namespace exp vm start all");
    for n in &["head", "node2"] {
        bed.node(n).wait_ok(
            "[ \"$(cat /var/tmp/ct/data/count)\" -gt 3 ]",
            Duration::from_secs(60),
        );
    }
    // cc mount of a container on node2, typed on the head: the host that
    // runs the VM mounts it, where that node's shells see it.
    head.wait_ok(
        "minimega -e .annotate false .headers false .columns cc_active .filter name=c3 namespace exp vm info | grep -q true",
        Duration::from_secs(60),
    );
    head.mm("namespace exp cc mount c3 /var/tmp/ct/mnt");
    let node2 = bed.node("node2");
    assert!(node2
        .ok("cat /var/tmp/ct/mnt/data/count")
        .parse::<u64>()
        .is_ok());
    assert_eq!(
        head.ok("grep -c minimega-cc /proc/self/mounts || true"),
        "0"
    );
    let listed = head.mm(".annotate true .headers false .csv true namespace exp cc mount");
    assert!(listed.starts_with("node2,c3,"), "{listed}");
    head.mm("namespace exp clear cc mount c3");
    assert_eq!(
        node2.ok("grep -c minimega-cc /proc/self/mounts || true"),
        "0"
    );
    // cc tunnel across the mesh: typed on the head, node2 (running c3)
    // listens, and c3's agent opens each connection to its web server.
    head.mm("namespace exp cc background httpd -f -p 7000 -h /data");
    head.mm("namespace exp cc tunnel c3 17000 127.0.0.1 7000");
    node2.wait_ok(
        "curl -sf --max-time 5 http://127.0.0.1:17000/count | grep -q '^[0-9]'",
        Duration::from_secs(60),
    );
    let fwd = head.mm(".annotate true .headers false .csv true namespace exp cc tunnel list all");
    assert_eq!(fwd, "node2,c3,1,17000,127.0.0.1,7000");
    head.mm("namespace exp cc tunnel close c3 1");
    assert!(!node2
        .sh("curl -sf --max-time 5 http://127.0.0.1:17000/count")
        .status
        .success());
    head.mm("namespace exp vm kill all");
    head.mm("namespace exp vm flush");
    for n in &["head", "node2"] {
        let node = bed.node(n);
        node.wait_ok(
            "! systemctl list-units --no-legend --plain 'minimega-exp-*' | grep -q scope",
            Duration::from_secs(30),
        );
        assert_eq!(node.ok("ls /run/netns | grep -c minimega- || true"), "0");
    }
}
