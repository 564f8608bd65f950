//! The mesh as this node sees it, computed from its own links and the
//! other nodes' announcements: who is reachable, each node's links, the
//! next hop on a shortest path to every node, the tree a periodic
//! announcement follows, and minimega's `mesh dot`. Pure.
//!
//! Nodes are held by index (names sorted), so computing the topology of a
//! mesh of a hundred nodes, which every node does on every change, costs
//! tens of microseconds rather than hundreds.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    me: String,
    /// Reachable nodes (this one included), sorted.
    names: Vec<String>,
    /// Each node's confirmed links, as indices into `names`, sorted.
    adj: Vec<Vec<u32>>,
    /// First hop on a shortest path from this node; NONE for this node.
    next: Vec<u32>,
    hops: Vec<u32>,
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
        Topology::from_lookup(me, links, |n| announced.get(n))
    }

    /// [`Topology::compute`] with the announcements looked up by name
    /// (never asked for this node's own), so the caller need not copy them.
    pub fn from_lookup<'a>(
        me: &'a str,
        links: &'a BTreeSet<String>,
        announced: impl Fn(&str) -> Option<&'a BTreeSet<String>>,
    ) -> Topology {
        // Breadth first from this node, neighbours in name order: shortest
        // paths, and the same choice among equal ones on every run. Each
        // node's announcement is looked up once, when it is found.
        let mut found: HashMap<&'a str, u32> = HashMap::new();
        let mut names: Vec<&'a str> = vec![me];
        let mut says: Vec<Option<&'a BTreeSet<String>>> = vec![Some(links)];
        found.insert(me, 0);
        let mut first: Vec<u32> = vec![NONE];
        let mut hops: Vec<u32> = vec![0];
        let mut adj: Vec<Vec<u32>> = Vec::new();
        let mut u = 0usize;
        while u < names.len() {
            let name = names[u];
            let mut nbrs = Vec::new();
            for v in says[u].into_iter().flatten() {
                let v = v.as_str();
                if v == name {
                    continue;
                }
                let (i, theirs) = match found.get(v) {
                    Some(&i) => (i, says[i as usize]),
                    None => (NONE, if v == me { Some(links) } else { announced(v) }),
                };
                // u names v; the link counts when v names u too (this
                // node's own links always count).
                if u != 0 && !theirs.is_some_and(|p| p.contains(name)) {
                    continue;
                }
                let i = if i != NONE {
                    i
                } else {
                    let i = names.len() as u32;
                    names.push(v);
                    says.push(theirs);
                    found.insert(v, i);
                    first.push(if u == 0 { i } else { first[u] });
                    hops.push(hops[u] + 1);
                    i
                };
                nbrs.push(i);
            }
            adj.push(nbrs);
            u += 1;
        }
        // Renumber in name order.
        let mut order: Vec<u32> = (0..names.len() as u32).collect();
        order.sort_by(|a, b| names[*a as usize].cmp(names[*b as usize]));
        let mut rank = vec![0u32; names.len()];
        for (new, old) in order.iter().enumerate() {
            rank[*old as usize] = new as u32;
        }
        let at = |i: u32| if i == NONE { NONE } else { rank[i as usize] };
        let mut t = Topology {
            me: me.to_string(),
            ..Topology::default()
        };
        for old in order {
            let o = old as usize;
            let mut links: Vec<u32> = adj[o].iter().map(|i| rank[*i as usize]).collect();
            links.sort_unstable();
            t.adj.push(links);
            t.next.push(at(first[o]));
            t.hops.push(hops[o]);
            t.names.push(names[o].to_string());
        }
        t
    }

    /// A mesh of this node alone.
    pub fn alone(me: &str) -> Topology {
        Topology::compute(me, &BTreeSet::new(), &BTreeMap::new())
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }

    fn my_index(&self) -> usize {
        self.index(&self.me).unwrap_or(0)
    }

    pub fn size(&self) -> usize {
        self.names.len()
    }

    /// Every reachable node, this one included, sorted.
    pub fn nodes(&self) -> impl Iterator<Item = &String> {
        self.names.iter()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index(name).is_some()
    }

    pub fn next_hop(&self, dst: &str) -> Option<&str> {
        let hop = self.next[self.index(dst)?];
        (hop != NONE).then(|| self.names[hop as usize].as_str())
    }

    pub fn hops(&self, dst: &str) -> Option<usize> {
        self.index(dst).map(|i| self.hops[i] as usize)
    }

    /// This node's children in the shortest-path tree rooted at `origin`
    /// (breadth first, neighbours in name order): the links a periodic
    /// refresh of `origin`'s announcement goes on by. Every node with the
    /// same view computes the same tree, so a refresh reaches each node
    /// once. `None` when `origin` is not reachable.
    pub fn tree_children(&self, origin: &str) -> Option<Vec<String>> {
        let root = self.index(origin)?;
        let me = self.my_index();
        let mut parent = vec![NONE; self.names.len()];
        parent[root] = root as u32;
        let mut queue = VecDeque::from([root]);
        while let Some(u) = queue.pop_front() {
            for &v in &self.adj[u] {
                if parent[v as usize] == NONE {
                    parent[v as usize] = u as u32;
                    queue.push_back(v as usize);
                }
            }
        }
        Some(
            self.adj[me]
                .iter()
                .filter(|&&v| v as usize != root && parent[v as usize] == me as u32)
                .map(|&v| self.names[v as usize].clone())
                .collect(),
        )
    }

    /// Whether a node or a link of this topology is missing from `newer`:
    /// messages in flight there may have been lost.
    pub fn lost_any(&self, newer: &Topology) -> bool {
        self.names
            .iter()
            .enumerate()
            .any(|(i, n)| match newer.index(n) {
                None => true,
                Some(j) => self.adj[i].iter().any(|&l| {
                    newer
                        .index(&self.names[l as usize])
                        .is_none_or(|k| newer.adj[j].binary_search(&(k as u32)).is_err())
                }),
            })
    }

    /// Each reachable node and its links, as `mesh list` prints them.
    pub fn adjacency(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.names
            .iter()
            .zip(&self.adj)
            .map(|(n, links)| (n.clone(), self.link_names(links).cloned().collect()))
            .collect()
    }

    fn link_names<'a>(&'a self, links: &'a [u32]) -> impl Iterator<Item = &'a String> {
        links.iter().map(|&l| &self.names[l as usize])
    }

    /// The smallest name in the mesh: both sides of a split agree on which
    /// of them reaches out to the other (see discovery).
    pub fn leader(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or(&self.me)
    }

    /// The node with the fewest links (then the smallest name): the one
    /// that links a newcomer, so links spread instead of piling on one node.
    pub fn least_linked(&self) -> &str {
        self.names
            .iter()
            .zip(&self.adj)
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
        for (node, links) in self.names.iter().zip(&self.adj) {
            let color = if *node == self.me { "red" } else { "green" };
            out.push_str(&format!("{} [style=filled, color={color}];\n", q(node)));
            for l in self.link_names(links).filter(|l| *l > node) {
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
    fn losses_are_seen_gains_are_not() {
        let before = topo("n1", &[("n1", "n2"), ("n2", "n3"), ("n1", "n3")]);
        let more = topo(
            "n1",
            &[("n1", "n2"), ("n2", "n3"), ("n1", "n3"), ("n3", "n4")],
        );
        assert!(!before.lost_any(&more));
        assert!(more.lost_any(&before));
        let cut = topo("n1", &[("n1", "n2"), ("n2", "n3")]);
        assert!(before.lost_any(&cut));
        assert!(!before.lost_any(&before.clone()));
    }

    proptest::proptest! {
        /// Against a plain breadth-first search over the links both ends
        /// announce: the same nodes, links and distances, and each first
        /// hop a neighbour one step closer.
        #[test]
        fn matches_a_plain_search(edges in proptest::collection::vec((0u8..12, 0u8..12), 0..30),
                                  one_sided in proptest::collection::vec((0u8..12, 0u8..12), 0..4)) {
            let name = |i: u8| format!("n{i:02}");
            let mut ann: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (a, b) in &edges {
                ann.entry(name(*a)).or_default().insert(name(*b));
                ann.entry(name(*b)).or_default().insert(name(*a));
            }
            for (a, b) in &one_sided {
                ann.entry(name(*a)).or_default().insert(name(*b));
            }
            let me = name(0);
            let links = ann.get(&me).cloned().unwrap_or_default();
            let t = Topology::compute(&me, &links, &ann);
            let edge = |a: &str, b: &str| a != b && if a == me { links.contains(b) } else if b == me {
                links.contains(a) } else { ann.get(a).is_some_and(|p| p.contains(b)) && ann.get(b).is_some_and(|p| p.contains(a)) };
            let all: BTreeSet<String> = (0..12).map(name).collect();
            let mut dist: BTreeMap<String, usize> = BTreeMap::new();
            dist.insert(me.clone(), 0);
            let mut q = VecDeque::from([me.clone()]);
            while let Some(u) = q.pop_front() {
                for v in &all {
                    if edge(&u, v) && !dist.contains_key(v) {
                        dist.insert(v.clone(), dist[&u] + 1);
                        q.push_back(v.clone());
                    }
                }
            }
            proptest::prop_assert_eq!(t.nodes().cloned().collect::<BTreeSet<_>>(), dist.keys().cloned().collect::<BTreeSet<_>>());
            for (n, d) in &dist {
                proptest::prop_assert_eq!(t.hops(n), Some(*d));
                // A node lists this one only once it announces the link.
                let says = |a: &str, b: &str| ann.get(a).is_some_and(|p| p.contains(b));
                let want: BTreeSet<String> = all
                    .iter()
                    .filter(|v| edge(n, v) && (**v != me || says(n, &me)))
                    .cloned()
                    .collect();
                proptest::prop_assert_eq!(&t.adjacency()[n], &want);
                if *n != me {
                    let hop = t.next_hop(n).unwrap();
                    proptest::prop_assert!(links.contains(hop));
                    proptest::prop_assert!(edge(&me, hop) && dist[hop] == 1);
                }
            }
        }
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
