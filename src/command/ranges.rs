//! Name ranges as minimega writes them: `vm[1-5]`, `node[1-3,7]`,
//! `web[01-10]` (zero padding kept), and comma lists of those
//! (`foo[1-3],bar`). Also the reverse: a host list compressed back into
//! ranges for `.compress` output.

use super::CommandError;
use std::collections::BTreeMap;

/// Upper bound on one expansion, so `vm[1-99999999]` is an error rather than
/// an allocation the daemon cannot survive.
pub const MAX_EXPANSION: usize = 100_000;

fn err(msg: String) -> CommandError {
    CommandError::Range(msg)
}

/// Expands a comma list of names and ranges, in order, without duplicates
/// removed (the caller decides whether a duplicate is an error).
pub fn expand_list(spec: &str) -> Result<Vec<String>, CommandError> {
    let mut out = Vec::new();
    for part in split_top_level(spec)? {
        out.extend(expand(&part)?);
        if out.len() > MAX_EXPANSION {
            return Err(err(format!(
                "range `{spec}` expands to more than {MAX_EXPANSION} names"
            )));
        }
    }
    Ok(out)
}

/// Splits on commas that are not inside brackets.
fn split_top_level(spec: &str) -> Result<Vec<String>, CommandError> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in spec.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| err(format!("unbalanced `]` in `{spec}`")))?;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if depth != 0 {
        return Err(err(format!("unbalanced `[` in `{spec}`")));
    }
    parts.push(cur);
    if parts.iter().any(|p| p.is_empty()) {
        return Err(err(format!("empty name in `{spec}`")));
    }
    Ok(parts)
}

/// Expands one name that holds at most one `[...]` group.
pub fn expand(name: &str) -> Result<Vec<String>, CommandError> {
    let Some(open) = name.find('[') else {
        if name.contains(']') {
            return Err(err(format!("unbalanced `]` in `{name}`")));
        }
        return Ok(vec![name.to_string()]);
    };
    let close = name[open..]
        .find(']')
        .map(|i| i + open)
        .ok_or_else(|| err(format!("unbalanced `[` in `{name}`")))?;
    let (prefix, body, suffix) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    if suffix.contains('[') || suffix.contains(']') {
        return Err(err(format!("only one range is allowed in `{name}`")));
    }
    if body.is_empty() {
        return Err(err(format!("empty range in `{name}`")));
    }
    let mut out = Vec::new();
    for item in body.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (item, item),
        };
        let parse = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!(
                    "invalid range `{item}` in `{name}`: not a number"
                )));
            }
            s.parse::<u64>().map_err(|_| {
                err(format!(
                    "invalid range `{item}` in `{name}`: number too large"
                ))
            })
        };
        let (a, b) = (parse(lo)?, parse(hi)?);
        if a > b {
            return Err(err(format!(
                "invalid range `{item}` in `{name}`: {a} is greater than {b}"
            )));
        }
        if (b - a) as usize >= MAX_EXPANSION || out.len() + (b - a) as usize >= MAX_EXPANSION {
            return Err(err(format!(
                "range `{name}` expands to more than {MAX_EXPANSION} names"
            )));
        }
        // `web[01-10]` keeps the width of the lower bound, as minimega does.
        let width = if lo.len() > 1 && lo.starts_with('0') {
            lo.len()
        } else {
            0
        };
        for n in a..=b {
            out.push(format!("{prefix}{n:0width$}{suffix}"));
        }
    }
    Ok(out)
}

/// Compresses names into minimega's range form: `node1,node2,node3,node7`
/// becomes `node[1-3,7]`. Names without a trailing number stay as they are.
/// The result is sorted and comma-joined.
pub fn compress(names: &[String]) -> String {
    // prefix -> (width or 0, numbers)
    let mut groups: BTreeMap<(String, usize), Vec<u64>> = BTreeMap::new();
    let mut plain: Vec<String> = Vec::new();
    for n in names {
        let digits = n.bytes().rev().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 18 {
            plain.push(n.clone());
            continue;
        }
        let (prefix, num) = n.split_at(n.len() - digits);
        let width = if num.len() > 1 && num.starts_with('0') {
            num.len()
        } else {
            0
        };
        groups
            .entry((prefix.to_string(), width))
            .or_default()
            .push(num.parse().unwrap_or(0));
    }
    let mut out: Vec<String> = plain;
    for ((prefix, width), mut nums) in groups {
        nums.sort_unstable();
        nums.dedup();
        if nums.len() == 1 {
            out.push(format!("{prefix}{:0width$}", nums[0]));
            continue;
        }
        let mut spans = Vec::new();
        let mut i = 0;
        while i < nums.len() {
            let start = nums[i];
            let mut end = start;
            while i + 1 < nums.len() && nums[i + 1] == end + 1 {
                i += 1;
                end = nums[i];
            }
            spans.push(if start == end {
                format!("{start:0width$}")
            } else {
                format!("{start:0width$}-{end:0width$}")
            });
            i += 1;
        }
        out.push(format!("{prefix}[{}]", spans.join(",")));
    }
    out.sort();
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Vec<String> {
        expand_list(s).unwrap()
    }

    #[test]
    fn plain_name() {
        assert_eq!(ex("foo"), ["foo"]);
    }

    #[test]
    fn simple_range() {
        assert_eq!(ex("vm[1-5]"), ["vm1", "vm2", "vm3", "vm4", "vm5"]);
    }

    #[test]
    fn list_and_range() {
        assert_eq!(ex("node[1-3,7]"), ["node1", "node2", "node3", "node7"]);
        assert_eq!(ex("foo[1-3],bar"), ["foo1", "foo2", "foo3", "bar"]);
    }

    #[test]
    fn padding_and_suffix() {
        assert_eq!(ex("web[08-10]"), ["web08", "web09", "web10"]);
        assert_eq!(ex("n[1-2].lab"), ["n1.lab", "n2.lab"]);
    }

    #[test]
    fn errors_name_the_problem() {
        for bad in [
            "vm[3-1]",
            "vm[a-b]",
            "vm[1-3",
            "vm1-3]",
            "vm[]",
            "a,,b",
            "vm[1-2][3]",
        ] {
            let e = expand_list(bad).unwrap_err().to_string();
            assert!(e.contains(bad) || e.contains("empty"), "{bad}: {e}");
        }
        let e = expand_list("vm[1-999999999]").unwrap_err().to_string();
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn compress_hosts() {
        let hosts: Vec<String> = ["node3", "node1", "node2", "node7", "head"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(compress(&hosts), "head,node[1-3,7]");
        assert_eq!(compress(&["node5".to_string()]), "node5");
    }

    #[test]
    fn compress_inverts_expand() {
        for s in ["node[1-3,7]", "web[08-10]", "a[1-2],b"] {
            let mut list = ex(s);
            list.reverse();
            assert_eq!(expand_list(&compress(&list)).unwrap().len(), list.len());
        }
    }
}
