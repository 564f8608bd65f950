//! The engine end to end on a toy command table: compile, dispatch,
//! dot-commands, aliases, sessions and rendering together.

use super::render::render_all;
use super::*;
use crate::command::Reach;

struct Toy;

impl Context for Toy {
    fn hostname(&self) -> String {
        "toy".into()
    }

    fn preprocess<'a>(&'a self, v: &'a str) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            if v.starts_with("bad:") {
                return Err(format!("get {v}: file not found"));
            }
            Ok(v.contains("$X").then(|| v.replace("$X", "ex")))
        })
    }
}

fn echo_choice(c: Call<'_, Toy>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let picked: Vec<String> = c.args.bools.iter().cloned().collect();
        Ok(Response::text(picked.join(" ")).into())
    })
}

fn vm_info(_c: Call<'_, Toy>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let rows = [
            ["1", "foo1", "RUNNING"],
            ["0", "bar", "BUILDING"],
            ["2", "foo2", "BUILDING"],
        ];
        Ok(table(
            ["id", "name", "state"],
            rows.iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect()),
        )
        .into())
    })
}

fn vm_start(c: Call<'_, Toy>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        Ok(Response::text(format!("start {}", c.args.string("target").unwrap())).into())
    })
}

fn vm_stop(_c: Call<'_, Toy>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move { Err(CommandError::failed("cannot stop")) })
}

fn engine() -> Engine<Toy> {
    let mut specs = builtins::specs::<Toy>();
    specs.push(Spec {
        patterns: &["vm info"],
        short: "info",
        long: "Show VMs.",
        handler: vm_info,
        mesh_ok: true,
        reach: Reach::Here,
        ns_clear: &[],
    });
    specs.push(Spec {
        patterns: &["vm start <target>"],
        short: "start",
        long: "Start.",
        handler: vm_start,
        mesh_ok: false,
        reach: Reach::Here,
        ns_clear: &[],
    });
    specs.push(Spec {
        patterns: &["vm stop <target>"],
        short: "stop",
        long: "Stop.",
        handler: vm_stop,
        mesh_ok: true,
        reach: Reach::Here,
        ns_clear: &[],
    });
    specs.push(Spec {
        patterns: &["ns <queue,>", "ns <queueing,> [true,false]", "ns <flush,>"],
        short: "ns",
        long: "Namespaces.",
        handler: echo_choice,
        mesh_ok: true,
        reach: Reach::Here,
        ns_clear: &[],
    });
    specs.push(Spec {
        patterns: &[
            "clear toys",
            "clear toys <which>",
            "clear box <key>",
            "clear bin [key]",
        ],
        short: "clear toys",
        long: "Clear.",
        handler: echo_choice,
        mesh_ok: true,
        reach: Reach::Here,
        ns_clear: &[],
    });
    Engine::new(specs)
}

fn run(e: &Engine<Toy>, s: &mut Session, line: &str) -> String {
    let groups = futures_util::FutureExt::now_or_never(e.run_line(&Toy, s, line))
        .expect("toy commands do not wait");
    groups.iter().map(render_all).collect::<Vec<_>>().join("\n")
}

#[test]
fn tables_and_dot_commands() {
    let e = engine();
    let mut s = Session::new();
    assert_eq!(run(&e, &mut s, ".annotate false"), "");
    assert_eq!(run(&e, &mut s, "vm info"), "id   | name | state\n0    | bar  | BUILDING\n1    | foo1 | RUNNING\n2    | foo2 | BUILDING");
    assert_eq!(
        run(&e, &mut s, ".columns name .filter state=running vm info"),
        "name\nfoo1"
    );
    assert_eq!(
        run(&e, &mut s, ".col name .filter name~foo vm info"),
        "name\nfoo1\nfoo2"
    );
    assert_eq!(
        run(&e, &mut s, ".filter name~foo .col st vm info"),
        "E: no such column `name`"
    );
    assert_eq!(
        run(&e, &mut s, ".columns nam vm info"),
        "name\nbar\nfoo1\nfoo2"
    );
    assert_eq!(
        run(&e, &mut s, ".headers false .col name vm info"),
        "bar\nfoo1\nfoo2"
    );
    assert_eq!(run(&e, &mut s, ".headers"), "true");
    assert_eq!(
        run(&e, &mut s, ".csv true .col name,state vm info"),
        "name,state\nbar,BUILDING\nfoo1,RUNNING\nfoo2,BUILDING"
    );
}

#[test]
fn annotation_adds_host_column() {
    let e = engine();
    let mut s = Session::new();
    assert!(run(&e, &mut s, ".col name vm info").starts_with("host | name\ntoy  | bar"));
}

#[test]
fn json_mode_is_per_session() {
    let e = engine();
    let mut a = Session::new();
    let mut b = Session::new();
    run(&e, &mut a, ".json true");
    let out = run(&e, &mut a, "vm start x");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Response"], "start x");
    assert_eq!(run(&e, &mut b, "vm start x"), "start x");
    assert_eq!(run(&e, &mut a, ".json false"), "");
    assert_eq!(run(&e, &mut a, "vm start x"), "start x");
}

#[test]
fn aliases() {
    let e = engine();
    let mut s = Session::new();
    run(&e, &mut s, ".annotate false");
    assert_eq!(
        run(
            &e,
            &mut s,
            ".alias vmr=.column name .filter state=running vm info"
        ),
        ""
    );
    assert_eq!(
        run(&e, &mut s, ".alias"),
        "alias | expansion\nvmr   | .column name .filter state=running vm info"
    );
    assert_eq!(run(&e, &mut s, "vmr"), "name\nfoo1");
    assert_eq!(run(&e, &mut s, ".unalias vmr"), "");
    assert_eq!(run(&e, &mut s, ".unalias vmr"), "E: no such alias `vmr`");
    assert!(run(&e, &mut s, "vmr").starts_with("E: no such command: `vmr`"));
    assert_eq!(
        run(&e, &mut s, ".alias novalue"),
        "E: expected alias of format `alias=expansion`"
    );
    // An alias of nothing is an error when used, never a crash.
    run(&e, &mut s, ".alias nothing=");
    assert_eq!(run(&e, &mut s, "nothing"), "E: missing command");
    assert_eq!(
        e.check_line(&s, "nothing").unwrap_err().to_string(),
        "missing command"
    );
}

#[test]
fn errors_name_the_problem() {
    let e = engine();
    let mut s = Session::new();
    assert_eq!(
        run(&e, &mut s, "frobnicate"),
        "E: no such command: `frobnicate` (try `help`)"
    );
    assert_eq!(
        run(&e, &mut s, "vm start"),
        "E: invalid arguments in `vm start`; usage: vm start <target>"
    );
    assert_eq!(
        run(&e, &mut s, "vm st x"),
        "E: ambiguous command `vm st x`: could be `vm start`, `vm stop`"
    );
    assert_eq!(run(&e, &mut s, "vm stop x"), "E: cannot stop");
    assert_eq!(
        run(&e, &mut s, "echo \"open"),
        "E: unterminated quote \" in `echo \"open`"
    );
    assert_eq!(
        run(&e, &mut s, ".columns name vm lunch"),
        "E: no such command: `vm lunch`; `vm` commands: vm info, vm start, vm stop"
    );
    assert_eq!(
        run(&e, &mut s, "vm"),
        "E: incomplete command `vm`; `vm` commands: vm info, vm start, vm stop"
    );
    // A command spelled whole with wrong arguments gets its own usage.
    assert_eq!(
        run(&e, &mut s, "ns frob"),
        "E: invalid arguments in `ns frob`; usage: ns <queue,> | ns <queueing,> [true,false] | ns <flush,>"
    );
    assert_eq!(
        run(&e, &mut s, "vm info x"),
        "E: invalid arguments in `vm info x`; usage: vm info"
    );
}

#[test]
fn keywords_and_choices_match_by_unique_prefix() {
    let e = engine();
    let mut s = Session::new();
    assert_eq!(run(&e, &mut s, "ns queue"), "queue");
    assert_eq!(run(&e, &mut s, "ns queuei"), "queueing");
    assert_eq!(run(&e, &mut s, "ns queuei t"), "queueing true");
    assert_eq!(run(&e, &mut s, "ns f"), "flush");
    assert_eq!(
        run(&e, &mut s, "ns q"),
        "E: ambiguous command `ns q`: could be `ns queue`, `ns queueing`"
    );
    assert_eq!(
        run(&e, &mut s, "v st foo"),
        "E: ambiguous command `v st foo`: could be `vm start`, `vm stop`"
    );
    assert_eq!(run(&e, &mut s, "v sta foo"), "start foo");
    // A quoted word is data, never a keyword.
    assert_eq!(
        run(&e, &mut s, "ns \"f\""),
        "E: invalid arguments in `ns \"f\"`; usage: ns <queue,> | ns <queueing,> [true,false] | ns <flush,>"
    );
}

#[test]
fn argless_commands_and_nested_names() {
    let e = engine();
    assert_eq!(
        e.argless("clear"),
        ["clear history", "clear toys", "clear bin"]
    );
    let w = |l: &str| lexer::lex(l).unwrap();
    assert!(e.names_command(&w(".columns name .filter a=b vm info"), "vm info"));
    assert!(e.names_command(&w("v inf"), "vm info"));
    assert!(!e.names_command(&w("vm start x"), "vm info"));
    assert!(!e.names_command(&w("nonsense"), "vm info"));
}

#[test]
fn record_leaves_lines_out_of_history() {
    let e = engine();
    let mut s = Session::new();
    run(&e, &mut s, "clear history");
    // As minimega's own history test runs it.
    assert_eq!(
        run(&e, &mut s, ".record false echo hello, nobody"),
        "hello, nobody"
    );
    assert_eq!(
        run(&e, &mut s, ".record true echo hello, world"),
        "hello, world"
    );
    run(&e, &mut s, ".record false");
    assert_eq!(run(&e, &mut s, ".record"), "false");
    run(&e, &mut s, "echo hello, off the record");
    run(&e, &mut s, ".record true");
    run(&e, &mut s, "echo hello again, world");
    run(&e, &mut s, "# a comment is history too");
    run(&e, &mut s, "nonsense is not");
    assert_eq!(
        run(&e, &mut s, "history"),
        ".record true echo hello, world\necho hello again, world\n# a comment is history too"
    );
    assert_eq!(
        run(&e, &mut s, "history"),
        ".record true echo hello, world\necho hello again, world\n# a comment is history too",
        "history itself is not recorded"
    );
    // A session that does not record keeps nothing of its own.
    let mut quiet = Session::new();
    run(&e, &mut quiet, ".record false");
    run(&e, &mut quiet, ".columns name vm info");
    run(&e, &mut s, "clear history");
    assert_eq!(run(&e, &mut s, "history"), "");
}

#[test]
fn preprocess_expands_arguments_unless_told_not_to() {
    let e = engine();
    let mut s = Session::new();
    assert_eq!(run(&e, &mut s, "echo $X and $Y"), "ex and $Y");
    assert_eq!(
        run(&e, &mut s, "echo bad:thing"),
        "E: get bad:thing: file not found"
    );
    assert_eq!(run(&e, &mut s, ".preprocess false echo $X"), "$X");
    assert_eq!(
        run(&e, &mut s, ".preprocess"),
        "true",
        "the override held one command"
    );
    run(&e, &mut s, ".preprocess false");
    assert_eq!(run(&e, &mut s, "echo $X"), "$X");
    assert_eq!(run(&e, &mut s, ".preprocess true echo $X"), "ex");
    let mut m = Session::from_mesh("far", None);
    assert_eq!(run(&e, &mut m, "echo $X"), "$X", "its sender expanded it");
}

#[test]
fn quit_marks_the_session() {
    let e = engine();
    let mut s = Session::new();
    assert_eq!(run(&e, &mut s, "quit"), "");
    assert!(s.quit);
    let mut m = Session::from_mesh("far", None);
    assert!(run(&e, &mut m, "quit").contains("cannot be sent over the mesh"));
}

#[test]
fn comments_blank_lines_and_echo() {
    let e = engine();
    let mut s = Session::new();
    assert_eq!(run(&e, &mut s, "# nothing"), "");
    assert_eq!(run(&e, &mut s, "   "), "");
    assert_eq!(
        run(&e, &mut s, "echo hello \"big world\""),
        "hello big world"
    );
}

#[test]
fn history_records_local_commands() {
    let e = engine();
    let mut s = Session::new();
    run(&e, &mut s, "echo one");
    run(&e, &mut s, "bogus");
    run(&e, &mut s, "echo two");
    assert_eq!(run(&e, &mut s, "history"), "echo one\necho two");
    run(&e, &mut s, "clear history");
    assert_eq!(run(&e, &mut s, "history"), "");
}

#[test]
fn mesh_origin_refuses_local_only_commands() {
    let e = engine();
    let mut s = Session::from_mesh("node1", None);
    assert_eq!(
        run(&e, &mut s, "vm start x"),
        "E: `vm start` cannot be sent over the mesh (from node1)"
    );
    assert!(
        e.history().is_empty(),
        "mesh commands are not local history"
    );
}

#[test]
fn help_and_suggest() {
    let e = engine();
    let mut s = Session::new();
    let all = run(&e, &mut s, "help");
    assert!(all.starts_with("Display help on a command."));
    assert!(all.contains("vm info") && all.contains(".filter"));
    assert_eq!(
        run(&e, &mut s, "help vm start"),
        "Usage:\n\tvm start <target>\n\nStart."
    );
    assert!(run(&e, &mut s, "help vm").contains("vm stop"));
    assert_eq!(
        run(&e, &mut s, "help nothing"),
        "E: no help on `nothing`: no such command"
    );
    assert_eq!(e.suggest("vm st"), ["vm start", "vm stop"]);
    assert_eq!(e.suggest(".json t"), [".json true"]);
}

/// A context whose namespace `wide` spans a second host.
struct Spread;

impl Context for Spread {
    fn hostname(&self) -> String {
        "near".into()
    }

    fn elsewhere(&self, _wide: &Wide, _line: &str, session: &Session) -> Option<Elsewhere> {
        if session.namespace.as_deref() != Some("wide") {
            return None;
        }
        Some(Elsewhere {
            here: true,
            remote: Box::pin(async {
                let mut far = table(["id", "name"], [vec!["7".into(), "x".into()]]);
                far.host = "far".into();
                vec![far, Response::error("gone", "no answer within 10s")]
            }),
        })
    }
}

fn spread_info(_c: Call<'_, Spread>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async { Ok(table(["id", "name"], [vec!["1".into(), "a".into()]]).into()) })
}

#[test]
fn the_context_can_run_a_command_elsewhere_too() {
    let mut specs = builtins::specs::<Spread>();
    specs.push(Spec {
        patterns: &["vm info"],
        short: "info",
        long: "Show VMs.",
        handler: spread_info,
        mesh_ok: true,
        reach: Reach::namespace(None),
        ns_clear: &[],
    });
    // The same command, told to stay here, and told to tidy its answer.
    specs.push(Spec {
        patterns: &["vm local"],
        short: "info here",
        long: "Show this node's VMs.",
        handler: spread_info,
        mesh_ok: true,
        reach: Reach::Here,
        ns_clear: &[],
    });
    specs.push(Spec {
        patterns: &["vm tidy"],
        short: "info, errors dropped",
        long: "Show VMs without error rows.",
        handler: spread_info,
        mesh_ok: true,
        reach: Reach::namespace(Some(|rs: &mut Vec<Response>| rs.retain(|r| !r.is_error()))),
        ns_clear: &[],
    });
    let e = Engine::new(specs);
    let run = |s: &mut Session, line: &str| {
        let groups = futures_util::FutureExt::now_or_never(e.run_line(&Spread, s, line)).unwrap();
        groups.iter().map(render_all).collect::<Vec<_>>().join("\n")
    };
    let mut s = Session::new();
    assert_eq!(run(&mut s, "vm info"), "host | id | name\nnear | 1  | a");
    s.namespace = Some("wide".into());
    s.follow_active = false;
    assert_eq!(
        run(&mut s, "vm info"),
        "host | id | name\nfar  | 7  | x\nnear | 1  | a\nE: gone: no answer within 10s"
    );
    assert_eq!(
        run(&mut s, ".columns name vm info"),
        "host | name\nfar  | x\nnear | a\nE: gone: no answer within 10s"
    );
    // What arrived over the mesh runs here only.
    assert_eq!(run(&mut s, "vm local"), "host | id | name\nnear | 1  | a");
    assert_eq!(
        run(&mut s, "vm tidy"),
        "host | id | name\nfar  | 7  | x\nnear | 1  | a"
    );
    let mut m = Session::from_mesh("far", Some("wide".into()));
    assert_eq!(run(&mut m, "vm info"), "host | id | name\nnear | 1  | a");
}

#[test]
fn check_line_compiles_without_running() {
    let e = engine();
    let mut s = Session::new();
    assert!(
        e.check_line(&s, "vm stop foo").is_ok(),
        "fails only when run"
    );
    assert!(e.check_line(&s, "# a comment").is_ok());
    assert!(e.check_line(&s, "").is_ok());
    let err = e.check_line(&s, "frobnicate").unwrap_err().to_string();
    assert_eq!(err, "no such command: `frobnicate` (try `help`)");
    assert!(e.check_line(&s, "echo \"open").is_err());
    assert!(e.check_line(&s, "st foo").is_err());
    s.aliases.insert("st".into(), "vm start".into());
    assert!(e.check_line(&s, "st foo").is_ok());
    assert!(e.history().is_empty(), "checking records nothing");
}
