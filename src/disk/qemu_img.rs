//! qemu-img at the edge: the argument lists are pure (and tested), running
//! them goes through [`Tool`], so the commands' logic never spawns anything
//! itself.

use super::info::{self, ImageInfo};
use super::DiskError;
use crate::command::BoxFuture;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A run of qemu-img may take this long (a commit or rebase of a large
/// image copies data).
const TIMEOUT: Duration = Duration::from_secs(3600);

/// Runs qemu-img with arguments and returns its standard output, or its
/// error text.
pub trait Tool: Send + Sync {
    fn run<'a>(&'a self, args: Vec<String>) -> BoxFuture<'a, Result<String, String>>;
}

/// The real qemu-img.
pub struct QemuImg;

impl Tool for QemuImg {
    fn run<'a>(&'a self, args: Vec<String>) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let child = tokio::process::Command::new("qemu-img")
                .args(&args)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output();
            let out = match tokio::time::timeout(TIMEOUT, child).await {
                Err(_) => return Err(format!("qemu-img {} timed out", args[0])),
                Ok(Err(e)) => return Err(format!("cannot run qemu-img (install qemu-utils): {e}")),
                Ok(Ok(o)) => o,
            };
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
            }
        })
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub fn create_args(format: &str, image: &Path, size: &str) -> Vec<String> {
    vec![
        "create".into(),
        "-f".into(),
        format.into(),
        s(image),
        size.into(),
    ]
}

/// `info`, sharing the image with whoever has it open (a running VM).
pub fn info_args(image: &Path, chain: bool) -> Vec<String> {
    let mut a = vec!["info".into(), "-U".into(), "--output=json".into()];
    if chain {
        a.push("--backing-chain".into());
    }
    a.push(s(image));
    a
}

/// An overlay `dst` on `backing` (written as `backing_name`, relative to
/// `dst`'s folder or absolute).
pub fn snapshot_args(dst: &Path, backing_name: &str, backing_format: &str) -> Vec<String> {
    vec![
        "create".into(),
        "-f".into(),
        "qcow2".into(),
        "-b".into(),
        backing_name.into(),
        "-F".into(),
        backing_format.into(),
        s(dst),
    ]
}

/// `-d`: the image keeps its data (minimega's choice), the backing file
/// gets it too.
pub fn commit_args(image: &Path) -> Vec<String> {
    vec!["commit".into(), "-d".into(), s(image)]
}

/// Onto `backing` (name and format), or standalone when `None`; `unsafe_`
/// only rewrites the pointer (`disk set-backing`).
pub fn rebase_args(image: &Path, backing: Option<(&str, &str)>, unsafe_: bool) -> Vec<String> {
    let mut a: Vec<String> = vec!["rebase".into()];
    match backing {
        Some((name, format)) => a.extend(["-b".into(), name.into(), "-F".into(), format.into()]),
        None => a.extend(["-b".into(), String::new()]),
    }
    if unsafe_ {
        a.push("-u".into());
    }
    a.push(s(image));
    a
}

pub fn resize_args(image: &Path, size: &str) -> Vec<String> {
    vec!["resize".into(), "--shrink".into(), s(image), size.into()]
}

/// How `dst` refers to its backing file: relative to `dst`'s folder (so a
/// files directory can move, or be mirrored on another node, as a whole).
pub fn backing_name(dst: &Path, backing: &Path) -> String {
    let from = dst.parent().unwrap_or(Path::new("/"));
    relative_path(from, backing)
        .map(|p| s(&p))
        .unwrap_or_else(|| s(backing))
}

/// `to` relative to the directory `from` (both absolute).
fn relative_path(from: &Path, to: &Path) -> Option<PathBuf> {
    if !from.is_absolute() || !to.is_absolute() {
        return None;
    }
    let (f, t): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    Some(out)
}

/// qemu-img's complaint, as one line naming the image.
pub fn error(image: &Path, msg: &str) -> DiskError {
    if msg.contains("lock") && msg.contains("Is another process using the image") {
        return DiskError::Locked(s(image));
    }
    if msg.contains("No such file or directory") {
        return DiskError::NoSuchImage(s(image));
    }
    let line = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    DiskError::Tool {
        image: s(image),
        message: line.trim_start_matches("qemu-img: ").to_string(),
    }
}

/// `image`'s own description.
pub async fn describe(tool: &dyn Tool, image: &Path) -> Result<ImageInfo, DiskError> {
    let out = tool
        .run(info_args(image, false))
        .await
        .map_err(|e| error(image, &e))?;
    Ok(info::parse(&out)?)
}

/// `image` and its backing chain.
pub async fn chain(tool: &dyn Tool, image: &Path) -> Result<Vec<ImageInfo>, DiskError> {
    let out = tool
        .run(info_args(image, true))
        .await
        .map_err(|e| error(image, &e))?;
    Ok(info::parse_chain(&out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_lists() {
        let p = Path::new("/f/a.qcow2");
        assert_eq!(
            create_args("qcow2", p, "10G").join(" "),
            "create -f qcow2 /f/a.qcow2 10G"
        );
        assert_eq!(
            info_args(p, true).join(" "),
            "info -U --output=json --backing-chain /f/a.qcow2"
        );
        assert_eq!(
            snapshot_args(Path::new("/f/s.qcow2"), "a.qcow2", "qcow2").join(" "),
            "create -f qcow2 -b a.qcow2 -F qcow2 /f/s.qcow2"
        );
        assert_eq!(commit_args(p).join(" "), "commit -d /f/a.qcow2");
        assert_eq!(
            rebase_args(p, Some(("b.qcow2", "raw")), false).join(" "),
            "rebase -b b.qcow2 -F raw /f/a.qcow2"
        );
        assert_eq!(
            rebase_args(p, None, true),
            ["rebase", "-b", "", "-u", "/f/a.qcow2"]
        );
        assert_eq!(
            resize_args(p, "+1G").join(" "),
            "resize --shrink /f/a.qcow2 +1G"
        );
    }

    #[test]
    fn backing_names_are_relative() {
        let b = |d: &str, t: &str| backing_name(Path::new(d), Path::new(t));
        assert_eq!(b("/f/s.qcow2", "/f/a.qcow2"), "a.qcow2");
        assert_eq!(b("/f/x/s.qcow2", "/f/a.qcow2"), "../a.qcow2");
        assert_eq!(b("/f/s.qcow2", "/img/base/a.qcow2"), "../img/base/a.qcow2");
    }

    #[test]
    fn errors_name_the_image() {
        let p = Path::new("/f/a.qcow2");
        let locked = "qemu-img: Failed to get \"write\" lock\nIs another process using the image [/f/a.qcow2]?";
        assert_eq!(error(p, locked), DiskError::Locked("/f/a.qcow2".into()));
        assert_eq!(
            error(p, "qemu-img: Could not open '/f/a.qcow2': Could not open '/f/a.qcow2': No such file or directory"),
            DiskError::NoSuchImage("/f/a.qcow2".into())
        );
        assert_eq!(
            error(p, "qemu-img: Invalid image size specified.\n").to_string(),
            "[image /f/a.qcow2] Invalid image size specified."
        );
    }
}
