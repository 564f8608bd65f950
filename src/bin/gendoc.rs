//! `gendoc OUTDIR`: writes the documentation made from the program itself,
//! for the packages to install:
//!
//! - `OUTDIR/man/minimega-commands.7`, from the daemon's command table
//! - `OUTDIR/completions/minimega.bash`, `_minimega` (zsh), `minimega.fish`
//!
//! The page's date is `SOURCE_DATE_EPOCH` when set (reproducible builds),
//! else today.

use clap_complete::Shell;
use minimega::doc;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, out] = args.as_slice() else {
        eprintln!("usage: gendoc OUTDIR");
        return ExitCode::from(2);
    };
    match write_all(Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gendoc: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(out: &Path) -> Result<(), String> {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    let engine = minimega::cli::engine();
    let page = doc::commands_page(
        &engine,
        minimega::VERSION,
        &minimega::timefmt::date_of(epoch),
    );
    write(&out.join("man/minimega-commands.7"), &page)?;
    for (shell, name) in [
        (Shell::Bash, "minimega.bash"),
        (Shell::Zsh, "_minimega"),
        (Shell::Fish, "minimega.fish"),
    ] {
        write(&out.join("completions").join(name), &doc::completion(shell))?;
    }
    Ok(())
}

/// Writes through a temporary name, so a reader never sees half a file.
fn write(path: &PathBuf, text: &str) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // The pid in the name: two builds of one tree (tests run `make package`
    // in parallel) must not rename each other's temporary file away.
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
