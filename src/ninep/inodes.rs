//! FUSE inode numbers for the files of a 9P tree. Keyed by path, not by
//! qid.path: Go's ufs takes qid.path from st_ino alone, so files of two
//! file systems under the guest's root (/proc and /, say) can share one,
//! and the kernel would take them for one file. A hard link gets one
//! number per name, which the kernel does not mind. Pure.

use std::collections::HashMap;

/// The root's number, as FUSE wants it.
pub const ROOT: u64 = 1;

pub struct Inodes {
    paths: HashMap<u64, Vec<String>>,
    inos: HashMap<Vec<String>, u64>,
    next: u64,
}

impl Default for Inodes {
    fn default() -> Self {
        Inodes {
            paths: HashMap::from([(ROOT, Vec::new())]),
            inos: HashMap::from([(Vec::new(), ROOT)]),
            next: ROOT + 1,
        }
    }
}

fn under(path: &[String], top: &[String]) -> bool {
    path.len() >= top.len() && path[..top.len()] == *top
}

impl Inodes {
    pub fn path(&self, ino: u64) -> Option<Vec<String>> {
        self.paths.get(&ino).cloned()
    }

    /// The number of `path`, given one if it has none yet.
    pub fn ino(&mut self, path: &[String]) -> u64 {
        if let Some(&i) = self.inos.get(path) {
            return i;
        }
        let i = self.next;
        self.next += 1;
        self.paths.insert(i, path.to_vec());
        self.inos.insert(path.to_vec(), i);
        i
    }

    /// The path of `name` in directory `parent`; "." and ".." as a shell
    /// would take them, the root being its own parent.
    pub fn child(&self, parent: u64, name: &str) -> Option<Vec<String>> {
        let mut p = self.path(parent)?;
        match name {
            "." => {}
            ".." => {
                p.pop();
            }
            _ => p.push(name.to_string()),
        }
        Some(p)
    }

    /// `path` and everything below it are gone.
    pub fn removed(&mut self, path: &[String]) {
        let gone: Vec<u64> = self
            .paths
            .iter()
            .filter(|(&i, p)| i != ROOT && under(p, path))
            .map(|(&i, _)| i)
            .collect();
        for i in gone {
            if let Some(p) = self.paths.remove(&i) {
                self.inos.remove(&p);
            }
        }
    }

    /// `from` is now `to`: it and what is below keep their numbers under
    /// the new names; whatever `to` named before is gone.
    pub fn renamed(&mut self, from: &[String], to: &[String]) {
        if from == to {
            return;
        }
        self.removed(to);
        let moved: Vec<(u64, Vec<String>)> = self
            .paths
            .iter()
            .filter(|(_, p)| under(p, from))
            .map(|(&i, p)| (i, p.clone()))
            .collect();
        for (i, old) in moved {
            self.inos.remove(&old);
            let mut new = to.to_vec();
            new.extend_from_slice(&old[from.len()..]);
            self.inos.insert(new.clone(), i);
            self.paths.insert(i, new);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.paths.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('/')
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn paths_get_stable_numbers_and_the_root_is_one() {
        let mut t = Inodes::default();
        assert_eq!(t.ino(&[]), ROOT);
        let a = t.ino(&p("etc"));
        let b = t.ino(&p("etc/hosts"));
        assert_ne!(a, b);
        assert_eq!(t.ino(&p("etc")), a);
        assert_eq!(t.path(b), Some(p("etc/hosts")));
        assert_eq!(t.child(a, "passwd"), Some(p("etc/passwd")));
        assert_eq!(t.child(a, ".."), Some(p("")));
        assert_eq!(t.child(ROOT, ".."), Some(p("")));
        assert_eq!(t.child(a, "."), Some(p("etc")));
        assert_eq!(t.child(99, "x"), None);
    }

    #[test]
    fn removing_takes_the_subtree_and_nothing_else() {
        let mut t = Inodes::default();
        let d = t.ino(&p("d"));
        let f = t.ino(&p("d/f"));
        let sib = t.ino(&p("dd"));
        t.removed(&p("d"));
        assert_eq!((t.path(d), t.path(f)), (None, None));
        assert_eq!(t.path(sib), Some(p("dd")));
        assert_eq!(t.len(), 2);
        // The root cannot go.
        t.removed(&[]);
        assert_eq!(t.path(ROOT), Some(vec![]));
        assert_ne!(t.ino(&p("d")), d);
    }

    #[test]
    fn renaming_moves_the_subtree_and_replaces_the_target() {
        let mut t = Inodes::default();
        let d = t.ino(&p("a/d"));
        let f = t.ino(&p("a/d/f"));
        let old_target = t.ino(&p("a/e"));
        let under_target = t.ino(&p("a/e/x"));
        let other = t.ino(&p("a/dx"));
        t.renamed(&p("a/d"), &p("a/e"));
        assert_eq!(t.path(d), Some(p("a/e")));
        assert_eq!(t.path(f), Some(p("a/e/f")));
        assert_eq!(t.ino(&p("a/e/f")), f);
        assert_eq!((t.path(old_target), t.path(under_target)), (None, None));
        assert_eq!(t.path(other), Some(p("a/dx")));
        assert_ne!(t.ino(&p("a/d")), d);
    }
}
