//! The documentation against the program: every flag in minimega(1), every
//! config key in minimega.toml(5) and in the shipped config with its true
//! default, the generated pages and completions as `gendoc` writes them,
//! all pages lint-clean, and one version everywhere. Fast: no package build.

mod common;

use clap::CommandFactory;
use minimega::config::{parse_file, Config, FileConfig, Flags};
use std::path::Path;
use std::process::Command;

fn read(rel: &str) -> String {
    std::fs::read_to_string(common::project_root().join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The field names serde's derive gives `T`, read through a deserializer
/// that only records what `deserialize_struct` is asked for.
fn serde_fields<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    use serde::de::{self, Visitor};

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Stop {
            Stop
        }
    }
    struct Probe<'a>(&'a mut Vec<&'static str>);
    impl<'de> de::Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.extend_from_slice(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields = Vec::new();
    let _ = T::deserialize(Probe(&mut fields));
    assert!(!fields.is_empty(), "no fields found");
    fields
}

/// The options a page documents: the first word of each `.TP` tag line in
/// its OPTIONS section (`.BI \-base " dir"` gives `base`).
fn documented_options(page: &str) -> Vec<String> {
    let opts = section(page, "OPTIONS");
    let lines: Vec<&str> = opts.lines().collect();
    let mut out = Vec::new();
    for w in lines.windows(2) {
        if w[0] != ".TP" {
            continue;
        }
        let tag = w[1]
            .split_once(' ')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        for part in tag.split(", ") {
            let name = part
                .trim_matches(|c| c == '"' || c == ' ')
                .trim_start_matches("\\-")
                .split(|c: char| !(c.is_ascii_alphanumeric()))
                .next()
                .unwrap_or_default();
            out.push(name.to_string());
        }
    }
    out
}

/// The text of section `name` of a man page, up to the next `.SH`.
fn section<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page
        .find(&format!(".SH {name}\n"))
        .unwrap_or_else(|| panic!("no section {name}"));
    let rest = &page[start + 4 + name.len()..];
    &rest[..rest.find("\n.SH ").unwrap_or(rest.len())]
}

#[test]
fn every_flag_is_in_minimega_1_and_nothing_else_is() {
    let page = read("man/minimega.1");
    let documented = documented_options(&page);
    let cmd = Flags::command();
    let mut flags: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(String::from))
        .collect();
    let mut shorts: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_short().map(String::from))
        .collect();
    // clap adds -help/-h itself.
    flags.push("help".into());
    shorts.push("h".into());
    for f in flags.iter().chain(&shorts) {
        assert!(documented.contains(f), "minimega(1) does not document -{f}");
    }
    for d in &documented {
        assert!(
            flags.contains(d) || shorts.contains(d),
            "minimega(1) documents -{d}, which is not a flag"
        );
    }
}

#[test]
fn every_config_key_is_in_minimega_toml_5_and_the_shipped_file() {
    let page = read("man/minimega.toml.5");
    let keys_section = section(&page, "KEYS");
    let shipped = read("conf/minimega.toml");
    for key in serde_fields::<FileConfig>() {
        let roff_key = key.replace('-', "\\-");
        // serde lists aliases too; the page names them under their key.
        if keys_section.contains(&format!(".B {roff_key}\nis accepted as another spelling")) {
            continue;
        }
        assert!(
            keys_section.contains(&format!(".TP\n.BR {roff_key} ")),
            "minimega.toml(5) does not document `{key}`"
        );
        let lines = shipped
            .lines()
            .filter(|l| l.starts_with(&format!("#{key} = ")))
            .count();
        assert_eq!(lines, 1, "conf/minimega.toml: want one `#{key} = ` line");
    }
}

#[test]
fn the_shipped_config_shows_the_true_defaults() {
    let shipped = read("conf/minimega.toml");
    // As installed, everything is commented out: the same as no file.
    assert!(parse_file(&shipped).is_ok());
    let uncommented: String = shipped
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| l.contains(" = ") && !l.starts_with(' '))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = parse_file(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    let flags = Flags::default();
    let mut with: Config = Config::resolve(&flags, &file).unwrap();
    let without = Config::resolve(&flags, &FileConfig::default()).unwrap();
    // These depend on the machine and on systemd, or have no value by
    // default: the file shows an example there, and says so.
    assert!(with.logfile.is_some() && without.logfile.is_none());
    assert!(with.broadcast.is_some() && without.broadcast.is_none());
    assert!(with.vnc_addr.is_some() && without.vnc_addr.is_none());
    assert!(with.vnc_ports.is_some() && without.vnc_ports.is_none());
    with.base = without.base.clone();
    with.base_chosen = without.base_chosen;
    with.filepath = without.filepath.clone();
    with.hostname = without.hostname.clone();
    with.logfile = None;
    with.broadcast = None;
    with.vnc_addr = None;
    with.vnc_ports = None;
    assert_eq!(format!("{with:?}"), format!("{without:?}"));
}

/// Runs the built `gendoc` into a scratch directory.
fn generated() -> common::Scratch {
    let dir = common::Scratch::new("gendoc");
    let out = Command::new(env!("CARGO_BIN_EXE_gendoc"))
        .arg(&dir.path)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn gendoc_writes_the_command_page_from_the_command_table() {
    let dir = generated();
    let page = std::fs::read_to_string(dir.path.join("man/minimega-commands.7")).unwrap();
    let engine = minimega::cli::engine();
    assert_eq!(
        page,
        minimega::doc::commands_page(&engine, minimega::VERSION, "2023-11-14")
    );
    for (name, _) in engine.help_index() {
        let head = format!(".SS {}\n", minimega::doc::roff::arg(&name, true));
        assert!(page.contains(&head), "minimega-commands(7) lacks `{name}`");
    }
    let bash = dir.path.join("completions/minimega.bash");
    let out = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["_minimega", "minimega.fish"] {
        let text = std::fs::read_to_string(dir.path.join("completions").join(f)).unwrap();
        assert!(text.contains("meshkey"), "{f} lacks the flags");
    }
}

fn lint(page: &Path) {
    let out = Command::new("mandoc")
        .args(["-T", "lint"])
        .arg(page)
        .output()
        .expect("mandoc (scripts/deps.sh installs it)");
    let msgs =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && msgs.is_empty(), "mandoc: {msgs}");
    let out = Command::new("groff")
        .args(["-ww", "-z", "-man"])
        .arg(page)
        .output()
        .unwrap();
    let msgs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && msgs.is_empty(), "groff: {msgs}");
    // And man itself, as a user reads it.
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_STDERR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "man -l {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.len() > 500);
}

#[test]
fn every_man_page_is_lint_clean() {
    let root = common::project_root();
    for p in [
        "man/minimega.1",
        "man/minimega.toml.5",
        "man/minimega-dbus.7",
        "man/minimega-web.8",
    ] {
        lint(&root.join(p));
    }
    let dir = generated();
    lint(&dir.path.join("man/minimega-commands.7"));
}

#[test]
fn one_version_everywhere() {
    let v = env!("CARGO_PKG_VERSION");
    let changelog = read("debian/changelog");
    assert!(
        changelog.starts_with(&format!("minimega ({v}) ")),
        "debian/changelog's first entry is not {v}"
    );
    let spec = read("rpm/minimega.spec");
    assert!(
        spec.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Version:", v]),
        "rpm/minimega.spec's Version is not {v}"
    );
    for p in [
        "man/minimega.1",
        "man/minimega.toml.5",
        "man/minimega-dbus.7",
        "man/minimega-web.8",
    ] {
        assert!(
            read(p)
                .lines()
                .next()
                .unwrap()
                .contains(&format!("\"minimega {v}\"")),
            "{p}: .TH does not say minimega {v}"
        );
    }
}
