//! `optimize` and `clear optimize`: see [`crate::optimize`]. KSM is the
//! host's; hugepages and affinity are per namespace, as in minimega.

use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reply, Response, Spec};
use crate::node::Node;
use crate::optimize::{OptimizeError, Optimizer};
use crate::vm::config::VmConfig;
use std::sync::OnceLock;

/// One per daemon, like the host's KSM it saves and restores.
fn optimizer() -> &'static Optimizer {
    static O: OnceLock<Optimizer> = OnceLock::new();
    O.get_or_init(Optimizer::host)
}

impl From<OptimizeError> for CommandError {
    fn from(e: OptimizeError) -> CommandError {
        CommandError::Failed(e.to_string())
    }
}

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &[
                "optimize",
                "optimize <affinity,> <filter,> <filter>",
                "optimize <affinity,> [true,false]",
                "optimize <hugepages,> [path]",
                "optimize <ksm,> [true,false]",
            ],
            short: "enable or disable several virtualization optimizations",
            long: "Enable or disable Kernel Samepage Merging, CPU affinity for VMs, and\nhugepages for their memory. `optimize` alone lists ksm, hugepages and\naffinity (enabled, disabled, or the hugepages path).\n\n\toptimize ksm [true|false]   KSM on (run=1, pages_to_scan=100000,\n\t                            sleep_millisecs=10 under /sys/kernel/mm/ksm,\n\t                            the values before saved) or back to them;\n\t                            alone: true or false. Host-wide. A kernel\n\t                            without KSM (or a read-only /sys) is an\n\t                            error and nothing changes.\n\toptimize hugepages [PATH]   VMs launched from now on in the namespace\n\t                            get their memory from the hugetlbfs mount\n\t                            PATH (QEMU -mem-path); PATH must be a\n\t                            directory; alone: the path\n\toptimize affinity [true|false]   pin each running QEMU of the namespace\n\t                            to the least loaded CPU (of the filter), or\n\t                            let them run anywhere again; alone: a table\n\t                            of cpu and the pids pinned to it\n\toptimize affinity filter CPUS   the CPUs it may use, like [1,2-20];\n\t                            pins the QEMUs again\n\n`clear optimize` turns all of them off (KSM restored); `clear optimize\nksm|hugepages|affinity [filter]` one of them. Affinity pins the QEMUs\nrunning when it is enabled; run `optimize affinity true` again after\nlaunching more.",
            handler: optimize,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "clear optimize",
                "clear optimize <affinity,> [filter,]",
                "clear optimize <hugepages,>",
                "clear optimize <ksm,>",
            ],
            short: "reset virtualization optimization state",
            long: "Reset the optimizations (see `optimize`): all of them, or KSM (restored\nto its values before `optimize ksm true`), hugepages, affinity, or the\naffinity filter (the QEMUs are pinned again over every CPU).",
            handler: clear_optimize,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

fn namespace(c: &Call<'_, Node>) -> String {
    crate::ns::current(c.session).to_string()
}

/// The pids of the namespace's QEMUs on this node.
fn pids(node: &Node, ns: &str) -> Vec<u32> {
    node.vms
        .in_namespace(ns)
        .iter()
        .filter_map(|v| v.lock().pid)
        .collect()
}

fn on_off(b: bool) -> &'static str {
    if b {
        "enabled"
    } else {
        "disabled"
    }
}

fn optimize(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let o = optimizer();
        let ns = namespace(&c);
        if c.args.flag("ksm") {
            if c.args.flag("true") {
                o.ksm_enable()?;
            } else if c.args.flag("false") {
                o.ksm_disable()?;
            } else {
                return Ok(Response::text(o.ksm_enabled().to_string()).into());
            }
            return Ok(Reply::empty());
        }
        if c.args.flag("hugepages") {
            match c.args.string("path") {
                Some(p) => o.set_hugepages(&ns, p)?,
                None => return Ok(Response::text(o.ns(&ns).hugepages).into()),
            }
            return Ok(Reply::empty());
        }
        if c.args.flag("affinity") {
            if c.args.flag("filter") {
                o.set_filter(&ns, c.args.string("filter").unwrap_or_default())?;
                o.enable_affinity(&ns, &pids(c.ctx, &ns))?;
            } else if c.args.flag("true") {
                o.enable_affinity(&ns, &pids(c.ctx, &ns))?;
            } else if c.args.flag("false") {
                o.disable_affinity(&ns)?;
            } else {
                let rows = o.ns(&ns).sets.into_iter().map(|(cpu, p)| {
                    let p: Vec<String> = p.iter().map(u32::to_string).collect();
                    vec![cpu.to_string(), format!("[{}]", p.join(" "))]
                });
                return Ok(table(["cpu", "pids"], rows).into());
            }
            return Ok(Reply::empty());
        }
        let n = o.ns(&ns);
        let huge = if n.hugepages.is_empty() {
            "disabled".to_string()
        } else {
            n.hugepages
        };
        let row = vec![
            on_off(o.ksm_enabled()).to_string(),
            huge,
            on_off(n.affinity).to_string(),
        ];
        Ok(table(["ksm", "hugepages", "affinity"], [row]).into())
    })
}

fn clear_optimize(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let o = optimizer();
        let ns = namespace(&c);
        if c.args.flag("filter") {
            o.clear_filter(&ns);
            if o.ns(&ns).affinity {
                o.enable_affinity(&ns, &pids(c.ctx, &ns))?;
            }
        } else if c.args.flag("affinity") {
            o.disable_affinity(&ns)?;
        } else if c.args.flag("hugepages") {
            o.clear_hugepages(&ns);
        } else if c.args.flag("ksm") {
            o.ksm_disable()?;
        } else {
            o.clear(&ns)?;
        }
        Ok(Reply::empty())
    })
}

/// A launch's configuration with the namespace's hugepages (QEMU's
/// `-mem-path`; minimega 3.1.0 writes `-mem-info`, which QEMU refuses).
pub fn with_hugepages(ns: &str, mut cfg: VmConfig) -> VmConfig {
    let path = optimizer().ns(ns).hugepages;
    if !path.is_empty() {
        cfg.qemu_append.extend(["-mem-path".to_string(), path]);
    }
    cfg
}
