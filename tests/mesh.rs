//! The mesh with real daemons: each in its own network namespace on a
//! private LAN (so UDP broadcast discovery really runs and every daemon
//! uses port 9000), each on its own private D-Bus bus.

mod common;

use common::netns::Lan;
use common::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const PORT: u16 = 9000;
const KEY_A: &str = "c2hhcmVkIG1lc2gga2V5IGZvciB0aGUgdGVzdHMgQQ==";
const KEY_B: &str = "YW5vdGhlciBrZXksIHRoZSB3cm9uZyBvbmUgQkJCQg==";
const FORM: Duration = Duration::from_secs(60);

/// One daemon and its bus (dropped in this order).
struct Member {
    d: Daemon,
    bus: Bus,
    index: usize,
    ns: String,
}

struct Cluster {
    members: Vec<Member>,
    lan: Lan,
    keys: Scratch,
    /// Daemons get no `-broadcast`: discovery finds each interface's own
    /// broadcast address (the LAN's namespaces have no default route).
    every_interface: bool,
}

impl Cluster {
    fn new() -> Cluster {
        let keys = Scratch::new("meshkeys");
        for (name, k) in [("a.key", KEY_A), ("b.key", KEY_B)] {
            let p = keys.path.join(name);
            std::fs::write(&p, format!("{k}\n")).unwrap();
            set_mode(&p, 0o600);
        }
        Cluster {
            members: Vec::new(),
            lan: Lan::new(),
            keys,
            every_interface: false,
        }
    }

    fn key(&self, name: &str) -> PathBuf {
        self.keys.path.join(name)
    }

    /// Starts node `name` as LAN host number `index`.
    fn start(&mut self, index: usize, name: &str, extra: &[&str]) -> usize {
        let ns = self.lan.add_host(index);
        let bus = Bus::start();
        let mut args: Vec<String> = vec![
            "-meshkey".into(),
            self.key("a.key").to_str().unwrap().into(),
            "-broadcast".into(),
            self.lan.broadcast(),
            "-msa".into(),
            "2s".into(),
        ];
        if self.every_interface {
            args.drain(2..4);
        }
        // A flag may be given once: the caller's -meshkey replaces ours.
        if extra.contains(&"-meshkey") {
            args.drain(0..2);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let d = Daemon::start_with(
            &bus,
            DaemonOpts {
                name,
                extra: args,
                netns: Some(ns.clone()),
                port: Some(PORT),
                ..Default::default()
            },
        );
        self.members.push(Member { d, bus, index, ns });
        self.members.len() - 1
    }

    fn node(&self, name: &str) -> &Member {
        self.members.iter().find(|m| m.d.name == name).unwrap()
    }

    fn addr(&self, name: &str) -> String {
        self.lan.addr(self.node(name).index)
    }
}

fn property(m: &Member, prop: &str) -> String {
    let o = Command::new("busctl")
        .arg(format!("--address={}", m.bus.address))
        .args([
            "get-property",
            "org.minimega.Minimega1",
            "/org/minimega/Minimega1",
            "org.minimega.Minimega1",
            prop,
        ])
        .output()
        .unwrap();
    stdout(&o)
}

fn mesh_size(m: &Member) -> usize {
    property(m, "MeshSize")
        .strip_prefix("u ")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits until every running member reports `size`.
fn wait_size(c: &Cluster, names: &[&str], size: usize) {
    wait_for(
        &format!("{names:?} to report mesh size {size}"),
        FORM,
        || {
            names
                .iter()
                .all(|n| mesh_size(c.node(n)) == size)
                .then_some(())
        },
    );
}

/// Nodes `names` with degree 10 (more than there are nodes, so each links
/// to all), once every one reports the whole mesh.
fn full_mesh(names: &[&str]) -> Cluster {
    let mut c = Cluster::new();
    for (i, n) in names.iter().enumerate() {
        c.start(i, n, &["-degree", "10"]);
    }
    wait_size(&c, names, names.len());
    c
}

/// The string argument of each `member` signal of the daemon's interface,
/// as they arrive.
fn watch_signals(bus: &str, member: &'static str) -> std::sync::mpsc::Receiver<String> {
    use futures_util::StreamExt;
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let bus = bus.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let conn = zbus::connection::Builder::address(bus.as_str())
                .unwrap()
                .build()
                .await
                .unwrap();
            let rule = zbus::MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .interface("org.minimega.Minimega1")
                .unwrap()
                .member(member)
                .unwrap()
                .build();
            let mut stream = zbus::MessageStream::for_match_rule(rule, &conn, Some(64))
                .await
                .unwrap();
            let _ = ready_tx.send(());
            while let Some(Ok(m)) = stream.next().await {
                if let Ok(host) = m.body().deserialize::<String>() {
                    if tx.send(host).is_err() {
                        return;
                    }
                }
            }
        });
    });
    ready.recv_timeout(FORM).expect("signal watcher subscribed");
    rx
}

/// Runs a script through one `-attach` session and returns its output.
fn attach(m: &Member, script: &str) -> String {
    stdout(&common::attach(&m.bus.address, &[], script))
}

#[test]
fn four_daemons_with_degree_10_form_one_mesh() {
    let mut c = Cluster::new();
    c.start(0, "n1", &["-degree", "10"]);
    // Watch n1's bus for the join signals before the others start.
    let joined = watch_signals(&c.node("n1").bus.address, "PeerJoined");
    for (i, n) in ["n2", "n3", "n4"].iter().enumerate() {
        c.start(i + 1, n, &["-degree", "10"]);
    }
    let all = ["n1", "n2", "n3", "n4"];
    wait_size(&c, &all, 4);
    // Degree 10 is more than there are nodes: every node links to all.
    wait_for("a full mesh", FORM, || {
        all.iter()
            .all(|n| {
                c.node(n)
                    .d
                    .ok("mesh status")
                    .ends_with("| 4         | 10     | 3     | minimega | 9000")
            })
            .then_some(())
    });
    let n1 = &c.node("n1").d;
    assert_eq!(
        n1.ok("mesh status"),
        "host | mesh size | degree | peers | context  | port\n\
         n1   | 4         | 10     | 3     | minimega | 9000"
    );
    assert_eq!(
        n1.ok("mesh list"),
        "n1\n |--n2\n |--n3\n |--n4\n\
         n2\n |--n1\n |--n3\n |--n4\n\
         n3\n |--n1\n |--n2\n |--n4\n\
         n4\n |--n1\n |--n2\n |--n3"
    );
    assert_eq!(n1.ok("mesh list all"), "n[1-4]");
    assert_eq!(n1.ok("mesh list peers"), "n[2-4]");
    assert_eq!(
        n1.ok("mesh send all version"),
        format!("n[2-4]: minimega {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        n1.ok(".columns name mesh send n[2-3] host"),
        "host | name\nn2   | n2\nn3   | n3"
    );
    assert_eq!(n1.ok("mesh timeout"), "10s");
    assert_eq!(n1.ok("mesh degree"), "10");
    let dot = c.keys.path.join("mesh.dot");
    n1.ok(&format!("mesh dot {}", dot.display()));
    let text = std::fs::read_to_string(&dot).unwrap();
    assert!(
        text.contains("label=\"total=4\"") && text.matches(" -- ").count() == 6,
        "{text}"
    );

    // The D-Bus edge: properties and the signals of the joins.
    let n1m = c.node("n1");
    assert_eq!(property(n1m, "MeshSize"), "u 4");
    assert_eq!(property(n1m, "Peers"), "as 3 \"n2\" \"n3\" \"n4\"");
    let mut seen: Vec<String> = Vec::new();
    while seen.len() < 3 {
        match joined.recv_timeout(FORM) {
            Ok(host) => seen.push(host),
            Err(_) => panic!("PeerJoined signals: only {seen:?}"),
        }
    }
    seen.sort();
    assert_eq!(seen, ["n2", "n3", "n4"]);

    // A command that arrived over the mesh may not send further.
    let out = n1.e("mesh send n2 mesh send n3 version");
    assert!(
        stdout(&out).contains("`mesh send` cannot be sent over the mesh (from n1)"),
        "{}",
        stdout(&out)
    );
    // Hanging up drops the link (discovery may link again later).
    n1.ok("mesh hangup n4");
    let e = n1.e("mesh hangup nobody");
    assert_eq!(stdout(&e), "E: not connected to nobody");
}

#[test]
fn degree_one_reaches_every_node_through_intermediate_hops() {
    let mut c = Cluster::new();
    let names = ["n1", "n2", "n3", "n4", "n5"];
    for (i, n) in names.iter().enumerate() {
        c.start(i, n, &["-degree", "1"]);
        wait_size(&c, &names[..=i], i + 1);
    }
    let list = c.node("n1").d.ok("mesh list");
    // Some two nodes are not linked directly (5 nodes, degree 1).
    let adj = parse_list(&list);
    let (a, b) = names
        .iter()
        .flat_map(|a| names.iter().map(move |b| (*a, *b)))
        .find(|(a, b)| {
            a != b
                && !adj
                    .iter()
                    .any(|(n, p)| n == a && p.contains(&b.to_string()))
        })
        .unwrap_or_else(|| panic!("a full mesh with degree 1?\n{list}"));
    let version = format!("minimega {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(c.node(a).d.ok(&format!("mesh send {b} version")), version);
    // From every node, every other node answers.
    for n in names {
        let out = c.node(n).d.ok(".columns name mesh send all host");
        let want: Vec<String> = names
            .iter()
            .filter(|x| **x != n)
            .map(|x| format!("{x:<5}| {x}"))
            .collect();
        assert_eq!(out, format!("host | name\n{}", want.join("\n")), "from {n}");
    }

    // Killing a node with links to two others splits the tree; the rest
    // link up again.
    let hub = adj
        .iter()
        .find(|(_, p)| p.len() >= 2)
        .map(|(n, _)| n.clone())
        .expect("a tree of 5 nodes has an inner node");
    let i = c.members.iter().position(|m| m.d.name == hub).unwrap();
    c.members[i].d.crash();
    let rest: Vec<&str> = names.iter().copied().filter(|n| *n != hub).collect();
    wait_size(&c, &rest, 4);
    for n in &rest {
        // Every live node answers; the dead hub may still be named, as lost.
        let out = stdout(&c.node(n).d.e("mesh send all version"));
        let mut lines = out.lines();
        assert!(lines.next().is_some_and(|l| l.ends_with(&version)), "{out}");
        for l in lines {
            assert!(l.starts_with(&format!("E: {hub}: left the mesh")), "{out}");
        }
    }
}

/// `mesh list` back into (node, peers).
fn parse_list(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix(" |--") {
            Some(p) => out.last_mut().unwrap().1.push(p.to_string()),
            None => out.push((line.to_string(), Vec::new())),
        }
    }
    out
}

#[test]
fn wrong_key_and_other_context_are_refused() {
    let mut c = Cluster::new();
    c.start(0, "n1", &["-degree", "3"]);
    c.start(1, "n2", &["-degree", "3"]);
    wait_size(&c, &["n1", "n2"], 2);
    let wrong = c.key("b.key");
    c.start(
        2,
        "badkey",
        &["-degree", "3", "-meshkey", wrong.to_str().unwrap()],
    );
    c.start(3, "other", &["-degree", "3", "-context", "elsewhere"]);

    // Their broadcasts are heard and ignored, and the refusal is logged.
    let n1 = &c.node("n1").d;
    wait_for(
        "n1 to log the wrong key and the other context",
        FORM,
        || {
            let log = n1.log_text();
            (log.contains("bad MAC (different mesh key?)")
                && log.contains("context `elsewhere` is not ours (`minimega`)"))
            .then_some(())
        },
    );

    // Dialing: the wrong key fails authentication, on both sides.
    let out = c.node("badkey").d.e(&format!("mesh dial {}", c.addr("n1")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("authentication failed"),
        "{}",
        stdout(&out)
    );
    wait_for("n1 to log the failed authentication", FORM, || {
        n1.log_text()
            .contains(&format!(
                "refused mesh connection from {}",
                c.addr("badkey")
            ))
            .then_some(())
    });
    // The other context is refused with its reason.
    let out = c.node("other").d.e(&format!("mesh dial {}", c.addr("n1")));
    assert_eq!(
        stdout(&out),
        format!(
            "E: {}:{PORT}: refused: context `elsewhere` is not ours (`minimega`)",
            c.addr("n1")
        )
    );
    assert!(n1.log_text().contains("refused mesh link from other"));

    for n in ["n1", "n2"] {
        assert_eq!(c.node(n).d.ok("mesh list all"), "n[1-2]", "on {n}");
    }
    assert_eq!(mesh_size(c.node("badkey")), 1);
    assert_eq!(mesh_size(c.node("other")), 1);

    // A daemon with no key file at all starts, works alone, and says why.
    let lonely = c.start(
        4,
        "nokey",
        &["-meshkey", "/nonexistent/mesh.key", "-degree", "3"],
    );
    let d = &c.members[lonely].d;
    assert_eq!(d.ok("mesh list all"), "nokey");
    let out = d.e(&format!("mesh dial {}", c.addr("n1")));
    assert_eq!(
        stdout(&out),
        "E: the mesh is disabled: cannot read mesh key /nonexistent/mesh.key: No such file or directory (os error 2)"
    );
    assert!(d
        .log_text()
        .contains("mesh disabled until a key is readable"));
}

#[test]
fn a_lost_node_is_an_error_row_and_is_dropped() {
    let names = ["n1", "n2", "n3", "n4", "n5"];
    let mut c = full_mesh(&names);
    let left = watch_signals(&c.node("n1").bus.address, "PeerLeft");
    let version = format!("minimega {}", env!("CARGO_PKG_VERSION"));

    // Killed: the kernel closes its sockets. `mesh send all` answers for
    // the three live nodes and gives the lost one an error row.
    c.members[4].d.crash();
    let started = Instant::now();
    let out = c.node("n1").d.e("mesh send all version");
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("n[2-4]: {version}").as_str()),
        "{text}"
    );
    let err = lines.next().unwrap_or_default();
    assert!(err.starts_with("E: n5: "), "{text}");
    assert_eq!(lines.next(), None, "{text}");
    // Named explicitly, the lost node is an error row as well.
    let text = stdout(&c.node("n1").d.e("mesh send n[2-5] version"));
    assert!(
        text.starts_with(&format!("n[2-4]: {version}\nE: n5: ")),
        "{text}"
    );

    // Cut off: no close, only silence until the heartbeats stop.
    c.lan.unplug(3);
    let out = c.node("n1").d.e("mesh send n[2-4] version");
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("n[2-3]: {version}\nE: n4: ")),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "mesh send must not hang"
    );
    wait_size(&c, &["n1", "n2", "n3"], 3);
    let n1 = &c.node("n1").d;
    // Lost nodes stop being named after three announcement periods.
    let want = format!("n[2-3]: {version}");
    wait_for("`mesh send all` to forget the lost nodes", FORM, || {
        let out = n1.e("mesh send all version");
        (out.status.success() && stdout(&out) == want).then_some(())
    });
    assert_eq!(n1.ok("mesh list all"), "n[1-3]");
    let mut gone: Vec<String> = (0..2).map(|_| left.recv_timeout(FORM).unwrap()).collect();
    gone.sort();
    assert_eq!(gone, ["n4", "n5"]);
}

/// Frames of each kind `m` sent since it started, from `mesh stats`.
fn frames_out(m: &Member) -> BTreeMap<String, u64> {
    let text = m.d.ok(".annotate false .csv true mesh stats");
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        head.iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} column in\n{text}"))
    };
    let (kind, out) = (col("kind"), col("frames out"));
    let mut by_kind = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        *by_kind.entry(f[kind].to_string()).or_default() += f[out].parse::<u64>().unwrap();
    }
    by_kind
}

#[test]
fn sixteen_daemons_at_degree_10_form_one_mesh_and_idle_quietly() {
    const DEGREE: usize = 10;
    let names: Vec<String> = (1..=16).map(|i| format!("n{i}")).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let n = all.len();
    let mut c = Cluster::new();
    // Discovery by each interface's broadcast address, on a LAN without a
    // default route (where 255.255.255.255 is "Network is unreachable").
    c.every_interface = true;
    for (i, name) in all.iter().enumerate() {
        c.start(i, name, &["-degree", &DEGREE.to_string()]);
    }
    let routes = Command::new("ip")
        .args(["-n", &c.members[0].ns, "route", "show", "default"])
        .output()
        .unwrap();
    assert_eq!(stdout(&routes), "", "the LAN must have no default route");
    let formed = Instant::now();
    wait_size(&c, &all, n);
    eprintln!(
        "16 daemons at degree {DEGREE}: one mesh {:?} after the last started",
        formed.elapsed()
    );

    // Formation over: every node has its degree and all see the same mesh.
    let lists = || -> Vec<String> { c.members.iter().map(|m| m.d.ok("mesh list")).collect() };
    let deadline = Instant::now() + FORM;
    let settled = loop {
        let l = lists();
        let adj = parse_list(&l[0]);
        let agree = l.iter().all(|x| *x == l[0]);
        let short: Vec<_> = adj.iter().filter(|(_, p)| p.len() < DEGREE).collect();
        if agree && adj.len() == n && short.is_empty() {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "no agreement on a mesh where every node has its degree after {FORM:?}: \
             views agree: {agree}; short of links: {short:?}\n{}",
            l[0]
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let links = parse_list(&settled[0])
        .iter()
        .map(|(_, p)| p.len())
        .sum::<usize>()
        / 2;

    // Idle for 10 s: the frames every node sends, and its `mesh list` read
    // twice 5 s apart.
    let started = Instant::now();
    let before: Vec<_> = c.members.iter().map(frames_out).collect();
    let first = lists();
    std::thread::sleep(Duration::from_secs(5).saturating_sub(started.elapsed()));
    let second = lists();
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    let after: Vec<_> = c.members.iter().map(frames_out).collect();
    let window = started.elapsed().as_secs_f64();
    for (i, m) in c.members.iter().enumerate() {
        assert_eq!(
            first[i], second[i],
            "mesh list of {} changed while idle",
            m.d.name
        );
    }
    assert_eq!(first[0], settled[0], "the mesh changed while idle");
    let mut idle: BTreeMap<String, u64> = BTreeMap::new();
    for (b, a) in before.iter().zip(&after) {
        for (kind, frames) in a {
            *idle.entry(kind.clone()).or_default() += frames - b.get(kind).copied().unwrap_or(0);
        }
    }
    let total: u64 = idle.values().sum();

    // The design's bound: an idle link sends a heartbeat each way once per
    // HEARTBEAT; each node refreshes its announcement every 0.8-1 -msa (2 s
    // here), and a refresh goes down its shortest-path tree, one frame to
    // each other node. Nothing else moves.
    let heartbeat = minimega::mesh::HEARTBEAT.as_secs_f64();
    let msa = 2.0;
    let per_link = (window / heartbeat).floor() + 1.0;
    let refreshes = (window / (0.8 * msa)).floor() + 1.0;
    let bound = 2.0 * links as f64 * per_link + (n * (n - 1)) as f64 * refreshes;
    eprintln!(
        "idle {window:.1} s, {n} nodes, {links} links: {total} frames sent ({idle:?}); bound \
         {bound:.0} = 2 x {links} links x {per_link} heartbeats + {n} x {} nodes x {refreshes} refreshes",
        n - 1
    );
    assert!(
        (total as f64) <= bound,
        "{total} idle frames > {bound:.0}: {idle:?}"
    );
    for kind in ["hello", "confirm", "accept", "refuse", "bye"] {
        assert_eq!(
            idle.get(kind).copied().unwrap_or(0),
            0,
            "links churned: {idle:?}"
        );
    }

    // And the mesh does its work: every node answers from the far end.
    let out = c.node("n16").d.ok(".columns name mesh send all host");
    assert_eq!(out.lines().count(), n, "{out}");
}

#[path = "mesh/namespaces.rs"]
mod namespaces;
