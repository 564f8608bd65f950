//! minimega-format compatibility scripts: each `tests/compat/NAME.mm` runs
//! line by line in ONE session against a fresh daemon (after the prolog
//! `.annotate false`, as minimega's own tests do), and the transcript —
//! each command echoed after `## `, then its output; comments and blank
//! lines echoed — must equal `tests/compat/NAME.want`.
//!
//! `MM_COMPAT_BLESS=1` rewrites the .want files from the actual output
//! (review the diff before committing).

mod common;

use common::{Bus, Daemon};
use minimega::config::Bus as BusAddr;
use minimega::dbus::client::Client;
use std::path::{Path, PathBuf};

fn transcript(client: &Client, rt: &tokio::runtime::Runtime, script: &str) -> String {
    let mut out = String::new();
    rt.block_on(client.exec(".annotate false")).unwrap();
    for line in script.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            out.push('\n');
            continue;
        }
        out.push_str(&format!("## {trimmed}\n"));
        if trimmed.starts_with('#') {
            continue;
        }
        let reply = rt.block_on(client.exec(trimmed)).unwrap();
        if !reply.text.is_empty() {
            out.push_str(&reply.text);
            out.push('\n');
        }
    }
    out
}

fn run_script(path: &Path) -> Result<(), String> {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt
        .block_on(Client::connect(&BusAddr::Address(bus.address.clone())))
        .map_err(|e| e.to_string())?;
    let script = std::fs::read_to_string(path).unwrap();
    let got = transcript(&client, &rt, &script);
    let want_path = path.with_extension("want");
    if std::env::var_os("MM_COMPAT_BLESS").is_some() {
        std::fs::write(&want_path, &got).unwrap();
        return Ok(());
    }
    let want = std::fs::read_to_string(&want_path).unwrap_or_default();
    drop(d);
    if got == want {
        return Ok(());
    }
    let got_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{}.got",
        path.file_stem().unwrap().to_string_lossy()
    ));
    std::fs::write(&got_path, &got).unwrap();
    let diff = std::process::Command::new("diff")
        .args([
            "-u",
            want_path.to_str().unwrap(),
            got_path.to_str().unwrap(),
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    Err(format!(
        "{} differs from its .want:\n{diff}",
        path.display()
    ))
}

#[test]
fn compat_scripts() {
    let dir = common::project_root().join("tests/compat");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mm"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty(), "no scripts in {}", dir.display());
    let failures: Vec<String> = scripts.iter().filter_map(|p| run_script(p).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
