//! minimega's command patterns, and matching input words against them.
//!
//! A pattern is a line of items:
//! - `word`           a literal; input may abbreviate it (`.col` for `.columns`)
//! - `<key>`          a required string argument (`<name or count>`: key `name`)
//! - `[key]`          an optional string argument (only at the end)
//! - `<key>...`       one or more strings; `[key]...` zero or more (last)
//! - `<a,b>` `[a,b]`  one of several literal choices, required or optional
//! - `(command)`      the rest of the line is a nested command (last)

use super::lexer::Word;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Literal(String),
    Str {
        key: String,
        optional: bool,
    },
    List {
        key: String,
        optional: bool,
    },
    Choice {
        options: Vec<String>,
        optional: bool,
    },
    Command,
}

impl Item {
    fn optional(&self) -> bool {
        match self {
            Item::Str { optional, .. }
            | Item::List { optional, .. }
            | Item::Choice { optional, .. } => *optional,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub text: String,
    pub items: Vec<Item>,
}

/// The arguments a matched pattern bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub strings: BTreeMap<String, String>,
    /// The choices picked, by their full option text.
    pub bools: BTreeSet<String>,
    pub lists: BTreeMap<String, Vec<String>>,
    /// Words of a nested `(command)`, not yet compiled.
    pub sub: Option<Vec<Word>>,
}

impl Args {
    pub fn string(&self, key: &str) -> Option<&str> {
        self.strings.get(key).map(String::as_str)
    }
    pub fn flag(&self, choice: &str) -> bool {
        self.bools.contains(choice)
    }
    pub fn list(&self, key: &str) -> &[String] {
        self.lists.get(key).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// How one pattern fared against the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It matched; `exact` is false when a literal or choice was abbreviated.
    /// `resolved` is the matched input up to its last keyword, each
    /// keyword spelled out (`.col` reads `.columns`), to name candidates.
    Matched {
        args: Args,
        exact: bool,
        resolved: Vec<String>,
    },
    /// It did not; `depth` counts the leading items that did match, so the
    /// caller can point at the closest command in its error.
    Failed { depth: usize },
}

/// Whether `word` spells the keyword `lit`, whole or abbreviated. A quoted
/// word is data, never an abbreviation of a keyword.
fn literal_fits(lit: &str, word: &Word) -> bool {
    let v = word.value.as_str();
    lit == v || (!word.quoted && !v.is_empty() && lit.starts_with(v))
}

impl Pattern {
    /// Parses a pattern. Patterns are written by us, so an invalid one is a
    /// programming error reported with the pattern text.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut items = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            let (item, tail) = parse_item(rest).map_err(|e| format!("pattern `{text}`: {e}"))?;
            items.push(item);
            rest = tail.trim_start();
        }
        for (i, item) in items.iter().enumerate() {
            let last = i + 1 == items.len();
            let ok = match item {
                Item::List { .. } | Item::Command => last,
                _ if item.optional() => items[i + 1..].iter().all(Item::optional),
                _ => true,
            };
            if !ok {
                return Err(format!(
                    "pattern `{text}`: item {} must be last (optional items, lists and commands end a pattern)",
                    i + 1
                ));
            }
        }
        if items.is_empty() || !matches!(items[0], Item::Literal(_)) {
            return Err(format!("pattern `{text}` must start with a literal"));
        }
        Ok(Pattern {
            text: text.to_string(),
            items,
        })
    }

    /// The leading literals: the command's name (`vm launch`).
    pub fn name(&self) -> String {
        self.items
            .iter()
            .map_while(|i| match i {
                Item::Literal(l) => Some(l.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether the first word can start a match at all: a cheap test
    /// that spares the engine a full [`Pattern::matches`] against every
    /// pattern of the table for each line (a mesh fan-out runs a line on
    /// every node).
    pub fn may_start_with(&self, word: &Word) -> bool {
        match self.items.first() {
            Some(Item::Literal(lit)) => literal_fits(lit, word),
            _ => true,
        }
    }

    pub fn matches(&self, input: &[Word]) -> Outcome {
        let mut args = Args::default();
        let mut exact = true;
        let mut resolved: Vec<String> = Vec::new();
        let mut keywords = 0;
        let done = |args, exact, mut resolved: Vec<String>, keywords| {
            resolved.truncate(keywords);
            Outcome::Matched {
                args,
                exact,
                resolved,
            }
        };
        for (i, item) in self.items.iter().enumerate() {
            let Some(word) = input.get(i) else {
                // Out of input: fine only if everything left is optional.
                if self.items[i..].iter().all(Item::optional) {
                    if let Item::List { key, .. } = item {
                        args.lists.insert(key.clone(), Vec::new());
                    }
                    return done(args, exact, resolved, keywords);
                }
                return Outcome::Failed { depth: i };
            };
            let v = &word.value;
            match item {
                Item::Literal(lit) => {
                    if !literal_fits(lit, word) {
                        return Outcome::Failed { depth: i };
                    }
                    exact &= lit == v;
                    resolved.push(lit.clone());
                    keywords = i + 1;
                }
                Item::Str { key, .. } => {
                    args.strings.insert(key.clone(), v.clone());
                    resolved.push(v.clone());
                }
                Item::Choice { options, .. } => {
                    let o = match options.iter().find(|o| *o == v) {
                        Some(o) => o,
                        None => {
                            let mut hits = options.iter().filter(|o| {
                                !word.quoted && !v.is_empty() && o.starts_with(v.as_str())
                            });
                            match (hits.next(), hits.next()) {
                                (Some(o), None) => {
                                    exact = false;
                                    o
                                }
                                _ => return Outcome::Failed { depth: i },
                            }
                        }
                    };
                    args.bools.insert(o.clone());
                    resolved.push(o.clone());
                    keywords = i + 1;
                }
                Item::List { key, .. } => {
                    args.lists.insert(
                        key.clone(),
                        input[i..].iter().map(|w| w.value.clone()).collect(),
                    );
                    return done(args, exact, resolved, keywords);
                }
                Item::Command => {
                    args.sub = Some(input[i..].to_vec());
                    return done(args, exact, resolved, keywords);
                }
            }
        }
        if input.len() > self.items.len() {
            return Outcome::Failed {
                depth: self.items.len(),
            };
        }
        done(args, exact, resolved, keywords)
    }

    /// The pattern once per option of each choice, every choice left with
    /// one option: matched against input, an abbreviation that fits
    /// several options (of one pattern or of several) is then ambiguous
    /// like one that fits several literals, as in minimega's command trie.
    pub fn variants(&self) -> Vec<Pattern> {
        let mut out = vec![self.clone()];
        for (i, item) in self.items.iter().enumerate() {
            let Item::Choice { options, optional } = item else {
                continue;
            };
            if options.len() < 2 {
                continue;
            }
            out = out
                .into_iter()
                .flat_map(|p| {
                    options.iter().map(move |o| {
                        let mut v = p.clone();
                        v.items[i] = Item::Choice {
                            options: vec![o.clone()],
                            optional: *optional,
                        };
                        v
                    })
                })
                .collect();
        }
        out
    }

    /// How many of the pattern's leading literals (its name) the input
    /// spells, whole or abbreviated; and whether it spells all of them.
    pub fn name_match(&self, input: &[Word]) -> (usize, bool) {
        let name: Vec<&str> = self
            .items
            .iter()
            .map_while(|i| match i {
                Item::Literal(l) => Some(l.as_str()),
                _ => None,
            })
            .collect();
        let n = name
            .iter()
            .zip(input)
            .take_while(|(lit, w)| {
                **lit == w.value || (!w.quoted && !w.value.is_empty() && lit.starts_with(&w.value))
            })
            .count();
        (n, n == name.len())
    }

    /// Completions for the word being typed at position `input.len() - 1`
    /// (or a new word when `new_word`), if the words before it fit.
    pub fn suggest(&self, input: &[Word], new_word: bool) -> Vec<String> {
        let (done, partial) = if new_word || input.is_empty() {
            (input, "")
        } else {
            (
                &input[..input.len() - 1],
                input[input.len() - 1].value.as_str(),
            )
        };
        if done.len() >= self.items.len() {
            return Vec::new();
        }
        // The finished words must fit the pattern's leading items.
        for (item, word) in self.items.iter().zip(done) {
            let ok = match item {
                Item::Literal(l) => l == &word.value,
                Item::Choice { options, .. } => options.contains(&word.value),
                Item::List { .. } | Item::Command => return Vec::new(),
                Item::Str { .. } => true,
            };
            if !ok {
                return Vec::new();
            }
        }
        match &self.items[done.len()] {
            Item::Literal(l) if l.starts_with(partial) => vec![l.clone()],
            Item::Choice { options, .. } => options
                .iter()
                .filter(|o| o.starts_with(partial))
                .cloned()
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn parse_item(s: &str) -> Result<(Item, &str), String> {
    let first = s.chars().next().unwrap_or(' ');
    let close = match first {
        '<' => '>',
        '[' => ']',
        '(' => ')',
        _ => {
            let end = s.find(char::is_whitespace).unwrap_or(s.len());
            let word = &s[..end];
            if word.contains(['<', '>', '[', ']', '(', ')']) {
                return Err(format!("bad literal `{word}`"));
            }
            return Ok((Item::Literal(word.to_string()), &s[end..]));
        }
    };
    let end = s.find(close).ok_or_else(|| format!("unclosed `{first}`"))?;
    let inner = s[1..end].trim();
    let mut rest = &s[end + 1..];
    if first == '(' {
        return Ok((Item::Command, rest));
    }
    let optional = first == '[';
    let list = rest.starts_with("...");
    if list {
        rest = &rest[3..];
    }
    // `<name or count>`: the key is the first word, the rest describes it.
    let key = inner.split_whitespace().next().unwrap_or("").to_string();
    if key.is_empty() {
        return Err("empty argument".into());
    }
    if inner.contains(',') {
        if list {
            return Err("a choice cannot be a list".into());
        }
        // minimega writes a one-option choice with a trailing comma: `[check,]`.
        let body = inner
            .strip_suffix(',')
            .filter(|b| !b.contains(','))
            .unwrap_or(inner);
        let options: Vec<String> = body.split(',').map(|o| o.trim().to_string()).collect();
        if options.iter().any(String::is_empty) {
            return Err(format!("empty choice in `{inner}`"));
        }
        return Ok((Item::Choice { options, optional }, rest));
    }
    Ok((
        if list {
            Item::List { key, optional }
        } else {
            Item::Str { key, optional }
        },
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::lexer::lex;

    fn m(p: &str, input: &str) -> Outcome {
        Pattern::parse(p).unwrap().matches(&lex(input).unwrap())
    }

    fn args(p: &str, input: &str) -> (Args, bool) {
        match m(p, input) {
            Outcome::Matched { args, exact, .. } => (args, exact),
            o => panic!("{p} vs {input}: {o:?}"),
        }
    }

    #[test]
    fn parses_every_item_kind() {
        let p = Pattern::parse("vm launch <kvm,container> <name or count> [extra]...").unwrap();
        assert_eq!(p.name(), "vm launch");
        assert_eq!(p.items.len(), 5);
        assert!(matches!(&p.items[3], Item::Str { key, optional: false } if key == "name"));
        assert!(matches!(&p.items[4], Item::List { optional: true, .. }));
        assert!(matches!(
            Pattern::parse(".json <true,false> (command)")
                .unwrap()
                .items[2],
            Item::Command
        ));
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(Pattern::parse("a [opt] <req>").is_err());
        assert!(Pattern::parse("a <list>... b").is_err());
        assert!(Pattern::parse("<x> a").is_err());
        assert!(Pattern::parse("a <unclosed").is_err());
    }

    #[test]
    fn literals_and_strings() {
        let (a, exact) = args("vm config memory [memory]", "vm config memory 512");
        assert!(exact);
        assert_eq!(a.string("memory"), Some("512"));
        let (a, _) = args("vm config memory [memory]", "vm config memory");
        assert_eq!(a.string("memory"), None);
    }

    #[test]
    fn abbreviations_are_inexact() {
        let (_, exact) = args(".columns <columns> (command)", ".col name vm info");
        assert!(!exact);
        let (a, exact) = args(".json [true,false]", ".json t");
        assert!(!exact && a.flag("true"));
    }

    #[test]
    fn one_option_choices() {
        let (a, exact) = args("read <file> [check,]", "read f check");
        assert!(exact && a.flag("check") && a.string("file") == Some("f"));
        let (a, _) = args("read <file> [check,]", "read f");
        assert!(!a.flag("check"));
        assert!(matches!(
            m("read <file> [check,]", "read f other"),
            Outcome::Failed { .. }
        ));
        assert!(Pattern::parse("a [b,c,]").is_err());
        assert!(Pattern::parse("a [,]").is_err());
    }

    #[test]
    fn quoted_words_never_abbreviate() {
        assert!(matches!(
            m("vm info", "\"vm\" \"in\""),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn too_many_or_too_few_words_fail() {
        assert_eq!(m("vm info", "vm info extra"), Outcome::Failed { depth: 2 });
        assert_eq!(
            m("vm start <target>", "vm start"),
            Outcome::Failed { depth: 2 }
        );
        assert_eq!(
            m("vm start <target>", "vm stop x"),
            Outcome::Failed { depth: 1 }
        );
    }

    #[test]
    fn lists_and_subcommands() {
        let (a, _) = args("echo [args]...", "echo a b c");
        assert_eq!(a.list("args"), ["a", "b", "c"]);
        let (a, _) = args("echo [args]...", "echo");
        assert!(a.list("args").is_empty());
        let (a, _) = args("mesh send <clients> (command)", "mesh send all vm info");
        assert_eq!(a.sub.unwrap().len(), 2);
    }

    #[test]
    fn ambiguous_choice_fails() {
        assert!(matches!(
            m("x <start,stop>", "x st"),
            Outcome::Failed { depth: 1 }
        ));
    }

    #[test]
    fn suggestions() {
        let p = Pattern::parse("vm launch <kvm,container> <name>").unwrap();
        assert_eq!(p.suggest(&lex("vm la").unwrap(), false), ["launch"]);
        assert_eq!(
            p.suggest(&lex("vm launch").unwrap(), true),
            ["kvm", "container"]
        );
        assert!(p.suggest(&lex("vm info").unwrap(), false).is_empty());
    }
}
