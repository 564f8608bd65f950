use super::super::model::{Iface, IfaceAddr, State, Verdict};
use super::super::parse::parse;
use super::state_of;

#[test]
fn a_file_without_ip_lines_keeps_the_addresses() {
    let (first, _) = state_of("ip flush\nip add 0 1.2.3.4/24\nip add lo 10.0.0.1/32\n");
    assert_eq!(first.addrs.len(), 2);
    let (second, c) =
        first.apply(&parse("log level info\ndnsmasq flush\ndnsmasq commit\n").unwrap());
    assert_eq!(second.addrs, first.addrs);
    assert_eq!(c.dnsmasq, Some(3));
    let (third, _) = second.apply(&parse("ip flush\nip add 1 dhcp\n").unwrap());
    assert_eq!(third.addrs.len(), 1);
    assert_eq!(
        (third.addrs[0].iface, third.addrs[0].addr),
        (Iface::Index(1), IfaceAddr::Dhcp)
    );
    assert_eq!(third.addrs[0].line, 2);
}

#[test]
fn flush_starts_a_section_afresh_and_lines_add_to_it() {
    let (s, _) = state_of(
        "dnsmasq dns 1.1.1.1 a.com\ndnsmasq dns 1.1.1.2 a.com\ndnsmasq dns 1.1.1.1 a.com\n",
    );
    assert_eq!(s.dnsmasq.hosts["a.com"].len(), 2);
    let (s, _) = s.apply(&parse("dnsmasq flush\ndnsmasq upstream 8.8.8.8\n").unwrap());
    assert!(s.dnsmasq.hosts.is_empty());
    assert!(s.dnsmasq.upstream.is_some());
}

#[test]
fn bird_flush_keeps_the_router_id() {
    let (s, _) = state_of("bird routerid 1.1.1.1\nbird static 1.0.0.0/8 2.2.2.2 null\n");
    let (s, c) = s.apply(&parse("bird flush\nbird commit\n").unwrap());
    assert!(s.bird.statics.is_empty());
    assert_eq!(s.bird.router_id, Some("1.1.1.1".parse().unwrap()));
    assert_eq!(c.bird, Some(2));
}

#[test]
fn the_firewall_is_the_files_only_when_it_says_so() {
    let (s, c) = state_of("dnsmasq flush\n");
    assert_eq!(s.firewall, None);
    assert_eq!(c.firewall, None);
    let (s, c) = state_of("fw flush\nfw default drop\nfw chain c default action reject\nfw chain c action accept 1.2.3.4 tcp\n");
    let fw = s.firewall.unwrap();
    assert_eq!(fw.default, Verdict::Drop);
    // The default, given first, is the chain's first rule, as iptables
    // appended it.
    assert_eq!(fw.chains[0].1[0].m, None);
    assert_eq!(c.firewall, Some(1));
}

#[test]
fn the_state_round_trips_through_its_lines() {
    let file = "log level warn
ip flush
ip add 0 1.2.3.4/24
ip add 1 dhcp
dnsmasq flush
dnsmasq dhcp range 1.2.3.4 1.2.3.5 1.2.3.254
dnsmasq dhcp option router 1.2.3.4 1.2.3.1
dnsmasq dhcp option dns 1.2.3.4 2001::53
dnsmasq dhcp static 1.2.3.4 00:1f:53:02:0b:51 1.2.3.250
dnsmasq dns 1.1.1.1 foo.com
dnsmasq upstream 8.8.8.8
route add default gw 1.2.3.1
dnsmasq ra 2001:1::/64
dnsmasq commit
bird flush
bird static 3.0.0.0/24 2.0.0.2 null
bird static 10.0.0.0/8 null ebgpnet
bird ospf 0 0
bird ospf 0 0 \"cost\" \"10\"
bird ospf 0 filter 192.168.1.0/24
bird ospf 0 filter ibgpnet
bird bgp ibgp local 10.2.0.2 100
bird bgp ibgp neighbor 10.2.0.1 100
bird bgp ibgp rrclient
bird bgp ibgp filter all
bird routerid 10.2.0.2
bird commit
fw flush
fw default drop
fw chain web action accept 10.0.0.0/8:99 192.168.0.5:80 tcp
fw chain web default action drop
fw accept out 0 192.168.0.5:80 tcp
fw chain web apply in 1
";
    let (s, _) = state_of(file);
    let text = s.to_lines();
    let (again, _) = State::default().apply(&parse(&text).unwrap());
    assert_eq!(again.to_lines(), text);
    assert_eq!(again.dnsmasq, s.dnsmasq);
    assert_eq!(again.bird.statics, s.bird.statics);
    assert_eq!(again.gateway.map(|g| g.via), s.gateway.map(|g| g.via));
    assert!(text.contains("bird ospf 0 0 \"cost\" \"10\"\n"));
    assert!(text.contains("fw chain web action accept 10.0.0.0/8:99 192.168.0.5:80 tcp\n"));
}
