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
    /// namespace spanning several mesh nodes): called for commands of local
    /// origin whose [`Spec::reach`] is a namespace, with the command's text;
    /// `None` runs it here only.
    fn elsewhere(&self, _wide: &Wide, _line: &str, _session: &Session) -> Option<Elsewhere> {
        None
    }

    /// The daemon's active namespace (`None`: the default), which sessions
    /// that follow it (see [`Session::follow_active`]) take before each line.
    fn active_namespace(&self) -> Option<String> {
        None
    }

    /// Expands one argument before a command runs (`.preprocess`):
    /// `Ok(None)` leaves it as it is, an error stops the command.
    fn preprocess<'a>(&'a self, _value: &'a str) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async { Ok(None) })
    }
}

/// Where else a command runs, as its context decided.
pub struct Elsewhere {
    /// Whether the handler runs here as well.
    pub here: bool,
    /// The other hosts' responses, merged into the command's answer.
    pub remote: BoxFuture<'static, Vec<Response>>,
}

/// Where a command typed on this node runs: a property of the command,
/// so a new command says it in its own [`Spec`].
#[derive(Debug, Clone, Copy, Default)]
pub enum Reach {
    /// Here only.
    #[default]
    Here,
    /// On every host of the session's namespace (through the context's
    /// [`Context::elsewhere`]), the answers merged into one.
    Namespace(Wide),
}

/// How a namespace-wide command runs.
#[derive(Debug, Clone, Copy)]
pub struct Wide {
    /// Runs here even when this node is not one of the namespace's hosts:
    /// what it changes lives on the node it is typed on too (cc filters).
    pub always_here: bool,
    /// Tidies the merged answer (e.g. drops "not here" errors of hosts
    /// that simply do not hold what another host acted on).
    pub tidy: Option<fn(&mut Vec<Response>)>,
}

impl Reach {
    pub const fn namespace(tidy: Option<fn(&mut Vec<Response>)>) -> Reach {
        Reach::Namespace(Wide {
            always_here: false,
            tidy,
        })
    }

    pub const fn namespace_and_here(tidy: Option<fn(&mut Vec<Response>)>) -> Reach {
        Reach::Namespace(Wide {
            always_here: true,
            tidy,
        })
    }
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
    /// Where it runs when typed in a namespace.
    pub reach: Reach,
    /// The lines to run in a namespace being destroyed (`clear namespace`,
    /// `clear all`), after its VMs are gone, to reset what this command
    /// keeps per namespace (VLAN aliases, cc filters, host taps...).
    pub ns_clear: &'static [&'static str],
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
    pub(super) specs: Vec<Spec<C>>,
    /// Every pattern as written: usage, help and completion.
    pub(super) patterns: Vec<(usize, Pattern, &'static str)>,
    /// The same with each choice split into its options: matching.
    variants: Vec<(usize, Pattern, &'static str)>,
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
        let mut variants = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            for p in spec.patterns {
                let pattern = Pattern::parse(p).unwrap_or_else(|e| panic!("{e}"));
                variants.extend(pattern.variants().into_iter().map(|v| (i, v, *p)));
                patterns.push((i, pattern, *p));
            }
        }
        Engine {
            specs,
            patterns,
            variants,
            history: Mutex::default(),
        }
    }

    pub fn specs(&self) -> &[Spec<C>] {
        &self.specs
    }

    /// Runs one line of input: comments and blank lines give no groups.
    /// The line goes into `history` after it ran, if the session records
    /// and the command did not say otherwise; comments are recorded too,
    /// lines that are no command are not (as minimega's history).
    pub async fn run_line(&self, ctx: &C, session: &mut Session, line: &str) -> Vec<Group> {
        if session.follow_active {
            session.namespace = ctx.active_namespace();
        }
        let local = session.origin == Origin::Local;
        // Every front door's bound, whichever door the line came through.
        if line.len() > super::MAX_LINE {
            return vec![self.error_group(ctx, session, super::too_long(line))];
        }
        let words = match lexer::lex(line) {
            Ok(w) => w,
            Err(e) => return vec![self.error_group(ctx, session, e)],
        };
        if words.is_empty() {
            if local && session.record && !line.trim().is_empty() {
                self.remember(line.trim());
            }
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
        // Saved and restored: `read` runs lines inside its own line.
        let outer = std::mem::replace(&mut session.record_this, local && session.record);
        let groups = self.run_compiled(ctx, session, words, compiled).await;
        if std::mem::replace(&mut session.record_this, outer) {
            self.remember(line);
        }
        groups
    }

    fn remember(&self, line: &str) {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
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
        let mut args = compiled.args;
        // What arrived over the mesh was expanded by its sender already.
        if session.preprocess && session.origin == Origin::Local {
            if let Err(e) = self.preprocess(ctx, &mut args).await {
                return vec![self.error_group(ctx, session, CommandError::Failed(e))];
            }
        }
        let wide = match (&session.origin, spec.reach) {
            (Origin::Local, Reach::Namespace(wide)) => Some(wide),
            _ => None,
        };
        let elsewhere = wide.and_then(|w| ctx.elsewhere(&w, &line, session));
        let call = Call {
            ctx,
            engine: self,
            session,
            args,
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
        if let (Some(tidy), Some(g)) = (wide.and_then(|w| w.tidy), groups.last_mut()) {
            tidy(&mut g.responses);
        }
        groups
    }

    /// Runs the context's preprocessor over every string and list argument.
    async fn preprocess(&self, ctx: &C, args: &mut Args) -> Result<(), String> {
        for v in args
            .strings
            .values_mut()
            .chain(args.lists.values_mut().flatten())
        {
            if let Some(new) = ctx.preprocess(v).await? {
                *v = new;
            }
        }
        Ok(())
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

    pub(super) fn patterns_of(&self, spec: usize) -> impl Iterator<Item = &Pattern> {
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
        // Abbreviated matches, each once per spelled-out command.
        let mut inexact: Vec<(Vec<String>, Compiled)> = Vec::new();
        for (spec, pattern, text) in &self.variants {
            if !pattern.may_start_with(first) {
                continue;
            }
            match pattern.matches(words) {
                Outcome::Matched {
                    args, exact: true, ..
                } => {
                    return self.check_sub(Compiled {
                        spec: *spec,
                        pattern: text,
                        args,
                    });
                }
                Outcome::Matched {
                    args,
                    exact: false,
                    resolved,
                } => {
                    if !inexact.iter().any(|(r, _)| *r == resolved) {
                        let c = Compiled {
                            spec: *spec,
                            pattern: text,
                            args,
                        };
                        inexact.push((resolved, c));
                    }
                }
                Outcome::Failed { .. } => {}
            }
        }
        let line = lexer::unlex(words);
        match inexact.len() {
            1 => self.check_sub(inexact.pop().expect("one match").1),
            0 => Err(self.no_match(words, &line, first)),
            _ => {
                let names: Vec<String> = inexact
                    .iter()
                    .map(|(r, _)| format!("`{}`", r.join(" ")))
                    .collect();
                Err(CommandError::Invalid(format!(
                    "ambiguous command `{}`: could be {}",
                    super::excerpt(&line),
                    names.join(", ")
                )))
            }
        }
    }

    /// Why nothing matched, naming the command the input names: the usage
    /// of the commands whose whole name it spells (the longest such name),
    /// else the commands under the words it does spell (`vm frob`).
    fn no_match(&self, words: &[Word], line: &str, first: &Word) -> CommandError {
        let mut best = 0;
        let mut named: Vec<usize> = Vec::new();
        let mut partial = 0;
        for (spec, pattern, _) in &self.patterns {
            let (n, whole) = pattern.name_match(words);
            if whole && n > 0 {
                if n > best {
                    best = n;
                    named.clear();
                }
                if n == best && !named.contains(spec) {
                    named.push(*spec);
                }
            } else {
                partial = partial.max(n);
            }
        }
        if !named.is_empty() {
            let mut usage: Vec<&str> = Vec::new();
            for spec in named {
                for p in self.patterns_of(spec) {
                    if !usage.contains(&p.text.as_str()) {
                        usage.push(&p.text);
                    }
                }
            }
            return CommandError::Invalid(format!(
                "invalid arguments in `{}`; usage: {}",
                super::excerpt(line),
                usage.join(" | ")
            ));
        }
        if partial == 0 {
            return CommandError::Invalid(format!(
                "no such command: `{}` (try `help`)",
                super::excerpt(&first.value)
            ));
        }
        // The spelled-out words the input shares with some commands.
        let under: Vec<String> = self
            .patterns
            .iter()
            .filter(|(_, p, _)| p.name_match(words).0 == partial)
            .map(|(_, p, _)| p.name())
            .collect();
        let prefix: Vec<&str> = under[0].split(' ').take(partial).collect();
        let mut names: Vec<String> = under
            .iter()
            .map(|n| n.split(' ').take(partial + 1).collect::<Vec<_>>().join(" "))
            .collect();
        names.sort();
        names.dedup();
        let line = super::excerpt(line);
        let what = if words.len() > partial {
            format!("no such command: `{line}`")
        } else {
            format!("incomplete command `{line}`")
        };
        CommandError::Invalid(format!(
            "{what}; `{}` commands: {}",
            prefix.join(" "),
            names.join(", ")
        ))
    }

    /// A nested command must itself compile, or the outer one fails with
    /// the inner command's error (`.columns name vm lunch`).
    fn check_sub(&self, c: Compiled) -> Result<Compiled, CommandError> {
        if let Some(sub) = &c.args.sub {
            self.compile(sub)?;
        }
        Ok(c)
    }

    /// The names of the commands that start with the word `first` and run
    /// with no argument (`clear vm config`), in table order, each once.
    pub fn argless(&self, first: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, p, _) in &self.patterns {
            let name = p.name();
            if name.split(' ').next() != Some(first) || out.contains(&name) {
                continue;
            }
            let words = lexer::lex(&name).unwrap_or_default();
            if matches!(p.matches(&words), Outcome::Matched { exact: true, .. }) {
                out.push(name);
            }
        }
        out
    }

    /// Whether `words` are, or nest, the command named `name` (`.columns
    /// name vm launch ...` nests `vm launch`).
    pub fn names_command(&self, words: &[Word], name: &str) -> bool {
        let Ok(c) = self.compile(words) else {
            return false;
        };
        if self.patterns_of(c.spec).any(|p| p.name() == name) {
            return true;
        }
        c.args
            .sub
            .as_ref()
            .is_some_and(|sub| self.names_command(sub, name))
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
}
