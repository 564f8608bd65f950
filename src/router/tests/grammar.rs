//! The patterns parse in our syntax, and typed lines become the forms
//! minimega's handler would have acted on.

use super::super::clear::{BgpPart, DhcpPart};
use super::super::grammar::{ClearForm, Form};
use super::super::patterns::{CLEAR_ROUTER_PATTERNS, ROUTER_PATTERNS};
use super::super::LogLevel;
use super::vm;
use crate::command::lexer::lex;
use crate::command::pattern::{Outcome, Pattern};
use crate::command::Args;

fn matched(patterns: &[&str], line: &str) -> Args {
    let words = lex(line).unwrap();
    let hits: Vec<Args> = patterns
        .iter()
        .filter_map(|p| match Pattern::parse(p).unwrap().matches(&words) {
            Outcome::Matched {
                args, exact: true, ..
            } => Some(args),
            _ => None,
        })
        .collect();
    assert_eq!(hits.len(), 1, "`{line}` matches {} patterns", hits.len());
    hits.into_iter().next().unwrap()
}

fn form(line: &str) -> Form {
    Form::from_args(&matched(ROUTER_PATTERNS, line)).unwrap()
}

fn clear(line: &str) -> ClearForm {
    ClearForm::from_args(&matched(CLEAR_ROUTER_PATTERNS, line)).unwrap()
}

fn st(s: &str) -> String {
    s.to_string()
}

#[test]
fn every_pattern_parses_and_starts_with_its_command() {
    for p in ROUTER_PATTERNS {
        assert_eq!(Pattern::parse(p).unwrap().name(), "router", "{p}");
    }
    for p in CLEAR_ROUTER_PATTERNS {
        assert_eq!(Pattern::parse(p).unwrap().name(), "clear router", "{p}");
    }
}

#[test]
fn router_lines_become_forms() {
    assert_eq!(form("router r1"), Form::Show);
    assert_eq!(form("router r1 commit"), Form::Commit);
    assert_eq!(form("router r1 rid 1.1.1.1"), Form::RouterId(st("1.1.1.1")));
    assert_eq!(
        form("router r1 log level debug"),
        Form::Log(LogLevel::Debug)
    );
    assert_eq!(
        form("router r1 interface 2 11.0.0.1/32 lo"),
        Form::Interface {
            network: st("2"),
            addr: st("11.0.0.1/32"),
            loopback: true
        }
    );
    assert_eq!(
        form("router r1 dhcp 10.0.0.0 range 10.0.0.2 10.0.0.254"),
        Form::DhcpRange {
            listen: st("10.0.0.0"),
            low: st("10.0.0.2"),
            high: st("10.0.0.254")
        }
    );
    assert_eq!(
        form("router r1 dhcp 10.0.0.0 router 10.0.0.1"),
        Form::DhcpRouter {
            listen: st("10.0.0.0"),
            router: st("10.0.0.1")
        }
    );
    assert_eq!(
        form("router r1 dhcp 10.0.0.0 dns 8.8.8.8"),
        Form::DhcpDns {
            listen: st("10.0.0.0"),
            dns: st("8.8.8.8")
        }
    );
    assert_eq!(
        form("router r1 dhcp 10.0.0.0 static 00:11:22:33:44:55 10.0.0.10"),
        Form::DhcpStatic {
            listen: st("10.0.0.0"),
            mac: st("00:11:22:33:44:55"),
            ip: st("10.0.0.10")
        }
    );
    assert_eq!(
        form("router r1 dns 1.1.1.1 foo.com"),
        Form::Dns {
            ip: st("1.1.1.1"),
            host: st("foo.com")
        }
    );
    assert_eq!(
        form("router r1 upstream 8.8.8.8"),
        Form::Upstream(st("8.8.8.8"))
    );
    assert_eq!(
        form("router r1 gw 10.0.0.254"),
        Form::Gateway(st("10.0.0.254"))
    );
    assert_eq!(form("router r1 ra 2001:1::"), Form::Ra(st("2001:1::")));
}

#[test]
fn route_lines_become_forms() {
    assert_eq!(
        form("router r1 route static 0.0.0.0/0 10.0.0.1 default-route"),
        Form::RouteStatic {
            network: st("0.0.0.0/0"),
            next_hop: st("10.0.0.1"),
            name: Some(st("default-route"))
        }
    );
    assert_eq!(
        form("router r1 route static 1.0.0.0/24 2.0.0.1"),
        Form::RouteStatic {
            network: st("1.0.0.0/24"),
            next_hop: st("2.0.0.1"),
            name: None
        }
    );
    assert_eq!(
        form("router r1 route ospf 0 1"),
        Form::RouteOspf {
            area: st("0"),
            network: st("1")
        }
    );
    assert_eq!(
        form("router r1 route ospf 0 1 cost 10"),
        Form::RouteOspfOption {
            area: st("0"),
            network: st("1"),
            option: st("cost"),
            value: st("10")
        }
    );
    assert_eq!(
        form("router r1 route ospf 0 export bar-route"),
        Form::RouteOspfExport {
            area: st("0"),
            filter: st("bar-route")
        }
    );
    assert_eq!(
        form("router r1 route bgp bar neighbor 20.0.0.1 200"),
        Form::RouteBgp {
            process: st("bar"),
            local: false,
            ip: st("20.0.0.1"),
            asn: st("200")
        }
    );
    assert_eq!(
        form("router r1 route bgp bar rrclient"),
        Form::RouteBgpRrClient { process: st("bar") }
    );
    assert_eq!(
        form("router r1 route bgp bar export all 0"),
        Form::RouteBgpExport {
            process: st("bar"),
            all: true,
            filter: st("0")
        }
    );
    assert_eq!(
        form("router r1 route bgp bar export filter foo_out"),
        Form::RouteBgpExport {
            process: st("bar"),
            all: false,
            filter: st("foo_out")
        }
    );
}

#[test]
fn fw_lines_become_forms() {
    assert_eq!(
        form("router r1 fw default drop"),
        Form::FwDefault(st("drop"))
    );
    assert_eq!(
        form("router r1 fw accept out 0 192.168.0.5:80 tcp"),
        Form::FwRule {
            action: st("accept"),
            inbound: false,
            index: st("0"),
            src: st(""),
            dst: st("192.168.0.5:80"),
            proto: st("tcp")
        }
    );
    assert_eq!(
        form("router r1 fw reject in 1 10.0.0.0/24 10.1.0.1 udp"),
        Form::FwRule {
            action: st("reject"),
            inbound: true,
            index: st("1"),
            src: st("10.0.0.0/24"),
            dst: st("10.1.0.1"),
            proto: st("udp")
        }
    );
    assert_eq!(
        form("router r1 fw chain allow-http default action drop"),
        Form::FwChainDefault {
            chain: st("allow-http"),
            action: st("drop")
        }
    );
    assert_eq!(
        form("router r1 fw chain allow-http action accept 192.168.0.5:80 tcp"),
        Form::FwChainRule {
            chain: st("allow-http"),
            action: st("accept"),
            src: st(""),
            dst: st("192.168.0.5:80"),
            proto: st("tcp")
        }
    );
    assert_eq!(
        form("router r1 fw chain allow-http action drop 1.2.3.4 192.168.0.5:80 tcp"),
        Form::FwChainRule {
            chain: st("allow-http"),
            action: st("drop"),
            src: st("1.2.3.4"),
            dst: st("192.168.0.5:80"),
            proto: st("tcp")
        }
    );
    assert_eq!(
        form("router r1 fw chain allow-http apply out 0"),
        Form::FwChainApply {
            chain: st("allow-http"),
            inbound: false,
            index: st("0")
        }
    );
}

#[test]
fn clear_lines_become_forms() {
    assert_eq!(clear("clear router"), ClearForm::AllRouters);
    assert_eq!(clear("clear router r1"), ClearForm::Router);
    assert_eq!(clear("clear router r1 rid"), ClearForm::RouterId);
    assert_eq!(
        clear("clear router r1 interface"),
        ClearForm::Interface {
            network: None,
            addr: st(""),
            loopback: false
        }
    );
    assert_eq!(
        clear("clear router r1 interface 0 all lo"),
        ClearForm::Interface {
            network: Some(st("0")),
            addr: st("all"),
            loopback: true
        }
    );
    assert_eq!(
        clear("clear router r1 dhcp"),
        ClearForm::Dhcp {
            listen: st(""),
            part: DhcpPart::All
        }
    );
    assert_eq!(
        clear("clear router r1 dhcp 1.2.3.4 range"),
        ClearForm::Dhcp {
            listen: st("1.2.3.4"),
            part: DhcpPart::Range
        }
    );
    assert_eq!(
        clear("clear router r1 dhcp 1.2.3.4 dns"),
        ClearForm::Dhcp {
            listen: st("1.2.3.4"),
            part: DhcpPart::Dns
        }
    );
    assert_eq!(
        clear("clear router r1 dhcp 1.2.3.4 static 00:11:22:33:44:55"),
        ClearForm::Dhcp {
            listen: st("1.2.3.4"),
            part: DhcpPart::Static(Some(st("00:11:22:33:44:55")))
        }
    );
    assert_eq!(
        clear("clear router r1 dns 1.1.1.1"),
        ClearForm::Dns(st("1.1.1.1"))
    );
    assert_eq!(clear("clear router r1 upstream"), ClearForm::Upstream);
    assert_eq!(clear("clear router r1 gw"), ClearForm::Gateway);
    assert_eq!(clear("clear router r1 ra"), ClearForm::Ra(st("")));
    assert_eq!(clear("clear router r1 route"), ClearForm::Routes);
    assert_eq!(
        clear("clear router r1 route static"),
        ClearForm::RouteStatic(st(""))
    );
    assert_eq!(
        clear("clear router r1 route static all foobar"),
        ClearForm::RouteNamed {
            network: st("all"),
            name: st("foobar")
        }
    );
    assert_eq!(
        clear("clear router r1 route namedstatic"),
        ClearForm::RouteNamed {
            network: st(""),
            name: st("")
        }
    );
    assert_eq!(
        clear("clear router r1 route ospf"),
        ClearForm::RouteOspf {
            area: st(""),
            network: st("")
        }
    );
    assert_eq!(
        clear("clear router r1 route ospf 0 1"),
        ClearForm::RouteOspf {
            area: st("0"),
            network: st("1")
        }
    );
    assert_eq!(
        clear("clear router r1 route ospf 0 export 192.168.2.0/24"),
        ClearForm::RouteOspfExport {
            area: st("0"),
            filter: st("192.168.2.0/24")
        }
    );
    assert_eq!(
        clear("clear router r1 route bgp ibgp local"),
        ClearForm::RouteBgp {
            process: st("ibgp"),
            part: BgpPart::Local
        }
    );
    assert_eq!(
        clear("clear router r1 route bgp ibgp"),
        ClearForm::RouteBgp {
            process: st("ibgp"),
            part: BgpPart::All
        }
    );
    assert_eq!(clear("clear router r1 fw"), ClearForm::Fw);
}

#[test]
fn apply_and_clear_dispatch_to_the_forms() {
    let mut r = vm(2);
    for line in [
        "router r1 interface 0 10.0.0.1/24",
        "router r1 fw chain c action accept 10.0.0.5:22 tcp",
        "router r1 fw chain c apply in 0",
        "router r1 route bgp b local 10.0.0.1 65000",
    ] {
        r.apply(&form(line)).unwrap();
    }
    assert_eq!(r.ips[0], vec!["10.0.0.1/24"]);
    assert_eq!(r.fw.rules[0][0].action, "c");
    assert_eq!(
        r.apply(&form("router r1 interface 5 10.0.0.1/24"))
            .unwrap_err()
            .to_string(),
        "no such network index: 5"
    );
    r.clear(&clear("clear router r1 route bgp b")).unwrap();
    assert!(r.bgp.is_empty());
    assert_eq!(
        r.clear(&clear("clear router r1 dns 9.9.9.9"))
            .unwrap_err()
            .to_string(),
        "no such ip: 9.9.9.9"
    );
}
