//! Playbacks of kb files (`vnc play`), of typed text (`vnc type`, a
//! ClientCutText), with minimega's controls: pause, continue, step (cut
//! the current wait short), getstep, inject, stop. Each runs as a task of
//! its own on an RFB session of its own with QEMU; WaitForIt asks that
//! session for the whole screen, once a second, until the template is on
//! it or the timeout passes.
//!
//! Unlike the original, a file is read and checked whole before it plays:
//! a malformed line is an error naming its number, not a line skipped in
//! the log. LoadFile names and WaitForIt template files that are not
//! absolute are found beside the file that names them.

use super::{lock, Display, Vnc, VncError};
use crate::command::BoxFuture;
use crate::console::client::Client;
use crate::console::kb::{self, Action, Line, Template as Source, WaitForIt};
use crate::console::matcher::{self, Template};
use crate::console::rfb::{ClientMessage, KeyEvent};
use crate::console::{godur, keys};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

/// LoadFiles nested deeper than this end the playback (the original's
/// bound; it warns past 10).
const MAX_DEPTH: usize = 100;
/// How long WaitForIt waits between two looks at the screen.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The keysyms a newline and a carriage return type.
const LINEFEED: u32 = 0xff0a;
const RETURN: u32 = 0xff0d;

enum Step {
    Comment(String),
    Do {
        text: String,
        delay_ns: i64,
        action: Action,
        /// A WaitForIt's picture, decoded when the file was read.
        template: Option<Arc<Template>>,
    },
}

/// What a playback plays: a checked file, or typed text.
pub(super) struct Script {
    /// For the listing: the file, or N/A for typed text.
    name: String,
    dir: Option<PathBuf>,
    steps: Vec<Step>,
    duration_ns: i64,
}

fn template_of(source: &Source, dir: Option<&Path>) -> Result<Template, String> {
    let bytes = match source {
        Source::Inline { image, .. } => image.clone(),
        Source::File(name) => {
            let p = match dir {
                Some(d) => d.join(name),
                None => PathBuf::from(name),
            };
            std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?
        }
    };
    Template::from_png(&bytes).map_err(|e| e.to_string())
}

impl Script {
    /// Reads and checks a whole kb file.
    pub fn load(path: &Path) -> Result<Script, VncError> {
        let text = std::fs::read_to_string(path).map_err(|source| VncError::File {
            path: path.to_path_buf(),
            source,
        })?;
        let file = path.display().to_string();
        let entries = kb::parse(&text).map_err(|error| VncError::Kb {
            file: file.clone(),
            error,
        })?;
        let dir = path.parent().map(Path::to_path_buf);
        let mut steps = Vec::with_capacity(entries.len());
        for e in entries {
            match e.line {
                Line::Blank => {}
                Line::Comment(c) => steps.push(Step::Comment(c)),
                Line::Step { delay_ns, action } => {
                    let template = match &action {
                        Action::WaitForIt(w) => {
                            Some(Arc::new(template_of(&w.template, dir.as_deref()).map_err(
                                |why| VncError::Template {
                                    file: file.clone(),
                                    line: e.number,
                                    why,
                                },
                            )?))
                        }
                        _ => None,
                    };
                    steps.push(Step::Do {
                        text: e.text.to_string(),
                        delay_ns,
                        action,
                        template,
                    });
                }
            }
        }
        Ok(Script {
            name: file,
            dir,
            steps,
            duration_ns: kb::file_duration_ns(&text),
        })
    }

    /// Text as keystrokes, as the original types it, except that a newline
    /// presses Return: the original's Linefeed key reaches a guest as a
    /// key no terminal takes for Enter, so a pasted or typed line would
    /// never run.
    pub fn typed(text: &str) -> Result<Script, VncError> {
        let steps = keys::type_text(text)?
            .into_iter()
            .map(|k| {
                let k = KeyEvent {
                    keysym: if k.keysym == LINEFEED {
                        RETURN
                    } else {
                        k.keysym
                    },
                    ..k
                };
                let action = Action::Key(k);
                Step::Do {
                    text: kb::format_line(0, &action).trim_end().to_string(),
                    delay_ns: 0,
                    action,
                    template: None,
                }
            })
            .collect();
        Ok(Script {
            name: "N/A".into(),
            dir: None,
            steps,
            duration_ns: 0,
        })
    }
}

enum Signal {
    Pause,
    Play,
    Step,
    Inject(Action),
}

struct State {
    paused: bool,
    closed: bool,
    remaining_ns: i64,
    step: String,
    file: String,
}

pub(super) struct Playback {
    state: Mutex<State>,
    ctl: mpsc::UnboundedSender<Signal>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Playback {
    pub fn start(
        vnc: Vnc,
        d: Arc<Display>,
        client: Client<UnixStream>,
        script: Script,
    ) -> Arc<Playback> {
        let (ctl, rx) = mpsc::unbounded_channel();
        let p = Arc::new(Playback {
            state: Mutex::new(State {
                paused: false,
                closed: false,
                remaining_ns: script.duration_ns,
                step: String::new(),
                file: script.name.clone(),
            }),
            ctl,
            task: Mutex::new(None),
        });
        info!(vm = %d.name, "start playback of {}", script.name);
        let me = p.clone();
        let task = tokio::spawn(async move {
            let mut run = Run {
                vnc,
                p: me.clone(),
                d: d.clone(),
                client,
                rx,
            };
            match run.script(&script, 0).await {
                Ok(()) => info!(vm = %d.name, "finished playback of {}", script.name),
                Err(e) => warn!(vm = %d.name, "playback of {} failed: {e}", script.name),
            }
            lock(&me.state).closed = true;
            let mut slot = lock(&d.play);
            if slot.as_ref().is_some_and(|p| Arc::ptr_eq(p, &me)) {
                *slot = None;
            }
        });
        *lock(&p.task) = Some(task);
        p
    }

    pub fn closed(&self) -> bool {
        lock(&self.state).closed
    }

    pub fn stop(&self) {
        lock(&self.state).closed = true;
        if let Some(t) = lock(&self.task).take() {
            t.abort();
        }
    }

    pub fn pause(&self) -> Result<(), VncError> {
        let mut s = lock(&self.state);
        if s.paused || s.closed {
            return Err(VncError::NotPausable);
        }
        s.paused = true;
        let _ = self.ctl.send(Signal::Pause);
        Ok(())
    }

    pub fn resume(&self) -> Result<(), VncError> {
        let mut s = lock(&self.state);
        if !s.paused || s.closed {
            return Err(VncError::NotPlayable);
        }
        s.paused = false;
        let _ = self.ctl.send(Signal::Play);
        Ok(())
    }

    pub fn step(&self) -> Result<(), VncError> {
        let s = lock(&self.state);
        if s.paused || s.closed {
            return Err(VncError::NotSteppable);
        }
        let _ = self.ctl.send(Signal::Step);
        Ok(())
    }

    pub fn inject(&self, action: Action) {
        let _ = self.ctl.send(Signal::Inject(action));
    }

    pub fn current(&self) -> String {
        lock(&self.state).step.clone()
    }

    /// The listing's time and filename columns.
    pub fn info(&self) -> (String, String) {
        let s = lock(&self.state);
        let time = if s.paused {
            "PAUSED".to_string()
        } else {
            format!("{} remaining", godur::format(s.remaining_ns.max(0)))
        };
        (time, s.file.clone())
    }

    fn spend(&self, ns: i64) {
        let mut s = lock(&self.state);
        s.remaining_ns = s.remaining_ns.saturating_sub(ns);
    }
}

/// The playback task's side.
struct Run {
    vnc: Vnc,
    p: Arc<Playback>,
    d: Arc<Display>,
    client: Client<UnixStream>,
    rx: mpsc::UnboundedReceiver<Signal>,
}

/// Why a playback ended early.
#[derive(Debug, thiserror::Error)]
enum PlayError {
    #[error("{0}")]
    Vnc(#[from] VncError),
    #[error("{0}")]
    Client(#[from] crate::console::client::ClientError),
    #[error("timeout waiting for {0}")]
    Timeout(String),
    #[error("too many recursive LoadFiles")]
    Depth,
    #[error("WaitForIt template: {0}")]
    Template(String),
    /// Stopped (`vnc stop`, `clear vnc`): not an error to report.
    #[error("stopped")]
    Stopped,
}

impl Run {
    fn script<'a>(
        &'a mut self,
        script: &'a Script,
        depth: usize,
    ) -> BoxFuture<'a, Result<(), PlayError>> {
        Box::pin(async move {
            if depth > MAX_DEPTH {
                return Err(PlayError::Depth);
            }
            for step in &script.steps {
                let (text, delay_ns, action, template) = match step {
                    Step::Comment(c) => {
                        info!(vm = %self.d.name, "playback: {c}");
                        continue;
                    }
                    Step::Do {
                        text,
                        delay_ns,
                        action,
                        template,
                    } => (text, *delay_ns, action, template),
                };
                lock(&self.p.state).step = text.clone();
                match self.wait(delay_ns, script, depth).await {
                    Err(PlayError::Stopped) => return Ok(()),
                    r => r?,
                }
                self.act(action, template.clone(), script, depth).await?;
            }
            Ok(())
        })
    }

    /// Waits out a line's delay, obeying the controls meanwhile.
    async fn wait(
        &mut self,
        delay_ns: i64,
        script: &Script,
        depth: usize,
    ) -> Result<(), PlayError> {
        let delay = Duration::from_nanos(delay_ns.max(0) as u64);
        let mut deadline = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    self.p.spend(delay_ns);
                    return Ok(());
                }
                sig = self.rx.recv() => match sig {
                    None => return Err(PlayError::Stopped),
                    Some(Signal::Pause) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        self.paused(script, depth).await?;
                        deadline = Instant::now() + left;
                    }
                    Some(Signal::Play) => {}
                    Some(Signal::Step) => {
                        self.p.spend(delay_ns);
                        return Ok(());
                    }
                    Some(Signal::Inject(a)) => self.act(&a, None, script, depth).await?,
                }
            }
        }
    }

    /// Until `vnc continue` (injected events still run).
    async fn paused(&mut self, script: &Script, depth: usize) -> Result<(), PlayError> {
        loop {
            match self.rx.recv().await {
                None => return Err(PlayError::Stopped),
                Some(Signal::Play) => return Ok(()),
                Some(Signal::Inject(a)) => self.act(&a, None, script, depth).await?,
                Some(Signal::Pause | Signal::Step) => {}
            }
        }
    }

    async fn send(&mut self, msg: ClientMessage) -> Result<(), PlayError> {
        self.client.send(&msg).await?;
        self.d.record(&msg);
        Ok(())
    }

    fn act<'a>(
        &'a mut self,
        action: &'a Action,
        template: Option<Arc<Template>>,
        script: &'a Script,
        depth: usize,
    ) -> BoxFuture<'a, Result<(), PlayError>> {
        Box::pin(async move {
            match action {
                Action::Key(_) | Action::Pointer(_) => {
                    let msg = action.message().expect("a key or pointer event");
                    self.send(msg).await
                }
                Action::LoadFile(name) => {
                    let path = match &script.dir {
                        Some(d) => d.join(name),
                        None => self.vnc_files().join(name),
                    };
                    self.vnc.ensure(&path).await?;
                    let nested = Script::load(&path)?;
                    let outer = {
                        let mut s = lock(&self.p.state);
                        s.remaining_ns = s.remaining_ns.saturating_add(nested.duration_ns);
                        std::mem::replace(&mut s.file, nested.name.clone())
                    };
                    info!(vm = %self.d.name, "start playback of {}", nested.name);
                    let r = self.script(&nested, depth + 1).await;
                    lock(&self.p.state).file = outer;
                    r
                }
                Action::WaitForIt(w) => {
                    let template = match template {
                        Some(t) => t,
                        None => Arc::new(
                            template_of(&w.template, script.dir.as_deref())
                                .map_err(PlayError::Template)?,
                        ),
                    };
                    self.wait_for_it(w, &template).await
                }
            }
        })
    }

    /// Where a LoadFile of typed text or an injected one is found.
    fn vnc_files(&self) -> PathBuf {
        self.vnc.0.files.clone()
    }

    async fn wait_for_it(&mut self, w: &WaitForIt, template: &Template) -> Result<(), PlayError> {
        let label = w.template.label();
        info!(vm = %self.d.name, "playback: wait for {label}, timeout = {}", godur::format(w.timeout_ns));
        let deadline = Instant::now() + w.timeout();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(PlayError::Timeout(label));
            }
            let shot = tokio::time::timeout(left, self.client.screenshot()).await;
            let found = match shot {
                Err(_) => return Err(PlayError::Timeout(label)),
                Ok(screen) => matcher::find(screen?, template),
            };
            if let Some(m) = found {
                info!(vm = %self.d.name, "playback: found {label} at {},{}", m.x, m.y);
                if w.click {
                    self.send(ClientMessage::Pointer(m.click())).await?;
                }
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(LOOK_EVERY)).await;
        }
    }
}

#[cfg(test)]
mod tests;
