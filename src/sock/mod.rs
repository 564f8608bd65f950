//! minimega's command socket at `<base>/minimega`: the protocol its Go
//! client library speaks (SCEPTRE, phenix, minitest and the web UI use it),
//! served beside D-Bus over the same command engine. Each connection is a
//! session of its own, like a D-Bus caller.
//!
//! - [`proto`]: framing and the request and reply objects (no I/O)
//! - [`access`]: who may connect (peer credentials)
//! - [`server`]: the listener the daemon runs
//! - [`client`]: the client `minimega -e`/`-attach` fall back to without a bus

pub mod access;
pub mod client;
pub mod proto;
pub mod server;
