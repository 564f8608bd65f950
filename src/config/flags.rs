//! minimega's command-line flags, Go-style (`-base x`, `-force=false`),
//! parsed by clap after [`normalize_args`] rewrites them.

use clap::Parser;
use std::path::PathBuf;

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
