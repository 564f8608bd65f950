//! Turning plain help text into man(7) source: escaping, `code` spans and
//! the tab-indented example blocks the help texts use.

/// Escapes text for a roff text line. `code` marks text that is typed
/// literally, where `-` must stay an ASCII hyphen-minus when rendered.
pub fn escape(s: &str, code: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' if code => out.push_str("\\-"),
            // Keep typographic quotes out of what a user copies.
            '\'' if code => out.push_str("\\(aq"),
            '`' => out.push_str("\\(ga"),
            '^' => out.push_str("\\(ha"),
            '~' => out.push_str("\\(ti"),
            _ => out.push(c),
        }
    }
    out
}

/// A whole input line: a leading `.` or `'` would be read as a request.
pub fn line(s: &str) -> String {
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s.to_string()
    }
}

/// An argument of a macro, quoted; `code` as for [`escape`].
pub fn arg(s: &str, code: bool) -> String {
    format!("\"{}\"", escape(s, code).replace('"', "\\(dq"))
}

/// Filled text as input lines of at most about `width` bytes (man pages
/// keep source lines short); each line made safe with [`line`].
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + w.len() > width {
            out.push_str(&line(&cur));
            out.push('\n');
            cur.clear();
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        out.push_str(&line(&cur));
        out.push('\n');
    }
    out
}

/// Prose with `code` spans set in bold; an unpaired backtick stays as it is.
pub fn prose(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('`') {
        let Some(len) = rest[open + 1..].find('`') else {
            break;
        };
        out.push_str(&escape(&rest[..open], false));
        out.push_str("\\fB");
        out.push_str(&escape(&rest[open + 1..open + 1 + len], true));
        out.push_str("\\fR");
        rest = &rest[open + 1 + len + 1..];
    }
    out.push_str(&escape(rest, false));
    out
}

/// Help text as man source: blank lines part paragraphs, tab-indented
/// lines are literal examples, the rest is filled prose.
pub fn body(text: &str) -> String {
    let mut out = String::new();
    let mut in_example = false;
    let mut pending_para = false;
    for raw in text.trim().lines() {
        let l = raw.trim_end();
        if l.is_empty() {
            if in_example {
                out.push_str(".fi\n.RE\n");
                in_example = false;
            }
            pending_para = true;
            continue;
        }
        if let Some(ex) = l.strip_prefix('\t') {
            if !in_example {
                if std::mem::take(&mut pending_para) {
                    out.push_str(".PP\n");
                }
                out.push_str(".RS 4\n.nf\n");
                in_example = true;
            }
            out.push_str(&line(&escape(ex, true)));
            out.push('\n');
            continue;
        }
        if in_example {
            out.push_str(".fi\n.RE\n");
            in_example = false;
            pending_para = true;
        }
        if pending_para {
            out.push_str(".PP\n");
            pending_para = false;
        }
        out.push_str(&wrap(&prose(l), 72));
    }
    if in_example {
        out.push_str(".fi\n.RE\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_backslashes_are_escaped() {
        assert_eq!(line(".alias x"), "\\&.alias x");
        assert_eq!(escape("a\\b-c", false), "a\\eb-c");
        assert_eq!(escape("-e", true), "\\-e");
        assert_eq!(arg("say \"hi\"", true), "\"say \\(dqhi\\(dq\"");
        assert_eq!(arg("2024-01-02", false), "\"2024-01-02\"");
    }

    #[test]
    fn code_spans_are_bold_and_literal() {
        assert_eq!(prose("run `vm-1` now"), "run \\fBvm\\-1\\fR now");
        assert_eq!(prose("a ` alone"), "a \\(ga alone");
    }

    #[test]
    fn long_lines_are_wrapped_and_stay_safe() {
        let w = wrap("aaaa bbbb .cc dd", 9);
        assert_eq!(w, "aaaa bbbb\n\\&.cc dd\n");
    }

    #[test]
    fn examples_and_paragraphs() {
        let b = body("Intro:\n\n\t.filter a=b vm info\n\tx\n\nMore text\nsame para.");
        assert_eq!(
            b,
            "Intro:\n.PP\n.RS 4\n.nf\n\\&.filter a=b vm info\nx\n.fi\n.RE\n.PP\nMore text\nsame para.\n"
        );
        let b = body("Text\n\tex\nafter");
        assert_eq!(b, "Text\n.RS 4\n.nf\nex\n.fi\n.RE\n.PP\nafter\n");
    }
}
