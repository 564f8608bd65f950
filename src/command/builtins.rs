//! Commands of the language itself, whatever daemon serves it: the
//! dot-commands that shape output or say how a command runs (`.record`,
//! `.preprocess`), aliases, `help`, `echo`, `history` and `quit`.

use super::engine::{BoxFuture, Call, CmdResult, Context, Reply, Spec};
use super::help::format_index;
use super::response::{Flags, Mode, Response};
use super::session::{Origin, Session};
use super::CommandError;
use crate::command::Reach;

pub fn specs<C: Context>() -> Vec<Spec<C>> {
    vec![
        flag_spec(
            &[".json [true,false]", ".json <true,false> (command)"],
            "enable or disable JSON mode",
            "Enable or disable JSON output. JSON mode prints the raw responses of\nevery host (Host, Response, Header, Tabular, Error, Data) as one JSON\narray. Enabling JSON mode disables CSV mode.",
            dot_json::<C>,
        ),
        flag_spec(
            &[".csv [true,false]", ".csv <true,false> (command)"],
            "enable or disable CSV mode",
            "Enable or disable CSV output of tabular data. Enabling CSV mode\ndisables JSON mode.",
            dot_csv::<C>,
        ),
        flag_spec(
            &[".headers [true,false]", ".headers <true,false> (command)"],
            "enable or disable headers for tabular data",
            "Enable or disable the header row of tabular data.",
            dot_headers::<C>,
        ),
        flag_spec(
            &[".annotate [true,false]", ".annotate <true,false> (command)"],
            "enable or disable hostname annotation",
            "Enable or disable hostname annotation: a `host` column first in tables,\nand `host: ` before the answers of several hosts.",
            dot_annotate::<C>,
        ),
        flag_spec(
            &[".compress [true,false]", ".compress <true,false> (command)"],
            "enable or disable output compression",
            "Enable or disable compression of identical answers from several hosts\ninto one line with a host range, e.g. `node[1-9]: minimega 1.0`.\nCompression does not apply to JSON output.",
            dot_compress::<C>,
        ),
        flag_spec(
            &[".sort [true,false]", ".sort <true,false> (command)"],
            "enable or disable sorting of tabular data",
            "Enable or disable sorting of table rows by their first columns\n(numerically when both values are integers).",
            dot_sort::<C>,
        ),
        Spec {
            patterns: &[".record [true,false]", ".record <true,false> (command)"],
            short: "enable or disable history recording",
            long: "Enable or disable the recording of commands in `history`. Alone,
`.record false` stops recording this session's commands until `.record
true`; before a command it sets whether that one line is recorded
(`.record false vm info`), as minimega's clients send their polling
commands. `.record` alone prints the setting. `.record` itself, with no
command after it, is not recorded.",
            handler: dot_record::<C>,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[".preprocess [true,false]", ".preprocess <true,false> (command)"],
            short: "enable or disable preprocessor",
            long: "Enable or disable the command preprocessor, which expands every argument
before a command runs: `$VAR` and `${VAR}` become the daemon's
environment variables (empty when unset), and `file:NAME` becomes the
path of NAME in the files directory (-filepath), which must exist. Alone
it sets this session's default (on); before a command, that command's.",
            handler: dot_preprocess::<C>,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[".filter <filter> (command)"],
            short: "filter tabular data by column value",
            long: "Keep only the rows of a table whose column matches:\n\n\t.filter state=running vm info\n\t.filter state!=running vm info\n\t.filter name~web vm info     (substring)\n\t.filter name!~web vm info    (no substring)\n\nMatching ignores case. A list or object value (`[..]`, `{..}`) matches by\nsubstring. Filters stack: `.filter state=running .filter vcpus=4 vm info`.",
            handler: dot_filter::<C>,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[".columns <columns as csv> (command)"],
            short: "show certain columns from tabular data",
            long: "Show only the named columns, in that order:\n\n\t.columns name,state vm info\n\nA unique prefix names a column (`.col st` for state; `host` is vm info's\n`hostname`, as in minimega); an ambiguous prefix is an error. The `host`\ncolumn of the output follows `.annotate`. A table with no rows takes the\nnames given, unchecked, when the command answers no rows at all (an empty\n`vm info`), and checks them when it answers an empty list (`file list`).",
            handler: dot_columns::<C>,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[".alias", ".alias <alias>..."],
            short: "create an alias",
            long: "Create an alias, as in a shell: `.alias vmr=.filter state=running vm info`\nthen `vmr` runs the expansion. The name is the text before the first `=`.\nOnly the first word of a command is expanded. `.alias` alone lists the\naliases of this session.",
            handler: dot_alias::<C>,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[".unalias <alias>"],
            short: "remove an alias",
            long: "Remove an alias of this session by name.",
            handler: dot_unalias::<C>,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["help [command]..."],
            short: "show command help",
            long: "Show help on a command (`help vm launch`), or the list of commands\nwhose name starts with the words given (`help vm`), or all commands.",
            handler: help::<C>,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["echo [args]..."],
            short: "display input text",
            long: "Print the arguments, joined by single spaces.",
            handler: echo::<C>,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["history", "clear history"],
            short: "show the command history",
            long: "Show the commands run on this daemon by its clients, oldest first:\nvalid commands and comments, not lines that are no command, nor the\ncommands of a session with `.record false`, nor `history` itself. A\n`read` is recorded as the commands of its file. `clear history` forgets\nthem.",
            handler: history::<C>,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["quit"],
            short: "end this client's session",
            long: "End this client's session: the command socket closes the connection,\n`-attach` exits, and a D-Bus caller's next command starts a fresh session\n(default settings, no aliases). The daemon keeps running; stop it with\n`systemctl stop minimega` (or SIGTERM).",
            handler: quit::<C>,
            mesh_ok: false,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

fn flag_spec<C: Context>(
    patterns: &'static [&'static str],
    short: &'static str,
    long: &'static str,
    handler: super::Handler<C>,
) -> Spec<C> {
    Spec {
        patterns,
        short,
        long,
        handler,
        mesh_ok: true,
        reach: Reach::Here,
        ns_clear: &[],
    }
}

/// The `true`/`false` choice of a dot-command, if given.
fn choice(args: &super::Args) -> Option<bool> {
    if args.flag("true") {
        Some(true)
    } else if args.flag("false") {
        Some(false)
    } else {
        None
    }
}

/// Shared by the boolean dot-commands: alone they show or set the session
/// setting; before a command they override it for that command only.
async fn flag_command<C: Context>(
    mut c: Call<'_, C>,
    get: fn(&Flags) -> bool,
    set: fn(&mut Flags, bool),
) -> CmdResult {
    let value = choice(&c.args);
    if c.args.sub.is_some() {
        let v = value.unwrap_or(true);
        let mut groups = c.run_sub().await;
        for g in &mut groups {
            set(&mut g.flags, v);
        }
        return Ok(Reply::Groups(groups));
    }
    match value {
        Some(v) => {
            set(&mut c.session.flags, v);
            Ok(Reply::empty())
        }
        None => Ok(Response::text(get(&c.session.flags).to_string()).into()),
    }
}

/// `.record` and `.preprocess` set the session, not a group's output:
/// before a command they hold for that command only.
async fn session_flag<C: Context>(
    mut c: Call<'_, C>,
    field: fn(&mut Session) -> &mut bool,
) -> CmdResult {
    let value = choice(&c.args);
    if c.args.sub.is_some() {
        let saved = std::mem::replace(field(c.session), value.unwrap_or(true));
        let groups = c.run_sub().await;
        *field(c.session) = saved;
        return Ok(Reply::Groups(groups));
    }
    match value {
        Some(v) => {
            *field(c.session) = v;
            Ok(Reply::empty())
        }
        None => Ok(Response::text(field(c.session).to_string()).into()),
    }
}

fn dot_record<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        // As minimega: `.record true CMD` is recorded even in a session that
        // does not record, `.record false [CMD]` never; `.record true`
        // alone only if the session recorded already.
        match (c.args.sub.is_some(), c.args.flag("true")) {
            (true, v) => c.session.record_this = v && c.session.origin == Origin::Local,
            (false, false) => c.session.record_this = false,
            (false, true) => {}
        }
        session_flag(c, |s| &mut s.record).await
    })
}

fn dot_preprocess<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(session_flag(c, |s| &mut s.preprocess))
}

fn set_mode(f: &mut Flags, mode: Mode, on: bool) {
    if on {
        f.mode = mode;
    } else if f.mode == mode {
        f.mode = Mode::Table;
    }
}

fn dot_json<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(flag_command(
        c,
        |f| f.mode == Mode::Json,
        |f, v| set_mode(f, Mode::Json, v),
    ))
}
fn dot_csv<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(flag_command(
        c,
        |f| f.mode == Mode::Csv,
        |f, v| set_mode(f, Mode::Csv, v),
    ))
}
fn dot_headers<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(flag_command(c, |f| f.headers, |f, v| f.headers = v))
}
fn dot_annotate<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(flag_command(c, |f| f.annotate, |f, v| f.annotate = v))
}
fn dot_compress<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(flag_command(c, |f| f.compress, |f, v| f.compress = v))
}
fn dot_sort<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(flag_command(c, |f| f.sort, |f, v| f.sort = v))
}

/// A parsed `.filter` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub column: String,
    pub value: String,
    pub negate: bool,
    pub fuzzy: bool,
}

impl Filter {
    pub fn parse(s: &str) -> Result<Filter, CommandError> {
        // The first operator splits: the value may itself hold `=` or `~`
        // (`.filter append=console=ttyS0`).
        let bad = || {
            CommandError::Invalid(format!(
                "invalid filter `{s}`: expected column=value, column!=value, column~value or column!~value"
            ))
        };
        let at = s.find(['=', '~']).ok_or_else(bad)?;
        let (col, negate) = match s[..at].strip_suffix('!') {
            Some(col) => (col, true),
            None => (&s[..at], false),
        };
        if col.is_empty() {
            return Err(bad());
        }
        Ok(Filter {
            column: col.to_lowercase(),
            value: s[at + 1..].to_lowercase(),
            negate,
            fuzzy: s[at..].starts_with('~'),
        })
    }

    pub fn matches(&self, cell: &str) -> bool {
        let cell = cell.to_lowercase();
        let fuzzy = self.fuzzy
            || (cell.starts_with('[') && cell.ends_with(']'))
            || (cell.starts_with('{') && cell.ends_with('}'));
        let hit = cell == self.value || (fuzzy && cell.contains(&self.value));
        hit != self.negate
    }

    /// Filters one response as minimega's `filterResp`: `Ok(false)` drops
    /// it. A `host` filter keeps or drops the whole response by the host
    /// that answered (errors too); an answer that is no table, or a table
    /// whose rows are nil (not `[]`), passes untouched; otherwise the
    /// column is found by unique prefix and the rows that match stay (a
    /// list from then on, even when none is left).
    pub fn apply(&self, r: &mut Response) -> Result<bool, CommandError> {
        if self.column == "host" {
            return Ok(self.matches(&r.host));
        }
        if !r.is_tabular() || (r.tabular.is_empty() && !r.listed) {
            return Ok(true);
        }
        let i = find_column(&r.header, &self.column)?;
        r.tabular
            .retain(|row| row.get(i).is_some_and(|v| self.matches(v)));
        r.listed = true;
        Ok(true)
    }
}

fn dot_filter<C: Context>(mut c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let f = Filter::parse(c.args.string("filter").unwrap_or_default())?;
        let host = c.ctx.hostname();
        let mut groups = c.run_sub().await;
        for g in &mut groups {
            let mut kept = Vec::new();
            for mut r in std::mem::take(&mut g.responses) {
                match f.apply(&mut r) {
                    Ok(true) => kept.push(r),
                    Ok(false) => {}
                    Err(e) => {
                        // As minimega: the error, from this host, is the
                        // whole answer.
                        kept = vec![Response::error(&host, e.to_string())];
                        break;
                    }
                }
            }
            g.responses = kept;
        }
        Ok(Reply::Groups(groups))
    })
}

/// A column by its name or a unique prefix of it, ignoring case, as
/// minimega finds `.columns` and `.filter` columns (`.col st` is state).
pub fn find_column(header: &[String], wanted: &str) -> Result<usize, CommandError> {
    let w = wanted.to_lowercase();
    if let Some(i) = header.iter().position(|h| h.to_lowercase() == w) {
        return Ok(i);
    }
    let hits: Vec<usize> = (0..header.len())
        .filter(|i| header[*i].to_lowercase().starts_with(&w))
        .collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => Err(CommandError::Invalid(format!("no such column `{wanted}`"))),
        _ => Err(CommandError::Invalid(format!(
            "ambiguous column `{wanted}`: could be {}",
            hits.iter()
                .map(|i| header[*i].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Resolves each wanted column to its index (see [`find_column`]).
pub fn select_columns(header: &[String], wanted: &[&str]) -> Result<Vec<usize>, CommandError> {
    wanted.iter().map(|w| find_column(header, w)).collect()
}

/// `.columns` over one response, as minimega's `cliColumns`: an answer
/// that is no table passes; a table whose rows are nil takes the names as
/// they were asked for, unchecked (an empty `vm info` is no error); else
/// each name is found by unique prefix (so `host` is `vm info`'s
/// `hostname`) and the header gets the names found.
pub fn select(r: &mut Response, wanted: &[&str]) -> Result<(), CommandError> {
    if !r.is_tabular() {
        return Ok(());
    }
    if r.tabular.is_empty() && !r.listed {
        r.header = wanted.iter().map(|w| w.to_string()).collect();
        return Ok(());
    }
    let idx = select_columns(&r.header, wanted)?;
    r.header = idx.iter().map(|i| r.header[*i].clone()).collect();
    for row in &mut r.tabular {
        *row = idx
            .iter()
            .map(|i| row.get(*i).cloned().unwrap_or_default())
            .collect();
    }
    Ok(())
}

fn dot_columns<C: Context>(mut c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let spec = c.args.string("columns").unwrap_or_default().to_string();
        let wanted: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if wanted.is_empty() {
            return Err(CommandError::Invalid("no columns given".into()));
        }
        let host = c.ctx.hostname();
        let mut groups = c.run_sub().await;
        for g in &mut groups {
            if let Some(e) = g
                .responses
                .iter_mut()
                .find_map(|r| select(r, &wanted).err())
            {
                g.responses = vec![Response::error(&host, e.to_string())];
            }
        }
        Ok(Reply::Groups(groups))
    })
}

fn dot_alias<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let text = c.args.list("alias").join(" ");
        if text.is_empty() {
            let rows = c
                .session
                .aliases
                .iter()
                .map(|(k, v)| vec![k.clone(), v.clone()])
                .collect::<Vec<_>>();
            if rows.is_empty() {
                return Ok(Reply::empty());
            }
            return Ok(super::table(["alias", "expansion"], rows).into());
        }
        let Some((name, expansion)) = text.split_once('=') else {
            return Err(CommandError::Invalid(
                "expected alias of format `alias=expansion`".into(),
            ));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(CommandError::Invalid(format!(
                "invalid alias name `{name}`"
            )));
        }
        c.session
            .aliases
            .insert(name.to_string(), expansion.trim().to_string());
        Ok(Reply::empty())
    })
}

fn dot_unalias<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let name = c.args.string("alias").unwrap_or_default();
        if c.session.aliases.remove(name).is_none() {
            return Err(CommandError::Invalid(format!("no such alias `{name}`")));
        }
        Ok(Reply::empty())
    })
}

fn help<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let words = c.args.list("command");
        if words.is_empty() {
            let index = c.engine.help_index();
            let text = format!(
                "Display help on a command. Here is a list of commands:\n{}",
                format_index(&index)
            );
            return Ok(Response::text(text).into());
        }
        Ok(Response::text(c.engine.help_on(words)?).into())
    })
}

fn echo<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move { Ok(Response::text(c.args.list("args").join(" ")).into()) })
}

fn quit<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        c.session.quit = true;
        Ok(Reply::empty())
    })
}

fn history<C: Context>(c: Call<'_, C>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        c.session.record_this = false;
        if c.pattern.starts_with("clear") {
            c.engine.clear_history();
            return Ok(Reply::empty());
        }
        Ok(Response::text(c.engine.history().join("\n")).into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_parsing() {
        let f = Filter::parse("state!=RUNNING").unwrap();
        assert!(f.negate && !f.fuzzy && f.column == "state" && f.value == "running");
        let f = Filter::parse("name!~web").unwrap();
        assert!(f.negate && f.fuzzy);
        let f = Filter::parse("name~web").unwrap();
        assert!(!f.negate && f.fuzzy);
        assert!(Filter::parse("nothing").is_err());
        assert!(Filter::parse("=x").is_err());
        assert!(Filter::parse("!=x").is_err());
        let f = Filter::parse("append=console=ttyS0~x").unwrap();
        assert_eq!(
            (f.column.as_str(), f.value.as_str()),
            ("append", "console=ttys0~x")
        );
        assert!(!f.negate && !f.fuzzy);
        let f = Filter::parse("name~a=b").unwrap();
        assert_eq!(
            (f.column.as_str(), f.value.as_str(), f.fuzzy),
            ("name", "a=b", true)
        );
    }

    #[test]
    fn filter_matching() {
        let f = Filter::parse("tags~web").unwrap();
        assert!(f.matches("{\"role\":\"WEB\"}"));
        let f = Filter::parse("tags=web").unwrap();
        assert!(f.matches("[web, db]"), "lists match by substring");
        assert!(!f.matches("webserver"));
    }

    fn resp(header: &[&str], rows: &[&[&str]]) -> Response {
        Response {
            host: "h1".into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            tabular: rows
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect(),
            ..Default::default()
        }
    }

    /// minimega's cliColumns: nil rows take the names as asked, an empty
    /// list checks them, a prefix resolves to the header's own name.
    #[test]
    fn columns_as_minimega_selects_them() {
        let mut empty = resp(&["id", "name", "hostname"], &[]);
        select(&mut empty, &["uuid", "host", "nonesuch"]).unwrap();
        assert_eq!(empty.header, ["uuid", "host", "nonesuch"]);
        let json = serde_json::to_string(&empty).unwrap();
        assert!(json.contains(r#""Tabular":null"#), "{json}");
        let mut listed = resp(&["dir", "name"], &[]).listed();
        assert_eq!(
            select(&mut listed, &["host"]).unwrap_err().to_string(),
            "no such column `host`"
        );
        let json = serde_json::to_string(&resp(&["a"], &[]).listed()).unwrap();
        assert!(json.contains(r#""Tabular":[]"#), "{json}");
        let mut vm = resp(
            &["id", "name", "hostname", "vnc_port"],
            &[&["1", "a", "N/A", "5900"]],
        );
        select(&mut vm, &["host", "vnc"]).unwrap();
        assert_eq!(vm.header, ["hostname", "vnc_port"]);
        assert_eq!(vm.tabular, [["N/A", "5900"]]);
        let mut text = Response::text("hi");
        select(&mut text, &["x"]).unwrap();
        assert!(text.header.is_empty());
    }

    /// minimega's filterResp: `host` by the answering host, nil rows and
    /// answers that are no table pass, filtered rows become a list.
    #[test]
    fn filters_as_minimega_applies_them() {
        let f = Filter::parse("host=h2").unwrap();
        assert!(!f.apply(&mut resp(&["a"], &[&["1"]])).unwrap());
        let mut err = Response::error("h2", "boom");
        assert!(f.apply(&mut err).unwrap());
        let f = Filter::parse("state=running").unwrap();
        let mut nil = resp(&["name"], &[]);
        assert!(f.apply(&mut nil).unwrap(), "nil rows pass unchecked");
        assert!(!nil.listed);
        let mut listed = resp(&["name"], &[]).listed();
        assert!(f.apply(&mut listed).is_err(), "an empty list is checked");
        let mut rows = resp(&["name", "state"], &[&["a", "RUNNING"], &["b", "QUIT"]]);
        let f = Filter::parse("name=c").unwrap();
        assert!(f.apply(&mut rows).unwrap());
        assert!(rows.tabular.is_empty() && rows.listed);
        let json = serde_json::to_string(&rows).unwrap();
        assert!(json.contains(r#""Tabular":[]"#), "{json}");
    }

    #[test]
    fn responses_cross_the_wire_as_minimega_encodes_them() {
        let r = Response::text("x");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"Host":"","Response":"x","Header":null,"Tabular":null,"Error":"","Data":null}"#
        );
        for r in [
            resp(&["a"], &[]),
            resp(&["a"], &[]).listed(),
            resp(&["a"], &[&["1"]]),
            Response::error("h", "e"),
        ] {
            let back: Response = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(
                back.listed || !back.tabular.is_empty(),
                r.listed || !r.tabular.is_empty()
            );
            assert_eq!((back.header, back.tabular), (r.header, r.tabular));
        }
    }

    #[test]
    fn column_prefixes() {
        let h: Vec<String> = ["name", "namespace", "state"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(select_columns(&h, &["name", "st"]).unwrap(), [0, 2]);
        assert_eq!(select_columns(&h, &["names"]).unwrap(), [1]);
        assert_eq!(
            select_columns(&h, &["nam"]).unwrap_err().to_string(),
            "ambiguous column `nam`: could be name, namespace"
        );
        assert_eq!(select_columns(&h, &["STATE"]).unwrap(), [2]);
        assert_eq!(
            select_columns(&h, &["x"]).unwrap_err().to_string(),
            "no such column `x`"
        );
    }
}
