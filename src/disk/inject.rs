//! `disk inject`: writing and deleting files inside a partition of a raw
//! or qcow2 image, without the nbd module (which these hosts lack).
//!
//! The route, each step recorded before it is taken:
//! 1. `qemu-storage-daemon` opens the image (taking QEMU's own image lock,
//!    so an image a VM has open is refused) and exports it over FUSE as a
//!    raw file;
//! 2. the partition table is read from that file ([`super::partition`])
//!    and the chosen partition mounted through a loop device at its offset
//!    (`nosymfollow,nodev,nosuid,noexec`: a link inside an untrusted image
//!    can never carry a write out to the host); a FAT file system the
//!    kernel cannot mount is written with mtools at that offset instead;
//! 3. files are copied or deleted, the file system unmounted, the loop
//!    device released, the daemon stopped (it flushes the image).
//!
//! Every way out, success or failure, runs the same [`clean`]; a daemon
//! killed halfway leaves its record under `<base>/inject/`, and the next
//! start cleans it the same way ([`Injector::recover`]), so no image stays
//! mounted, exported or locked.

use super::args::{Pair, Partition};
use super::mtools;
use super::partition::{self, FsKind};
use super::DiskError;
use crate::vm::process;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// What to do inside the file system.
#[derive(Debug, Clone)]
pub enum Job {
    /// Sources already resolved on the host.
    Write(Vec<Pair>),
    Delete(Vec<PathBuf>),
}

/// One injection in progress, as written to its folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct InFlight {
    image: PathBuf,
    /// The FUSE export's mount point (a plain file).
    raw: PathBuf,
    /// Where the partition is mounted.
    mnt: PathBuf,
    qsd_pid: Option<u32>,
    qsd_start: Option<u64>,
}

const RECORD: &str = "inject.json";

#[derive(Clone)]
pub struct Injector {
    dir: PathBuf,
    /// Images with an injection under way here.
    busy: Arc<Mutex<BTreeSet<PathBuf>>>,
    seq: Arc<AtomicU64>,
}

impl Injector {
    /// Injections keep their folders under `<base>/inject`.
    pub fn new(base: &Path) -> Injector {
        Injector {
            dir: base.join("inject"),
            busy: Default::default(),
            seq: Default::default(),
        }
    }

    /// Cleans whatever a previous daemon left half done.
    pub fn recover(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let dir = e.path();
            let rec = std::fs::read(dir.join(RECORD))
                .ok()
                .and_then(|b| serde_json::from_slice::<InFlight>(&b).ok());
            match rec {
                Some(r) => {
                    warn!(
                        "cleaning up an injection a previous daemon left in {}",
                        r.image.display()
                    );
                    if let Err(e) = clean(&dir, &r) {
                        warn!("{e}");
                    }
                }
                None => remove_dir(&dir),
            }
        }
    }

    /// Runs `job` in `part` of `image` (of qemu-img `format`), the file
    /// system mounted with the extra `options` (minimega's `options`).
    pub async fn run(
        &self,
        image: PathBuf,
        format: String,
        part: Partition,
        job: Job,
        options: Option<String>,
    ) -> Result<(), DiskError> {
        let key = image.clone();
        if !self
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone())
        {
            return Err(DiskError::Busy(image.display().to_string()));
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.join(format!("{}-{n}", std::process::id()));
        let r = tokio::task::spawn_blocking(move || {
            inject(&dir, &image, &format, part, &job, options.as_deref())
        })
        .await
        .unwrap_or_else(|e| Err(DiskError::Io(format!("injection task failed: {e}"))));
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        r
    }
}

fn inject(
    dir: &Path,
    image: &Path,
    format: &str,
    part: Partition,
    job: &Job,
    options: Option<&str>,
) -> Result<(), DiskError> {
    let io = |what: &str, e: std::io::Error| DiskError::Io(format!("{what}: {e}"));
    std::fs::create_dir_all(dir.join("mnt")).map_err(|e| io(&dir.display().to_string(), e))?;
    let mut rec = InFlight {
        image: image.to_path_buf(),
        raw: dir.join("disk.raw"),
        mnt: dir.join("mnt"),
        qsd_pid: None,
        qsd_start: None,
    };
    let r = (|| {
        std::fs::File::create(&rec.raw).map_err(|e| io("export file", e))?;
        save(dir, &rec)?;
        let pid = export(dir, image, format, &rec.raw)?;
        rec.qsd_pid = Some(pid);
        rec.qsd_start = process::start_time(pid);
        save(dir, &rec)?;
        let (offset, size, kind) = {
            let f = std::fs::File::open(&rec.raw).map_err(|e| io("export", e))?;
            let disk = f.metadata().map_err(|e| io("export", e))?.len();
            let table = partition::read_table(&f, disk)?;
            let (offset, size) = partition::choose(&table, part, disk)?;
            let head = partition::Sectors::read_at(&f, offset, partition::PROBE_LEN)
                .map_err(|e| io("export", e))?;
            (offset, size, partition::fs_kind(&head))
        };
        let kernel = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        if use_mtools(kind, &kernel) {
            return match job {
                Job::Write(pairs) => mtools::write_files(&rec.raw, offset, pairs),
                Job::Delete(paths) => mtools::delete_files(&rec.raw, offset, paths),
            };
        }
        mount(&rec.raw, &rec.mnt, offset, size, options, image)?;
        let done = match job {
            Job::Write(pairs) => write_files(&rec.mnt, pairs),
            Job::Delete(paths) => delete_files(&rec.mnt, paths),
        };
        sync_fs(&rec.mnt);
        done
    })();
    let c = clean(dir, &rec);
    r?;
    c
}

fn save(dir: &Path, rec: &InFlight) -> Result<(), DiskError> {
    let tmp = dir.join(format!("{RECORD}.tmp"));
    let body = serde_json::to_vec(rec).unwrap_or_default();
    std::fs::write(&tmp, body)
        .and_then(|_| std::fs::rename(&tmp, dir.join(RECORD)))
        .map_err(|e| {
            DiskError::Io(format!(
                "cannot record the injection in {}: {e}",
                dir.display()
            ))
        })
}

/// `--blockdev`s and `--export` as JSON, so no file name needs escaping.
pub fn export_args(image: &Path, format: &str, raw: &Path, pidfile: &Path) -> Vec<String> {
    let file = serde_json::json!({
        "driver": "file", "node-name": "file0", "filename": image.to_string_lossy(),
    });
    let fmt = serde_json::json!({"driver": format, "node-name": "fmt0", "file": "file0"});
    let export = serde_json::json!({
        "type": "fuse", "id": "exp0", "node-name": "fmt0",
        "mountpoint": raw.to_string_lossy(), "writable": true,
    });
    vec![
        "--daemonize".into(),
        "--pidfile".into(),
        pidfile.to_string_lossy().into_owned(),
        "--blockdev".into(),
        file.to_string(),
        "--blockdev".into(),
        fmt.to_string(),
        "--export".into(),
        export.to_string(),
    ]
}

/// Starts the export; returns the daemon's pid once the raw file serves.
fn export(dir: &Path, image: &Path, format: &str, raw: &Path) -> Result<u32, DiskError> {
    let pidfile = dir.join("qsd.pid");
    let out = Command::new("qemu-storage-daemon")
        .args(export_args(image, format, raw, &pidfile))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            DiskError::Io(format!(
                "cannot run qemu-storage-daemon (install qemu-system-common): {e}"
            ))
        })?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(super::qemu_img::error(image, &err));
    }
    std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| DiskError::Io("qemu-storage-daemon wrote no pid file".into()))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(if msg.is_empty() {
        out.status.to_string()
    } else {
        msg
    })
}

/// FAT goes through mtools when the kernel cannot mount it; everything
/// else is mounted (a kernel without the file system then says so).
pub fn use_mtools(kind: FsKind, proc_filesystems: &str) -> bool {
    let has = |fs: &str| {
        proc_filesystems
            .lines()
            .any(|l| l.split_whitespace().last() == Some(fs))
    };
    kind == FsKind::Fat && !has("vfat")
}

/// The mount options: a loop device over the byte range, and no way for
/// the image's contents to reach the host (links, devices, set-uid files).
pub fn mount_options(offset: u64, size: u64) -> String {
    format!("loop,offset={offset},sizelimit={size},nosymfollow,nodev,nosuid,noexec")
}

/// The options `disk inject ... options OPTS` may add: any the file system
/// takes (`uid=1000`, `iocharset=utf8`...), except those that would undo
/// the ones above.
pub fn check_user_options(opts: &str) -> Result<(), DiskError> {
    const OURS: &[&str] = &[
        "loop",
        "offset",
        "sizelimit",
        "symfollow",
        "dev",
        "suid",
        "exec",
        "defaults",
        "user",
        "users",
        "owner",
        "group",
    ];
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let key = o.split('=').next().unwrap_or(o);
        if OURS.contains(&key) {
            return Err(DiskError::Options(format!(
                "mount option `{key}` is the daemon's to set"
            )));
        }
    }
    Ok(())
}

fn mount(
    raw: &Path,
    mnt: &Path,
    offset: u64,
    size: u64,
    extra: Option<&str>,
    image: &Path,
) -> Result<(), DiskError> {
    let mut opts = mount_options(offset, size);
    if let Some(e) = extra.filter(|e| !e.is_empty()) {
        opts.push(',');
        opts.push_str(e);
    }
    run(Command::new("mount").arg("-o").arg(opts).arg(raw).arg(mnt)).map_err(|e| DiskError::Mount {
        image: image.display().to_string(),
        why: e.trim_start_matches("mount: ").to_string(),
    })
}

fn sync_fs(mnt: &Path) {
    if let Ok(f) = std::fs::File::open(mnt) {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs on a descriptor we own.
        unsafe { libc::syncfs(f.as_raw_fd()) };
    }
}

fn write_files(mnt: &Path, pairs: &[Pair]) -> Result<(), DiskError> {
    let fail = |what: &Path, e: std::io::Error| {
        let hint = if e.raw_os_error() == Some(libc::ELOOP) {
            " (a symbolic link in the image: injection never follows one)"
        } else {
            ""
        };
        DiskError::Io(format!("cannot write {}: {e}{hint}", what.display()))
    };
    for p in pairs {
        let src = Path::new(&p.src);
        let mut dst = mnt.join(&p.dst);
        if std::fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir()) {
            if let Some(name) = src.file_name() {
                dst.push(name);
            }
        }
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(&p.dst, e))?;
        }
        copy_tree(src, &dst).map_err(|e| fail(&p.dst, e))?;
    }
    Ok(())
}

/// `cp -r` without following links: a link in the source is copied as a
/// link; one in the way at the destination is replaced.
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(src)?;
    if let Ok(old) = std::fs::symlink_metadata(dst) {
        if old.file_type().is_symlink() || (old.is_dir() != meta.is_dir()) {
            if old.is_dir() {
                std::fs::remove_dir_all(dst)?;
            } else {
                std::fs::remove_file(dst)?;
            }
        }
    }
    let mode = meta.permissions().mode() & 0o7777;
    if meta.file_type().is_symlink() {
        return std::os::unix::fs::symlink(std::fs::read_link(src)?, dst);
    }
    if meta.is_dir() {
        if !dst.exists() {
            std::fs::create_dir(dst)?;
        }
        for e in std::fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        // Some file systems (vfat) have no modes: not an error.
        let _ = std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode));
        return Ok(());
    }
    let mut from = std::fs::File::open(src)?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(dst)?;
    std::io::copy(&mut from, &mut to)?;
    to.flush()?;
    let _ = to.set_permissions(std::fs::Permissions::from_mode(mode));
    Ok(())
}

fn delete_files(mnt: &Path, paths: &[PathBuf]) -> Result<(), DiskError> {
    for p in paths {
        let full = mnt.join(p);
        let r = match std::fs::symlink_metadata(&full) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                warn!("disk inject delete: {} is not in the image", p.display());
                Ok(())
            }
            Err(e) => Err(e),
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&full),
            Ok(_) => std::fs::remove_file(&full),
        };
        r.map_err(|e| DiskError::Io(format!("cannot delete {}: {e}", p.display())))?;
    }
    Ok(())
}

/// Undoes every step that was taken, in reverse, whatever state a crash
/// left: unmount, wait for the loop device, stop the export, remove the
/// folder. Idempotent.
fn clean(dir: &Path, rec: &InFlight) -> Result<(), DiskError> {
    let qsd = rec.qsd_pid.filter(|p| process::alive(*p, rec.qsd_start));
    if let Some(pid) = qsd {
        // A daemon restarted under systemd has a mount namespace of its
        // own: the old mount lives in the old one, which the export
        // process still holds.
        if !same_mount_ns(pid) {
            let _ = run(Command::new("nsenter")
                .arg(format!("--mount=/proc/{pid}/ns/mnt"))
                .arg("umount")
                .arg(&rec.mnt));
        }
    }
    let mut problems = Vec::new();
    if is_mounted(&rec.mnt) {
        if let Err(e) = run(Command::new("umount").arg(&rec.mnt)) {
            problems.push(format!("umount {}: {e}", rec.mnt.display()));
        }
    }
    // The loop device lets go of the export asynchronously after umount.
    let deadline = Instant::now() + Duration::from_secs(10);
    while loop_holding(&rec.raw) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(pid) = qsd {
        process::signal(pid, rec.qsd_start, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while process::alive(pid, rec.qsd_start) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if process::alive(pid, rec.qsd_start) {
            process::signal(pid, rec.qsd_start, libc::SIGKILL);
            problems.push("qemu-storage-daemon had to be killed".into());
        }
    }
    // The export removes its own FUSE mount as it quits, unless the loop
    // device still held the file then.
    if is_mounted(&rec.raw) && run(Command::new("umount").arg(&rec.raw)).is_err() {
        let _ = run(Command::new("umount").arg("-l").arg(&rec.raw));
    }
    if is_mounted(&rec.mnt) || is_mounted(&rec.raw) {
        problems.push(format!("{} is still mounted", dir.display()));
        return Err(DiskError::Cleanup(problems.join("; ")));
    }
    remove_dir(dir);
    if problems.is_empty() {
        info!(
            "injection into {} done, image released",
            rec.image.display()
        );
        Ok(())
    } else {
        Err(DiskError::Cleanup(problems.join("; ")))
    }
}

/// Removes an injection folder: never across a mount point.
fn remove_dir(dir: &Path) {
    let mnt = dir.join("mnt");
    if is_mounted(&mnt) || is_mounted(&dir.join("disk.raw")) {
        return;
    }
    let _ = std::fs::remove_dir(&mnt);
    for f in ["disk.raw", "qsd.pid", RECORD] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let _ = std::fs::remove_file(dir.join(format!("{RECORD}.tmp")));
    let _ = std::fs::remove_dir(dir);
}

fn same_mount_ns(pid: u32) -> bool {
    let mine = std::fs::read_link("/proc/self/ns/mnt").ok();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    mine.is_none() || theirs.is_none() || mine == theirs
}

pub fn is_mounted(p: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mount_points(&info).iter().any(|m| m == p)
}

/// Mount points of a mountinfo text (field 5, octal escapes undone).
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(crate::paths::unescape_mountinfo(m)))
        .collect()
}

/// Whether a loop device still has `file` as its backing file.
fn loop_holding(file: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return false;
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("loop/backing_file")).ok())
        .any(|b| Path::new(b.trim_end_matches('\n')) == file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_arguments_are_json() {
        let a = export_args(
            Path::new("/f/a,b.qcow2"),
            "qcow2",
            Path::new("/run/mm/inject/1/disk.raw"),
            Path::new("/run/mm/inject/1/qsd.pid"),
        );
        assert_eq!(
            a[0..3],
            ["--daemonize", "--pidfile", "/run/mm/inject/1/qsd.pid"]
        );
        let file: serde_json::Value = serde_json::from_str(&a[4]).unwrap();
        assert_eq!(file["filename"], "/f/a,b.qcow2");
        let fmt: serde_json::Value = serde_json::from_str(&a[6]).unwrap();
        assert_eq!(
            (fmt["driver"].as_str(), fmt["file"].as_str()),
            (Some("qcow2"), Some("file0"))
        );
        let exp: serde_json::Value = serde_json::from_str(&a[8]).unwrap();
        assert_eq!(exp["type"], "fuse");
        assert_eq!(exp["writable"], true);
        assert_eq!(exp["mountpoint"], "/run/mm/inject/1/disk.raw");
    }

    #[test]
    fn mounts_never_follow_the_images_links() {
        let o = mount_options(1048576, 4096);
        assert_eq!(
            o,
            "loop,offset=1048576,sizelimit=4096,nosymfollow,nodev,nosuid,noexec"
        );
    }

    #[test]
    fn user_options_may_not_undo_the_daemons() {
        assert!(check_user_options("uid=1000,iocharset=utf8").is_ok());
        assert!(check_user_options("").is_ok());
        for bad in ["exec", "rw,suid", "offset=0", "loop", "symfollow", "dev"] {
            let e = check_user_options(bad).unwrap_err().to_string();
            assert!(e.contains("is the daemon's to set"), "{bad}: {e}");
        }
    }

    #[test]
    fn fat_without_a_kernel_driver_goes_through_mtools() {
        let without = "nodev\tsysfs\n\text4\nnodev\tfuse\n";
        let with = "\text4\n\tvfat\n";
        assert!(use_mtools(FsKind::Fat, without));
        assert!(!use_mtools(FsKind::Fat, with));
        assert!(!use_mtools(FsKind::Ext, without));
        assert!(!use_mtools(FsKind::Unknown, without));
    }

    #[test]
    fn mountinfo_points_unescaped() {
        let info = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    99 22 0:50 / /var/tmp/x\\040y/mnt rw - ext4 /dev/loop0 rw\n";
        assert_eq!(
            mount_points(info),
            [PathBuf::from("/proc"), PathBuf::from("/var/tmp/x y/mnt")]
        );
    }

    #[test]
    fn a_record_reads_back() {
        let r = InFlight {
            image: "/f/a.qcow2".into(),
            raw: "/b/inject/1/disk.raw".into(),
            mnt: "/b/inject/1/mnt".into(),
            qsd_pid: Some(42),
            qsd_start: None,
        };
        let back: InFlight = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn copies_trees_and_replaces_links_in_the_way() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/a"), "A").unwrap();
        std::os::unix::fs::symlink("a", src.join("sub/l")).unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink("/", root.join("dst")).unwrap();
        copy_tree(&src, &root.join("dst")).unwrap();
        assert!(!std::fs::symlink_metadata(root.join("dst"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(root.join("dst/sub/a")).unwrap(),
            "A"
        );
        assert_eq!(
            std::fs::read_link(root.join("dst/sub/l")).unwrap(),
            Path::new("a")
        );
    }
}
