//! minimega's small node commands: `write` (the history to a file),
//! `status updates` (how often status messages would be sent) and `check`
//! (the programs the daemon runs).

use crate::command::Reach;
use crate::command::{BoxFuture, Call, CmdResult, CommandError, Reply, Response, Spec};
use crate::node::Node;
use std::sync::atomic::{AtomicU64, Ordering};

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["write <file>"],
            short: "write the command history to a file",
            long: "Write the command history (what `history` prints) to a file, one command\nper line, without a newline after the last, as minimega writes it; the\nfile is replaced. A relative name is under the files directory\n(-filepath), and may not leave it.",
            handler: write,
            mesh_ok: false,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["status updates [frequency]"],
            short: "view or set the status update frequency",
            long: "View or set how often minimega would send status messages to its clients\nduring long operations, as a Go duration (`5s`; 0 disables them). This\ndaemon never sends status messages (phenix's client would take one for\nthe end of the answer), so the setting is only kept and shown.",
            handler: status_updates,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["check"],
            short: "check that all external executables dependencies exist",
            long: "Check that the programs this daemon runs are in PATH (QEMU as `vm config\nqemu` names it by default, qemu-img, qemu-storage-daemon, ip, tc, mount,\numount, tcpdump) and that Open vSwitch's database answers. Every one\nmissing is an error line, minimega's words (`exec: \"X\": executable file\nnot found in $PATH`); all found is an empty answer.",
            handler: check,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

/// minimega's default: 3 s.
static STATUS_EVERY_MS: AtomicU64 = AtomicU64::new(3000);

fn write(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let name = c.args.string("file").unwrap_or_default();
        let path = crate::paths::confine(&c.ctx.config.filepath, name)
            .map_err(|e| CommandError::Failed(e.to_string()))?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let text = c.engine.history().join("\n");
        std::fs::write(&path, text)
            .map_err(|e| CommandError::Failed(format!("{}: {e}", path.display())))?;
        Ok(Reply::empty())
    })
}

fn status_updates(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let Some(v) = c.args.string("frequency") else {
            let ms = STATUS_EVERY_MS.load(Ordering::Relaxed);
            if ms == 0 {
                return Ok(Response::text("status updates disabled").into());
            }
            let d = crate::timefmt::go_duration_exact(std::time::Duration::from_millis(ms));
            return Ok(Response::text(format!("status update frequency: {d}")).into());
        };
        let d = crate::config::parse_duration(v)
            .map_err(|_| CommandError::Failed("invalid frequency duration provided".into()))?;
        STATUS_EVERY_MS.store(d.as_millis() as u64, Ordering::Relaxed);
        Ok(Reply::empty())
    })
}

/// The programs the daemon runs.
const PROGRAMS: &[&str] = &[
    crate::vm::config::DEFAULT_QEMU,
    "qemu-img",
    "qemu-storage-daemon",
    "ip",
    "tc",
    "mount",
    "umount",
    "tcpdump",
];

/// The `check` errors for what `found` says is missing, minimega's words.
pub fn missing(found: impl Fn(&str) -> bool, ovs_answers: bool) -> Vec<String> {
    let mut errs: Vec<String> = PROGRAMS
        .iter()
        .filter(|p| !found(p))
        .map(|p| format!("exec: \"{p}\": executable file not found in $PATH"))
        .collect();
    if !ovs_answers {
        errs.push("openvswitch does not appear to be running".into());
    }
    errs
}

fn check(_c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let db = crate::net::ovs::db_socket();
        let ovs = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::UnixStream::connect(&db),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let errs = missing(|p| crate::paths::find_binary(p).is_some(), ovs);
        if errs.is_empty() {
            return Ok(Reply::empty());
        }
        Err(CommandError::Failed(errs.join("\n")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_in_minimegas_words() {
        assert!(missing(|_| true, true).is_empty());
        let e = missing(|p| p != "tcpdump", false);
        assert_eq!(
            e,
            [
                "exec: \"tcpdump\": executable file not found in $PATH",
                "openvswitch does not appear to be running"
            ]
        );
    }
}
