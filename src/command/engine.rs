//! The one command engine every front door calls (D-Bus `Exec`, the command
//! socket, the mesh, `-attach`): it compiles a line against the command
//! table, runs the handler and returns typed per-host responses, grouped per
//! command, for the caller to render or ship.

use super::lexer::{self, Word};
use super::pattern::{Args, Outcome, Pattern};
use super::response::{Group, Response};
use super::session::{Origin, Session};
use super::CommandError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type CmdResult = Result<Reply, CommandError>;
pub type Handler<C> = for<'a> fn(Call<'a, C>) -> BoxFuture<'a, CmdResult>;

/// What the engine needs from the daemon it serves.
pub trait Context: Send + Sync + 'static {
    /// The name responses are annotated with.
    fn hostname(&self) -> String;

    /// Lets the context run a command typed here on other hosts too (a
    /// namespace spanning several mesh nodes): called with the command's
    /// name and text for commands of local origin; `None` runs it here only.
    fn elsewhere(&self, _command: &str, _line: &str, _session: &Session) -> Option<Elsewhere> {
        None
    }
}

/// Where else a command runs, as its context decided.
pub struct Elsewhere {
    /// Whether the handler runs here as well.
    pub here: bool,
    /// The other hosts' responses, merged into the command's answer.
    pub remote: BoxFuture<'static, Vec<Response>>,
    /// Tidies the merged answer (e.g. drops "not here" errors of hosts
    /// that simply do not hold what another host acted on).
    pub tidy: Option<fn(&mut Vec<Response>)>,
}

/// One command of the table: its patterns, help and handler.
pub struct Spec<C> {
    pub patterns: &'static [&'static str],
    pub short: &'static str,
    pub long: &'static str,
    pub handler: Handler<C>,
    /// May a command that arrived over the mesh run it? minimega refuses
    /// e.g. `mesh send` there, so a message cannot bounce around forever.
    pub mesh_ok: bool,
}

/// What a handler returns: its responses (one command's answer), or whole
/// groups when it ran nested commands.
#[derive(Debug)]
pub enum Reply {
    Responses(Vec<Response>),
    Groups(Vec<Group>),
}

impl From<Response> for Reply {
    fn from(r: Response) -> Reply {
        Reply::Responses(vec![r])
    }
}

impl From<Vec<Response>> for Reply {
    fn from(r: Vec<Response>) -> Reply {
        Reply::Responses(r)
    }
}

impl Reply {
    /// An answer with nothing to print.
    pub fn empty() -> Reply {
        Reply::Responses(vec![Response::default()])
    }
}

/// Everything a handler gets.
pub struct Call<'a, C> {
    pub ctx: &'a C,
    pub engine: &'a Engine<C>,
    pub session: &'a mut Session,
    pub args: Args,
    /// The command's own text, as matched (after alias expansion).
    pub line: String,
    /// The pattern that matched, so one handler serving several patterns
    /// (`vm kill` / `clear vm ...`) knows which, even when abbreviated.
    pub pattern: &'static str,
}

impl<C: Context> Call<'_, C> {
    /// Runs the nested `(command)` of this call in the same session.
    pub async fn run_sub(&mut self) -> Vec<Group> {
        let words = self.args.sub.take().unwrap_or_default();
        self.engine.run_words(self.ctx, self.session, words).await
    }
}

pub struct Engine<C> {
    specs: Vec<Spec<C>>,
    patterns: Vec<(usize, Pattern, &'static str)>,
    history: Mutex<super::history::History>,
}

struct Compiled {
    spec: usize,
    pattern: &'static str,
    args: Args,
}

impl<C: Context> Engine<C> {
    /// Builds the engine. Panics on an invalid pattern: the table is ours,
    /// and a unit test compiles it.
    pub fn new(specs: Vec<Spec<C>>) -> Engine<C> {
        let mut patterns = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            for p in spec.patterns {
                patterns.push((i, Pattern::parse(p).unwrap_or_else(|e| panic!("{e}")), *p));
            }
        }
        Engine {
            specs,
            patterns,
            history: Mutex::default(),
        }
    }

    pub fn specs(&self) -> &[Spec<C>] {
        &self.specs
    }

    /// Runs one line of input: comments and blank lines give no groups.
    pub async fn run_line(&self, ctx: &C, session: &mut Session, line: &str) -> Vec<Group> {
        let words = match lexer::lex(line) {
            Ok(w) => w,
            Err(e) => return vec![self.error_group(ctx, session, e)],
        };
        if words.is_empty() {
            return Vec::new();
        }
        let words = match self.expand_alias(session, words) {
            Ok(w) => w,
            Err(e) => return vec![self.error_group(ctx, session, e)],
        };
        let compiled = match self.compile(&words) {
            Ok(c) => c,
            Err(e) => return vec![self.error_group(ctx, session, e)],
        };
        if session.origin == Origin::Local {
            self.history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line);
        }
        self.run_compiled(ctx, session, words, compiled).await
    }

    /// Whether a line would run (it lexes and matches a command, after the
    /// session's aliases), without running it. Blank lines and comments pass.
    pub fn check_line(&self, session: &Session, line: &str) -> Result<(), CommandError> {
        let words = lexer::lex(line)?;
        if words.is_empty() {
            return Ok(());
        }
        let words = self.expand_alias(session, words)?;
        self.compile(&words).map(|_| ())
    }

    /// Runs already-lexed words; nested commands come through here.
    pub fn run_words<'a>(
        &'a self,
        ctx: &'a C,
        session: &'a mut Session,
        words: Vec<Word>,
    ) -> BoxFuture<'a, Vec<Group>> {
        Box::pin(async move {
            match self.compile(&words) {
                Ok(compiled) => self.run_compiled(ctx, session, words, compiled).await,
                Err(e) => vec![self.error_group(ctx, session, e)],
            }
        })
    }

    async fn run_compiled(
        &self,
        ctx: &C,
        session: &mut Session,
        words: Vec<Word>,
        compiled: Compiled,
    ) -> Vec<Group> {
        let spec = &self.specs[compiled.spec];
        if let Origin::Mesh { from } = &session.origin {
            if !spec.mesh_ok {
                let name = self
                    .patterns_of(compiled.spec)
                    .next()
                    .map(Pattern::name)
                    .unwrap_or_default();
                let e = CommandError::Invalid(format!(
                    "`{name}` cannot be sent over the mesh (from {from})"
                ));
                return vec![self.error_group(ctx, session, e)];
            }
        }
        let line = lexer::unlex(&words);
        let elsewhere = match session.origin {
            Origin::Local => self
                .patterns_of(compiled.spec)
                .next()
                .and_then(|p| ctx.elsewhere(&p.name(), &line, session)),
            Origin::Mesh { .. } => None,
        };
        let call = Call {
            ctx,
            engine: self,
            session,
            args: compiled.args,
            line,
            pattern: compiled.pattern,
        };
        let Some(elsewhere) = elsewhere else {
            let result = (spec.handler)(call).await;
            return self.finish(ctx, session, result);
        };
        let here = async {
            if elsewhere.here {
                Some((spec.handler)(call).await)
            } else {
                None
            }
        };
        let (result, remote) = futures_util::future::join(here, elsewhere.remote).await;
        let mut groups = match result {
            Some(r) => self.finish(ctx, session, r),
            None => Vec::new(),
        };
        match groups.last_mut() {
            Some(g) => g.responses.extend(remote),
            None => groups.push(Group {
                responses: remote,
                flags: session.flags,
            }),
        }
        if let (Some(tidy), Some(g)) = (elsewhere.tidy, groups.last_mut()) {
            tidy(&mut g.responses);
        }
        groups
    }

    /// A handler's result as the groups the caller gets.
    fn finish(&self, ctx: &C, session: &Session, result: CmdResult) -> Vec<Group> {
        match result {
            Ok(Reply::Groups(groups)) => groups,
            Ok(Reply::Responses(mut responses)) => {
                let host = ctx.hostname();
                for r in &mut responses {
                    if r.host.is_empty() {
                        r.host = host.clone();
                    }
                }
                vec![Group {
                    responses,
                    flags: session.flags,
                }]
            }
            Err(e) => vec![self.error_group(ctx, session, e)],
        }
    }

    pub fn error_group(&self, ctx: &C, session: &Session, e: CommandError) -> Group {
        Group {
            responses: vec![Response::error(&ctx.hostname(), e.to_string())],
            flags: session.flags,
        }
    }

    fn expand_alias(&self, session: &Session, words: Vec<Word>) -> Result<Vec<Word>, CommandError> {
        let first = &words[0];
        if first.quoted {
            return Ok(words);
        }
        match session.aliases.get(&first.value) {
            Some(expansion) => {
                let mut out = lexer::lex(expansion)?;
                out.extend(words.into_iter().skip(1));
                Ok(out)
            }
            None => Ok(words),
        }
    }

    fn patterns_of(&self, spec: usize) -> impl Iterator<Item = &Pattern> {
        self.patterns
            .iter()
            .filter(move |(s, _, _)| *s == spec)
            .map(|(_, p, _)| p)
    }

    fn compile(&self, words: &[Word]) -> Result<Compiled, CommandError> {
        // An alias may expand to nothing, and a nested command may be absent.
        let Some(first) = words.first() else {
            return Err(CommandError::Invalid("missing command".into()));
        };
        let mut inexact: Vec<(usize, Args, &'static str)> = Vec::new();
        let mut closest: Option<(usize, usize)> = None; // (depth, spec)
        for (spec, pattern, text) in &self.patterns {
            match pattern.matches(words) {
                Outcome::Matched { args, exact: true } => {
                    return self.check_sub(Compiled {
                        spec: *spec,
                        pattern: text,
                        args,
                    });
                }
                Outcome::Matched { args, exact: false } => {
                    if !inexact.iter().any(|(s, _, _)| s == spec) {
                        inexact.push((*spec, args, text));
                    }
                }
                Outcome::Failed { depth } => {
                    if depth > 0 && closest.is_none_or(|(d, _)| depth > d) {
                        closest = Some((depth, *spec));
                    }
                }
            }
        }
        let line = lexer::unlex(words);
        match inexact.len() {
            1 => {
                let (spec, args, pattern) = inexact.pop().expect("one match");
                self.check_sub(Compiled {
                    spec,
                    pattern,
                    args,
                })
            }
            0 => Err(match closest {
                Some((_, spec)) => {
                    let usage: Vec<&str> =
                        self.patterns_of(spec).map(|p| p.text.as_str()).collect();
                    CommandError::Invalid(format!(
                        "invalid arguments in `{line}`; usage: {}",
                        usage.join(" | ")
                    ))
                }
                None => CommandError::Invalid(format!(
                    "no such command: `{}` (try `help`)",
                    first.value
                )),
            }),
            _ => {
                let names: Vec<String> = inexact
                    .iter()
                    .filter_map(|(s, _, _)| {
                        self.patterns_of(*s)
                            .next()
                            .map(|p| format!("`{}`", p.name()))
                    })
                    .collect();
                Err(CommandError::Invalid(format!(
                    "ambiguous command `{line}`: could be {}",
                    names.join(", ")
                )))
            }
        }
    }

    /// A nested command must itself compile, or the outer one fails with
    /// the inner command's error (`.columns name vm lunch`).
    fn check_sub(&self, c: Compiled) -> Result<Compiled, CommandError> {
        if let Some(sub) = &c.args.sub {
            self.compile(sub)?;
        }
        Ok(c)
    }

    /// The command history, oldest first.
    pub fn history(&self) -> Vec<String> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lines()
    }

    pub fn clear_history(&self) {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Completions of a partial line: whole lines, as minimega's `Suggest`.
    pub fn suggest(&self, partial: &str) -> Vec<String> {
        let Ok(words) = lexer::lex(partial) else {
            return Vec::new();
        };
        let new_word = partial.is_empty() || partial.ends_with(char::is_whitespace);
        let keep = if new_word {
            words.len()
        } else {
            words.len().saturating_sub(1)
        };
        let head = lexer::unlex(&words[..keep]);
        let mut out: Vec<String> = Vec::new();
        for (_, p, _) in &self.patterns {
            for s in p.suggest(&words, new_word) {
                let line = if head.is_empty() {
                    s
                } else {
                    format!("{head} {s}")
                };
                if !out.contains(&line) {
                    out.push(line);
                }
            }
        }
        out.sort();
        out
    }

    /// The one-line summary of every command, for `help` alone.
    pub fn help_index(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<(String, &'static str)> = self
            .specs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.patterns_of(i).next().map(|p| (p.name(), s.short)))
            .collect();
        v.sort();
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }

    /// Help on the commands whose name starts with `words`.
    pub fn help_on(&self, words: &[String]) -> Result<String, CommandError> {
        let want = words.join(" ");
        let exact: Vec<usize> = (0..self.specs.len())
            .filter(|i| {
                self.patterns_of(*i)
                    .next()
                    .is_some_and(|p| p.name() == want)
            })
            .collect();
        if !exact.is_empty() {
            let mut out = String::new();
            for i in exact {
                out.push_str("Usage:\n");
                for p in self.patterns_of(i) {
                    out.push_str(&format!("\t{}\n", p.text));
                }
                out.push('\n');
                out.push_str(self.specs[i].long.trim());
                out.push('\n');
            }
            return Ok(out.trim_end().to_string());
        }
        let prefix: Vec<(String, &str)> = self
            .help_index()
            .into_iter()
            .filter(|(n, _)| n.starts_with(&want))
            .collect();
        if prefix.is_empty() {
            return Err(CommandError::Invalid(format!(
                "no help on `{want}`: no such command"
            )));
        }
        Ok(format_index(&prefix))
    }
}

/// `name : summary` lines with the names padded to one width.
pub fn format_index(entries: &[(String, &str)]) -> String {
    let w = entries.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    entries
        .iter()
        .map(|(n, s)| format!("{n:<w$} : {s}"))
        .collect::<Vec<_>>()
        .join("\n")
}
