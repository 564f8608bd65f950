//! What `router VM` prints, from tests/router*.want (which show it with
//! the end trimmed) and router_test.go. Lines are joined by hand so the
//! trailing blanks of Go's tabwriter stay visible. minimega's wants are
//! of container routers, which it shows without a firewall; ours show the
//! firewall's default action as for a VM, since they take `fw` forms.

use super::vm;

fn lines(l: &[&str]) -> String {
    let mut s = l.join("\n");
    s.push('\n');
    s
}

#[test]
fn interfaces_and_loopbacks() {
    let mut r = vm(2);
    r.interface_add("0", "1.2.3.4/24", false).unwrap();
    r.interface_add("0", "dhcp", false).unwrap();
    r.interface_add("1", "5.6.7.8/16", false).unwrap();
    r.interface_add("2", "10.0.0.3/32", true).unwrap();
    r.interface_add("0", "10.0.0.1/32", true).unwrap();
    r.interface_add("1", "10.0.0.2/32", true).unwrap();
    assert_eq!(
        r.summary(Some("")),
        lines(&[
            "IPs:",
            "Network: 0: [1.2.3.4/24 dhcp]",
            "Network: 1: [5.6.7.8/16]",
            "Loopback IPs:",
            "10.0.0.1/32",
            "10.0.0.2/32",
            "10.0.0.3/32",
            "",
            "Firewall Rules:",
            "  Default Action: accept",
            "Log:",
            "\t",
        ])
    );
}

#[test]
fn dhcp_servers_in_go_tabwriter_columns() {
    let mut r = vm(2);
    r.dhcp_range("1.2.3.4", "1.2.3.5", "1.2.3.254");
    r.dhcp_router("1.2.3.4", "1.2.3.1");
    r.dhcp_dns("1.2.3.4", "8.8.8.8");
    r.dhcp_static("1.2.3.4", "00:11:22:33:44:56", "1.2.3.67");
    r.dhcp_static("1.2.3.4", "00:11:22:33:44:55", "1.2.3.66");
    r.dhcp_range("5.6.7.8", "1.1.1.1", "1.1.1.2");
    assert_eq!(
        r.summary(Some("")),
        lines(&[
            "IPs:",
            "Network: 0: []",
            "Network: 1: []",
            "",
            "Listen address: 1.2.3.4",
            "Low address:    1.2.3.5",
            "High address:   1.2.3.254",
            "Router:         1.2.3.1",
            "DNS:            8.8.8.8",
            "Static IPs:     ",
            "     00:11:22:33:44:55 1.2.3.66",
            "     00:11:22:33:44:56 1.2.3.67",
            "",
            "Listen address: 5.6.7.8",
            "Low address:    1.1.1.1",
            "High address:   1.1.1.2",
            "Router:         ",
            "DNS:            ",
            "Static IPs:     ",
            "",
            "Firewall Rules:",
            "  Default Action: accept",
            "Log:",
            "\t",
        ])
    );
}

#[test]
fn dns_upstream_gateway_and_router_advertisements() {
    let mut r = vm(2);
    r.interface_add("0", "1.2.3.4/24", false).unwrap();
    r.interface_add("0", "2001:1::1/64", false).unwrap();
    r.dns_add("2.2.2.2", "bar.com");
    r.dns_add("1.1.1.1", "foo.com");
    r.dns_add("1.1.1.1", "www.foo.com");
    r.set_upstream("8.8.8.8");
    r.set_gateway("1.2.3.1");
    r.ra_add("2001:2::");
    r.ra_add("2001:1::");
    assert_eq!(
        r.summary(Some("")),
        lines(&[
            "IPs:",
            "Network: 0: [1.2.3.4/24 2001:1::1/64]",
            "Network: 1: []",
            "",
            "DNS:",
            "1.1.1.1\tfoo.com",
            "1.1.1.1\twww.foo.com",
            "2.2.2.2\tbar.com",
            "",
            "Upstream DNS: 8.8.8.8",
            "Default Gateway: 1.2.3.1",
            "Router Advertisements:",
            "2001:1::",
            "2001:2::",
            "",
            "Firewall Rules:",
            "  Default Action: accept",
            "Log:",
            "\t",
        ])
    );
}

#[test]
fn static_and_named_routes() {
    let mut r = vm(2);
    r.route_static("3.0.0.0/24", "2.0.0.2", None);
    r.route_static("0.0.0.0/0", "2.0.0.2", Some("defaultroute"));
    r.route_static("11.0.0.0/24", "0", Some("foobar"));
    r.route_static("10.0.0.0/24", "0", Some("foobar"));
    assert_eq!(
        r.summary(Some("")),
        lines(&[
            "IPs:",
            "Network: 0: []",
            "Network: 1: []",
            "",
            "Static Routes:",
            "3.0.0.0/24\t2.0.0.2",
            "",
            "Named Static Routes:",
            "defaultroute",
            "\t0.0.0.0/0\t2.0.0.2",
            "foobar",
            "\t10.0.0.0/24",
            "\t11.0.0.0/24",
            "",
            "Firewall Rules:",
            "  Default Action: accept",
            "Log:",
            "\t",
        ])
    );
}

#[test]
fn ospf_and_bgp() {
    let mut r = vm(2);
    r.route_ospf("0", "lo");
    r.route_ospf("0", "0");
    r.route_ospf_export("0", "ibgpnet");
    r.route_ospf_export("0", "192.168.1.0/24");
    r.route_bgp("ebgp", true, "192.168.1.1", "100").unwrap();
    r.route_bgp("ebgp", false, "192.168.1.2", "200").unwrap();
    r.route_bgp_export("ebgp", false, "ebgpnet");
    r.route_bgp_export("ebgp", true, "0");
    r.route_bgp_rrclient("ibgp");
    assert_eq!(
        r.summary(Some("")),
        lines(&[
            "IPs:",
            "Network: 0: []",
            "Network: 1: []",
            "",
            "OSPF Area:\t0",
            "Interfaces:",
            "\t0",
            "\tlo",
            "OSPF Export Networks or Routes:",
            "\t192.168.1.0/24",
            "\tibgpnet",
            "",
            "BGP Process Name:\tebgp",
            "BGP Local IP:\t192.168.1.1",
            "BGP Local As:\t100",
            "BGP Neighbor IP:\t192.168.1.2",
            "BGP Neighbor As:\t200",
            "BGP RouteReflector:\tfalse",
            "BGP Export Networks or Routes:",
            "\tall",
            "\tebgpnet",
            "",
            "BGP Process Name:\tibgp",
            "BGP Local IP:\t",
            "BGP Local As:\t0",
            "BGP Neighbor IP:\t",
            "BGP Neighbor As:\t0",
            "BGP RouteReflector:\ttrue",
            "",
            "Firewall Rules:",
            "  Default Action: accept",
            "Log:",
            "\t",
        ])
    );
}

#[test]
fn a_vm_shows_its_firewall_and_log_lines() {
    let mut r = vm(2);
    r.fw_default("drop");
    r.fw_rule("0", false, "", "192.168.0.5:80", "tcp", "accept")
        .unwrap();
    r.fw_rule("1", true, "10.0.0.0/24", "10.1.0.0/24", "icmp", "drop")
        .unwrap();
    r.fw_chain_rule("allow-http", "", "192.168.0.5:80", "tcp", "accept")
        .unwrap();
    r.fw_chain_default("zeta", "reject");
    r.fw_chain_apply("allow-http", true, "1").unwrap();
    assert_eq!(
        r.summary(Some("first\nsecond\n")),
        lines(&[
            "IPs:",
            "Network: 0: []",
            "Network: 1: []",
            "",
            "Firewall Rules:",
            "  (iface 0) outgoing: <any> --> 192.168.0.5:80 via tcp -> accept",
            "  (iface 1) incoming: 10.0.0.0/24 --> 10.1.0.0/24 via icmp -> drop",
            "  (iface 1) incoming: <any> --> <any> via <any> -> allow-http",
            "  Default Action: drop",
            "Firewall Chains:",
            "  allow-http: <any> --> 192.168.0.5:80 via tcp -> accept",
            "  Default Action (allow-http): drop",
            "  Default Action (zeta): reject",
            "Log:",
            "\tfirst",
            "\tsecond",
            "\t",
        ])
    );
}

#[test]
fn without_a_vm_no_log_and_a_vm_always_shows_its_default_action() {
    // router_test.go's TestInterfaceAdd.
    let mut r = vm(3);
    r.interface_add("0", "192.168.1.1/24", false).unwrap();
    r.interface_add("1", "192.168.2.1/24", false).unwrap();
    r.interface_add("2", "192.168.3.1/24", false).unwrap();
    r.interface_add("4", "192.168.4.1/32", true).unwrap();
    assert_eq!(
        r.summary(None),
        lines(&[
            "IPs:",
            "Network: 0: [192.168.1.1/24]",
            "Network: 1: [192.168.2.1/24]",
            "Network: 2: [192.168.3.1/24]",
            "Loopback IPs:",
            "192.168.4.1/32",
            "",
            "Firewall Rules:",
            "  Default Action: accept",
        ])
    );
    assert_eq!(vm(0).summary(None), "IPs:\n\n");
}
