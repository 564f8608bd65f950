//! Experiment networks on real parts: Open vSwitch started by the test
//! (its userspace datapath: these machines lack the kernel module), real
//! taps, real TCG guests of the test guest pinging each other, a daemon
//! killed with SIGKILL and restarted under them, and two systemd test-bed
//! nodes joined by a VLAN trunk over the test bed's switch, then by a VXLAN
//! tunnel (`ns bridge`) that outlives one node's daemon restart. Each daemon that makes taps runs in a network namespace the test
//! made, with its own switch; every name carries a per-run tag.
//!
//! Guests ping with a script added to the initrd (`/etc/guest.d`): every
//! second it pings the addresses of `mm.ping=` and prints `MM-PING ADDR ok`
//! or `fail` on the serial console; `mm.ip6=` gives eth0 an IPv6 address
//! too and pings6 `mm.ping6=`.

mod common;

use common::guest::*;
use common::ovs::Site;
use common::testbed::Testbed;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A table's rows as trimmed cells (alignment is not the point).
fn cells(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

fn serial(base: &Path, id: &str) -> String {
    std::fs::read_to_string(base.join(id).join("serial0.log")).unwrap_or_default()
}

fn count(log: &str, line: &str) -> usize {
    log.lines().filter(|l| l.trim_end() == line).count()
}

/// Waits until `log()` holds `line` at least `n` times; shows the log's
/// end when it does not.
fn wait_lines(what: &str, log: impl Fn() -> String, line: &str, n: usize) {
    let deadline = std::time::Instant::now() + BOOT;
    while count(&log(), line) < n {
        if std::time::Instant::now() > deadline {
            let text = log();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            panic!(
                "{what}: `{line}` not seen {n} times within {BOOT:?}; the log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn by_name(rows: &[HashMap<String, String>]) -> HashMap<String, HashMap<String, String>> {
    rows.iter()
        .map(|r| (r["name"].clone(), r.clone()))
        .collect()
}

/// Launches a guest named `name` on `net` with address `ip`, pinging `ping`.
fn launch(d: &Daemon, initrd: &Path, name: &str, net: &str, ip: &str, ping: &str, ip6: &str) {
    let (kernel, _) = guest();
    d.ok("clear vm config");
    d.ok("vm config memory 256");
    d.ok(&format!("vm config kernel {}", kernel.display()));
    d.ok(&format!("vm config initrd {}", initrd.display()));
    d.ok("vm config serial-ports 1");
    d.ok(&format!("vm config net {net}"));
    d.ok(&format!(
        "vm config append console=ttyS0 mm.ip={ip}/24 mm.ping={ping} mm.ip6={ip6}/64 mm.ping6=fd99::11"
    ));
    d.ok(&format!("vm launch kvm {name}"));
}

#[test]
fn guests_on_one_vlan_ping_and_keep_pinging_across_a_daemon_crash() {
    let site = Site::new("net-guests");
    let bus = Bus::start();
    let mut d = site.daemon(&bus, None);
    let base = d.base.clone();
    let _guard = VmGuard { base: base.clone() };
    let initrd = ping_initrd(&site.scratch.path);

    launch(
        &d,
        &initrd,
        "a1",
        "A",
        "10.99.0.11",
        "10.99.0.12",
        "fd99::11",
    );
    launch(
        &d,
        &initrd,
        "a2",
        "A",
        "10.99.0.12",
        "10.99.0.11",
        "fd99::12",
    );
    launch(
        &d,
        &initrd,
        "b1",
        "B",
        "10.99.0.13",
        "10.99.0.11",
        "fd99::13",
    );
    assert_eq!(d.ok("vm config net"), "[B]");
    assert_eq!(
        cells(&d.ok(".annotate false vlans")),
        [["alias", "vlan"], ["A", "101"], ["B", "102"]]
    );
    d.ok("vm start all");
    let rows = by_name(&vm_info(&d));
    let id = |n: &str| rows[n]["id"].clone();
    let log = |name: &str| {
        let (base, id) = (base.clone(), id(name));
        move || serial(&base, &id)
    };
    wait_lines("a1 pinging a2", log("a1"), "MM-PING 10.99.0.12 ok", 2);
    wait_lines("a2 pinging a1", log("a2"), "MM-PING 10.99.0.11 ok", 2);
    wait_lines("b1 trying a1", log("b1"), "MM-PING 10.99.0.11 fail", 3);
    assert_eq!(count(&serial(&base, &id("b1")), "MM-PING 10.99.0.11 ok"), 0);

    // vm info: each NIC's VLAN, bridge, tap and MAC, and the addresses the
    // guests used, learned from their own ARP and neighbour discovery.
    let rows = wait_for(
        "vm info to show each guest's addresses",
        Duration::from_secs(120),
        || {
            let rows = by_name(&vm_info(&d));
            let learned = ["a1", "a2", "b1"]
                .iter()
                .all(|n| rows[*n]["ip"] != "[]" && rows[*n]["ip6"] != "[]");
            learned.then_some(rows)
        },
    );
    for (name, vlan, ip) in [
        ("a1", "A (101)", "11"),
        ("a2", "A (101)", "12"),
        ("b1", "B (102)", "13"),
    ] {
        let r = &rows[name];
        assert_eq!(r["vlan"], format!("[{vlan}]"), "{r:?}");
        assert_eq!(r["bridge"], "[mega_bridge]");
        assert!(r["tap"].starts_with("[mega_tap"), "{r:?}");
        assert!(r["mac"].starts_with("[52:54:"), "{r:?}");
        assert_eq!(r["ip"], format!("[10.99.0.{ip}]"), "{r:?}");
        assert_eq!(r["ip6"], format!("[fd99::{ip}]"), "{r:?}");
    }
    let taps: Vec<String> = ["a1", "a2", "b1"]
        .iter()
        .map(|n| rows[*n]["tap"].trim_matches(['[', ']']).to_string())
        .collect();
    let mut ports = site.ports("mega_bridge");
    ports.sort();
    let mut want = taps.clone();
    want.sort();
    assert_eq!(ports, want);
    assert_eq!(site.ovs().vsctl(&["get", "port", &taps[2], "tag"]), "102");
    assert!(d.ok(".columns netcommit host").ends_with("| 3"));
    let indexes: Vec<String> = taps.iter().map(|t| site.ifindex(t)).collect();

    // A capture of a1's NIC is a pcap file tcpdump reads, with its pings.
    let pcap = site.scratch.path.join("a1.pcap");
    d.ok(&format!("capture pcap vm a1 0 {}", pcap.display()));
    assert!(d.ok("capture").contains("a1:0"));
    let seen = count(&log("a1")(), "MM-PING 10.99.0.12 ok");
    wait_lines("more pings", log("a1"), "MM-PING 10.99.0.12 ok", seen + 3);
    d.ok("capture pcap delete vm a1");
    let dump = Command::new("tcpdump")
        .arg("-nr")
        .arg(&pcap)
        .output()
        .unwrap();
    let text = stdout(&dump);
    assert!(
        text.contains("10.99.0.11 > 10.99.0.12: ICMP echo request"),
        "{text}"
    );

    // The daemon dies hard; the next one adopts the guests, their taps
    // (the same devices, not new ones) and ports, and they go on pinging.
    d.crash();
    let before = count(&serial(&base, &id("a1")), "MM-PING 10.99.0.12 ok");
    let d = site.daemon(&bus, Some(base.clone()));
    assert!(
        d.log_text().contains("3 adopted running"),
        "{}",
        d.log_text()
    );
    let after = by_name(&vm_info(&d));
    for (i, n) in ["a1", "a2", "b1"].iter().enumerate() {
        assert_eq!(after[*n]["tap"], rows[*n]["tap"]);
        assert_eq!(after[*n]["mac"], rows[*n]["mac"]);
        assert_eq!(after[*n]["ip"], rows[*n]["ip"]);
        assert_eq!(
            site.ifindex(&taps[i]),
            indexes[i],
            "{} was made again",
            taps[i]
        );
    }
    assert_eq!(
        cells(&d.ok(".annotate false vlans")),
        [["alias", "vlan"], ["A", "101"], ["B", "102"]]
    );
    wait_lines(
        "pings after the restart",
        log("a1"),
        "MM-PING 10.99.0.12 ok",
        before + 3,
    );

    // Re-tagging a running guest's port moves it: b1 joins VLAN A.
    d.ok("vm net connect b1 0 A");
    wait_lines(
        "b1 reaching a1 on VLAN A",
        log("b1"),
        "MM-PING 10.99.0.11 ok",
        2,
    );
    assert_eq!(by_name(&vm_info(&d))["b1"]["vlan"], "[A (101)]");

    // kill and flush leave no tap and no port.
    d.ok("vm kill all");
    assert!(site.devices().is_empty(), "{:?}", site.devices());
    assert!(
        site.ports("mega_bridge").is_empty(),
        "{:?}",
        site.ports("mega_bridge")
    );
    d.ok("vm flush");
    assert_eq!(d.ok("vm info"), "");
}

#[test]
fn bad_input_and_failed_launches_leave_nothing_behind() {
    let site = Site::new("net-bad");
    let bus = Bus::start();
    let mut d = site.daemon(&bus, None);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let nothing_left = |d: &Daemon, what: &str| {
        assert!(site.devices().is_empty(), "{what}: {:?}", site.devices());
        assert!(
            site.ports("mega_bridge").is_empty(),
            "{what}: {:?}",
            site.ports("mega_bridge")
        );
        assert_eq!(d.ok("vm info"), "", "{what}");
    };
    d.ok("vm config memory 64");

    // Each bad netspec names its field; the configuration is unchanged.
    for (spec, want) in [
        ("100,00:11:22:33:44", "E: invalid netspec `100,00:11:22:33:44`: bad MAC address `00:11:22:33:44`: expected six hex pairs like 00:11:22:33:44:55"),
        ("100,01:00:5e:00:00:01", "E: invalid netspec `100,01:00:5e:00:00:01`: bad MAC address `01:00:5e:00:00:01`: a multicast address cannot be a NIC's"),
        ("0", "E: invalid netspec `0`: bad VLAN `0`: must be 1 to 4095"),
        ("4096", "E: invalid netspec `4096`: bad VLAN `4096`: must be 1 to 4095"),
        ("br0,100,00:11:22:33:44:55,e1000,qinq,x", "E: invalid netspec `br0,100,00:11:22:33:44:55,e1000,qinq,x`: too many fields (expected [bridge,]vlan[,mac][,driver][,qinq])"),
        ("a,b,c", "E: invalid netspec `a,b,c`: too many fields (expected [bridge,]vlan[,mac][,driver][,qinq])"),
        ("a-bridge-name-too-long,5", "E: invalid netspec `a-bridge-name-too-long,5`: bad bridge name `a-bridge-name-too-long`: must be 1 to 15 characters (a network device name)"),
    ] {
        assert_eq!(fails(&d, &format!("vm config net {spec}")), want);
    }
    let e = fails(&d, "vm config net 100,e1001");
    assert!(
        e.starts_with(
            "E: invalid netspec `100,e1001`: unknown NIC driver `e1001` (drivers: e1000, "
        ),
        "{e}"
    );
    assert_eq!(d.ok("vm config net"), "[]");
    assert_eq!(
        fails(&d, "vlans range 200 100"),
        "E: invalid range 200-100: expected 1 <= min < max <= 4096"
    );
    assert_eq!(
        fails(&d, "vlans add X abc"),
        "E: expected an integer VLAN, not `abc`"
    );

    // A launch whose second NIC fails half-way (its bridge's name is taken
    // by a Linux bridge): the first NIC's tap and port go again, and the
    // bridge the launch made is removed.
    netns::sh(&[
        "ip",
        "-n",
        &site.netns,
        "link",
        "add",
        "brx",
        "type",
        "bridge",
    ]);
    d.ok("vm config net A brx,200");
    let e = fails(&d, "vm launch kvm half");
    assert_eq!(
        e,
        "E: vm half: bridge brx: could not open network device brx (Invalid argument)"
    );
    nothing_left(&d, "half-way");
    assert!(!site.ovs().vsctl(&["list-br"]).contains("brx"));

    // GRE tunnels need what this kernel lacks; nothing is left.
    assert_eq!(
        fails(&d, "bridge tunnel gre mega_bridge 10.0.0.2"),
        "E: GRE tunnels need the kernel's gretap device (module ip_gre), which this kernel lacks; use a vxlan tunnel"
    );
    assert!(
        fails(&d, "bridge tunnel vxlan mega_bridge nowhere").contains("invalid remote `nowhere`")
    );
    assert!(
        fails(&d, "bridge trunk mega_bridge nosuchnic").contains("no network interface nosuchnic")
    );
    nothing_left(&d, "tunnels");

    // A paused VM with a NIC: qos with tbf works, netem is named missing;
    // a hot-plugged NIC shows in vm info; disconnect takes its port off.
    d.ok("vm config net A");
    d.ok("vm launch kvm p");
    assert_eq!(
        fails(&d, "qos add p 0 loss 5"),
        "E: this kernel lacks the netem qdisc (module sch_netem), which qos loss and delay needs"
    );
    assert_eq!(
        fails(&d, "qos add p 0 loss 150"),
        "E: invalid loss `150`: expected a percentage 0 <= loss < 100"
    );
    assert_eq!(
        fails(&d, "qos add p 3 rate 1 mbit"),
        "E: vm p has no interface 3 (1 interfaces)"
    );
    d.ok("qos add p 0 rate 10 mbit");
    let tap0 = vm_info(&d)[0]["tap"].trim_matches(['[', ']']).to_string();
    assert!(site
        .sh(&format!("tc qdisc show dev {tap0}"))
        .contains("tbf"));
    assert_eq!(vm_info(&d)[0]["qos"], "[0: rate 10mbit]");
    d.ok("clear qos");
    assert_eq!(vm_info(&d)[0]["qos"], "[]");
    d.ok("vm net add p B,52:54:00:00:00:42,virtio-net-pci");
    let r = &vm_info(&d)[0];
    assert_eq!(r["vlan"], "[A (101), B (102)]");
    assert!(r["mac"].ends_with(", 52:54:00:00:00:42]"), "{r:?}");
    assert_eq!(site.ports("mega_bridge").len(), 2);
    // vm config clone copies the NICs, not their taps or generated MACs.
    d.ok("vm config clone p");
    assert_eq!(
        d.ok("vm config net"),
        "[A B,52:54:00:00:00:42,virtio-net-pci]"
    );
    d.ok("clear vm config net");
    assert_eq!(d.ok("vm config net"), "[]");
    d.ok("vm net disconnect p 1");
    assert_eq!(vm_info(&d)[0]["vlan"], "[A (101), disconnected]");
    assert_eq!(site.ports("mega_bridge"), [tap0]);
    assert!(fails(&d, "vm net connect p 7 A").contains("has no interface 7"));

    // Host taps and a bridge capture.
    let t = d.ok(".annotate false tap create A ip 10.98.0.1/24");
    assert!(site
        .sh(&format!("ip addr show {t}"))
        .contains("10.98.0.1/24"));
    assert_eq!(
        cells(&d.ok(".annotate false .headers false tap")),
        [["mega_bridge", &t, "A (101)"]]
    );
    assert!(fails(&d, "tap create A ip 10.98.0.1/33").contains("invalid address `10.98.0.1/33`"));
    let pcap = site.scratch.path.join("bridge.pcap");
    d.ok(&format!(
        "capture pcap bridge mega_bridge {}",
        pcap.display()
    ));
    site.sh("ping -c 2 -W 1 10.98.0.2");
    d.ok("capture pcap delete bridge mega_bridge");
    let dump = Command::new("tcpdump")
        .arg("-nr")
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        stdout(&dump).contains("who-has 10.98.0.2"),
        "{}",
        stdout(&dump)
    );
    d.ok("clear tap");
    assert_eq!(d.ok("tap"), "");
    let bridges = cells(&d.ok(".annotate false .headers false bridge"));
    assert_eq!(
        bridges,
        // minimega's columns (bonds, config) and ours, datapath.
        [[
            "mega_bridge",
            "false",
            "[A (101)]",
            "[]",
            "[]",
            "[]",
            "{}",
            "userspace"
        ]]
    );

    // The aliases survive a restart; `clear vlans` forgets them.
    d.ok("vm kill all");
    d.ok("vm flush");
    nothing_left(&d, "after flush");
    d.stop();
    let d = site.daemon(&bus, Some(d.base.clone()));
    assert_eq!(
        cells(&d.ok(".annotate false .headers false vlans")),
        [["A", "101"], ["B", "102"]]
    );
    d.ok("clear vlans");
    assert_eq!(d.ok("vlans"), "");
    // A namespace's own range, shown by `namespace`; clearing the namespace
    // clears its aliases.
    d.ok("namespace exp vlans range 300 400");
    d.ok("namespace exp vm config net X");
    let listing = cells(&d.ok(".annotate false namespace"));
    assert!(
        listing.contains(&vec!["exp".into(), "300-400".into(), "false".into()]),
        "{listing:?}"
    );
    assert_eq!(
        cells(&d.ok(".annotate false .headers false namespace exp vlans")),
        [["X", "300"]]
    );
    d.ok("clear namespace exp");
    assert_eq!(d.ok("namespace exp vlans"), "");

    // Without Open vSwitch, a launch with a NIC says what to install and
    // makes nothing.
    let bare = Scratch::new("net-noovs");
    let no_ovs = Daemon::start_with(
        &bus,
        DaemonOpts {
            netns: Some(site.netns.clone()),
            env: vec![
                ("OVS_RUNDIR".into(), bare.path.display().to_string()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            ..DaemonOpts::default()
        },
    );
    no_ovs.ok("vm config memory 64");
    no_ovs.ok("vm config net 5");
    assert_eq!(
        fails(&no_ovs, "vm launch kvm x"),
        "E: Open vSwitch is not installed: install openvswitch-switch (Debian, Ubuntu) or openvswitch (Fedora, RHEL) to give VMs networks"
    );
    assert_eq!(no_ovs.ok("vm info"), "");
    assert!(site.devices().is_empty());
}

/// Runs `minimega -e` in a node; must succeed.
fn mm(n: &common::testbed::Node, line: &str) -> String {
    n.ok(&format!("minimega -e {line}"))
}

/// Runs `minimega -e` in a node; must fail. Returns what it printed.
fn fails_on(n: &common::testbed::Node, line: &str) -> String {
    let out = n.sh(&format!("minimega -e {line}"));
    assert!(!out.status.success(), "`{line}` should fail");
    stdout(&out)
}

#[test]
fn a_vlan_spans_two_nodes_over_a_trunk_and_a_vxlan_tunnel() {
    let bed = Testbed::boot(&["nn1", "nn2"]);
    let key: String = (0..32)
        .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
        .collect();
    for (i, n) in bed.nodes.iter().enumerate() {
        // A second cable to the test bed's switch, for the trunk.
        let outside = format!("t{}n{i}", bed.lan.tag);
        bed.lan.cable(&outside, "trunk0", &n.netns);
        // No ARP of its own: the node answers for its address on eth0 only.
        netns::sh(&[
            "ip", "-n", &n.netns, "link", "set", "trunk0", "arp", "off", "up",
        ]);
        // Open vSwitch of its own (the packaged units are masked here).
        n.ok("mkdir -p /var/run/openvswitch /var/lib/mm-ovs && \
             ovsdb-tool create /var/lib/mm-ovs/conf.db /usr/share/openvswitch/vswitch.ovsschema && \
             systemd-run --unit=mm-ovsdb ovsdb-server /var/lib/mm-ovs/conf.db \
               --remote=punix:/var/run/openvswitch/db.sock --pidfile=/run/mm-ovsdb.pid");
        n.wait_ok("ovs-vsctl --no-wait init", Duration::from_secs(60));
        n.ok("systemd-run --unit=mm-vswitchd ovs-vswitchd unix:/var/run/openvswitch/db.sock --pidfile=/run/mm-vswitchd.pid");
        n.wait_ok(
            "test \"$(ovs-vsctl get Open_vSwitch . iface_types)\" != []",
            Duration::from_secs(60),
        );
        n.install_build();
        n.ok(&format!("mkdir -p /etc/minimega && echo {key} > /etc/minimega/mesh.key && chmod 600 /etc/minimega/mesh.key"));
        n.ok("systemctl start minimega");
    }
    let (n1, n2) = (bed.node("nn1"), bed.node("nn2"));
    mm(n1, "mesh dial nn2");
    n1.wait_ok(
        "minimega -e mesh list | grep -q nn2",
        Duration::from_secs(60),
    );

    // The guests' initrd, inside each node.
    let initrds: Vec<String> = bed
        .nodes
        .iter()
        .map(|n| {
            let dir = n.root.join("var/tmp/net-guest");
            std::fs::create_dir_all(&dir).unwrap();
            ping_initrd(&dir);
            "/var/tmp/net-guest/initrd-ping.img".to_string()
        })
        .collect();
    let (kernel, _) = guest();
    // One namespace over both nodes; the head (nn1) resolves DMZ and ships
    // each launch's configuration, VLAN included, to the node it picks.
    let ns = |line: &str| mm(n1, &format!("namespace exp {line}"));
    ns("ns add-hosts localhost");
    for (name, host, ip, peer) in [("g1", "nn1", "11", "12"), ("g2", "nn2", "12", "11")] {
        ns("clear vm config");
        ns("vm config memory 256");
        ns(&format!("vm config kernel {}", kernel.display()));
        ns(&format!("vm config initrd {}", initrds[0]));
        ns("vm config serial-ports 1");
        ns("vm config net DMZ");
        ns(&format!("vm config schedule {host}"));
        ns(&format!(
            "vm config append console=ttyS0 mm.ip=10.97.0.{ip}/24 mm.ping=10.97.0.{peer}"
        ));
        ns(&format!("vm launch kvm {name}"));
    }
    let info = ns(".headers false .columns name,vlan vm info");
    let mut lines: Vec<String> = info
        .lines()
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        ["nn1 g1 [DMZ (101)]", "nn2 g2 [DMZ (101)]"],
        "{info}"
    );
    assert!(mm(n2, "namespace exp vlans").contains("DMZ   | 101"));

    for n in [n1, n2] {
        mm(n, "bridge trunk mega_bridge trunk0");
    }
    ns("vm start all");
    let log = |n: &common::testbed::Node| n.ok("cat /run/minimega/*/serial0.log 2>/dev/null; true");
    let oks = |n: &common::testbed::Node, peer: &str| {
        count(&log(n), &format!("MM-PING 10.97.0.{peer} ok"))
    };
    wait_lines("g1 over the trunk", || log(n1), "MM-PING 10.97.0.12 ok", 2);
    wait_lines("g2 over the trunk", || log(n2), "MM-PING 10.97.0.11 ok", 2);

    // The same VLAN over a VXLAN tunnel between the nodes instead.
    for n in [n1, n2] {
        mm(n, "bridge notrunk mega_bridge trunk0");
    }
    let fails_now = count(&log(n1), "MM-PING 10.97.0.12 fail");
    wait_lines(
        "g1 failing without the trunk",
        || log(n1),
        "MM-PING 10.97.0.12 fail",
        fails_now + 2,
    );
    // `ns bridge` joins the namespace's hosts' bridges by a VXLAN tunnel
    // (each side made by the head, the far one over the mesh).
    let before = oks(n1, "12");
    ns("ns bridge mega_bridge vxlan");
    assert!(mm(n1, ".annotate false bridge").contains(&format!("(vxlan {})", n2.addr)));
    assert!(mm(n2, ".annotate false bridge").contains(&format!("(vxlan {})", n1.addr)));
    wait_lines(
        "g1 over the tunnel",
        || log(n1),
        "MM-PING 10.97.0.12 ok",
        before + 2,
    );

    // nn2's daemon restarts: its guest, its tunnel and the namespace's
    // VLAN stay as they were.
    n2.ok("systemctl restart minimega");
    n2.wait_ok("minimega -e version", Duration::from_secs(60));
    // The mesh link went with it; nn1 dials again (as in minimega).
    n1.wait_ok(
        "minimega -e mesh list | grep -q nn2 || minimega -e mesh dial nn2; minimega -e mesh list | grep -q nn2",
        Duration::from_secs(60),
    );
    assert!(mm(n2, "namespace exp vlans").contains("DMZ   | 101"));
    let before = oks(n2, "11");
    wait_lines(
        "g2 over the tunnel after nn2's restart",
        || log(n2),
        "MM-PING 10.97.0.11 ok",
        before + 2,
    );

    // The tunnels go on both nodes with `ns del-bridge`.
    ns("ns del-bridge mega_bridge");
    for n in [n1, n2] {
        let ports = n.ok("ovs-vsctl list-ports mega_bridge");
        assert!(!ports.contains("mega_vxlan"), "{ports}");
    }
    assert!(fails_on(n1, "namespace exp ns del-bridge mega_bridge")
        .contains("bridge is not associated with namespace"));

    ns("vm kill all");
    ns("vm flush");
    for n in [n1, n2] {
        assert_eq!(n.ok("ovs-vsctl list-ports mega_bridge"), "");
        n.ok("systemctl stop minimega");
    }
}
