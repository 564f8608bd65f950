//! The pure half of deploy: what to ask a target, how to read its answer,
//! which package to send it, and the files and commands that install and
//! start minimega there. Nothing here touches the network.

use std::path::{Path, PathBuf};

/// Quotes a word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r#"'\''"#))
}

/// A command line of quoted words.
fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Asks a target what it is. Each line of the answer is `key=value`.
pub const PROBE: &str = "echo arch=$(uname -m); echo name=$(hostname -s); \
if command -v dpkg >/dev/null 2>&1; then echo pkg=deb; elif command -v rpm >/dev/null 2>&1; then echo pkg=rpm; fi; \
[ -d /run/systemd/system ] && echo systemd=yes; \
v=$(minimega -version 2>/dev/null) && echo installed=${v#minimega }; \
[ -f /etc/minimega/mesh.key ] && echo key=$(sha256sum </etc/minimega/mesh.key | cut -d' ' -f1); \
[ -f /etc/systemd/system/minimega.service.d/deploy.conf ] && echo dropin=$(sha256sum </etc/systemd/system/minimega.service.d/deploy.conf | cut -d' ' -f1); \
systemctl is-active --quiet minimega 2>/dev/null && echo active=yes; \
p=$(pgrep -xo minimega) && echo running=$(tr '\\0' ' ' </proc/$p/cmdline); true";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageKind {
    Deb,
    Rpm,
}

/// What the probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub arch: String,
    /// The host's own short name, as it will appear in the mesh.
    pub name: String,
    pub pkg: Option<PackageKind>,
    pub systemd: bool,
    pub installed: Option<String>,
    pub key_sha256: Option<String>,
    pub dropin_sha256: Option<String>,
    pub active: bool,
    /// The command line of a running daemon, if any.
    pub running: Option<String>,
}

pub fn parse_probe(out: &str) -> Target {
    let mut t = Target::default();
    for line in out.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim() {
            "arch" => t.arch = v,
            "name" => t.name = v,
            "pkg" if v == "deb" => t.pkg = Some(PackageKind::Deb),
            "pkg" if v == "rpm" => t.pkg = Some(PackageKind::Rpm),
            "systemd" => t.systemd = v == "yes",
            "installed" if !v.is_empty() => t.installed = Some(v),
            "key" if !v.is_empty() => t.key_sha256 = Some(v),
            "dropin" if !v.is_empty() => t.dropin_sha256 = Some(v),
            "active" => t.active = v == "yes",
            "running" if !v.is_empty() => t.running = Some(v),
            _ => {}
        }
    }
    t
}

/// Debian's name for an architecture `uname -m` reports.
fn deb_arch(uname: &str) -> &str {
    match uname {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Picks the package for `target` among `files` (names in the package
/// directory): `minimega_<version>_<arch>.deb` or
/// `minimega-<version>-<release>.<arch>.rpm`.
pub fn pick_package(files: &[PathBuf], version: &str, target: &Target) -> Option<PathBuf> {
    let kind = target.pkg?;
    files
        .iter()
        .find(|p| {
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                return false;
            };
            match kind {
                PackageKind::Deb => {
                    name == format!("minimega_{version}_{}.deb", deb_arch(&target.arch))
                }
                PackageKind::Rpm => {
                    name.starts_with(&format!("minimega-{version}-"))
                        && name.ends_with(&format!(".{}.rpm", target.arch))
                }
            }
        })
        .cloned()
}

/// How the head node runs, which the nodes copy (minimega passes its own
/// flags to the daemons it deploys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadFlags {
    pub port: u16,
    pub degree: usize,
    pub context: String,
    pub msa_secs: u64,
    /// Given only when the head has one: otherwise each node broadcasts on
    /// its own interfaces.
    pub broadcast: Option<String>,
}

impl HeadFlags {
    /// The daemon's command line on a node: the head's flags, then the
    /// `deploy flags` extras (which win, as later flags do).
    pub fn argv(&self, binary: &str, extra: &[String]) -> Vec<String> {
        let mut v = vec![
            binary.to_string(),
            "-nostdin".into(),
            "-force".into(),
            "-port".into(),
            self.port.to_string(),
            "-degree".into(),
            self.degree.to_string(),
            "-context".into(),
            self.context.clone(),
            "-msa".into(),
            format!("{}s", self.msa_secs),
        ];
        if let Some(b) = &self.broadcast {
            v.extend(["-broadcast".into(), b.clone()]);
        }
        v.extend(extra.iter().cloned());
        v
    }
}

/// Where deploy's output redirection goes, if set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redirect {
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

/// A systemd drop-in that runs the packaged unit with the head's flags,
/// leaving the package's conffile alone.
pub fn dropin(argv: &[String], redirect: &Redirect) -> String {
    // systemd would expand `%` specifiers and `$` variables in ExecStart.
    let cmd = shell_join(argv).replace('%', "%%").replace('$', "$$");
    let mut s = format!("# Written by `deploy launch` on the head node; `deploy remove` deletes it.\n[Service]\nExecStart=\nExecStart={cmd}\n");
    if let Some(o) = &redirect.stdout {
        s.push_str(&format!("StandardOutput=append:{o}\n"));
    }
    if let Some(e) = &redirect.stderr {
        s.push_str(&format!("StandardError=append:{e}\n"));
    }
    s
}

pub const DROPIN_DIR: &str = "/etc/systemd/system/minimega.service.d";
pub const DROPIN: &str = "/etc/systemd/system/minimega.service.d/deploy.conf";
pub const MESH_KEY: &str = "/etc/minimega/mesh.key";
pub const STAGING: &str = "/var/tmp/minimega-deploy";

/// Installs an uploaded package; on failure, removes what it half-made.
pub fn install_package(kind: PackageKind, file: &str) -> String {
    let f = shell_quote(file);
    match kind {
        PackageKind::Deb => format!(
            "export DEBIAN_FRONTEND=noninteractive; \
             dpkg -i --force-confold {f} >/dev/null 2>&1 || apt-get -y -q -o Dpkg::Options::=--force-confold -f install \
             || {{ dpkg --purge minimega >/dev/null 2>&1; exit 1; }}"
        ),
        PackageKind::Rpm => format!(
            "if command -v dnf >/dev/null; then dnf -y -q install {f}; \
             elif command -v yum >/dev/null; then yum -y -q install {f}; else rpm -U --replacepkgs {f}; fi \
             || {{ rpm -e minimega >/dev/null 2>&1; exit 1; }}"
        ),
    }
}

/// Starts (or restarts, so new flags apply) the service and checks it runs.
pub const START: &str =
    "systemctl daemon-reload && systemctl enable --quiet minimega && systemctl restart minimega \
&& systemctl is-active --quiet minimega";

/// Stops and undoes what deploy and the package made. The files a binary
/// deploy puts by hand go too, also beside a package: left there, an old
/// binary first in PATH would outlive the package.
pub fn remove(kind: Option<PackageKind>) -> String {
    let purge = match kind {
        Some(PackageKind::Deb) => "DEBIAN_FRONTEND=noninteractive apt-get -y -q purge minimega >/dev/null 2>&1 || dpkg --purge minimega; ",
        Some(PackageKind::Rpm) => "rpm -e minimega; ",
        None => "",
    };
    format!(
        "systemctl disable --now --quiet minimega 2>/dev/null; pkill -x minimega 2>/dev/null; \
         rm -f {DROPIN}; rmdir {DROPIN_DIR} 2>/dev/null; {purge}\
         rm -f /usr/local/bin/minimega /etc/systemd/system/minimega.service /etc/dbus-1/system.d/org.minimega.Minimega1.conf {MESH_KEY}; \
         rmdir /etc/minimega 2>/dev/null; systemctl daemon-reload 2>/dev/null; true"
    )
}

/// Where a daemon started without systemd writes, unless `deploy stdout`
/// or `deploy stderr` say otherwise.
pub const PLAIN_LOG: &str = "/var/log/minimega.log";

/// Starts the daemon on a node without systemd, as minimega's deploy does
/// (`nohup <binary> <flags> &`), replacing one already running, and fails
/// with its last words when it does not stay up.
pub fn start_plain(argv: &[String], redirect: &Redirect) -> String {
    let cmd = shell_join(argv);
    let out = shell_quote(redirect.stdout.as_deref().unwrap_or(PLAIN_LOG));
    let err = shell_quote(redirect.stderr.as_deref().unwrap_or(PLAIN_LOG));
    format!(
        "pkill -x minimega; for i in 1 2 3 4 5 6 7 8 9 10; do pgrep -x minimega >/dev/null || break; sleep 0.2; done; \
         nohup {cmd} </dev/null >>{out} 2>>{err} & sleep 1; \
         pgrep -x minimega >/dev/null || {{ tail -n 1 {err} >&2; exit 1; }}"
    )
}

/// True when the running daemon's command line is `argv`.
pub fn runs(target: &Target, argv: &[String]) -> bool {
    target.running.as_deref().map(str::trim) == Some(argv.join(" ").as_str())
}

/// The package directory's files, for [`pick_package`].
pub fn list_packages(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/usr/bin/minimega"), "/usr/bin/minimega");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r#"'it'\''s'"#);
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn probe_answers() {
        let t = parse_probe(
            "arch=x86_64\nname=node1\npkg=deb\nsystemd=yes\ninstalled=0.1.0\nkey=abc\nactive=yes\n",
        );
        assert_eq!(t.arch, "x86_64");
        assert_eq!(t.name, "node1");
        assert_eq!(t.pkg, Some(PackageKind::Deb));
        assert!(t.systemd && t.active);
        assert_eq!(t.installed.as_deref(), Some("0.1.0"));
        let bare = parse_probe("arch=aarch64\nname=n\n");
        assert_eq!(bare.pkg, None);
        assert!(!bare.systemd && bare.installed.is_none());
    }

    #[test]
    fn package_choice() {
        let files: Vec<PathBuf> = [
            "minimega_0.1.0_amd64.deb",
            "minimega_0.0.9_amd64.deb",
            "minimega-0.1.0-1.x86_64.rpm",
            "minimega_0.1.0_arm64.deb",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let mut t = parse_probe("arch=x86_64\npkg=deb");
        assert_eq!(
            pick_package(&files, "0.1.0", &t).unwrap(),
            PathBuf::from("minimega_0.1.0_amd64.deb")
        );
        t.pkg = Some(PackageKind::Rpm);
        assert_eq!(
            pick_package(&files, "0.1.0", &t).unwrap(),
            PathBuf::from("minimega-0.1.0-1.x86_64.rpm")
        );
        t.arch = "riscv64".into();
        assert_eq!(pick_package(&files, "0.1.0", &t), None);
        t.pkg = None;
        assert_eq!(pick_package(&files, "0.1.0", &t), None);
    }

    #[test]
    fn node_command_line_copies_the_head() {
        let h = HeadFlags {
            port: 9000,
            degree: 3,
            context: "lab x".into(),
            msa_secs: 10,
            broadcast: Some("10.0.0.255".into()),
        };
        let argv = h.argv("/usr/bin/minimega", &["-degree".into(), "5".into()]);
        assert_eq!(argv[..3], ["/usr/bin/minimega", "-nostdin", "-force"]);
        assert!(argv.ends_with(&["-degree".into(), "5".into()]));
        let d = dropin(
            &argv,
            &Redirect {
                stdout: Some("/var/log/mm.out".into()),
                stderr: None,
            },
        );
        assert!(d.contains("ExecStart=\nExecStart=/usr/bin/minimega -nostdin -force -port 9000 -degree 3 -context 'lab x'"));
        assert!(d.contains("StandardOutput=append:/var/log/mm.out"));
        assert!(!d.contains("StandardError"));
    }

    #[test]
    fn without_systemd_the_daemon_runs_under_nohup() {
        let argv: Vec<String> = ["/usr/local/bin/minimega", "-nostdin", "-context", "a b"]
            .map(String::from)
            .to_vec();
        let cmd = start_plain(&argv, &Redirect::default());
        assert!(cmd.contains("nohup /usr/local/bin/minimega -nostdin -context 'a b' </dev/null >>/var/log/minimega.log"));
        let t = parse_probe("running=/usr/local/bin/minimega -nostdin -context a b \n");
        assert!(runs(&t, &argv));
        assert!(!runs(&parse_probe(""), &argv));
    }

    #[test]
    fn failed_installs_clean_up() {
        assert!(install_package(PackageKind::Deb, "/x.deb").contains("dpkg --purge minimega"));
        assert!(install_package(PackageKind::Rpm, "/x.rpm").contains("rpm -e minimega"));
        assert!(remove(Some(PackageKind::Deb)).contains("disable --now"));
        // A binary an earlier deploy sent goes with the package.
        assert!(remove(Some(PackageKind::Deb)).contains("rm -f /usr/local/bin/minimega"));
    }

    #[test]
    fn the_dropin_escapes_what_systemd_would_expand() {
        let argv: Vec<String> = ["/usr/bin/minimega", "-context", "50%$HOME"]
            .map(String::from)
            .to_vec();
        assert!(dropin(&argv, &Redirect::default())
            .contains("ExecStart=/usr/bin/minimega -context '50%%$$HOME'\n"));
    }
}
