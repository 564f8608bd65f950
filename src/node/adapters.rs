//! The adapters that let a lower room call another through a trait it
//! owns: deploy waits on the mesh through `MeshJoin`.

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
