//! The mesh as this node sees it, computed from its own links and the
//! other nodes' announcements: who is reachable, each node's links, the
//! next hop on a shortest path to every node, and minimega's `mesh dot`.
//! Pure.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    me: String,
    /// Reachable nodes (this one included) and their confirmed links.
    adj: BTreeMap<String, BTreeSet<String>>,
    /// First hop on a shortest path, for every reachable node but this one.
    next: BTreeMap<String, String>,
    hops: BTreeMap<String, usize>,
}

impl Topology {
    /// `links` are this node's live links; `announced` every other node's
    /// latest announcement. A link between two other nodes counts only when
    /// both announce it, so a dead node's stale announcement cannot keep it
    /// in the mesh once its neighbours stop naming it. This node's own
    /// links count as soon as they are up.
    pub fn compute(
        me: &str,
        links: &BTreeSet<String>,
        announced: &BTreeMap<String, BTreeSet<String>>,
    ) -> Topology {
        let says = |a: &str, b: &str| -> bool {
            if a == me {
                links.contains(b)
            } else {
                announced.get(a).is_some_and(|p| p.contains(b))
            }
        };
        let edge = |a: &str, b: &str| -> bool {
            if a == b {
                return false;
            }
            if a == me || b == me {
                let other = if a == me { b } else { a };
                return links.contains(other);
            }
            says(a, b) && says(b, a)
        };
        let candidates = |a: &str| -> BTreeSet<String> {
            if a == me {
                links.clone()
            } else {
                announced.get(a).cloned().unwrap_or_default()
            }
        };

        let mut adj: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut next: BTreeMap<String, String> = BTreeMap::new();
        let mut hops: BTreeMap<String, usize> = BTreeMap::new();
        let mut queue = VecDeque::new();
        hops.insert(me.to_string(), 0);
        queue.push_back(me.to_string());
        // Breadth first, neighbours in name order: shortest paths, and the
        // same choice among equal ones on every run.
        while let Some(u) = queue.pop_front() {
            let nbrs: BTreeSet<String> =
                candidates(&u).into_iter().filter(|v| edge(&u, v)).collect();
            for v in &nbrs {
                if hops.contains_key(v) {
                    continue;
                }
                hops.insert(v.clone(), hops[&u] + 1);
                let first = if u == me { v.clone() } else { next[&u].clone() };
                next.insert(v.clone(), first);
                queue.push_back(v.clone());
            }
            adj.insert(u, nbrs);
        }
        Topology {
            me: me.to_string(),
            adj,
            next,
            hops,
        }
    }

    /// A mesh of this node alone.
    pub fn alone(me: &str) -> Topology {
        Topology::compute(me, &BTreeSet::new(), &BTreeMap::new())
    }

    pub fn size(&self) -> usize {
        self.adj.len()
    }

    /// Every reachable node, this one included, sorted.
    pub fn nodes(&self) -> impl Iterator<Item = &String> {
        self.adj.keys()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.adj.contains_key(name)
    }

    pub fn next_hop(&self, dst: &str) -> Option<&str> {
        self.next.get(dst).map(String::as_str)
    }

    pub fn hops(&self, dst: &str) -> Option<usize> {
        self.hops.get(dst).copied()
    }

    /// This node's children in the shortest-path tree rooted at `origin`
    /// (breadth first, neighbours in name order): the links a periodic
    /// refresh of `origin`'s announcement goes on by. Every node with the
    /// same view computes the same tree, so a refresh reaches each node
    /// once. `None` when `origin` is not reachable.
    pub fn tree_children(&self, origin: &str) -> Option<Vec<String>> {
        if !self.adj.contains_key(origin) {
            return None;
        }
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([origin]);
        parent.insert(origin, origin);
        while let Some(u) = queue.pop_front() {
            for v in self.adj.get(u).into_iter().flatten() {
                if !parent.contains_key(v.as_str()) {
                    parent.insert(v, u);
                    queue.push_back(v);
                }
            }
        }
        Some(
            self.adj
                .get(&self.me)
                .into_iter()
                .flatten()
                .filter(|v| {
                    v.as_str() != origin && parent.get(v.as_str()) == Some(&self.me.as_str())
                })
                .cloned()
                .collect(),
        )
    }

    /// Each reachable node and its links, as `mesh list` prints them.
    pub fn adjacency(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.adj
    }

    /// The smallest name in the mesh: both sides of a split agree on which
    /// of them reaches out to the other (see discovery).
    pub fn leader(&self) -> &str {
        self.adj
            .keys()
            .next()
            .map(String::as_str)
            .unwrap_or(&self.me)
    }

    /// The node with the fewest links (then the smallest name): the one
    /// that links a newcomer, so links spread instead of piling on one node.
    pub fn least_linked(&self) -> &str {
        self.adj
            .iter()
            .min_by(|a, b| a.1.len().cmp(&b.1.len()).then(a.0.cmp(b.0)))
            .map(|(k, _)| k.as_str())
            .unwrap_or(&self.me)
    }

    /// A Graphviz file of the mesh: this node red, the others green, each
    /// link once.
    pub fn dot(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = format!(
            "graph {} {{\nsize=\"8,11\";\noverlap=false;\nLegend [shape=box, shape=plaintext, label=\"total={}\"];\n",
            q(&self.me),
            self.size()
        );
        for (node, links) in &self.adj {
            let color = if *node == self.me { "red" } else { "green" };
            out.push_str(&format!("{} [style=filled, color={color}];\n", q(node)));
            for l in links.iter().filter(|l| *l > node) {
                out.push_str(&format!("{} -- {}\n", q(node), q(l)));
            }
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Announcements for an undirected edge list, as every node would make.
    fn announced(edges: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            m.entry(a.to_string()).or_default().insert(b.to_string());
            m.entry(b.to_string()).or_default().insert(a.to_string());
        }
        m
    }

    fn topo(me: &str, edges: &[(&str, &str)]) -> Topology {
        let a = announced(edges);
        let links = a.get(me).cloned().unwrap_or_default();
        Topology::compute(me, &links, &a)
    }

    #[test]
    fn alone() {
        let t = Topology::alone("n1");
        assert_eq!(t.size(), 1);
        assert_eq!(t.nodes().collect::<Vec<_>>(), ["n1"]);
        assert_eq!(t.next_hop("n2"), None);
        assert_eq!(t.leader(), "n1");
    }

    #[test]
    fn chain_routes_through_intermediate_hops() {
        let t = topo(
            "n1",
            &[("n1", "n2"), ("n2", "n3"), ("n3", "n4"), ("n4", "n5")],
        );
        assert_eq!(t.size(), 5);
        assert_eq!(t.next_hop("n5"), Some("n2"));
        assert_eq!(t.hops("n5"), Some(4));
        let mid = topo(
            "n3",
            &[("n1", "n2"), ("n2", "n3"), ("n3", "n4"), ("n4", "n5")],
        );
        assert_eq!(mid.next_hop("n1"), Some("n2"));
        assert_eq!(mid.next_hop("n5"), Some("n4"));
    }

    #[test]
    fn shortest_path_wins_and_ties_break_by_name() {
        // n1-n2-n3-n6 and n1-n4-n6 and n1-n5-n6: two hops via n4 or n5.
        let t = topo(
            "n1",
            &[
                ("n1", "n2"),
                ("n2", "n3"),
                ("n3", "n6"),
                ("n1", "n5"),
                ("n5", "n6"),
                ("n1", "n4"),
                ("n4", "n6"),
            ],
        );
        assert_eq!(t.hops("n6"), Some(2));
        assert_eq!(t.next_hop("n6"), Some("n4"));
    }

    #[test]
    fn one_sided_announcements_are_not_links() {
        // n3 died: it still "announces" n2, but n2 no longer names it.
        let mut a = announced(&[("n1", "n2")]);
        a.insert("n3".into(), set(&["n2"]));
        let t = Topology::compute("n1", &set(&["n2"]), &a);
        assert_eq!(t.size(), 2);
        assert!(!t.contains("n3"));
        assert_eq!(t.adjacency()["n2"], set(&["n1"]));
    }

    #[test]
    fn own_links_count_before_the_peer_announces() {
        let t = Topology::compute("n1", &set(&["n2"]), &BTreeMap::new());
        assert_eq!(t.size(), 2);
        assert_eq!(t.next_hop("n2"), Some("n2"));
    }

    #[test]
    fn partitions_are_not_reachable() {
        let t = topo("n1", &[("n1", "n2"), ("n3", "n4")]);
        assert_eq!(t.nodes().cloned().collect::<Vec<_>>(), ["n1", "n2"]);
        assert_eq!(t.next_hop("n4"), None);
    }

    #[test]
    fn full_mesh_adjacency_and_leaders() {
        let t = topo(
            "c",
            &[
                ("a", "b"),
                ("a", "c"),
                ("a", "d"),
                ("b", "c"),
                ("b", "d"),
                ("c", "d"),
            ],
        );
        assert_eq!(t.size(), 4);
        assert_eq!(t.adjacency()["a"], set(&["b", "c", "d"]));
        assert_eq!(t.leader(), "a");
        let star = topo("b", &[("a", "b"), ("a", "c"), ("a", "d")]);
        assert_eq!(star.least_linked(), "b");
        assert_eq!(star.next_hop("d"), Some("a"));
    }

    #[test]
    fn refreshes_go_down_the_origins_tree_and_reach_each_node_once() {
        // A ring of six with two chords: plenty of cycles.
        let edges = [
            ("a", "b"),
            ("b", "c"),
            ("c", "d"),
            ("d", "e"),
            ("e", "f"),
            ("f", "a"),
            ("a", "d"),
            ("b", "e"),
        ];
        let names = ["a", "b", "c", "d", "e", "f"];
        for origin in names {
            // Simulate: the origin sends to its children, each receiver to
            // its own; count receipts.
            let mut got: BTreeMap<&str, usize> = BTreeMap::new();
            let mut wave = vec![origin];
            let mut frames = 0;
            while let Some(n) = wave.pop() {
                for c in topo(n, &edges).tree_children(origin).unwrap() {
                    frames += 1;
                    let c = names.iter().find(|x| **x == c).unwrap();
                    *got.entry(c).or_default() += 1;
                    wave.push(c);
                }
            }
            assert_eq!(frames, names.len() - 1, "from {origin}: {got:?}");
            assert!(got.values().all(|n| *n == 1) && !got.contains_key(origin));
        }
        // The origin's children are all its links.
        assert_eq!(
            topo("a", &edges).tree_children("a").unwrap(),
            ["b", "d", "f"]
        );
        assert_eq!(topo("a", &edges).tree_children("zz"), None);
    }

    #[test]
    fn dot_lists_each_link_once() {
        let t = topo("n1", &[("n1", "n2"), ("n2", "n3")]);
        let d = t.dot();
        assert!(d.starts_with("graph \"n1\" {\n"), "{d}");
        assert!(d.contains("label=\"total=3\""));
        assert!(d.contains("\"n1\" [style=filled, color=red];"));
        assert!(d.contains("\"n3\" [style=filled, color=green];"));
        assert_eq!(d.matches(" -- ").count(), 2);
        assert!(d.ends_with("}\n"));
    }
}
