//! Namespaces over the mesh: one spans its hosts, a launch spreads over them.

use super::*;

#[test]
fn namespaces_span_the_mesh() {
    let names = ["n1", "n2", "n3"];
    let c = full_mesh(&names);
    let n1 = c.node("n1");
    let script = "\
namespace
namespace exp
ns hosts
.columns name host
ns add-hosts localhost
ns hosts
.columns name host
ns del-hosts n2
ns hosts
.columns name,cpus host
ns add-hosts bogus
namespace
clear namespace
namespace
.columns name host
namespace exp .columns name host
clear namespace exp
namespace
";
    let cpus = std::thread::available_parallelism().unwrap().get();
    let want = format!(
        "\
host | namespace | vlans    | active
n1   | minimega  | 101-4096 | true
n[2-3]
host | name
n2   | n2
n3   | n3
n[1-3]
host | name
n1   | n1
n2   | n2
n3   | n3
n[1,3]
host | name | cpus
n1   | n1   | {cpus}
n3   | n3   | {cpus}
E: unknown host: `bogus`
host | namespace | vlans    | active
n1   | exp       |          | true
n1   | minimega  | 101-4096 | false
host | namespace | vlans    | active
n1   | exp       |          | false
n1   | minimega  | 101-4096 | true
host | name
n1   | n1
host | name
n1   | n1
n3   | n3
host | namespace | vlans    | active
n1   | minimega  | 101-4096 | true"
    );
    assert_eq!(attach(n1, script), want);
    // The -namespace flag of the client reaches the same machinery.
    let out = mm(
        &n1.bus.address,
        &["-namespace", "other", "-e", ".columns name host"],
    );
    assert_eq!(stdout(&out), "host | name\nn2   | n2\nn3   | n3");
}

/// Counts `vm info` rows per host in `host | name | ...` output.
fn vms_per_host(table: &str) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for line in table.lines().skip(1) {
        let host = line.split('|').next().unwrap_or("").trim().to_string();
        *m.entry(host).or_insert(0) += 1;
    }
    m
}

#[test]
fn namespace_launch_spreads_vms_over_its_hosts() {
    let names = ["n1", "n2", "n3"];
    let c = full_mesh(&names);
    let n1 = c.node("n1");
    // Paused VMs without disks: cheap, and enough to see where they land.
    let out = attach(
        n1,
        "namespace exp\nns add-hosts n1\nvm config memory 128\nvm launch kvm 6\n.columns name,state vm info\n",
    );
    let per_host = vms_per_host(&out);
    assert_eq!(
        per_host.into_iter().collect::<Vec<_>>(),
        [
            ("n1".to_string(), 2),
            ("n2".to_string(), 2),
            ("n3".to_string(), 2)
        ],
        "{out}"
    );
    assert!(out.lines().skip(1).all(|l| l.contains("BUILDING")), "{out}");

    // Named VMs: spread too; a name in use anywhere in the namespace is
    // refused before anything is launched.
    // The first attach's `namespace exp` made exp n1's active namespace.
    let out = attach(
        n1,
        "vm launch kvm web[1-3]\n.columns name .filter name~web vm info\nvm launch kvm web2\n",
    );
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("web")).collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(
        out.contains("E: vm already exists with name `web2`"),
        "{out}"
    );

    // A pinned VM lands where it is told; lifecycle commands reach it
    // wherever it is, without "not found" noise from the other hosts.
    let out = attach(
        n1,
        "vm config schedule n3\nvm launch kvm pinned\nclear vm config schedule\n.columns name .filter name=pinned vm info\nvm start pinned\n.columns name,state .filter name=pinned vm info\nvm kill all\nvm flush\nvm info\n",
    );
    assert!(out.contains("n3   | pinned"), "{out}");
    assert!(out.contains("n3   | pinned | RUNNING"), "{out}");
    assert!(!out.contains("E: "), "{out}");
    let empty = attach(n1, "namespace exp .columns name vm info\n");
    assert!(empty.lines().count() <= 1, "flushed VMs remain: {empty}");
    // And nothing is left in the default namespace of any node.
    for n in names {
        assert_eq!(c.node(n).d.ok("namespace minimega vm info"), "", "{n}");
    }

    // clear namespace removes the namespace's VMs on every one of its
    // hosts, not only on the node where it is typed.
    let out = attach(n1, "vm launch kvm 3\n.columns name vm info\n");
    assert_eq!(vms_per_host(&out).len(), 3, "{out}");
    for n in names {
        let seen = c.node(n).d.ok("namespace exp .columns name vm info");
        assert!(seen.lines().count() > 1, "{n} sees no VM of exp: {seen}");
    }
    attach(n1, "clear namespace exp\n");
    for n in names {
        let left = c.node(n).d.ok("namespace exp .columns name vm info");
        assert!(left.lines().count() <= 1, "{n} kept VMs of exp: {left}");
    }
}
