//! `clear router` forms, following tests/router*.want where they go.

use super::super::clear::{BgpPart, DhcpPart};
use super::super::{LogLevel, RouterError, UNSET_ROUTER_ID};
use super::vm;

fn interfaces() -> super::super::Router {
    let mut r = vm(2);
    r.interface_add("0", "1.2.3.4/24", false).unwrap();
    r.interface_add("0", "dhcp", false).unwrap();
    r.interface_add("1", "5.6.7.8/16", false).unwrap();
    r.interface_add("0", "10.0.0.1/32", true).unwrap();
    r.interface_add("1", "10.0.0.2/32", true).unwrap();
    r.interface_add("2", "10.0.0.3/32", true).unwrap();
    r.committed();
    r
}

#[test]
fn clear_interface_address() {
    let mut r = interfaces();
    r.clear_interface("0", "1.2.3.4/24", false).unwrap();
    assert_eq!(r.ips[0], vec!["dhcp"]);
    assert!(r.update_ips);
    assert_eq!(
        r.clear_interface("1", "5.6.7.8/24", false)
            .unwrap_err()
            .to_string(),
        "no such network: 5.6.7.8/24"
    );
    assert_eq!(
        r.clear_interface("1", "5.6.7.8", false)
            .unwrap_err()
            .to_string(),
        "invalid IP: 5.6.7.8"
    );
    assert_eq!(
        r.clear_interface("7", "", false).unwrap_err().to_string(),
        "no such network index: 7"
    );
    assert_eq!(
        r.clear_interface("x", "", false).unwrap_err().to_string(),
        "strconv.Atoi: parsing \"x\": invalid syntax"
    );
}

#[test]
fn clear_interface_whole_and_all() {
    let mut r = interfaces();
    r.clear_interface("0", "", false).unwrap();
    r.clear_interface("1", "all", false).unwrap();
    assert!(r.ips.iter().all(Vec::is_empty));
    assert_eq!(r.loopbacks.len(), 3);
    r.clear_interfaces();
    assert!(r.loopbacks.is_empty());
    assert_eq!(r.ips.len(), 2);
}

#[test]
fn clear_loopback_by_index_or_all_marks_addresses_changed() {
    let mut r = interfaces();
    r.clear_interface("2", "10.0.0.3/32", true).unwrap();
    assert_eq!(r.loopbacks.len(), 2);
    assert!(r.update_ips, "the next commit must drop the loopback");
    r.clear_interface("0", "all", true).unwrap();
    assert!(r.loopbacks.is_empty());
}

#[test]
fn clear_dhcp_parts() {
    let mut r = vm(1);
    r.dhcp_range("1.2.3.4", "1.2.3.5", "1.2.3.254");
    r.dhcp_router("1.2.3.4", "1.2.3.1");
    r.dhcp_dns("1.2.3.4", "8.8.8.8");
    r.dhcp_static("1.2.3.4", "00:11:22:33:44:55", "1.2.3.66");
    r.dhcp_static("1.2.3.4", "00:11:22:33:44:56", "1.2.3.67");
    r.dhcp_range("5.6.7.8", "1.1.1.1", "1.1.1.2");
    r.clear_dhcp("1.2.3.4", &DhcpPart::Router).unwrap();
    r.clear_dhcp("1.2.3.4", &DhcpPart::Dns).unwrap();
    r.clear_dhcp(
        "1.2.3.4",
        &DhcpPart::Static(Some("00:11:22:33:44:56".into())),
    )
    .unwrap();
    assert_eq!(
        r.clear_dhcp(
            "1.2.3.4",
            &DhcpPart::Static(Some("00:11:22:33:44:56".into()))
        ),
        Err(RouterError::NoSuchMac("00:11:22:33:44:56".into()))
    );
    let d = &r.dhcp["1.2.3.4"];
    assert!(d.router.is_empty() && d.dns.is_empty() && d.statics.len() == 1);
    r.clear_dhcp("1.2.3.4", &DhcpPart::Static(None)).unwrap();
    r.clear_dhcp("1.2.3.4", &DhcpPart::Range).unwrap();
    assert!(r.dhcp["1.2.3.4"].low.is_empty() && r.dhcp["1.2.3.4"].statics.is_empty());
    r.clear_dhcp("5.6.7.8", &DhcpPart::All).unwrap();
    assert!(!r.dhcp.contains_key("5.6.7.8"));
    assert_eq!(
        r.clear_dhcp("9.9.9.9", &DhcpPart::All)
            .unwrap_err()
            .to_string(),
        "no such address: 9.9.9.9"
    );
    r.clear_dhcp("", &DhcpPart::All).unwrap();
    assert!(r.dhcp.is_empty());
}

#[test]
fn clear_dns_upstream_gateway_ra() {
    let mut r = vm(1);
    r.dns_add("1.1.1.1", "foo.com");
    r.dns_add("2.2.2.2", "bar.com");
    r.clear_dns("1.1.1.1").unwrap();
    assert_eq!(
        r.clear_dns("1.1.1.1").unwrap_err().to_string(),
        "no such ip: 1.1.1.1"
    );
    r.clear_dns("").unwrap();
    assert!(r.dns.is_empty());
    r.set_upstream("8.8.8.8");
    r.set_gateway("1.2.3.1");
    r.clear_upstream();
    r.clear_gateway();
    assert!(r.upstream.is_empty() && r.gw.is_empty());
    r.ra_add("2001:1::");
    r.ra_add("2001:2::");
    r.clear_ra("2001:2::").unwrap();
    assert_eq!(
        r.clear_ra("2001:3::").unwrap_err().to_string(),
        "no such subnet: 2001:3::"
    );
    r.clear_ra("").unwrap();
    assert!(r.ra.is_empty());
}

#[test]
fn clear_static_and_named_routes() {
    let mut r = vm(2);
    r.route_static("3.0.0.0/24", "2.0.0.2", None);
    r.route_static("4.0.0.0/24", "4.0.0.2", None);
    r.route_static("0.0.0.0/0", "2.0.0.2", Some("defaultroute"));
    r.route_static("10.0.0.0/24", "0", Some("foobar"));
    r.route_static("11.0.0.0/24", "0", Some("foobar"));
    r.clear_route_static("4.0.0.0/24").unwrap();
    assert_eq!(
        r.clear_route_static("4.0.0.0/24").unwrap_err().to_string(),
        "no such static route: 4.0.0.0/24"
    );
    r.clear_route_named("11.0.0.0/24", "foobar").unwrap();
    assert_eq!(
        r.clear_route_named("11.0.0.0/24", "foobar")
            .unwrap_err()
            .to_string(),
        "no such network in named static route: 11.0.0.0/24"
    );
    assert_eq!(
        r.clear_route_named("all", "nope").unwrap_err().to_string(),
        "no such named static route: nope"
    );
    r.clear_route_named("all", "foobar").unwrap();
    assert_eq!(r.named_routes.keys().collect::<Vec<_>>(), ["defaultroute"]);
    r.clear_route_named("", "").unwrap();
    assert!(r.named_routes.is_empty());
    r.clear_route_static("all").unwrap();
    assert!(r.static_routes.is_empty());
}

#[test]
fn clear_ospf_forms() {
    let mut r = vm(2);
    r.route_ospf("0", "0");
    r.route_ospf("0", "1");
    r.route_ospf_export("0", "192.168.2.0/24");
    r.clear_ospf("0", "1").unwrap();
    assert_eq!(
        r.clear_ospf("0", "1").unwrap_err().to_string(),
        "no such interface: 1"
    );
    assert_eq!(
        r.clear_ospf("9", "").unwrap_err().to_string(),
        "no such area: 9"
    );
    r.clear_ospf_export("0", "192.168.2.0/24").unwrap();
    assert_eq!(
        r.clear_ospf_export("0", "192.168.2.0/24")
            .unwrap_err()
            .to_string(),
        "no such filter: 192.168.2.0/24"
    );
    r.route_ospf_export("0", "x");
    r.clear_ospf("0", "").unwrap();
    let o = &r.ospf["0"];
    assert!(
        o.interfaces.is_empty() && o.prefixes.is_empty(),
        "the area stays, empty"
    );
    r.clear_ospf("", "").unwrap();
    assert!(r.ospf.is_empty());
}

#[test]
fn clear_bgp_parts() {
    let mut r = vm(1);
    r.route_bgp("ibgp", true, "10.2.0.1", "100").unwrap();
    r.route_bgp("ibgp", false, "10.2.0.2", "100").unwrap();
    r.route_bgp_rrclient("ibgp");
    r.clear_bgp("ibgp", BgpPart::Local).unwrap();
    r.clear_bgp("ibgp", BgpPart::Neighbor).unwrap();
    r.clear_bgp("ibgp", BgpPart::RouteReflector).unwrap();
    let b = &r.bgp["ibgp"];
    assert_eq!((b.local_ip.as_str(), b.local_as, b.neighbor_as), ("", 0, 0));
    assert!(!b.route_reflector);
    r.clear_bgp("ibgp", BgpPart::All).unwrap();
    assert_eq!(
        r.clear_bgp("ibgp", BgpPart::All).unwrap_err().to_string(),
        "no such bgp process: ibgp"
    );
}

#[test]
fn clear_routes_rid_fw_and_everything() {
    let mut r = vm(2);
    r.interface_add("0", "1.2.3.4/24", false).unwrap();
    r.route_static("3.0.0.0/24", "2.0.0.2", None);
    r.route_ospf("0", "0");
    r.route_bgp("b", true, "1.1.1.1", "1").unwrap();
    r.clear_routes();
    assert!(r.static_routes.is_empty() && r.ospf.is_empty() && r.bgp.is_empty());
    r.set_router_id("9.9.9.9").unwrap();
    r.clear_router_id();
    assert_eq!(r.router_id, UNSET_ROUTER_ID);
    r.fw_default("drop");
    r.fw_chain_default("c", "drop");
    r.fw_flush();
    assert_eq!(r.fw.default_action, "accept");
    assert!(r.fw.chains.is_empty() && r.fw.rules.len() == 2);

    r.set_gateway("1.2.3.1");
    r.set_upstream("8.8.8.8");
    r.set_log_level(LogLevel::Info);
    r.dns_add("1.1.1.1", "a");
    r.clear_all();
    assert!(r.ips.iter().all(Vec::is_empty) && r.dns.is_empty());
    // minimega's `clear router VM` keeps these three.
    assert_eq!((r.gw.as_str(), r.upstream.as_str()), ("1.2.3.1", "8.8.8.8"));
    assert_eq!(r.log_level, LogLevel::Info);
}
