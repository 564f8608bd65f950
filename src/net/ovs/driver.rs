//! [`Ovs`]: the [`Switch`] that sends [`txn`]'s transactions to the
//! database and waits for ovs-vswitchd to catch up (`cur_cfg` reaching the
//! transaction's `next_cfg`), then reads each new interface's `error`.

use super::rpc::{Conn, RpcError};
use super::txn::{self, Op};
use super::{BridgeState, Datapath, PortState, Switch, SwitchError};
use crate::command::BoxFuture;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long ovs-vswitchd may take to set up a batch (a hundred ports on
/// the userspace datapath of a loaded machine take seconds).
const APPLY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Ovs {
    path: PathBuf,
    datapath: Datapath,
    announced: AtomicBool,
}

impl Ovs {
    pub fn new(path: PathBuf, datapath: Datapath) -> Ovs {
        Ovs {
            path,
            datapath,
            announced: AtomicBool::new(false),
        }
    }

    async fn conn(&self) -> Result<Conn, SwitchError> {
        match Conn::open(&self.path).await {
            Ok(c) => {
                if !self.announced.swap(true, Ordering::Relaxed) {
                    super::announce(&self.path, self.datapath);
                }
                Ok(c)
            }
            Err(e) if installed() => Err(SwitchError::NotRunning(e)),
            Err(RpcError::Connect { .. }) => Err(SwitchError::NotInstalled),
            Err(e) => Err(SwitchError::NotRunning(e)),
        }
    }

    async fn transact(conn: &mut Conn, params: Value) -> Result<Vec<Value>, SwitchError> {
        let r = conn.transact(params).await?;
        match txn::error(&r) {
            Some(e) => Err(SwitchError::Refused(e)),
            None => Ok(r),
        }
    }

    async fn wait_applied(conn: &mut Conn, want: i64) -> Result<(), SwitchError> {
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        let mut pause = Duration::from_millis(2);
        loop {
            let r = Self::transact(
                conn,
                json!([txn::DB, {"op": "select", "table": txn::DB, "where": [], "columns": ["cur_cfg"]}]),
            )
            .await?;
            let cur = txn::rows(&r[0])
                .first()
                .and_then(|row| row["cur_cfg"].as_i64())
                .unwrap_or(0);
            if cur >= want {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(SwitchError::NotApplied(APPLY_TIMEOUT));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Interfaces among `names` that ovs-vswitchd could not set up.
    async fn failures(
        conn: &mut Conn,
        names: &[String],
    ) -> Result<BTreeMap<String, String>, SwitchError> {
        let mut params = vec![json!(txn::DB)];
        for n in names {
            params.push(json!({"op": "select", "table": "Interface",
                "where": [["name", "==", n]], "columns": ["name", "error"]}));
        }
        let r = Self::transact(conn, Value::Array(params)).await?;
        let mut out = BTreeMap::new();
        for row in r.iter().flat_map(txn::rows) {
            let name = row["name"].as_str().unwrap_or_default();
            if let Some(e) = txn::atoms(&row["error"]).first().and_then(|e| e.as_str()) {
                out.insert(name.to_string(), e.to_string());
            }
        }
        Ok(out)
    }
}

/// Whether Open vSwitch is installed here: its daemon is on the PATH.
fn installed() -> bool {
    crate::paths::find_binary("ovs-vswitchd").is_some()
}

impl Switch for Ovs {
    fn datapath(&self) -> Datapath {
        self.datapath
    }

    fn check(&self) -> BoxFuture<'_, Result<(), SwitchError>> {
        Box::pin(async move {
            let mut c = self.conn().await?;
            c.call("list_dbs", json!([])).await?;
            Ok(())
        })
    }

    fn apply<'a>(
        &'a self,
        ops: &'a [Op],
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, SwitchError>> {
        Box::pin(async move {
            let mut c = self.conn().await?;
            let r = Self::transact(&mut c, txn::view_query(ops)).await?;
            let view = txn::parse_view(&r);
            let plan = txn::plan(&view, ops, self.datapath.ovs_type());
            let r = Self::transact(&mut c, plan.params).await?;
            let want = r
                .last()
                .and_then(|s| txn::rows(s).first())
                .and_then(|row| row["next_cfg"].as_i64())
                .unwrap_or(0);
            // What goes needs no confirmation; what comes (or moves) does.
            let removals = ops.iter().all(|o| {
                matches!(
                    o,
                    Op::DelPort(_)
                        | Op::DelMirror { .. }
                        | Op::DelMirrorOnly { .. }
                        | Op::SetNetflow { target: None, .. }
                        | Op::DelBridge(_)
                )
            });
            if removals {
                return Ok(BTreeMap::new());
            }
            Self::wait_applied(&mut c, want).await?;
            if plan.check.is_empty() {
                return Ok(BTreeMap::new());
            }
            let failed = Self::failures(&mut c, &plan.check).await?;
            // A bridge whose own device failed would hold its ports in a
            // switch that forwards nothing: it goes, and they with it.
            let dead: Vec<&String> = plan
                .created
                .iter()
                .filter(|b| failed.contains_key(*b))
                .collect();
            if !dead.is_empty() {
                let mut q = vec![json!(txn::DB)];
                for b in &dead {
                    q.push(json!({"op": "select", "table": "Bridge",
                        "where": [["name", "==", b]], "columns": ["_uuid"]}));
                }
                let r = Self::transact(&mut c, Value::Array(q)).await?;
                let uuids: Vec<String> = r
                    .iter()
                    .flat_map(txn::rows)
                    .filter_map(|row| txn::uuid(&row["_uuid"]).map(String::from))
                    .collect();
                Self::transact(&mut c, txn::drop_bridges(&uuids)).await?;
            }
            Ok(failed)
        })
    }

    fn bridges(&self) -> BoxFuture<'_, Result<Vec<BridgeState>, SwitchError>> {
        Box::pin(async move {
            let mut c = self.conn().await?;
            let sel = |t: &str, cols: &[&str]| json!({"op": "select", "table": t, "where": [], "columns": cols});
            let r = Self::transact(
                &mut c,
                json!([
                    txn::DB,
                    sel("Bridge", &["name", "ports", "datapath_type"]),
                    sel(
                        "Port",
                        &["_uuid", "name", "tag", "interfaces", "external_ids"]
                    ),
                    sel("Interface", &["_uuid", "type", "name"]),
                ]),
            )
            .await?;
            let kinds: BTreeMap<&str, &str> = txn::rows(&r[2])
                .iter()
                .filter_map(|row| Some((txn::uuid(&row["_uuid"])?, row["type"].as_str()?)))
                .collect();
            let names: BTreeMap<&str, &str> = txn::rows(&r[2])
                .iter()
                .filter_map(|row| Some((txn::uuid(&row["_uuid"])?, row["name"].as_str()?)))
                .collect();
            let ports: BTreeMap<&str, PortState> = txn::rows(&r[1])
                .iter()
                .filter_map(|row| {
                    let u = txn::uuid(&row["_uuid"])?;
                    let ifaces = txn::atoms(&row["interfaces"]);
                    let mut members: Vec<String> = ifaces
                        .iter()
                        .filter_map(|i| txn::uuid(i).and_then(|i| names.get(i)))
                        .map(|n| n.to_string())
                        .collect();
                    members.sort();
                    if members.len() < 2 {
                        members.clear();
                    }
                    let kind = txn::atoms(&row["interfaces"])
                        .first()
                        .and_then(|i| txn::uuid(i))
                        .and_then(|i| kinds.get(i))
                        .copied()
                        .unwrap_or("");
                    Some((
                        u,
                        PortState {
                            name: row["name"].as_str()?.to_string(),
                            tag: txn::atoms(&row["tag"])
                                .first()
                                .and_then(|t| t.as_u64())
                                .map(|t| t as u16),
                            kind: kind.to_string(),
                            owner: txn::map_value(&row["external_ids"], txn::OWNER_KEY)
                                .unwrap_or_default()
                                .to_string(),
                            members,
                        },
                    ))
                })
                .collect();
            let mut out: Vec<BridgeState> = txn::rows(&r[0])
                .iter()
                .filter_map(|row| {
                    let mut list: Vec<PortState> = txn::atoms(&row["ports"])
                        .iter()
                        .filter_map(|p| txn::uuid(p).and_then(|u| ports.get(u)).cloned())
                        .collect();
                    list.sort_by(|a, b| a.name.cmp(&b.name));
                    Some(BridgeState {
                        name: row["name"].as_str()?.to_string(),
                        datapath: row["datapath_type"].as_str().unwrap_or("").to_string(),
                        ports: list,
                    })
                })
                .collect();
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }
}
