//! The command preprocessor's pure part (`.preprocess`): environment
//! variables expanded as Go's `os.ExpandEnv` expands them, and the
//! arguments that name files the daemon must find or fetch (`file:NAME`,
//! `http://...`, `https://...`). The daemon does the finding.

/// What an argument asks the preprocessor for, after variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// `file:NAME[,rest]`: NAME in the files directory; `rest` (a disk
    /// spec's `,virtio,...`) is kept after the path.
    File { name: String, rest: String },
    /// `http(s)://host/PATH`: PATH in the files directory, downloaded
    /// there first if missing.
    Url { url: String, path: String },
}

/// Expands `$NAME` and `${NAME}` (and Go's one-character specials such as
/// `$1`) with `lookup`, unset ones to nothing; `$` before anything else
/// stays, a malformed `${` is dropped, as Go's `os.Expand` does.
pub fn expand_env(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    if !s.contains('$') {
        return s.to_string();
    }
    let special = |c: u8| b"*#$@!?-".contains(&c) || c.is_ascii_digit();
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] != b'$' || i + 1 == b.len() {
            i += 1;
            continue;
        }
        out.push_str(&s[last..i]);
        let rest = &s[i + 1..];
        let r = rest.as_bytes();
        // (name, bytes after the `$`)
        let (name, w): (&str, usize) = if r[0] == b'{' {
            if r.len() > 2 && special(r[1]) && r[2] == b'}' {
                (&rest[1..2], 3)
            } else {
                match rest.find('}') {
                    Some(1) => ("", 2),
                    Some(end) => (&rest[1..end], end + 1),
                    None => ("", 1),
                }
            }
        } else if special(r[0]) {
            (&rest[..1], 1)
        } else {
            let n = r
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            (&rest[..n], n)
        };
        match (name.is_empty(), w) {
            // Malformed: the characters are eaten.
            (true, w) if w > 0 => {}
            // A `$` not followed by a name stays.
            (true, _) => out.push('$'),
            (false, _) => out.push_str(&lookup(name).unwrap_or_default()),
        }
        i += 1 + w;
        last = i;
    }
    out.push_str(&s[last..]);
    out
}

/// The file an argument names, if it names one the daemon must provide.
pub fn fetch(s: &str) -> Option<Fetch> {
    if let Some(name) = s.strip_prefix("file:") {
        // `file:/x` and `file://x` are no relative name: left alone.
        if name.is_empty() || name.starts_with('/') {
            return None;
        }
        let (name, rest) = match name.find(',') {
            Some(at) => (&name[..at], &name[at..]),
            None => (name, ""),
        };
        return Some(Fetch::File {
            name: name.to_string(),
            rest: rest.to_string(),
        });
    }
    let after = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))?;
    let path = match after.find('/') {
        Some(at) => &after[at..],
        None => "/",
    };
    let path = path.split(['?', '#']).next().unwrap_or("/");
    Some(Fetch::Url {
        url: s.to_string(),
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".into()),
            "A_1" => Some("x".into()),
            "1" => Some("one".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_expand_as_go_expands_them() {
        assert_eq!(expand_env("no dollars", env), "no dollars");
        assert_eq!(expand_env("$HOME/x", env), "/root/x");
        assert_eq!(expand_env("${HOME}x", env), "/rootx");
        assert_eq!(expand_env("a${A_1}b$A_1", env), "axbx");
        assert_eq!(expand_env("$UNSET-", env), "-");
        assert_eq!(expand_env("$1$2", env), "one");
        assert_eq!(expand_env("cost: 5$", env), "cost: 5$");
        assert_eq!(expand_env("a$ b", env), "a$ b");
        assert_eq!(expand_env("a${}b", env), "ab");
        assert_eq!(expand_env("a${HOME", env), "aHOME");
        assert_eq!(expand_env("ü$HOMEü", env), "ü/rootü");
    }

    #[test]
    fn file_and_url_arguments() {
        assert_eq!(
            fetch("file:images/a.qcow2"),
            Some(Fetch::File {
                name: "images/a.qcow2".into(),
                rest: String::new()
            })
        );
        assert_eq!(
            fetch("file:a.qcow2,virtio,writeback"),
            Some(Fetch::File {
                name: "a.qcow2".into(),
                rest: ",virtio,writeback".into()
            })
        );
        assert_eq!(fetch("file:/abs"), None);
        assert_eq!(fetch("plain"), None);
        assert_eq!(
            fetch("http://localhost/"),
            Some(Fetch::Url {
                url: "http://localhost/".into(),
                path: "/".into()
            })
        );
        assert_eq!(
            fetch("https://h:8/img/k.vmlinuz?x=1"),
            Some(Fetch::Url {
                url: "https://h:8/img/k.vmlinuz?x=1".into(),
                path: "/img/k.vmlinuz".into()
            })
        );
    }
}
