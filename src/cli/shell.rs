//! `shell`, `background` and minimega's `background-*` commands.

use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reply, Response, Spec};
use crate::node::Node;
use crate::shell::{ShellError, SHELL_LIMIT, STATUS_COLUMNS};

impl From<ShellError> for CommandError {
    fn from(e: ShellError) -> CommandError {
        CommandError::Failed(e.to_string())
    }
}

macro_rules! who {
    () => {
        "\n\nThe command runs on this node's host as the daemon's user (root under\nsystemd), without a shell: use `shell sh -c '...'` for pipes and\nredirections. Only root and members of group minimega may call the\ndaemon (the D-Bus policy and the command socket's access check), and\nother mesh nodes only with the mesh key: that is who may run commands\nhere."
    };
}

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["shell <command>..."],
            short: "execute a command",
            long: concat!(
                "Run a command and wait for it: its standard output is the answer, its\nstandard error the error, followed by its exit status when not zero. A\ncommand still running after 10 minutes is killed, with everything it\nstarted.\n\n\tshell echo hi\n\tmesh send all shell hostname",
                who!()
            ),
            handler: shell,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["background <command>..."],
            short: "execute a command in the background",
            long: concat!(
                "Start a command and return at once with its id (background-status shows\nits pid). Its output is\nlogged and kept; see background-status, background-output,\nbackground-error, background-kill and clear background-status. Commands\nstill running when the daemon stops are ended with it.",
                who!()
            ),
            handler: background,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["background-status [id]"],
            short: "Get the status of background commands",
            long: "List background commands (or one): id, pid, whether it still runs, how\nit ended, when it started and ended, and the command.",
            handler: status,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["background-output <id>"],
            short: "Get the stdout of a background command",
            long: "Print the standard output of a finished background command.",
            handler: output,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["background-error <id>"],
            short: "Get the stderr of a background command",
            long: "Print the standard error of a finished background command.",
            handler: output,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["background-kill <id or all>"],
            short: "end a background command",
            long: "End a running background command (or all of them) and whatever it\nstarted: its process group gets SIGKILL. It stays listed, as killed.",
            handler: kill,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear background-status"],
            short: "Clear background-status information",
            long: "Forget the background commands that have finished.",
            handler: clear,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

fn shell(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let out = crate::shell::shell(c.args.list("command"), SHELL_LIMIT).await?;
        let text = out.stdout.strip_suffix('\n').unwrap_or(&out.stdout);
        let mut answer = vec![Response::text(text)];
        if let Some(e) = out.error(SHELL_LIMIT) {
            answer.push(Response::error("", e));
        }
        Ok(answer.into())
    })
}

fn background(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        // minimega 3.1.0's words exactly: scripts match on them; the pid is
        // in background-status.
        let (id, _pid) = c.ctx.background.start(c.args.list("command"))?;
        Ok(Response::text(format!("Started background process with id {id}")).into())
    })
}

fn id(c: &Call<'_, Node>) -> Result<u64, CommandError> {
    let s = c.args.string("id").unwrap_or_default();
    s.parse()
        .map_err(|_| CommandError::Invalid(format!("invalid id `{s}`: expected a number")))
}

fn status(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let procs = match c.args.string("id") {
            None => c.ctx.background.list(),
            Some(_) => vec![c.ctx.background.get(id(&c)?)?],
        };
        Ok(table(STATUS_COLUMNS, procs.iter().map(|p| p.row())).into())
    })
}

fn output(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let stderr = c.pattern.starts_with("background-error");
        let text = c.ctx.background.output(id(&c)?, stderr)?;
        Ok(Response::text(text.strip_suffix('\n').unwrap_or(&text)).into())
    })
}

fn kill(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let which = if c.args.string("id") == Some("all") {
            None
        } else {
            Some(id(&c)?)
        };
        c.ctx.background.kill(which)?;
        Ok(Reply::empty())
    })
}

fn clear(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let n = c.ctx.background.clear();
        Ok(Response::text(format!("Cleared {n} elements from background-status")).into())
    })
}
