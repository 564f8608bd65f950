//! The daemon's side of `.preprocess`: environment variables, `file:NAME`
//! found in the files directory, and `http(s)://` URLs served from the
//! files directory, downloaded there first (with curl or wget, as
//! minimega uses wget) when missing.

use crate::command::preprocess::{self, Fetch};
use std::path::Path;

/// The argument as the command gets it; `Ok(None)` when unchanged.
pub async fn expand(files: &Path, value: &str) -> Result<Option<String>, String> {
    let v = preprocess::expand_env(value, |name| std::env::var(name).ok());
    let changed = v != value;
    match preprocess::fetch(&v) {
        None => Ok(changed.then_some(v)),
        Some(Fetch::File { name, rest }) => {
            let path = local(files, &name)?;
            Ok(Some(format!("{path}{rest}")))
        }
        Some(Fetch::Url { url, path }) => {
            if let Ok(p) = local(files, &path) {
                return Ok(Some(p));
            }
            let rel = path.trim_start_matches('/');
            if rel.is_empty() || rel.ends_with('/') {
                return Err(format!("get {path}: file not found"));
            }
            let dst = files.join(rel);
            download(&url, &dst).await?;
            Ok(Some(dst.to_string_lossy().into_owned()))
        }
    }
}

/// A name under the files directory that exists, never outside it.
fn local(files: &Path, name: &str) -> Result<String, String> {
    let rel = name.trim_start_matches('/');
    let missing = || format!("get {name}: file not found");
    if rel.is_empty() || rel.split('/').any(|c| c == "..") {
        return Err(missing());
    }
    let p = files.join(rel);
    if p.exists() {
        Ok(p.to_string_lossy().into_owned())
    } else {
        Err(missing())
    }
}

async fn download(url: &str, dst: &Path) -> Result<(), String> {
    if let Some(dir) = dst.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let part = dst.with_extension("part");
    let tries: [(&str, Vec<&str>); 2] = [("curl", vec!["-fsSL", "-o"]), ("wget", vec!["-q", "-O"])];
    let mut why = String::from("neither curl nor wget is installed");
    for (tool, args) in tries {
        let run = tokio::process::Command::new(tool)
            .args(&args)
            .arg(&part)
            .arg(url)
            .kill_on_drop(true)
            .output()
            .await;
        match run {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => why = format!("{tool}: {e}"),
            Ok(o) if o.status.success() => {
                return tokio::fs::rename(&part, dst)
                    .await
                    .map_err(|e| format!("{}: {e}", dst.display()));
            }
            Ok(o) => {
                why = format!(
                    "{tool}: {}",
                    String::from_utf8_lossy(&o.stderr)
                        .trim()
                        .lines()
                        .last()
                        .unwrap_or("failed")
                )
            }
        }
        break;
    }
    let _ = tokio::fs::remove_file(&part).await;
    Err(format!("cannot download {url}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(files: &Path, v: &str) -> Result<Option<String>, String> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(expand(files, v))
    }

    #[test]
    fn files_are_found_in_the_files_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("img")).unwrap();
        std::fs::write(dir.path().join("img/a.qcow2"), "x").unwrap();
        let a = dir.path().join("img/a.qcow2").display().to_string();
        assert_eq!(run(dir.path(), "plain"), Ok(None));
        assert_eq!(run(dir.path(), "file:img/a.qcow2"), Ok(Some(a.clone())));
        assert_eq!(
            run(dir.path(), "file:img/a.qcow2,virtio"),
            Ok(Some(format!("{a},virtio")))
        );
        assert_eq!(
            run(dir.path(), "file:nope"),
            Err("get nope: file not found".into())
        );
        assert!(run(dir.path(), "file:../etc/passwd").is_err());
        assert_eq!(
            run(dir.path(), "http://localhost/"),
            Err("get /: file not found".into())
        );
        assert_eq!(
            run(dir.path(), "http://example.invalid/img/a.qcow2"),
            Ok(Some(a))
        );
    }
}
