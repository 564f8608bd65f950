//! Per-client state, as minimega keeps it per connection: output settings,
//! aliases, whether commands are recorded and preprocessed, and the
//! namespace. A D-Bus caller, a command-socket connection, an `-attach`
//! shell and each mesh request get their own.

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

#[derive(Debug, Clone)]
pub struct Session {
    pub flags: Flags,
    pub aliases: BTreeMap<String, String>,
    /// The namespace commands run in; `None` is the default namespace.
    pub namespace: Option<String>,
    /// The namespace follows the daemon's active one (`namespace NAME`
    /// alone sets it for every client), refreshed before each line. A
    /// `read` pins it for the file; a mesh request names its own.
    pub follow_active: bool,
    pub origin: Origin,
    /// `.record`: lines of this session go into `history`.
    pub record: bool,
    /// `.preprocess`: arguments are expanded (`$VAR`, `file:NAME`) before
    /// a command runs.
    pub preprocess: bool,
    /// Whether the line now running will be recorded; a command may say
    /// no (`history`, `.record false`, `read`).
    pub record_this: bool,
    /// `quit` ran: the front door ends this session after its answer.
    pub quit: bool,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            flags: Flags::default(),
            aliases: BTreeMap::new(),
            namespace: None,
            follow_active: true,
            origin: Origin::Local,
            record: true,
            preprocess: true,
            record_this: false,
            quit: false,
        }
    }
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
            follow_active: namespace.is_none(),
            namespace,
            ..Session::default()
        }
    }
}
