//! FAT file systems without mounting them, with mtools, for kernels that
//! have no vfat (this project's test hosts among them): the same export
//! of the image, read and written at the partition's offset. FAT has no
//! links, so nothing can lead a write out of the image.

use super::args::Pair;
use super::DiskError;
use std::path::{Component, Path};
use std::process::Command;

/// mtools' name for the file system at `offset` of `raw`.
pub fn drive(raw: &Path, offset: u64) -> String {
    format!("{}@@{offset}", raw.display())
}

/// A path inside the image as mtools writes it.
pub fn target(p: &Path) -> String {
    let parts: Vec<String> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    format!("::/{}", parts.join("/"))
}

/// The folders above `p`, outermost first, as mtools targets.
pub fn parents(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut acc = std::path::PathBuf::new();
    let comps: Vec<Component> = p.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        acc.push(c);
        out.push(target(&acc));
    }
    out
}

fn mtool(prog: &str, drive: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(prog)
        .arg("-i")
        .arg(drive)
        .args(args)
        // No host configuration, and no refusal of images whose geometry
        // mtools finds odd.
        .env("MTOOLSRC", "/dev/null")
        .env("MTOOLS_SKIP_CHECK", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {prog} (install mtools): {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Warning:"))
        .collect();
    Err(lines.join("; "))
}

pub fn write_files(raw: &Path, offset: u64, pairs: &[Pair]) -> Result<(), DiskError> {
    let d = drive(raw, offset);
    for p in pairs {
        for dir in parents(&p.dst) {
            // Skips a folder that exists; a file in the way shows below.
            let _ = mtool("mmd", &d, &["-D", "s", &dir]);
        }
        let mut args = vec!["-o", "-Q"];
        if Path::new(&p.src).is_dir() {
            args.push("-s");
        }
        let dst = target(&p.dst);
        args.extend([p.src.as_str(), dst.as_str()]);
        mtool("mcopy", &d, &args)
            .map_err(|e| DiskError::Io(format!("cannot write {}: {e}", p.dst.display())))?;
    }
    Ok(())
}

pub fn delete_files(
    raw: &Path,
    offset: u64,
    paths: &[std::path::PathBuf],
) -> Result<(), DiskError> {
    let d = drive(raw, offset);
    for p in paths {
        let t = target(p);
        if mtool("mdir", &d, &["-b", &t]).is_err() {
            tracing::warn!("disk inject delete: {} is not in the image", p.display());
            continue;
        }
        mtool("mdeltree", &d, &[&t])
            .or_else(|_| mtool("mdel", &d, &[&t]))
            .map_err(|e| DiskError::Io(format!("cannot delete {}: {e}", p.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_mtools_takes_them() {
        assert_eq!(
            drive(Path::new("/b/inject/1/disk.raw"), 1048576),
            "/b/inject/1/disk.raw@@1048576"
        );
        assert_eq!(
            target(Path::new("Program Files/miniccc")),
            "::/Program Files/miniccc"
        );
        assert_eq!(parents(Path::new("a/b/c.txt")), ["::/a", "::/a/b"]);
        assert!(parents(Path::new("c.txt")).is_empty());
    }
}
