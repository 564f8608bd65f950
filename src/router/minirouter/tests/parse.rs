use super::super::super::LogLevel;
use super::super::line::words;
use super::super::model::{Cidr, Dir, Endpoint, Iface, IfaceAddr, Proto, Verdict};
use super::super::parse::{parse, Cmd};

fn one(line: &str) -> Cmd {
    parse(line).unwrap().remove(0).1
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn words_split_on_blanks_and_read_go_quotes() {
    assert_eq!(
        words("bird ospf 0 0 \"cost\" \"10\"").unwrap(),
        ["bird", "ospf", "0", "0", "cost", "10"]
    );
    assert_eq!(
        words("a \"b c\\\"\\t\\x41\\u00e9\"  d").unwrap(),
        ["a", "b c\"\tAé", "d"]
    );
    assert_eq!(words("a \"b").unwrap_err(), "no closing quote");
    assert_eq!(
        words("a \"b\"c").unwrap_err(),
        "text right after a closing quote"
    );
    assert!(words("   ").unwrap().is_empty());
}

#[test]
fn every_line_minimega_writes_is_read() {
    let file = "log level debug
ip flush
ip add 0 1.2.3.4/24
ip add 1 dhcp
ip add lo 10.0.0.1/32
dnsmasq flush
dnsmasq dhcp range 1.2.3.4 1.2.3.5 1.2.3.254
dnsmasq dhcp option router 1.2.3.4 1.2.3.1
dnsmasq dhcp option dns 1.2.3.4 8.8.8.8
dnsmasq dhcp static 1.2.3.4 00:1F:53:02:0b:51 1.2.3.250
dnsmasq dns 1.1.1.1 foo.com
dnsmasq upstream 8.8.8.8
route add default gw 1.2.3.1
dnsmasq ra 2001:1::
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
fw chain web action accept 192.168.0.5:80 tcp
fw chain web default action drop
fw accept out 0 192.168.0.5:80 tcp
fw drop in 1 10.0.0.0/24 10.1.0.0/24 icmp
fw chain web apply in 1
";
    let cmds = parse(file).unwrap();
    assert_eq!(cmds.len(), 35);
    assert_eq!(cmds[0], (1, Cmd::LogLevel(LogLevel::Debug)));
    assert_eq!(cmds[3].1, Cmd::IpAdd(Iface::Index(1), IfaceAddr::Dhcp));
    assert_eq!(
        cmds[9].1,
        Cmd::DhcpStatic {
            tag: "1.2.3.4".into(),
            mac: "00:1f:53:02:0b:51".into(),
            ip: "1.2.3.250".parse().unwrap()
        }
    );
    assert_eq!(cmds[12].1, Cmd::DefaultRoute("1.2.3.1".parse().unwrap()));
    assert_eq!(
        cmds[17].1,
        Cmd::Static {
            net: Cidr::parse("10.0.0.0/8").unwrap(),
            via: None,
            name: Some("ebgpnet".into())
        }
    );
    assert_eq!(
        cmds[19].1,
        Cmd::OspfOption {
            area: "0".into(),
            iface: Iface::Index(0),
            key: "cost".into(),
            value: "10".into()
        }
    );
    assert_eq!(
        cmds[20].1,
        Cmd::OspfNetwork {
            area: "0".into(),
            net: Cidr::parse("192.168.1.0/24").unwrap()
        }
    );
    assert_eq!(
        cmds[21].1,
        Cmd::OspfExport {
            area: "0".into(),
            name: "ibgpnet".into()
        }
    );
    assert_eq!(cmds[26].1, Cmd::RouterId(Some("10.2.0.2".parse().unwrap())));
    let Cmd::FwRule {
        verdict,
        dir,
        iface,
        m,
    } = &cmds[33].1
    else {
        panic!()
    };
    assert_eq!(
        (*verdict, *dir, *iface),
        (Verdict::Drop, Dir::In, Iface::Index(1))
    );
    assert_eq!(
        m.src,
        Some(Endpoint {
            net: Cidr::parse("10.0.0.0/24").unwrap(),
            port: None
        })
    );
    assert_eq!(m.proto, Proto::Number(1, "icmp"));
    assert_eq!(m.text, "10.0.0.0/24 10.1.0.0/24 icmp");
}

#[test]
fn what_minimega_writes_after_a_clear_is_read_as_unset() {
    assert_eq!(
        one("bird bgp ibgp local  0"),
        Cmd::BgpLocal {
            name: "ibgp".into(),
            peer: None
        }
    );
    assert_eq!(one("bird routerid 0.0.0.0"), Cmd::RouterId(None));
    // minimega may choose an IPv6 router ID; bird cannot use it.
    assert_eq!(one("bird routerid 2001:1::1"), Cmd::RouterId(None));
    assert_eq!(
        one("bird static 1.0.0.0/8 0 null"),
        Cmd::Static {
            net: Cidr::parse("1.0.0.0/8").unwrap(),
            via: None,
            name: None
        }
    );
}

#[test]
fn firewall_matches_know_ports_and_protocols() {
    let Cmd::FwChainRule { m, .. } =
        one("fw chain c action accept 10.0.0.0/8:1024 1.2.3.4:53 tcp_udp")
    else {
        panic!()
    };
    assert_eq!(m.src.unwrap().port, Some(1024));
    assert_eq!(m.dst.net, Cidr::parse("1.2.3.4/32").unwrap());
    assert_eq!(m.proto, Proto::TcpUdp);
    assert!(matches!(
        one("fw accept in lo 1.2.3.4 all"),
        Cmd::FwRule {
            iface: Iface::Lo,
            ..
        }
    ));
    assert!(
        matches!(one("fw accept in 0 1.2.3.4 47"), Cmd::FwRule { m, .. } if m.proto == Proto::Number(47, ""))
    );
}

#[test]
fn a_bad_line_is_named_with_its_number() {
    assert_eq!(
        err("log level error\n\n# comment\nip add 0 1.2.3.4\n"),
        "line 4: `ip add 0 1.2.3.4`: `1.2.3.4` is not an address with a prefix length (CIDR)"
    );
    assert_eq!(
        err("ip add lo dhcp"),
        "line 1: `ip add lo dhcp`: a loopback gets no address by DHCP"
    );
    assert_eq!(
        err("ip add eth0 1.2.3.4/24"),
        "line 1: `ip add eth0 1.2.3.4/24`: `eth0` is no interface index (a number, or lo)"
    );
    assert_eq!(
        err("frobnicate"),
        "line 1: `frobnicate`: not a minirouter command"
    );
    assert_eq!(
        err("log level loud"),
        "line 1: `log level loud`: `loud` is not a log level"
    );
    assert_eq!(
        err("bird static 1.0.0.0/8 2001::1 null"),
        "line 1: `bird static 1.0.0.0/8 2001::1 null`: the next hop is not of the network's family"
    );
    assert_eq!(
        err("bird static 1.0.0.0/8 1.1.1.1 a;b"),
        "line 1: `bird static 1.0.0.0/8 1.1.1.1 a;b`: `a;b` is not a name (letters, digits, `_`, `-`, `.`)"
    );
    assert_eq!(
        err("bird ospf 0 0 \"cost\" \"1; }\""),
        "line 1: `bird ospf 0 0 \"cost\" \"1; }\"`: OSPF option `cost` `1; }` is not one bird could take"
    );
    assert_eq!(
        err("bird ospf x 0"),
        "line 1: `bird ospf x 0`: `x` is not an OSPF area (a number or a dotted quad)"
    );
    assert_eq!(
        err("bird bgp b local 1.1.1.1 asn"),
        "line 1: `bird bgp b local 1.1.1.1 asn`: `asn` is not an AS number"
    );
    assert_eq!(
        err("dnsmasq dhcp static t 00:11:22 1.1.1.1"),
        "line 1: `dnsmasq dhcp static t 00:11:22 1.1.1.1`: `00:11:22` is not a MAC address"
    );
    assert_eq!(
        err("dnsmasq dhcp option router t 2001::1"),
        "line 1: `dnsmasq dhcp option router t 2001::1`: DHCP's router option takes an IPv4 address"
    );
    assert_eq!(
        err("fw default reject"),
        "line 1: `fw default reject`: the default is accept or drop"
    );
    assert_eq!(
        err("fw accept in 0 1.2.3.4:80 icmp"),
        "line 1: `fw accept in 0 1.2.3.4:80 icmp`: ports need tcp, udp, sctp, udplite, dccp or tcp_udp, not `icmp`"
    );
    assert_eq!(
        err("fw accept in 0 2001::1 tcp"),
        "line 1: `fw accept in 0 2001::1 tcp`: malformed destination `2001::1`"
    );
    assert_eq!(
        err("fw accept in 0 host.example tcp"),
        "line 1: `fw accept in 0 host.example tcp`: destination `host.example` is not an IPv4 address or network"
    );
    assert_eq!(
        err("fw accept in 0 1.2.3.4 smtp"),
        "line 1: `fw accept in 0 1.2.3.4 smtp`: `smtp` is not a protocol this firewall knows"
    );
    assert_eq!(
        err("fw accept sideways 0 1.2.3.4 tcp"),
        "line 1: `fw accept sideways 0 1.2.3.4 tcp`: `sideways` is not in or out"
    );
    assert_eq!(
        err("fw chain c apply in"),
        "line 1: `fw chain c apply in`: expected fw chain NAME default action V, action V [SRC] DST PROTO, or apply in|out INDEX"
    );
}
