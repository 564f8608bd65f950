//! The node-level commands: `version`, `args`, `host`.

use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, Response, Spec};
use crate::hostinfo::{self, HOST_COLUMNS};
use crate::node::Node;
use crate::timefmt::go_duration_exact;

use crate::VERSION;

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["version"],
            short: "display the version",
            long: "Display the version of minimega running on this node.",
            handler: version,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["args"],
            short: "display arguments used",
            long: "Display the flags this daemon runs with, one column per flag (by name)\nand its value, whether it came from the command line, the config file\nor the defaults: e.g. `.columns filepath args` for the files directory.",
            handler: args,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "host",
                "host <accel,cpucommit,cpus,load,memcommit,memlimit,memtotal,memused,name,netcommit,rx,tx,uptime,vms,vmsall,vmlimit>",
            ],
            short: "report information about the host",
            long: "Report information about this node: name, cpus, committed vcpus,\nload average, memory used and total (MiB), memory committed to VMs and\nthe most that may be committed (memlimit: memtotal times -overcommit, or\nnone), VMs running and in total, uptime, the accelerator QEMU uses (kvm,\nor tcg where KVM does not work), MB/s the VMs received (rx) and sent (tx),\ntheir NICs (netcommit), and the most VMs the node may hold by their\n`vm config coschedule` (vmlimit: the lowest coschedule plus one, -1 for\nno limit). `host FIELD` prints one of them, e.g. `host vmlimit`. The\nanswer's Data is minimega's HostStats (Name, RxBps, TxBps, CPUs, MemTotal,\nMemUsed, VMs, Limit, CPUCommit, MemCommit, NetworkCommit, Load, Uptime in\nns).",
            handler: host,
            mesh_ok: true,
            reach: Reach::namespace(None),
            ns_clear: &[],
        },
    ]
}

fn version(_c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move { Ok(Response::text(format!("minimega {VERSION}")).into()) })
}

fn args(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let (names, values): (Vec<&str>, Vec<String>) = c.ctx.config.args().into_iter().unzip();
        Ok(table(names, [values]).into())
    })
}

fn host(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let info = hostinfo::read();
        let n = c.ctx;
        let (cpucommit, memcommit, live) = n.vms.commitment();
        let [rx, tx, netcommit] = super::net::host_cells(n);
        let vmlimit = n.vms.coschedule_limit();
        let row = vec![
            n.hostname().to_string(),
            info.cpus.to_string(),
            cpucommit.to_string(),
            info.load.clone(),
            info.mem_used_mib.to_string(),
            info.mem_total_mib.to_string(),
            memcommit.to_string(),
            crate::vm::admission::mem_limit(info.mem_total_mib, n.config.overcommit)
                .map_or_else(|| "none".into(), |l| l.to_string()),
            live.to_string(),
            n.vm_count().to_string(),
            go_duration_exact(info.uptime),
            n.vms.accel().to_string(),
            rx.clone(),
            tx.clone(),
            netcommit.clone(),
            vmlimit.to_string(),
        ];
        let num = |s: &str| s.parse::<f64>().unwrap_or(0.0);
        // minimega's HostStats, field for field.
        let data = serde_json::json!({
            "Name": n.hostname(),
            "RxBps": num(&rx),
            "TxBps": num(&tx),
            "CPUs": info.cpus,
            "MemTotal": info.mem_total_mib,
            "MemUsed": info.mem_used_mib,
            "VMs": live,
            "Limit": vmlimit,
            "CPUCommit": cpucommit,
            "MemCommit": memcommit,
            "NetworkCommit": netcommit.parse::<u64>().unwrap_or(0),
            "Load": info.load,
            "Uptime": info.uptime.as_nanos() as u64,
        });
        if let Some(i) = HOST_COLUMNS.iter().position(|h| c.args.flag(h)) {
            return Ok(Response::text(row[i].clone()).with_data(data).into());
        }
        Ok(table(HOST_COLUMNS, [row]).with_data(data).into())
    })
}
