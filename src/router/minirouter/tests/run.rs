use super::super::plan::Paths;
use super::super::run::{counter_tags, update, UpdateError};
use super::fake::Fake;
use std::path::PathBuf;

fn paths() -> Paths {
    Paths {
        dir: PathBuf::from("/mr"),
        proc_sys: PathBuf::from("/ps"),
    }
}

const GOOD: &str = "log level info
ip flush
ip add 0 10.0.0.1/24
dnsmasq flush
dnsmasq dhcp range 10.0.0.1 10.0.0.100 10.0.0.200
route del default
dnsmasq commit
bird flush
bird routerid 10.0.0.1
bird commit
fw flush
fw default drop
fw accept in 0 10.0.0.0/24 all
";

#[test]
fn a_good_file_is_applied_and_kept() {
    let mut g = Fake::new(&["lo", "eth0"]);
    update(&mut g, &paths(), GOOD).unwrap();
    assert!(g.runs().contains(&"ip addr add 10.0.0.1/24 dev eth0"));
    assert!(g
        .file("/mr/dnsmasq.conf")
        .unwrap()
        .contains("dhcp-range=set:10.0.0.1,10.0.0.100,10.0.0.200\n"));
    assert!(g.file("/mr/firewall.nft").unwrap().contains("policy drop;"));
    assert!(g
        .file("/mr/state")
        .unwrap()
        .contains("ip add 0 10.0.0.1/24\n"));
    let (key, log) = g.tags.last().unwrap();
    assert_eq!(key, "minirouter_log");
    assert_eq!(
        log,
        "2024/01/02 03:04:05 INFO minirouter: configuration applied\n"
    );
    // bird has nothing to route: no configuration, not started.
    assert!(!g.runs().iter().any(|r| r.starts_with("bird -c")));
}

#[test]
fn a_bad_line_changes_nothing() {
    let mut g = Fake::new(&["eth0"]);
    let e = update(&mut g, &paths(), "log level error\nip add 0 10.0.0.1\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 2: `ip add 0 10.0.0.1`: `10.0.0.1` is not an address with a prefix length (CIDR)"
    );
    assert!(g.runs().is_empty());
    assert!(g.file("/mr/state").is_none());
    // The log level the state had (error) lets the error through.
    assert!(g.tags[0].1.contains("ERROR minirouter: line 2"));
}

#[test]
fn a_check_that_fails_is_blamed_on_the_file_line_and_changes_nothing() {
    let mut g = Fake::new(&["eth0"]);
    g.fail(
        "nft -c",
        "/mr/next/firewall.nft:11:3-30: Error: Could not process rule: No such file or directory",
    );
    let e = update(&mut g, &paths(), GOOD).unwrap_err();
    let UpdateError::Refused { at, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(at, "line 13 (`fw accept in 0 10.0.0.0/24 all`)");
    assert!(
        !g.runs().iter().any(|r| r.starts_with("ip ")),
        "{:?}",
        g.runs()
    );
    assert!(g.file("/mr/state").is_none());
}

#[test]
fn a_step_that_fails_puts_the_last_good_configuration_back() {
    let mut g = Fake::new(&["eth0", "eth1"]);
    update(&mut g, &paths(), GOOD).unwrap();
    let good_state = g.file("/mr/state").unwrap().to_string();
    let good_dnsmasq = g.file("/mr/dnsmasq.conf").unwrap().to_string();
    g.calls.clear();
    g.fail(
        "dnsmasq -C",
        "dnsmasq: failed to create listening socket: Address in use",
    );
    let next = "log level info
ip flush
ip add 0 10.0.0.1/24
ip add 1 10.1.0.1/24
dnsmasq flush
dnsmasq dhcp range 10.1.0.1 10.1.0.100 10.1.0.200
route del default
dnsmasq commit
";
    let e = update(&mut g, &paths(), next).unwrap_err();
    let UpdateError::Failed {
        at,
        reason,
        restore,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(at, "line 8 (`dnsmasq commit`)");
    assert!(
        reason.starts_with("dnsmasq -C /mr/dnsmasq.conf: dnsmasq: failed to create"),
        "{reason}"
    );
    // Restarting the old dnsmasq fails the same way here.
    assert_eq!(restore.len(), 1);
    let runs = g.runs();
    let added = runs
        .iter()
        .position(|r| *r == "ip addr add 10.1.0.1/24 dev eth1")
        .unwrap();
    let removed = runs
        .iter()
        .position(|r| *r == "ip addr del 10.1.0.1/24 dev eth1")
        .unwrap();
    assert!(added < removed);
    assert_eq!(g.file("/mr/dnsmasq.conf").unwrap(), good_dnsmasq);
    assert_eq!(g.file("/mr/state").unwrap(), good_state);
    assert!(e
        .to_string()
        .contains("putting the previous configuration back failed too"));
}

#[test]
fn the_log_keeps_its_last_lines_at_the_files_level() {
    let mut g = Fake::new(&["eth0"]);
    g.read_only.push(PathBuf::from("/ps/net/ipv4/ip_forward"));
    update(
        &mut g,
        &paths(),
        "log level warn\nip flush\nip add 0 10.0.0.1/24\n",
    )
    .unwrap();
    let log = &g.tags.last().unwrap().1;
    assert_eq!(log, "2024/01/02 03:04:05 WARN minirouter: cannot set /ps/net/ipv4/ip_forward: Read-only file system\n");
    for _ in 0..25 {
        update(&mut g, &paths(), "log level debug\n").unwrap();
    }
    let log = &g.tags.last().unwrap().1;
    assert_eq!(log.lines().count(), 20);
    assert!(log.ends_with("INFO minirouter: configuration applied\n"));
    assert_eq!(g.file("/mr/log").unwrap(), log);
}

#[test]
fn counters_are_tagged_per_interface() {
    assert_eq!(
        counter_tags("eth0", "1234\n", "99\n"),
        [
            ("minirouter_eth0_rx_bytes".to_string(), "1234".to_string()),
            ("minirouter_eth0_tx_bytes".to_string(), "99".to_string()),
        ]
    );
}
