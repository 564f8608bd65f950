//! `minirouter -u FILE`: read, check, apply, and on failure put the last
//! good configuration back. All I/O goes through [`System`], so the
//! binary supplies the real one and tests a fake.
//!
//! What it reports, as the stock minirouter: the `minirouter_log` tag
//! (its last 20 log lines at the file's log level, `vm info` shows it and
//! `router VM` prints it) and, from the resident `minirouter` without
//! `-u`, `minirouter_IFACE_rx_bytes` / `_tx_bytes` per interface.

use super::super::LogLevel;
use super::model::{LineNo, State};
use super::parse::{parse, LineError};
use super::plan::{plan, restore, Action, Blame, Paths, Step, Tolerate};
use thiserror::Error;

/// How many log lines `minirouter_log` keeps.
pub const LOG_LINES: usize = 20;
pub const LOG_TAG: &str = "minirouter_log";

/// The guest as minirouter changes it.
pub trait System {
    /// The names in /sys/class/net.
    fn interfaces(&mut self) -> Result<Vec<String>, String>;
    /// Runs a command; its error output (or why it could not run) on
    /// failure.
    fn run(&mut self, argv: &[String]) -> Result<(), String>;
    /// Writes a file, making its folder.
    fn write(&mut self, path: &std::path::Path, contents: &str) -> Result<(), String>;
    fn read(&mut self, path: &std::path::Path) -> Result<Option<String>, String>;
    /// Ends the daemon whose pid the file holds, if one runs, and waits.
    fn stop(&mut self, pidfile: &std::path::Path) -> Result<(), String>;
    /// Whether the daemon whose pid the file holds runs.
    fn running(&mut self, pidfile: &std::path::Path) -> bool;
    /// `miniccc -tag KEY VALUE`.
    fn tag(&mut self, key: &str, value: &str) -> Result<(), String>;
    /// Now, as log lines show it (`2006/01/02 15:04:05`).
    fn timestamp(&mut self) -> String;
}

/// Why an update did not happen, or did not stick.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UpdateError {
    /// Nothing changed.
    #[error(transparent)]
    Parse(#[from] LineError),
    #[error("cannot list the guest's interfaces: {0}")]
    Interfaces(String),
    /// Nothing changed: the configuration cannot be made here, or a
    /// tool refused its part of it.
    #[error("{at}: {reason}")]
    Refused { at: String, reason: String },
    /// A step failed; the previous configuration was put back (`restore`
    /// lists what could not be).
    #[error("{at}: {reason}; {}", restored(restore))]
    Failed {
        at: String,
        reason: String,
        restore: Vec<String>,
    },
}

fn restored(errors: &[String]) -> String {
    if errors.is_empty() {
        "the previous configuration is back".into()
    } else {
        format!(
            "putting the previous configuration back failed too: {}",
            errors.join("; ")
        )
    }
}

/// Where in the file: `line 3 (`ip add 0 1.2.3.4/24`)`.
fn at(text: &str, line: LineNo) -> String {
    match text.lines().nth(line.wrapping_sub(1)) {
        Some(l) if line > 0 => format!("line {line} (`{}`)", l.trim()),
        _ => "the previous configuration".into(),
    }
}

/// The line of a tool's configuration its error output names
/// (`FILE:12:3`, or dnsmasq's `at line 12 of FILE`).
fn blamed_line(output: &str, blame: &Blame) -> Option<usize> {
    let number = |rest: &str| -> Option<usize> {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    // The path also appears in the failed command's own words.
    let path = format!("{}:", blame.path.to_string_lossy());
    output
        .match_indices(&path)
        .find_map(|(i, _)| number(&output[i + path.len()..]))
        .or_else(|| {
            output
                .find("at line ")
                .and_then(|i| number(&output[i + 8..]))
        })
}

fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warn => "WARN",
        LogLevel::Error => "ERROR",
        LogLevel::Fatal => "FATAL",
    }
}

struct Run<'a> {
    sys: &'a mut dyn System,
    log: Vec<(LogLevel, String)>,
}

impl Run<'_> {
    fn note(&mut self, level: LogLevel, msg: impl Into<String>) {
        self.log.push((level, msg.into()));
    }

    /// Runs a step: the error text when it failed.
    fn step(&mut self, s: &Step) -> Result<(), String> {
        match &s.action {
            Action::Write { path, contents } => {
                self.note(LogLevel::Debug, format!("writing {}", path.display()));
                self.sys.write(path, contents)
            }
            Action::Set { path, value } => {
                if let Err(e) = self.sys.write(path, value) {
                    self.note(
                        LogLevel::Warn,
                        format!("cannot set {}: {e}", path.display()),
                    );
                }
                Ok(())
            }
            Action::Run { argv, tolerate } => {
                self.note(LogLevel::Debug, argv.join(" "));
                match self.sys.run(argv) {
                    Ok(()) => Ok(()),
                    Err(e) => match tolerate {
                        Tolerate::Anything => Ok(()),
                        Tolerate::Saying(ok) if ok.iter().any(|t| e.contains(t)) => Ok(()),
                        _ => Err(format!("{}: {}", argv.join(" "), e.trim())),
                    },
                }
            }
            Action::Stop { pidfile } => {
                self.note(
                    LogLevel::Debug,
                    format!("stopping the daemon of {}", pidfile.display()),
                );
                self.sys.stop(pidfile)
            }
            Action::Start { pidfile, argv } => {
                if self.sys.running(pidfile) {
                    return Ok(());
                }
                self.note(LogLevel::Debug, argv.join(" "));
                self.sys
                    .run(argv)
                    .map_err(|e| format!("{}: {}", argv.join(" "), e.trim()))
            }
        }
    }
}

/// Applies the file `text` over the last good state kept under `paths`.
/// Logs what it did into `minirouter_log` and the log file either way.
pub fn update(sys: &mut dyn System, paths: &Paths, text: &str) -> Result<(), UpdateError> {
    let mut run = Run {
        sys,
        log: Vec::new(),
    };
    let prev = last_good(&mut run, paths);
    let mut level = prev.log_level;
    let result = apply(&mut run, paths, text, &prev, &mut level);
    match &result {
        Ok(()) => run.note(LogLevel::Info, "configuration applied"),
        Err(e) => run.note(LogLevel::Error, e.to_string()),
    }
    let Run { sys, log } = run;
    publish(sys, paths, level, &log);
    result
}

/// The last good state, or an empty one for a first update.
fn last_good(run: &mut Run<'_>, paths: &Paths) -> State {
    let text = match run.sys.read(&paths.state()) {
        Ok(Some(t)) => t,
        Ok(None) => return State::default(),
        Err(e) => {
            run.note(
                LogLevel::Warn,
                format!("cannot read the last configuration: {e}"),
            );
            return State::default();
        }
    };
    match parse(&text) {
        // Its lines are no lines of the file being applied.
        Ok(cmds) => {
            let cmds: Vec<_> = cmds.into_iter().map(|(_, c)| (0, c)).collect();
            State::default().apply(&cmds).0
        }
        Err(e) => {
            run.note(
                LogLevel::Warn,
                format!("the last configuration is unreadable: {e}"),
            );
            State::default()
        }
    }
}

fn apply(
    run: &mut Run<'_>,
    paths: &Paths,
    text: &str,
    prev: &State,
    level: &mut LogLevel,
) -> Result<(), UpdateError> {
    let cmds = parse(text)?;
    let (next, commits) = prev.apply(&cmds);
    *level = next.log_level;
    let guest = run.sys.interfaces().map_err(UpdateError::Interfaces)?;
    let refused = |line: LineNo, reason: String| UpdateError::Refused {
        at: at(text, line),
        reason,
    };
    let p = plan(prev, &next, &commits, &guest, paths).map_err(|e| refused(e.line, e.reason))?;
    for w in &p.warnings {
        run.note(LogLevel::Warn, w.clone());
    }
    for s in &p.checks {
        if let Err(e) = run.step(s) {
            let line = s
                .blame
                .as_ref()
                .and_then(|b| blamed_line(&e, b).map(|n| b.rendered.origin(n)))
                .filter(|l| *l > 0)
                .unwrap_or(s.line);
            return Err(refused(line, e));
        }
    }
    for s in &p.steps {
        if let Err(reason) = run.step(s) {
            let restore = put_back(run, paths, prev, &next, &guest);
            return Err(UpdateError::Failed {
                at: at(text, s.line),
                reason,
                restore,
            });
        }
    }
    // Applied all the same: the next update compares with an older state
    // and may redo some steps.
    if let Err(e) = run.sys.write(&paths.state(), &next.to_lines()) {
        run.note(
            LogLevel::Warn,
            format!("cannot keep the configuration: {e}"),
        );
    }
    Ok(())
}

/// Puts `prev` back after a failed step: every step is tried; the errors.
fn put_back(
    run: &mut Run<'_>,
    paths: &Paths,
    prev: &State,
    next: &State,
    guest: &[String],
) -> Vec<String> {
    let p = match restore(prev, next, guest, paths) {
        Ok(p) => p,
        Err(e) => return vec![e.reason],
    };
    p.steps.iter().filter_map(|s| run.step(s).err()).collect()
}

/// Adds the entries at `level` or above to the last lines kept in the log
/// file, and tags them.
fn publish(sys: &mut dyn System, paths: &Paths, level: LogLevel, log: &[(LogLevel, String)]) {
    let mut lines: Vec<String> = match sys.read(&paths.log()) {
        Ok(Some(t)) => t.lines().map(String::from).collect(),
        _ => Vec::new(),
    };
    let now = sys.timestamp();
    for (l, msg) in log.iter().filter(|(l, _)| *l >= level) {
        for part in msg.lines() {
            lines.push(format!("{now} {} minirouter: {part}", level_name(*l)));
        }
    }
    let keep = lines.len().saturating_sub(LOG_LINES);
    let text: String = lines[keep..].iter().map(|l| format!("{l}\n")).collect();
    // A log that cannot be kept or shown is no reason to fail the update.
    let _ = sys.write(&paths.log(), &text);
    let _ = sys.tag(LOG_TAG, &text);
}

/// The tags of an interface's byte counters (the values as the kernel's
/// statistics files hold them, trimmed).
pub fn counter_tags(iface: &str, rx: &str, tx: &str) -> [(String, String); 2] {
    [
        (
            format!("minirouter_{iface}_rx_bytes"),
            rx.trim().to_string(),
        ),
        (
            format!("minirouter_{iface}_tx_bytes"),
            tx.trim().to_string(),
        ),
    ]
}
