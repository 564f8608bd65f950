//! The rest of minimega's top-level surface, on a real Open vSwitch
//! (userspace datapath), real QEMU (paused: no guest boots) and the real
//! host: `nuke`, `bridge config`/`bridge destroy`, `vm net bond` / `vm
//! config bonds`, `optimize` and `ns save`. Needs openvswitch-switch and
//! qemu-system-x86 (scripts/deps.sh).

mod common;

use common::guest::*;
use common::ovs::Site;
use common::*;
use std::path::Path;
use std::time::Duration;

/// A paused VM needs no guest: a small one, its NICs as given.
fn small_vms(d: &Daemon, nets: &str) {
    d.ok("clear vm config");
    d.ok("vm config memory 128");
    if !nets.is_empty() {
        d.ok(&format!("vm config net {nets}"));
    }
}

fn taps(info: &std::collections::HashMap<String, String>) -> Vec<String> {
    info["tap"]
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn nuke_takes_down_what_the_daemon_made_and_nothing_else() {
    let site = Site::new("compat-nuke");
    let bus = Bus::start();
    let d = site.daemon(&bus, None);
    let base = d.base.clone();
    let _guard = VmGuard { base: base.clone() };
    // A bridge and a port that were there before the daemon.
    site.ovs().vsctl(&[
        "add-br",
        "pre",
        "--",
        "set",
        "bridge",
        "pre",
        "datapath_type=netdev",
    ]);
    site.ovs().vsctl(&[
        "add-port",
        "pre",
        "foreign0",
        "--",
        "set",
        "interface",
        "foreign0",
        "type=internal",
    ]);

    small_vms(&d, "100 pre,7");
    d.ok("vm launch kvm a");
    d.ok("namespace other vm config memory 128");
    d.ok("namespace other vm config net 200");
    d.ok("namespace other vm launch kvm b");
    d.ok("tap create 5 name hosttap0");
    d.ok("bridge config mega_bridge other_config:mac-aging-time=30");
    // A VM folder no VM claims (what a crash leaves).
    std::fs::create_dir_all(base.join("99")).unwrap();
    std::fs::write(base.join("99/state.json"), "{}").unwrap();
    let pids: Vec<String> = records(&base)
        .iter()
        .filter_map(|r| r["pid"].as_u64())
        .map(|p| p.to_string())
        .collect();
    assert_eq!(pids.len(), 2, "two QEMUs run");
    assert!(!site.devices().is_empty());

    // The daemon answers (unlike minimega, it stays up).
    assert_eq!(d.ok("nuke"), "");
    for p in &pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "QEMU {p} is gone"
        );
    }
    assert!(vm_info(&d).is_empty());
    assert_eq!(d.ok("namespace other .csv true vm info"), "");
    assert!(
        site.devices().is_empty(),
        "no tap left: {:?}",
        site.devices()
    );
    let bridges = site.ovs().vsctl(&["list-br"]);
    assert!(!bridges.contains("mega_bridge"), "the bridge it made goes");
    assert_eq!(
        site.ports("pre"),
        ["foreign0"],
        "the bridge that was there stays, with its own port and without ours"
    );
    assert!(!base.join("99").exists(), "the stray VM folder goes");
    assert!(vm_dirs(&base).is_empty());
    assert!(base.join("minimega").exists(), "its own socket stays");

    // Usable afterwards: a new VM gets its taps and bridge again.
    small_vms(&d, "100");
    d.ok("vm launch kvm c");
    assert_eq!(taps(&vm_info(&d)[0]).len(), 1);
    assert!(site.ovs().vsctl(&["list-br"]).contains("mega_bridge"));
    // A nuke of nothing is no error.
    d.ok("vm kill all");
    d.ok("vm flush");
    assert_eq!(d.ok("nuke"), "");
    assert_eq!(d.ok("nuke"), "");
}

#[test]
fn bridge_config_and_destroy_as_ovs_vsctl_set_and_del_br() {
    let site = Site::new("compat-bridge");
    let bus = Bus::start();
    let d = site.daemon(&bus, None);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let ovs = site.ovs();

    // bridge config: a map key, a column; made on first use.
    d.ok("bridge config mega_bridge other_config:mac-aging-time=30");
    d.ok("bridge config mega_bridge stp_enable=true");
    assert_eq!(
        ovs.vsctl(&[
            "get",
            "bridge",
            "mega_bridge",
            "other_config:mac-aging-time"
        ]),
        "\"30\""
    );
    assert_eq!(
        ovs.vsctl(&["get", "bridge", "mega_bridge", "stp_enable"]),
        "true"
    );
    let rows = d.ok(".columns bridge,bonds,config bridge");
    assert!(
        rows.contains(
            r#"mega_bridge | []    | {"other_config:mac-aging-time":"30","stp_enable":"true"}"#
        ),
        "{rows}"
    );
    assert_eq!(
        fails(&d, "bridge config mega_bridge stp"),
        "E: expected key=value"
    );
    let e = fails(&d, "bridge config mega_bridge nosuchcolumn=1");
    assert!(e.starts_with("E: set config failed: "), "{e}");

    // destroy: refused while a VM's NIC is on it.
    small_vms(&d, "100 100");
    d.ok("vm launch kvm a");
    assert_eq!(
        fails(&d, "bridge destroy mega_bridge"),
        "E: bridge mega_bridge is in use by a:0, a:1: kill and flush those VMs, or move their NICs (vm net connect), first"
    );
    d.ok("tap create 5 name hosttap0");
    d.ok("vm kill a");
    d.ok("vm flush");
    d.ok("bridge destroy mega_bridge");
    assert!(!ovs.vsctl(&["list-br"]).contains("mega_bridge"));
    assert_eq!(d.ok("tap"), "", "its host tap went with it");
    assert!(site.devices().is_empty());
    // A bridge that is not there: no error (minimega's).
    d.ok("bridge destroy nosuchbridge");
    // Ports minimega did not make keep a bridge.
    ovs.vsctl(&[
        "add-br",
        "pre",
        "--",
        "set",
        "bridge",
        "pre",
        "datapath_type=netdev",
    ]);
    ovs.vsctl(&[
        "add-port",
        "pre",
        "foreign0",
        "--",
        "set",
        "interface",
        "foreign0",
        "type=internal",
    ]);
    assert_eq!(
        fails(&d, "bridge destroy pre"),
        "E: bridge pre holds ports minimega did not make (foreign0): remove them first"
    );
    assert!(ovs.vsctl(&["list-br"]).contains("pre"));
    assert!(fails(&d, "bridge destroy bad/name").contains("invalid bridge `bad/name`"));
}

#[test]
fn bonds_are_ovs_bond_ports_of_a_vms_nics() {
    let site = Site::new("compat-bond");
    let bus = Bus::start();
    let d = site.daemon(&bus, None);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let ovs = site.ovs();
    small_vms(&d, "100 100 100");
    d.ok("vm launch kvm a");
    let t = taps(&vm_info(&d)[0]);
    assert_eq!(t.len(), 3);

    // Bad bonds say why and change nothing.
    assert_eq!(
        fails(&d, "vm net bond a 0,1 balance-tcp off"),
        "E: LACP mode must be set to active or passive for balance-tcp bond mode"
    );
    assert_eq!(
        fails(&d, "vm net bond a 0,x active-backup active"),
        "E: invalid interface index: x"
    );
    assert_eq!(
        fails(&d, "vm net bond a 0,9 active-backup active"),
        "E: interface 9 not found for vm a"
    );
    assert_eq!(vm_info(&d)[0]["bond"], "[]");

    d.ok("vm net bond a 0,1 balance-slb passive no-lacp-fallback");
    let bond = format!("mega_bond0 ({} {})", t[0], t[1]);
    assert_eq!(vm_info(&d)[0]["bond"], format!("[{bond}]"));
    let ports = site.ports("mega_bridge");
    assert!(ports.contains(&"mega_bond0".to_string()), "{ports:?}");
    assert!(
        !ports.contains(&t[0]) && !ports.contains(&t[1]),
        "{ports:?}"
    );
    assert!(ports.contains(&t[2]));
    assert_eq!(
        ovs.vsctl(&["get", "port", "mega_bond0", "bond_mode"]),
        "balance-slb"
    );
    assert_eq!(ovs.vsctl(&["get", "port", "mega_bond0", "lacp"]), "passive");
    assert_eq!(ovs.vsctl(&["get", "port", "mega_bond0", "tag"]), "100");
    assert_eq!(
        ovs.vsctl(&["get", "port", "mega_bond0", "other_config"]),
        "{}"
    );
    let rows = d.ok(".columns bridge,bonds bridge");
    assert!(rows.contains(&format!("mega_bridge | [{bond}]")), "{rows}");
    assert!(
        fails(&d, "vm net bond a 1,2 active-backup active").contains("interface 1 is in two bonds")
    );

    // Unbonded: the taps are access ports of their VLAN again.
    assert_eq!(
        fails(&d, "clear vm net bond a nosuch"),
        "E: bond nosuch doesn't exist on VM a"
    );
    d.ok("clear vm net bond a");
    assert_eq!(vm_info(&d)[0]["bond"], "[]");
    let ports = site.ports("mega_bridge");
    assert!(!ports.contains(&"mega_bond0".to_string()), "{ports:?}");
    for tap in &t {
        assert!(ports.contains(tap), "{ports:?}");
        assert_eq!(ovs.vsctl(&["get", "port", tap, "tag"]), "100");
    }

    // vm config bonds: made at launch, gone with the VM.
    assert_eq!(d.ok("vm config bonds"), "[]");
    assert_eq!(fails(&d, "vm config bonds 0,1"), "E: malformed bondspec");
    d.ok("vm config bonds 0,1,active-backup,off,uplink");
    assert_eq!(d.ok("vm config bonds"), "[0,1,active-backup,off,uplink]");
    assert!(d
        .ok("vm config")
        .contains("Bonds:            [0,1,active-backup,off,uplink]"));
    d.ok("vm launch kvm b");
    assert_eq!(ovs.vsctl(&["get", "port", "uplink", "lacp"]), "off");
    assert_eq!(
        ovs.vsctl(&["get", "port", "uplink", "bond_mode"]),
        "active-backup"
    );
    assert_eq!(
        ovs.vsctl(&["get", "port", "uplink", "other_config"]),
        "{}",
        "no LACP, no fallback"
    );
    let b = vm_info(&d)[1].clone();
    let tb = taps(&b);
    assert_eq!(b["bond"], format!("[uplink ({} {})]", tb[0], tb[1]));
    assert!(fails(&d, "vm launch kvm c").contains("bond uplink already exists"));
    d.ok("vm flush");
    d.ok("vm kill b");
    assert!(!site.ports("mega_bridge").contains(&"uplink".to_string()));
    d.ok("vm start b");
    wait_for("b again", Duration::from_secs(60), || {
        site.ports("mega_bridge")
            .contains(&"uplink".to_string())
            .then_some(())
    });
    d.ok("vm kill all");
    d.ok("vm flush");
    assert!(site.devices().is_empty(), "{:?}", site.devices());
    assert_eq!(site.ports("mega_bridge"), Vec::<String>::new());
}

/// Puts the host's KSM back as it was, also when the test fails.
struct KsmRestore(Vec<(String, String)>);

impl KsmRestore {
    fn now() -> KsmRestore {
        let files = ["run", "pages_to_scan", "sleep_millisecs"];
        KsmRestore(
            files
                .iter()
                .filter_map(|f| {
                    let p = format!("/sys/kernel/mm/ksm/{f}");
                    Some((p.clone(), std::fs::read_to_string(&p).ok()?))
                })
                .collect(),
        )
    }
}

impl Drop for KsmRestore {
    fn drop(&mut self) {
        for (p, v) in &self.0 {
            let _ = std::fs::write(p, v.trim());
        }
    }
}

#[test]
fn optimize_reports_and_changes_ksm_hugepages_and_affinity() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let base = d.base.clone();
    let _guard = VmGuard { base: base.clone() };
    assert_eq!(
        d.ok(".annotate false optimize"),
        "ksm      | hugepages | affinity\ndisabled | disabled  | disabled"
    );
    assert_eq!(d.ok("optimize ksm"), "false");
    assert_eq!(fails(&d, "optimize ksm false"), "E: ksm is not enabled");

    // KSM: the host's, restored afterwards; a host where it cannot be
    // written says so and nothing changes.
    let run = Path::new("/sys/kernel/mm/ksm/run");
    let before = std::fs::read_to_string(run).unwrap_or_default();
    let _restore = KsmRestore::now();
    let writable = std::fs::OpenOptions::new().write(true).open(run).is_ok();
    if writable {
        d.ok("optimize ksm true");
        assert_eq!(std::fs::read_to_string(run).unwrap().trim(), "1");
        assert_eq!(
            std::fs::read_to_string("/sys/kernel/mm/ksm/pages_to_scan")
                .unwrap()
                .trim(),
            "100000"
        );
        assert_eq!(d.ok("optimize ksm"), "true");
        assert!(d
            .ok(".annotate false optimize")
            .contains("\nenabled | disabled"));
        assert_eq!(fails(&d, "optimize ksm true"), "E: ksm is already enabled");
        d.ok("optimize ksm false");
    } else {
        let e = fails(&d, "optimize ksm true");
        assert!(
            e.starts_with("E: cannot use KSM: /sys/kernel/mm/ksm/"),
            "{e}"
        );
        assert_eq!(d.ok("optimize ksm"), "false");
    }
    assert_eq!(std::fs::read_to_string(run).unwrap_or_default(), before);

    // Hugepages: a directory, given to new VMs as QEMU's -mem-path.
    assert_eq!(
        fails(&d, "optimize hugepages /no/such/dir"),
        "E: hugepages: /no/such/dir is not a directory (mount hugetlbfs there first)"
    );
    let huge = d.scratch.path.join("huge");
    std::fs::create_dir_all(&huge).unwrap();
    d.ok(&format!("optimize hugepages {}", huge.display()));
    assert_eq!(d.ok("optimize hugepages"), huge.display().to_string());
    assert!(d.ok("optimize").contains(&huge.display().to_string()));
    small_vms(&d, "");
    d.ok("vm launch kvm a");
    let pid = vm_info(&d)[0]["pid"].clone();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        cmdline.contains(&format!("-mem-path\0{}\0", huge.display())),
        "{cmdline:?}"
    );
    d.ok("clear optimize hugepages");
    assert_eq!(d.ok("optimize hugepages"), "");

    // Affinity: the namespace's QEMUs pinned, one CPU each, then freed.
    let allowed = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("Cpus_allowed_list:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap()
    };
    let all = allowed();
    assert_eq!(
        fails(&d, "optimize affinity false"),
        "E: affinity is not enabled for this namespace"
    );
    d.ok("optimize affinity true");
    assert_eq!(allowed(), "0");
    let table = d.ok(".annotate false optimize affinity");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("cpu ") && lines[0].ends_with("| pids"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("0 ") && lines[1].ends_with(&format!("| [{pid}]")),
        "{table}"
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let last = cpus - 1;
    d.ok(&format!("optimize affinity filter [{last}]"));
    assert_eq!(allowed(), last.to_string());
    assert!(fails(&d, &format!("optimize affinity filter [{cpus}]"))
        .starts_with("E: cannot expand CPU range: CPU"));
    d.ok("optimize affinity false");
    assert_eq!(allowed(), all);
    d.ok("optimize affinity true");
    d.ok("clear optimize");
    assert_eq!(allowed(), all);
    assert_eq!(
        d.ok(".annotate false optimize"),
        "ksm      | hugepages | affinity\ndisabled | disabled  | disabled"
    );
}

#[test]
fn ns_save_writes_every_vm_and_a_script_that_brings_them_back() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let base = d.base.clone();
    let _guard = VmGuard { base: base.clone() };
    let files = base.join("files");
    d.ok("namespace matrix");
    d.ok("disk create qcow2 morpheus.qcow2 64M");
    small_vms(&d, "");
    d.ok("vm config disk morpheus.qcow2");
    d.ok("vm launch kvm neo[1-2]");
    d.ok("vm config vcpus 2");
    d.ok("vm launch kvm trinity");
    small_vms(&d, "");
    d.ok("vm launch kvm mouse");

    d.ok("ns save matrix");
    let dir = files.join("saved/matrix");
    for f in [
        "launch.mm",
        "neo1.state",
        "neo1.hdd",
        "neo2.state",
        "neo2.hdd",
        "trinity.state",
        "trinity.hdd",
        "mouse.state",
    ] {
        wait_for(f, Duration::from_secs(120), || {
            dir.join(f).exists().then_some(())
        });
    }
    assert!(!dir.join("mouse.hdd").exists(), "mouse has no disk");
    wait_for("saves done", Duration::from_secs(120), || {
        let out = d.ok(".annotate false ns save");
        if out == "completed | total\n4         | 4" {
            return Some(());
        }
        eprintln!("ns save: {out}");
        None
    });
    assert_eq!(
        d.ok(".annotate false ns snapshot"),
        "completed | total\n4         | 4"
    );
    // Never started, they stay BUILDING (minimega: PAUSED); paused either way.
    assert_eq!(column(&vm_info(&d), "state"), ["BUILDING"; 4]);
    assert_eq!(
        fails(&d, "ns save matrix"),
        "E: saved VM with this name already exists"
    );
    let script = std::fs::read_to_string(dir.join("launch.mm")).unwrap();
    assert!(
        script.starts_with(
            "namespace \"matrix\"\n\nns queueing false\n\nclear vm config\nvm config memory 128\n"
        ),
        "{script}"
    );
    assert!(script.contains(
        "vm config vcpus 2\nvm config state saved/matrix/trinity.state\nvm config disks saved/matrix/trinity.hdd\nvm launch kvm trinity\n\n"
    ), "{script}");
    assert!(
        script.contains("vm config state saved/matrix/mouse.state\nvm launch kvm mouse\n\n"),
        "{script}"
    );
    assert!(script.ends_with(
        "vm start all\n# the save process saves the VMs in a paused state, so do a stop/start\nshell sleep 10\nvm stop all\nvm start all\n"
    ), "{script}");

    // The script brings them back, running from their saved state.
    d.ok("clear namespace matrix");
    assert!(vm_info(&d).is_empty());
    d.ok("read saved/matrix/launch.mm");
    let rows = vm_info(&d);
    assert_eq!(column(&rows, "name"), ["neo1", "neo2", "trinity", "mouse"]);
    assert_eq!(column(&rows, "state"), ["RUNNING"; 4]);
    assert_eq!(rows[2]["vcpus"], "2");
    assert!(
        rows[0]["disks"].ends_with("files/saved/matrix/neo1.hdd"),
        "{:?}",
        rows[0]
    );
    d.ok("vm kill all");
    d.ok("vm flush");
}
