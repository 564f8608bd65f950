//! Who may use the command socket: root, the daemon's own user, and members
//! of group `minimega`, the same people the D-Bus policy lets call `Exec`.
//! Decided from the kernel's peer credentials, so a socket made too open by
//! hand still refuses strangers.

use crate::users::{group_id, GROUP};

/// A connected process as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// Supplementary groups, when they could be read.
    pub groups: Vec<u32>,
}

/// Who the daemon lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub daemon_uid: u32,
    /// The gid of group `minimega`, if the group exists.
    pub group: Option<u32>,
}

impl Policy {
    /// The policy for this process, looking the group up now.
    pub fn current() -> Policy {
        Policy {
            // SAFETY: geteuid cannot fail.
            daemon_uid: unsafe { libc::geteuid() },
            group: group_id(GROUP),
        }
    }

    pub fn allows(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || peer.uid == self.daemon_uid
            || self
                .group
                .is_some_and(|g| peer.gid == g || peer.groups.contains(&g))
    }

    /// The one line a refused client gets.
    pub fn refusal(&self, peer: &Peer) -> String {
        format!(
            "permission denied: uid {} is not root, the daemon's user, or a member of group {GROUP}",
            peer.uid
        )
    }
}

/// The supplementary groups in the text of `/proc/<pid>/status`.
pub fn parse_status_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A process's supplementary groups; none when it is gone or unreadable,
/// which only ever refuses more.
pub fn process_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| parse_status_groups(&s))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            pid: Some(1),
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn root_owner_and_members_only() {
        let p = Policy {
            daemon_uid: 0,
            group: Some(990),
        };
        assert!(p.allows(&peer(0, 0, &[])));
        assert!(p.allows(&peer(1000, 990, &[])), "primary group");
        assert!(
            p.allows(&peer(1000, 1000, &[27, 990])),
            "supplementary group"
        );
        assert!(!p.allows(&peer(65534, 65534, &[65534])));
        let p = Policy {
            daemon_uid: 1000,
            group: None,
        };
        assert!(p.allows(&peer(1000, 1000, &[])), "the daemon's own user");
        assert!(!p.allows(&peer(1001, 990, &[990])), "no such group here");
        assert_eq!(
            p.refusal(&peer(1001, 1, &[])),
            "permission denied: uid 1001 is not root, the daemon's user, or a member of group minimega"
        );
    }

    #[test]
    fn status_groups() {
        let s = "Name:\tbash\nUid:\t0\t0\t0\t0\nGroups:\t4 24 990 \nNgid:\t0\n";
        assert_eq!(parse_status_groups(s), [4, 24, 990]);
        assert_eq!(parse_status_groups("Groups:\t\n"), Vec::<u32>::new());
        assert_eq!(parse_status_groups(""), Vec::<u32>::new());
    }

    #[test]
    fn lookups_on_this_machine() {
        let own = process_groups(std::process::id() as i32);
        // SAFETY: getgroups with a zero size only counts.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        assert_eq!(own.len(), n as usize);
    }
}
