//! The bridge-level ops: `bridge destroy`, `bridge config` and bonds.

use super::*;

fn ops_of(p: &Plan) -> Vec<Value> {
    p.params.as_array().unwrap()[1..].to_vec()
}

fn known(bridge: &str) -> View {
    View {
        root: true,
        bridges: [bridge.to_string()].into(),
        ..View::default()
    }
}

#[test]
fn a_bridge_goes_by_its_uuid_and_an_unknown_one_is_no_error() {
    let op = [Op::DelBridge("br9".into())];
    let q = view_query(&op).to_string();
    assert!(
        q.contains(r#""table":"Bridge","where":[["name","==","br9"]]"#),
        "{q}"
    );
    let answer = vec![
        json!({"rows": [{"_uuid": ["uuid", "root"]}]}),
        json!({"rows": [{"name": "br9"}]}),
        json!({"rows": [{"name": "br9", "_uuid": ["uuid", "p0"]}]}),
        json!({"rows": [{"name": "br9", "_uuid": ["uuid", "b0"], "datapath_type": "netdev"}]}),
    ];
    let view = parse_view(&answer);
    assert_eq!(view.bridge_uuids.get("br9").map(String::as_str), Some("b0"));
    let p = plan(&view, &op, "netdev");
    assert!(p.created.is_empty(), "a bridge to remove is never made");
    assert_eq!(
        ops_of(&p)[0],
        json!({"op": "mutate", "table": DB, "where": [],
               "mutations": [["bridges", "delete", ["set", [["uuid", "b0"]]]]]})
    );
    let p = plan(&known("br9"), &op, "netdev");
    assert!(!ops_of(&p).iter().any(|o| o["mutations"][0][0] == "bridges"));
}

#[test]
fn settings_parse_as_ovs_vsctl_takes_them() {
    let s = |x: &str| parse_setting(x).unwrap();
    assert_eq!(
        s("other_config:stp-priority=4096"),
        (
            "other_config".into(),
            Some("stp-priority".into()),
            json!("4096")
        )
    );
    assert_eq!(
        s("stp_enable=true"),
        ("stp_enable".into(), None, json!(true))
    );
    assert_eq!(s("flood_vlans=[10,20]").2, json!(["set", [10, 20]]));
    assert_eq!(s("fail_mode=secure").2, json!("secure"));
    assert_eq!(s("external_ids={a=b}").2, json!(["map", [["a", "b"]]]));
    assert_eq!(parse_setting("stp").unwrap_err(), "expected key=value");
    assert!(parse_setting("=1").is_err());
    assert!(parse_setting("a b=1").is_err());
    assert!(parse_setting("other_config:=1").is_err());
}

#[test]
fn a_setting_follows_the_bridge_it_may_make() {
    let (column, key, value) = parse_setting("other_config:mac-aging-time=30").unwrap();
    let op = [Op::SetBridge {
        bridge: "br1".into(),
        column,
        key,
        value,
    }];
    let ops = ops_of(&plan(&known("br1"), &op, "netdev"));
    assert_eq!(
        ops[0],
        json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", "br1"]],
               "mutations": [["other_config", "delete", ["set", ["mac-aging-time"]]],
                             ["other_config", "insert", ["map", [["mac-aging-time", "30"]]]]]})
    );
    let p = plan(&View::default(), &op, "netdev");
    assert_eq!(p.created, ["br1"]);
    let ops = ops_of(&p);
    let made = ops
        .iter()
        .position(|o| o["table"] == "Bridge" && o["op"] == "insert")
        .unwrap();
    let set = ops
        .iter()
        .position(|o| o["table"] == "Bridge" && o["op"] == "mutate")
        .unwrap();
    assert!(made < set, "{ops:?}");
}

#[test]
fn a_bond_takes_its_members_ports_over() {
    let view = View {
        ports: [
            ("mega_tap0".to_string(), "u0".to_string()),
            ("mega_tap1".to_string(), "u1".to_string()),
        ]
        .into(),
        ..known("mega_bridge")
    };
    let bond = BondSpec {
        bridge: "mega_bridge".into(),
        name: "mega_bond0".into(),
        members: vec!["mega_tap0".into(), "mega_tap1".into()],
        tag: 101,
        qinq: false,
        mode: "balance-tcp".into(),
        lacp: "active".into(),
        fallback: true,
        owner: Some("t/1".into()),
    };
    let q = view_query(&[Op::AddBond(bond.clone())]).to_string();
    assert!(q.contains(r#"["name","==","mega_tap1"]"#), "{q}");
    let p = plan(&view, &[Op::AddBond(bond)], "netdev");
    assert_eq!(p.check, ["mega_tap0", "mega_tap1"]);
    let ops = ops_of(&p);
    assert_eq!(
        ops[2],
        json!({"op": "insert", "table": "Port", "uuid-name": "p3", "row": {
            "name": "mega_bond0", "tag": 101, "lacp": "active", "bond_mode": "balance-tcp",
            "interfaces": ["set", [["named-uuid", "i1"], ["named-uuid", "i2"]]],
            "other_config": ["map", [["lacp-fallback-ab", "true"]]],
            "external_ids": ["map", [[OWNER_KEY, "t/1"]]]}})
    );
    assert!(ops.iter().any(|o| o["mutations"]
        == json!([["ports", "delete", ["set", [["uuid", "u0"], ["uuid", "u1"]]]]])));
}
