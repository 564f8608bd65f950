//! Splitting a line of the file into words. Words are separated by blanks;
//! a word in double quotes is Go-quoted (minimega writes OSPF options with
//! `%q`), so it may hold blanks and backslash escapes.

/// The words of `line`, or why it cannot be split.
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(out);
        };
        if first == '"' {
            chars.next();
            out.push(quoted(&mut chars)?);
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err("text right after a closing quote".into());
            }
            continue;
        }
        let mut w = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            if c == '"' {
                return Err("a quote inside a word".into());
            }
            w.push(c);
            chars.next();
        }
        out.push(w);
    }
}

fn hex(chars: &mut impl Iterator<Item = char>, n: usize) -> Result<u32, String> {
    let s: String = chars.take(n).collect();
    if s.len() != n {
        return Err("short escape".into());
    }
    u32::from_str_radix(&s, 16).map_err(|_| format!("bad escape digits `{s}`"))
}

/// The rest of a Go-quoted word, its opening quote read.
fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut out = String::new();
    let mut bytes: Vec<u8> = Vec::new();
    // `\xNN` escapes are bytes: gather them and decode once the run ends.
    let flush = |bytes: &mut Vec<u8>, out: &mut String| {
        if !bytes.is_empty() {
            out.push_str(&String::from_utf8_lossy(bytes));
            bytes.clear();
        }
    };
    loop {
        let c = chars.next().ok_or("no closing quote")?;
        if c == '"' {
            flush(&mut bytes, &mut out);
            return Ok(out);
        }
        if c != '\\' {
            flush(&mut bytes, &mut out);
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or("no closing quote")?;
        let decoded = match e {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '\\' | '"' | '\'' => e,
            'x' => {
                bytes.push(hex(chars, 2)? as u8);
                continue;
            }
            '0'..='7' => {
                let rest: String = chars.take(2).collect();
                let v = u32::from_str_radix(&format!("{e}{rest}"), 8)
                    .map_err(|_| "bad octal escape".to_string())?;
                bytes.push(u8::try_from(v).map_err(|_| "bad octal escape".to_string())?);
                continue;
            }
            'u' => char::from_u32(hex(chars, 4)?).ok_or("bad \\u escape")?,
            'U' => char::from_u32(hex(chars, 8)?).ok_or("bad \\U escape")?,
            other => return Err(format!("unknown escape `\\{other}`")),
        };
        flush(&mut bytes, &mut out);
        out.push(decoded);
    }
}
