//! Splits one input line into words, the way minimega's shell does:
//! whitespace separates words, single or double quotes group them, and
//! `#` outside quotes starts a comment that runs to the end of the line.

use super::CommandError;

/// One word of input. `quoted` remembers that the user grouped it, so a
/// quoted `"a b"` is re-quoted when a subcommand is turned back into text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub value: String,
    pub quoted: bool,
}

/// Splits `line` into words. A line holding only a comment yields no words.
pub fn lex(line: &str) -> Result<Vec<Word>, CommandError> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        let mut value = String::new();
        let mut quoted = false;
        // A word continues until unquoted whitespace; quotes may appear
        // inside it (`foo="a b"`), as in a POSIX shell.
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '"' | '\'' => {
                    quoted = true;
                    let quote = c;
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        if c == quote {
                            closed = true;
                            break;
                        }
                        if c == '\\' && quote == '"' {
                            match chars.next() {
                                Some(e @ ('"' | '\\')) => value.push(e),
                                Some(e) => {
                                    value.push('\\');
                                    value.push(e);
                                }
                                None => break,
                            }
                            continue;
                        }
                        value.push(c);
                    }
                    if !closed {
                        return Err(CommandError::Syntax(format!(
                            "unterminated quote {quote} in `{}`",
                            super::excerpt(line)
                        )));
                    }
                }
                _ => value.push(c),
            }
        }
        words.push(Word { value, quoted });
    }
    Ok(words)
}

/// Turns words back into one line that lexes to the same words.
pub fn unlex(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| quote_if_needed(&w.value, w.quoted))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a value so that [`lex`] reads it back as one word.
pub fn quote_if_needed(value: &str, force: bool) -> String {
    let needs = force
        || value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '#' | '\\'));
    if !needs {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(line: &str) -> Vec<String> {
        lex(line).unwrap().into_iter().map(|w| w.value).collect()
    }

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(
            values("  vm   launch\tkvm foo "),
            ["vm", "launch", "kvm", "foo"]
        );
    }

    #[test]
    fn quotes_group_words() {
        assert_eq!(values(r#"echo "a b" 'c d'"#), ["echo", "a b", "c d"]);
        assert_eq!(values(r#"vm config append "console=ttyS0 quiet""#).len(), 4);
    }

    #[test]
    fn quotes_inside_a_word() {
        assert_eq!(values(r#"a=" b c""#), ["a= b c"]);
    }

    #[test]
    fn escapes_in_double_quotes() {
        assert_eq!(
            values(r#"echo "say \"hi\" \n""#),
            ["echo", r#"say "hi" \n"#]
        );
    }

    #[test]
    fn comments() {
        assert!(lex("# only a comment").unwrap().is_empty());
        assert_eq!(values("echo a # trailing"), ["echo", "a"]);
        assert_eq!(
            values(r##"echo "#not a comment""##),
            ["echo", "#not a comment"]
        );
    }

    #[test]
    fn empty_quotes_are_a_word() {
        assert_eq!(values(r#"echo """#), ["echo", ""]);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let err = lex(r#"echo "abc"#).unwrap_err();
        assert!(err.to_string().contains("unterminated quote"), "{err}");
    }

    #[test]
    fn unlex_round_trips() {
        for line in [r#"echo "a b" c"#, r##"x "q\"uote" '#'"##, r#"e """#] {
            let words = lex(line).unwrap();
            assert_eq!(lex(&unlex(&words)).unwrap(), words, "{line}");
        }
    }
}
