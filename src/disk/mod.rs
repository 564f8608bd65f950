//! Disk images: `disk create/snapshot/info/commit/rebase/set-backing/
//! resize/inject` with qemu-img, the `vm config disks` specs, and the hook
//! that gives each VM its overlay.
//!
//! - [`spec`], [`args`], [`info`], [`partition`]: pure (specs and QEMU
//!   drives, command words, qemu-img's JSON, partition tables)
//! - [`qemu_img`]: qemu-img behind [`qemu_img::Tool`]
//! - [`inject`], [`mtools`]: the nbd-free injection route and its cleanup
//! - [`hook`]: overlays and disk conflicts at launch
//! - [`commands`]: the command table

pub mod args;
pub mod hook;
pub mod info;
pub mod inject;
pub mod mtools;
pub mod partition;
pub mod qemu_img;

use crate::paths::files::{self as path, PathError};
use crate::vm::Vms;
use info::ImageInfo;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DiskError {
    #[error(transparent)]
    Spec(#[from] crate::vm::drive::SpecError),
    #[error(transparent)]
    Arg(#[from] args::ArgError),
    #[error(transparent)]
    Partition(#[from] partition::PartError),
    #[error(transparent)]
    Info(#[from] info::InfoError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("image {0}: no such file")]
    NoSuchImage(String),
    #[error("source {0}: no such file")]
    NoSuchSource(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("image {image} is in use by vm {vm}")]
    InUse { image: String, vm: String },
    #[error("image {0} is in use (another process holds its lock)")]
    Locked(String),
    #[error("image {0}: an injection is already under way")]
    Busy(String),
    #[error("[image {image}] {message}")]
    Tool { image: String, message: String },
    #[error("[image {image}] cannot mount: {why}")]
    Mount { image: String, why: String },
    #[error("cleaning up after the injection: {0}")]
    Cleanup(String),
    #[error("invalid mount options: {0}")]
    Options(String),
    #[error("{0}")]
    Io(String),
}

/// The node's disk service: where relative names land, qemu-img, the
/// injector, and the VMs (to know which images are in use).
#[derive(Clone)]
pub struct Disks {
    files: PathBuf,
    tool: Arc<dyn qemu_img::Tool>,
    injector: inject::Injector,
    vms: Vms,
    /// Overlays name their backing image by absolute path (`-abssnapshot`).
    absolute: bool,
}

impl Disks {
    pub fn new(base: &Path, files: &Path, vms: Vms) -> Disks {
        Disks {
            files: files.to_path_buf(),
            tool: Arc::new(qemu_img::QemuImg),
            injector: inject::Injector::new(base),
            vms,
            absolute: false,
        }
    }

    /// `-abssnapshot`: `disk snapshot` and `disk rebase` write absolute
    /// backing paths (else relative to the overlay's folder).
    pub fn with_absolute_backing(mut self, absolute: bool) -> Disks {
        self.absolute = absolute;
        self
    }

    fn backing_name(&self, overlay: &Path, backing: &Path) -> String {
        if self.absolute {
            backing.to_string_lossy().into_owned()
        } else {
            qemu_img::backing_name(overlay, backing)
        }
    }

    /// At daemon start: finishes the cleanup of injections a previous
    /// daemon left half done.
    pub async fn recover(&self) {
        let i = self.injector.clone();
        let _ = tokio::task::spawn_blocking(move || i.recover()).await;
    }

    pub fn tool(&self) -> &dyn qemu_img::Tool {
        self.tool.as_ref()
    }

    /// A name as the commands take it: absolute, or under the files
    /// directory.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, DiskError> {
        Ok(path::resolve(&self.files, name)?)
    }

    fn existing(&self, name: &str) -> Result<PathBuf, DiskError> {
        let p = self.resolve(name)?;
        if !p.is_file() {
            return Err(DiskError::NoSuchImage(p.display().to_string()));
        }
        Ok(p)
    }

    /// A new file: refused if it exists (qemu-img would overwrite it); its
    /// folder is made when it lies in the files directory.
    fn fresh(&self, name: &str) -> Result<PathBuf, DiskError> {
        let p = self.resolve(name)?;
        if std::fs::symlink_metadata(&p).is_ok() {
            return Err(DiskError::Exists(p.display().to_string()));
        }
        if p.starts_with(&self.files) {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| DiskError::Io(format!("{}: {e}", dir.display())))?;
            }
            if !path::inside(&self.files, &p) {
                return Err(PathError::Escapes(name.to_string()).into());
            }
        }
        Ok(p)
    }

    /// The live VM whose disk `image` is, if any.
    pub fn used_by(&self, image: &Path) -> Option<String> {
        let want = image.canonicalize().unwrap_or_else(|_| image.to_path_buf());
        self.vms.all().into_iter().find_map(|vm| {
            let s = vm.lock();
            let uses = s.state.is_live()
                && s.config.disks.iter().any(|d| {
                    let p = Path::new(&d.path);
                    p.canonicalize().unwrap_or_else(|_| p.to_path_buf()) == want
                });
            uses.then(|| vm.name.clone())
        })
    }

    fn not_in_use(&self, image: &Path) -> Result<(), DiskError> {
        match self.used_by(image) {
            Some(vm) => Err(DiskError::InUse {
                image: image.display().to_string(),
                vm,
            }),
            None => Ok(()),
        }
    }

    async fn run(&self, image: &Path, args: Vec<String>) -> Result<String, DiskError> {
        self.tool
            .run(args)
            .await
            .map_err(|e| qemu_img::error(image, &e))
    }

    pub async fn create(&self, format: &str, name: &str, size: &str) -> Result<PathBuf, DiskError> {
        let size = args::size(size, false)?;
        let p = self.fresh(name)?;
        self.run(&p, qemu_img::create_args(format, &p, &size))
            .await?;
        Ok(p)
    }

    /// A qcow2 overlay on `image`; a generated name in the files directory
    /// when `dst` is absent. Returns the overlay's path.
    pub async fn snapshot(&self, image: &str, dst: Option<&str>) -> Result<PathBuf, DiskError> {
        let src = self.existing(image)?;
        let dst = match dst {
            Some(d) => self.fresh(d)?,
            None => self.fresh(&generated_name())?,
        };
        let info = qemu_img::describe(self.tool(), &src).await?;
        let backing = self.backing_name(&dst, &src);
        self.run(&dst, qemu_img::snapshot_args(&dst, &backing, &info.format))
            .await?;
        Ok(dst)
    }

    /// The image (and with `recursive` its backing chain), each with
    /// whether a process holds a lock on it.
    pub async fn info(
        &self,
        image: &str,
        recursive: bool,
    ) -> Result<Vec<(ImageInfo, bool)>, DiskError> {
        let p = self.existing(image)?;
        let list = if recursive {
            qemu_img::chain(self.tool(), &p).await?
        } else {
            vec![qemu_img::describe(self.tool(), &p).await?]
        };
        let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
        Ok(list
            .into_iter()
            .map(|i| {
                let used = locked(&locks, &resolve_against(&p, &i.filename));
                (i, used)
            })
            .collect())
    }

    pub async fn commit(&self, image: &str) -> Result<(), DiskError> {
        let p = self.existing(image)?;
        self.not_in_use(&p)?;
        self.run(&p, qemu_img::commit_args(&p)).await.map(|_| ())
    }

    /// Onto `backing` (relative name in the image), or standalone.
    pub async fn rebase(
        &self,
        image: &str,
        backing: Option<&str>,
        unsafe_: bool,
    ) -> Result<(), DiskError> {
        let p = self.existing(image)?;
        self.not_in_use(&p)?;
        let args = match backing {
            Some(b) => {
                let b = self.existing(b)?;
                let fmt = qemu_img::describe(self.tool(), &b).await?.format;
                let name = self.backing_name(&p, &b);
                qemu_img::rebase_args(&p, Some((&name, &fmt)), unsafe_)
            }
            None => qemu_img::rebase_args(&p, None, unsafe_),
        };
        self.run(&p, args).await.map(|_| ())
    }

    pub async fn resize(&self, image: &str, size: &str) -> Result<(), DiskError> {
        let size = args::size(size, true)?;
        let p = self.existing(image)?;
        self.not_in_use(&p)?;
        self.run(&p, qemu_img::resize_args(&p, &size))
            .await
            .map(|_| ())
    }

    /// `disk inject IMAGE[:PART] files ...` / `... delete files ...`.
    pub async fn inject(
        &self,
        image: &str,
        delete: bool,
        files: &[String],
    ) -> Result<(), DiskError> {
        self.inject_with(image, delete, files, None).await
    }

    /// The same, mounting with extra options (`disk inject ... options
    /// OPTS files ...`).
    pub async fn inject_with(
        &self,
        image: &str,
        delete: bool,
        files: &[String],
        options: Option<&str>,
    ) -> Result<(), DiskError> {
        if let Some(o) = options {
            inject::check_user_options(o)?;
        }
        let (name, part) = args::image_and_partition(image)?;
        let job = if delete {
            inject::Job::Delete(args::deletions(files)?)
        } else {
            let mut pairs = args::pairs(files)?;
            for p in &mut pairs {
                let src = self.resolve(&p.src)?;
                if std::fs::symlink_metadata(&src).is_err() {
                    return Err(DiskError::NoSuchSource(src.display().to_string()));
                }
                p.src = src.to_string_lossy().into_owned();
            }
            inject::Job::Write(pairs)
        };
        let p = self.existing(&name)?;
        self.not_in_use(&p)?;
        let format = qemu_img::describe(self.tool(), &p).await?.format;
        self.injector
            .run(p, format, part, job, options.map(String::from))
            .await
    }
}

/// A name for `disk snapshot IMAGE` without a destination.
fn generated_name() -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::getrandom(&mut b);
    format!("snapshot-{:08x}.qcow2", u32::from_le_bytes(b))
}

/// qemu-img names backing files as the image refers to them.
fn resolve_against(top: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        top.parent().unwrap_or(Path::new("/")).join(p)
    }
}

/// Whether any process holds a lock on `p` (QEMU locks the images it has
/// open), as minimega reports `inuse`.
fn locked(locks: &str, p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(p) else {
        return false;
    };
    let dev = m.dev();
    info::locked(locks, libc::major(dev), libc::minor(dev), m.ino())
}
