//! The minirouter file (`writeConfig`). The expected files are the
//! tests/router*.want outputs (which minimega prints sorted) put back in
//! writeConfig's order by hand, with the firewall's `fw flush` and `fw
//! default` that ours writes for a container router too (minimega's
//! wants are of containers, which it wrote no firewall for).

use super::super::config::CcCommand;
use super::super::LogLevel;
use super::vm;

#[test]
fn addresses_and_loopback_choose_the_router_id() {
    let mut r = vm(2);
    r.interface_add("0", "1.2.3.4/24", false).unwrap();
    r.interface_add("1", "5.6.7.8/24", false).unwrap();
    r.interface_add("0", "10.0.0.1/32", true).unwrap();
    assert_eq!(
        r.write_config(),
        "log level error
ip flush
ip add 0 1.2.3.4/24
ip add 1 5.6.7.8/24
ip add lo 10.0.0.1/32
dnsmasq flush
route del default
dnsmasq commit
bird flush
bird routerid 10.0.0.1
bird commit
fw flush
fw default accept
"
    );
}

const DHCP: &str = "dnsmasq flush
dnsmasq dhcp range 1.2.3.4 1.2.3.5 1.2.3.254
dnsmasq dhcp option router 1.2.3.4 1.2.3.254
dnsmasq dhcp option dns 1.2.3.4 1.2.3.4
dnsmasq dhcp static 1.2.3.4 00:1f:53:02:0b:51 1.2.3.250
";

#[test]
fn dhcp_dns_and_ra_commits_with_a_sticky_router_id() {
    let mut r = vm(2);
    r.interface_add("0", "1.2.3.4/24", false).unwrap();
    r.interface_add("0", "5.6.7.8/24", false).unwrap();
    r.dhcp_router("1.2.3.4", "1.2.3.254");
    r.dhcp_dns("1.2.3.4", "1.2.3.4");
    r.dhcp_range("1.2.3.4", "1.2.3.5", "1.2.3.254");
    r.dhcp_static("1.2.3.4", "00:1f:53:02:0b:51", "1.2.3.250");
    let first = r.commit("vm0", None);
    assert_eq!(
        first.contents,
        format!(
            "log level error
ip flush
ip add 0 1.2.3.4/24
ip add 0 5.6.7.8/24
{DHCP}route del default
dnsmasq commit
bird flush
bird routerid 5.6.7.8
bird commit
fw flush
fw default accept
"
        )
    );
    r.committed();

    r.dns_add("1.1.1.1", "foo.com");
    r.dns_add("2.2.2.2", "bar.com");
    let second = r.commit("vm0", None).contents;
    r.committed();
    assert_eq!(
        second,
        format!(
            "log level error
{DHCP}dnsmasq dns 1.1.1.1 foo.com
dnsmasq dns 2.2.2.2 bar.com
route del default
dnsmasq commit
bird flush
bird routerid 5.6.7.8
bird commit
fw flush
fw default accept
"
        )
    );

    r.interface_add("0", "2001:1::1/64", false).unwrap();
    r.ra_add("2001:1::");
    assert_eq!(
        r.commit("vm0", None).contents,
        format!(
            "log level error
ip flush
ip add 0 1.2.3.4/24
ip add 0 5.6.7.8/24
ip add 0 2001:1::1/64
{DHCP}dnsmasq dns 1.1.1.1 foo.com
dnsmasq dns 2.2.2.2 bar.com
route del default
dnsmasq ra 2001:1::
dnsmasq commit
bird flush
bird routerid 5.6.7.8
bird commit
fw flush
fw default accept
"
        )
    );
}

#[test]
fn an_ipv6_address_outranks_ipv4_for_a_fresh_router_id() {
    let mut r = vm(1);
    r.interface_add("0", "10.0.0.1/24", false).unwrap();
    r.interface_add("0", "2001:1::1/64", false).unwrap();
    assert!(r.write_config().contains("\nbird routerid 2001:1::1\n"));
}

#[test]
fn named_routes_ospf_and_bgp() {
    let mut r = vm(2);
    r.interface_add("0", "10.1.0.2/24", false).unwrap();
    r.interface_add("1", "192.168.1.1/24", false).unwrap();
    r.interface_add("0", "10.2.0.2/32", true).unwrap();
    r.route_ospf("0", "0");
    r.route_ospf("0", "lo");
    r.route_static("10.0.0.0/8", "0", Some("ebgpnet"));
    r.route_static("192.168.1.0/24", "10.2.0.2", Some("ibgpnet"));
    r.route_ospf_export("0", "ibgpnet");
    r.route_bgp("ibgp", true, "10.2.0.2", "100").unwrap();
    r.route_bgp("ibgp", false, "10.2.0.1", "100").unwrap();
    r.route_bgp_rrclient("ibgp");
    r.route_bgp_export("ibgp", true, "0");
    r.route_bgp("ebgp", true, "192.168.1.1", "100").unwrap();
    r.route_bgp("ebgp", false, "192.168.1.2", "200").unwrap();
    r.route_bgp_export("ebgp", false, "ebgpnet");
    r.route_bgp_export("ebgp", true, "0");
    assert_eq!(
        r.write_config(),
        "log level error
ip flush
ip add 0 10.1.0.2/24
ip add 1 192.168.1.1/24
ip add lo 10.2.0.2/32
dnsmasq flush
route del default
dnsmasq commit
bird flush
bird static 10.0.0.0/8 null ebgpnet
bird static 192.168.1.0/24 10.2.0.2 ibgpnet
bird ospf 0 0
bird ospf 0 lo
bird ospf 0 filter ibgpnet
bird bgp ebgp local 192.168.1.1 100
bird bgp ebgp neighbor 192.168.1.2 200
bird bgp ebgp filter all
bird bgp ebgp filter ebgpnet
bird bgp ibgp local 10.2.0.2 100
bird bgp ibgp neighbor 10.2.0.1 100
bird bgp ibgp rrclient
bird bgp ibgp filter all
bird routerid 10.2.0.2
bird commit
fw flush
fw default accept
"
    );
}

#[test]
fn static_route_gateway_dhcp_client_and_log_level() {
    let mut r = vm(1);
    r.interface_add("0", "dhcp", false).unwrap();
    r.set_gateway("1.0.0.1");
    r.set_upstream("8.8.8.8");
    r.route_static("3.0.0.0/24", "2.0.0.2", None);
    r.dhcp_static("1.0.0.0", "00:1f:53:02:0b:51", "1.0.0.3");
    r.set_log_level(LogLevel::Debug);
    assert_eq!(
        r.write_config(),
        "log level debug
ip flush
ip add 0 dhcp
dnsmasq flush
dnsmasq dhcp static 1.0.0.0 00:1f:53:02:0b:51 1.0.0.3
dnsmasq upstream 8.8.8.8
route add default gw 1.0.0.1
dnsmasq commit
bird flush
bird static 3.0.0.0/24 2.0.0.2 null
bird routerid 0.0.0.0
bird commit
fw flush
fw default accept
"
    );
}

#[test]
fn ospf_options_are_go_quoted() {
    let mut r = vm(2);
    r.route_ospf_option("0", "0", "hello", "5");
    r.route_ospf_option("0", "0", "cost", "10");
    r.route_ospf_option("0", "1", "password", "se\"cret");
    let text = r.write_config();
    assert!(text.contains(
        "bird flush
bird ospf 0 0
bird ospf 0 0 \"cost\" \"10\"
bird ospf 0 0 \"hello\" \"5\"
bird ospf 0 1
bird ospf 0 1 \"password\" \"se\\\"cret\"
bird routerid 0.0.0.0
"
    ));
}

#[test]
fn firewall_of_a_vm() {
    let mut r = vm(2);
    r.fw_default("drop");
    r.fw_rule("0", false, "", "192.168.0.5:80", "tcp", "accept")
        .unwrap();
    r.fw_rule("1", true, "10.0.0.0/24", "10.1.0.0/24", "icmp", "drop")
        .unwrap();
    r.fw_chain_default("allow-http", "drop");
    r.fw_chain_rule("allow-http", "", "192.168.0.5:80", "tcp", "accept")
        .unwrap();
    r.fw_chain_rule(
        "allow-http",
        "10.0.0.0/24:5000",
        "192.168.0.5:80",
        "tcp",
        "accept",
    )
    .unwrap();
    r.fw_chain_rule("zeta", "", "1.2.3.4", "udp", "reject")
        .unwrap();
    r.fw_chain_apply("allow-http", true, "1").unwrap();
    assert_eq!(
        r.write_config(),
        "log level error
dnsmasq flush
route del default
dnsmasq commit
bird flush
bird routerid 0.0.0.0
bird commit
fw flush
fw default drop
fw chain allow-http action accept 192.168.0.5:80 tcp
fw chain allow-http action accept 10.0.0.0/24:5000 192.168.0.5:80 tcp
fw chain allow-http default action drop
fw chain zeta action reject 1.2.3.4 udp
fw chain zeta default action drop
fw accept out 0 192.168.0.5:80 tcp
fw drop in 1 10.0.0.0/24 10.1.0.0/24 icmp
fw chain allow-http apply in 1
"
    );
}

#[test]
fn a_vm_without_rules_still_resets_its_firewall() {
    let mut r = vm(1);
    assert!(r
        .write_config()
        .ends_with("bird commit\nfw flush\nfw default accept\n"));
}

#[test]
fn commit_plans_file_and_cc_commands() {
    let mut r = vm(1);
    r.interface_add("0", "10.0.0.1/24", false).unwrap();
    let p = r.commit("r1", None);
    assert_eq!(p.path, "minirouter-r1");
    assert_eq!(p.prefix, "minirouter-r1");
    let exec = |v: &[&str]| CcCommand::Exec(v.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        p.commands,
        vec![
            exec(&["rm", "/tmp/miniccc/files/minirouter-r1"]),
            CcCommand::Send(vec!["minirouter-r1".into()]),
            exec(&["minirouter", "-u", "/tmp/miniccc/files/minirouter-r1"]),
        ]
    );
    assert!(r.update_ips, "still changed until the file is written");
    r.committed();
    assert!(!r.update_ips);
    let p = r.commit("r1", Some("exp"));
    assert_eq!(p.path, "exp/minirouter-r1");
    assert!(!p.contents.contains("ip flush"));
}
