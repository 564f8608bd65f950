//! Containers beside their first launch: a daemon killed with SIGKILL
//! while twenty run, restarted: all twenty adopted, none duplicated; a
//! process over the memory limit killed while the container's monitor,
//! the other container and the daemon go on; `vm net disconnect` /
//! `connect` and `qos` on a container's NIC (its veth on the switch).

mod common;

use common::container::*;
use common::guest::vm_info;
use common::ovs::Site;
use common::*;
use std::path::Path;
use std::time::Duration;

const COUNTER: &str = r#"#!/bin/sh
n=0
while true; do n=$((n+1)); echo $n > /data/$(hostname).count; sleep 0.2; done
"#;

fn counted(data: &Path, name: &str) -> u64 {
    count(&data.join(format!("{name}.count")))
}

#[test]
fn twenty_containers_outlive_a_daemon_killed_and_are_adopted_once() {
    let site = Site::new("ctcrash");
    let bus = Bus::start();
    let mut d = site.daemon_with(&bus, None, true);
    let base = d.base.clone();
    let _guard = CtGuard(base.clone());
    let scratch = Scratch::new("ctcrash-fs");
    let fs = agent_filesystem(&scratch.path, COUNTER);
    let data = scratch.path.join("data");
    std::fs::create_dir_all(&data).unwrap();
    d.ok(&format!("vm config filesystem {}", fs.display()));
    d.ok(&format!("vm config volume /data {}", data.display()));
    d.ok("vm config memory 64");
    d.ok("vm config net 100");
    d.ok("vm launch container c[1-20]");
    d.ok("vm start all");
    wait_for("every counter", SEEN, || {
        (1..=20)
            .all(|i| counted(&data, &format!("c{i}")) > 1)
            .then_some(())
    });
    let before: Vec<(String, String)> = vm_info(&d)
        .into_iter()
        .map(|r| (r["name"].clone(), r["pid"].clone()))
        .collect();
    assert_eq!(monitors(&base).len(), 20);

    d.crash();
    std::thread::sleep(Duration::from_millis(500));
    // The containers go on without the daemon.
    let c1 = counted(&data, "c1");
    wait_for("c1 to count on", SEEN, || {
        (counted(&data, "c1") > c1).then_some(())
    });

    let d = site.daemon_with(&bus, Some(base.clone()), true);
    let rows = vm_info(&d);
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().all(|r| r["state"] == "RUNNING"), "{rows:?}");
    let after: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["name"].clone(), r["pid"].clone()))
        .collect();
    assert_eq!(after, before, "adopted VMs changed monitors");
    assert_eq!(monitors(&base).len(), 20, "a container was duplicated");
    assert_eq!(netns_of(&d).len(), 20);
    // Still driven: stop freezes an adopted one.
    d.ok("vm stop c2");
    let a = counted(&data, "c2");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(counted(&data, "c2"), a);
    d.ok("vm kill all");
    wait_for("all QUIT", SEEN, || {
        vm_info(&d)
            .iter()
            .all(|r| r["state"] == "QUIT")
            .then_some(())
    });
    assert!(no_monitors(&base));
    assert!(netns_of(&d).is_empty());
    assert!(site.devices().is_empty(), "{:?}", site.devices());
}

const HOG: &str = r#"#!/bin/sh
n=0
( while true; do n=$((n+1)); echo $n > /data/$(hostname).count; sleep 0.2; done ) &
while [ ! -e /data/go ]; do sleep 0.1; done
if [ "$(hostname)" = hog ]; then
    awk 'BEGIN { s = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; while (1) s = s s }'
    echo "hog ended $?" > /data/hog.end
fi
sleep 100000
"#;

#[test]
fn a_process_over_the_memory_limit_dies_alone() {
    let host = ct_host("ctmem");
    let d = &host.d;
    let scratch = Scratch::new("ctmem-fs");
    let fs = agent_filesystem(&scratch.path, HOG);
    let data = scratch.path.join("data");
    std::fs::create_dir_all(&data).unwrap();
    d.ok(&format!("vm config filesystem {}", fs.display()));
    d.ok(&format!("vm config volume /data {}", data.display()));
    d.ok("vm config memory 64");
    d.ok("vm launch container hog,calm");
    d.ok("vm start all");
    wait_for("both counters", SEEN, || {
        (counted(&data, "hog") > 1 && counted(&data, "calm") > 1).then_some(())
    });
    std::fs::write(data.join("go"), "").unwrap();
    let end = wait_for("the hog to be killed", SEEN, || {
        std::fs::read_to_string(data.join("hog.end")).ok()
    });
    // awk ended by SIGKILL (the OOM killer): the shell says 137.
    assert_eq!(end.trim(), "hog ended 137");
    // Its container, its neighbour and the daemon go on.
    let (h, c) = (counted(&data, "hog"), counted(&data, "calm"));
    wait_for("both to count on", SEEN, || {
        (counted(&data, "hog") > h && counted(&data, "calm") > c).then_some(())
    });
    let rows = vm_info(d);
    assert!(rows.iter().all(|r| r["state"] == "RUNNING"), "{rows:?}");
}

#[test]
fn a_containers_nic_is_disconnected_connected_and_shaped_on_the_switch() {
    let host = ct_host("ctnic");
    let (site, d) = (&host.site, &host.d);
    let scratch = Scratch::new("ctnic-fs");
    let fs = agent_filesystem(&scratch.path, "#!/bin/sh\nsleep 100000\n");
    d.ok(&format!("vm config filesystem {}", fs.display()));
    d.ok("vm config net 100");
    d.ok("vm launch container n1");
    d.ok("vm start n1");
    let tap = vm_info(d)[0]["tap"]
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    assert!(site.ports("mega_bridge").contains(&tap));
    d.ok("vm net disconnect n1 0");
    assert!(!site.ports("mega_bridge").contains(&tap));
    d.ok("vm net connect n1 0 200");
    assert!(site.ports("mega_bridge").contains(&tap));
    assert_eq!(vm_info(d)[0]["vlan"], "[200]");
    // qos shapes the container's veth as a KVM VM's tap (tbf; this
    // kernel has no netem for loss and delay).
    d.ok("qos add n1 0 rate 10 mbit");
    assert_eq!(vm_info(d)[0]["qos"], "[0: rate 10mbit]");
    let tc = site.sh(&format!("tc qdisc show dev {tap}"));
    assert!(tc.contains("tbf"), "{tc}");
    d.ok("vm kill n1");
    wait_for("QUIT", SEEN, || {
        (vm_info(d)[0]["state"] == "QUIT").then_some(())
    });
    assert!(site.devices().is_empty(), "{:?}", site.devices());
}
