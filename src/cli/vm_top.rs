//! `vm top` (see `vm::top`).

use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Spec};
use crate::node::Node;
use crate::vm::top::*;
use std::time::Duration;

pub fn specs() -> Vec<Spec<Node>> {
    vec![Spec {
        patterns: &["vm top [duration]"],
        short: "view vm resource utilization",
        long: "View what each running VM uses, measured on the host (the guest may see\n\
it otherwise), over a window of the given seconds (default 1): the command\n\
takes at least that long. Columns:\n\n\
\tname    the VM\n\
\tvirt    virtual memory size (MB)\n\
\tres     resident memory size (MB)\n\
\tshr     shared memory size (MB)\n\
\tcpu     host CPU usage (%)\n\
\tvcpu    guest CPU usage (%) (KVM only)\n\
\ttime    total CPU time\n\
\tprocs   processes measured (QEMU's)\n\
\trx, tx  received and sent data rate (MB/s) of its interfaces",
        handler: top,
        mesh_ok: true,
        reach: Reach::namespace(Some(super::scope::drop_not_found)),
        ns_clear: &[],
    }]
}

fn top(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let secs: u64 = match c.args.string("duration") {
            None => 1,
            Some(d) => d.parse().ok().filter(|s| *s <= 3600).ok_or_else(|| {
                CommandError::Invalid(format!(
                    "invalid duration `{d}`: expected seconds, at most 3600"
                ))
            })?,
        };
        let ns = crate::ns::current(c.session);
        let vms = c.ctx.vms.in_namespace(ns);
        let rows = measure(&vms, Duration::from_secs(secs), &*c.ctx.net).await;
        Ok(table(COLUMNS, rows).into())
    })
}
