//! `vm config qemu-override MATCH REPLACEMENT`: text replacements on
//! QEMU's command line, applied in order after everything else built it,
//! as minimega applies them: the arguments are joined with spaces (an
//! argument holding whitespace in double quotes), each match is replaced
//! everywhere, and the text is split back into arguments. Pure.

/// The arguments as one line.
pub fn join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(char::is_whitespace) {
                format!("\"{a}\"")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line back into arguments: whitespace separates them, double quotes
/// group them.
pub fn split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The arguments with every override applied; unchanged when there are none.
pub fn apply(args: Vec<String>, overrides: &[(String, String)]) -> Vec<String> {
    if overrides.is_empty() {
        return args;
    }
    let mut line = join(&args);
    for (m, r) in overrides {
        line = line.replace(m.as_str(), r);
    }
    split(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn replacements_apply_in_order_across_arguments() {
        let args = v(&[
            "-m",
            "2048",
            "-append",
            "console=ttyS0 quiet",
            "-vga",
            "std",
        ]);
        assert_eq!(apply(args.clone(), &[]), args);
        let o = vec![
            ("-vga std".to_string(), "-vga cirrus".to_string()),
            ("cirrus".to_string(), "virtio".to_string()),
            ("2048".to_string(), "512".to_string()),
        ];
        assert_eq!(
            apply(args, &o),
            v(&[
                "-m",
                "512",
                "-append",
                "console=ttyS0 quiet",
                "-vga",
                "virtio"
            ])
        );
    }

    #[test]
    fn join_and_split_round_trip() {
        let args = v(&["a", "b c", "", "d"]);
        assert_eq!(join(&args), "a \"b c\"  d");
        assert_eq!(split(&join(&v(&["a", "b c", "d"]))), v(&["a", "b c", "d"]));
        assert_eq!(split("  x   y "), v(&["x", "y"]));
    }
}
