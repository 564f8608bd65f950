//! Containers under real systemd, in a test-bed node: each is a scope
//! unit in minimega.slice that `systemctl status` shows by name, frozen
//! and thawed (`vm stop`/`vm start`: a counter inside stops and resumes),
//! and gone with its network namespace when killed.

mod common;

use common::testbed::Testbed;
use std::time::Duration;

const INIT: &str =
    "#!/bin/sh\\nn=0\\nwhile true; do n=$((n+1)); echo $n > /data/count; sleep 0.2; done\\n";

#[test]
fn containers_are_scope_units_frozen_and_thawed() {
    let bed = Testbed::boot(&["node1"]);
    let n = bed.node("node1");
    n.install_build();
    n.ok("systemctl start minimega");
    let root = common::project_root();
    n.ok(&format!(
        "rm -rf /var/tmp/ct && mkdir -p /var/tmp/ct/data && sh {}/scripts/container-fs.sh /var/tmp/ct/fs && printf '{INIT}' > /var/tmp/ct/fs/init && chmod 755 /var/tmp/ct/fs/init",
        root.display()
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
