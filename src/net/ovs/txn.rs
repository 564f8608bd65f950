//! The OVSDB transactions the switch sends, built from a batch of
//! [`Op`]s and a [`View`] of the rows they touch (RFC 7047 `transact`
//! params). Pure: everything here is checked by unit tests against the
//! JSON it must produce; the driver only sends it.
//!
//! A batch becomes two round trips: one transaction selecting the rows the
//! ops refer to, then one that changes them all, bridges created on first
//! use included, ending with `next_cfg += 1` so the driver can wait for
//! ovs-vswitchd to apply it.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

pub const DB: &str = "Open_vSwitch";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// A device the daemon made (a VM's tap, a tunnel, a trunk).
    System,
    /// A device Open vSwitch makes (a host tap).
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub bridge: String,
    pub name: String,
    /// Access port of this VLAN; `None`: a trunk of every VLAN.
    pub tag: Option<u16>,
    /// 802.1ad: the tag is pushed as an outer tag (`dot1q-tunnel`).
    pub qinq: bool,
    pub kind: PortKind,
    /// Who the port is for, kept in the Port's `external_ids` as
    /// [`OWNER_KEY`] (a VM's: its daemon's tag and its id), so a daemon
    /// finds its own ports again however it last stopped.
    pub owner: Option<String>,
}

/// The `external_ids` key of a VM port's owner.
pub const OWNER_KEY: &str = "minimega-vm";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddPort(PortSpec),
    /// Adds the port unless one of that name exists (re-adoption).
    EnsurePort(PortSpec),
    /// Idempotent: a port that is not there is no error.
    DelPort(String),
    SetTag {
        port: String,
        tag: u16,
    },
    /// Mirrors everything on `bridge` to `port` (added as a port too).
    AddMirror {
        bridge: String,
        port: String,
    },
    DelMirror {
        port: String,
    },
    /// minimega's `tap mirror`: what passes `src` (every port: `None`) also
    /// goes out of `dst`, a port already on `bridge`; the mirror is named
    /// after `dst`.
    AddPortMirror {
        bridge: String,
        src: Option<String>,
        dst: String,
    },
    /// Removes the mirror named `name`, leaving its ports.
    DelMirrorOnly {
        name: String,
    },
    /// Exports the bridge's flows as NetFlow v5 to `target` (`host:port`),
    /// records of long flows every `active_timeout` seconds; `None` stops
    /// the export.
    SetNetflow {
        bridge: String,
        target: Option<(String, i64)>,
    },
    /// Removes a bridge, and with it every port it holds. A bridge that
    /// is not there is no error.
    DelBridge(String),
    /// `ovs-vsctl set bridge BR COLUMN[:KEY]=VALUE` (minimega's `bridge
    /// config`): one key of a map column, or a whole column. A new bridge
    /// is made first.
    SetBridge {
        bridge: String,
        column: String,
        key: Option<String>,
        value: Value,
    },
    /// A bond port (minimega's `ovs-vsctl add-bond`): its members, ports
    /// on the bridge now, are taken off and become the bond's interfaces.
    AddBond(BondSpec),
}

/// One bond, as `ovs-vsctl add-bond BR NAME IFACES... -- set port NAME
/// tag=VLAN lacp=LACP [other_config:lacp-fallback-ab=true] bond_mode=MODE`
/// makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondSpec {
    pub bridge: String,
    pub name: String,
    pub members: Vec<String>,
    pub tag: u16,
    pub qinq: bool,
    /// active-backup, balance-slb or balance-tcp.
    pub mode: String,
    /// active, passive or off.
    pub lacp: String,
    /// Fall back to active-backup when the peer speaks no LACP.
    pub fallback: bool,
    pub owner: Option<String>,
}

impl Op {
    fn port_name(&self) -> &str {
        match self {
            Op::AddPort(p) | Op::EnsurePort(p) => &p.name,
            Op::DelPort(n) | Op::SetTag { port: n, .. } => n,
            Op::AddMirror { port, .. } | Op::DelMirror { port } => port,
            Op::AddPortMirror { dst, .. } => dst,
            Op::DelMirrorOnly { name } => name,
            // No port: the bridge's own is looked up, harmlessly.
            Op::SetNetflow { bridge, .. } | Op::SetBridge { bridge, .. } => bridge,
            Op::DelBridge(b) => b,
            Op::AddBond(b) => &b.name,
        }
    }

    fn bridge(&self) -> Option<&str> {
        match self {
            Op::AddPort(p) | Op::EnsurePort(p) => Some(&p.bridge),
            Op::AddMirror { bridge, .. } | Op::SetBridge { bridge, .. } => Some(bridge),
            Op::AddBond(b) => Some(&b.bridge),
            Op::SetNetflow {
                bridge,
                target: Some(_),
            } => Some(bridge),
            _ => None,
        }
    }
}

/// The rows a batch depends on, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The one Open_vSwitch row exists.
    pub root: bool,
    pub bridges: BTreeSet<String>,
    pub ports: BTreeMap<String, String>,
    pub mirrors: BTreeMap<String, String>,
    /// The bridges a [`Op::DelBridge`] names, by uuid.
    pub bridge_uuids: BTreeMap<String, String>,
}

fn select(table: &str, column: &str, name: Option<&str>, columns: &[&str]) -> Value {
    let w: Vec<Value> = name
        .map(|n| vec![json!([column, "==", n])])
        .unwrap_or_default();
    json!({"op": "select", "table": table, "where": w, "columns": columns})
}

/// The query for [`View`]: the root row, all bridge names, and each port
/// (and mirror) the ops name.
pub fn view_query(ops: &[Op]) -> Value {
    let mut params = vec![
        json!(DB),
        select(DB, "", None, &["_uuid"]),
        select("Bridge", "", None, &["name"]),
    ];
    let names: BTreeSet<&str> = ops.iter().map(Op::port_name).collect();
    for n in &names {
        params.push(select("Port", "name", Some(n), &["name", "_uuid"]));
    }
    for op in ops {
        match op {
            Op::DelMirror { port: name } | Op::DelMirrorOnly { name } => params.push(select(
                "Mirror",
                "name",
                Some(name),
                &["name", "_uuid", "select_all"],
            )),
            Op::AddPortMirror { src: Some(src), .. } if !names.contains(src.as_str()) => {
                params.push(select("Port", "name", Some(src), &["name", "_uuid"]))
            }
            Op::AddBond(b) => {
                for m in b.members.iter().filter(|m| !names.contains(m.as_str())) {
                    params.push(select("Port", "name", Some(m), &["name", "_uuid"]))
                }
            }
            // Only bridge rows are asked for their datapath_type.
            Op::DelBridge(b) => params.push(select(
                "Bridge",
                "name",
                Some(b),
                &["name", "_uuid", "datapath_type"],
            )),
            _ => {}
        }
    }
    Value::Array(params)
}

/// The rows of one select result.
pub fn rows(result: &Value) -> &[Value] {
    result["rows"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The uuid of a `["uuid", "..."]` value.
pub fn uuid(v: &Value) -> Option<&str> {
    match v.as_array().map(Vec::as_slice) {
        Some([k, u]) if k == "uuid" => u.as_str(),
        _ => None,
    }
}

/// The members of an OVSDB set (a lone atom is a set of one).
pub fn atoms(v: &Value) -> Vec<&Value> {
    match v.as_array().map(Vec::as_slice) {
        Some([k, items]) if k == "set" => items
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ if v.is_null() => Vec::new(),
        _ => vec![v],
    }
}

/// The value of `key` in an OVSDB map (`["map", [[k, v], ...]]`).
pub fn map_value<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    match v.as_array().map(Vec::as_slice) {
        Some([k, pairs]) if k == "map" => pairs.as_array()?.iter().find_map(|p| {
            let p = p.as_array()?;
            (p.first()?.as_str()? == key).then(|| p.get(1)?.as_str())?
        }),
        _ => None,
    }
}

/// Reads the answer to [`view_query`] (one result per select).
pub fn parse_view(results: &[Value]) -> View {
    let mut v = View {
        root: results.first().is_some_and(|r| !rows(r).is_empty()),
        ..View::default()
    };
    if let Some(b) = results.get(1) {
        v.bridges = rows(b)
            .iter()
            .filter_map(|r| r["name"].as_str().map(String::from))
            .collect();
    }
    for r in results.iter().skip(2) {
        for row in rows(r) {
            let (Some(name), Some(u)) = (row["name"].as_str(), uuid(&row["_uuid"])) else {
                continue;
            };
            // A mirror is named after its output port; only mirror rows
            // were asked for `select_all`.
            if row.get("select_all").is_some() {
                v.mirrors.insert(name.into(), u.into());
            } else if row.get("datapath_type").is_some() {
                v.bridge_uuids.insert(name.into(), u.into());
            } else {
                v.ports.insert(name.into(), u.into());
            }
        }
    }
    v
}

fn named(n: &str) -> Value {
    json!(["named-uuid", n])
}

fn set(items: Vec<Value>) -> Value {
    json!(["set", items])
}

/// One transaction doing every op.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub params: Value,
    /// Bridges it creates.
    pub created: Vec<String>,
    /// Interfaces whose `error` column tells whether they came up.
    pub check: Vec<String>,
}

struct Builder {
    ops: Vec<Value>,
    n: usize,
}

impl Builder {
    fn id(&mut self, p: &str) -> String {
        self.n += 1;
        format!("{p}{}", self.n)
    }

    /// Inserts an Interface and its Port; returns the Port's named uuid.
    fn port(
        &mut self,
        name: &str,
        kind: PortKind,
        tag: Option<u16>,
        qinq: bool,
        owner: Option<&str>,
    ) -> String {
        let i = self.id("i");
        let p = self.id("p");
        let mut irow = json!({"name": name});
        if kind == PortKind::Internal {
            irow["type"] = json!("internal");
        }
        self.ops
            .push(json!({"op": "insert", "table": "Interface", "row": irow, "uuid-name": i}));
        let mut prow = json!({"name": name, "interfaces": named(&i)});
        if let Some(o) = owner {
            prow["external_ids"] = json!(["map", [[OWNER_KEY, o]]]);
        }
        if let Some(t) = tag {
            prow["tag"] = json!(t);
            if qinq {
                prow["vlan_mode"] = json!("dot1q-tunnel");
            }
        }
        self.ops
            .push(json!({"op": "insert", "table": "Port", "row": prow, "uuid-name": p}));
        p
    }
}

impl Builder {
    /// Inserts a bond's interfaces and its Port; returns the Port's named
    /// uuid.
    fn bond(&mut self, bond: &BondSpec) -> String {
        let mut ifaces = Vec::new();
        for m in &bond.members {
            let i = self.id("i");
            self.ops.push(
                json!({"op": "insert", "table": "Interface", "row": {"name": m}, "uuid-name": i}),
            );
            ifaces.push(named(&i));
        }
        let p = self.id("p");
        let mut row = json!({"name": bond.name, "interfaces": set(ifaces), "tag": bond.tag,
            "lacp": bond.lacp, "bond_mode": bond.mode});
        if bond.qinq {
            row["vlan_mode"] = json!("dot1q-tunnel");
        }
        if bond.lacp != "off" && bond.fallback {
            row["other_config"] = json!(["map", [["lacp-fallback-ab", "true"]]]);
        }
        if let Some(o) = &bond.owner {
            row["external_ids"] = json!(["map", [[OWNER_KEY, o]]]);
        }
        self.ops
            .push(json!({"op": "insert", "table": "Port", "row": row, "uuid-name": p}));
        p
    }
}

/// `set bridge BR COLUMN[:KEY]=VALUE`: a map's key is replaced (deleted,
/// then inserted), a column is updated.
fn set_bridge(bridge: &str, column: &str, key: Option<&str>, value: &Value) -> Value {
    let at = json!([["name", "==", bridge]]);
    match key {
        Some(k) => json!({"op": "mutate", "table": "Bridge", "where": at, "mutations": [
            [column, "delete", set(vec![json!(k)])],
            [column, "insert", ["map", [[k, value]]]]]}),
        None => json!({"op": "update", "table": "Bridge", "where": at, "row": {column: value}}),
    }
}

/// Parses `COLUMN[:KEY]=VALUE` as `ovs-vsctl set` takes it: a map key's
/// value is a string; a column's is an integer, a boolean, `[a,b]` (a set),
/// `{k=v,...}` (a map) or else a string.
pub fn parse_setting(s: &str) -> Result<(String, Option<String>, Value), String> {
    let (lhs, rhs) = s
        .split_once('=')
        .ok_or_else(|| "expected key=value".to_string())?;
    let unquote = |v: &str| v.trim().trim_matches('"').to_string();
    let atom = |v: &str| -> Value {
        let v = v.trim();
        if let Ok(i) = v.parse::<i64>() {
            json!(i)
        } else if v == "true" || v == "false" {
            json!(v == "true")
        } else {
            json!(unquote(v))
        }
    };
    let (column, key) = match lhs.split_once(':') {
        Some((c, k)) => (c.trim(), Some(unquote(k))),
        None => (lhs.trim(), None),
    };
    let ok_name = |n: &str| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !ok_name(column) || key.as_deref().is_some_and(|k| k.is_empty()) {
        return Err(format!(
            "invalid setting `{s}`: expected COLUMN[:KEY]=VALUE"
        ));
    }
    let value = if key.is_some() {
        json!(unquote(rhs))
    } else if let Some(inner) = rhs.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        set(inner
            .split(',')
            .filter(|x| !x.trim().is_empty())
            .map(atom)
            .collect())
    } else if let Some(inner) = rhs.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        let mut pairs = Vec::new();
        for kv in inner.split(',').filter(|x| !x.trim().is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("invalid map `{rhs}`: expected {{key=value,...}}"))?;
            pairs.push(json!([unquote(k), unquote(v)]));
        }
        json!(["map", pairs])
    } else {
        atom(rhs)
    };
    Ok((column.to_string(), key, value))
}

/// The transaction doing `ops` against what `view` found; new bridges get
/// `datapath` (`system` or `netdev`).
pub fn plan(view: &View, ops: &[Op], datapath: &str) -> Plan {
    let mut b = Builder {
        ops: Vec::new(),
        n: 0,
    };
    let mut created: Vec<String> = Vec::new();
    let mut check = Vec::new();
    // New ports (and mirrors) per bridge, as named uuids.
    let mut ports: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut mirrors: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut gone_ports: Vec<Value> = Vec::new();
    let mut gone_mirrors: Vec<Value> = Vec::new();
    let mut gone_bridges: Vec<Value> = Vec::new();
    // Changes of bridges, made after any bridge they need is.
    let mut late: Vec<Value> = Vec::new();
    let mut qinq = false;
    // Bridge -> its new NetFlow row (named uuid), or none to clear it.
    let mut netflows: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for op in ops {
        if let Some(br) = op.bridge() {
            if !view.bridges.contains(br) && !created.iter().any(|c| c == br) {
                created.push(br.to_string());
                check.push(br.to_string());
            }
        }
        match op {
            Op::EnsurePort(p) if view.ports.contains_key(&p.name) => {}
            Op::AddPort(p) | Op::EnsurePort(p) => {
                qinq |= p.qinq;
                let id = b.port(&p.name, p.kind, p.tag, p.qinq, p.owner.as_deref());
                ports.entry(p.bridge.clone()).or_default().push(named(&id));
                check.push(p.name.clone());
            }
            Op::DelPort(n) => {
                if let Some(u) = view.ports.get(n) {
                    gone_ports.push(json!(["uuid", u]));
                }
            }
            Op::SetTag { port, tag } => b.ops.push(json!({
                "op": "update", "table": "Port", "where": [["name", "==", port]], "row": {"tag": tag}
            })),
            Op::AddMirror { bridge, port } => {
                let id = b.port(port, PortKind::System, None, false, None);
                let m = b.id("m");
                b.ops.push(json!({"op": "insert", "table": "Mirror", "uuid-name": m,
                    "row": {"name": port, "select_all": true, "output_port": named(&id)}}));
                ports.entry(bridge.clone()).or_default().push(named(&id));
                mirrors.entry(bridge.clone()).or_default().push(named(&m));
                check.push(port.clone());
            }
            Op::SetNetflow { bridge, target } => {
                let v = target.as_ref().map(|(t, timeout)| {
                    let nf = b.id("nf");
                    b.ops.push(json!({"op": "insert", "table": "NetFlow", "uuid-name": nf,
                        "row": {"targets": set(vec![json!(t)]), "active_timeout": timeout}}));
                    named(&nf)
                });
                netflows.insert(bridge.clone(), v);
            }
            Op::AddPortMirror { bridge, src, dst } => {
                let port = |n: &str| match view.ports.get(n) {
                    Some(u) => json!(["uuid", u]),
                    None => set(Vec::new()),
                };
                let m = b.id("m");
                let mut row = json!({"name": dst, "output_port": port(dst)});
                match src {
                    Some(s) => {
                        row["select_src_port"] = set(vec![port(s)]);
                        row["select_dst_port"] = set(vec![port(s)]);
                    }
                    None => row["select_all"] = json!(true),
                }
                b.ops.push(
                    json!({"op": "insert", "table": "Mirror", "uuid-name": m, "row": row}),
                );
                mirrors.entry(bridge.clone()).or_default().push(named(&m));
            }
            Op::DelMirrorOnly { name } => {
                if let Some(u) = view.mirrors.get(name) {
                    gone_mirrors.push(json!(["uuid", u]));
                }
            }
            Op::DelBridge(name) => {
                if let Some(u) = view.bridge_uuids.get(name) {
                    gone_bridges.push(json!(["uuid", u]));
                }
            }
            Op::SetBridge {
                bridge,
                column,
                key,
                value,
            } => late.push(set_bridge(bridge, column, key.as_deref(), value)),
            Op::AddBond(bond) => {
                qinq |= bond.qinq;
                for m in &bond.members {
                    if let Some(u) = view.ports.get(m) {
                        gone_ports.push(json!(["uuid", u]));
                    }
                }
                let id = b.bond(bond);
                ports.entry(bond.bridge.clone()).or_default().push(named(&id));
                check.extend(bond.members.iter().cloned());
            }
            Op::DelMirror { port } => {
                if let Some(u) = view.mirrors.get(port) {
                    gone_mirrors.push(json!(["uuid", u]));
                }
                if let Some(u) = view.ports.get(port) {
                    gone_ports.push(json!(["uuid", u]));
                }
            }
        }
    }
    if !created.is_empty() && !view.root {
        b.ops
            .push(json!({"op": "insert", "table": DB, "row": {}, "uuid-name": "root"}));
    }
    for br in &created {
        let local = b.port(br, PortKind::Internal, None, false, None);
        let mut all = vec![named(&local)];
        all.extend(ports.remove(br).unwrap_or_default());
        let id = b.id("b");
        let mut row = json!({
            "name": br, "ports": set(all), "datapath_type": datapath,
            "mirrors": set(mirrors.remove(br).unwrap_or_default()),
        });
        if let Some(Some(nf)) = netflows.remove(br) {
            row["netflow"] = nf;
        }
        b.ops
            .push(json!({"op": "insert", "table": "Bridge", "uuid-name": id, "row": row}));
        b.ops.push(json!({"op": "mutate", "table": DB, "where": [],
            "mutations": [["bridges", "insert", set(vec![named(&id)])]]}));
    }
    for (br, list) in ports {
        let mut m = vec![json!(["ports", "insert", set(list)])];
        if let Some(ms) = mirrors.remove(&br) {
            m.push(json!(["mirrors", "insert", set(ms)]));
        }
        b.ops.push(json!({"op": "mutate", "table": "Bridge",
            "where": [["name", "==", br]], "mutations": m}));
    }
    // Mirrors of ports already there.
    for (br, ms) in mirrors {
        b.ops.push(json!({"op": "mutate", "table": "Bridge",
            "where": [["name", "==", br]], "mutations": [["mirrors", "insert", set(ms)]]}));
    }
    b.ops.extend(late);
    for (br, nf) in netflows {
        b.ops.push(
            json!({"op": "update", "table": "Bridge", "where": [["name", "==", br]],
            "row": {"netflow": nf.unwrap_or_else(|| set(Vec::new()))}}),
        );
    }
    // Deleting a reference from every bridge removes the port wherever it
    // is; unreferenced Port and Interface rows are then garbage collected.
    let mut del = Vec::new();
    if !gone_mirrors.is_empty() {
        del.push(json!(["mirrors", "delete", set(gone_mirrors)]));
    }
    if !gone_ports.is_empty() {
        del.push(json!(["ports", "delete", set(gone_ports)]));
    }
    if !del.is_empty() {
        b.ops
            .push(json!({"op": "mutate", "table": "Bridge", "where": [], "mutations": del}));
    }
    if !gone_bridges.is_empty() {
        b.ops.push(json!({"op": "mutate", "table": DB, "where": [],
            "mutations": [["bridges", "delete", set(gone_bridges)]]}));
    }
    if qinq {
        // Two tags deep, or OVS drops double-tagged frames.
        b.ops.push(json!({"op": "mutate", "table": DB, "where": [],
            "mutations": [["other_config", "insert", ["map", [["vlan-limit", "2"]]]]]}));
    }
    b.ops.push(json!({"op": "mutate", "table": DB, "where": [],
        "mutations": [["next_cfg", "+=", 1]]}));
    b.ops
        .push(json!({"op": "select", "table": DB, "where": [], "columns": ["next_cfg"]}));
    let mut params = vec![json!(DB)];
    params.extend(b.ops);
    Plan {
        params: Value::Array(params),
        created,
        check,
    }
}

/// Removes bridges whose own device could not be made (their ports go
/// with them).
pub fn drop_bridges(uuids: &[String]) -> Value {
    let list: Vec<Value> = uuids.iter().map(|u| json!(["uuid", u])).collect();
    json!([DB, {"op": "mutate", "table": DB, "where": [],
        "mutations": [["bridges", "delete", set(list)]]}])
}

/// The first error in a transaction's results, as one line.
pub fn error(results: &[Value]) -> Option<String> {
    results.iter().find_map(|r| {
        let e = r.get("error")?.as_str()?;
        Some(match r.get("details").and_then(Value::as_str) {
            Some(d) if !d.is_empty() => format!("{e}: {d}"),
            _ => e.to_string(),
        })
    })
}

#[cfg(test)]
#[path = "txn_bridge_tests.rs"]
mod bridge_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn tap(br: &str, name: &str, tag: u16) -> PortSpec {
        PortSpec {
            bridge: br.into(),
            name: name.into(),
            tag: Some(tag),
            qinq: false,
            kind: PortKind::System,
            owner: None,
        }
    }

    fn ops_of(p: &Plan) -> Vec<Value> {
        p.params.as_array().unwrap()[1..].to_vec()
    }

    #[test]
    fn a_tap_mirror_selects_one_port_for_another() {
        let view = View {
            root: true,
            bridges: ["br0".to_string()].into(),
            ports: [
                ("t0".to_string(), "u0".to_string()),
                ("t1".to_string(), "u1".to_string()),
            ]
            .into(),
            ..View::default()
        };
        let op = [Op::AddPortMirror {
            bridge: "br0".into(),
            src: Some("t0".into()),
            dst: "t1".into(),
        }];
        let q = view_query(&op);
        assert!(q.to_string().contains(r#"["name","==","t0"]"#), "{q}");
        let ops = ops_of(&plan(&view, &op, "netdev"));
        assert_eq!(
            ops[0],
            json!({"op": "insert", "table": "Mirror", "uuid-name": "m1", "row": {
                "name": "t1", "output_port": ["uuid", "u1"],
                "select_src_port": ["set", [["uuid", "u0"]]],
                "select_dst_port": ["set", [["uuid", "u0"]]]}})
        );
        assert_eq!(
            ops[1],
            json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", "br0"]],
                   "mutations": [["mirrors", "insert", ["set", [["named-uuid", "m1"]]]]]})
        );
        let view = View {
            mirrors: [("t1".to_string(), "m9".to_string())].into(),
            ..view
        };
        let ops = ops_of(&plan(
            &view,
            &[Op::DelMirrorOnly { name: "t1".into() }],
            "netdev",
        ));
        assert_eq!(
            ops[0]["mutations"],
            json!([["mirrors", "delete", ["set", [["uuid", "m9"]]]]])
        );
    }

    #[test]
    fn netflow_is_a_row_the_bridge_points_at() {
        let view = View {
            root: true,
            bridges: ["br0".to_string()].into(),
            ..View::default()
        };
        let on = [Op::SetNetflow {
            bridge: "br0".into(),
            target: Some(("127.0.0.1:5555".into(), 10)),
        }];
        let p = plan(&view, &on, "netdev");
        assert!(p.created.is_empty());
        let ops = ops_of(&p);
        assert_eq!(
            ops[0],
            json!({"op": "insert", "table": "NetFlow", "uuid-name": "nf1",
                   "row": {"targets": ["set", ["127.0.0.1:5555"]], "active_timeout": 10}})
        );
        assert_eq!(
            ops[1],
            json!({"op": "update", "table": "Bridge", "where": [["name", "==", "br0"]],
                   "row": {"netflow": ["named-uuid", "nf1"]}})
        );
        let off = [Op::SetNetflow {
            bridge: "br0".into(),
            target: None,
        }];
        let ops = ops_of(&plan(&view, &off, "netdev"));
        assert_eq!(ops[0]["row"], json!({"netflow": ["set", []]}));
        // On a bridge to be made, the row goes into the bridge's insert.
        let p = plan(&View::default(), &on, "netdev");
        assert_eq!(p.created, ["br0"]);
        let br = ops_of(&p)
            .into_iter()
            .find(|o| o["table"] == "Bridge" && o["op"] == "insert")
            .unwrap();
        assert_eq!(br["row"]["netflow"], json!(["named-uuid", "nf1"]));
    }

    #[test]
    fn many_ports_on_a_known_bridge_are_one_mutation() {
        let view = View {
            root: true,
            bridges: ["mega_bridge".to_string()].into(),
            ..View::default()
        };
        let ops = [
            Op::AddPort(tap("mega_bridge", "mega_tap0", 101)),
            Op::AddPort(tap("mega_bridge", "mega_tap1", 102)),
        ];
        let p = plan(&view, &ops, "netdev");
        assert!(p.created.is_empty());
        assert_eq!(p.check, ["mega_tap0", "mega_tap1"]);
        let want = json!([
            {"op": "insert", "table": "Interface", "row": {"name": "mega_tap0"}, "uuid-name": "i1"},
            {"op": "insert", "table": "Port", "row": {"name": "mega_tap0", "interfaces": ["named-uuid", "i1"], "tag": 101}, "uuid-name": "p2"},
            {"op": "insert", "table": "Interface", "row": {"name": "mega_tap1"}, "uuid-name": "i3"},
            {"op": "insert", "table": "Port", "row": {"name": "mega_tap1", "interfaces": ["named-uuid", "i3"], "tag": 102}, "uuid-name": "p4"},
            {"op": "mutate", "table": "Bridge", "where": [["name", "==", "mega_bridge"]],
             "mutations": [["ports", "insert", ["set", [["named-uuid", "p2"], ["named-uuid", "p4"]]]]]},
            {"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["next_cfg", "+=", 1]]},
            {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]},
        ]);
        assert_eq!(Value::Array(ops_of(&p)), want);
        assert_eq!(p.params[0], "Open_vSwitch");
    }

    #[test]
    fn a_vm_port_carries_its_owner() {
        let view = View {
            root: true,
            bridges: ["b".to_string()].into(),
            ..View::default()
        };
        let mut t = tap("b", "mega_tap0", 5);
        t.owner = Some("0badf00d/7".into());
        let p = plan(&view, &[Op::AddPort(t)], "netdev");
        let row = &ops_of(&p)[1]["row"];
        assert_eq!(
            row["external_ids"],
            json!(["map", [["minimega-vm", "0badf00d/7"]]])
        );
        assert_eq!(
            map_value(&row["external_ids"], OWNER_KEY),
            Some("0badf00d/7")
        );
        assert_eq!(map_value(&json!(["map", []]), OWNER_KEY), None);
        assert_eq!(map_value(&json!("x"), OWNER_KEY), None);
    }

    #[test]
    fn a_bridge_is_created_on_first_use_with_its_ports() {
        let view = View::default();
        let mut q = tap("br1", "mega_tap5", 7);
        q.qinq = true;
        let p = plan(&view, &[Op::AddPort(q)], "system");
        assert_eq!(p.created, ["br1"]);
        assert_eq!(p.check, ["br1", "mega_tap5"]);
        let ops = ops_of(&p);
        assert_eq!(ops[1]["row"]["vlan_mode"], "dot1q-tunnel");
        // No Open_vSwitch row yet: one is inserted for the bridge to hang on.
        assert_eq!(
            ops[2],
            json!({"op": "insert", "table": "Open_vSwitch", "row": {}, "uuid-name": "root"})
        );
        assert_eq!(ops[3]["row"], json!({"name": "br1", "type": "internal"}));
        assert_eq!(
            ops[5]["row"],
            json!({"name": "br1", "datapath_type": "system", "mirrors": ["set", []],
                   "ports": ["set", [["named-uuid", "p4"], ["named-uuid", "p2"]]]})
        );
        assert_eq!(ops[6]["mutations"][0][0], "bridges");
        assert_eq!(ops[7]["mutations"][0][0], "other_config");
    }

    #[test]
    fn deletes_select_first_then_unlink_from_every_bridge() {
        let ops = [
            Op::DelPort("mega_tap0".into()),
            Op::DelPort("gone".into()),
            Op::DelMirror {
                port: "mega_cap0".into(),
            },
        ];
        let q = view_query(&ops);
        let qs = q.as_array().unwrap();
        assert_eq!(qs.len(), 1 + 2 + 3 + 1);
        assert_eq!(
            qs[3],
            json!({"op": "select", "table": "Port", "where": [["name", "==", "gone"]], "columns": ["name", "_uuid"]})
        );
        let answer = [
            json!({"rows": [{"_uuid": ["uuid", "r"]}]}),
            json!({"rows": [{"name": "mega_bridge"}]}),
            json!({"rows": []}),
            json!({"rows": [{"name": "mega_cap0", "_uuid": ["uuid", "c"]}]}),
            json!({"rows": [{"name": "mega_tap0", "_uuid": ["uuid", "t"]}]}),
            json!({"rows": [{"name": "mega_cap0", "_uuid": ["uuid", "m"], "select_all": true}]}),
        ];
        let view = parse_view(&answer);
        assert!(view.root && view.bridges.contains("mega_bridge"));
        assert_eq!(view.ports["mega_tap0"], "t");
        assert_eq!(view.mirrors["mega_cap0"], "m");
        let p = plan(&view, &ops, "netdev");
        assert_eq!(
            ops_of(&p)[0],
            json!({"op": "mutate", "table": "Bridge", "where": [], "mutations": [
                ["mirrors", "delete", ["set", [["uuid", "m"]]]],
                ["ports", "delete", ["set", [["uuid", "t"], ["uuid", "c"]]]]]})
        );
    }

    #[test]
    fn ensure_skips_ports_that_exist_and_retags_update() {
        let view = View {
            root: true,
            bridges: ["b".to_string()].into(),
            ports: [("t0".to_string(), "u".to_string())].into(),
            ..View::default()
        };
        let p = plan(
            &view,
            &[
                Op::EnsurePort(tap("b", "t0", 5)),
                Op::SetTag {
                    port: "t0".into(),
                    tag: 9,
                },
            ],
            "netdev",
        );
        let ops = ops_of(&p);
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0]["op"], "update");
        assert_eq!(ops[0]["row"], json!({"tag": 9}));
        assert!(p.check.is_empty());
    }

    #[test]
    fn a_mirror_and_its_output_port_go_in_together() {
        let view = View {
            root: true,
            bridges: ["b".to_string()].into(),
            ..View::default()
        };
        let p = plan(
            &view,
            &[Op::AddMirror {
                bridge: "b".into(),
                port: "mega_cap0".into(),
            }],
            "netdev",
        );
        let ops = ops_of(&p);
        assert_eq!(ops[2]["table"], "Mirror");
        assert_eq!(ops[2]["row"]["select_all"], true);
        assert_eq!(ops[2]["row"]["output_port"], json!(["named-uuid", "p2"]));
        assert_eq!(
            ops[3]["mutations"][1],
            json!(["mirrors", "insert", ["set", [["named-uuid", "m3"]]]])
        );
    }

    #[test]
    fn values_and_errors() {
        assert_eq!(atoms(&json!(["set", [1, 2]])).len(), 2);
        assert_eq!(atoms(&json!(5)), [&json!(5)]);
        assert!(atoms(&json!(["set", []])).is_empty());
        assert_eq!(uuid(&json!(["uuid", "x"])), Some("x"));
        assert_eq!(
            error(&[
                json!({}),
                json!({"error": "constraint violation", "details": "duplicate name"})
            ]),
            Some("constraint violation: duplicate name".into())
        );
        assert_eq!(error(&[json!({"count": 1})]), None);
        assert_eq!(drop_bridges(&["u".into()])[1]["mutations"][0][1], "delete");
    }
}
