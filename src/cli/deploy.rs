//! The `deploy` commands. Settings are the node's (as minimega keeps them
//! process-wide); `deploy launch`/`remove` answer one row per host.

use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reply, Response, Spec};
use crate::deploy::{plan::HeadFlags, ssh::HostKeyPolicy, Job, Outcome, Settings};
use crate::node::Node;
use std::path::PathBuf;
use std::sync::Arc;

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["deploy launch <hosts>", "deploy launch <hosts> <user> [sudo,]"],
            short: "install and start minimega on other nodes",
            long: "Install minimega on each host over SSH, in parallel, and start it as a\n\
service that joins this node's mesh. Hosts are a name, a range or a comma\n\
list (node[1-3],head2). Each host gets the package built for it from the\n\
package directory (`deploy packages`), or this binary when there is none;\n\
the daemon there runs with this node's -port, -degree, -context, -msa and\n\
-broadcast plus `deploy flags`, and this node's mesh key. The host key must\n\
be in known_hosts unless `deploy hostkeys accept-new`; a changed key is\n\
always refused. On a host without systemd, this binary and the key go,\n\
and the daemon runs under nohup with the same flags (as minimega deploys),\n\
logging to /var/log/minimega.log unless `deploy stdout`/`stderr` say\n\
otherwise. One row per host: host, version, state (installed,\n\
upgraded, up to date, failed) and error. A host that fails is left without\n\
a half-installed minimega running; the others go on.\n\n\
`deploy launch HOSTS USER [sudo]` (minimega's form) logs in as USER, and\n\
with sudo runs the install through sudo, for this launch only (`deploy\n\
user` and `deploy sudo` set them for every launch).",
            handler: launch,
            mesh_ok: false,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["deploy remove <hosts>"],
            short: "stop and uninstall minimega on other nodes",
            long: "Stop minimega on each host, remove what deploy wrote, and uninstall the\npackage (or the binary deploy sent).",
            handler: remove,
            mesh_ok: false,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["deploy flags [flags]...", "clear deploy flags"],
            short: "extra flags for deployed daemons",
            long: "Show or set flags added after this node's own when deploying, e.g.\n`deploy flags -degree 3 -level debug`. `clear deploy flags` resets them.",
            handler: flags,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["deploy user [user]"],
            short: "the SSH user deploy logs in as",
            long: "Show or set the user deploy logs in as (default root). A user other than\nroot needs `deploy sudo true` and password-less sudo on the hosts.",
            handler: user,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["deploy sudo [true,false]"],
            short: "run deploy's commands through sudo",
            long: "Show or set whether commands on the hosts run through `sudo -n`\n(for a login other than root).",
            handler: sudo,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["deploy identity [file]"],
            short: "the SSH private key deploy uses",
            long: "Show or set the private key file deploy authenticates with (default:\n~/.ssh/id_ed25519, id_ecdsa, id_rsa of the user running minimega).",
            handler: identity,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["deploy hostkeys [strict,accept-new]"],
            short: "how deploy treats unknown host keys",
            long: "strict (default): a host whose key is not in ~/.ssh/known_hosts or\n/etc/ssh/ssh_known_hosts is refused. accept-new: an unknown key is\nrecorded in ~/.ssh/known_hosts and trusted. A changed key is always refused.",
            handler: hostkeys,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["deploy packages [dir]"],
            short: "where deploy finds packages for the hosts",
            long: "Show or set the directory holding minimega_<version>_<arch>.deb and\nminimega-<version>-<release>.<arch>.rpm (as `make package` makes them).\nDefault /var/lib/minimega/packages.",
            handler: packages,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["deploy stdout [file]", "deploy stderr [file]"],
            short: "where deployed daemons write their output",
            long: "Show or set a file on the hosts that the deployed daemon's standard\noutput (or error) is appended to, instead of the journal.",
            handler: redirect,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear deploy"],
            short: "reset every deploy setting",
            long: "Reset the deploy settings to their defaults.",
            handler: clear,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

fn settings<'a>(c: &Call<'a, Node>) -> std::sync::MutexGuard<'a, Settings> {
    c.ctx.deploy.lock().unwrap_or_else(|p| p.into_inner())
}

/// One row per host; when a host failed, an error after the table too, so
/// the command fails (`minimega -e deploy launch ...` exits 1) and a
/// script sees it, while the table still tells each host's story.
fn rows(verb: &str, out: Vec<Outcome>) -> Reply {
    let total = out.len();
    let failed: Vec<String> = out
        .iter()
        .filter(|o| o.state == "failed")
        .map(|o| o.host.clone())
        .collect();
    let t = table(
        ["host", "version", "state", "error"],
        out.into_iter()
            .map(|o| vec![o.host, o.version, o.state, o.error]),
    );
    if failed.is_empty() {
        return t.into();
    }
    let e = Response {
        error: format!(
            "deploy {verb} failed on {} of {total} hosts: {}",
            failed.len(),
            failed.join(", ")
        ),
        ..Response::default()
    };
    vec![t, e].into()
}

fn hosts(c: &Call<'_, Node>) -> Result<Vec<String>, CommandError> {
    let spec = c.args.string("hosts").unwrap_or_default();
    let me = c.ctx.hostname();
    let hosts = super::mesh::named_hosts(spec, me)?;
    if hosts.iter().any(|h| h == me) {
        return Err(CommandError::Invalid(format!(
            "cannot deploy to this node ({me})"
        )));
    }
    Ok(hosts)
}

fn job(c: &Call<'_, Node>) -> Result<Job, CommandError> {
    let cfg = &c.ctx.config;
    // minimega's `deploy launch HOSTS USER [sudo]`: this launch only.
    let mut settings = settings(c).clone();
    if let Some(user) = c.args.string("user") {
        settings.user = user.to_string();
        settings.sudo = c.args.flag("sudo");
    }
    let mesh_key = std::fs::read(&cfg.mesh_key).map_err(|e| {
        CommandError::failed(format!(
            "cannot read the mesh key {}: {e} (nodes need it to join the mesh)",
            cfg.mesh_key.display()
        ))
    })?;
    Ok(Job {
        settings,
        head: HeadFlags {
            port: cfg.port,
            degree: cfg.degree,
            context: cfg.context.clone(),
            msa_secs: cfg.msa.as_secs().max(1),
            broadcast: cfg.broadcast.map(|b| b.to_string()),
        },
        version: crate::VERSION.to_string(),
        mesh_key,
        binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
        home: home_dir(),
    })
}

fn home_dir() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    crate::users::home_dir(unsafe { libc::geteuid() })
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn launch(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let hosts = hosts(&c)?;
        let job = Arc::new(job(&c)?);
        let mesh: Arc<dyn crate::deploy::MeshJoin> = c.ctx.mesh_join();
        Ok(rows(
            "launch",
            crate::deploy::launch(job, mesh, hosts).await,
        ))
    })
}

fn remove(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let hosts = hosts(&c)?;
        let settings = settings(&c).clone();
        Ok(rows(
            "remove",
            crate::deploy::remove(settings, home_dir(), hosts).await,
        ))
    })
}

fn text(s: impl Into<String>) -> CmdResult {
    Ok(Response::text(s).into())
}

fn flags(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let mut s = settings(&c);
        if c.pattern.starts_with("clear") {
            s.flags.clear();
            return Ok(Reply::empty());
        }
        let given = c.args.list("flags");
        if given.is_empty() {
            return text(s.flags.join(" "));
        }
        s.flags = given.to_vec();
        Ok(Reply::empty())
    })
}

fn user(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let mut s = settings(&c);
        match c.args.string("user") {
            Some(u) if u.is_empty() || u.contains(char::is_whitespace) => {
                Err(CommandError::Invalid(format!("invalid user `{u}`")))
            }
            Some(u) => {
                s.user = u.to_string();
                Ok(Reply::empty())
            }
            None => text(s.user.clone()),
        }
    })
}

fn sudo(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let mut s = settings(&c);
        if c.args.flag("true") || c.args.flag("false") {
            s.sudo = c.args.flag("true");
            return Ok(Reply::empty());
        }
        text(s.sudo.to_string())
    })
}

fn identity(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        match c.args.string("file") {
            Some(f) => {
                let p = PathBuf::from(f);
                if !p.is_file() {
                    return Err(CommandError::Invalid(format!("no such key file: {f}")));
                }
                settings(&c).identity = Some(p);
                Ok(Reply::empty())
            }
            None => text(
                settings(&c)
                    .identity
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        }
    })
}

fn hostkeys(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let mut s = settings(&c);
        if c.args.flag("strict") {
            s.hostkeys = HostKeyPolicy::Strict;
        } else if c.args.flag("accept-new") {
            s.hostkeys = HostKeyPolicy::AcceptNew;
        } else {
            return text(match s.hostkeys {
                HostKeyPolicy::Strict => "strict",
                HostKeyPolicy::AcceptNew => "accept-new",
            });
        }
        Ok(Reply::empty())
    })
}

fn packages(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        match c.args.string("dir") {
            Some(d) => {
                if !PathBuf::from(d).is_dir() {
                    return Err(CommandError::Invalid(format!("no such directory: {d}")));
                }
                settings(&c).packages = PathBuf::from(d);
                Ok(Reply::empty())
            }
            None => text(settings(&c).packages.display().to_string()),
        }
    })
}

fn redirect(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let err = c.pattern.starts_with("deploy stderr");
        let mut s = settings(&c);
        let slot = if err {
            &mut s.redirect.stderr
        } else {
            &mut s.redirect.stdout
        };
        match c.args.string("file") {
            Some(f) if !f.starts_with('/') => Err(CommandError::Invalid(format!(
                "`{f}` must be an absolute path on the hosts"
            ))),
            Some(f) => {
                *slot = Some(f.to_string());
                Ok(Reply::empty())
            }
            None => text(slot.clone().unwrap_or_default()),
        }
    })
}

fn clear(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        *settings(&c) = Settings::default();
        Ok(Reply::empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(host: &str, state: &str) -> Outcome {
        Outcome {
            host: host.into(),
            version: "1.0".into(),
            state: state.into(),
            error: if state == "failed" {
                format!("HOST KEY CHANGED for {host}")
            } else {
                String::new()
            },
        }
    }

    fn responses(r: Reply) -> Vec<Response> {
        match r {
            Reply::Responses(r) => r,
            Reply::Groups(_) => panic!("groups"),
        }
    }

    #[test]
    fn a_failed_host_is_an_error_and_the_table_stays() {
        let r = responses(rows(
            "launch",
            vec![
                outcome("n1", "installed"),
                outcome("n2", "failed"),
                outcome("n3", "failed"),
            ],
        ));
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].tabular.len(), 3, "every host keeps its row");
        assert!(!r[0].is_error());
        assert_eq!(r[1].error, "deploy launch failed on 2 of 3 hosts: n2, n3");
        let ok = responses(rows("remove", vec![outcome("n1", "removed")]));
        assert_eq!(ok.len(), 1);
        assert!(!ok[0].is_error());
    }
}
