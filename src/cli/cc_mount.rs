//! `cc mount` and `clear cc mount`: a guest's whole file system on the
//! host that runs the VM, through its agent (see `cc::ufs`, `cc::mount`).

use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reply, Response, Spec};
use crate::node::Node;
use crate::ns::current;

const HELP: &str = "Direct access to a guest's file system over its cc connection: the\nagent (the stock Go miniccc or ours) serves the guest's whole file system\nas 9P2000, read and write.\n\n\tcc mount VM PATH\n\nmounts it at PATH (an existing directory, an absolute path) on the host\nthat runs the VM, where every shell sees it (in PID 1's mount namespace,\nnot the daemon's own). The kernel's 9p client is used where the kernel has\none, as minimega does; elsewhere the daemon serves the mount through FUSE.\n`cc mount VM` alone only opens the port standing for the file server and\nanswers it: `mount -t 9p -o trans=tcp,port=PORT,version=9p2000 127.0.0.1\nDIR` on that host mounts it. It listens on loopback only: minimega's port\nwas open to every address, unauthenticated. `cc mount` lists the mounts:\nname, uuid, addr, path.\n\n\tclear cc mount [VM or UUID or PATH]\n\nunmounts one VM's file system, or all of the namespace's (also done by\n`clear cc`, `clear namespace`, and when the VM's QEMU ends). A VM\nwithout a connected agent, a missing mount point and a VM mounted\nalready are errors, and nothing is left mounted or listening.";

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["cc mount"],
            short: "list mounted filesystems",
            long: HELP,
            handler: list,
            mesh_ok: true,
            reach: Reach::namespace(None),
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc mount <uuid or name> [path]"],
            short: "mount VM filesystem",
            long: HELP,
            handler: mount,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::cc::tidy)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear cc mount [uuid or name or path]"],
            short: "unmount VM filesystem",
            long: HELP,
            handler: clear,
            mesh_ok: true,
            reach: Reach::namespace_and_here(None),
            ns_clear: &["clear cc mount"],
        },
    ]
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

fn list(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = current(c.session).to_string();
        let rows = c.ctx.cc.mounts().rows(&ns);
        Ok(table(["name", "uuid", "addr", "path"], rows).into())
    })
}

fn mount(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = current(c.session).to_string();
        let who = c.args.string("uuid").unwrap_or_default().to_string();
        let path = c.args.string("path").map(str::to_string);
        let vm = super::cc::find_vm(&c, &ns, &who)
            .ok_or_else(|| failed(format!("vm not found: {who}")))?;
        let cc = c.ctx.cc.clone();
        cc.mounts().check_free(&vm.uuid).map_err(failed)?;
        let ufs = cc.ufs(&vm.uuid).map_err(failed)?;
        let local = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let port = ufs.listen(local, Some(local)).await.map_err(failed)?;
        let (name, uuid, at) = (vm.name.clone(), vm.uuid.clone(), path.clone());
        let host = c.ctx.hostname().to_string();
        let (mounts, via) = (cc.clone(), ufs.clone());
        let done = tokio::task::spawn_blocking(move || {
            mounts
                .mounts()
                .mount(&ns, &name, &uuid, &via, (&host, port), at.as_deref())
        })
        .await
        .map_err(failed)?;
        if let Err(e) = done {
            // Nothing half-made: the port closes with the failed mount.
            let _ = ufs.close().await;
            return Err(failed(e));
        }
        Ok(match path {
            None => Response::text(port.to_string()).into(),
            Some(_) => Reply::empty(),
        })
    })
}

/// Unmounts the namespace's mounts `which` names (all when empty) and
/// closes their ports. Also what `clear cc` does.
pub async fn clear_mounts(cc: &crate::cc::Cc, ns: &str, which: &str) {
    let cc2 = cc.clone();
    let (ns2, which2) = (ns.to_string(), which.to_string());
    let taken = tokio::task::spawn_blocking(move || cc2.mounts().clear(&ns2, &which2))
        .await
        .unwrap_or_default();
    for m in taken {
        if let Ok(ufs) = cc.ufs(&m.uuid) {
            let _ = ufs.close().await;
        }
    }
}

fn clear(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = current(c.session).to_string();
        let which = c.args.string("uuid").unwrap_or_default();
        clear_mounts(&c.ctx.cc, &ns, which).await;
        Ok(Reply::empty())
    })
}
