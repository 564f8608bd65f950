use super::super::bird;
use super::super::dnsmasq::{self, DnsmasqFiles};
use super::super::nft;
use super::super::render::{interface_order, Names};
use super::{lines, state_of};

fn guest(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn interfaces_are_ordered_by_their_number_without_lo() {
    assert_eq!(
        interface_order(&guest(&["eth10", "lo", "eth2", "ens3", "bond", "veth0"])),
        ["veth0", "eth2", "ens3", "eth10", "bond"]
    );
    let names = Names::new(&guest(&["eth1", "eth0"]));
    assert_eq!(
        names.get(super::super::model::Iface::Index(1), 7).unwrap(),
        "eth1"
    );
    let e = names
        .get(super::super::model::Iface::Index(2), 7)
        .unwrap_err();
    assert_eq!(
        (e.line, e.reason.as_str()),
        (7, "no interface 2: the guest has 2 (eth0 eth1)")
    );
}

#[test]
fn dnsmasq_serves_dhcp_dns_and_router_advertisements() {
    let (s, c) = state_of(
        "dnsmasq flush
dnsmasq dhcp range 1.2.3.4 1.2.3.5 1.2.3.254
dnsmasq dhcp option router 1.2.3.4 1.2.3.254
dnsmasq dhcp option dns 1.2.3.4 1.2.3.4
dnsmasq dhcp static 1.2.3.4 00:1F:53:02:0b:51 1.2.3.250
dnsmasq dhcp static 1.0.0.0 00:1f:53:02:0b:52 1.0.0.3
dnsmasq dhcp option dns 1.0.0.0 2001::53
dnsmasq dns 1.1.1.1 foo.com
dnsmasq dns 2.2.2.2 foo.com
dnsmasq dns 2001::5 bar.com
dnsmasq upstream 8.8.8.8
route del default
dnsmasq ra 2001:1::
dnsmasq ra 2001:2::/64
dnsmasq commit
",
    );
    let files = DnsmasqFiles {
        pid: "/run/mr/dnsmasq.pid".into(),
        leases: "/run/mr/dnsmasq.leases".into(),
    };
    let r = dnsmasq::render(&s.dnsmasq, &files, c.dnsmasq.unwrap());
    assert_eq!(
        r.text,
        lines(&[
            "# minirouter's dnsmasq configuration, rewritten at each update",
            "no-resolv",
            "bind-dynamic",
            "pid-file=/run/mr/dnsmasq.pid",
            "dhcp-leasefile=/run/mr/dnsmasq.leases",
            "user=root",
            "dhcp-lease-max=1000000",
            "server=8.8.8.8",
            "dhcp-range=set:1.0.0.0,1.0.0.0,static",
            "dhcp-host=set:1.0.0.0,00:1f:53:02:0b:52,1.0.0.3",
            "dhcp-option=tag:1.0.0.0,option6:dns-server,[2001::53]",
            "dhcp-range=set:1.2.3.4,1.2.3.5,1.2.3.254",
            "dhcp-host=set:1.2.3.4,00:1f:53:02:0b:51,1.2.3.250",
            "dhcp-option=tag:1.2.3.4,option:router,1.2.3.254",
            "dhcp-option=tag:1.2.3.4,option:dns-server,1.2.3.4",
            "host-record=bar.com,2001::5",
            "host-record=foo.com,1.1.1.1,2.2.2.2",
            "enable-ra",
            "dhcp-range=2001:1::,ra-names",
            "dhcp-range=2001:2::,ra-names,64",
        ])
    );
    assert_eq!((r.origin(2), r.origin(8)), (0, 15));
}

const BIRD_FILE: &str = "bird flush
bird static 3.0.0.0/24 2.0.0.2 null
bird static 9.0.0.0/8 null null
bird static 2001:3::/64 2001:1::2 null
bird static 10.0.0.0/8 null ebgpnet
bird static 192.168.1.0/24 10.2.0.2 ibgp-net
bird ospf 0 0
bird ospf 0 0 \"cost\" \"10\"
bird ospf 0 lo
bird ospf 0 filter 192.168.1.0/24
bird ospf 0 filter ibgp-net
bird bgp ebgp local 192.168.1.1 100
bird bgp ebgp neighbor 192.168.1.2 200
bird bgp ebgp filter all
bird bgp ebgp filter ebgpnet
bird bgp ibgp local  0
bird bgp ibgp neighbor 10.2.0.1 100
bird routerid 10.2.0.2
bird commit
";

#[test]
fn bird_routes_statically_by_ospf_and_bgp() {
    let (s, c) = state_of(BIRD_FILE);
    let names = Names::new(&guest(&["eth1", "lo", "eth0"]));
    let (r, warnings) = bird::render(&s.bird, &s.addrs, &names, c.bird.unwrap()).unwrap();
    assert_eq!(
        warnings,
        ["bgp ibgp: no local or neighbor address, not started"]
    );
    assert_eq!(
        r.text,
        lines(&[
            "# minirouter's bird configuration, rewritten at each update",
            "router id 10.2.0.2;",
            "protocol device {",
            "\tscan time 60;",
            "}",
            "protocol kernel kernel4 {",
            "\tscan time 60;",
            "\tipv4 {",
            "\t\timport none;",
            "\t\texport all;",
            "\t};",
            "}",
            "protocol kernel kernel6 {",
            "\tscan time 60;",
            "\tipv6 {",
            "\t\timport none;",
            "\t\texport all;",
            "\t};",
            "}",
            "protocol static static4 {",
            "\tipv4;",
            "\tcheck link;",
            "\troute 3.0.0.0/24 via 2.0.0.2;",
            "\troute 9.0.0.0/8 unreachable;",
            "}",
            "protocol static static6 {",
            "\tipv6;",
            "\tcheck link;",
            "\troute 2001:3::/64 via 2001:1::2;",
            "}",
            "protocol static static_ebgpnet {",
            "\tipv4 {",
            "\t\timport all;",
            "\t};",
            "\troute 10.0.0.0/8 unreachable;",
            "}",
            "protocol static static_ibgp_net {",
            "\tipv4 {",
            "\t\timport all;",
            "\t};",
            "\troute 192.168.1.0/24 via 10.2.0.2;",
            "}",
            "protocol ospf v2 ospf4 {",
            "\tipv4 {",
            "\t\timport all;",
            "\t\texport filter {",
            "\t\t\tif proto = \"static_ibgp_net\" then accept;",
            "\t\t\treject;",
            "\t\t};",
            "\t};",
            "\tarea 0 {",
            "\t\tnetworks {",
            "\t\t\t192.168.1.0/24;",
            "\t\t};",
            "\t\tinterface \"eth0\" {",
            "\t\t\tcost 10;",
            "\t\t};",
            "\t\tinterface \"lo\" {",
            "\t\t};",
            "\t};",
            "}",
            "protocol bgp bgp_ebgp {",
            "\tlocal 192.168.1.1 as 100;",
            "\tneighbor 192.168.1.2 as 200;",
            "\tipv4 {",
            "\t\timport all;",
            "\t\texport filter {",
            "\t\t\tif source = RTS_BGP || proto = \"static_ebgpnet\" then accept;",
            "\t\t\treject;",
            "\t\t};",
            "\t};",
            "}",
        ])
    );
    // The interface block is the `bird ospf 0 0` line's.
    let at = r
        .text
        .lines()
        .position(|l| l.contains("interface \"eth0\""))
        .unwrap();
    assert_eq!(r.origin(at + 1), 7);
}

#[test]
fn bird_runs_ospf_v3_too_when_the_router_has_ipv6() {
    let (s, c) = state_of(
        "ip add 0 2001:1::1/64\nbird ospf 1 0\nbird bgp b6 local 2001:1::1 65001\nbird bgp b6 neighbor 2001:1::2 65002\nbird commit\n",
    );
    let names = Names::new(&guest(&["eth0"]));
    let (r, _) = bird::render(&s.bird, &s.addrs, &names, c.bird.unwrap()).unwrap();
    // No IPv4 address: a router ID from the IPv6 one.
    assert!(r.text.contains("router id 0.0.0.1;\n"));
    assert!(r.text.contains("protocol ospf v2 ospf4 {\n"));
    assert!(r.text.contains(
        "protocol ospf v3 ospf6 {\n\tipv6 {\n\t\timport all;\n\t\texport none;\n\t};\n\tarea 1 {\n\t\tinterface \"eth0\" {\n\t\t};\n\t};\n}\n"
    ));
    assert!(r
        .text
        .contains("\tneighbor 2001:1::2 as 65002;\n\tipv6 {\n\t\timport all;\n\t\texport none;\n"));
}

#[test]
fn bird_refuses_what_it_cannot_name() {
    let (s, c) = state_of("bird ospf 0 3\nbird commit\n");
    let e = bird::render(
        &s.bird,
        &s.addrs,
        &Names::new(&guest(&["eth0"])),
        c.bird.unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.line, 1);
    let (s, _) =
        state_of("bird static 1.0.0.0/8 null a-b\nbird static 2.0.0.0/8 null a.b\nbird commit\n");
    let e = bird::render(&s.bird, &s.addrs, &Names::default(), 3).unwrap_err();
    assert_eq!(
        (e.line, e.reason.as_str()),
        (
            3,
            "names `a-b` and `a.b` are one symbol to bird and nftables"
        )
    );
    let (s, _) = state_of("bird static 1.0.0.0/8 null n\nbird static 2001::/16 null n\n");
    let e = bird::render(&s.bird, &s.addrs, &Names::default(), 9).unwrap_err();
    assert_eq!(e.reason, "named route n mixes IPv4 and IPv6");
}

const FW_FILE: &str = "fw flush
fw default drop
fw chain allow-http action accept 192.168.0.5:80 tcp
fw chain allow-http action accept 10.0.0.0/24:5000 192.168.0.5:80 tcp
fw chain allow-http default action drop
fw chain zeta action reject 1.2.3.4 udp
fw chain zeta default action drop
fw accept out 0 192.168.0.5:80 tcp
fw drop in 1 10.0.0.0/24 10.1.0.0/24 icmp
fw accept in 1 0.0.0.0/0 tcp_udp
fw reject out 0 10.9.0.0/16:53 10.0.0.1 udp
fw chain allow-http apply in 1
";

#[test]
fn nftables_filters_forwarded_ipv4_as_iptables_did() {
    let (s, c) = state_of(FW_FILE);
    let names = Names::new(&guest(&["eth0", "eth1"]));
    let r = nft::render(s.firewall.as_ref().unwrap(), &names, c.firewall.unwrap()).unwrap();
    assert_eq!(
        r.text,
        lines(&[
            "# minirouter's firewall, rewritten at each update",
            "table ip minirouter",
            "delete table ip minirouter",
            "table ip minirouter {",
            "\tchain established {",
            "\t\tmeta l4proto { tcp, udp, icmp } ct state established,related accept",
            "\t}",
            "\tchain fw_allow_http {",
            "\t\tip daddr 192.168.0.5 tcp dport 80 accept",
            "\t\tip saddr 10.0.0.0/24 ip daddr 192.168.0.5 tcp sport 5000 tcp dport 80 accept",
            "\t\tdrop",
            "\t}",
            "\tchain fw_zeta {",
            "\t\tip daddr 1.2.3.4 meta l4proto udp reject",
            "\t\tdrop",
            "\t}",
            "\tchain forward {",
            "\t\ttype filter hook forward priority filter; policy drop;",
            "\t\tjump established",
            "\t\toifname \"eth0\" ip daddr 192.168.0.5 tcp dport 80 accept",
            "\t\tiifname \"eth1\" ip saddr 10.0.0.0/24 ip daddr 10.1.0.0/24 meta l4proto icmp drop",
            "\t\tiifname \"eth1\" meta l4proto { tcp, udp } accept",
            "\t\toifname \"eth0\" ip saddr 10.9.0.0/16 ip daddr 10.0.0.1 udp sport 53 reject",
            "\t\tiifname \"eth1\" jump fw_allow_http",
            "\t}",
            "}",
        ])
    );
    assert_eq!((r.origin(10), r.origin(20), r.origin(24)), (4, 8, 12));
}

#[test]
fn nftables_refuses_an_unknown_interface_or_chain() {
    let (s, _) = state_of("fw flush\nfw accept in 4 1.2.3.4 tcp\n");
    let e = nft::render(
        s.firewall.as_ref().unwrap(),
        &Names::new(&guest(&["eth0"])),
        1,
    )
    .unwrap_err();
    assert_eq!(
        (e.line, e.reason.as_str()),
        (2, "no interface 4: the guest has 1 (eth0)")
    );
    let (s, _) = state_of("fw flush\nfw chain ghost apply in 0\n");
    let e = nft::render(
        s.firewall.as_ref().unwrap(),
        &Names::new(&guest(&["eth0"])),
        1,
    )
    .unwrap_err();
    assert_eq!((e.line, e.reason.as_str()), (2, "no chain ghost to apply"));
}
