//! Names and `plumb` productions (pure): a pipe's full name is
//! `<namespace>//<pipe>`; an element of a production is a program when
//! its first word is found in PATH, else a pipe, as in minimega.

use std::path::PathBuf;
use thiserror::Error;

/// Between a pipe's namespace and its own name.
pub const SEPARATOR: &str = "//";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProductionError {
    #[error("unterminated quote in `{0}`")]
    Quote(String),
    #[error("invalid pipe name `{0}`")]
    Name(String),
    #[error("empty pipeline element")]
    Empty,
}

/// The full name of `name` typed in namespace `ns`: names that already
/// carry a namespace (`other//foo`) are kept.
pub fn qualify(ns: &str, name: &str) -> String {
    if name.contains(SEPARATOR) {
        name.to_string()
    } else {
        format!("{ns}{SEPARATOR}{name}")
    }
}

/// A full pipe name, checked: a namespace part and a pipe part, neither
/// empty.
pub fn checked(ns: &str, name: &str) -> Result<String, ProductionError> {
    let full = qualify(ns, name);
    match full.split_once(SEPARATOR) {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok(full),
        _ => Err(ProductionError::Name(name.to_string())),
    }
}

/// Whether a full pipe name belongs to namespace `ns`.
pub fn in_namespace(pipe: &str, ns: &str) -> bool {
    pipe.split_once(SEPARATOR).is_some_and(|(n, _)| n == ns)
}

/// Splits a command into words at whitespace; double or single quotes
/// group words (`sed -u "s/a b/c/"`) and are removed.
pub fn split_fields(s: &str) -> Result<Vec<String>, ProductionError> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(ProductionError::Quote(s.to_string()));
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

/// A via or pipeline command given as words, one of which may hold the
/// whole command (`pipe foo via "normal -stddev 5"`): the argv.
pub fn command_words(words: &[String]) -> Result<Vec<String>, ProductionError> {
    let mut argv = Vec::new();
    for w in words {
        if w.chars().any(char::is_whitespace) {
            argv.extend(split_fields(w)?);
        } else {
            argv.push(w.clone());
        }
    }
    Ok(argv)
}

/// One element of a production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    /// A pipe, by its full name.
    Pipe(String),
    /// A program (its path as found) and its arguments.
    Process(Vec<String>),
}

/// Reads a production as typed in namespace `ns`; `find` looks a program
/// up in PATH.
pub fn parse(
    ns: &str,
    elements: &[String],
    find: impl Fn(&str) -> Option<PathBuf>,
) -> Result<Vec<Element>, ProductionError> {
    elements
        .iter()
        .map(|e| {
            let mut fields = split_fields(e)?;
            let Some(first) = fields.first() else {
                return Err(ProductionError::Empty);
            };
            match find(first) {
                Some(path) => {
                    fields[0] = path.to_string_lossy().into_owned();
                    Ok(Element::Process(fields))
                }
                None => checked(ns, e).map(Element::Pipe),
            }
        })
        .collect()
}

/// A production's name, which `plumb` lists and `clear plumb` takes: its
/// elements joined by spaces, pipes by their full names, programs as typed.
pub fn name(elements: &[String], parsed: &[Element]) -> String {
    elements
        .iter()
        .zip(parsed)
        .map(|(typed, e)| match e {
            Element::Pipe(p) => p.clone(),
            Element::Process(_) => typed.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn find(name: &str) -> Option<PathBuf> {
        matches!(name, "sed" | "cat").then(|| PathBuf::from(format!("/bin/{name}")))
    }

    #[test]
    fn names_are_qualified_once() {
        assert_eq!(qualify("minimega", "foo"), "minimega//foo");
        assert_eq!(qualify("minimega", "exp//foo"), "exp//foo");
        assert!(in_namespace("exp//foo", "exp"));
        assert!(!in_namespace("exp//foo", "minimega"));
        assert!(!in_namespace("expfoo", "exp"));
        assert_eq!(checked("ns", "a").unwrap(), "ns//a");
        assert!(checked("ns", "//a").is_err());
        assert!(checked("ns", "x//").is_err());
    }

    #[test]
    fn fields_group_quotes() {
        assert_eq!(
            split_fields(r#"sed -u "s/a b/c/"  x"#).unwrap(),
            ["sed", "-u", "s/a b/c/", "x"]
        );
        assert_eq!(
            split_fields("a 'b c' d\"e f\"").unwrap(),
            ["a", "b c", "de f"]
        );
        assert_eq!(split_fields(r#"x """#).unwrap(), ["x", ""]);
        assert!(split_fields("   ").unwrap().is_empty());
        assert_eq!(
            split_fields("sed 's/a/b").unwrap_err(),
            ProductionError::Quote("sed 's/a/b".into())
        );
    }

    #[test]
    fn via_words_may_be_one_quoted_command() {
        assert_eq!(
            command_words(&words(&["normal -stddev 5.0"])).unwrap(),
            ["normal", "-stddev", "5.0"]
        );
        assert_eq!(
            command_words(&words(&["normal", "-stddev", "5.0"])).unwrap(),
            ["normal", "-stddev", "5.0"]
        );
    }

    #[test]
    fn programs_are_found_in_path_everything_else_is_a_pipe() {
        let typed = words(&["foo", "sed -u s/foo/moo/", "other//bar", "sed//x"]);
        let p = parse("minimega", &typed, find).unwrap();
        assert_eq!(
            p,
            [
                Element::Pipe("minimega//foo".into()),
                Element::Process(words(&["/bin/sed", "-u", "s/foo/moo/"])),
                Element::Pipe("other//bar".into()),
                Element::Pipe("sed//x".into()),
            ]
        );
        assert_eq!(
            name(&typed, &p),
            "minimega//foo sed -u s/foo/moo/ other//bar sed//x"
        );
        assert_eq!(
            parse("ns", &words(&["a", " "]), find).unwrap_err(),
            ProductionError::Empty
        );
        assert!(parse("ns", &words(&["a", "//"]), find).is_err());
    }
}
