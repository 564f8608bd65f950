//! The `cc` commands that make a command for agents. The node they are
//! typed on gives the command its id (returned in the response's Data) and
//! its namespace's filter and prefix, then hands the very same command to
//! the other hosts of the namespace (`cc post`), so every host knows it by
//! one id and `cc responses ID` finds every host's answers.

use crate::cc::files;
use crate::cc::ron::{Command, ConnTest};
use crate::command::Reach;
use crate::command::{lexer, BoxFuture, Call, CmdResult, CommandError, Origin, Response, Spec};
use crate::node::Node;
use crate::ns::current;
use std::path::Path;

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["cc exec <command>..."],
            short: "run a command in matching guests",
            long: "Run a command in every matching guest and record its output and exit\ncode. Up to three leading stdin=PIPE, stdout=PIPE, stderr=PIPE words tie\nits standard streams to named pipes.",
            handler: exec,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc exec-once <command>..."],
            short: "run a command in matching guests, never twice",
            long: "As `cc exec`, but a client is sent the command at most once, even after\nits guest reboots.",
            handler: exec,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc background <command>..."],
            short: "start a command in matching guests",
            long: "Start a command in every matching guest and return at once; `cc process\nlist` shows it, `cc process kill` ends it.",
            handler: exec,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc background-once <command>..."],
            short: "start a command in matching guests, never twice",
            long: "As `cc background`, but a client is sent the command at most once.",
            handler: exec,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc send <file>..."],
            short: "send files to guests",
            long: "Send files from the files directory (-filepath; the namespace's own\ndirectory first) to matching guests, which store them under\n/tmp/miniccc/files. Globs work; a file must exist and stay inside the\nfiles directory.",
            handler: send,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc recv <file>..."],
            short: "fetch files from guests",
            long: "Fetch files (absolute paths, globs allowed) from matching guests into the\nresponse tree: <id>/<uuid>/<path>.",
            handler: recv,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc process kill <pid or all>"],
            short: "kill background processes",
            long: "Kill a process `cc background` started (by pid), or all of them, in\nmatching guests.",
            handler: kill,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc process killall <name>"],
            short: "kill background processes by name",
            long: "Kill every background process whose command line contains the name.",
            handler: kill,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc log level <debug,info,warn,error,fatal>"],
            short: "set the agents' log level",
            long: "Set the log level of the agents in matching guests.",
            handler: log_level,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc test-conn <tcp,udp> <ip or fqdn> <port> wait <timeout> [base64 udp packet]"],
            short: "test a guest's connectivity",
            long: "Make matching guests try to reach DST:PORT for up to the timeout (a Go\nduration: 5s, 1m). The result is the command's stdout: `DST:PORT | pass`\nor `DST:PORT | fail`. For udp, give a base64 packet that draws an answer.",
            handler: test_conn,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["cc post <json>"],
            short: "(internal) take a command posted on another node",
            long: "How a node hands a command it made to the other hosts of the namespace,\nwith its id. Not for users.",
            handler: post_json,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// Posts `cmd` here and on the namespace's other hosts.
async fn post(c: &Call<'_, Node>, cmd: Command) -> CmdResult {
    let ns = current(c.session).to_string();
    let cc = &c.ctx.cc;
    let id = cc.post(&ns, cmd).await.map_err(failed)?;
    let mut out = vec![Response::default().with_data(serde_json::json!(id))];
    if c.session.origin == Origin::Local {
        let me = c.ctx.hostname();
        let remote: Vec<String> = super::scope::hosts_of(c.ctx, c.session)
            .into_iter()
            .filter(|h| h != me)
            .collect();
        if !remote.is_empty() {
            let cmd = cc.book(&ns).commands.get(&id).cloned().unwrap_or_default();
            let json = serde_json::to_string(&cmd).map_err(failed)?;
            let line = format!(
                "namespace {} cc post {}",
                lexer::quote_if_needed(&ns, false),
                lexer::quote_if_needed(&json, false)
            );
            out.extend(
                c.ctx
                    .mesh
                    .send(&remote, &line)
                    .await
                    .into_iter()
                    .filter(|r| r.is_error()),
            );
        }
    }
    Ok(out.into())
}

fn post_json(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let json = c.args.string("json").unwrap_or_default();
        let cmd: Command =
            serde_json::from_str(json).map_err(|e| failed(format!("invalid command: {e}")))?;
        let ns = current(c.session).to_string();
        c.ctx.cc.insert(&ns, cmd).await.map_err(failed)?;
        Ok(crate::command::Reply::empty())
    })
}

/// minimega's leading `stdin=`, `stdout=`, `stderr=` words.
pub fn split_stdio(words: &[String]) -> (Command, Vec<String>) {
    let mut cmd = Command::default();
    let mut rest = words;
    while let Some((first, tail)) = rest.split_first() {
        let Some((k, v)) = first.split_once('=') else {
            break;
        };
        let slot = match k {
            "stdin" => &mut cmd.stdin,
            "stdout" => &mut cmd.stdout,
            "stderr" => &mut cmd.stderr,
            _ => break,
        };
        if !slot.is_empty() {
            break;
        }
        *slot = v.to_string();
        rest = tail;
    }
    (cmd, rest.to_vec())
}

fn exec(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let (mut cmd, words) = split_stdio(c.args.list("command"));
        if words.is_empty() {
            return Err(failed("no command to run"));
        }
        cmd.command = words;
        cmd.background = c.pattern.starts_with("cc background");
        cmd.once = c.pattern.contains("-once");
        post(&c, cmd).await
    })
}

/// Checks `cc send` names and expands their globs: paths relative to the
/// files directory (an absolute one must be inside it), each an existing
/// file inside it.
pub fn files_to_send(filepath: &Path, ns: &str, names: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for name in names {
        let rel = match Path::new(name).strip_prefix(filepath) {
            Ok(r) => r.to_string_lossy().into_owned(),
            Err(_) if Path::new(name).is_absolute() => {
                return Err(format!(
                    "can only send files from {} (not {name})",
                    filepath.display()
                ))
            }
            Err(_) => name.clone(),
        };
        let rel = files::relative(&rel)?;
        let mut found = Vec::new();
        for dir in [files::namespace_dir(filepath, ns), filepath.to_path_buf()] {
            found = files::expand(&dir, &rel);
            if !found.is_empty() {
                break;
            }
        }
        if found.is_empty() {
            return Err(format!("no such file: {name}"));
        }
        for f in found {
            let f = f.to_string_lossy().into_owned();
            files::servable(filepath, ns, &f)?;
            out.push(f);
        }
    }
    Ok(out)
}

fn send(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = current(c.session).to_string();
        let filepath = c.ctx.cc.filepath().to_path_buf();
        let names = c.args.list("file").to_vec();
        let files = tokio::task::spawn_blocking(move || files_to_send(&filepath, &ns, &names))
            .await
            .map_err(failed)?
            .map_err(failed)?;
        post(
            &c,
            Command {
                files_send: files,
                ..Command::default()
            },
        )
        .await
    })
}

fn recv(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let files = c.args.list("file").to_vec();
        post(
            &c,
            Command {
                files_recv: files,
                ..Command::default()
            },
        )
        .await
    })
}

fn kill(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let mut cmd = Command::default();
        if let Some(name) = c.args.string("name") {
            cmd.kill_all = name.to_string();
        } else {
            let pid = c.args.string("pid").unwrap_or_default();
            cmd.pid = match pid {
                "all" => -1,
                p => p
                    .parse::<i64>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| failed(format!("invalid PID: `{p}`")))?,
            };
        }
        post(&c, cmd).await
    })
}

fn log_level(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let level = super::cc::LEVELS
            .iter()
            .position(|l| c.args.flag(l))
            .ok_or_else(|| failed("unknown level"))?;
        post(
            &c,
            Command {
                level: Some(level as i64 + 1),
                ..Command::default()
            },
        )
        .await
    })
}

fn test_conn(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let port = c.args.string("port").unwrap_or_default();
        port.parse::<u16>()
            .map_err(|_| failed(format!("invalid port {port}")))?;
        let wait_s = c.args.string("timeout").unwrap_or_default();
        let wait = crate::config::parse_duration(wait_s)
            .map_err(|e| failed(format!("invalid wait duration {wait_s}: {e}")))?;
        let scheme = if c.args.flag("udp") { "udp" } else { "tcp" };
        let dst = c.args.string("ip").unwrap_or_default();
        let packet = match c.args.string("base64") {
            Some(b) => base64(b).ok_or_else(|| failed("unable to decode base64 packet string"))?,
            None => Vec::new(),
        };
        let test = ConnTest {
            endpoint: format!("{scheme}://{dst}:{port}"),
            wait: i64::try_from(wait.as_nanos()).unwrap_or(i64::MAX),
            packet,
        };
        post(
            &c,
            Command {
                conn_test: Some(test),
                ..Command::default()
            },
        )
        .await
    })
}

/// Standard base64 (padding optional).
pub fn base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn stdio_words_come_first() {
        let (c, rest) = split_stdio(&w("stdin=a stdout=b cat x=y"));
        assert_eq!((c.stdin.as_str(), c.stdout.as_str()), ("a", "b"));
        assert_eq!(rest, w("cat x=y"));
        let (c, rest) = split_stdio(&w("FOO=1 env"));
        assert_eq!(c.stdin, "");
        assert_eq!(rest, w("FOO=1 env"));
        let (_, rest) = split_stdio(&w("stdout=a stdout=b"));
        assert_eq!(rest, w("stdout=b"));
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(base64("AQIDAP8=").unwrap(), [1, 2, 3, 0, 255]);
        assert_eq!(base64("aGk").unwrap(), b"hi");
        assert!(base64("a*b").is_none());
    }

    #[test]
    fn send_checks_names_and_expands_globs() {
        let t = tempfile::tempdir().unwrap();
        let fp = t.path();
        std::fs::create_dir_all(fp.join("exp")).unwrap();
        std::fs::write(fp.join("a.txt"), "a").unwrap();
        std::fs::write(fp.join("b.txt"), "b").unwrap();
        std::fs::write(fp.join("exp/own.bin"), "o").unwrap();
        let send = |names: &[&str]| {
            files_to_send(
                fp,
                "exp",
                &names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(send(&["*.txt"]).unwrap(), ["a.txt", "b.txt"]);
        assert_eq!(send(&["own.bin", "a.txt"]).unwrap(), ["own.bin", "a.txt"]);
        let abs = fp.join("b.txt").display().to_string();
        assert_eq!(send(&[&abs]).unwrap(), ["b.txt"]);
        assert_eq!(send(&["missing"]).unwrap_err(), "no such file: missing");
        assert_eq!(
            send(&["../etc/passwd"]).unwrap_err(),
            "path `../etc/passwd` leaves its directory"
        );
        assert!(send(&["/etc/passwd"])
            .unwrap_err()
            .starts_with("can only send files from "));
    }
}
