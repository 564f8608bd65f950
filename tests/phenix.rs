//! phenix's and miniweb's command lines, wrapped as they wrap them
//! (`.record false namespace "NS" .columns "a","b" .filter X CMD`), sent
//! over the command socket to a daemon started with the flags phenix
//! starts minimega with; each answer compared field by field (Host,
//! Header, Tabular, Error, Data) with what minimega 3.1.0 answers, as
//! written by hand from its source (pkg/minicli/builtins.go, vm.go,
//! stats.go, iomeshage.go; see each assertion).

mod common;

use common::guest::VmGuard;
use common::ovs::Site;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// phenix's mmcli wrapping (util/mm/mmcli/command.go): filters prepended
/// in order (the last outermost), columns `%q`-quoted and joined by `,`,
/// then the namespace, then `.record false`.
fn phenix(ns: Option<&str>, columns: &[&str], filters: &[&str], cmd: &str) -> String {
    let mut line = cmd.to_string();
    for f in filters {
        line = format!(".filter {f} {line}");
    }
    if !columns.is_empty() {
        let cols: Vec<String> = columns.iter().map(|c| format!("{c:?}")).collect();
        line = format!(".columns {} {line}", cols.join(","));
    }
    if let Some(ns) = ns {
        line = format!("namespace {ns:?} {line}");
    }
    format!(".record false {line}")
}

/// The one response of a one-frame answer, without error.
fn resp(c: &mut Conn, line: &str) -> Value {
    let v = c.one(line);
    let r = v["Resp"][0].clone();
    assert_eq!(r["Error"], "", "`{line}`: {v}");
    assert_eq!(v["Status"], false, "never a status frame: {v}");
    r
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Whether Go's `time.ParseDuration` takes it (as phenix parses uptime).
fn go_duration(s: &str) -> bool {
    let mut rest = s;
    let mut any = false;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return false;
        }
        rest = &rest[n..];
        let u = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(*u) && !rest[u.len()..].starts_with('s'));
        let Some(u) = u else { return false };
        rest = &rest[u.len()..];
        any = true;
    }
    any
}

const UUID1: &str = "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc";

#[test]
fn phenix_and_miniweb_lines_get_minimegas_answers() {
    let site = Site::new("phenix");
    let bus = Bus::start();
    // The flags phenix's minimega unit passes (and every other flag of
    // minimega's that means something here).
    let d = Daemon::start_with(
        &bus,
        DaemonOpts {
            name: "node",
            netns: Some(site.netns.clone()),
            env: site.ovs().env(),
            ready_within: Duration::from_secs(60),
            extra: [
                "-vlanrange=200-300",
                "-cgroup=/sys/fs/cgroup",
                "-abssnapshot=true",
                "-hashfiles",
                "-panic",
                "-msa=10",
                "-context=minimega",
            ]
            .map(String::from)
            .to_vec(),
            ..DaemonOpts::default()
        },
    );
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let log = d.log_text();
    assert!(
        log.contains("flag has no effect here: -cgroup"),
        "logged once: {log}"
    );
    assert_eq!(log.matches("flag has no effect here: -cgroup").count(), 1);
    let mut c = Conn::to(&d);
    let files = d.base.join("files");
    std::fs::create_dir_all(&files).unwrap();

    // args: phenix reads filepath; the flags given show as given.
    let r = resp(&mut c, &phenix(None, &[], &[], "args"));
    let header = strings(&r["Header"]);
    let row = strings(&r["Tabular"][0]);
    let arg = |k: &str| row[header.iter().position(|h| h == k).unwrap()].clone();
    assert_eq!(arg("filepath"), files.to_str().unwrap());
    assert_eq!(arg("vlanrange"), "200-300");
    assert_eq!(arg("msa"), "10");
    assert_eq!(arg("abssnapshot"), "true");

    // The experiment, as phenix's minimega_script.tmpl writes it, read.
    let image = files.join("base.qcow2");
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("16M")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let data = files.join("data.qcow2");
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&data)
        .arg("16M")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // One image twice in one VM is refused, as minimega 3.1.0 refuses it
    // (namespace.go processVMDisks: `disk conflict: PATH`).
    assert_eq!(
        c.one(&format!("vm config disk {0} {0},virtio", image.display()))["Resp"][0]["Error"],
        format!("disk conflict: {}", image.display())
    );
    // vm2 boots a kernel: QEMU (under minimega 3.1.0 too, kvm.go passes
    // `-append` as given) refuses `-append` without `-kernel`.
    let (kernel, _) = common::guest::guest();
    let script = files.join("exp.mm");
    std::fs::write(
        &script,
        format!(
            "namespace EXP\nns queueing true\nvlans add LAN 210\nns add-host localhost\n\
             ## VM: vm1 ##\nclear vm config\nvm config vcpus 1\nvm config cpu qemu64\n\
             vm config memory 256\nvm config snapshot true\n\
             vm config disk {img},writeback\nvm config net LAN\n\
             vm config uuid {UUID1}\nvm config tags \"role\" \"web server\"\n\
             vm launch kvm vm1\n\
             ## VM: vm2 ##\nclear vm config\nvm config memory 256\n\
             vm config disk {img},virtio,writeback {data}\nvm config net LAN 100\n\
             vm config kernel {kernel}\nvm config append console=ttyS0 quiet\n\
             vm launch kvm vm2\n",
            img = image.display(),
            data = data.display(),
            kernel = kernel.display()
        ),
    )
    .unwrap();
    for v in c.run(&format!(".record false read {}", script.display())) {
        for r in v["Resp"].as_array().into_iter().flatten() {
            assert_eq!(r["Error"], "", "{v}");
        }
    }
    // `read` of a script starting with `namespace EXP` makes EXP active.
    c.one("clear namespace");
    let q = resp(&mut c, &phenix(Some("EXP"), &[], &[], "ns queue"));
    let names = q["Response"].as_str().unwrap();
    assert!(names.contains("Names: vm1"), "{names}");
    assert_eq!(
        c.one(&phenix(Some("EXP"), &[], &[], "vm launch"))["Resp"][0]["Error"],
        ""
    );

    // GetVMInfo (minimega.go:147): `host` is `hostname` by prefix (the
    // container column, N/A for KVM), the host itself is Response.Host.
    let cols = [
        "uuid", "host", "name", "state", "uptime", "vlan", "tap", "ip", "memory", "vcpus", "disks",
        "snapshot", "cdrom", "tags",
    ];
    let r = resp(
        &mut c,
        &phenix(Some("EXP"), &cols, &["name=vm1"], "vm info"),
    );
    assert_eq!(r["Host"], "node");
    assert_eq!(
        strings(&r["Header"]),
        [
            "uuid", "hostname", "name", "state", "uptime", "vlan", "tap", "ip", "memory", "vcpus",
            "disks", "snapshot", "cdrom", "tags"
        ]
    );
    let row = strings(&r["Tabular"][0]);
    assert_eq!(r["Tabular"].as_array().unwrap().len(), 1);
    assert_eq!(row[0], UUID1);
    assert_eq!(row[1], "N/A");
    assert_eq!(row[2], "vm1");
    assert_eq!(row[3], "BUILDING");
    assert!(go_duration(&row[4]), "uptime {}", row[4]);
    assert_eq!(row[5], "[LAN (210)]");
    assert!(
        row[6].starts_with("[mega_tap") && row[6].ends_with(']') && !row[6].contains(", "),
        "tap {}",
        row[6]
    );
    assert_eq!(row[7], "[]", "one NIC, no address yet");
    assert_eq!((row[8].as_str(), row[9].as_str()), ("256", "1"));
    assert_eq!(row[10], format!("{},writeback", image.display()));
    assert_eq!((row[11].as_str(), row[12].as_str()), ("true", ""));
    assert_eq!(row[13], r#"{"role":"web server"}"#);
    // phenix takes the first word of disks, then the path before `,`.
    let first = row[10].split_whitespace().next().unwrap();
    assert_eq!(first.split(',').next().unwrap(), image.to_str().unwrap());

    // Several items: lists `[a, b]`, disks space-separated without brackets.
    let r = resp(
        &mut c,
        &phenix(
            Some("EXP"),
            &[
                "vlan", "bridge", "mac", "ip", "ip6", "qos", "qinq", "bond", "disks", "append",
            ],
            &["name=vm2"],
            "vm info",
        ),
    );
    let row = strings(&r["Tabular"][0]);
    assert_eq!(row[0], "[LAN (210), 100]");
    assert_eq!(row[1], "[mega_bridge, mega_bridge]");
    assert!(
        row[2].starts_with('[') && row[2].matches(", ").count() == 1,
        "{}",
        row[2]
    );
    assert_eq!((row[3].as_str(), row[4].as_str()), ("[, ]", "[, ]"));
    assert_eq!(
        (row[5].as_str(), row[6].as_str(), row[7].as_str()),
        ("[]", "[]", "[]")
    );
    assert_eq!(
        row[8],
        format!("{},virtio,writeback {}", image.display(), data.display())
    );
    assert_eq!(row[9], "[console=ttyS0 quiet]");

    // GetVNCEndpoint (minimega.go:312) and miniweb's connect page.
    let r = resp(
        &mut c,
        &phenix(
            Some("EXP"),
            &["host", "vnc_port"],
            &["type=kvm", "name=vm1"],
            "vm info",
        ),
    );
    assert_eq!(strings(&r["Header"]), ["hostname", "vnc_port"]);
    let row = strings(&r["Tabular"][0]);
    assert_eq!(row[0], "N/A");
    assert!(row[1].parse::<u16>().is_ok(), "vnc_port {}", row[1]);
    let r = resp(
        &mut c,
        &phenix(
            Some("EXP"),
            &["host", "type", "vnc_port", "console_port"],
            &["name=\"vm1\""],
            "vm info",
        ),
    );
    assert_eq!(
        strings(&r["Header"]),
        ["hostname", "type", "vnc_port", "console_port"]
    );
    let row = strings(&r["Tabular"][0]);
    assert_eq!((row[1].as_str(), row[3].as_str()), ("kvm", "N/A"));

    // GetVMState (minimega.go:529).
    let r = resp(
        &mut c,
        &phenix(Some("EXP"), &["state"], &["name=vm1"], "vm info summary"),
    );
    assert_eq!(r["Header"], json!(["state"]));
    assert_eq!(r["Tabular"], json!([["BUILDING"]]));

    // An experiment with no VM: minimega's `vm info` has nil rows, so
    // `.columns` takes the names as given and nothing fails
    // (builtins.go:413-420, 349-351); the JSON says `null`.
    let r = resp(
        &mut c,
        &phenix(
            Some("EMPTY"),
            &["host", "vnc_port"],
            &["type=kvm", "name=vm1"],
            "vm info",
        ),
    );
    assert_eq!(r["Header"], json!(["host", "vnc_port"]));
    assert!(r["Tabular"].is_null(), "{r}");
    assert_eq!(r["Host"], "node");
    // A row-less list is `[]` and its columns are checked.
    let r = resp(
        &mut c,
        &phenix(Some("EXP"), &["interface", "path"], &[], "capture"),
    );
    assert_eq!(
        (&r["Header"], &r["Tabular"]),
        (&json!(["interface", "path"]), &json!([]))
    );
    let r = resp(
        &mut c,
        &phenix(Some("EXP"), &["id", "responses"], &["id=1"], "cc commands"),
    );
    assert_eq!(
        (&r["Header"], &r["Tabular"]),
        (&json!(["id", "responses"]), &json!([]))
    );
    let v = c.one(&phenix(Some("EXP"), &["host"], &[], "capture"));
    assert_eq!(v["Resp"][0]["Error"], "no such column `host`");
    // A filter that keeps nothing leaves `[]`.
    let r = resp(
        &mut c,
        &phenix(Some("EXP"), &[], &["name=nosuch"], "vm info"),
    );
    assert_eq!(r["Tabular"], json!([]));

    // `.filter host=` keeps or drops the whole answer by its host.
    let r = resp(
        &mut c,
        &phenix(Some("EXP"), &["name"], &["host=node"], "vm info"),
    );
    assert_eq!(r["Tabular"].as_array().unwrap().len(), 2);
    let v = c.one(&phenix(
        Some("EXP"),
        &["name"],
        &["host=elsewhere"],
        "vm info",
    ));
    assert_eq!(v["Resp"], json!([]), "{v}");

    // GetVLANs and vlans in a namespace from -vlanrange.
    let r = resp(&mut c, &phenix(Some("EXP"), &[], &[], "vlans"));
    assert_eq!(
        (&r["Header"], &r["Tabular"]),
        (&json!(["alias", "vlan"]), &json!([["LAN", "210"]]))
    );
    resp(
        &mut c,
        &phenix(Some("OTHER"), &[], &[], "vm config net auto"),
    );
    let r = resp(&mut c, &phenix(Some("OTHER"), &[], &[], "vlans"));
    assert_eq!(
        r["Tabular"],
        json!([["auto", "200"]]),
        "from -vlanrange 200-300"
    );

    // processNamespaceHosts (minimega.go:1599) and miniweb's hosts.json.
    let r = resp(&mut c, &phenix(Some("minimega"), &[], &[], "host"));
    assert_eq!(r["Host"], "node");
    let header = strings(&r["Header"]);
    let row = strings(&r["Tabular"][0]);
    let cell = |k: &str| {
        row[header
            .iter()
            .position(|h| h == k)
            .unwrap_or_else(|| panic!("no column {k}"))]
        .clone()
    };
    for k in [
        "cpus",
        "cpucommit",
        "memused",
        "memtotal",
        "memcommit",
        "vms",
        "netcommit",
        "vmlimit",
    ] {
        assert!(cell(k).parse::<i64>().is_ok(), "{k} = {}", cell(k));
    }
    assert_eq!(cell("vmlimit"), "-1", "no coschedule");
    assert_eq!(cell("load").split(' ').count(), 3);
    assert!(cell("rx").parse::<f64>().is_ok() && cell("tx").parse::<f64>().is_ok());
    assert!(go_duration(&cell("uptime")), "{}", cell("uptime"));
    assert_eq!(r["Data"]["Limit"], -1);
    assert_eq!(r["Data"]["Name"], "node");
    let v = resp(&mut c, ".record false host vmlimit");
    assert_eq!(v["Response"], "-1");

    // miniweb's vms/info.json: every column, tags a JSON object.
    let r = resp(
        &mut c,
        &phenix(
            Some("EXP"),
            &[],
            &["state!=error", "state!=quit"],
            "vm info",
        ),
    );
    let header = strings(&r["Header"]);
    assert_eq!(&header[..3], ["id", "name", "state"]);
    let tags = r["Tabular"][0][header.iter().position(|h| h == "tags").unwrap()]
        .as_str()
        .unwrap()
        .to_string();
    assert!(serde_json::from_str::<serde_json::Map<String, Value>>(&tags).is_ok());

    // miniweb's launch form: an empty config name is the current config.
    resp(
        &mut c,
        ".record false namespace \"WEB\" vm config memory 96",
    );
    let r = resp(
        &mut c,
        ".record false namespace \"WEB\" vm launch \"kvm\" \"web1\" \"\"",
    );
    assert_eq!(r["Error"], "", "{r}");
    let r = resp(
        &mut c,
        ".record false namespace \"WEB\" .columns memory .filter name=web1 vm info",
    );
    assert_eq!(r["Tabular"], json!([["96"]]));
    resp(&mut c, ".record false namespace \"WEB\" vm kill web1");
    resp(&mut c, ".record false namespace \"WEB\" vm flush");
    resp(&mut c, ".record false clear namespace WEB");

    // ClearNamespace of a namespace that never was: no error.
    let r = resp(&mut c, ".record false clear namespace __phenix__");
    assert_eq!(r["Host"], "node");

    // -hashfiles: file list's hash column; -abssnapshot: absolute backing.
    std::fs::write(files.join("hello.txt"), "hello").unwrap();
    let r = resp(
        &mut c,
        ".record false .columns name,size,hash .filter name=hello.txt file list",
    );
    assert_eq!(
        r["Tabular"],
        json!([["hello.txt", "5", "cbd8a7b341bd9b02"]])
    );
    resp(&mut c, ".record false disk snapshot base.qcow2 snap.qcow2");
    let r = resp(
        &mut c,
        ".record false .columns backingfile disk info snap.qcow2",
    );
    assert_eq!(r["Tabular"], json!([[image.to_str().unwrap()]]));

    // miniweb's /files/: file stream, 10 MiB per frame, Data base64.
    let big: Vec<u8> = (0..25u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(files.join("big.bin"), &big).unwrap();
    let frames = c.run(".record false file stream \"big.bin\"");
    assert_eq!(frames.len(), 3);
    assert_eq!(
        frames.iter().map(|f| f["More"] == true).collect::<Vec<_>>(),
        [true, true, false]
    );
    let mut got = Vec::new();
    for f in &frames {
        assert_eq!(f["Resp"][0]["Host"], "node");
        got.extend(b64(f["Resp"][0]["Data"].as_str().unwrap()));
    }
    assert!(got == big, "streamed bytes differ");
    std::fs::write(files.join("empty"), "").unwrap();
    let v = c.one(".record false file stream empty");
    assert!(v["Resp"].is_null(), "{v}");
    let v = c.one(".record false file stream nosuch");
    assert_eq!(v["Resp"][0]["Error"], "stream nosuch: file not found");

    c.one(&phenix(Some("EXP"), &[], &[], "vm kill all"));
    c.one("clear namespace all");
}

/// Standard base64 with padding, decoded (as Go's encoding/json gives
/// `[]byte`).
fn b64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|c| val(*c) as u32).collect();
        let n = v
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, x)| a | x << (18 - 6 * i));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}
