//! minimega's `router` command on the daemon: a router VM (launched, on
//! real Open vSwitch, not booted: the configuration lives in the daemon
//! until a commit) set up by phenix's forms, its summary as minimega
//! prints it, the commit's file in the namespace's files directory as
//! minimega writes it and its cc commands (replaced, never piled up, by a
//! second commit), the `minirouter` tag, and bad input: a bad address, an
//! unknown interface index, a VM that is not a router, one that is not
//! running, and a commit that cannot write its file (the router keeps its
//! last good configuration: neither the file nor the queued commands
//! change). The guest side (minirouter applying the file) is in
//! tests/minirouter.rs. A second test drives a router on another node of
//! the mesh from the head.

mod common;

use common::guest::*;
use common::ovs::Site;
use common::*;
use serde_json::Value;

/// minimega's files directory of namespace `exp` for this daemon.
fn files(d: &Daemon) -> std::path::PathBuf {
    d.base.join("files").join("exp")
}

/// The namespace's cc commands: (prefix, command, files sent, filter UUID).
fn commands(d: &Daemon) -> Vec<(String, String, String, String)> {
    let out = d.ok("namespace exp .json true cc commands");
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut rows = Vec::new();
    for resp in v.as_array().unwrap() {
        let header: Vec<&str> = resp["Header"]
            .as_array()
            .map(|h| h.iter().map(|c| c.as_str().unwrap()).collect())
            .unwrap_or_default();
        let col = |row: &Vec<Value>, name: &str| {
            let i = header.iter().position(|h| *h == name).unwrap();
            row[i].as_str().unwrap().to_string()
        };
        for row in resp["Tabular"].as_array().into_iter().flatten() {
            let row = row.as_array().unwrap().clone();
            rows.push((
                col(&row, "prefix"),
                col(&row, "command"),
                col(&row, "sent"),
                col(&row, "filter"),
            ));
        }
    }
    rows
}

#[test]
fn a_router_is_configured_summarised_and_committed_as_minimega_does() {
    let site = Site::new("router");
    let bus = Bus::start();
    let d = site.daemon(&bus, None);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let ns = "namespace exp";
    for line in [
        "vm config memory 64",
        "vm config net 100 200",
        "vm launch kvm r1",
        "vm launch kvm r2",
        "vm launch kvm plain",
    ] {
        d.ok(&format!("{ns} {line}"));
    }

    // phenix's vrouter forms.
    for form in [
        "interface 0 10.0.0.1/24",
        "interface 1 10.1.0.1/24",
        "dhcp 10.0.0.0 range 10.0.0.100 10.0.0.200",
        "dhcp 10.0.0.0 router 10.0.0.1",
        "dhcp 10.0.0.0 dns 10.0.0.1",
        "dhcp 10.0.0.0 static 00:1f:53:02:0b:51 10.0.0.50",
        "dns 10.0.0.1 router.example.com",
        "route static 0.0.0.0/0 10.1.0.254",
        "route ospf 0 1",
        "fw chain in-a action drop 10.0.0.0/24 10.1.0.0/24 icmp",
        "fw chain in-a default action accept",
        "fw chain in-a apply in 0",
    ] {
        d.ok(&format!("{ns} router r1 {form}"));
    }
    let summary = d.ok(&format!("{ns} router r1"));
    for want in [
        "IPs:\nNetwork: 0: [10.0.0.1/24]\nNetwork: 1: [10.1.0.1/24]\n",
        "Listen address: 10.0.0.0\nLow address:    10.0.0.100\nHigh address:   10.0.0.200\nRouter:         10.0.0.1\nDNS:            10.0.0.1\nStatic IPs:     \n     00:1f:53:02:0b:51 10.0.0.50\n",
        "10.0.0.1\trouter.example.com",
        "Static Routes:\n0.0.0.0/0\t10.1.0.254\n",
        "OSPF Area:\t0\nInterfaces:\n\t1\n",
    ] {
        assert!(summary.contains(want), "{want:?} not in:\n{summary}");
    }
    assert!(summary.ends_with("Log:"), "{summary}");
    let tags = d.ok(&format!("{ns} .columns name,tags vm info"));
    assert!(tags.contains("{\"minirouter\":\"0\"}"), "{tags}");

    d.ok(&format!("{ns} router r1 commit"));
    let file = files(&d).join("minirouter-r1");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "log level error
ip flush
ip add 0 10.0.0.1/24
ip add 1 10.1.0.1/24
dnsmasq flush
dnsmasq dhcp range 10.0.0.0 10.0.0.100 10.0.0.200
dnsmasq dhcp option router 10.0.0.0 10.0.0.1
dnsmasq dhcp option dns 10.0.0.0 10.0.0.1
dnsmasq dhcp static 10.0.0.0 00:1f:53:02:0b:51 10.0.0.50
dnsmasq dns 10.0.0.1 router.example.com
route del default
dnsmasq commit
bird flush
bird static 0.0.0.0/0 10.1.0.254 null
bird ospf 0 1
bird routerid 10.1.0.1
bird commit
fw flush
fw default accept
fw chain in-a action drop 10.0.0.0/24 10.1.0.0/24 icmp
fw chain in-a default action accept
fw chain in-a apply in 0
"
    );
    let row = d.ok(&format!(
        "{ns} .annotate false .headers false .csv true .filter name=r1 .columns uuid,name vm info"
    ));
    let uuid = row.split(',').next().unwrap().to_string();
    assert_eq!(uuid.len(), 36, "{row}");
    let queued = commands(&d);
    assert_eq!(queued.len(), 3, "{queued:?}");
    assert!(
        queued.iter().all(|(p, ..)| p == "minirouter-r1"),
        "{queued:?}"
    );
    assert!(queued.iter().all(|(.., f)| f.contains(&uuid)), "{queued:?}");
    assert_eq!(queued[0].1, "[rm /tmp/miniccc/files/minirouter-r1]");
    assert_eq!(queued[1].2, "[minirouter-r1]");
    assert_eq!(
        queued[2].1,
        "[minirouter -u /tmp/miniccc/files/minirouter-r1]"
    );
    // A second commit replaces the prefix's commands; the addresses did
    // not change, so the file leaves them alone.
    d.ok(&format!("{ns} router r1 commit"));
    assert_eq!(commands(&d).len(), 3);
    let second = std::fs::read_to_string(&file).unwrap();
    assert!(!second.contains("ip flush"), "{second}");

    // Bad input: one clear error each, nothing changed.
    let e = fails(&d, &format!("{ns} router r1 interface 0 10.0.0.300/24"));
    assert!(e.contains("invalid IP: 10.0.0.300/24"), "{e}");
    let e = fails(&d, &format!("{ns} router r1 interface 7 10.7.0.1/24"));
    assert!(e.contains("no such network index: 7"), "{e}");
    let e = fails(&d, &format!("{ns} router plain"));
    assert!(e.contains("vm plain not a router"), "{e}");
    let e = fails(&d, &format!("{ns} clear router plain dns"));
    assert!(e.contains("no such router plain"), "{e}");
    let e = fails(&d, &format!("{ns} router nosuch commit"));
    assert!(e.contains("vm not found: nosuch"), "{e}");
    d.ok(&format!("{ns} vm kill r2"));
    let e = fails(&d, &format!("{ns} router r2 interface 0 10.2.0.1/24"));
    assert!(e.contains("vm not running: r2"), "{e}");
    assert!(fails(&d, &format!("{ns} router r2")).contains("vm r2 not a router"));
    assert_eq!(d.ok(&format!("{ns} router r1")), summary);

    // A commit that cannot write its file changes neither the file the
    // guest would fetch nor the queued commands.
    let before = commands(&d);
    d.ok(&format!("{ns} router r1 interface 0 10.0.0.2/24"));
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let e = fails(&d, &format!("{ns} router r1 commit"));
    assert!(
        e.contains("router commit: cannot write") && e.contains("minirouter-r1"),
        "{e}"
    );
    assert!(file.is_dir());
    assert!(!files(&d).join("minirouter-r1.new").exists());
    assert_eq!(commands(&d), before);
    std::fs::remove_dir(&file).unwrap();
    d.ok(&format!("{ns} router r1 commit"));
    let third = std::fs::read_to_string(&file).unwrap();
    assert!(
        third.contains("ip add 0 10.0.0.1/24\nip add 0 10.0.0.2/24\n"),
        "the failed commit's addresses are still to be applied:\n{third}"
    );

    // clear forms, and `clear router` forgets them all.
    d.ok(&format!("{ns} clear router r1 route static 0.0.0.0/0"));
    assert!(!d.ok(&format!("{ns} router r1")).contains("10.1.0.254"));
    d.ok(&format!("{ns} clear router"));
    assert!(fails(&d, &format!("{ns} router r1")).contains("vm r1 not a router"));
    // A flushed VM's router is gone with it.
    d.ok(&format!("{ns} router r1 interface 0 10.9.0.1/24"));
    d.ok(&format!("{ns} vm kill r1"));
    d.ok(&format!("{ns} vm flush"));
    d.ok(&format!("{ns} vm config net 100 200"));
    d.ok(&format!("{ns} vm launch kvm r1"));
    assert!(fails(&d, &format!("{ns} router r1")).contains("vm r1 not a router"));
    d.ok(&format!("{ns} vm kill all"));
    d.ok(&format!("{ns} vm flush"));
}

/// A router on another node of the namespace, configured, committed and
/// shown from the head (two test-bed nodes, real systemd, one mesh).
#[test]
fn a_router_on_another_node_is_configured_from_the_head() {
    let bed = common::testbed::Testbed::mesh_of(
        &["head", "node2"],
        "dGhlIHJvdXRlciB0ZXN0J3Mgb3duIG1lc2gga2V5ISEh",
    );
    let (head, node2) = (bed.node("head"), bed.node("node2"));
    for line in [
        "vm config memory 64",
        "vm config schedule node2",
        "vm launch kvm far",
        "router far dns 10.0.0.1 far.example.com",
        "router far route static 10.9.0.0/24 10.0.0.254",
        "router far commit",
    ] {
        head.mm(&format!("namespace exp {line}"));
    }
    let summary = head.mm("namespace exp router far");
    assert!(summary.contains("10.0.0.1\tfar.example.com"), "{summary}");
    assert!(summary.contains("10.9.0.0/24\t10.0.0.254"), "{summary}");
    let file = node2.ok("cat /run/minimega/files/exp/minirouter-far");
    assert!(
        file.contains("dnsmasq dns 10.0.0.1 far.example.com\n")
            && file.contains("bird static 10.9.0.0/24 10.0.0.254 null\n"),
        "{file}"
    );
    assert!(
        !head
            .sh("test -e /run/minimega/files/exp/minirouter-far")
            .status
            .success(),
        "the file is on the VM's node only"
    );
    let e = head.sh("minimega -e namespace exp router nosuch");
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stdout).contains("vm not found: nosuch"));
    head.mm("namespace exp vm kill all");
    head.mm("namespace exp vm flush");
}
