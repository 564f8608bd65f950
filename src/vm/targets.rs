//! Which VMs a command means: `vm launch`'s names or count, and the
//! targets of `vm start|stop|kill|...` (a name, an id, a range, a comma
//! list, or `all`). Pure parsing; the manager looks the results up.

use crate::command::ranges;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("invalid vm name, `{0}` is an integer")]
    Integer(String),
    #[error("invalid vm name, `all` is a reserved word")]
    Reserved,
    #[error("invalid vm name `{0}`: {1}")]
    BadName(String, &'static str),
    #[error("vm name `{0}` given twice")]
    Duplicate(String),
    #[error("cannot launch 0 VMs")]
    Zero,
    #[error("{0}")]
    Range(String),
}

/// What `vm launch kvm <x>` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchNames {
    /// `vm launch kvm 3`: names come from the ids (`vm-<id>`).
    Count(u64),
    Names(Vec<String>),
}

impl LaunchNames {
    /// How many VMs the launch makes.
    pub fn count(&self) -> usize {
        match self {
            LaunchNames::Count(n) => *n as usize,
            LaunchNames::Names(v) => v.len(),
        }
    }
}

/// The most VMs one launch may ask for.
pub const MAX_LAUNCH: u64 = ranges::MAX_EXPANSION as u64;

pub fn parse_launch(spec: &str) -> Result<LaunchNames, TargetError> {
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = spec
            .parse()
            .map_err(|_| TargetError::Range(format!("count `{spec}` is too large")))?;
        if n == 0 {
            return Err(TargetError::Zero);
        }
        if n > MAX_LAUNCH {
            return Err(TargetError::Range(format!(
                "count {n} is more than {MAX_LAUNCH} VMs"
            )));
        }
        return Ok(LaunchNames::Count(n));
    }
    let names = ranges::expand_list(spec).map_err(|e| TargetError::Range(e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        check_name(n)?;
        if !seen.insert(n.as_str()) {
            return Err(TargetError::Duplicate(n.clone()));
        }
    }
    Ok(LaunchNames::Names(names))
}

/// A VM name must not read as an id or as `all`, and must be one word
/// usable in file and unit names.
pub fn check_name(name: &str) -> Result<(), TargetError> {
    if name.is_empty() {
        return Err(TargetError::BadName(name.into(), "empty"));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::Integer(name.into()));
    }
    if name == "all" {
        return Err(TargetError::Reserved);
    }
    if name.len() > 200 {
        return Err(TargetError::BadName(name.into(), "longer than 200 bytes"));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | ',' | '[' | ']'))
    {
        return Err(TargetError::BadName(
            name.into(),
            "no spaces, `/`, `,`, `[` or `]`",
        ));
    }
    Ok(())
}

/// One item of a target list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    All,
    Id(u64),
    Name(String),
}

pub fn parse_targets(spec: &str) -> Result<Vec<Target>, TargetError> {
    if spec == "all" {
        return Ok(vec![Target::All]);
    }
    let items = ranges::expand_list(spec).map_err(|e| TargetError::Range(e.to_string()))?;
    let mut out: Vec<Target> = Vec::new();
    for item in items {
        let t = if item == "all" {
            Target::All
        } else if !item.is_empty() && item.bytes().all(|b| b.is_ascii_digit()) {
            match item.parse() {
                Ok(id) => Target::Id(id),
                Err(_) => Target::Name(item),
            }
        } else {
            Target::Name(item)
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> LaunchNames {
        LaunchNames::Names(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn launch_counts_names_and_ranges() {
        assert_eq!(parse_launch("3"), Ok(LaunchNames::Count(3)));
        assert_eq!(parse_launch("web"), Ok(names(&["web"])));
        assert_eq!(
            parse_launch("web[1-3],db"),
            Ok(names(&["web1", "web2", "web3", "db"]))
        );
    }

    #[test]
    fn launch_refuses_bad_names() {
        assert_eq!(parse_launch("0"), Err(TargetError::Zero));
        assert_eq!(
            parse_launch("foo,0").unwrap_err().to_string(),
            "invalid vm name, `0` is an integer"
        );
        assert_eq!(
            parse_launch("all").unwrap_err().to_string(),
            "invalid vm name, `all` is a reserved word"
        );
        assert_eq!(
            parse_launch("a,a").unwrap_err().to_string(),
            "vm name `a` given twice"
        );
        let e = parse_launch("vm[3-1]").unwrap_err().to_string();
        assert!(e.contains("3 is greater than 1"), "{e}");
        assert!(parse_launch("vm[1-2").is_err());
        assert!(parse_launch("99999999999").is_err());
        assert!(check_name("a/b").is_err());
    }

    #[test]
    fn targets() {
        assert_eq!(parse_targets("all"), Ok(vec![Target::All]));
        assert_eq!(
            parse_targets("foo[1-2],7,foo1"),
            Ok(vec![
                Target::Name("foo1".into()),
                Target::Name("foo2".into()),
                Target::Id(7)
            ])
        );
        assert!(parse_targets("foo[").is_err());
    }
}
