//! The `vnc` commands, minimega's: `vnc record|stop kb|fb`, `vnc play`
//! and its controls, `vnc type`, `vnc inject`, the `vnc` listing and
//! `clear vnc`. Each reaches the VMs of the namespace on every host, as
//! `vm start` does; files are on the VM's host (relative names under its
//! files directory), and a file to play that only another node has is
//! fetched first.

use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reach, Reply, Spec};
use crate::console::kb;
use crate::node::Node;
use crate::vm::config;
use crate::vm::targets;
use crate::vm::Vm;
use crate::vnc::VncError;
use std::path::PathBuf;
use std::sync::Arc;

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

fn namespace(c: &Call<'_, Node>) -> String {
    crate::ns::current(c.session).to_string()
}

const LONG_RECORD: &str = "Record what is typed and clicked on a VM's screen (kb), or the screen\nitself (fb), to a file on the VM's host (a relative name is under its\n-filepath):\n\n\tvnc record kb vm-0 session.kb\n\tvnc stop kb vm-0\n\tvnc record fb vm-0 screen.fb\n\tvnc stop fb vm-0\n\nA kb recording has a line per key or pointer event sent to the VM, by a\nviewer on its VNC port (`vm info` vnc_port) or by a playback,\n`<nanoseconds since the line before>:<event>`, as minimega writes it; `vnc\nplay` plays it. An fb recording is the screen every 100 ms, minimega's\ngzip stream (its rfbplay plays it). `vnc` lists what is recording.";

const LONG_PLAY: &str = "Play a kb recording into VMs, and control the playback:\n\n\tvnc play vm-0 session.kb     play a file (relative: under -filepath)\n\tvnc type vm-0 some text      type text (a newline in it presses Return)\n\tvnc pause vm-0               pause, and `vnc continue vm-0`\n\tvnc step vm-0                skip the wait before the next event\n\tvnc getstep vm-0             the line being played\n\tvnc inject vm-0 KeyEvent,true,a   send one event now (into the\n\t                             playback when one runs)\n\tvnc inject vm-0 LoadFile,other.kb  play another file\n\tvnc stop vm-0                end the playback\n\nThe file is read and checked first: a line that is not an event is an\nerror naming its number. Events (minimega's format, one a line,\n`<delay>:<event>`, the delay in nanoseconds or as 1.5s):\n\n\tKeyEvent,<true|false>,<keysym name or U+hex>\n\tPointerEvent,<button mask>,<x>,<y>\n\tLoadFile,<file>              (relative: beside this file)\n\tWaitForIt,<timeout>,<base64 PNG or a PNG file>\n\tClickItEvent,<timeout>,<base64 PNG or a PNG file>\n\t#: a comment, logged when played\n\nWaitForIt waits until the picture is on the screen (checked once a\nsecond) and ends the playback when the timeout passes first; ClickItEvent\nthen clicks its centre. A file only another node of the mesh has is\nfetched first. Targets as for `vm start`.";

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &[
                "vnc <record,> <kb,fb> <vm name> <filename>",
                "vnc <stop,> <kb,fb> <vm name>",
            ],
            short: "record VNC kb or fb",
            long: LONG_RECORD,
            handler: vnc_record,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "vnc <play,> <vm target> <filename>",
                "vnc <type,> <vm target> <str>...",
                "vnc <stop,> <vm target>",
                "vnc <pause,> <vm target>",
                "vnc <continue,> <vm target>",
                "vnc <step,> <vm target>",
                "vnc <getstep,> <vm target>",
                "vnc <inject,> <vm target> <cmd>",
            ],
            short: "play VNC kb",
            long: LONG_PLAY,
            handler: vnc_play,
            mesh_ok: true,
            reach: Reach::namespace(Some(super::scope::drop_not_found)),
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear vnc"],
            short: "reset VNC state",
            long: "Stop every kb and fb recording and every playback of the namespace.",
            handler: clear_vnc,
            mesh_ok: true,
            reach: Reach::namespace(None),
            ns_clear: &["clear vnc"],
        },
        Spec {
            patterns: &["vnc"],
            short: "list all running vnc playback/recording instances",
            long: "List the namespace's recordings and playbacks: name (the VM), type\n(record kb, record fb, playback kb), time (how long it has recorded, or\nhow much of the playback is left, or PAUSED) and filename.",
            handler: vnc_list,
            mesh_ok: true,
            reach: Reach::namespace(None),
            ns_clear: &[],
        },
    ]
}

fn file(c: &Call<'_, Node>) -> Result<PathBuf, CommandError> {
    let name = c.args.string("filename").unwrap_or_default();
    let p = config::resolve_file(c.ctx.vms.filepath(), name).map_err(failed)?;
    Ok(PathBuf::from(p))
}

fn vnc_record(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let vm = c
            .ctx
            .vms
            .one(&namespace(&c), c.args.string("vm").unwrap_or_default())?;
        let vnc = &c.ctx.vnc;
        let kb = c.args.flag("kb");
        let r = if c.args.flag("record") {
            let path = file(&c)?;
            if kb {
                vnc.record_kb(&vm, &path)
            } else {
                vnc.record_fb(&vm, &path).await
            }
        } else if kb {
            vnc.stop_kb(&vm).await
        } else {
            vnc.stop_fb(&vm).await
        };
        r.map_err(failed)?;
        Ok(Reply::empty())
    })
}

/// The VMs a `vnc` target names here. `all` leaves out those the
/// operation does not apply to, as minimega's `all` does.
fn targets_of(c: &Call<'_, Node>) -> Result<(Vec<Arc<Vm>>, bool), CommandError> {
    let spec = c.args.string("vm").unwrap_or_default();
    let t = targets::parse_targets(spec).map_err(failed)?;
    let list = c.ctx.vms.resolve(&namespace(c), &t)?;
    Ok((list, spec == "all"))
}

fn vnc_play(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let (list, all) = targets_of(&c)?;
        let vnc = &c.ctx.vnc;
        let f = |name: &str| c.args.flag(name);
        let action = if f("inject") {
            let cmd = c.args.string("cmd").unwrap_or_default();
            Some(kb::parse_action(cmd).map_err(|e| failed(format!("vnc inject: {e}")))?)
        } else {
            None
        };
        let path = if f("play") { Some(file(&c)?) } else { None };
        let text = c.args.list("str").join(" ");
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        for vm in &list {
            let r = if f("play") {
                let p = path.as_deref().expect("play has a file");
                vnc.play(vm, p).await
            } else if f("type") {
                vnc.type_text(vm, &text).await
            } else if f("inject") {
                vnc.inject(vm, action.clone().expect("inject has an event"))
                    .await
            } else if f("stop") {
                vnc.stop_playback(vm)
            } else if f("pause") {
                vnc.pause(vm)
            } else if f("continue") {
                vnc.resume(vm)
            } else if f("step") {
                vnc.step(vm)
            } else {
                vnc.getstep(vm)
                    .map(|step| rows.push(vec![vm.name.clone(), step]))
            };
            match r {
                Ok(()) => {}
                // `all` is every VM this applies to.
                Err(VncError::NotRunning(_) | VncError::NoPlayback(_)) if all => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            return Err(failed(errors.join("\n")));
        }
        if f("getstep") {
            return Ok(table(["name", "step"], rows).into());
        }
        Ok(Reply::empty())
    })
}

fn clear_vnc(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        c.ctx.vnc.clear(&namespace(&c)).await;
        Ok(Reply::empty())
    })
}

fn vnc_list(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let rows: Vec<Vec<String>> = c
            .ctx
            .vnc
            .list(&namespace(&c))
            .into_iter()
            .map(Vec::from)
            .collect();
        Ok(table(["name", "type", "time", "filename"], rows).into())
    })
}
