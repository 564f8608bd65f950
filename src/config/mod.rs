//! Daemon and client settings: minimega's Go-style flags (`-base x`,
//! `-force=false`), an optional TOML file, and the embedded defaults.
//! Flags override the file; the file overrides the defaults; no file is
//! needed to run.

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

mod flags;
mod parse;
#[cfg(test)]
mod tests;

pub use flags::{normalize_args, Flags};
pub use parse::{parse_duration, parse_file, parse_port_range, parse_vlan_range, system_hostname};
use parse::{parse_level, read_file, MAX_DURATION};

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
