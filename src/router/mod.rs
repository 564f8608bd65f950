//! minimega's `router` command: the state of each router VM (or container)
//! that the daemon keeps per namespace, the forms of the command that set
//! and clear it, the summary `router VM` prints, and the configuration file
//! `router VM commit` writes for the guest's minirouter.
//!
//! Pure: nothing here touches a file, a VM or cc. The daemon owns one
//! [`Router`] per router VM (created on the first form naming it, sized by
//! the VM's networks), calls [`grammar::Form::from_args`] and
//! [`Router::apply`] / [`Router::clear`] for a matched command, prints
//! [`Router::summary`], and for `commit` writes [`Router::commit`]'s file and
//! queues its cc commands.
//!
//! - [`patterns`]: the patterns of `router` and `clear router`
//! - [`grammar`]: the typed forms a match becomes
//! - [`forms`], [`clear`]: one method per form, with minimega's checks
//! - [`summary`]: what `router VM` prints
//! - [`config`]: the minirouter file (`writeConfig`) and the commit's plan
//! - [`minirouter`]: the guest side: that file parsed, and rendered for
//!   `ip`, dnsmasq, bird 2 and nftables
//!
//! Maps that minimega iterates in Go's random order are kept sorted here,
//! so a file or summary is one of the orders minimega could print.

pub mod clear;
pub mod config;
pub mod error;
pub mod forms;
pub mod grammar;
pub mod minirouter;
pub mod patterns;
pub mod summary;

pub use config::{CcCommand, CommitPlan};
pub use error::RouterError;
pub use grammar::{ClearForm, Form};

use std::collections::{BTreeMap, BTreeSet};

/// A router's log level, `router VM log level L` (minirouter's `log level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Fatal => "fatal",
        }
    }

    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "fatal" => LogLevel::Fatal,
            _ => return None,
        })
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One DHCP server, keyed by its listen address (minirouter's dnsmasq tag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dhcp {
    pub addr: String,
    pub low: String,
    pub high: String,
    pub router: String,
    pub dns: String,
    /// MAC to address.
    pub statics: BTreeMap<String, String>,
}

/// One OSPF area.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ospf {
    pub area: String,
    /// Interface (a network index or `lo`) to its options.
    pub interfaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Exported networks (`10.0.0.0/24`) and named static routes.
    pub prefixes: BTreeSet<String>,
}

/// One BGP process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bgp {
    pub name: String,
    pub local_ip: String,
    pub local_as: u32,
    pub neighbor_ip: String,
    pub neighbor_as: u32,
    pub route_reflector: bool,
    /// `all` and names of static routes.
    pub exports: BTreeSet<String>,
}

/// A firewall rule: on an interface (`incoming` when `inbound`) or in a
/// chain. An interface rule whose `action` names a chain and that matches
/// nothing is that chain applied to the interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FwRule {
    pub inbound: bool,
    pub src: String,
    pub dst: String,
    pub proto: String,
    pub action: String,
}

impl FwRule {
    fn is_apply(&self) -> bool {
        self.src.is_empty() && self.dst.is_empty() && self.proto.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FwChain {
    pub default_action: String,
    pub rules: Vec<FwRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewall {
    pub default_action: String,
    /// Rules per network index, in the order given.
    pub rules: Vec<Vec<FwRule>>,
    pub chains: BTreeMap<String, FwChain>,
}

impl Firewall {
    fn new(networks: usize) -> Firewall {
        Firewall {
            default_action: "accept".into(),
            rules: vec![Vec::new(); networks],
            chains: BTreeMap::new(),
        }
    }
}

/// A node's routers, by namespace and the VM's UUID (a VM flushed and
/// launched again under its name is a new router, as in minimega, where
/// routers are keyed by VM id).
pub type Routers = std::sync::Mutex<std::collections::HashMap<(String, String), Router>>;

/// The router ID minimega starts with, meaning "choose one at commit".
pub const UNSET_ROUTER_ID: &str = "0.0.0.0";

/// A router's configuration as the daemon holds it between commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    /// Addresses per network index (`dhcp` for a DHCP client).
    pub ips: Vec<Vec<String>>,
    /// Loopback addresses, keyed by the index given with them.
    pub loopbacks: BTreeMap<i64, String>,
    pub log_level: LogLevel,
    /// Whether addresses changed since the last commit: only then does the
    /// file carry them, so a commit does not cut the guest's connections.
    pub update_ips: bool,
    pub dhcp: BTreeMap<String, Dhcp>,
    /// Address to host names, in the order added.
    pub dns: BTreeMap<String, Vec<String>>,
    pub upstream: String,
    pub gw: String,
    /// Subnets that get router advertisements.
    pub ra: BTreeSet<String>,
    /// Network to next hop.
    pub static_routes: BTreeMap<String, String>,
    /// Name to network to next hop (empty: no next hop).
    pub named_routes: BTreeMap<String, BTreeMap<String, String>>,
    pub ospf: BTreeMap<String, Ospf>,
    pub bgp: BTreeMap<String, Bgp>,
    /// Sticky once chosen at a commit, as in minimega: a later commit keeps
    /// it even when the addresses changed, until `clear router VM rid`.
    pub router_id: String,
    pub fw: Firewall,
}

impl Router {
    /// A router for a VM or container with `networks` interfaces (`vm
    /// config net`). Unlike minimega, a container router takes `fw` forms
    /// too: its minirouter runs nftables in the container's own network
    /// namespace (the container keeps NET_ADMIN).
    pub fn new(networks: usize) -> Router {
        Router {
            ips: vec![Vec::new(); networks],
            loopbacks: BTreeMap::new(),
            log_level: LogLevel::Error,
            update_ips: false,
            dhcp: BTreeMap::new(),
            dns: BTreeMap::new(),
            upstream: String::new(),
            gw: String::new(),
            ra: BTreeSet::new(),
            static_routes: BTreeMap::new(),
            named_routes: BTreeMap::new(),
            ospf: BTreeMap::new(),
            bgp: BTreeMap::new(),
            router_id: UNSET_ROUTER_ID.into(),
            fw: Firewall::new(networks),
        }
    }

    pub fn networks(&self) -> usize {
        self.ips.len()
    }
}

#[cfg(test)]
mod tests;
