//! Logging through `tracing`: to the journal with structured fields when
//! systemd connected our stderr to it (`JOURNAL_STREAM`), else to stderr;
//! and to `-logfile` as well when asked.

use std::fs::OpenOptions;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use tracing::Level;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// True when stderr is the journal stream systemd set up for us.
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(meta.dev()) && ino.parse::<u64>().ok() == Some(meta.ino())
}

/// Installs the global subscriber. A missing journal socket falls back to
/// stderr (unless `stderr` is false: minimega's `-v=false`); an unwritable
/// log file is an error.
pub fn init(level: Level, logfile: Option<&Path>, stderr: bool) -> std::io::Result<()> {
    let filter = LevelFilter::from_level(level);
    let journald = if stderr_is_journal() {
        // No prefix: `journalctl VM=web1 NAMESPACE=exp` reads as it should;
        // our field names never clash with the journal's own.
        tracing_journald::layer().ok().map(|l| {
            l.with_syslog_identifier("minimega".into())
                .with_field_prefix(None)
        })
    } else {
        None
    };
    let stderr = (journald.is_none() && stderr).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .boxed()
    });
    let file = match logfile {
        Some(p) => {
            let f = OpenOptions::new().create(true).append(true).open(p)?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(Mutex::new(f))
                    .with_ansi(false)
                    .with_target(false)
                    .boxed(),
            )
        }
        None => None,
    };
    let _ = tracing_subscriber::registry()
        .with(journald.with_filter(filter))
        .with(stderr.with_filter(filter))
        .with(file.with_filter(filter))
        .try_init();
    Ok(())
}
