//! The command lines the console sends. Each names its namespace
//! (`namespace "NS" ...`, as miniweb's do), so the daemon's session of the
//! console's bus connection never carries one page's namespace into
//! another's request, and `.record false` keeps them out of the history.

use super::route::{Table, VmAction};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum LineError {
    #[error("no VM named")]
    NoVm,
    #[error("a name must not hold a newline: {0:?}")]
    Newline(String),
    #[error("screenshot size must be a number of pixels from 16 to 4096")]
    Size,
    #[error("the command is empty")]
    Empty,
}

/// A word quoted for the command language: double quotes, with `"` and
/// `\` escaped, so any name survives the lexer as one word.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn check(name: &str) -> Result<(), LineError> {
    if name.contains('\n') || name.contains('\r') {
        return Err(LineError::Newline(name.into()));
    }
    Ok(())
}

/// `cmd` run in namespace `ns` without touching the history.
pub fn in_ns(ns: &str, cmd: &str) -> Result<String, LineError> {
    check(ns)?;
    Ok(format!(".record false namespace {} {cmd}", quote(ns)))
}

/// The line that fills a table of the console.
pub fn table(t: Table, ns: &str, path: Option<&str>) -> Result<String, LineError> {
    match t {
        // The list of namespaces is the same from any of them.
        Table::Namespaces => Ok(".record false namespace".into()),
        Table::Hosts => in_ns(ns, "host"),
        Table::Vlans => in_ns(ns, "vlans"),
        Table::Vms => in_ns(ns, "vm info"),
        Table::Top => in_ns(ns, "vm top"),
        Table::Files => {
            let p = path.unwrap_or("");
            check(p)?;
            if p.is_empty() {
                in_ns(ns, "file list")
            } else {
                in_ns(ns, &format!("file list {}", quote(p)))
            }
        }
    }
}

/// Names every word of the target list can carry as they are: minimega
/// splits a target on commas and expands `[...]` ranges.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// The lines of a VM action on the selected VMs: one line for all of them
/// where their names allow, else one per VM (a name with a comma or a
/// bracket would be split or expanded). `flush` takes no names.
pub fn vm_action(a: VmAction, ns: &str, names: &[String]) -> Result<Vec<String>, LineError> {
    if a == VmAction::Flush {
        return Ok(vec![in_ns(ns, "vm flush")?]);
    }
    if names.is_empty() {
        return Err(LineError::NoVm);
    }
    for n in names {
        check(n)?;
    }
    let verb = a.verb();
    if names.iter().all(|n| plain(n)) {
        return Ok(vec![in_ns(ns, &format!("vm {verb} {}", names.join(",")))?]);
    }
    names
        .iter()
        .map(|n| in_ns(ns, &format!("vm {verb} {}", quote(n))))
        .collect()
}

/// `vm screenshot`, as miniweb asks for it: the PNG comes back base64 in
/// the response's Data.
pub fn screenshot(ns: &str, vm: &str, size: Option<&str>) -> Result<String, LineError> {
    check(vm)?;
    let size = match size {
        None | Some("") => String::new(),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (16..=4096).contains(&n) => format!(" {n}"),
            _ => return Err(LineError::Size),
        },
    };
    in_ns(
        ns,
        &format!("vm screenshot {} file /dev/null{size}", quote(vm)),
    )
}

/// The row of one VM: its id and where it runs.
pub fn vm_where(ns: &str, vm: &str) -> Result<String, LineError> {
    check(vm)?;
    in_ns(
        ns,
        &format!(
            ".columns id,name,state,vnc_port,serial-ports .filter name={} vm info",
            quote(vm)
        ),
    )
}

/// A line typed into the command console, run in the page's namespace.
pub fn console(ns: &str, line: &str) -> Result<String, LineError> {
    let line = line.trim();
    if line.is_empty() {
        return Err(LineError::Empty);
    }
    check(line)?;
    in_ns(ns, line)
}

/// `file stream`: a file of the daemon's files directory, in pieces.
pub fn file_stream(ns: &str, path: &str) -> Result<String, LineError> {
    check(path)?;
    in_ns(ns, &format!("file stream {}", quote(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(
            table(Table::Vms, "exp", None).unwrap(),
            r#".record false namespace "exp" vm info"#
        );
        assert_eq!(
            table(Table::Files, "minimega", Some("dir/x y")).unwrap(),
            r#".record false namespace "minimega" file list "dir/x y""#
        );
        assert_eq!(
            table(Table::Namespaces, "x", None).unwrap(),
            ".record false namespace"
        );
        assert_eq!(
            vm_action(VmAction::Kill, "e", &["a".into(), "b-2".into()]).unwrap(),
            vec![r#".record false namespace "e" vm kill a,b-2"#]
        );
        assert_eq!(
            vm_action(VmAction::Start, "e", &["a,b".into(), "c".into()]).unwrap(),
            vec![
                r#".record false namespace "e" vm start "a,b""#,
                r#".record false namespace "e" vm start "c""#
            ]
        );
        assert_eq!(vm_action(VmAction::Stop, "e", &[]), Err(LineError::NoVm));
        assert_eq!(
            vm_action(VmAction::Flush, "e", &[]).unwrap(),
            vec![r#".record false namespace "e" vm flush"#]
        );
        assert!(matches!(
            vm_action(VmAction::Kill, "e", &["a\nvm kill all".into()]),
            Err(LineError::Newline(_))
        ));
        assert_eq!(
            screenshot("e", "vm1", Some("240")).unwrap(),
            r#".record false namespace "e" vm screenshot "vm1" file /dev/null 240"#
        );
        assert_eq!(
            screenshot("e", "vm1", None).unwrap(),
            r#".record false namespace "e" vm screenshot "vm1" file /dev/null"#
        );
        assert_eq!(screenshot("e", "vm1", Some("1; x")), Err(LineError::Size));
        assert_eq!(console("e", "  "), Err(LineError::Empty));
        assert!(in_ns("a\nb", "vm info").is_err());
    }
}
