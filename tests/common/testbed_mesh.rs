//! Test-bed nodes running this build under systemd, joined in one mesh,
//! and `minimega -e` inside a node as a person types it there.

use super::testbed::{Node, Testbed};
use std::time::{Duration, Instant};

impl Node {
    /// `minimega -e LINE` inside the node, the line quoted for its shell;
    /// must succeed.
    pub fn mm(&self, line: &str) -> String {
        self.ok(&format!("minimega -e {}", shell_quote(line)))
    }

    /// How many nodes this node's mesh has (0 while it has none).
    pub fn mesh_size(&self) -> usize {
        let o = self.sh("minimega -e .annotate false .headers false .csv true mesh status");
        String::from_utf8_lossy(&o.stdout)
            .split(',')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Testbed {
    /// Nodes with this build running as its unit runs it, sharing `key`,
    /// in one mesh of them all (waits until every node sees every node).
    pub fn mesh_of(names: &[&str], key: &str) -> Testbed {
        let bed = Testbed::boot(names);
        let config = format!(
            "degree = 2\nbroadcast = \"{}\"\nmsa = \"2s\"\n",
            bed.lan.broadcast()
        );
        for n in &bed.nodes {
            n.install_build();
            n.ok(&format!(
                "mkdir -p /etc/minimega && printf '%s\\n' {} > /etc/minimega/mesh.key && chmod 600 /etc/minimega/mesh.key && printf '{config}' > /etc/minimega/minimega.toml && systemctl start minimega",
                shell_quote(key)
            ));
        }
        bed.wait_mesh(names.len());
        bed
    }

    /// Waits until every node's mesh has `size` nodes.
    pub fn wait_mesh(&self, size: usize) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let sizes: Vec<usize> = self.nodes.iter().map(Node::mesh_size).collect();
            if sizes.iter().all(|s| *s == size) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no mesh of {size} nodes: {sizes:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
