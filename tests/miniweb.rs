//! The stock miniweb (minimega 3.1.0's own web UI, Go) against this
//! daemon, over the command socket, as a site that keeps it runs it: its
//! JSON endpoints answer with what its pages read. Needs minimega's
//! source (it is built here by scripts/stock-miniweb.sh with Go 1.23):
//!
//!     MINIMEGA_STOCK_SRC=/path/to/minimega cargo test --release --test miniweb -- --ignored

mod common;

use common::browser::http;
use common::guest::{configure_guest, VmGuard};
use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn get_json(port: u16, path: &str, failures: &mut Vec<String>) -> Value {
    let (s, _, body) = http(port, "GET", path, &[], b"");
    let text = String::from_utf8_lossy(&body).to_string();
    if s != 200 {
        failures.push(format!("{path}: HTTP {s}: {text}"));
        return Value::Null;
    }
    match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            failures.push(format!("{path}: not JSON ({e}): {text}"));
            Value::Null
        }
    }
}

#[test]
#[ignore = "set MINIMEGA_STOCK_SRC to minimega 3.1.0's source (scripts/stock-miniweb.sh builds miniweb)"]
fn the_stock_miniweb_answers_against_this_daemon() {
    let src = PathBuf::from(std::env::var("MINIMEGA_STOCK_SRC").unwrap());
    let scratch = Scratch::new("miniweb");
    let bin = scratch.path.join("miniweb");
    let out = Command::new(project_root().join("scripts/stock-miniweb.sh"))
        .arg(&src)
        .arg(&bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "building miniweb: {}", stderr(&out));

    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    configure_guest(&d, "console=ttyS0");
    d.ok("vm launch kvm mw1");
    d.ok("vlans add web 101");

    let port = free_port();
    let mut web = Command::new(&bin)
        .args(["-addr", &format!("127.0.0.1:{port}")])
        .arg("-base")
        .arg(&d.base)
        .arg("-root")
        .arg(src.join("web"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(scratch.path.join("miniweb.log")).unwrap())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(&mut web);
    wait_for("miniweb to listen", Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });

    let mut failures = Vec::new();
    let host = d.name.clone();

    // /vms/info.json: every vm info column and "host", tags an object.
    let vms = get_json(port, "/vms/info.json", &mut failures);
    match vms.as_array().and_then(|a| a.first()) {
        Some(vm) => {
            for (k, want) in [
                ("name", "mw1"),
                ("state", "BUILDING"),
                ("host", host.as_str()),
            ] {
                if k == "state" {
                    if !matches!(vm[k].as_str(), Some("BUILDING") | Some("PAUSED")) {
                        failures.push(format!("/vms/info.json state: {}", vm[k]));
                    }
                } else if vm[k] != want {
                    failures.push(format!("/vms/info.json {k}: {} (want {want})", vm[k]));
                }
            }
            for k in [
                "id",
                "uptime",
                "type",
                "vcpus",
                "memory",
                "vlan",
                "ip",
                "ip6",
                "tap",
                "vnc_port",
                "cc_active",
                "disks",
            ] {
                if vm.get(k).is_none() {
                    failures.push(format!("/vms/info.json: no {k}: {vm}"));
                }
            }
            let tags = vm["tags"].as_str().unwrap_or("");
            if !serde_json::from_str::<Value>(tags).is_ok_and(|t| t.is_object()) {
                failures.push(format!(
                    "/vms/info.json tags must be a JSON object: {tags:?}"
                ));
            }
        }
        None => failures.push(format!("/vms/info.json: no VM: {vms}")),
    }

    // /hosts.json: the host with the columns its page reads.
    let hosts = get_json(port, "/hosts.json", &mut failures);
    match hosts.as_array().and_then(|a| a.first()) {
        Some(h) => {
            for k in [
                "host", "cpus", "load", "memused", "memtotal", "rx", "tx", "vms", "vmlimit",
                "uptime",
            ] {
                if h.get(k).is_none() {
                    failures.push(format!("/hosts.json: no {k}: {h}"));
                }
            }
        }
        None => failures.push(format!("/hosts.json: no host: {hosts}")),
    }

    // /vlans.json: the alias made above.
    let vlans = get_json(port, "/vlans.json", &mut failures);
    let has = vlans.as_array().is_some_and(|a| {
        a.iter()
            .any(|v| v["alias"].as_str().is_some_and(|s| s.ends_with("web")) && v["vlan"] == "101")
    });
    if !has {
        failures.push(format!("/vlans.json: no web 101: {vlans}"));
    }

    // /namespaces.json: the active namespace.
    let ns = get_json(port, "/namespaces.json", &mut failures);
    let active = ns.as_array().is_some_and(|a| {
        a.iter()
            .any(|n| n["namespace"] == "minimega" && n["active"] == "true")
    });
    if !active {
        failures.push(format!("/namespaces.json: minimega not active: {ns}"));
    }

    // /vm/NAME/screenshot.png: a PNG of the (paused) VM's screen.
    let (s, _, png) = http(port, "GET", "/vm/mw1/screenshot.png?size=200", &[], b"");
    if s != 200 || !png.starts_with(b"\x89PNG") {
        failures.push(format!(
            "/vm/mw1/screenshot.png: HTTP {s}: {}",
            String::from_utf8_lossy(&png[..png.len().min(200)])
        ));
    }

    let log = std::fs::read_to_string(scratch.path.join("miniweb.log")).unwrap_or_default();
    assert!(
        failures.is_empty(),
        "miniweb against this daemon:\n{}\n--- miniweb log ---\n{log}",
        failures.join("\n")
    );
}
