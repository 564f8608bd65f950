//! Routers end to end: router containers (file system from
//! scripts/router-fs.sh: busybox, our agent and minirouter, Debian's
//! dnsmasq, bird and nft) configured through the `router` command exactly
//! as phenix sends it, on a real daemon and a real Open vSwitch, with
//! client containers in their VLANs. The commit's cc commands carry the
//! file to the router's agent, which runs our minirouter on it.
//!
//! - One router between VLANs A and B: the clients get their addresses,
//!   default route and name server from its DHCP servers (busybox udhcpc),
//!   resolve the name it serves, and reach each other through it (IP
//!   forwarding from a preinit: the container's /proc/sys is read-only).
//!   A firewall chain dropping A's ICMP to B stops a's ping (b's ping to a
//!   still passes: replies to it are established) and clearing it
//!   restores it. The summary shows it all, `vm info` the router's tags
//!   (minirouter's log, and its byte counters from the resident one).
//!   Bad input to a container router is a clear error each.
//! - Two routers on a transit VLAN learn each other's networks over OSPF
//!   (bird 2): a host behind r1 reaches a host behind r2.
//!
//! Each test has its own Site (network namespace and Open vSwitch) and
//! daemon, so they run in parallel. Needs root, Open vSwitch, dnsmasq,
//! bird2, nftables and busybox-static (scripts/deps.sh).

mod common;

use common::container::*;
use common::guest::{fails, vm_info};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MINIROUTER: &str = env!("CARGO_BIN_EXE_minirouter");

/// How long a router or client may take to come up and converge.
const CONVERGE: Duration = Duration::from_secs(60);

/// A router's file system: scripts/router-fs.sh with our binaries.
fn router_filesystem(dir: &Path) -> PathBuf {
    let fs = dir.join("router-fs");
    let o = Command::new(project_root().join("scripts/router-fs.sh"))
        .arg(&fs)
        .arg(MINIROUTER)
        .arg(AGENT)
        .output()
        .unwrap();
    assert!(o.status.success(), "router-fs.sh: {}", stderr(&o));
    fs
}

/// The preinit that gives a router IP forwarding: it runs as root in the
/// container's network namespace before the container starts, where
/// /proc/sys is still writable.
fn forwarding_preinit(dir: &Path) -> PathBuf {
    let p = dir.join("forward.sh");
    std::fs::write(&p, "#!/bin/sh\necho 1 > /proc/sys/net/ipv4/ip_forward\n").unwrap();
    set_mode(&p, 0o755);
    p
}

/// A client that asks for an address until a DHCP server answers
/// (busybox udhcpc and the script container-fs.sh ships).
const DHCP_CLIENT: &str = r#"#!/bin/sh
ip link set lo up
ip link set eth0 up
until udhcpc -i eth0 -n -q -t 3 -T 1 >/dev/null 2>&1; do sleep 0.5; done
echo leased > /tmp/leased
while true; do sleep 3600; done
"#;

/// A client with the address and gateway in its file system.
const STATIC_CLIENT: &str = r#"#!/bin/sh
ip link set lo up
ip addr add $(cat /etc/address) dev eth0
ip link set eth0 up
ip route add default via $(cat /etc/gateway)
while true; do sleep 3600; done
"#;

/// The network namespace of container `vm`.
fn netns(d: &Daemon, vm: &str) -> String {
    let id = vm_info(d).into_iter().find(|r| r["name"] == vm).unwrap()["id"].clone();
    format!("minimega-{}-{id}", minimega::base::tag(&d.base))
}

/// A command in a container's network namespace (the host's tools):
/// whether it succeeded, and what it printed.
fn inside(d: &Daemon, vm: &str, cmd: &str) -> (bool, String) {
    let o = Command::new("ip")
        .args(["netns", "exec", &netns(d, vm), "sh", "-c", cmd])
        .output()
        .unwrap();
    (o.status.success(), stdout(&o) + &stderr(&o))
}

fn pings(d: &Daemon, from: &str, to: &str) -> bool {
    inside(d, from, &format!("ping -c 1 -W 1 {to}")).0
}

/// The IPv4 address of eth0 in `vm`, once it has one in `prefix`.
fn address(d: &Daemon, vm: &str, prefix: &str) -> String {
    let end = std::time::Instant::now() + CONVERGE;
    loop {
        let (_, out) = inside(d, vm, "ip -4 -o addr show dev eth0");
        if let Some(w) = out.split_whitespace().find(|w| w.starts_with(prefix)) {
            return w.split('/').next().unwrap().to_string();
        }
        if std::time::Instant::now() > end {
            panic!("no address in {prefix} for {vm}: {out}\n{}", routers(d));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What the routers did, for a failure's message: each one's addresses,
/// processes, minirouter log and cc responses.
fn routers(d: &Daemon) -> String {
    let mut out = String::new();
    for r in vm_info(d) {
        let name = &r["name"];
        for cmd in ["ip -br addr", "ip route"] {
            out += &format!("--- {name}: {cmd}\n{}\n", inside(d, name, cmd).1);
        }
        let ps = format!(
            "for p in $(ip netns pids {}); do tr '\\0' ' ' < /proc/$p/cmdline; echo; done",
            netns(d, name)
        );
        let o = Command::new("sh").arg("-c").arg(ps).output().unwrap();
        out += &format!("--- {name}: processes\n{}\n", stdout(&o));
        out += &format!("--- {name}: tags {}\n", r["tags"]);
    }
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "grep -r . {}/files/miniccc_responses 2>&1 | tail -40",
            d.base.display()
        ))
        .output()
        .unwrap();
    out + "--- cc responses\n" + &stdout(&o)
}

fn kill_all(d: &Daemon) {
    d.ok("vm kill all");
    wait_for("every container to quit", SEEN, || {
        vm_info(d)
            .iter()
            .all(|r| r["state"] == "QUIT")
            .then_some(())
    });
}

#[test]
fn a_router_container_serves_dhcp_and_dns_forwards_and_filters() {
    let host = ct_host("rtr");
    let (site, d) = (&host.site, &host.d);
    let scratch = Scratch::new("rtr-fs");
    let rfs = router_filesystem(&scratch.path);
    let cfs = agent_filesystem(&scratch.path.join("client"), DHCP_CLIENT);
    let preinit = forwarding_preinit(&scratch.path);

    // The router in VLANs A (100) and B (200), a client in each.
    d.ok("vm config memory 128");
    d.ok(&format!("vm config filesystem {}", rfs.display()));
    d.ok(&format!("vm config preinit {}", preinit.display()));
    d.ok("vm config net 100 200");
    d.ok("vm launch container r1");
    d.ok("clear vm config preinit");
    d.ok(&format!("vm config filesystem {}", cfs.display()));
    d.ok("vm config net 100");
    d.ok("vm launch container a");
    d.ok("vm config net 200");
    d.ok("vm launch container b");

    // phenix's forms, before the router runs: the commit's commands wait
    // for its agent.
    for form in [
        "log level info",
        "interface 0 10.1.0.1/24",
        "interface 1 10.2.0.1/24",
        "dhcp 10.1.0.1 range 10.1.0.50 10.1.0.60",
        "dhcp 10.1.0.1 router 10.1.0.1",
        "dhcp 10.1.0.1 dns 10.1.0.1",
        "dhcp 10.2.0.1 range 10.2.0.50 10.2.0.60",
        "dhcp 10.2.0.1 router 10.2.0.1",
        "dhcp 10.2.0.1 dns 10.2.0.1",
        "dns 1.2.3.4 web.example",
        "commit",
    ] {
        d.ok(&format!("router r1 {form}"));
    }
    d.ok("vm start all");

    // DHCP: addresses from the ranges, the router as default gateway and
    // name server.
    let a = address(d, "a", "10.1.0.");
    let b = address(d, "b", "10.2.0.");
    let last = |ip: &str| ip.rsplit('.').next().unwrap().parse::<u8>().unwrap();
    assert!((50..=60).contains(&last(&a)), "{a}");
    assert!((50..=60).contains(&last(&b)), "{b}");
    let (_, routes) = inside(d, "a", "ip route");
    assert!(routes.contains("default via 10.1.0.1"), "{routes}");

    // DNS: the name the router serves.
    let (ok, out) = inside(d, "a", "busybox nslookup -type=a web.example 10.1.0.1");
    assert!(ok && out.contains("1.2.3.4"), "{out}");

    // Forwarding between the VLANs, through the router.
    wait_for("a to reach b through r1", CONVERGE, || {
        pings(d, "a", &b).then_some(())
    });
    assert!(pings(d, "b", &a));

    // A firewall chain (phenix's form) that drops A's ICMP to B, applied
    // to what comes in on interface 0.
    for form in [
        "fw chain a-to-b action drop 10.1.0.0/24 10.2.0.0/24 icmp",
        "fw chain a-to-b default action accept",
        "fw chain a-to-b apply in 0",
        "commit",
    ] {
        d.ok(&format!("router r1 {form}"));
    }
    wait_for("r1's firewall", CONVERGE, || {
        let (_, rules) = inside(d, "r1", "nft list table ip minirouter");
        rules.contains("chain fw_a_to_b").then_some(())
    });
    assert!(!pings(d, "a", &b), "the drop rule let a's ping through");
    assert!(
        !inside(d, "a", &format!("ping -c 2 -W 1 {b}")).0,
        "the drop rule let a's ping through"
    );
    // Only A's side: b's ping gets there, and its reply is established.
    assert!(pings(d, "b", &a), "b's ping to a was dropped too");

    let summary = d.ok("router r1");
    for want in [
        "IPs:\nNetwork: 0: [10.1.0.1/24]\nNetwork: 1: [10.2.0.1/24]\n",
        "Listen address: 10.1.0.1\nLow address:    10.1.0.50\nHigh address:   10.1.0.60\nRouter:         10.1.0.1\nDNS:            10.1.0.1\n",
        "Listen address: 10.2.0.1\n",
        "DNS:\n1.2.3.4\tweb.example\n",
        "Firewall Rules:\n  (iface 0) incoming: <any> --> <any> via <any> -> a-to-b\n  Default Action: accept\n",
        "Firewall Chains:\n  a-to-b: 10.1.0.0/24 --> 10.2.0.0/24 via icmp -> drop\n  Default Action (a-to-b): accept\n",
        "Log:\n",
        "INFO minirouter: configuration applied",
    ] {
        assert!(summary.contains(want), "{want:?} not in:\n{summary}");
    }
    let tags = vm_info(d).into_iter().find(|r| r["name"] == "r1").unwrap()["tags"].clone();
    assert!(
        tags.contains("\"minirouter\":\"0\"") && tags.contains("\"minirouter_log\":"),
        "{tags}"
    );
    assert!(tags.contains("configuration applied"), "{tags}");
    // The resident minirouter's byte counters (router-fs.sh's init).
    wait_for("r1's byte counters in its tags", CONVERGE, || {
        let r = vm_info(d).into_iter().find(|r| r["name"] == "r1")?;
        (r["tags"].contains("\"minirouter_eth0_rx_bytes\":")
            && r["tags"].contains("\"minirouter_eth1_tx_bytes\":"))
        .then_some(())
    });

    // Clearing the firewall and committing lets a's ping through again.
    d.ok("clear router r1 fw");
    d.ok("router r1 commit");
    wait_for("a to reach b again", CONVERGE, || {
        pings(d, "a", &b).then_some(())
    });
    let (_, rules) = inside(d, "r1", "nft list table ip minirouter");
    assert!(!rules.contains("fw_a_to_b"), "{rules}");
    assert!(!d.ok("router r1").contains("Firewall Chains:"));

    // Bad input to a container router: a clear error each, nothing changed.
    let before = d.ok("router r1");
    let e = fails(d, "router r1 interface 0 10.1.0.300/24");
    assert!(e.contains("invalid IP: 10.1.0.300/24"), "{e}");
    let e = fails(d, "router r1 interface 5 10.5.0.1/24");
    assert!(e.contains("no such network index: 5"), "{e}");
    let e = fails(d, "router r1 fw drop in 2 10.2.0.0/24 tcp");
    assert!(e.contains("no such network index: 2"), "{e}");
    let e = fails(d, "router r1 fw chain nosuch apply in 0");
    assert!(e.contains("unknown chain nosuch"), "{e}");
    let e = fails(d, "router nosuch commit");
    assert!(e.contains("vm not found: nosuch"), "{e}");
    assert_eq!(d.ok("router r1"), before);
    d.ok("vm kill b");
    wait_for("b to quit", SEEN, || {
        vm_info(d)
            .iter()
            .any(|r| r["name"] == "b" && r["state"] == "QUIT")
            .then_some(())
    });
    let e = fails(d, "router b interface 0 10.2.0.9/24");
    assert!(e.contains("vm not running: b"), "{e}");

    kill_all(d);
    assert!(netns_of(d).is_empty(), "{:?}", netns_of(d));
    assert!(site.devices().is_empty(), "{:?}", site.devices());
}

#[test]
fn two_router_containers_learn_each_others_networks_over_ospf() {
    let host = ct_host("rtrospf");
    let (site, d) = (&host.site, &host.d);
    let scratch = Scratch::new("rtrospf-fs");
    let rfs = router_filesystem(&scratch.path);
    let preinit = forwarding_preinit(&scratch.path);

    // a (VLAN 100) - r1 - transit (VLAN 300) - r2 - b (VLAN 200).
    d.ok("vm config memory 128");
    d.ok(&format!("vm config filesystem {}", rfs.display()));
    d.ok(&format!("vm config preinit {}", preinit.display()));
    d.ok("vm config net 100 300");
    d.ok("vm launch container r1");
    d.ok("vm config net 300 200");
    d.ok("vm launch container r2");
    d.ok("clear vm config preinit");
    for (name, vlan, addr, gw) in [
        ("a", 100, "10.1.0.10/24", "10.1.0.1"),
        ("b", 200, "10.2.0.10/24", "10.2.0.1"),
    ] {
        let fs = agent_filesystem(&scratch.path.join(name), STATIC_CLIENT);
        std::fs::write(fs.join("etc/address"), addr).unwrap();
        std::fs::write(fs.join("etc/gateway"), gw).unwrap();
        d.ok(&format!("vm config filesystem {}", fs.display()));
        d.ok(&format!("vm config net {vlan}"));
        d.ok(&format!("vm launch container {name}"));
    }
    d.ok("vm start all");

    // phenix's OSPF forms: every interface in area 0. On the transit
    // link, bird's options for a quick adjacency (no DR election wait).
    for (router, forms) in [
        (
            "r1",
            [
                "interface 0 10.1.0.1/24",
                "interface 1 10.99.0.1/24",
                "route ospf 0 0",
                "route ospf 0 1",
                "route ospf 0 1 type ptp",
                "route ospf 0 1 hello 1",
                "commit",
            ],
        ),
        (
            "r2",
            [
                "interface 0 10.99.0.2/24",
                "interface 1 10.2.0.1/24",
                "route ospf 0 0",
                "route ospf 0 1",
                "route ospf 0 0 type ptp",
                "route ospf 0 0 hello 1",
                "commit",
            ],
        ),
    ] {
        for form in forms {
            d.ok(&format!("router {router} {form}"));
        }
    }

    // Neither router has a route to the other's client network but what
    // OSPF taught it.
    wait_for("r1 to learn 10.2.0.0/24 from r2", CONVERGE, || {
        let (_, routes) = inside(d, "r1", "ip route show 10.2.0.0/24");
        routes.contains("via 10.99.0.2").then_some(())
    });
    wait_for("r2 to learn 10.1.0.0/24 from r1", CONVERGE, || {
        let (_, routes) = inside(d, "r2", "ip route show 10.1.0.0/24");
        routes.contains("via 10.99.0.1").then_some(())
    });
    let (_, routes) = inside(d, "r1", "ip route show 10.2.0.0/24");
    assert!(routes.contains("proto bird"), "{routes}");
    wait_for("a to reach b across both routers", CONVERGE, || {
        pings(d, "a", "10.2.0.10").then_some(())
    });
    let (ok, trace) = inside(d, "a", "busybox traceroute -n -w 1 -m 4 10.2.0.10");
    assert!(ok, "{trace}");
    assert!(
        trace.contains("10.1.0.1") && trace.contains("10.99.0.2"),
        "{trace}"
    );

    let summary = d.ok("router r1");
    assert!(
        summary.contains("OSPF Area:\t0\nInterfaces:\n\t0\n\t1\n"),
        "{summary}"
    );

    kill_all(d);
    assert!(netns_of(d).is_empty(), "{:?}", netns_of(d));
    assert!(site.devices().is_empty(), "{:?}", site.devices());
}
