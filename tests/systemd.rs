//! The daemon as systemd runs it, in a real systemd node of the test bed:
//! the unit and policy from systemd/, READY=1, the journal, D-Bus, policy,
//! and a clean stop.

mod common;

use common::testbed::Testbed;
use std::time::Duration;

#[test]
fn unit_starts_logs_serves_refuses_and_stops() {
    let bed = Testbed::boot(&["node1"]);
    let n = bed.node("node1");
    n.install_build();
    n.ok("systemctl start minimega");
    // Type=notify: `start` returned only after READY=1.
    assert_eq!(n.ok("systemctl is-active minimega"), "active");
    let status = n.ok("systemctl status --no-pager minimega");
    assert!(status.contains("active (running)"), "{status}");
    assert!(
        status.contains("Status: \"VMs: 0, mesh size: 1\""),
        "{status}"
    );

    assert_eq!(
        n.ok("minimega -e version"),
        format!("minimega {}", env!("CARGO_PKG_VERSION"))
    );
    let out = n.ok("busctl call org.minimega.Minimega1 /org/minimega/Minimega1 org.minimega.Minimega1 Exec s version");
    assert!(out.starts_with("sa(sss)s \"minimega "), "{out}");
    assert_eq!(
        n.ok("minimega -e .columns name host"),
        "host  | name\nnode1 | node1"
    );
    // Under systemd the base is /run/minimega.
    n.ok("test -f /run/minimega/minimega.pid");

    // The journal has the daemon's lines, with our identifier.
    let log = n.wait_ok("journalctl -u minimega --no-pager -o cat | grep -q ready && journalctl -u minimega --no-pager -o cat", Duration::from_secs(10));
    assert!(
        log.contains("minimega ") && log.contains("starting"),
        "{log}"
    );
    let fields = n.ok("journalctl -u minimega --no-pager -o verbose | grep -E '^ +(HOSTNAME|SYSLOG_IDENTIFIER)=' | sort -u");
    assert!(fields.contains("SYSLOG_IDENTIFIER=minimega"), "{fields}");

    // Policy: a user outside group minimega is refused; a member is not;
    // anyone reads properties.
    n.ok("useradd -M -G minimega mmuser && useradd -M outsider");
    let refused = n.sh("runuser -u outsider -- busctl call org.minimega.Minimega1 /org/minimega/Minimega1 org.minimega.Minimega1 Exec s version");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("Access denied"), "{err}");
    let refused = n.sh("runuser -u outsider -- minimega -e version");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("permission denied"));
    assert_eq!(
        n.ok("runuser -u mmuser -- minimega -e version"),
        format!("minimega {}", env!("CARGO_PKG_VERSION"))
    );
    n.ok("runuser -u outsider -- busctl get-property org.minimega.Minimega1 /org/minimega/Minimega1 org.minimega.Minimega1 Version");

    // The command socket follows the same rule, by peer credentials. The
    // client uses it where there is no bus (forced here with -bus none),
    // reaching /run/minimega through the /tmp/minimega link.
    n.ok("test -L /tmp/minimega/minimega && test -S /run/minimega/minimega");
    assert_eq!(
        n.ok("runuser -u mmuser -- minimega -bus none -e version"),
        format!("minimega {}", env!("CARGO_PKG_VERSION"))
    );
    let refused = n.sh("runuser -u outsider -- minimega -bus none -e version");
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(
        err.contains("ermission denied") || err.contains("refused"),
        "{err}"
    );

    // A clean stop: inactive (not failed), with STOPPING logged.
    n.ok("systemctl stop minimega");
    assert_eq!(n.sh("systemctl is-active minimega").stdout, b"inactive\n");
    let result = n.ok("systemctl show -p Result --value minimega");
    assert_eq!(result, "success");
    n.ok("! test -e /tmp/minimega/minimega && ! test -e /run/minimega/minimega");
    let gone = n.sh("minimega -e version");
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("systemctl start minimega"));
}

#[test]
fn watchdog_and_restart_on_failure() {
    let bed = Testbed::boot(&["node1"]);
    let n = bed.node("node1");
    n.install_build();
    n.ok("systemctl start minimega");
    assert_eq!(
        n.ok("systemctl show -p WatchdogUSec --value minimega"),
        "30s"
    );
    let pid = n.ok("systemctl show -p MainPID --value minimega");
    // A crash is restarted (Restart=on-failure) and becomes ready again.
    // (SIGKILL: Rust's runtime swallows a SIGSEGV that is not a real fault.)
    n.ok(&format!("kill -KILL {pid}"));
    let newpid = n.wait_ok(
        &format!("p=$(systemctl show -p MainPID --value minimega); [ \"$p\" != 0 ] && [ \"$p\" != {pid} ] && systemctl is-active minimega >/dev/null && echo $p"),
        Duration::from_secs(30),
    );
    assert_ne!(newpid, pid);
    n.wait_ok("minimega -e version", Duration::from_secs(10));

    // A short watchdog is fed: the daemon outlives several periods, and
    // its probe stays out of `history` (which never lists itself).
    n.ok("mkdir -p /run/systemd/system/minimega.service.d \
          && printf '[Service]\\nWatchdogSec=3s\\n' >/run/systemd/system/minimega.service.d/wd.conf \
          && systemctl daemon-reload && systemctl restart minimega");
    assert_eq!(
        n.ok("systemctl show -p WatchdogUSec --value minimega"),
        "3s"
    );
    let pid = n.ok("systemctl show -p MainPID --value minimega");
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(n.ok("systemctl show -p MainPID --value minimega"), pid);
    assert_eq!(n.ok("minimega -e history"), "");
}

/// Each node's systemd owns its cgroups. Two nodes whose systemds shared a
/// tree shared `system.slice/<unit>` too: a unit stopped on one node could
/// not remove a cgroup the other node's unit still ran in (EBUSY), never
/// heard when it emptied, and stayed loaded until the next daemon-reload
/// (the package test's purge once saw minimega.service so for 60 s).
#[test]
fn nodes_do_not_share_cgroups() {
    let bed = Testbed::boot(&["node1", "node2"]);
    let (a, b) = (bed.node("node1"), bed.node("node2"));
    for n in [a, b] {
        n.ok("systemd-run --unit=mm-same-name sleep 600");
    }
    a.ok("systemctl stop mm-same-name");
    a.wait_ok(
        "l=$(systemctl list-units --all --no-legend 'mm-same-name*'); echo \"$l\"; [ -z \"$l\" ]",
        Duration::from_secs(10),
    );
    assert_eq!(b.ok("systemctl is-active mm-same-name"), "active");
    b.ok("systemctl stop mm-same-name");
}
