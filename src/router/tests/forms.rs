use super::super::error::{atoi, go_quote};
use super::super::{LogLevel, RouterError};
use super::vm;

#[test]
fn interface_adds_addresses_and_dhcp_in_order() {
    let mut r = vm(2);
    r.interface_add("0", "1.2.3.4/24", false).unwrap();
    r.interface_add("0", "dhcp", false).unwrap();
    r.interface_add("1", "2001:1::1/64", false).unwrap();
    assert_eq!(
        r.ips,
        vec![vec!["1.2.3.4/24", "dhcp"], vec!["2001:1::1/64"]]
    );
    assert!(r.update_ips);
}

#[test]
fn interface_refuses_what_minimega_refuses() {
    let mut r = vm(3);
    r.interface_add("0", "192.168.1.1/24", false).unwrap();
    let err = |r: &mut super::super::Router, n: &str, a: &str, lo: bool| {
        r.interface_add(n, a, lo).unwrap_err().to_string()
    };
    assert_eq!(
        err(&mut r, "3", "192.168.4.1/32", false),
        "no such network index: 3"
    );
    assert_eq!(
        err(&mut r, "-1", "192.168.4.1/32", false),
        "no such network index: -1"
    );
    assert_eq!(
        err(&mut r, "0", "192.168.1.1/24", false),
        "IP 192.168.1.1/24 already exists"
    );
    assert_eq!(
        err(&mut r, "0", "192.168.1.1", false),
        "invalid IP: 192.168.1.1"
    );
    assert_eq!(
        err(&mut r, "0", "10.0.0.1/33", false),
        "invalid IP: 10.0.0.1/33"
    );
    assert_eq!(err(&mut r, "4", "192.168.4", true), "invalid IP: 192.168.4");
    assert_eq!(
        err(&mut r, "0", "dhcp", true),
        "Cannot put dhcp on loopback"
    );
    assert_eq!(
        err(&mut r, "one", "10.0.0.1/24", false),
        "invalid network: one : strconv.Atoi: parsing \"one\": invalid syntax"
    );
}

#[test]
fn loopbacks_take_any_index_but_no_address_twice() {
    let mut r = vm(1);
    r.interface_add("4", "192.168.4.1/32", true).unwrap();
    assert_eq!(
        r.loopbacks.get(&4).map(String::as_str),
        Some("192.168.4.1/32")
    );
    assert_eq!(
        r.interface_add("5", "192.168.4.1/32", true),
        Err(RouterError::IpExists("192.168.4.1/32".into()))
    );
}

#[test]
fn log_level_is_set() {
    let mut r = vm(0);
    assert_eq!(r.log_level, LogLevel::Error);
    r.set_log_level(LogLevel::Debug);
    assert_eq!(r.log_level.as_str(), "debug");
}

#[test]
fn dhcp_forms_fill_one_server_per_listen_address() {
    let mut r = vm(1);
    r.dhcp_range("1.2.3.4", "1.2.3.5", "1.2.3.254");
    r.dhcp_router("1.2.3.4", "1.2.3.1");
    r.dhcp_dns("1.2.3.4", "8.8.8.8");
    r.dhcp_static("1.2.3.4", "00:11:22:33:44:55", "1.2.3.66");
    r.dhcp_static("5.6.7.8", "00:11:22:33:44:60", "5.6.7.9");
    let d = &r.dhcp["1.2.3.4"];
    assert_eq!((d.low.as_str(), d.high.as_str()), ("1.2.3.5", "1.2.3.254"));
    assert_eq!((d.router.as_str(), d.dns.as_str()), ("1.2.3.1", "8.8.8.8"));
    assert_eq!(d.statics["00:11:22:33:44:55"], "1.2.3.66");
    assert_eq!(r.dhcp["5.6.7.8"].addr, "5.6.7.8");
}

#[test]
fn dns_upstream_gateway_and_ra_are_kept() {
    let mut r = vm(1);
    r.dns_add("1.1.1.1", "foo.com");
    r.dns_add("1.1.1.1", "www.foo.com");
    r.set_upstream("8.8.8.8");
    r.set_gateway("1.2.3.1");
    r.ra_add("2001:1::");
    assert_eq!(r.dns["1.1.1.1"], vec!["foo.com", "www.foo.com"]);
    assert_eq!((r.upstream.as_str(), r.gw.as_str()), ("8.8.8.8", "1.2.3.1"));
    assert!(r.ra.contains("2001:1::"));
}

#[test]
fn static_routes_named_next_hop_zero_means_none() {
    let mut r = vm(1);
    r.route_static("172.16.1.1/24", "192.168.1.2", None);
    r.route_static("0.0.0.0/0", "192.168.1.2", Some("defaultroute"));
    r.route_static("192.168.1.1/32", "0", Some("ospf"));
    assert_eq!(r.static_routes["172.16.1.1/24"], "192.168.1.2");
    assert_eq!(r.named_routes["defaultroute"]["0.0.0.0/0"], "192.168.1.2");
    assert_eq!(r.named_routes["ospf"]["192.168.1.1/32"], "");
    // Unnamed, `0` is kept as typed (minimega's file says `0`).
    r.route_static("10.0.0.0/8", "0", None);
    assert_eq!(r.static_routes["10.0.0.0/8"], "0");
}

#[test]
fn ospf_interfaces_options_and_exports() {
    let mut r = vm(2);
    r.route_ospf("0", "0");
    r.route_ospf_option("0", "0", "cost", "10");
    r.route_ospf_option("0", "0", "hello", "5");
    r.route_ospf("0", "0");
    r.route_ospf("0", "lo");
    r.route_ospf_export("0", "192.168.3.0/24");
    r.route_ospf_export("0", "defaultroute");
    let o = &r.ospf["0"];
    assert_eq!(o.interfaces["0"].len(), 2, "options accumulate");
    assert!(o.interfaces["lo"].is_empty());
    assert!(o.prefixes.contains("192.168.3.0/24") && o.prefixes.contains("defaultroute"));
}

#[test]
fn bgp_local_neighbor_rrclient_exports() {
    let mut r = vm(1);
    r.route_bgp("r1", false, "192.168.1.1", "100").unwrap();
    r.route_bgp("r1", true, "192.168.1.2", "200").unwrap();
    r.route_bgp_rrclient("r1");
    r.route_bgp_export("r1", true, "0");
    r.route_bgp_export("r1", false, "r1route");
    let b = &r.bgp["r1"];
    assert_eq!((b.local_ip.as_str(), b.local_as), ("192.168.1.2", 200));
    assert_eq!(
        (b.neighbor_ip.as_str(), b.neighbor_as),
        ("192.168.1.1", 100)
    );
    assert!(b.route_reflector);
    assert_eq!(b.exports.iter().collect::<Vec<_>>(), ["all", "r1route"]);
    assert_eq!(
        r.route_bgp("r1", true, "1.1.1.1", "x1"),
        Err(RouterError::InvalidAs("x1".into()))
    );
}

#[test]
fn router_id_must_be_an_address() {
    let mut r = vm(1);
    r.set_router_id("1.1.1.1").unwrap();
    assert_eq!(r.router_id, "1.1.1.1");
    assert_eq!(
        r.set_router_id("1.1.1").unwrap_err().to_string(),
        "invalid routerid: 1.1.1"
    );
}

#[test]
fn fw_default_and_rules() {
    let mut r = vm(2);
    r.fw_default("drop");
    r.fw_rule("0", false, "", "192.168.0.5:80", "tcp", "accept")
        .unwrap();
    r.fw_rule("1", true, "10.0.0.0/24:1024", "10.1.0.1", "udp", "reject")
        .unwrap();
    assert_eq!(r.fw.default_action, "drop");
    assert_eq!(r.fw.rules[0][0].dst, "192.168.0.5:80");
    assert!(r.fw.rules[1][0].inbound);
}

#[test]
fn fw_rules_are_checked_as_minimega_checks_them() {
    let mut r = vm(1);
    let e = |r: &mut super::super::Router, i: &str, s: &str, d: &str| {
        r.fw_rule(i, true, s, d, "tcp", "drop")
            .unwrap_err()
            .to_string()
    };
    assert_eq!(e(&mut r, "1", "", "1.2.3.4"), "no such network index: 1");
    assert_eq!(
        e(&mut r, "x", "", "1.2.3.4"),
        "converting fw interface index: strconv.Atoi: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        e(&mut r, "0", "1.2.3.4:http", "1.2.3.5"),
        "validating fw source port http: strconv.Atoi: parsing \"http\": invalid syntax"
    );
    assert_eq!(
        e(&mut r, "0", "", "1.2.3.5:8x"),
        "validating fw destination port 8x: strconv.Atoi: parsing \"8x\": invalid syntax"
    );
    assert_eq!(
        e(&mut r, "0", "", "2001::1"),
        "malformed fw destination 2001::1"
    );
    assert_eq!(
        e(&mut r, "0", "a:1:2", "1.2.3.5"),
        "malformed fw source a:1:2"
    );
}

#[test]
fn fw_chains_default_rules_and_apply() {
    let mut r = vm(1);
    r.fw_chain_rule("allow-http", "", "192.168.0.5:80", "tcp", "accept")
        .unwrap();
    assert_eq!(r.fw.chains["allow-http"].default_action, "drop");
    r.fw_chain_default("allow-http", "reject");
    r.fw_chain_default("other", "accept");
    r.fw_chain_apply("allow-http", false, "0").unwrap();
    assert_eq!(r.fw.chains["allow-http"].default_action, "reject");
    assert_eq!(r.fw.rules[0][0].action, "allow-http");
    assert_eq!(
        r.fw_chain_apply("nope", true, "0").unwrap_err().to_string(),
        "unknown chain nope"
    );
    assert_eq!(
        r.fw_chain_apply("other", true, "2")
            .unwrap_err()
            .to_string(),
        "no such network index: 2"
    );
    assert_eq!(
        r.fw_chain_apply("other", true, "z")
            .unwrap_err()
            .to_string(),
        "converting fw chain interface index: strconv.Atoi: parsing \"z\": invalid syntax"
    );
}

/// minimega refuses `fw` for containers ("firewall rules cannot be
/// applied to minirouter containers"); ours take it: their minirouter
/// runs nftables in the container's network namespace. A router is made
/// alike for a VM and a container, so every form is taken.
#[test]
fn containers_take_firewall_rules_too() {
    let mut r = vm(1);
    r.fw_default("drop");
    r.fw_rule("0", true, "", "1.2.3.4", "tcp", "drop").unwrap();
    r.fw_chain_default("c", "drop");
    r.fw_chain_rule("c", "", "1.2.3.4", "tcp", "accept")
        .unwrap();
    r.fw_chain_apply("c", false, "0").unwrap();
    let file = r.write_config();
    assert!(
        file.ends_with(
            "fw flush
fw default drop
fw chain c action accept 1.2.3.4 tcp
fw chain c default action drop
fw drop in 0 1.2.3.4 tcp
fw chain c apply out 0
"
        ),
        "{file}"
    );
}

#[test]
fn go_helpers_match_go() {
    assert_eq!(atoi("+7"), Ok(7));
    assert_eq!(atoi("-3"), Ok(-3));
    assert_eq!(
        atoi(""),
        Err("strconv.Atoi: parsing \"\": invalid syntax".into())
    );
    assert_eq!(
        atoi("99999999999999999999"),
        Err("strconv.Atoi: parsing \"99999999999999999999\": value out of range".into())
    );
    assert_eq!(go_quote("a\"b\\c\u{1}\t"), "\"a\\\"b\\\\c\\x01\\t\"");
    assert_eq!(go_quote("é\u{200b}"), "\"é\\u200b\"");
}
