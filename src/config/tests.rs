use super::*;
use clap::Parser;

fn parse(args: &[&str]) -> Flags {
    let argv = normalize_args(
        std::iter::once("minimega")
            .chain(args.iter().copied())
            .map(String::from),
    );
    Flags::try_parse_from(argv).unwrap()
}

#[test]
fn go_style_equals_gnu_style() {
    let a = parse(&["-base", "/x", "-port", "9001", "-degree=3"]);
    let b = parse(&["--base", "/x", "--port=9001", "--degree", "3"]);
    assert_eq!(a.base, b.base);
    assert_eq!(a.port, Some(9001));
    assert_eq!(a.degree, b.degree);
    assert_eq!(a.degree, Some(3));
}

#[test]
fn go_booleans() {
    assert_eq!(parse(&["-force"]).force, Some(true));
    assert_eq!(parse(&["-force=false"]).force, Some(false));
    assert_eq!(parse(&["--nostdin=true"]).nostdin, Some(true));
    assert!(parse(&["-version"]).show_version);
}

#[test]
fn exec_takes_the_rest_as_the_command() {
    let f = parse(&["-base", "/b", "-e", "vm", "config", "-x", "--y"]);
    assert!(f.exec);
    assert_eq!(f.command, ["vm", "config", "-x", "--y"]);
    let f = parse(&["-e", ".json", "true", "host"]);
    assert_eq!(f.command, [".json", "true", "host"]);
}

#[test]
fn unknown_flags_are_errors() {
    let argv = normalize_args(["minimega", "-bogus", "1"].map(String::from));
    assert!(Flags::try_parse_from(argv).is_err());
}

#[test]
fn flags_override_the_file_and_defaults_fill_the_rest() {
    let file =
        parse_file("port = 7000\ncontext = \"lab\"\ndegree = 2\nmesh-timeout = 3\n").unwrap();
    let flags = parse(&["-port", "7100", "-hostname", "h1"]);
    let c = Config::resolve(&flags, &file).unwrap();
    assert_eq!((c.port, c.context.as_str(), c.degree), (7100, "lab", 2));
    assert_eq!(c.mesh_timeout, Duration::from_secs(3));
    assert_eq!(c.msa, Duration::from_secs(10));
    assert_eq!(c.broadcast, None);
    assert!(c.recover && !c.force);
}

#[test]
fn bad_values_name_the_problem() {
    assert!(parse_file("bogus = 1").unwrap_err().contains("bogus"));
    // minimega's -msa is whole seconds, so a bare number is one; a
    // number with no known unit is not.
    let e = Config::resolve(&parse(&["-msa", "10x"]), &FileConfig::default()).unwrap_err();
    assert_eq!(e.to_string(), "invalid msa `10x`: unknown unit `x`");
    let e = Config::resolve(&parse(&["-msa", "1.5"]), &FileConfig::default()).unwrap_err();
    assert_eq!(e.to_string(), "invalid msa `1.5`: missing unit (e.g. 10s)");
    let e = Config::resolve(&parse(&["-level", "loud"]), &FileConfig::default()).unwrap_err();
    assert!(e.to_string().contains("log level"), "{e}");
    let e = Config::resolve(&parse(&["-overcommit=-1"]), &FileConfig::default());
    assert!(e.unwrap_err().to_string().contains("overcommit ratio"));
    let c = Config::resolve(
        &parse(&["-hostname", "h"]),
        &parse_file("overcommit = 2.0").unwrap(),
    );
    assert_eq!(c.unwrap().overcommit, 2.0);
}

#[test]
fn clients_look_for_the_socket_where_a_daemon_would_be() {
    let chosen = Config::resolve(
        &parse(&["-base", "/x", "-hostname", "h"]),
        &FileConfig::default(),
    )
    .unwrap();
    assert_eq!(chosen.socket_paths(), [PathBuf::from("/x/minimega")]);
    let default = Config::resolve(&parse(&["-hostname", "h"]), &FileConfig::default()).unwrap();
    let paths = default.socket_paths();
    assert_eq!(paths[0], default.base.join("minimega"));
    assert!(paths.contains(&PathBuf::from("/run/minimega/minimega")));
    assert!(paths.contains(&PathBuf::from("/tmp/minimega/minimega")));
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.starts_with("/run/minimega"))
            .count(),
        1
    );
}

/// Every flag of minimega 3.1.0, as phenix and sites start it.
#[test]
fn every_flag_of_minimega_is_accepted() {
    let f = parse(&[
        "-base=/b",
        "-filepath=/b/f",
        "-degree=2",
        "-msa=20",
        "-broadcast=10.0.0.255",
        "-port=9001",
        "-context=sceptre",
        "-vlanrange=200-300",
        "-force",
        "-recover=false",
        "-nostdin",
        "-cli=false",
        "-panic",
        "-cgroup=/sys/fs/cgroup",
        "-headnode=head",
        "-hashfiles=true",
        "-abssnapshot=true",
        "-level=fatal",
        "-v=false",
        "-verbose=false",
        "-logfile=/dev/null",
        "-hostname=h",
    ]);
    let c = Config::resolve(&f, &FileConfig::default()).unwrap();
    assert_eq!(c.msa, Duration::from_secs(20));
    assert_eq!(c.vlan_range, (200, 300));
    assert!(c.abs_snapshot && c.hash_files && c.force && !c.recover && c.nostdin);
    assert_eq!(c.headnode.as_deref(), Some("head"));
    assert!(!c.log_stderr);
    assert_eq!(c.level, tracing::Level::ERROR);
    assert_eq!(c.no_effect.len(), 3, "{:?}", c.no_effect);
    assert!(c.no_effect.iter().any(|m| m.starts_with("-cgroup")));
    let args: std::collections::BTreeMap<_, _> = c.args().into_iter().collect();
    for (k, v) in [
        ("msa", "20"),
        ("vlanrange", "200-300"),
        ("abssnapshot", "true"),
        ("hashfiles", "true"),
        ("headnode", "head"),
        ("panic", "true"),
        ("v", "false"),
        ("verbose", "false"),
        ("cgroup", "/sys/fs/cgroup"),
        ("filepath", "/b/f"),
    ] {
        assert_eq!(args[k], v, "args {k}");
    }
    // minimega's 26 flags are all in `args`.
    for k in [
        "abssnapshot",
        "attach",
        "base",
        "broadcast",
        "cgroup",
        "cli",
        "context",
        "degree",
        "e",
        "filepath",
        "force",
        "hashfiles",
        "headnode",
        "level",
        "logfile",
        "msa",
        "namespace",
        "nostdin",
        "panic",
        "pipe",
        "port",
        "recover",
        "v",
        "verbose",
        "version",
        "vlanrange",
    ] {
        assert!(args.contains_key(k), "args lacks {k}");
    }
    // -cli alone, and -e/-attach/-namespace/-pipe keep working.
    assert_eq!(parse(&["-cli"]).cli, Some(true));
    assert_eq!(parse(&["-cli=false"]).cli, Some(false));
    let f = parse(&["-namespace", "exp", "-e", "vm", "info"]);
    assert!(f.exec && f.namespace.as_deref() == Some("exp"));
    assert_eq!(f.command, ["vm", "info"]);
    assert!(parse(&["-attach", "-namespace=exp"]).attach);
    assert_eq!(parse(&["-pipe", "p1"]).pipe.as_deref(), Some("p1"));
    // -v alone is true; the default is true.
    assert_eq!(parse(&["-v"]).v, Some(true));
    let c = Config::resolve(&parse(&["-hostname=h"]), &FileConfig::default()).unwrap();
    assert!(c.log_stderr && c.no_effect.is_empty());
    assert_eq!(c.vlan_range, (101, 4096));
    // -headnode naming this node is ignored, as minimega ignores it.
    let c = Config::resolve(
        &parse(&["-hostname=h", "-headnode=h"]),
        &FileConfig::default(),
    );
    assert_eq!(c.unwrap().headnode, None);
}

#[test]
fn vlan_ranges_are_checked_as_minimega_checks_them() {
    assert_eq!(parse_vlan_range("101-4096"), Ok((101, 4096)));
    assert_eq!(
        parse_vlan_range("5-5"),
        Err("expected min < max for VLAN range")
    );
    assert_eq!(
        parse_vlan_range("a-5"),
        Err("expected integer values for VLAN range")
    );
    assert!(parse_vlan_range("101").is_err());
    assert!(parse_vlan_range("0-10").is_err());
    assert!(parse_vlan_range("1-5000").is_err());
    let e = Config::resolve(&parse(&["-vlanrange=9-3"]), &FileConfig::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid VLAN range `9-3`: expected min < max for VLAN range"
    );
}

#[test]
fn vnc_address_and_ports() {
    let none = FileConfig::default();
    let c = Config::resolve(&parse(&["-hostname", "h"]), &none).unwrap();
    assert_eq!((c.vnc_addr, c.vnc_ports), (None, None));
    let file = parse_file("vncaddr = \"10.0.0.1\"\nvncports = \"5900-5999\"\n").unwrap();
    let c = Config::resolve(&parse(&["-hostname", "h"]), &file).unwrap();
    assert_eq!(c.vnc_addr, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(c.vnc_ports, Some((5900, 5999)));
    let flags = parse(&["-hostname", "h", "-vncaddr", "::1", "-vncports=6000"]);
    let c = Config::resolve(&flags, &file).unwrap();
    assert_eq!(c.vnc_addr, Some("::1".parse().unwrap()));
    assert_eq!(c.vnc_ports, Some((6000, 6000)));
    let bad = |f: &[&str]| Config::resolve(&parse(f), &none).unwrap_err().to_string();
    assert_eq!(
        bad(&["-vncports", "6000-5900"]),
        "invalid vncports `6000-5900`: the first port is above the last"
    );
    assert!(bad(&["-vncports", "0-10"]).contains("not a port"));
    assert!(bad(&["-vncaddr", "anywhere"]).contains("not an IP address"));
    let f = parse(&["-console", "web1", "-serial", "1"]);
    assert_eq!((f.console.as_deref(), f.serial), (Some("web1"), Some(1)));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
    assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(parse_duration("5x").is_err());
    assert!(parse_duration("99999999999999999999h").is_err());
    assert!(parse_duration("87600h1s").is_err());
    assert!(parse_duration("87600h").is_ok());
}
