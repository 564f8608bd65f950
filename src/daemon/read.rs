//! `read <file> [check,]`: runs a file of commands in the caller's session
//! as if they were typed there. Each command's answer stays a group of its
//! own, so the command socket sends one object per command.

use super::node::Node;
use crate::command::{BoxFuture, Call, CmdResult, CommandError, Reply, Spec};
use std::cell::Cell;
use std::path::{Path, PathBuf};

tokio::task_local! {
    /// Present while a `read` runs; a nested `read` sets it and is refused,
    /// which stops the outer one too.
    static NESTED: Cell<bool>;
}

pub fn specs() -> Vec<Spec<Node>> {
    vec![Spec {
        patterns: &["read <file> [check,]"],
        short: "read and execute a command file",
        long: "Read a file of commands and run each line in this session, as if typed:\ndot-commands and aliases in the file stay in effect afterwards. read\nstops at the first line that is not a valid command; it does not stop\nwhen a command answers with an error. A relative file name is looked up\nin the files directory (-filepath).\n\nWith check, nothing runs: read only checks that every line is a valid\ncommand, and stops at the first that is not. A file may not read another.",
        handler: read,
        mesh_ok: false,
    }]
}

/// A relative name means a file in the files directory.
pub fn resolve(files: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        files.join(p)
    }
}

fn read(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        // History holds the file's commands, not the `read` (as minimega).
        c.session.record_this = false;
        if NESTED.try_with(|n| n.set(true)).is_ok() {
            return Err(CommandError::failed("cannot run nested `read` commands"));
        }
        let path = resolve(
            &c.ctx.config.filepath,
            c.args.string("file").unwrap_or_default(),
        );
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| CommandError::failed(format!("cannot read {}: {e}", path.display())))?;
        let check = c.args.flag("check");
        let Call {
            ctx,
            engine,
            session,
            ..
        } = c;
        let groups = NESTED
            .scope(Cell::new(false), async move {
                let mut groups = Vec::new();
                for line in text.lines() {
                    if let Err(e) = engine.check_line(session, line) {
                        groups.push(engine.error_group(ctx, session, e));
                        break;
                    }
                    if check {
                        continue;
                    }
                    groups.extend(engine.run_line(ctx, session, line).await);
                    if NESTED.with(Cell::get) {
                        break;
                    }
                }
                groups
            })
            .await;
        Ok(Reply::Groups(groups))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::render::render_all;
    use crate::command::Session;
    use crate::config::{Config, FileConfig, Flags};

    fn node(files: &Path) -> Node {
        let flags = Flags {
            hostname: Some("n1".into()),
            filepath: Some(files.to_path_buf()),
            ..Flags::default()
        };
        Node::new(Config::resolve(&flags, &FileConfig::default()).unwrap())
    }

    fn run(files: &Path, session: &mut Session, line: &str) -> Vec<String> {
        let node = node(files);
        let engine = crate::daemon::commands::engine();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(engine.run_line(&node, session, line))
            .iter()
            .map(render_all)
            .collect()
    }

    #[test]
    fn each_command_is_a_group_and_settings_stay() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("script"),
            "# setup\necho one\n\nhelp nosuchthing\n.annotate false\necho two\n",
        )
        .unwrap();
        let mut s = Session::new();
        let out = run(dir.path(), &mut s, "read script");
        assert_eq!(
            out,
            [
                "one",
                "E: no help on `nosuchthing`: no such command",
                "",
                "two"
            ]
        );
        assert!(!s.flags.annotate, "the file's settings stay in the session");
    }

    #[test]
    fn stops_at_an_invalid_line_and_check_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "echo a\nfrobnicate\necho b\n").unwrap();
        let line = format!("read {}", script.display());
        let mut s = Session::new();
        assert_eq!(
            run(dir.path(), &mut s, &line),
            ["a", "E: no such command: `frobnicate` (try `help`)"]
        );
        assert_eq!(
            run(dir.path(), &mut s, &format!("{line} check")),
            ["E: no such command: `frobnicate` (try `help`)"]
        );
        std::fs::write(&script, "echo a\n.annotate false\n").unwrap();
        assert!(run(dir.path(), &mut s, &format!("{line} check")).is_empty());
        assert!(s.flags.annotate, "check ran nothing");
    }

    #[test]
    fn nested_reads_and_missing_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inner"), "echo inner\n").unwrap();
        std::fs::write(
            dir.path().join("outer"),
            "echo before\nread inner\necho after\n",
        )
        .unwrap();
        let mut s = Session::new();
        assert_eq!(
            run(dir.path(), &mut s, "read outer"),
            ["before", "E: cannot run nested `read` commands"]
        );
        let out = run(dir.path(), &mut s, "read nope");
        assert_eq!(out.len(), 1);
        assert!(
            out[0].starts_with(&format!(
                "E: cannot read {}: ",
                dir.path().join("nope").display()
            )),
            "{out:?}"
        );
    }
}
