//! The packages as a user meets them: `make package` builds them (reusing
//! the release build), lintian and rpmlint pass, both hold the same files,
//! and on fresh systemd test-bed nodes they install, start, answer over
//! `-e` and D-Bus, restart, upgrade in place and go away clean.

mod common;

use common::testbed::{Node, Testbed};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

const V: &str = env!("CARGO_PKG_VERSION");

struct Dist {
    deb: PathBuf,
    rpm: PathBuf,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/deps.sh installs the tools)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `make package` once per test process: dist/ with one .deb and one .rpm.
fn dist() -> &'static Dist {
    static DIST: OnceLock<Dist> = OnceLock::new();
    DIST.get_or_init(|| {
        let root = common::project_root();
        run(Command::new("make")
            .arg("-C")
            .arg(&root)
            .arg("--no-print-directory")
            .arg("package"));
        let d = root.join("dist");
        Dist {
            deb: d.join(format!("minimega_{V}_amd64.deb")),
            rpm: d.join(format!("minimega-{V}-1.x86_64.rpm")),
        }
    })
}

#[test]
fn lintian_and_rpmlint_find_no_errors() {
    let d = dist();
    let out = run(Command::new("lintian")
        .args(["--fail-on", "error,warning"])
        .arg(&d.deb));
    assert!(!text(&out).contains("E: "), "{}", text(&out));
    let rc = common::project_root().join("rpm/minimega.rpmlintrc");
    let out = run(Command::new("rpmlint").arg("-r").arg(rc).arg(&d.rpm));
    assert!(
        text(&out).contains("0 errors, 0 warnings"),
        "{}",
        text(&out)
    );
}

/// What both packages must install, by the path each distribution uses.
const LAYOUT: &[&str] = &[
    "/usr/bin/minimega",
    "/usr/lib/minimega/miniccc",
    "/usr/lib/minimega/minirouter",
    "@UNITDIR@/minimega.service",
    "/usr/bin/minimega-web",
    "@UNITDIR@/minimega-web.service",
    "@UNITDIR@/minimega-web.socket",
    "/usr/share/man/man8/minimega-web.8.gz",
    "/usr/share/dbus-1/system.d/org.minimega.Minimega1.conf",
    "/usr/lib/sysusers.d/minimega.conf",
    "/etc/minimega/minimega.toml",
    "/usr/share/man/man1/minimega.1.gz",
    "/usr/share/man/man5/minimega.toml.5.gz",
    "/usr/share/man/man7/minimega-commands.7.gz",
    "/usr/share/man/man7/minimega-dbus.7.gz",
    "/usr/share/bash-completion/completions/minimega",
    "/usr/share/fish/vendor_completions.d/minimega.fish",
];

#[test]
fn both_packages_hold_the_same_layout() {
    let d = dist();
    let rpm = text(&run(Command::new("rpm").arg("-qlp").arg(&d.rpm)));
    let rpm: Vec<&str> = rpm.lines().collect();
    let deb = text(&run(Command::new("dpkg-deb").arg("-c").arg(&d.deb)));
    let deb: Vec<String> = deb
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_string())
        .collect();
    for f in LAYOUT {
        let r = f.replace("@UNITDIR@", "/usr/lib/systemd/system");
        assert!(rpm.contains(&r.as_str()), "the RPM lacks {r}: {rpm:?}");
        let d = f.replace("@UNITDIR@", "/lib/systemd/system");
        assert!(deb.contains(&d), "the .deb lacks {d}: {deb:?}");
    }
    // The test daemon with the fault switch is never shipped.
    assert!(
        !rpm.iter().any(|p| p.contains("minimega-faults")),
        "{rpm:?}"
    );
    assert!(
        !deb.iter().any(|p| p.contains("minimega-faults")),
        "{deb:?}"
    );
    assert!(rpm.contains(&"/usr/share/zsh/site-functions/_minimega"));
    assert!(deb.contains(&"/usr/share/zsh/vendor-completions/_minimega".to_string()));
    // The key is the package's (removed with it) but made at install time.
    assert!(rpm.contains(&"/etc/minimega/mesh.key"));
    let out = run(Command::new("rpm")
        .args(["-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]"])
        .arg(&d.rpm));
    let flags = text(&out);
    assert!(flags.contains("cn /etc/minimega/minimega.toml"), "{flags}");
    assert!(flags.contains("g /etc/minimega/mesh.key"), "{flags}");

    let scratch = common::Scratch::new("deb-control");
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&d.deb)
        .arg(&scratch.path));
    let conffiles = std::fs::read_to_string(scratch.path.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/minimega/minimega.toml");
    let control = std::fs::read_to_string(scratch.path.join("control")).unwrap();
    for dep in [
        "dbus",
        "qemu-system-x86 | qemu-system",
        "qemu-utils",
        "systemd",
    ] {
        assert!(control.contains(dep), "Depends lacks {dep}:\n{control}");
    }
    assert!(
        control.contains("Recommends: openvswitch-switch"),
        "{control}"
    );
    let recommends = text(&run(Command::new("rpm")
        .arg("-qp")
        .arg("--recommends")
        .arg(&d.rpm)));
    assert!(
        recommends.lines().any(|l| l == "openvswitch"),
        "{recommends}"
    );

    // The packaged binary is this build.
    let bin = scratch.path.join("minimega");
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "dpkg-deb --fsys-tarfile {} | tar -xOf - ./usr/bin/minimega > {}",
        d.deb.display(),
        bin.display()
    )));
    drop(out);
    common::set_mode(&bin, 0o755);
    let out = run(Command::new(&bin).arg("-version"));
    assert_eq!(text(&out).trim(), format!("minimega {V}"));

    // The cc agent goes into guests that may lack a C library: it is
    // static (no program interpreter, no shared libraries) and runs.
    for agent in ["miniccc", "minirouter"] {
        let path = scratch.path.join(agent);
        run(Command::new("sh").arg("-c").arg(format!(
            "dpkg-deb --fsys-tarfile {} | tar -xOf - ./usr/lib/minimega/{agent} > {}",
            d.deb.display(),
            path.display()
        )));
        common::set_mode(&path, 0o755);
        let headers = text(&run(Command::new("readelf").args(["-l", "-d"]).arg(&path)));
        assert!(!headers.contains("INTERP"), "{agent}: {headers}");
        assert!(!headers.contains("(NEEDED)"), "{agent}: {headers}");
    }
    let out = run(Command::new(scratch.path.join("miniccc")).arg("-version"));
    assert_eq!(text(&out).trim(), format!("miniccc minimega-rs {V}"));
    // minirouter names its usage on a flag it does not know.
    let out = Command::new(scratch.path.join("minirouter"))
        .arg("-nosuchflag")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("usage: minirouter"),
        "{out:?}"
    );
}

/// Paths of the node's own file system, before and after, kept in the node.
fn snapshot(node: &Node, name: &str) {
    node.ok(&format!(
        "find /etc /usr /var/lib /opt /srv -xdev 2>/dev/null | sort > /var/tmp/files.{name}"
    ));
}

/// Paths in `after` that `before` lacked, and the other way round.
fn changed(node: &Node, before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let lines = |s: String| {
        s.lines()
            .map(String::from)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
    };
    let new = node.ok(&format!(
        "comm -13 /var/tmp/files.{before} /var/tmp/files.{after}"
    ));
    let gone = node.ok(&format!(
        "comm -23 /var/tmp/files.{before} /var/tmp/files.{after}"
    ));
    (lines(new), lines(gone))
}

/// Files the package tools (and the test's own useradd) keep, which no
/// package can avoid. Nothing named after us is excused.
fn tools_own(path: &str) -> bool {
    const OWN: &[&str] = &[
        "/etc/group-",
        "/etc/gshadow-",
        "/etc/passwd-",
        "/etc/shadow-",
        "/etc/subuid-",
        "/etc/subgid-",
        "/var/lib/dpkg/",
        "/var/lib/apt/",
        "/var/lib/systemd/deb-systemd-helper-",
        "/var/lib/PackageKit/",
    ];
    !path.contains("minimega") && OWN.iter().any(|p| path.starts_with(p))
}

/// What a user of the service does first, as root and as members of the
/// group and not.
fn check_service(node: &Node) {
    assert_eq!(node.ok("systemctl is-active minimega"), "active");
    // Ordered after Open vSwitch where it is installed (here it is masked,
    // and the service runs all the same).
    let after = node.ok("systemctl show -p After --value minimega");
    assert!(
        after.contains("openvswitch-switch.service") && after.contains("ovs-vswitchd.service"),
        "{after}"
    );
    assert_eq!(node.ok("minimega -e version"), format!("minimega {V}"));
    let reply = node.ok(
        "busctl call org.minimega.Minimega1 /org/minimega/Minimega1 org.minimega.Minimega1 Exec s version",
    );
    assert!(reply.contains(&format!("minimega {V}")), "{reply}");
    let prop = node.ok(
        "busctl get-property org.minimega.Minimega1 /org/minimega/Minimega1 org.minimega.Minimega1 Version",
    );
    assert_eq!(prop, format!("s \"{V}\""));
    // The policy and the group, together: a member may run commands, others
    // may only read properties.
    node.ok("id alice >/dev/null 2>&1 || useradd -M -G minimega alice; id bob >/dev/null 2>&1 || useradd -M bob");
    assert_eq!(
        node.ok("runuser -u alice -- minimega -e version"),
        format!("minimega {V}")
    );
    let out = node.sh("runuser -u bob -- minimega -e version");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("group minimega"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    node.ok("runuser -u bob -- busctl get-property org.minimega.Minimega1 /org/minimega/Minimega1 org.minimega.Minimega1 VmCount");
    // The man pages, as `man` shows them.
    let page = node.ok("MANWIDTH=80 man minimega 2>&1 | col -b");
    assert!(page.contains("minimega - launch and manage QEMU"), "{page}");
    let page = node.ok("MANWIDTH=80 man 7 minimega-commands 2>&1 | col -b");
    assert!(
        page.contains("display the version") || page.contains("Display the version"),
        "{page}"
    );
    node.ok("man -w minimega.toml minimega-dbus >/dev/null");
    node.ok("bash -c '. /usr/share/bash-completion/completions/minimega && complete -p minimega'");
    // The key: there, secret, and the same after a restart.
    assert_eq!(
        node.ok("stat -c '%a %U %s' /etc/minimega/mesh.key"),
        "600 root 65"
    );
}

/// The web console as the package ships it: socket-activated on
/// localhost, run as its own user (group minimega, no capabilities), and
/// reaching the daemon from there: a logged-in table comes from it.
fn check_web(node: &Node) {
    node.ok("echo s3cret | minimega-web passwd admin");
    assert_eq!(
        node.ok("stat -c '%a %U %G' /etc/minimega/web.passwd"),
        "640 root minimega-web"
    );
    node.ok("systemctl start minimega-web.socket");
    let url = "http://127.0.0.1:9080";
    // The first connection starts the service.
    assert_eq!(
        node.ok(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' {url}/login"
        )),
        "200"
    );
    assert_eq!(node.ok("systemctl is-active minimega-web"), "active");
    let pid = node.ok("systemctl show -p MainPID --value minimega-web");
    assert_eq!(node.ok(&format!("ps -o user= -p {pid}")), "minimega-web");
    assert_eq!(
        node.ok(&format!("grep ^CapEff /proc/{pid}/status")),
        "CapEff:\t0000000000000000"
    );
    let refused = node.ok(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' {url}/api/hosts"
    ));
    assert_eq!(refused, "401", "no login, no table");
    node.ok(&format!(
        "curl -s -c /root/web.jar -o /dev/null -H 'Origin: {url}' --data 'username=admin&password=s3cret' {url}/login"
    ));
    let hosts = node.ok(&format!("curl -s -f -b /root/web.jar {url}/api/hosts"));
    let name = node.ok("hostname");
    assert!(hosts.contains(&format!("\"{name}\"")), "{hosts}");
    node.ok("systemctl stop minimega-web.socket minimega-web.service");
    node.ok("rm -f /etc/minimega/web.passwd /root/web.jar");
}

/// What systemd on the node holds of ours, for a failure message: why a
/// unit stays loaded is in its references, its jobs and its cgroup's
/// processes, and the journal says what happened to them.
fn systemd_state(node: &Node) -> String {
    let show = |c: &str| {
        let o = node.sh(c);
        format!(
            "$ {c}\n{}{}\n",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    [
        "systemctl list-units --all --no-pager 'minimega*'",
        "systemctl show minimega.service -p Id,LoadState,ActiveState,SubState,Result,MainPID,ControlPID,ControlGroup,Following,TriggeredBy,RequiredBy,WantedBy,PartOf,BoundBy,ConsistsOf,Before,After,Refs,Job,NeedDaemonReload,FragmentPath,DropInPaths,CollectMode,Transient",
        "systemctl show minimega.slice -p ActiveState,Job,ControlGroup,Wants,Requires,RequiredBy,Before,Refs",
        "systemctl list-jobs --no-pager",
        // "CGroup realized: yes" on a dead unit: systemd could not remove
        // its cgroup, and waits to hear that it emptied.
        "systemd-analyze dump | awk '/^-> Unit / { p = /minimega/ } p'",
        "cat /proc/1/cgroup",
        "for f in $(find /sys/fs/cgroup -path '*minimega.s*' -name cgroup.procs 2>/dev/null); do echo \"$f: $(tr '\\n' ' ' <$f)\"; done",
        "ps -eo pid,ppid,stat,cgroup:80,args --no-headers | grep -v ' ps -eo' | grep -e minimega -e qemu || true",
        "ls -la /run/systemd/system /run/systemd/transient /etc/systemd/system/minimega* /etc/systemd/system/*/minimega* /run/systemd/system/minimega* /var/lib/systemd/deb-systemd-helper-enabled/*minimega* 2>&1",
        "journalctl --no-pager -n 80 -o short-monotonic",
    ]
    .iter()
    .map(|c| show(c))
    .collect()
}

/// Polls `cmd` on the node for up to `limit`; on timeout, fails with its
/// last output and what systemd holds of ours.
fn wait_systemd(node: &Node, cmd: &str, limit: Duration) {
    let start = std::time::Instant::now();
    let deadline = start + limit;
    loop {
        let o = node.sh(cmd);
        if o.status.success() {
            eprintln!("{}: `{cmd}` after {:?}", node.name, start.elapsed());
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "`{cmd}` did not succeed within {limit:?}: {}{}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr),
                systemd_state(node)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn main_pid(node: &Node) -> String {
    node.ok("systemctl show -p MainPID --value minimega")
}

/// A VM must survive an upgrade (KillMode=process, VMs in their own scopes).
fn launch_vm(node: &Node) -> String {
    node.ok("minimega -e vm config memory 64");
    node.ok("minimega -e vm launch kvm upgrade0");
    node.ok("minimega -e vm start upgrade0");
    node.ok("minimega -e .annotate false .headers false .columns state,pid vm info")
}

#[test]
fn deb_installs_runs_upgrades_and_purges_clean_on_a_systemd_node() {
    let d = dist();
    let upgrade = common::Scratch::new("deb-upgrade");
    let root = common::project_root();
    run(Command::new("make")
        .arg("-C")
        .arg(&root)
        .arg("--no-print-directory")
        .arg("deb")
        .arg(format!("DEB_VERSION={V}+upgrade1"))
        .arg(format!("DIST={}", upgrade.path.display())));
    let newer = upgrade
        .path
        .join(format!("minimega_{V}+upgrade1_amd64.deb"));
    assert!(newer.exists());

    let bed = Testbed::boot(&["pkgdeb"]);
    let node = bed.node("pkgdeb");
    snapshot(node, "before");
    // No --no-download: with it apt 2.6 refuses local files ("Pathname to
    // install is not absolute"); the node has no network anyway.
    let apt = "DEBIAN_FRONTEND=noninteractive apt-get -y -q";

    // Install: offline, dependencies from what the node has.
    node.ok(&format!("{apt} install {}", d.deb.display()));
    assert_eq!(node.ok("systemctl is-enabled minimega"), "enabled");
    check_service(node);
    check_web(node);
    assert!(node.ok("getent group minimega").starts_with("minimega:"));

    // Restart: a new process, the same key.
    let key = node.ok("sha256sum /etc/minimega/mesh.key");
    let pid = main_pid(node);
    node.ok("systemctl restart minimega");
    assert_eq!(node.ok("systemctl is-active minimega"), "active");
    assert_ne!(main_pid(node), pid);
    assert_eq!(node.ok("minimega -e version"), format!("minimega {V}"));

    // Upgrade in place: the daemon restarts into the new package; local
    // configuration and the key stay; VMs keep running.
    node.ok("echo 'level = \"debug\"' >> /etc/minimega/minimega.toml");
    let vm = launch_vm(node);
    let pid = main_pid(node);
    node.ok(&format!("{apt} install {}", newer.display()));
    assert_eq!(
        node.ok("dpkg-query -W -f '${Version}' minimega"),
        format!("{V}+upgrade1")
    );
    assert_ne!(
        main_pid(node),
        pid,
        "the upgrade did not restart the daemon"
    );
    check_service(node);
    assert!(node
        .ok("tail -n 1 /etc/minimega/minimega.toml")
        .contains("debug"));
    assert_eq!(node.ok("sha256sum /etc/minimega/mesh.key"), key);
    let etc = node.ok("ls /etc/minimega");
    assert!(
        etc.lines()
            .all(|f| ["minimega.toml", "mesh.key", "web-certs.d"].contains(&f)),
        "{etc}"
    );
    let after = node.ok("minimega -e .annotate false .headers false .columns state,pid vm info");
    assert_eq!(after, vm, "the VM did not survive the upgrade");
    let qemu = vm.split('|').nth(1).unwrap().trim().to_string();

    // Remove: the program, the unit and the policy go; configuration stays;
    // the VM keeps running (a reinstall would adopt it).
    node.ok(&format!("{apt} remove minimega"));
    node.ok(&format!("kill -0 {qemu}"));
    // Nothing of ours stayed in the daemon's cgroup (KillMode=process stops
    // the daemon alone; the VM is in its scope), so systemd removed it.
    wait_systemd(
        node,
        "[ -z \"$(systemctl show -p ControlGroup --value minimega.service)\" ]",
        Duration::from_secs(10),
    );
    assert!(!node.sh("test -e /usr/bin/minimega").status.success());
    let units = node.ok("systemctl list-unit-files minimega.service | grep -c minimega || true");
    assert_eq!(units, "0", "the unit is still known");
    assert!(!node
        .sh("systemctl is-active --quiet minimega")
        .status
        .success());
    assert!(!node
        .sh("test -e /usr/share/dbus-1/system.d/org.minimega.Minimega1.conf")
        .status
        .success());
    let owner = node.sh("busctl status org.minimega.Minimega1");
    assert!(!owner.status.success(), "someone still owns the bus name");
    node.ok("test -f /etc/minimega/minimega.toml && test -f /etc/minimega/mesh.key");

    // Purge: nothing of ours is left but the group (kept, as Debian keeps
    // system accounts); the VM whose state it removes is stopped first.
    node.ok(&format!("{apt} purge minimega"));
    node.wait_ok(
        &format!("! kill -0 {qemu} 2>/dev/null"),
        Duration::from_secs(30),
    );
    // The slice and the VM's scope take their time to go on a loaded
    // machine; the listing is printed if one stays.
    wait_systemd(
        node,
        "l=$(systemctl list-units --all --no-legend 'minimega*'); echo \"$l\"; [ -z \"$l\" ]",
        Duration::from_secs(60),
    );
    assert!(!node.sh("test -e /etc/minimega").status.success());
    assert!(!node.sh("test -e /run/minimega").status.success());
    assert!(node.ok("getent group minimega").starts_with("minimega:"));
    node.ok("userdel alice; userdel bob");
    snapshot(node, "after");
    let (new, gone) = changed(node, "before", "after");
    let new: Vec<_> = new.into_iter().filter(|p| !tools_own(p)).collect();
    let gone: Vec<_> = gone.into_iter().filter(|p| !tools_own(p)).collect();
    assert!(new.is_empty(), "left behind after purge: {new:#?}");
    assert!(gone.is_empty(), "removed but not ours: {gone:#?}");
}

#[test]
fn rpm_installs_runs_and_erases_clean_on_a_systemd_node() {
    // On Debian the RPM's dependencies (Fedora's names) cannot be resolved,
    // so --nodeps; what runs is the package's own scriptlets, with the
    // stand-ins for the systemd RPM macros.
    let d = dist();
    let bed = Testbed::boot(&["pkgrpm"]);
    let node = bed.node("pkgrpm");
    snapshot(node, "before");
    node.ok(&format!("rpm -i --nodeps {}", d.rpm.display()));
    assert!(node.ok("getent group minimega").starts_with("minimega:"));
    node.ok("systemctl start minimega");
    check_service(node);
    let pid = main_pid(node);
    node.ok("systemctl restart minimega");
    assert_ne!(main_pid(node), pid);

    // Reinstalling the same package runs the upgrade scriptlets: the
    // service restarts, the key stays.
    let key = node.ok("sha256sum /etc/minimega/mesh.key");
    let pid = main_pid(node);
    node.ok(&format!(
        "rpm -U --replacepkgs --nodeps {}",
        d.rpm.display()
    ));
    assert_ne!(
        main_pid(node),
        pid,
        "the upgrade did not restart the daemon"
    );
    check_service(node);
    assert_eq!(node.ok("sha256sum /etc/minimega/mesh.key"), key);

    node.ok("rpm -e minimega");
    wait_systemd(
        node,
        "l=$(systemctl list-units --all --no-legend 'minimega*'); echo \"$l\"; [ -z \"$l\" ]",
        Duration::from_secs(60),
    );
    node.ok("userdel alice; userdel bob");
    assert!(!node
        .sh("systemctl is-active --quiet minimega")
        .status
        .success());
    assert!(!node.sh("test -e /etc/minimega").status.success());
    assert!(!node.sh("test -e /run/minimega").status.success());
    snapshot(node, "after");
    let (new, gone) = changed(node, "before", "after");
    let new: Vec<_> = new.into_iter().filter(|p| !tools_own(p)).collect();
    let gone: Vec<_> = gone.into_iter().filter(|p| !tools_own(p)).collect();
    assert!(new.is_empty(), "left behind after rpm -e: {new:#?}");
    assert!(gone.is_empty(), "removed but not ours: {gone:#?}");
}
