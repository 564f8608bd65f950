//! What the daemon tells a container's monitor (`minimega container-shim`):
//! one JSON file in the VM's folder, written before the monitor starts.
//! Pure data; the daemon builds it from the VM's configuration, the
//! monitor reads it.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File names inside the VM's folder.
pub const SPEC_FILE: &str = "container.json";
/// The daemon-side end of the cc relay (the daemon dials it, as it dials
/// QEMU's virtio-serial socket).
pub const CC_SOCKET: &str = "cc";
/// The agent-side end, bind-mounted at [`CC_IN_CONTAINER`].
pub const CC_AGENT_SOCKET: &str = "cc-agent";
pub const CC_IN_CONTAINER: &str = "/cc";
/// The console: the pty's master side served on a unix socket, one client
/// at a time (like QEMU's serial sockets), everything also in the log.
pub const CONSOLE_SOCKET: &str = "console";
pub const CONSOLE_LOG: &str = "console.log";
/// Mount point of the root file system (inside the container's own mount
/// namespace only: nothing is mounted in the host's).
pub const ROOTFS_DIR: &str = "rootfs";
/// The overlay's upper and work directories (`snapshot true`).
pub const UPPER_DIR: &str = "upper";
pub const WORK_DIR: &str = "work";

/// One NIC: the veth end the daemon made on the host, moved into the
/// container's network namespace and renamed there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicSpec {
    /// The host-side name of the end that goes into the container.
    pub peer: String,
    /// Its name inside (`eth0`, `eth1`, ...).
    pub name: String,
    pub mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub name: String,
    pub uuid: String,
    pub hostname: String,
    /// The VM's folder: sockets, logs, fifos, the overlay's layers.
    pub vmdir: PathBuf,
    pub filesystem: PathBuf,
    /// An overlay over `filesystem` (upper layer in `vmdir`); false: the
    /// container writes into `filesystem` itself.
    pub snapshot: bool,
    /// PID 1's argv; the first word is a path inside the file system.
    pub init: Vec<String>,
    /// Run as root after the namespaces exist, before the container's own
    /// setup (empty: none).
    pub preinit: String,
    /// `vmdir/fifoN` on the host, `/dev/fifos/fifoN` inside.
    pub fifos: u64,
    /// (path inside, host path) bind mounts.
    pub volumes: Vec<(String, PathBuf)>,
    pub nics: Vec<NicSpec>,
    /// The network namespace's name (`/run/netns/NAME`, so `ip netns exec`
    /// enters it).
    pub netns: String,
    /// MiB, for the record (the limit itself is the cgroup's).
    pub memory: u64,
    /// A name unique on this node for cgroups the monitor makes itself
    /// (the v1 freezer's).
    pub cgroup_leaf: String,
}

impl Spec {
    pub fn path(vmdir: &Path) -> PathBuf {
        vmdir.join(SPEC_FILE)
    }
    pub fn rootfs(&self) -> PathBuf {
        self.vmdir.join(ROOTFS_DIR)
    }
    pub fn fifo(&self, n: u64) -> PathBuf {
        self.vmdir.join(format!("fifo{n}"))
    }
}

/// The monitor's argv after the program: the QMP socket in QEMU's own
/// `-chardev` form, so a restarted daemon recognises a live monitor the way
/// it recognises a live QEMU (`vm::process::is_qemu_of`).
pub fn shim_args(name: &str, vmdir: &Path) -> Vec<String> {
    vec![
        SHIM_VERB.into(),
        "-name".into(),
        name.into(),
        "-chardev".into(),
        format!(
            "socket,id=qmp,path={},server=on,wait=off",
            vmdir.join("qmp").display()
        ),
        "-spec".into(),
        Spec::path(vmdir).display().to_string(),
    ]
}

/// `minimega container-shim ...`: the monitor, a mode of the daemon's own
/// binary (as `runc init` is runc's), so it is where the daemon is.
pub const SHIM_VERB: &str = "container-shim";
/// `minimega container-init SPEC`: the stage that becomes PID 1's parent
/// inside the new namespaces.
pub const INIT_VERB: &str = "container-init";
