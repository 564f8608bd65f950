//! The test bed: real systemd nodes on this machine. Each node is
//! `systemd-nspawn --boot` over an overlay of the host's root (so it has
//! every tool the host has, this build included, and writes nothing to the
//! host), in its own network namespace on a private LAN, with journald,
//! D-Bus and sshd running. Teardown happens in Drop, in the order that is
//! safe: power off, wait for nspawn, unmount, then remove.

use super::netns::Lan;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Node {
    pub name: String,
    /// No systemd: sshd alone (see [`Testbed::boot_mixed`]).
    pub bare: bool,
    /// The machine name given to nspawn (unique across concurrent runs).
    pub machine: String,
    pub netns: String,
    pub addr: String,
    /// The node's root file system, seen from the host.
    pub root: PathBuf,
    dir: PathBuf,
    /// The node's own cgroup in each hierarchy its systemd uses (see
    /// [`cgroup_roots`]); nspawn starts in it.
    cgroups: Vec<PathBuf>,
    nspawn: Option<Child>,
    leader: u32,
}

pub struct Testbed {
    pub nodes: Vec<Node>,
    pub lan: Lan,
    dir: PathBuf,
}

/// Units of the host image that a test node does not start.
/// What every node's sshd runs with: keys only, root by key, PAM for
/// accounts (so a user made with `useradd`, password locked, may log in
/// by key, as on a stock Debian host).
const SSHD_CONFIG: &str = "\
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
PrintMotd no
Subsystem sftp /usr/lib/openssh/sftp-server
";

const MASKED: &[&str] = &[
    "postgresql.service",
    "postgresql@.service",
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "man-db.timer",
    "dpkg-db-backup.timer",
    "fstrim.timer",
    "systemd-timesyncd.service",
    // The host's openvswitch-switch (installed for the network tests) would
    // start in every node and fail without the kernel module; a test that
    // wants OVS in a node runs its own ovsdb-server and ovs-vswitchd.
    "openvswitch-switch.service",
    "ovs-vswitchd.service",
    "ovsdb-server.service",
    "ovs-record-hostname.service",
];

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn is_mountpoint(p: &Path) -> bool {
    Command::new("mountpoint")
        .arg("-q")
        .arg(p)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Testbed {
    /// Boots one node per name and waits until each reports its boot done.
    pub fn boot(names: &[&str]) -> Testbed {
        Testbed::boot_mixed(names, &[])
    }

    /// Like [`Testbed::boot`], but the nodes named in `bare` run no systemd
    /// at all: only sshd, as PID 1 of their own namespaces, chrooted into
    /// the node's root (a compute node without systemd).
    pub fn boot_mixed(names: &[&str], bare: &[&str]) -> Testbed {
        reap_orphans();
        let lan = Lan::new();
        let dir = PathBuf::from(format!("{ROOT}/{}", lan.tag));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("owner"), std::process::id().to_string());
        let hosts: String = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{} {n}\n", lan.addr(i)))
            .collect();
        // Drop tears down whatever was made, even if booting panics midway.
        let mut bed = Testbed {
            nodes: Vec::new(),
            lan,
            dir: dir.clone(),
        };
        for (i, name) in names.iter().enumerate() {
            let netns = bed.lan.add_host(i);
            let mut node =
                Node::prepare(&dir, name, &bed.lan.tag, &netns, &bed.lan.addr(i), &hosts);
            node.bare = bare.contains(name);
            bed.nodes.push(node);
        }
        for n in &mut bed.nodes {
            n.start();
        }
        for n in &mut bed.nodes {
            n.wait_booted(Duration::from_secs(180));
        }
        bed
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Lets root on `from` log in to `to` with a key (root's own keypair on
    /// `from`, created when missing); `to`'s host key is NOT added to
    /// `from`'s known_hosts.
    pub fn authorize(&self, from: &str, to: &str) {
        let f = self.node(from);
        f.ok("test -f /root/.ssh/id_ed25519 || (mkdir -p -m 700 /root/.ssh && ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519)");
        let key = f.ok("cat /root/.ssh/id_ed25519.pub");
        self.node(to)
            .ok(&format!("mkdir -p -m 700 /root/.ssh && echo '{key}' >> /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys"));
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.poweroff();
        }
        for n in &mut self.nodes {
            n.reap();
        }
        for n in &self.nodes {
            for cg in &n.cgroups {
                remove_cgroup(cg);
            }
        }
        for r in cgroup_roots() {
            let _ = std::fs::remove_dir(r.join(CGROUP_DIR).join(&self.lan.tag));
        }
        for n in &self.nodes {
            n.unmount_and_remove();
        }
        if self
            .nodes
            .iter()
            .all(|n| !n.root.exists() || !is_mountpoint(&n.root))
        {
            let _ = Command::new("rm")
                .args(["-rf", "--one-file-system"])
                .arg(&self.dir)
                .status();
        }
    }
}

const ROOT: &str = "/var/tmp/minimega-testbed";

/// Each node's cgroups are `<hierarchy>/minimega-testbed/<tag>/<node>`.
/// nspawn (`--keep-unit`, no systemd on the host) puts the container in a
/// `payload` cgroup beside the one it was started in, so nodes started
/// from one cgroup would all share one tree: every node's systemd would
/// manage the same `payload/system.slice/minimega.service`, fail to
/// remove it while another node's daemon sits in it (EBUSY), and never
/// learn when it empties, since the other node's systemd removes it
/// first; the unit then stays loaded, `not-found inactive dead`, until
/// the next daemon-reload.
const CGROUP_DIR: &str = "minimega-testbed";

/// The mounted cgroup hierarchies a node's systemd keeps its units in: the
/// named v1 `systemd` one (hybrid and legacy hosts) and the unified one.
/// The v1 controller hierarchies are not among them: nspawn mounts those
/// read-only in the node and its systemd creates nothing there.
fn cgroup_roots() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dir, fstype, opts) = (f.get(1)?, f.get(2)?, f.get(3)?);
            let systemd = *fstype == "cgroup" && opts.split(',').any(|o| o == "name=systemd");
            (systemd || *fstype == "cgroup2").then(|| PathBuf::from(dir))
        })
        .collect()
}

/// SIGKILLs every process in a cgroup and the cgroups below it; returns
/// how many there were.
fn kill_cgroup(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            if pid > 0 {
                unsafe { libc::kill(pid, libc::SIGKILL) };
                n += 1;
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                n += kill_cgroup(&e.path());
            }
        }
    }
    n
}

/// Removes a cgroup and the cgroups below it (a cgroup is removed with
/// rmdir alone, deepest first); one still holding a process stays.
fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn pid_alive(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// Cleans up after earlier runs killed before their Drop ran: each run's
/// directory names its owner (the test process); when the owner is dead,
/// its nspawn processes and containers are killed, its overlays unmounted,
/// its network namespaces deleted and its directory removed. Runs of live
/// processes, this one included, are left alone.
fn reap_orphans() {
    let Ok(runs) = std::fs::read_dir(ROOT) else {
        return;
    };
    for entry in runs.filter_map(|e| e.ok()) {
        let dir = entry.path();
        let owner: i32 = std::fs::read_to_string(dir.join("owner"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if pid_alive(owner) {
            continue;
        }
        let tag = entry.file_name().to_string_lossy().to_string();
        kill_containers_under(&dir);
        if let Ok(nodes) = std::fs::read_dir(&dir) {
            for n in nodes.filter_map(|e| e.ok()) {
                let root = n.path().join("root");
                if is_mountpoint(&root) {
                    let _ = run(&["umount", "-l", root.to_str().unwrap_or_default()]);
                }
            }
        }
        let netns = run(&["ip", "netns", "list"]);
        for line in String::from_utf8_lossy(&netns.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if name.starts_with(&format!("mm{tag}-")) {
                let _ = run(&["ip", "netns", "del", name]);
            }
        }
        let _ = Command::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&dir)
            .status();
    }
    // Cgroups of runs whose directory is gone (a live run makes its
    // directory before its nodes' cgroups).
    for r in cgroup_roots() {
        let Ok(tags) = std::fs::read_dir(r.join(CGROUP_DIR)) else {
            continue;
        };
        for t in tags.filter_map(|e| e.ok()) {
            if t.path().is_dir() && !Path::new(ROOT).join(t.file_name()).exists() {
                kill_cgroup(&t.path());
                std::thread::sleep(Duration::from_millis(200));
                remove_cgroup(&t.path());
            }
        }
    }
}

/// SIGKILLs every nspawn running a root under `dir`, and its container.
fn kill_containers_under(dir: &Path) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let needle = dir.to_string_lossy().to_string();
    for p in procs.filter_map(|e| e.ok()) {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let mounts = std::fs::read_to_string(p.path().join("mountinfo")).unwrap_or_default();
        let nspawn = (cmdline.starts_with("systemd-nspawn")
            || cmdline.starts_with("nsenter")
            || cmdline.starts_with("unshare"))
            && cmdline.contains(&needle);
        // A bare node's processes are chrooted into a root under `dir`.
        let chrooted = std::fs::read_link(p.path().join("root"))
            .map(|r| r.starts_with(dir))
            .unwrap_or(false);
        // A container's init whose nspawn already died: its root overlay
        // has its upper directory under `dir`.
        let init = mounts.lines().any(|l| {
            l.split_whitespace().nth(4) == Some("/") && l.contains(&format!("upperdir={needle}/"))
        });
        if nspawn || init || chrooted {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Node {
    fn prepare(dir: &Path, name: &str, tag: &str, netns: &str, addr: &str, hosts: &str) -> Node {
        let d = dir.join(name);
        for sub in ["upper", "work", "root"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let root = d.join("root");
        super::netns::sh(&[
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            &format!(
                "lowerdir=/,upperdir={},workdir={}",
                d.join("upper").display(),
                d.join("work").display()
            ),
            root.to_str().unwrap(),
        ]);
        let etc = root.join("etc");
        std::fs::write(etc.join("hostname"), format!("{name}\n")).unwrap();
        std::fs::write(etc.join("hosts"), format!("127.0.0.1 localhost\n{hosts}")).unwrap();
        // A machine id of its own, so journald and D-Bus treat it as a machine.
        let id: String = (0..32)
            .map(|i| {
                format!(
                    "{:x}",
                    (super::unique_tag() as usize * 7 + i * 13 + std::process::id() as usize) % 16
                )
            })
            .collect();
        std::fs::write(etc.join("machine-id"), format!("{id}\n")).unwrap();
        // A fresh node runs sshd and D-Bus, not the host image's database
        // or its maintenance timers, which only slow the test bed down.
        let units = root.join("etc/systemd/system");
        for unit in MASKED {
            let _ = std::os::unix::fs::symlink("/dev/null", units.join(unit));
        }
        // The host image forbids maintainer scripts to start services (a
        // `policy-rc.d` that exits 101); a real node does not.
        let _ = std::fs::remove_file(root.join("usr/sbin/policy-rc.d"));
        // An sshd configuration of its own: the host's may be anything
        // (AllowUsers, drop-ins, no PAM), and the tests log in as users
        // they create.
        std::fs::write(etc.join("ssh/sshd_config"), SSHD_CONFIG).unwrap();
        // Host keys of its own, so SSH host key checks mean something.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "rm -f {0}/ssh/ssh_host_* && ssh-keygen -A -f {1}",
                etc.display(),
                root.display()
            ))
            .status();
        Node {
            name: name.to_string(),
            bare: false,
            machine: format!("{name}-{tag}"),
            netns: netns.to_string(),
            addr: addr.to_string(),
            root,
            dir: d,
            cgroups: cgroup_roots()
                .iter()
                .map(|r| r.join(CGROUP_DIR).join(tag).join(name))
                .collect(),
            nspawn: None,
            leader: 0,
        }
    }

    fn start(&mut self) {
        let console = std::fs::File::create(self.dir.join("console.log")).unwrap();
        if self.bare {
            // New PID, mount, UTS and IPC namespaces in the node's network
            // namespace; /dev, /proc, /sys and tmpfs for /run and /tmp in
            // the node's root; then sshd as PID 1.
            let root = self.root.display().to_string();
            let script = format!(
                "mount --rbind /dev {root}/dev && mount -t proc proc {root}/proc && mount -t sysfs sys {root}/sys \
                 && mount -t tmpfs tmpfs {root}/run && mount -t tmpfs tmpfs {root}/tmp && hostname {name} \
                 && exec chroot {root} /bin/sh -c 'mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e'",
                name = self.name
            );
            // (nsenter joins the node's network namespace; unshare's own
            // --net=FILE would make a new one.)
            let child = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.netns))
                .args(["unshare", "--pid", "--fork", "--mount", "--uts", "--ipc"])
                .args(["sh", "-c", &script])
                .env_clear()
                .env("PATH", PATH)
                .stdin(Stdio::null())
                .stdout(console.try_clone().unwrap())
                .stderr(console)
                .spawn()
                .expect("unshare (util-linux)");
            self.nspawn = Some(child);
            return;
        }
        // The shell moves itself into the node's own cgroups, then becomes
        // nspawn (setsid execs it in place).
        let mut enter = String::new();
        for cg in &self.cgroups {
            std::fs::create_dir_all(cg).unwrap_or_else(|e| panic!("{}: {e}", cg.display()));
            enter += &format!("echo $$ > '{}/cgroup.procs' && ", cg.display());
        }
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{enter}exec setsid systemd-nspawn \"$@\""))
            .arg("nspawn")
            .arg("-D")
            .arg(&self.root)
            .args(["--boot", "--register=no", "--keep-unit", "--quiet"])
            // A compute node's services make taps and bridges.
            .arg("--capability=CAP_NET_ADMIN")
            // cc mount serves guests' file systems through FUSE here.
            .arg("--bind=/dev/fuse")
            .arg(format!("--machine={}", self.machine))
            .arg(format!("--hostname={}", self.name))
            .arg(format!(
                "--network-namespace-path=/run/netns/{}",
                self.netns
            ))
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("systemd-nspawn (install systemd-container)");
        self.nspawn = Some(child);
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    fn wait_booted(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let pid = self.nspawn.as_ref().unwrap().id();
        // setsid execs nspawn in place. nspawn forks helpers before the
        // container's init; the init is the child living in another PID
        // namespace (a helper may come and go first).
        let own_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        while self.leader == 0 {
            let children = std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|tasks| {
                    tasks
                        .filter_map(|t| t.ok())
                        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let init = children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
                .find(|c| {
                    let ns = std::fs::read_link(format!("/proc/{c}/ns/pid")).ok();
                    ns.is_some() && ns != own_ns
                });
            if let Some(c) = init {
                self.leader = c;
            } else {
                assert!(
                    Instant::now() < deadline,
                    "{}: nspawn started no systemd:\n{}",
                    self.name,
                    self.console()
                );
                if let Ok(Some(s)) = self.nspawn.as_mut().unwrap().try_wait() {
                    panic!("{}: nspawn exited ({s}):\n{}", self.name, self.console());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if !self.bare {
            let own = format!(
                "/{CGROUP_DIR}/{}/",
                self.dir.strip_prefix(ROOT).unwrap().display()
            );
            let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", self.leader))
                .unwrap_or_default();
            for l in cg
                .lines()
                .filter(|l| l.starts_with("0::") || l.contains(":name=systemd:"))
            {
                // The node's cgroup itself, or below it once nspawn has moved
                // its init into `payload`.
                assert!(
                    format!("{l}/").contains(&own),
                    "{}: the node's systemd is not in its own cgroup {own}:\n{cg}",
                    self.name
                );
            }
        }
        // A bare node is up when sshd listens on port 22 (0x16).
        let probe = if self.bare {
            "grep -q ' 00000000:0016 ' /proc/net/tcp && echo running"
        } else {
            "systemctl is-system-running"
        };
        loop {
            let o = self.sh(probe);
            let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if state == "running" || state == "degraded" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: not booted within {limit:?} (state {state:?}):\n{}",
                self.name,
                self.console()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Installs this build (binary, unit, D-Bus policy, group `minimega`)
    /// the way the package lays it out, without starting it.
    pub fn install_build(&self) {
        let root = super::project_root();
        let bin = super::BIN;
        self.ok(&format!(
            "install -m 0755 {bin} /usr/bin/minimega && \
             install -m 0644 {0}/systemd/minimega.service /etc/systemd/system/minimega.service && \
             install -m 0644 {0}/systemd/org.minimega.Minimega1.conf /usr/share/dbus-1/system.d/org.minimega.Minimega1.conf && \
             (getent group minimega >/dev/null || groupadd --system minimega) && \
             busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig && \
             systemctl daemon-reload",
            root.display()
        ));
    }

    /// Runs `sh -c cmd` inside the node as root, with a clean environment.
    pub fn sh(&self, cmd: &str) -> Output {
        self.command(cmd).output().unwrap()
    }

    /// A `Command` for `sh -c cmd` inside the node, to add stdin or spawn.
    pub fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.leader.to_string())
            .args(["-a", "-r", "-w", "env", "-i"])
            .arg(format!("PATH={PATH}"))
            .args(["HOME=/root", "LANG=C.UTF-8", "sh", "-c", cmd]);
        c
    }

    /// Runs `cmd` inside; it must succeed; returns its trimmed stdout.
    pub fn ok(&self, cmd: &str) -> String {
        let o = self.sh(cmd);
        assert!(
            o.status.success(),
            "{}: `{cmd}` failed ({}):\n{}{}",
            self.name,
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    }

    /// Polls `cmd` inside until it succeeds.
    pub fn wait_ok(&self, cmd: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let o = self.sh(cmd);
            if o.status.success() {
                return String::from_utf8_lossy(&o.stdout).trim_end().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{}: `{cmd}` did not succeed within {limit:?}: {}{}",
                self.name,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn poweroff(&mut self) {
        if self.leader == 0 {
            return;
        }
        if self.bare {
            // PID 1 of its namespace: everything in it goes with it.
            unsafe { libc::kill(self.leader as i32, libc::SIGKILL) };
        } else {
            let _ = self.command("systemctl poweroff --no-block").output();
        }
    }

    fn reap(&mut self) {
        let Some(mut child) = self.nspawn.take() else {
            return;
        };
        if super::wait_timeout(&mut child, Duration::from_secs(30)).is_none() {
            // PID 1 of a PID namespace ignores SIGTERM: kill from outside.
            if self.leader != 0 {
                unsafe { libc::kill(self.leader as i32, libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn unmount_and_remove(&self) {
        if is_mountpoint(&self.root) {
            let ok = run(&["umount", self.root.to_str().unwrap()])
                .status
                .success()
                || run(&["umount", "-l", self.root.to_str().unwrap()])
                    .status
                    .success();
            if !ok || is_mountpoint(&self.root) {
                eprintln!(
                    "testbed: {} still mounted; leaving {} in place",
                    self.root.display(),
                    self.dir.display()
                );
                return;
            }
        }
        let _ = Command::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&self.dir)
            .status();
    }
}
