//! `ns save NAME` (and its deprecated spelling `ns snapshot`): every VM of
//! the namespace on this node saved with `vm save` into
//! `<filepath>/saved/NAME/` (`VM.state`, `VM.hdd`...), and a `launch.mm`
//! there that `read` turns back into the same VMs, as minimega 3.1.0
//! writes it. `ns save` alone counts the saves done (completed, total).

use crate::command::Call;
use crate::command::{lexer, table, CmdResult, CommandError, Reply, Response};
use crate::node::Node;
use crate::vm::config::{Field, VmConfig, FIELDS};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn q(s: &str) -> String {
    lexer::quote_if_needed(s, false)
}

/// The `vm config` lines that give a VM's configuration again: the fields
/// that differ from the defaults, the disks and state being the saved
/// files (`disks`: the `.hdd` files, in order; `state`: the `.state` one,
/// both relative to -filepath when under it).
pub fn config_lines(cfg: &VmConfig, disks: &[String], state: &str) -> String {
    let d = VmConfig::default();
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    for (name, f) in FIELDS {
        match f {
            Field::Disks | Field::State | Field::Tags | Field::QemuOverride => continue,
            Field::Networks => {
                if !cfg.networks.is_empty() {
                    let specs: Vec<String> = cfg
                        .networks
                        .iter()
                        .map(|n| {
                            // The MAC the VM had, so its saved state still
                            // matches its NIC.
                            let mut m = n.unassigned();
                            if m.mac.is_empty() {
                                m.mac = n.hwaddr.clone();
                            }
                            q(&m.spec())
                        })
                        .collect();
                    line(format!("vm config networks {}", specs.join(" ")));
                }
            }
            Field::Bonds => {
                if !cfg.bonds.is_empty() {
                    let specs: Vec<String> = cfg
                        .bonds
                        .iter()
                        .map(|b| {
                            q(&crate::vm::bond::Bond {
                                name: String::new(),
                                held: false,
                                ..b.clone()
                            }
                            .spec())
                        })
                        .collect();
                    line(format!("vm config bonds {}", specs.join(" ")));
                }
            }
            Field::Append | Field::QemuAppend => {
                let v = if *f == Field::Append {
                    &cfg.append
                } else {
                    &cfg.qemu_append
                };
                if !v.is_empty() {
                    let words: Vec<String> = v.iter().map(|w| q(w)).collect();
                    line(format!("vm config {name} {}", words.join(" ")));
                }
            }
            _ => {
                let v = cfg.get(*f);
                if v != d.get(*f) && !v.is_empty() {
                    line(format!("vm config {name} {}", q(&v)));
                }
            }
        }
    }
    for (k, v) in &cfg.tags {
        line(format!("vm config tag {} {}", q(k), q(v)));
    }
    for (m, r) in &cfg.qemu_override {
        line(format!("vm config qemu-override {} {}", q(m), q(r)));
    }
    if !state.is_empty() {
        line(format!("vm config state {}", q(state)));
    }
    if !cfg.disks.is_empty() {
        let specs: Vec<String> = cfg
            .disks
            .iter()
            .zip(disks)
            .map(|(spec, saved)| {
                let mut s = spec.clone();
                s.path = saved.clone();
                q(&s.to_string())
            })
            .collect();
        line(format!("vm config disks {}", specs.join(" ")));
    }
    out
}

/// The head of launch.mm.
pub fn script_head(ns: &str, queueing: bool) -> String {
    format!("namespace \"{ns}\"\n\nns queueing {queueing}\n\n")
}

/// The tail of launch.mm, minimega's: the VMs were saved paused.
pub fn script_tail(queueing: bool) -> String {
    let mut out = String::new();
    if queueing {
        out.push_str("vm launch\n");
    }
    out.push_str("vm start all\n");
    out.push_str("# the save process saves the VMs in a paused state, so do a stop/start\n");
    out.push_str("shell sleep 10\nvm stop all\nvm start all\n");
    out
}

/// A saved file's name as launch.mm gives it: relative to -filepath when
/// under it (so the folder can move with the files directory).
fn shown(filepath: &Path, p: &str) -> String {
    Path::new(p)
        .strip_prefix(filepath)
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_else(|_| p.to_string())
}

async fn run(c: &mut Call<'_, Node>, line: &str) -> Vec<String> {
    let words = lexer::lex(line).unwrap_or_default();
    let mut errors = Vec::new();
    for g in c.engine.run_words(c.ctx, c.session, words).await {
        errors.extend(
            g.responses
                .into_iter()
                .filter(Response::is_error)
                .map(|r| r.error),
        );
    }
    errors
}

/// `ns save` / `ns snapshot`.
pub async fn ns_save(mut c: Call<'_, Node>) -> CmdResult {
    let node = c.ctx;
    let ns = crate::ns::current(c.session).to_string();
    let Some(name) = c.args.string("name").map(str::to_string) else {
        return progress(&mut c).await;
    };
    let filepath = node.vms.filepath().to_path_buf();
    let dir: PathBuf = if Path::new(&name).is_absolute() {
        PathBuf::from(&name)
    } else {
        crate::paths::confine(&filepath, &format!("saved/{name}"))
            .map_err(|e| CommandError::failed(e.to_string()))?
    };
    if dir.exists() {
        return Err(CommandError::failed(
            "saved VM with this name already exists",
        ));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| CommandError::failed(format!("{}: {e}", dir.display())))?;
    let queueing = node.namespaces.with(
        &ns,
        || super::scope::initial_hosts(node, &ns),
        |n| n.queueing,
    );
    let mut script = script_head(&ns, queueing);
    let mut errors = run(&mut c, "vm stop all").await;
    errors.retain(|e| !e.contains("not running") && !e.contains("state error"));
    let mut vms = node.vms.in_namespace(&ns);
    vms.sort_by_key(|v| v.id);
    for vm in vms {
        let base = dir.join(&vm.name).to_string_lossy().into_owned();
        let live = vm.qmp().is_ok();
        if live {
            let line = format!("vm save {} {}", q(&vm.name), q(&base));
            let e = run(&mut c, &line).await;
            if !e.is_empty() {
                errors.extend(e.into_iter().map(|e| format!("{}: {e}", vm.name)));
                continue;
            }
        }
        let cfg = vm.lock().config.clone();
        let (state, disks) = crate::vm::migrate::save_files(&base, cfg.disks.len());
        let (state, disks) = if live {
            (
                shown(&filepath, &state),
                disks.iter().map(|d| shown(&filepath, d)).collect(),
            )
        } else {
            // Not running: nothing to save; it starts afresh from its own
            // disks.
            (
                String::new(),
                cfg.disks.iter().map(|d| d.path.clone()).collect::<Vec<_>>(),
            )
        };
        script.push_str("clear vm config\n");
        script.push_str(&config_lines(&cfg, &disks, &state));
        let _ = writeln!(script, "vm launch kvm {}\n", q(&vm.name));
    }
    script.push_str(&script_tail(queueing));
    let f = dir.join("launch.mm");
    std::fs::write(&f, script)
        .map_err(|e| CommandError::failed(format!("{}: {e}", f.display())))?;
    if errors.is_empty() {
        return Ok(Reply::empty());
    }
    Err(CommandError::failed(errors.join("\n")))
}

/// `ns save` alone: how many of the namespace's saves completed.
async fn progress(c: &mut Call<'_, Node>) -> CmdResult {
    let words = lexer::lex(".columns status vm save").unwrap_or_default();
    let (mut done, mut total) = (0, 0);
    for g in c.engine.run_words(c.ctx, c.session, words).await {
        for r in g.responses {
            if r.is_error() {
                return Err(CommandError::failed(r.error));
            }
            for row in &r.tabular {
                if let [status] = row.as_slice() {
                    total += 1;
                    if status == "completed" {
                        done += 1;
                    }
                }
            }
        }
    }
    Ok(table(
        ["completed", "total"],
        [vec![done.to_string(), total.to_string()]],
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::drive::DiskSpec;

    #[test]
    fn a_vms_config_comes_back_as_vm_config_lines() {
        let mut cfg = VmConfig {
            memory: 512,
            vcpus: 2,
            append: vec!["console=ttyS0".into(), "quiet".into()],
            disks: vec![
                DiskSpec::path("/f/img.qcow2"),
                DiskSpec::path("/f/data.qcow2"),
            ],
            ..VmConfig::default()
        };
        cfg.tags.insert("role".into(), "web server".into());
        let (state, disks) = crate::vm::migrate::save_files("/f/saved/m/web", 2);
        let disks: Vec<String> = disks.iter().map(|d| shown(Path::new("/f"), d)).collect();
        let text = config_lines(&cfg, &disks, &shown(Path::new("/f"), &state));
        assert_eq!(
            text,
            "vm config memory 512\n\
             vm config vcpus 2\n\
             vm config append console=ttyS0 quiet\n\
             vm config tag role \"web server\"\n\
             vm config state saved/m/web.state\n\
             vm config disks saved/m/web.hdd saved/m/web.hdd.1\n"
        );
        assert_eq!(config_lines(&VmConfig::default(), &[], ""), "");
    }

    #[test]
    fn the_script_is_minimegas() {
        assert_eq!(
            script_head("matrix", false),
            "namespace \"matrix\"\n\nns queueing false\n\n"
        );
        assert!(script_tail(true).starts_with("vm launch\nvm start all\n# the save process"));
        assert!(script_tail(false).ends_with("shell sleep 10\nvm stop all\nvm start all\n"));
    }
}
