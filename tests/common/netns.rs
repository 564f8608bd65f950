//! A private LAN of network namespaces: one "switch" namespace holding a
//! bridge, and one namespace per host joined to it by a veth pair, so test
//! traffic (broadcasts included) never touches the machine's interfaces.
//! Names carry a per-run tag so concurrent test runs do not collide.

use std::process::Command;

pub struct Lan {
    /// Short tag in every name, e.g. `a3f` in `mma3f-sw`.
    pub tag: String,
    pub switch: String,
    /// Index of the subnet: hosts are 10.<77>.<subnet>.<10+i>/24.
    pub subnet: u8,
    hosts: Vec<String>,
}

pub fn sh(args: &[&str]) -> std::process::Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Lan {
    pub fn new() -> Lan {
        // A short unique tag: interface names are limited to 15 bytes.
        let n = std::process::id() as u64 * 31 + super::unique_tag();
        let tag = format!("{:x}", n % 0xfffff);
        let switch = format!("mm{tag}-sw");
        sh(&["ip", "netns", "add", &switch]);
        sh(&["ip", "-n", &switch, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &switch, "link", "set", "br0", "up"]);
        sh(&["ip", "-n", &switch, "link", "set", "lo", "up"]);
        Lan {
            subnet: (n % 200) as u8 + 20,
            tag,
            switch,
            hosts: Vec::new(),
        }
    }

    /// Adds host number `i` (0-based) and returns its namespace name. Its
    /// address is [`Lan::addr`]`(i)`.
    pub fn add_host(&mut self, i: usize) -> String {
        let ns = format!("mm{}-h{i}", self.tag);
        let outside = format!("v{}h{i}", self.tag);
        sh(&["ip", "netns", "add", &ns]);
        self.cable(&outside, "eth0", &ns);
        let cidr = format!("{}/24", self.addr(i));
        sh(&["ip", "-n", &ns, "addr", "add", &cidr, "dev", "eth0"]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        self.hosts.push(ns.clone());
        ns
    }

    /// Plugs network namespace `ns` into the switch: a veth pair, `outside`
    /// on the switch's bridge, `inside` (left down) in `ns`.
    pub fn cable(&self, outside: &str, inside: &str, ns: &str) {
        sh(&[
            "ip", "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns,
        ]);
        sh(&["ip", "link", "set", outside, "netns", &self.switch]);
        sh(&[
            "ip",
            "-n",
            &self.switch,
            "link",
            "set",
            outside,
            "master",
            "br0",
            "up",
        ]);
    }

    pub fn addr(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, 10 + i)
    }

    pub fn broadcast(&self) -> String {
        format!("10.77.{}.255", self.subnet)
    }

    /// Cuts host `i` off the LAN (its cable pulled), without killing it.
    pub fn unplug(&self, i: usize) {
        let outside = format!("v{}h{i}", self.tag);
        sh(&["ip", "-n", &self.switch, "link", "set", &outside, "down"]);
    }
}

impl Default for Lan {
    fn default() -> Self {
        Lan::new()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain(std::iter::once(&self.switch)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
