//! The adapters that let a lower room call another through a trait it
//! owns: deploy waits on the mesh through `MeshJoin`; a VNC playback
//! fetches a file only another node has through `vnc::Fetch`.

use crate::command::BoxFuture;
use crate::deploy::MeshJoin;
use crate::mesh::{Mesh, MeshError};

/// `deploy` dials the nodes it started and waits until the mesh knows them.
impl MeshJoin for Mesh {
    fn dial(&self, addr: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match Mesh::dial(self, &addr).await {
                Ok(_) | Err(MeshError::AlreadyLinked(_)) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn knows(&self, host: &str) -> bool {
        Mesh::knows(self, host)
    }
}

/// A playback's file that is in the files directory but not on this node
/// is fetched from whichever node has it.
pub struct FetchFiles(pub crate::files::Files);

impl crate::vnc::Fetch for FetchFiles {
    fn fetch<'a>(&'a self, path: &'a std::path::Path) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some(name) = crate::paths::files::name_under(self.0.root(), path) else {
                return Err(format!("{} is outside the files directory", path.display()));
            };
            if self.0.alone() {
                return Err("no other node to fetch it from".into());
            }
            self.0
                .fetch(&name)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}
