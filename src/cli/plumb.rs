//! `plumb`, `pipe`, `clear plumb` and `clear pipe`, with minimega's
//! patterns and output. Listing, modes, logging and clearing act on every
//! host of the session's namespace (as minimega broadcasts them); writes,
//! vias and pipelines act here, and the plumbers carry the messages to
//! every node.

use crate::command::Reach;
use crate::command::{
    lexer, table, BoxFuture, Call, CmdResult, CommandError, Origin, Reply, Response, Spec,
};
use crate::node::Node;
use crate::plumb::modes::Mode;
use crate::plumb::production;
use crate::plumb::remote::{self, Message};

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            // The internal form first: an exact match wins in table order.
            patterns: &["plumb", "plumb mesh-message <json>", "plumb <src> <dst>..."],
            short: "plumb I/O between minimega, VMs, and external programs",
            long: "Create pipelines of named pipes and external programs. Pipelines pass\n\
data on standard I/O, with messages split on newlines, as UNIX pipelines do.\n\
To pipe named pipe \"foo\" through \"sed\" into another pipe \"bar\":\n\n\
\tplumb foo \"sed -u s/foo/moo/\" bar\n\n\
An element whose first word is a program found in $PATH is a program;\n\
anything else is a named pipe (see `pipe`). Programs run on this node,\n\
with quotes grouping their arguments; pipes are reachable from every node.\n\
Several pipelines make larger, nonlinear ones: a tree rooted at a with\n\
leaves b and c is\n\n\
\tplumb a b\n\
\tplumb a c\n\n\
A pipeline runs until one of its programs exits, a pipe it reads is\n\
deleted (`clear pipe`), or `clear plumb` ends it. `plumb` alone lists the\n\
pipelines of the namespace on each of its hosts.\n\n\
`plumb mesh-message <json>` is how the plumbers of mesh nodes talk to\n\
each other; minimega sends it, users do not.",
            handler: plumb,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear plumb [pipeline]..."],
            short: "reset plumber state",
            long: "End pipelines: the one named (as `plumb` lists it, or as typed to\n\
`plumb`), or every pipeline of the namespace. Programs are killed, and the\n\
pipelines' readers and writers closed.",
            handler: clear_plumb,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "pipe",
                "pipe <pipe> <mode,> <all,round-robin,random>",
                "pipe <pipe> <log,> <true,false>",
                "pipe <pipe> <data>",
                "pipe <pipe> <via,> <command>...",
            ],
            short: "write to and modify named pipes",
            long: "Interact with named pipes. To write to a pipe, give its name and the\n\
message:\n\n\
\tpipe foo \"Hello pipes!\"\n\n\
A pipe is made on first use. Writes never block: a message goes to the\n\
readers attached at that moment (on any node), and with none it is only\n\
counted. The mode decides which readers: \"all\" (the default) copies it\n\
to every reader, \"round-robin\" gives each message to one reader in turn,\n\
\"random\" to one reader at random:\n\n\
\tpipe foo mode round-robin\n\n\
A via is a program every message passes through once per reader, so one\n\
write gives each reader its own value; it runs on the node where it was\n\
set, and the other nodes pass their writes there. To send every reader a\n\
value on a normal distribution around the mean written:\n\n\
\tpipe foo via normal -stddev 5.0\n\
\tpipe foo 1.5\n\n\
`pipe foo log true` logs each message of foo. `pipe` alone lists the\n\
pipes of the namespace on each of its hosts: name, mode, readers, writers,\n\
count (messages written there), via and previous (the last message).\n\
Pipes of another namespace are named <namespace>//<pipe>. Programs read\n\
and write pipes with `plumb`, VMs through `cc`, the host's shell with\n\
`minimega -pipe NAME`, and clients of the command socket with a\n\
PlumbPipe request.",
            handler: pipe,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "clear pipe [pipe]",
                "clear pipe <pipe> <mode,>",
                "clear pipe <pipe> <log,>",
                "clear pipe <pipe> <via,>",
            ],
            short: "reset pipe state",
            long: "Delete a named pipe (its readers see the end of their input), or every\n\
pipe of the namespace; a pipe with open writers cannot be deleted. With\n\
mode, log or via, reset only that setting (to all, false, none).",
            handler: clear_pipe,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

/// How long `pipe` waits for messages in flight between pipelines' pipes.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

fn namespace<'a>(c: &'a Call<'_, Node>) -> &'a str {
    crate::ns::current(c.session)
}

/// The pipe named in the call, with its namespace.
fn pipe_arg(c: &Call<'_, Node>) -> Result<String, CommandError> {
    let name = c.args.string("pipe").unwrap_or_default();
    production::checked(namespace(c), name).map_err(failed)
}

/// What the command words picked: the pattern's literal choice.
fn chose(c: &Call<'_, Node>, word: &str) -> bool {
    c.args.flag(word)
}

/// Runs `here` on this node and the same command on the namespace's other
/// hosts, as minimega broadcasts these commands; one answer per host.
async fn everywhere<'a, F>(c: &Call<'a, Node>, here: F) -> CmdResult
where
    F: std::future::Future<Output = CmdResult>,
{
    let me = c.ctx.hostname().to_string();
    let hosts = if c.session.origin == Origin::Local {
        super::scope::hosts_of(c.ctx, c.session)
    } else {
        Default::default()
    };
    let remote: Vec<String> = hosts.iter().filter(|h| **h != me).cloned().collect();
    if remote.is_empty() {
        return here.await;
    }
    let line = format!(
        "namespace {} {}",
        lexer::quote_if_needed(namespace(c), false),
        c.line
    );
    let there = c.ctx.mesh.send(&remote, &line);
    let (mine, theirs) = if hosts.contains(&me) {
        let (m, t) = futures_util::future::join(here, there).await;
        (Some(m), t)
    } else {
        (None, there.await)
    };
    let mut out: Vec<Response> = match mine {
        None => Vec::new(),
        Some(Ok(Reply::Responses(rs))) => rs,
        Some(Ok(Reply::Groups(gs))) => gs.into_iter().flat_map(|g| g.responses).collect(),
        Some(Err(e)) => vec![Response::error(&me, e.to_string())],
    };
    for r in &mut out {
        if r.host.is_empty() {
            r.host = me.clone();
        }
    }
    out.extend(theirs);
    Ok(out.into())
}

fn plumb(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let plumber = &c.ctx.plumber;
        if let Some(json) = c.args.string("json") {
            if c.session.origin == Origin::Local {
                return Err(CommandError::Invalid(format!(
                    "`{}` is sent between the plumbers of mesh nodes, not typed",
                    remote::COMMAND
                )));
            }
            let msg = Message::parse(json).map_err(failed)?;
            let data = plumber.handle(msg).await.map_err(failed)?;
            return Ok(Response::default().with_data(data).into());
        }
        let ns = namespace(&c).to_string();
        match c.args.string("src") {
            Some(src) => {
                let mut typed = vec![src.to_string()];
                typed.extend(c.args.list("dst").iter().cloned());
                plumber.plumb(&ns, &typed).await.map_err(failed)?;
                Ok(Reply::empty())
            }
            None => {
                everywhere(&c, async {
                    let rows = plumber.pipelines_of(&ns).into_iter().map(|p| vec![p]);
                    Ok(table(["pipeline"], rows).listed().into())
                })
                .await
            }
        }
    })
}

fn clear_plumb(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c).to_string();
        let named = c.args.list("pipeline").to_vec();
        everywhere(&c, async {
            let plumber = &c.ctx.plumber;
            if named.is_empty() {
                plumber.unplumb_all(&ns).await;
            } else {
                plumber.unplumb(&ns, &named).await.map_err(failed)?;
            }
            Ok(Reply::empty())
        })
        .await
    })
}

fn pipe(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let plumber = &c.ctx.plumber;
        if c.args.string("pipe").is_none() {
            let ns = namespace(&c).to_string();
            return everywhere(&c, async {
                plumber.settle(SETTLE).await;
                let rows = plumber.pipes(&ns).into_iter().map(|p| {
                    vec![
                        p.name,
                        p.mode.to_string(),
                        p.readers.to_string(),
                        p.writers.to_string(),
                        p.count.to_string(),
                        p.via,
                        p.last,
                    ]
                });
                let header = [
                    "name", "mode", "readers", "writers", "count", "via", "previous",
                ];
                Ok(table(header, rows).listed().into())
            })
            .await;
        }
        let pipe = pipe_arg(&c)?;
        if chose(&c, "mode") {
            let mode = ["all", "round-robin", "random"]
                .into_iter()
                .find(|m| c.args.flag(m))
                .and_then(Mode::parse)
                .unwrap_or_default();
            return everywhere(&c, async {
                plumber.set_mode(&pipe, mode);
                Ok(Reply::empty())
            })
            .await;
        }
        if chose(&c, "log") {
            let on = c.args.flag("true");
            return everywhere(&c, async {
                plumber.set_log(&pipe, on);
                Ok(Reply::empty())
            })
            .await;
        }
        if chose(&c, "via") {
            let argv = production::command_words(c.args.list("command")).map_err(failed)?;
            if argv.is_empty() {
                return Err(CommandError::Invalid("a via needs a program".into()));
            }
            plumber.set_via(&pipe, argv).await;
            return Ok(Reply::empty());
        }
        let data = c.args.string("data").unwrap_or_default();
        plumber.write(&pipe, data).await;
        Ok(Reply::empty())
    })
}

fn clear_pipe(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let plumber = &c.ctx.plumber;
        let ns = namespace(&c).to_string();
        let pipe = match c.args.string("pipe") {
            Some(_) => Some(pipe_arg(&c)?),
            None => None,
        };
        let (mode, log, via) = (chose(&c, "mode"), chose(&c, "log"), chose(&c, "via"));
        everywhere(&c, async {
            match (&pipe, mode, log, via) {
                (Some(p), true, _, _) => plumber.set_mode(p, Mode::All),
                (Some(p), _, true, _) => plumber.set_log(p, false),
                (Some(p), _, _, true) => {
                    if plumber.exists(p) {
                        plumber.set_via(p, Vec::new()).await;
                    }
                }
                (Some(p), ..) => plumber.delete(p).map_err(failed)?,
                (None, ..) => plumber.delete_all(&ns).map_err(failed)?,
            }
            Ok(Reply::empty())
        })
        .await
    })
}
