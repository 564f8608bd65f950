//! Per-client state, as minimega keeps it per connection: output settings,
//! aliases and the current namespace. A D-Bus caller, a command-socket
//! connection, an `-attach` shell and each mesh request get their own.

use super::response::Flags;
use std::collections::BTreeMap;

/// Where a command came from. Some commands may not arrive over the mesh
/// (minimega refuses a remote `mesh send` or `vm launch`, to stop loops).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    #[default]
    Local,
    /// Sent by another node of the mesh.
    Mesh { from: String },
}

#[derive(Debug, Clone, Default)]
pub struct Session {
    pub flags: Flags,
    pub aliases: BTreeMap<String, String>,
    /// `None` is the default namespace.
    pub namespace: Option<String>,
    pub origin: Origin,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    pub fn from_mesh(from: &str, namespace: Option<String>) -> Session {
        Session {
            origin: Origin::Mesh {
                from: from.to_string(),
            },
            namespace,
            ..Session::default()
        }
    }
}
