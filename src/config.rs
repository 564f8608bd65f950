//! Daemon and client settings: minimega's Go-style flags (`-base x`,
//! `-force=false`), an optional TOML file, and the embedded defaults.
//! Flags override the file; the file overrides the defaults; no file is
//! needed to run.

use clap::Parser;
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

pub const DEFAULT_CONFIG: &str = "/etc/minimega/minimega.toml";
pub const DEFAULT_MESH_KEY: &str = "/etc/minimega/mesh.key";
/// The default overcommit ratio of VM memory: half again the host's
/// (see `vm::admission`).
pub const DEFAULT_OVERCOMMIT: f64 = 1.5;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {what} `{value}`: {why}")]
    Value {
        what: &'static str,
        value: String,
        why: String,
    },
}

/// Command-line flags. Every long flag may be written Go-style with one
/// dash (see [`normalize_args`]).
#[derive(Debug, Clone, Parser, Default)]
#[command(name = "minimega", version, disable_version_flag = true, about = "Launch and manage QEMU virtual machines across a cluster", long_about = None)]
pub struct Flags {
    /// Run one command on the running daemon and print its answer
    #[arg(short = 'e', long = "e", action = clap::ArgAction::SetTrue)]
    pub exec: bool,
    /// Attach an interactive shell to the running daemon
    #[arg(long, action = clap::ArgAction::SetTrue)]
    pub attach: bool,
    /// Read settings from this TOML file [default: /etc/minimega/minimega.toml if present]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Base directory for state, the command socket and VM folders [default: /run/minimega under systemd or as root, else $XDG_RUNTIME_DIR/minimega]
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// Mesh TCP port and UDP discovery port [default: 9000]
    #[arg(long)]
    pub port: Option<u16>,
    /// Mesh links to seek automatically; 0 turns broadcast discovery off [default: 0]
    #[arg(long)]
    pub degree: Option<usize>,
    /// Mesh context: only nodes of the same context join automatically [default: minimega]
    #[arg(long)]
    pub context: Option<String>,
    /// Mesh state announcement period, e.g. 10s [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub msa: Option<String>,
    /// Broadcast address for mesh discovery [default: each up interface's IPv4 broadcast address]
    #[arg(long, value_name = "ADDR")]
    pub broadcast: Option<String>,
    /// Log level: debug, info, warn, error [default: info]
    #[arg(long)]
    pub level: Option<String>,
    /// Also log to this file
    #[arg(long, value_name = "FILE")]
    pub logfile: Option<PathBuf>,
    /// Start even if a previous instance's command socket remains
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub force: Option<bool>,
    /// Re-adopt the VMs of a previous instance found under the base directory; false stops and forgets them [default: true]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub recover: Option<bool>,
    /// Do not read commands from standard input when running in the foreground
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub nostdin: Option<bool>,
    /// Print the version and exit
    #[arg(long = "version", short = 'V', action = clap::ArgAction::SetTrue)]
    pub show_version: bool,
    /// Prefix every -e/-attach command with this namespace
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,
    /// Attach standard input and output to a named pipe of the running daemon
    #[arg(long, value_name = "NAME")]
    pub pipe: Option<String>,
    /// D-Bus bus to serve on: system, session, none, or a bus address [default: system]
    #[arg(long, value_name = "BUS")]
    pub bus: Option<String>,
    /// Shared mesh key file [default: /etc/minimega/mesh.key]
    #[arg(long = "meshkey", value_name = "FILE")]
    pub mesh_key: Option<PathBuf>,
    /// Name this node answers as (default: the system host name)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Directory of files VMs refer to by relative name [default: <base>/files]
    #[arg(long, value_name = "DIR")]
    pub filepath: Option<PathBuf>,
    /// Memory VMs may commit, as a multiple of the host's; 0 turns the check off [default: 1.5]
    #[arg(long, value_name = "RATIO")]
    pub overcommit: Option<f64>,
    /// Address the VMs' VNC ports listen on [default: every address]
    #[arg(long = "vncaddr", value_name = "ADDR")]
    pub vnc_addr: Option<String>,
    /// TCP ports VNC ports are taken from, e.g. 5900-5999 [default: any free port]
    #[arg(long = "vncports", value_name = "FIRST-LAST")]
    pub vnc_ports: Option<String>,
    /// Attach the terminal to a VM's serial console (leave with Ctrl-])
    #[arg(long, value_name = "VM")]
    pub console: Option<String>,
    /// The serial port -console attaches to [default: 0]
    #[arg(long, value_name = "N")]
    pub serial: Option<u64>,
    /// Default VLAN range of namespaces, MIN-MAX [default: 101-4096]
    #[arg(long, value_name = "MIN-MAX")]
    pub vlanrange: Option<String>,
    /// Back snapshots (`disk snapshot`, `disk rebase`) by absolute paths instead of relative ones
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub abssnapshot: Option<bool>,
    /// Hash the files directory's files (murmur3), adding a `hash` column to `file list`
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub hashfiles: Option<bool>,
    /// minimega's mesh node for logs and files (accepted; see minimega(1))
    #[arg(long, value_name = "HOST")]
    pub headnode: Option<String>,
    /// minimega's cgroup mount for containers (accepted, no effect: VMs get cgroups from systemd or the daemon's own)
    #[arg(long, value_name = "DIR")]
    pub cgroup: Option<PathBuf>,
    /// minimega's panic on Ctrl-C for Go stack traces (accepted, no effect)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub panic: Option<bool>,
    /// Print the command table as JSON (minimega's -cli) and exit; `-cli=false` is the default
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub cli: Option<bool>,
    /// Log on standard error (false: only the journal or -logfile) [default: true]
    #[arg(long = "v", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub v: Option<bool>,
    /// The same as -v
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub verbose: Option<bool>,
    /// The command to run with -e
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Long flag names that Go-style single-dash spelling may use.
const LONG_FLAGS: &[&str] = &[
    "e",
    "attach",
    "config",
    "base",
    "port",
    "degree",
    "context",
    "msa",
    "broadcast",
    "level",
    "logfile",
    "force",
    "recover",
    "nostdin",
    "version",
    "namespace",
    "pipe",
    "bus",
    "meshkey",
    "hostname",
    "filepath",
    "overcommit",
    "vncaddr",
    "vncports",
    "console",
    "serial",
    "vlanrange",
    "abssnapshot",
    "hashfiles",
    "headnode",
    "cgroup",
    "panic",
    "cli",
    "v",
    "verbose",
    "help",
];

/// Rewrites Go-style flags (`-base x`, `-force=false`) to clap's `--base x`.
/// As in Go, flag parsing ends at the first argument that is not a flag,
/// so `minimega -e vm config -x` leaves the command's words alone.
pub fn normalize_args<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = args.into_iter();
    if let Some(prog) = iter.next() {
        out.push(prog);
    }
    let mut expect_value = false;
    let mut done = false;
    for arg in iter {
        if done {
            out.push(arg);
            continue;
        }
        if expect_value {
            expect_value = false;
            out.push(arg);
            continue;
        }
        if arg == "--" {
            done = true;
            out.push(arg);
            continue;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            // First positional argument: the rest is the command.
            done = true;
            out.push("--".into());
            out.push(arg);
            continue;
        };
        let name = body.split('=').next().unwrap_or("");
        if !LONG_FLAGS.contains(&name) {
            // Short flags pass as they are; anything else is spelled long
            // so clap names it in its "unexpected argument" error.
            out.push(if body.len() == 1 {
                arg
            } else {
                format!("--{body}")
            });
            continue;
        }
        expect_value = !body.contains('=') && takes_value(name);
        out.push(format!("--{body}"));
    }
    out
}

fn takes_value(name: &str) -> bool {
    !matches!(
        name,
        "e" | "attach"
            | "force"
            | "recover"
            | "nostdin"
            | "version"
            | "help"
            | "abssnapshot"
            | "hashfiles"
            | "panic"
            | "cli"
            | "v"
            | "verbose"
    )
}

/// The same settings, from the TOML file. Keys are the flag names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub base: Option<PathBuf>,
    pub port: Option<u16>,
    pub degree: Option<usize>,
    pub context: Option<String>,
    pub msa: Option<String>,
    pub broadcast: Option<String>,
    pub level: Option<String>,
    pub logfile: Option<PathBuf>,
    pub force: Option<bool>,
    pub recover: Option<bool>,
    pub nostdin: Option<bool>,
    pub bus: Option<String>,
    #[serde(alias = "meshkey")]
    pub mesh_key: Option<PathBuf>,
    pub hostname: Option<String>,
    pub filepath: Option<PathBuf>,
    /// Seconds `mesh send` waits for an answer before reporting an error row.
    pub mesh_timeout: Option<u64>,
    pub overcommit: Option<f64>,
    pub vncaddr: Option<String>,
    pub vncports: Option<String>,
    pub vlanrange: Option<String>,
    pub abssnapshot: Option<bool>,
    pub hashfiles: Option<bool>,
    pub headnode: Option<String>,
}

/// Which D-Bus bus the daemon serves on and the client calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    System,
    Session,
    Address(String),
    None,
}

impl Bus {
    pub fn parse(s: &str) -> Bus {
        match s {
            "system" => Bus::System,
            "session" => Bus::Session,
            "none" | "" => Bus::None,
            addr => Bus::Address(addr.to_string()),
        }
    }
}

/// Settings after merging flags, file and defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub base: PathBuf,
    pub port: u16,
    pub degree: usize,
    pub context: String,
    pub msa: Duration,
    /// `None`: every up interface's own broadcast address.
    pub broadcast: Option<Ipv4Addr>,
    pub level: tracing::Level,
    pub logfile: Option<PathBuf>,
    pub force: bool,
    pub recover: bool,
    pub nostdin: bool,
    pub namespace: Option<String>,
    pub bus: Bus,
    pub mesh_key: PathBuf,
    pub hostname: String,
    pub filepath: PathBuf,
    pub mesh_timeout: Duration,
    /// Memory VMs may commit, as a multiple of the host's (0: no limit).
    pub overcommit: f64,
    /// Where VNC ports listen (None: every address, as minimega).
    pub vnc_addr: Option<std::net::IpAddr>,
    /// The ports VNC ports are taken from (None: any free port).
    pub vnc_ports: Option<(u16, u16)>,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// Whether -base or the file chose the base (else [`default_base`]).
    pub base_chosen: bool,
    /// The default VLAN range, `[min, max)` (`-vlanrange MIN-MAX`).
    pub vlan_range: (u16, u16),
    /// Snapshots name their backing image by absolute path.
    pub abs_snapshot: bool,
    /// `file list` shows each file's murmur3 hash.
    pub hash_files: bool,
    /// minimega's head node, unless it names this node (minimega ignores
    /// that too).
    pub headnode: Option<String>,
    /// Whether the log goes to standard error (`-v`, `-verbose`).
    pub log_stderr: bool,
    /// `-cgroup` and `-panic` as given: `args` shows them.
    pub cgroup: PathBuf,
    pub panic: bool,
    /// Flags of minimega given that mean nothing here, for one log line
    /// each at start.
    pub no_effect: Vec<String>,
}

/// True when systemd started us as a service.
pub fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// The base directory when none is given: /run/minimega under systemd and
/// for root, else the user's runtime directory; the original's guessable
/// /tmp/minimega only when there is neither (`-base /tmp/minimega` still
/// chooses it, checked as any base is: see `daemon::base`).
pub fn default_base() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    match runtime {
        _ if under_systemd() || root => PathBuf::from("/run/minimega"),
        Some(dir) => dir.join("minimega"),
        None => PathBuf::from("/tmp/minimega"),
    }
}

impl Config {
    /// Merges `flags` over the config file (the named one, which must
    /// exist, or the default path when present) over the defaults.
    pub fn load(flags: &Flags) -> Result<Config, ConfigError> {
        let (file, path) = match &flags.config {
            Some(p) => (read_file(p)?, Some(p.clone())),
            None if Path::new(DEFAULT_CONFIG).exists() => (
                read_file(Path::new(DEFAULT_CONFIG))?,
                Some(PathBuf::from(DEFAULT_CONFIG)),
            ),
            None => (FileConfig::default(), None),
        };
        let mut c = Config::resolve(flags, &file)?;
        c.file = path;
        Ok(c)
    }

    pub fn resolve(flags: &Flags, file: &FileConfig) -> Result<Config, ConfigError> {
        let chosen = flags.base.clone().or(file.base.clone());
        let base_chosen = chosen.is_some();
        let base = chosen.unwrap_or_else(default_base);
        let msa_text = flags
            .msa
            .clone()
            .or(file.msa.clone())
            .unwrap_or_else(|| "10s".into());
        // minimega's -msa is a number of seconds; a Go duration works too.
        let msa = match msa_text.parse::<u64>() {
            Ok(secs) if secs <= MAX_DURATION.as_secs() => Ok(Duration::from_secs(secs)),
            _ => parse_duration(&msa_text),
        }
        .map_err(|why| ConfigError::Value {
            what: "msa",
            value: msa_text.clone(),
            why,
        })?;
        let broadcast = match flags.broadcast.clone().or(file.broadcast.clone()) {
            None => None,
            Some(bc) => Some(bc.parse().map_err(|_| ConfigError::Value {
                what: "broadcast address",
                value: bc.clone(),
                why: "not an IPv4 address".into(),
            })?),
        };
        let level_text = flags
            .level
            .clone()
            .or(file.level.clone())
            .unwrap_or_else(|| "info".into());
        let level = parse_level(&level_text)?;
        let context = flags
            .context
            .clone()
            .or(file.context.clone())
            .unwrap_or_else(|| "minimega".into());
        if context.is_empty() || context.len() > 255 {
            return Err(ConfigError::Value {
                what: "context",
                value: context,
                why: "must be 1 to 255 bytes".into(),
            });
        }
        let hostname = match flags.hostname.clone().or(file.hostname.clone()) {
            Some(h) => h,
            None => system_hostname(),
        };
        if hostname.is_empty()
            || hostname.contains(|c: char| c.is_whitespace() || c == ',' || c == '[')
        {
            return Err(ConfigError::Value {
                what: "hostname",
                value: hostname,
                why: "must be one word without `,` or `[`".into(),
            });
        }
        let overcommit = flags
            .overcommit
            .or(file.overcommit)
            .unwrap_or(DEFAULT_OVERCOMMIT);
        if !(0.0..=1000.0).contains(&overcommit) {
            return Err(ConfigError::Value {
                what: "overcommit ratio",
                value: overcommit.to_string(),
                why: "must be a number from 0 (no limit) to 1000".into(),
            });
        }
        let vnc_addr = match flags.vnc_addr.clone().or(file.vncaddr.clone()) {
            None => None,
            Some(a) => Some(a.parse().map_err(|_| ConfigError::Value {
                what: "vncaddr",
                value: a.clone(),
                why: "not an IP address".into(),
            })?),
        };
        let vnc_ports = match flags.vnc_ports.clone().or(file.vncports.clone()) {
            None => None,
            Some(r) => Some(parse_port_range(&r).map_err(|why| ConfigError::Value {
                what: "vncports",
                value: r.clone(),
                why,
            })?),
        };
        let range_text = flags
            .vlanrange
            .clone()
            .or(file.vlanrange.clone())
            .unwrap_or_else(|| "101-4096".into());
        let vlan_range = parse_vlan_range(&range_text).map_err(|why| ConfigError::Value {
            what: "VLAN range",
            value: range_text.clone(),
            why: why.into(),
        })?;
        let headnode = flags
            .headnode
            .clone()
            .or(file.headnode.clone())
            .filter(|h| !h.is_empty() && *h != hostname);
        let mut no_effect = Vec::new();
        if let Some(c) = &flags.cgroup {
            no_effect.push(format!(
                "-cgroup {}: minimega's container cgroups; VMs here get theirs from systemd or under the daemon's own cgroup",
                c.display()
            ));
        }
        if flags.panic == Some(true) {
            no_effect.push("-panic: there are no Go stack traces to print".into());
        }
        if let Some(h) = &headnode {
            no_effect.push(format!(
                "-headnode {h}: logs go to the journal (or -logfile) and files come from any node that has them"
            ));
        }
        Ok(Config {
            vlan_range,
            abs_snapshot: flags.abssnapshot.or(file.abssnapshot).unwrap_or(false),
            hash_files: flags.hashfiles.or(file.hashfiles).unwrap_or(false),
            headnode,
            log_stderr: flags.v.unwrap_or(true) && flags.verbose.unwrap_or(true),
            cgroup: flags
                .cgroup
                .clone()
                .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup")),
            panic: flags.panic.unwrap_or(false),
            no_effect,
            overcommit,
            vnc_addr,
            vnc_ports,
            filepath: flags
                .filepath
                .clone()
                .or(file.filepath.clone())
                .unwrap_or_else(|| base.join("files")),
            base,
            port: flags.port.or(file.port).unwrap_or(9000),
            degree: flags.degree.or(file.degree).unwrap_or(0),
            context,
            msa,
            broadcast,
            level,
            logfile: flags.logfile.clone().or(file.logfile.clone()),
            force: flags.force.or(file.force).unwrap_or(false),
            recover: flags.recover.or(file.recover).unwrap_or(true),
            nostdin: flags.nostdin.or(file.nostdin).unwrap_or(false),
            namespace: flags.namespace.clone(),
            bus: Bus::parse(
                &flags
                    .bus
                    .clone()
                    .or(file.bus.clone())
                    .unwrap_or_else(|| "system".into()),
            ),
            mesh_key: flags
                .mesh_key
                .clone()
                .or(file.mesh_key.clone())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_MESH_KEY)),
            hostname,
            mesh_timeout: Duration::from_secs(file.mesh_timeout.unwrap_or(10)),
            file: None,
            base_chosen,
        })
    }

    /// `args`: every flag the daemon has and the value it runs with, in
    /// the order Go's flag package lists them (by name), as minimega's
    /// `args` prints them; phenix reads `filepath` there.
    pub fn args(&self) -> Vec<(&'static str, String)> {
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let bus = match &self.bus {
            Bus::System => "system".to_string(),
            Bus::Session => "session".to_string(),
            Bus::Address(a) => a.clone(),
            Bus::None => "none".to_string(),
        };
        let mut v = vec![
            ("abssnapshot", self.abs_snapshot.to_string()),
            ("cgroup", self.cgroup.display().to_string()),
            ("cli", "false".to_string()),
            ("hashfiles", self.hash_files.to_string()),
            ("headnode", self.headnode.clone().unwrap_or_default()),
            ("panic", self.panic.to_string()),
            ("pipe", String::new()),
            ("v", self.log_stderr.to_string()),
            ("verbose", self.log_stderr.to_string()),
            (
                "vlanrange",
                format!("{}-{}", self.vlan_range.0, self.vlan_range.1),
            ),
            ("attach", "false".to_string()),
            ("base", self.base.display().to_string()),
            // Unset, discovery sends to each up interface's broadcast
            // address; minimega's default shown, as clients expect it.
            (
                "broadcast",
                self.broadcast
                    .map_or_else(|| "255.255.255.255".to_string(), |b| b.to_string()),
            ),
            ("bus", bus),
            ("config", path(&self.file)),
            ("context", self.context.clone()),
            ("degree", self.degree.to_string()),
            ("e", "false".to_string()),
            ("filepath", self.filepath.display().to_string()),
            ("force", self.force.to_string()),
            ("hostname", self.hostname.clone()),
            ("level", self.level.to_string().to_lowercase()),
            ("logfile", path(&self.logfile)),
            ("meshkey", self.mesh_key.display().to_string()),
            // minimega's -msa is whole seconds.
            (
                "msa",
                if self.msa.subsec_nanos() == 0 {
                    self.msa.as_secs().to_string()
                } else {
                    crate::timefmt::go_duration(self.msa)
                },
            ),
            ("namespace", self.namespace.clone().unwrap_or_default()),
            ("nostdin", self.nostdin.to_string()),
            ("port", self.port.to_string()),
            ("recover", self.recover.to_string()),
            ("version", "false".to_string()),
            (
                "vncaddr",
                self.vnc_addr.map(|a| a.to_string()).unwrap_or_default(),
            ),
            (
                "vncports",
                self.vnc_ports
                    .map(|(a, b)| format!("{a}-{b}"))
                    .unwrap_or_default(),
            ),
        ];
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// The command socket minimega's tools connect to.
    pub fn socket_path(&self) -> PathBuf {
        self.base.join("minimega")
    }

    /// Where a client looks for the command socket: the base's, and when
    /// no base was chosen also a root daemon's and the original's place
    /// (a user's default base differs from root's).
    pub fn socket_paths(&self) -> Vec<PathBuf> {
        let mut out = vec![self.socket_path()];
        if !self.base_chosen {
            for p in ["/run/minimega/minimega", "/tmp/minimega/minimega"] {
                if !out.iter().any(|o| o == Path::new(p)) {
                    out.push(PathBuf::from(p));
                }
            }
        }
        out
    }
}

/// `-vlanrange MIN-MAX`, checked as minimega checks it, within the VLAN
/// numbers a switch has.
pub fn parse_vlan_range(s: &str) -> Result<(u16, u16), &'static str> {
    let Some((a, b)) = s.split_once('-') else {
        return Err("expected MIN-MAX, e.g. 101-4096");
    };
    let (Ok(min), Ok(max)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>()) else {
        return Err("expected integer values for VLAN range");
    };
    if max <= min {
        return Err("expected min < max for VLAN range");
    }
    if min == 0 || max > 4096 {
        return Err("VLANs are 1 to 4095 (max 4096, not included)");
    }
    Ok((min, max))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text).map_err(|message| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.message().to_string())
}

/// `FIRST-LAST` (or one port): a range of TCP ports, neither 0.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let port = |p: &str| -> Result<u16, String> {
        match p.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("`{p}` is not a port (1 to 65535)")),
            Ok(n) => Ok(n),
        }
    };
    let (a, b) = (port(a)?, port(b)?);
    if a > b {
        return Err("the first port is above the last".into());
    }
    Ok((a, b))
}

fn parse_level(s: &str) -> Result<tracing::Level, ConfigError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "debug" => tracing::Level::DEBUG,
        "info" => tracing::Level::INFO,
        "warn" | "warning" => tracing::Level::WARN,
        "error" | "fatal" => tracing::Level::ERROR,
        _ => {
            return Err(ConfigError::Value {
                what: "log level",
                value: s.into(),
                why: "expected debug, info, warn or error".into(),
            })
        }
    })
}

/// Parses Go-style durations: `10s`, `500ms`, `1m30s`, `2h`.
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err("expected a number".into());
        }
        let n: f64 = rest[..digits]
            .parse()
            .map_err(|_| "bad number".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err("missing unit (e.g. 10s)".into()),
            u => return Err(format!("unknown unit `{u}`")),
        };
        // A bound far past any real timeout, so sums and multiples of it
        // (3 x msa, deadlines) can never overflow.
        total = Duration::try_from_secs_f64(n * unit)
            .ok()
            .and_then(|d| total.checked_add(d))
            .filter(|d| *d <= MAX_DURATION)
            .ok_or("too long a duration (at most 10 years)")?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

pub fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).to_string();
    // minimega names nodes by their short host name.
    name.split('.').next().unwrap_or("localhost").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
