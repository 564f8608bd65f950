//! Files a launch needs, fetched first: a kernel, initrd, cdrom or disk in
//! the files directory that this node lacks is fetched from the mesh before
//! any VM of the launch exists (the launch waits), and so is every missing
//! backing file of a disk. A file no node has fails the launch, naming it.

use crate::command::BoxFuture;
use crate::disk::qemu_img::{self, QemuImg};
use crate::files::{FileError, Files};
use crate::vm::hooks::{Admission, VmHook};
use crate::vm::VmError;
use std::path::{Path, PathBuf};

/// Backing files followed at most (a loop in a chain ends there).
const CHAIN_MAX: usize = 32;

pub struct FetchHook(pub Files);

impl FetchHook {
    /// Makes `path` present if it is a file of the files directory.
    async fn ensure(&self, what: &str, path: &Path) -> Result<(), VmError> {
        if path.exists() {
            return Ok(());
        }
        // Alone, or outside the files directory: nothing to ask for (the
        // launch's own check says the file is missing).
        let Some(name) = crate::paths::files::name_under(self.0.root(), path) else {
            return Ok(());
        };
        if self.0.alone() {
            return Ok(());
        }
        self.0.fetch(&name).await.map(|_| ()).map_err(|e| {
            VmError::hook(match e {
                FileError::NotFound(_) => format!(
                    "{what} {}: not on this node, and no node of the mesh has it",
                    path.display()
                ),
                other => format!("{what} {}: {other}", path.display()),
            })
        })
    }

    /// A disk and the backing files below it.
    async fn ensure_chain(&self, disk: &Path) -> Result<(), VmError> {
        let mut next: Option<PathBuf> = Some(disk.to_path_buf());
        for _ in 0..CHAIN_MAX {
            let Some(p) = next.take() else {
                return Ok(());
            };
            self.ensure(if p == disk { "disk" } else { "backing file" }, &p)
                .await?;
            if !p.exists() {
                return Ok(());
            }
            next = match qemu_img::describe(&QemuImg, &p).await {
                Ok(i) => i.full_backing_filename.map(PathBuf::from),
                // Not an image qemu-img reads: the launch says why.
                Err(_) => None,
            };
        }
        Ok(())
    }
}

impl VmHook for FetchHook {
    fn name(&self) -> &'static str {
        "files"
    }

    fn admit<'a>(&'a self, launch: &'a Admission<'a>) -> BoxFuture<'a, Result<(), VmError>> {
        Box::pin(async move {
            let c = launch.config;
            for (what, f) in [
                ("kernel", &c.kernel),
                ("initrd", &c.initrd),
                ("cdrom", &c.cdrom),
            ] {
                if !f.is_empty() {
                    self.ensure(what, Path::new(f)).await?;
                }
            }
            for d in &c.disks {
                self.ensure_chain(Path::new(&d.path)).await?;
            }
            Ok(())
        })
    }
}
