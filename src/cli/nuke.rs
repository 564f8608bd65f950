//! `nuke`: minimega's clean-up after a crash, for this daemon's own state.
//! minimega kills every QEMU and dnsmasq whose pid file is under its base,
//! removes its taps and the bridges it made, deletes the base directory
//! and exits. This daemon does the same to what it made, and stays up:
//! under systemd an exit would only be a restart (or a dead socket), and a
//! client gets an answer instead of a closed connection.

use crate::command::Reach;
use crate::command::{lexer, BoxFuture, Call, CmdResult, Reply, Response, Spec};
use crate::node::Node;
use std::collections::BTreeSet;
use std::path::Path;
use tracing::{info, warn};

pub fn specs() -> Vec<Spec<Node>> {
    vec![Spec {
        patterns: &["nuke"],
        short: "attempt to clean up after a crash",
        long: "Take down everything this daemon made on this node, as minimega's nuke\ndoes after a crash: every VM of every namespace is killed and flushed\n(its QEMU, systemd unit or cgroup, and folder under the base directory\ngo), then everything `clear all` resets is reset; every switch port and\ntap marked as one of this daemon's VMs' (however it last stopped), its\nhost taps, trunks and tunnels are removed, and the bridges it made that\nhold nothing else now; injections left half done are unmounted and\ncleaned; VM folders no VM claims are removed from the base directory.\n\nNothing it did not make is touched: bridges that were there before it,\nports of other programs, other daemons' taps, the files directory\n(-filepath: images and saved VMs stay). Unlike minimega, which exits\nafter nuke, the daemon stays up and answers (an empty answer, or one\nerror line per thing it could not do), ready for new VMs.",
        handler: nuke,
        mesh_ok: false,
        reach: Reach::Here,
        ns_clear: &[],
    }]
}

fn nuke(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let node = c.ctx;
        warn!("nuke: taking down every VM, tap, bridge and file this daemon made");
        let mut errors: Vec<String> = Vec::new();
        let words = lexer::lex("clear all").unwrap_or_default();
        for g in c.engine.run_words(node, c.session, words).await {
            errors.extend(
                g.responses
                    .into_iter()
                    .filter(Response::is_error)
                    .map(|r| r.error),
            );
        }
        c.session.record_this = false;
        errors.extend(node.net.nuke().await);
        node.disks.recover().await;
        let claimed: BTreeSet<u64> = node.vms.all().iter().map(|v| v.id).collect();
        errors.extend(remove_vm_dirs(&node.config.base, &claimed));
        info!("nuke: done ({} problems)", errors.len());
        if errors.is_empty() {
            return Ok(Reply::empty());
        }
        let me = node.hostname();
        Ok(errors
            .iter()
            .map(|e| Response::error(me, format!("nuke: {e}")))
            .collect::<Vec<_>>()
            .into())
    })
}

/// Removes VM folders (`<base>/<id>`) of VMs the daemon does not have.
/// Returns what could not be removed.
fn remove_vm_dirs(base: &Path, claimed: &BTreeSet<u64>) -> Vec<String> {
    let mut errors = Vec::new();
    let Ok(rd) = std::fs::read_dir(base) else {
        return errors;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(id) = vm_dir_id(&name) else {
            continue;
        };
        if claimed.contains(&id) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        info!("nuke: removing {}", e.path().display());
        if let Err(err) = std::fs::remove_dir_all(e.path()) {
            errors.push(format!("{}: {err}", e.path().display()));
        }
    }
    errors
}

/// The id of a VM folder's name (digits only).
fn vm_dir_id(name: &str) -> Option<u64> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_vm_folders_nobody_claims_go() {
        assert_eq!(vm_dir_id("12"), Some(12));
        assert_eq!(vm_dir_id("files"), None);
        assert_eq!(vm_dir_id("1a"), None);
        assert_eq!(vm_dir_id(""), None);
        let d = tempfile::tempdir().unwrap();
        for n in ["1", "2", "files", "inject"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        std::fs::write(d.path().join("3"), "a file, not a folder").unwrap();
        assert!(remove_vm_dirs(d.path(), &[2].into()).is_empty());
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        left.sort();
        assert_eq!(left, ["2", "3", "files", "inject"]);
    }
}
