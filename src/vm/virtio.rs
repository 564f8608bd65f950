//! `vm config virtio-ports`: virtio-serial ports for the guest's own use,
//! each a unix socket `<vm dir>/virtio-serialN` on the host and
//! `/dev/virtio-ports/NAME` in the guest. A count names them
//! `virtio-serial0`, `virtio-serial1`, ... as minimega does; a comma list
//! names them. Pure: the spec and QEMU's arguments for it.

use std::fmt;
use std::path::Path;

/// The most ports a VM may ask for (QEMU allows 31 per controller; ports
/// are spread over as many controllers as they need).
pub const MAX_PORTS: usize = 256;

/// Ports per controller, as minimega fills them.
const PER_CONTROLLER: usize = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    Count(usize),
    Names(Vec<String>),
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ports::Count(n) => write!(f, "{n}"),
            Ports::Names(v) => write!(f, "{}", v.join(",")),
        }
    }
}

/// Reads `vm config virtio-ports`' value; empty means none.
pub fn parse_ports(spec: &str) -> Result<Ports, &'static str> {
    if spec.bytes().all(|b| b.is_ascii_digit()) && !spec.is_empty() {
        let n: usize = spec.parse().map_err(|_| "too many ports")?;
        if n > MAX_PORTS {
            return Err("at most 256 ports");
        }
        return Ok(Ports::Count(n));
    }
    let names: Vec<String> = spec.split(',').map(str::to_string).collect();
    if names.len() > MAX_PORTS {
        return Err("at most 256 ports");
    }
    let ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if !names.iter().all(|n| ok(n)) {
        return Err(
            "expected a count or comma-separated names of letters, digits, `.`, `_` or `-`",
        );
    }
    let mut seen = std::collections::HashSet::new();
    if !names.iter().all(|n| seen.insert(n.as_str())) {
        return Err("a port name is given twice");
    }
    Ok(Ports::Names(names))
}

/// The guest-side names of the ports a spec asks for.
pub fn names(spec: &str) -> Vec<String> {
    match parse_ports(spec) {
        Ok(Ports::Count(n)) => (0..n).map(|i| format!("virtio-serial{i}")).collect(),
        Ok(Ports::Names(v)) => v,
        Err(_) => Vec::new(),
    }
}

/// QEMU's arguments for the ports, their sockets under `dir`.
pub fn argv(spec: &str, dir: &Path) -> Vec<String> {
    let mut a = Vec::new();
    for (i, name) in names(spec).iter().enumerate() {
        let bus = i / PER_CONTROLLER;
        if i % PER_CONTROLLER == 0 {
            a.push("-device".into());
            a.push(format!("virtio-serial-pci,id=mm-vports{bus}"));
        }
        let path = dir.join(format!("virtio-serial{i}"));
        a.push("-chardev".into());
        a.push(format!(
            "socket,id=vport{i},path={},server=on,wait=off",
            path.display().to_string().replace(',', ",,")
        ));
        a.push("-device".into());
        a.push(format!(
            "virtserialport,bus=mm-vports{bus}.0,chardev=vport{i},id=vport{i},name={name}"
        ));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_names() {
        assert_eq!(parse_ports("3"), Ok(Ports::Count(3)));
        assert_eq!(
            names("3"),
            ["virtio-serial0", "virtio-serial1", "virtio-serial2"]
        );
        assert_eq!(names("foo,bar"), ["foo", "bar"]);
        assert_eq!(parse_ports("0"), Ok(Ports::Count(0)));
        assert!(names("0").is_empty());
        for bad in ["a b", "a,,b", "a,a", "x/y", "257", ""] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_fill_controllers_of_thirty() {
        let a = argv("31", Path::new("/b/0"));
        let controllers: Vec<&String> = a
            .iter()
            .filter(|s| s.starts_with("virtio-serial-pci"))
            .collect();
        assert_eq!(
            controllers,
            [
                "virtio-serial-pci,id=mm-vports0",
                "virtio-serial-pci,id=mm-vports1"
            ]
        );
        assert!(a.contains(&"socket,id=vport0,path=/b/0/virtio-serial0,server=on,wait=off".into()));
        assert!(a.contains(
            &"virtserialport,bus=mm-vports1.0,chardev=vport30,id=vport30,name=virtio-serial30"
                .into()
        ));
        assert!(argv("", Path::new("/b")).is_empty());
    }
}
