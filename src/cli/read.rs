//! `read <file> [check,]`: runs a file of commands in the caller's session
//! as if they were typed there. Each command's answer stays a group of its
//! own, so the command socket sends one object per command.

use crate::command::Reach;
use crate::command::{BoxFuture, Call, CmdResult, CommandError, Reply, Spec};
use crate::node::Node;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use thiserror::Error;

tokio::task_local! {
    /// Present while a `read` runs; a nested `read` sets it and is refused,
    /// which stops the outer one too.
    static NESTED: Cell<bool>;
}

/// The largest command file `read` takes. Scripts of thousands of
/// commands are a few hundred KiB; this only keeps a mistaken file (a disk
/// image, a log) from being pulled into the daemon's memory.
pub const MAX_SCRIPT: u64 = 16 << 20;
/// The longest line: a socket request's limit, minimega's own client's.
pub use crate::command::MAX_LINE;

/// Why a file cannot be read as commands. Never quotes the file: `read`
/// runs as the daemon, and a file that is not a script (`/etc/shadow`)
/// must not come back in the error.
#[derive(Debug, Error)]
pub enum ScriptError {
    #[error("cannot read {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: not a regular file")]
    NotRegular { path: PathBuf },
    #[error(
        "cannot read {path}: {size} bytes, more than the {MAX_SCRIPT}-byte limit of a command file"
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path}: line {line} is longer than {MAX_LINE} bytes")]
    LongLine { path: PathBuf, line: usize },
    #[error("{path}: line {line} is not text (UTF-8)")]
    NotText { path: PathBuf, line: usize },
    #[error("{path}: line {line}: {what}")]
    Command {
        path: PathBuf,
        line: usize,
        what: &'static str,
    },
}

pub fn specs() -> Vec<Spec<Node>> {
    vec![Spec {
        patterns: &["read <file> [check,]"],
        short: "read and execute a command file",
        long: "Read a file of commands and run each line in this session, as if typed:\ndot-commands and aliases in the file stay in effect afterwards. read\nstops at the first line that is not a valid command; it does not stop\nwhen a command answers with an error. A relative file name is looked up\nin the files directory (-filepath) and may not leave it.\n\nWith check, nothing runs: read only checks that every line is a valid\ncommand, and stops at the first that is not. A file may not read another.\n\nThe file must be a regular file of at most 16 MiB, with lines of at most\n1 MiB; an error names the line by its number, never by its content.",
        handler: read,
        mesh_ok: false,
        reach: Reach::Here,
        ns_clear: &[],
    }]
}

/// Reads a command file within the limits above. Opened without blocking
/// (a FIFO would hang the open) and checked with fstat on the open file,
/// so what is read is what was checked.
pub fn load(path: &Path) -> Result<String, ScriptError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let open_err = |source| ScriptError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    if !meta.is_file() {
        return Err(ScriptError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    let too_large = |size| ScriptError::TooLarge {
        path: path.to_path_buf(),
        size,
    };
    if meta.len() > MAX_SCRIPT {
        return Err(too_large(meta.len()));
    }
    // The file may grow after the fstat: never read past the limit.
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SCRIPT + 1)
        .read_to_end(&mut data)
        .map_err(open_err)?;
    if data.len() as u64 > MAX_SCRIPT {
        return Err(too_large(data.len() as u64));
    }
    check_lines(path, data)
}

/// The file's text, once every line is short enough and UTF-8.
pub fn check_lines(path: &Path, data: Vec<u8>) -> Result<String, ScriptError> {
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if line.len() > MAX_LINE {
            return Err(ScriptError::LongLine {
                path: path.to_path_buf(),
                line: i + 1,
            });
        }
        if std::str::from_utf8(line).is_err() {
            return Err(ScriptError::NotText {
                path: path.to_path_buf(),
                line: i + 1,
            });
        }
    }
    Ok(String::from_utf8(data).expect("every line is UTF-8"))
}

/// A line that does not compile, said without its words.
fn invalid_line(path: &Path, line: usize, e: &CommandError) -> CommandError {
    let what = match e {
        CommandError::Syntax(_) => "syntax error (an unclosed quote?)",
        CommandError::Range(_) => "invalid name range",
        CommandError::Invalid(_) | CommandError::Failed(_) => "not a valid command (see help)",
    };
    CommandError::failed(ScriptError::Command {
        path: path.to_path_buf(),
        line,
        what,
    })
}

fn read(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        // History holds the file's commands, not the `read` (as minimega).
        c.session.record_this = false;
        if NESTED.try_with(|n| n.set(true)).is_ok() {
            return Err(CommandError::failed("cannot run nested `read` commands"));
        }
        let path = crate::paths::confine(
            &c.ctx.config.filepath,
            c.args.string("file").unwrap_or_default(),
        )
        .map_err(CommandError::failed)?;
        let p = path.clone();
        let text = tokio::task::spawn_blocking(move || load(&p))
            .await
            .map_err(CommandError::failed)?
            .map_err(CommandError::failed)?;
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
                for (i, line) in text.lines().enumerate() {
                    if let Err(e) = engine.check_line(session, line) {
                        let e = invalid_line(&path, i + 1, &e);
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
        let engine = crate::cli::engine();
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
        let bad = format!(
            "E: {}: line 2: not a valid command (see help)",
            script.display()
        );
        assert_eq!(run(dir.path(), &mut s, &line), ["a", bad.as_str()]);
        assert_eq!(
            run(dir.path(), &mut s, &format!("{line} check")),
            [bad.as_str()]
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

    #[test]
    fn a_file_that_is_not_a_script_is_never_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("shadow");
        std::fs::write(&secret, "root:$6$secrethash:19000:0:99999:7:::\n").unwrap();
        let mut s = Session::new();
        let out = run(dir.path(), &mut s, &format!("read {}", secret.display()));
        assert_eq!(
            out,
            [format!(
                "E: {}: line 1: not a valid command (see help)",
                secret.display()
            )]
        );
        std::fs::write(&secret, "echo \"unclosed secrethash\n").unwrap();
        let out = run(dir.path(), &mut s, &format!("read {}", secret.display()));
        assert!(
            !out[0].contains("secrethash") && out[0].contains("line 1: syntax"),
            "{out:?}"
        );
    }

    #[test]
    fn only_regular_files_within_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(Path::new("/dev/zero")).unwrap_err().to_string();
        assert_eq!(e, "cannot read /dev/zero: not a regular file");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(
            matches!(load(&fifo), Err(ScriptError::NotRegular { .. })),
            "no writer: no hang"
        );
        let e = load(dir.path()).unwrap_err();
        assert!(matches!(e, ScriptError::NotRegular { .. }), "{e}");

        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_SCRIPT + 1)
            .unwrap();
        assert!(matches!(load(&big), Err(ScriptError::TooLarge { .. })));

        let mut long = vec![b'x'; MAX_LINE + 1];
        long.insert(0, b'\n');
        let e = check_lines(Path::new("f"), long).unwrap_err().to_string();
        assert_eq!(e, format!("f: line 2 is longer than {MAX_LINE} bytes"));
        let e = check_lines(Path::new("f"), b"echo\n\xff\n".to_vec()).unwrap_err();
        assert_eq!(e.to_string(), "f: line 2 is not text (UTF-8)");
        assert_eq!(
            check_lines(Path::new("f"), b"echo a\n".to_vec()).unwrap(),
            "echo a\n"
        );
    }

    #[test]
    fn relative_names_stay_in_the_files_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::new();
        let out = run(dir.path(), &mut s, "read ../../etc/passwd");
        assert_eq!(out.len(), 1);
        assert!(out[0].contains("outside the files directory"), "{out:?}");
    }
}
