//! The house rule, checked: each top-level room of `src/` (a folder, or a
//! file beside lib.rs) imports only rooms of a lower layer. Read from the
//! sources themselves, test modules included (a room's tests compile with
//! it), comments left out. A failure names the file, the line and the
//! import, and the two layers.
//!
//! The layers, bottom up (README, "Architecture"):
//!
//! 1. the language and small shared helpers
//! 2. the VM core
//! 3. mesh, deploy, shell, namespaces
//! 4. containers; networks, disks, the plumber, files, routers, VNC and
//!    serial consoles
//! 5. cc
//! 6. the node
//! 7. the command tables
//! 8. the front doors and the daemon
//!
//! Inside a layer a room may use one on a lower sub-rank (e.g. `base`
//! uses `users`), never one beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every room and its rank; a room may import only rooms of a lower rank.
const RANKS: &[(&str, u32)] = &[
    // 1. the language, config and small shared helpers
    ("timefmt", 100),
    ("paths", 100),
    ("event", 100),
    ("users", 100),
    ("hostinfo", 100),
    ("command", 100),
    ("systemd", 100),
    ("fault", 100),
    ("ninep", 100),
    ("durable", 105),
    ("base", 110),
    ("config", 110),
    ("doc", 120),
    // pure rooms of their own: the screens' protocols and formats
    ("console", 150),
    // 2. the VM core
    ("vm", 200),
    // 3.
    ("mesh", 300),
    ("deploy", 300),
    ("shell", 300),
    ("ns", 300),
    ("optimize", 300),
    // 4. containers first: the serial consoles relay theirs
    ("container", 390),
    ("net", 400),
    ("disk", 400),
    ("plumb", 400),
    ("files", 400),
    ("router", 400),
    ("vnc", 400),
    ("serial", 400),
    // 5.
    ("cc", 500),
    // 6. the node: the services, hook registration, adapters
    ("node", 600),
    // 7. the command tables over the node
    ("cli", 700),
    // 8. the front doors, then the thin client, then the daemon
    ("dbus", 800),
    ("sock", 800),
    // the web console: a front door over the D-Bus client and the command socket
    ("web", 805),
    ("client", 810),
    ("daemon", 820),
    // test-only: property tests over the whole engine
    ("proptests", 900),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The room a file under src/ belongs to (`None`: lib.rs, main.rs, bin/).
fn room_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    if first == "bin" || first == "lib.rs" || first == "main.rs" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The line without its comment (`//`, `///`, `//!`), outside strings.
fn code_of(line: &str) -> &str {
    let mut in_str = false;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '"' if prev != '\\' => in_str = !in_str,
            '/' if !in_str && prev == '/' => return &line[..i - 1],
            _ => {}
        }
        prev = if prev == '\\' && c == '\\' { ' ' } else { c };
    }
    line
}

/// Every room a line names: `crate::room`, and the rooms of a braced
/// `use crate::{a, b::c}` group (the group may span lines: `pending`
/// carries an open group over).
fn rooms_named(code: &str, pending: &mut bool, out: &mut Vec<String>) {
    let mut rest = code;
    if *pending {
        let end = rest.find('}');
        for part in rest[..end.unwrap_or(rest.len())].split(',') {
            push_first_word(part, out);
        }
        match end {
            Some(e) => {
                *pending = false;
                rest = &rest[e..];
            }
            None => return,
        }
    }
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `minimega_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            match group.find('}') {
                Some(e) => {
                    for part in group[..e].split(',') {
                        push_first_word(part, out);
                    }
                }
                None => {
                    for part in group.split(',') {
                        push_first_word(part, out);
                    }
                    *pending = true;
                    return;
                }
            }
        } else {
            push_first_word(rest, out);
        }
    }
}

fn push_first_word(s: &str, out: &mut Vec<String>) {
    let w: String = s
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if !w.is_empty() {
        out.push(w);
    }
}

/// Every import that goes to the same or a higher rank, as one line each.
fn violations(root: &Path, ranks: &BTreeMap<&str, u32>) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for path in files {
        let rel = path.strip_prefix(root).unwrap();
        let Some(room) = room_of(rel) else { continue };
        let Some(&mine) = ranks.get(room.as_str()) else {
            bad.push(format!(
                "src/{}: room `{room}` has no layer: add it to RANKS in tests/layers.rs (and to the README's layers)",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let mut pending = false;
        for (n, line) in text.lines().enumerate() {
            let mut named = Vec::new();
            rooms_named(code_of(line), &mut pending, &mut named);
            for other in named {
                if other == room {
                    continue;
                }
                let Some(&theirs) = ranks.get(other.as_str()) else {
                    continue; // an item of the crate root (VERSION), not a room
                };
                if theirs >= mine {
                    bad.push(format!(
                        "src/{}:{}: `{}` (layer {}) imports `{other}` (layer {}): {}",
                        rel.display(),
                        n + 1,
                        room,
                        mine,
                        theirs,
                        line.trim()
                    ));
                }
            }
        }
    }
    bad
}

#[test]
fn every_room_imports_only_lower_layers() {
    let ranks: BTreeMap<&str, u32> = RANKS.iter().copied().collect();
    let bad = violations(&src(), &ranks);
    assert!(
        bad.is_empty(),
        "{} import(s) break the layering (a room may import only rooms of a lower layer; \
         call upward through a trait the lower room owns):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    // A tree of two rooms where the lower one reaches up, in every form an
    // import takes; the check must name each.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("low")).unwrap();
    std::fs::write(root.join("high.rs"), "use crate::low::X;\n").unwrap();
    std::fs::write(
        root.join("low/mod.rs"),
        "// crate::high in a comment is fine\nuse crate::high::Y;\nuse crate::{\n    high::Z,\n};\nfn f() { crate::high::g(); }\n",
    )
    .unwrap();
    let ranks = BTreeMap::from([("low", 1), ("high", 2)]);
    let bad = violations(root, &ranks);
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(bad[0].starts_with("src/low/mod.rs:2: `low` (layer 1) imports `high` (layer 2)"));
    assert!(bad[1].starts_with("src/low/mod.rs:4:"));
    assert!(bad[2].starts_with("src/low/mod.rs:6:"));
}
