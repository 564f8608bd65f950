//! The switch: Open vSwitch behind the small [`Switch`] trait, talked to
//! over OVSDB's JSON-RPC on its unix socket (no `ovs-vsctl` process per
//! port). [`open`] is the factory: it finds the database and chooses the
//! datapath new bridges get (the kernel's where its openvswitch module is
//! loaded, else OVS's userspace one), and says which once in the log.
//!
//! - [`txn`]: the transactions, pure
//! - [`rpc`]: JSON-RPC over the socket
//! - [`driver`]: [`Ovs`], the [`Switch`] that sends them

pub mod driver;
pub mod rpc;
pub mod txn;

pub use driver::Ovs;
pub use txn::{BondSpec, Op, PortKind, PortSpec};

use crate::command::BoxFuture;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;
use tracing::{info, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datapath {
    Kernel,
    Userspace,
}

impl Datapath {
    /// The Bridge table's `datapath_type`.
    pub fn ovs_type(self) -> &'static str {
        match self {
            Datapath::Kernel => "system",
            Datapath::Userspace => "netdev",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Datapath::Kernel => "kernel",
            Datapath::Userspace => "userspace",
        }
    }
}

#[derive(Debug, Error)]
pub enum SwitchError {
    #[error("Open vSwitch is not installed: install openvswitch-switch (Debian, Ubuntu) or openvswitch (Fedora, RHEL) to give VMs networks")]
    NotInstalled,
    #[error("Open vSwitch is not running: {0} (start openvswitch-switch, or set OVS_RUNDIR to where its db.sock is)")]
    NotRunning(rpc::RpcError),
    #[error(transparent)]
    Rpc(#[from] rpc::RpcError),
    #[error("Open vSwitch refused the change: {0}")]
    Refused(String),
    #[error("ovs-vswitchd did not apply the change within {0:?}: is it running?")]
    NotApplied(std::time::Duration),
}

/// A port as the switch has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortState {
    pub name: String,
    pub tag: Option<u16>,
    /// The interface's type: "" (a system device), internal, vxlan, ...
    pub kind: String,
    /// Whose port it is (`external_ids` [`txn::OWNER_KEY`]); empty for
    /// ports no VM owns.
    pub owner: String,
    /// Its interfaces' names, when it has several (a bond).
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeState {
    pub name: String,
    pub datapath: String,
    pub ports: Vec<PortState>,
}

pub trait Switch: Send + Sync + 'static {
    fn datapath(&self) -> Datapath;

    /// Whether the switch is there to be used.
    fn check(&self) -> BoxFuture<'_, Result<(), SwitchError>>;

    /// Applies a batch in one transaction and waits until the switch has
    /// set it up. Returns the ports (and new bridges) whose device could
    /// not be set up, with the switch's reason; new bridges among them are
    /// removed again.
    fn apply<'a>(
        &'a self,
        ops: &'a [Op],
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, SwitchError>>;

    fn bridges(&self) -> BoxFuture<'_, Result<Vec<BridgeState>, SwitchError>>;
}

/// The database socket: `$OVS_RUNDIR/db.sock` (Open vSwitch's own
/// variable), else the packaged `/var/run/openvswitch/db.sock`.
pub fn db_socket() -> PathBuf {
    let dir = std::env::var_os("OVS_RUNDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/run/openvswitch"));
    dir.join("db.sock")
}

fn kernel_module_loaded() -> bool {
    std::path::Path::new("/sys/module/openvswitch").exists()
}

/// The switch of this node. It says which datapath it uses once, in the
/// log, when it first reaches the database.
pub fn open() -> Arc<dyn Switch> {
    let datapath = if kernel_module_loaded() {
        Datapath::Kernel
    } else {
        Datapath::Userspace
    };
    Arc::new(Ovs::new(db_socket(), datapath))
}

/// The one log line about the datapath.
fn announce(path: &std::path::Path, datapath: Datapath) {
    match datapath {
        Datapath::Kernel => info!(
            "networks: Open vSwitch at {}, kernel datapath",
            path.display()
        ),
        Datapath::Userspace => warn!(
            "networks: the openvswitch kernel module is not loaded; new bridges use Open vSwitch's userspace datapath (netdev), which is slower (Open vSwitch at {})",
            path.display()
        ),
    }
}
