//! minimega: launch and manage QEMU virtual machines across a cluster.
//!
//! - [`command`]: the command language (parse, dispatch, render)
//! - [`daemon`]: the node, its command table and its lifecycle
//! - [`mesh`]: links between daemons, routing, `mesh` commands
//! - [`net`]: experiment networks (VLANs, taps, Open vSwitch bridges)
//! - [`ns`]: namespaces across the mesh, VM placement
//! - [`optimize`]: KSM, hugepages and CPU affinity (`optimize`)
//! - [`plumb`]: the plumber: named pipes and pipelines across the mesh
//! - [`router`]: `router`: router VMs' configuration, and the guest's minirouter
//! - [`dbus`], [`systemd`]: the edges the daemon meets the host through
//! - [`sock`]: minimega's command socket, the second front door
//! - [`vm`]: the VMs of this node
//! - [`cc`]: command and control of guests through their miniccc agent
//! - [`ninep`]: 9P2000 (codec, server, client, FUSE), behind `cc mount`
//! - [`console`]: the VMs' screens over VNC (RFB, kb and fb recordings,
//!   typing, WaitForIt)
//! - [`vnc`]: every VM's VNC port, `vnc` recordings and playbacks
//! - [`serial`]: serial consoles a person attaches to (`minimega -console`)
//! - [`disk`]: disk images (`disk`, `vm config disks`, overlays)
//! - [`files`]: the files directory shared over the mesh (`file`)
//! - [`shell`]: `shell` and `background`
//! - [`client`]: `minimega -e` and `-attach`
//! - [`web`]: the web console, `minimega-web` (its own program over D-Bus)
//! - [`users`]: user and group look-ups
//! - [`durable`]: state files replaced whole, or not at all, with the cause
//! - [`fault`]: the fault switch tests arm (a failing write, a crash at a
//!   named point); armed only by the test daemon
//! - [`confine`]: relative file names kept inside the files directory
//! - [`doc`]: the man page of the commands and the shell completions, made
//!   from the command table and the flags

pub mod base;
pub mod cc;
pub mod cli;
pub mod client;
pub mod command;
pub mod config;
pub mod console;
pub mod container;
pub mod daemon;
pub mod dbus;
pub mod deploy;
pub mod disk;
pub mod doc;
pub mod durable;
pub mod event;
pub mod fault;
pub mod files;
pub mod hostinfo;
pub mod mesh;
pub mod net;
pub mod ninep;
pub mod node;
pub mod ns;
pub mod optimize;
pub mod paths;
pub mod plumb;
pub mod router;
pub mod serial;
pub mod shell;
pub mod sock;
pub mod systemd;
pub mod timefmt;
pub mod users;
pub mod vm;
pub mod vnc;
pub mod web;

/// This build's version, as `version` prints it and peers compare.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod proptests;
