use super::super::model::State;
use super::super::plan::{plan, restore, Action, Paths, Plan, Tolerate};
use super::state_of;
use std::path::PathBuf;

fn paths() -> Paths {
    Paths {
        dir: PathBuf::from("/mr"),
        proc_sys: PathBuf::from("/ps"),
    }
}

fn guest() -> Vec<String> {
    vec!["eth0".into(), "eth1".into(), "lo".into()]
}

/// A step as one line: what the tests compare.
fn show(plan: &Plan, checks: bool) -> Vec<String> {
    let steps = if checks { &plan.checks } else { &plan.steps };
    steps
        .iter()
        .map(|s| {
            let what = match &s.action {
                Action::Write { path, .. } => format!("write {}", path.display()),
                Action::Set { path, value } => format!("set {} {value}", path.display()),
                Action::Run {
                    argv,
                    tolerate: Tolerate::Nothing,
                } => argv.join(" "),
                Action::Run { argv, .. } => format!("{} (tolerant)", argv.join(" ")),
                Action::Stop { pidfile } => format!("stop {}", pidfile.display()),
                Action::Start { argv, .. } => format!("start {}", argv.join(" ")),
            };
            format!("{}: {what}", s.line)
        })
        .collect()
}

const FIRST: &str = "log level error
ip flush
ip add 0 1.2.3.4/24
ip add 1 dhcp
ip add lo 10.0.0.1/32
dnsmasq flush
dnsmasq dhcp range 1.2.3.4 1.2.3.5 1.2.3.254
route add default gw 1.2.3.1
dnsmasq commit
bird flush
bird static 3.0.0.0/24 1.2.3.9 null
bird routerid 10.0.0.1
bird commit
fw flush
fw default drop
fw accept in 0 1.2.3.0/24 all
";

#[test]
fn a_first_update_sets_everything_after_checking_it() {
    let (next, commits) = state_of(FIRST);
    let p = plan(&State::default(), &next, &commits, &guest(), &paths()).unwrap();
    assert_eq!(
        show(&p, true),
        [
            "9: write /mr/next/dnsmasq.conf",
            "9: dnsmasq --test -C /mr/next/dnsmasq.conf",
            "13: write /mr/next/bird.conf",
            "13: bird -p -c /mr/next/bird.conf",
            "14: write /mr/next/firewall.nft",
            "14: nft -c -f /mr/next/firewall.nft",
        ]
    );
    assert_eq!(
        show(&p, false),
        [
            "0: set /ps/net/ipv4/ip_forward 1",
            "0: set /ps/net/ipv6/conf/all/forwarding 1",
            "3: ip link set eth0 up",
            "3: ip addr add 1.2.3.4/24 dev eth0 (tolerant)",
            "4: ip link set eth1 up",
            "4: dhclient eth1",
            "5: ip link set lo up",
            "5: ip addr add 10.0.0.1/32 dev lo (tolerant)",
            "8: ip route replace default via 1.2.3.1",
            "9: write /mr/dnsmasq.conf",
            "9: stop /mr/dnsmasq.pid",
            "9: start dnsmasq -C /mr/dnsmasq.conf",
            "13: write /mr/bird.conf",
            "13: stop /mr/bird.pid",
            "13: start bird -c /mr/bird.conf -s /mr/bird.ctl -P /mr/bird.pid",
            "14: write /mr/firewall.nft",
            "14: nft -f /mr/firewall.nft",
        ]
    );
    // A tool's complaint about its file is traced back to the file line.
    let blame = p.checks[5].blame.as_ref().unwrap();
    let rule = blame
        .rendered
        .text
        .lines()
        .position(|l| l.contains("iifname"))
        .unwrap();
    assert_eq!(blame.rendered.origin(rule + 1), 16);
}

#[test]
fn a_later_update_changes_only_what_changed() {
    let (prev, _) = state_of(FIRST);
    // minimega's next commit: no ip lines unless they changed, every
    // section flushed and committed.
    let (next, commits) = prev.apply(
        &super::super::parse::parse(
            "log level error
ip flush
ip add 0 1.2.3.4/24
ip add 0 5.6.7.8/24
dnsmasq flush
dnsmasq dhcp range 1.2.3.4 1.2.3.5 1.2.3.254
route del default
",
        )
        .unwrap(),
    );
    let p = plan(&prev, &next, &commits, &guest(), &paths()).unwrap();
    assert!(p.checks.is_empty(), "{:?}", show(&p, true));
    assert_eq!(
        show(&p, false),
        [
            "0: set /ps/net/ipv4/ip_forward 1",
            "0: set /ps/net/ipv6/conf/all/forwarding 1",
            "0: dhclient -r eth1 (tolerant)",
            "0: ip addr del 10.0.0.1/32 dev lo (tolerant)",
            "3: ip link set eth0 up",
            "4: ip addr add 5.6.7.8/24 dev eth0 (tolerant)",
            "0: ip route del default via 1.2.3.1 (tolerant)",
        ]
    );
}

#[test]
fn services_with_nothing_to_do_are_stopped() {
    let (prev, _) = state_of(FIRST);
    let (next, commits) = prev.apply(
        &super::super::parse::parse("dnsmasq flush\ndnsmasq commit\nbird flush\nbird commit\n")
            .unwrap(),
    );
    let p = plan(&prev, &next, &commits, &guest(), &paths()).unwrap();
    let steps = show(&p, false);
    assert!(steps.contains(&"2: stop /mr/dnsmasq.pid".to_string()));
    assert!(steps.contains(&"4: stop /mr/bird.pid".to_string()));
    assert!(!steps
        .iter()
        .any(|s| s.contains("dnsmasq -C") || s.contains("bird -c")));
}

#[test]
fn an_interface_the_guest_lacks_is_its_lines_error() {
    let (next, commits) = state_of("ip flush\nip add 2 1.2.3.4/24\n");
    let e = plan(&State::default(), &next, &commits, &guest(), &paths()).unwrap_err();
    assert_eq!(
        (e.line, e.reason.as_str()),
        (2, "no interface 2: the guest has 2 (eth0 eth1)")
    );
}

#[test]
fn restoring_rewrites_every_service_from_the_previous_state() {
    let (prev, _) = state_of(FIRST);
    let (next, _) = prev
        .apply(&super::super::parse::parse("ip flush\nip add 0 9.9.9.9/24\nfw flush\n").unwrap());
    let p = restore(&prev, &next, &guest(), &paths()).unwrap();
    assert!(p.checks.is_empty());
    // What each step does, whichever line it names.
    let steps: Vec<String> = show(&p, false)
        .iter()
        .map(|s| s.split_once(": ").unwrap().1.to_string())
        .collect();
    for want in [
        "ip addr del 9.9.9.9/24 dev eth0 (tolerant)",
        "ip addr add 1.2.3.4/24 dev eth0 (tolerant)",
        "dhclient eth1",
        "start dnsmasq -C /mr/dnsmasq.conf",
        "start bird -c /mr/bird.conf -s /mr/bird.ctl -P /mr/bird.pid",
        "nft -f /mr/firewall.nft",
    ] {
        assert!(
            steps.contains(&want.to_string()),
            "{want} not in {steps:#?}"
        );
    }
}

#[test]
fn a_commit_of_an_unchanged_service_only_starts_it_if_it_is_down() {
    let (prev, _) = state_of(FIRST);
    let (next, commits) = prev.apply(&super::super::parse::parse(FIRST).unwrap());
    let p = plan(&prev, &next, &commits, &guest(), &paths()).unwrap();
    let steps = show(&p, false);
    assert!(steps.contains(&"9: start dnsmasq -C /mr/dnsmasq.conf".to_string()));
    assert!(steps
        .contains(&"13: start bird -c /mr/bird.conf -s /mr/bird.ctl -P /mr/bird.pid".to_string()));
    assert!(!steps.iter().any(|s| s.contains("stop")), "{steps:#?}");
    // The addresses are there already: only the links are set up.
    assert!(!steps.iter().any(|s| s.contains("addr add")), "{steps:#?}");
}
