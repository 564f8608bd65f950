//! One namespace's cc bookkeeping: its commands and their counter, its
//! filter and prefix, which commands each client has been offered, and the
//! TCP ports it listens on for agents. Pure; saved as JSON by the caller so
//! commands survive a daemon restart.
//!
//! Delivery: each client (by UUID) is offered a command once. A session
//! starts at a floor: where the client left off, or 0 when its agent
//! started afresh (a rebooted guest), which then gets the commands again as
//! minimega sends them after a reconnection, except `-once` commands,
//! which a client gets at most once ever. A command is offered at the
//! moment it is posted or the client connects; its filter is decided then.

use super::ron::Command;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Book {
    /// The last id given out.
    pub counter: i64,
    pub commands: BTreeMap<i64, Command>,
    pub filter: Option<super::ron::Filter>,
    pub prefix: String,
    /// The highest command id each client has been offered.
    pub seen: BTreeMap<String, i64>,
    pub listen: BTreeSet<u16>,
    /// Counts `clear cc commands`: ids start again from 1, so what a
    /// connected client was offered before counts no more.
    #[serde(default)]
    pub epoch: u64,
}

impl Book {
    /// Adds a command typed here: the next id, this namespace's filter and
    /// prefix. Returns its id.
    pub fn post(&mut self, mut cmd: Command) -> i64 {
        self.counter += 1;
        cmd.id = self.counter;
        cmd.filter = self.filter.clone();
        cmd.prefix = self.prefix.clone();
        cmd.checked_in.clear();
        cmd.sent = false;
        self.commands.insert(cmd.id, cmd);
        self.counter
    }

    /// Adds a command the daemon makes itself (a router's commit), which
    /// keeps its own filter and prefix. Returns its id.
    pub fn post_own(&mut self, cmd: Command) -> i64 {
        let (filter, prefix) = (cmd.filter.clone(), cmd.prefix.clone());
        let id = self.post(cmd);
        if let Some(c) = self.commands.get_mut(&id) {
            c.filter = filter;
            c.prefix = prefix;
        }
        id
    }

    /// Adds a command another node of the namespace posted, under its id.
    pub fn insert(&mut self, mut cmd: Command) -> Result<(), String> {
        if cmd.id <= 0 {
            return Err(format!("invalid command id {}", cmd.id));
        }
        cmd.checked_in.clear();
        cmd.sent = false;
        if let Some(have) = self.commands.get(&cmd.id) {
            if have.command != cmd.command
                || have.files_send != cmd.files_send
                || have.files_recv != cmd.files_recv
            {
                return Err(format!("command {} exists here and differs", cmd.id));
            }
            return Ok(());
        }
        self.counter = self.counter.max(cmd.id);
        self.commands.insert(cmd.id, cmd);
        Ok(())
    }

    /// Where a new session of `uuid` starts: past what it was offered, or
    /// from the start when its agent is fresh.
    pub fn floor(&self, uuid: &str, fresh: bool) -> i64 {
        if fresh {
            0
        } else {
            self.seen.get(uuid).copied().unwrap_or(0)
        }
    }

    /// The commands to consider for a client past `floor`, in id order:
    /// `-once` commands it was offered before are left out.
    pub fn pending(&self, uuid: &str, floor: i64) -> Vec<Command> {
        let seen = self.seen.get(uuid).copied().unwrap_or(0);
        self.commands
            .range(floor + 1..)
            .filter(|(id, c)| !(c.once && **id <= seen))
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// Records that `uuid` was offered everything up to `upto`, and which
    /// commands went out.
    pub fn offered(&mut self, uuid: &str, upto: i64, sent: &[i64]) {
        let s = self.seen.entry(uuid.to_string()).or_insert(0);
        *s = (*s).max(upto);
        for id in sent {
            if let Some(c) = self.commands.get_mut(id) {
                c.sent = true;
            }
        }
    }

    /// A response arrived. False for a command this node does not know
    /// (deleted since, or never posted here).
    pub fn check_in(&mut self, id: i64, uuid: &str) -> bool {
        match self.commands.get_mut(&id) {
            Some(c) => {
                if !c.checked_in.iter().any(|u| u == uuid) {
                    c.checked_in.push(uuid.to_string());
                }
                true
            }
            None => false,
        }
    }

    pub fn delete(&mut self, id: i64) -> Result<(), String> {
        self.commands
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| format!("command {id} not found"))
    }

    /// Ids of the commands posted with `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> Vec<i64> {
        self.commands
            .values()
            .filter(|c| c.prefix == prefix)
            .map(|c| c.id)
            .collect()
    }

    pub fn delete_prefix(&mut self, prefix: &str) -> Result<Vec<i64>, String> {
        let ids = self.with_prefix(prefix);
        if ids.is_empty() {
            return Err(format!("no such prefix: `{prefix}`"));
        }
        for id in &ids {
            self.commands.remove(id);
        }
        Ok(ids)
    }

    /// `clear cc commands`: no commands, ids from 1 again, and every
    /// client starts over.
    pub fn clear(&mut self) {
        self.commands.clear();
        self.counter = 0;
        self.seen.clear();
        self.epoch += 1;
    }

    /// The VM is gone for good.
    pub fn forget(&mut self, uuid: &str) {
        self.seen.remove(uuid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(words: &[&str]) -> Command {
        Command {
            command: words.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn ids(cs: &[Command]) -> Vec<i64> {
        cs.iter().map(|c| c.id).collect()
    }

    #[test]
    fn a_command_the_daemon_makes_keeps_its_filter_and_prefix() {
        let mut b = Book {
            prefix: "typed".into(),
            ..Book::default()
        };
        let own = Command {
            prefix: "minirouter-r1".into(),
            filter: Some(super::super::ron::Filter {
                uuid: "u1".into(),
                ..Default::default()
            }),
            ..exec(&["minirouter", "-u", "f"])
        };
        let id = b.post_own(own);
        let typed = b.post(exec(&["true"]));
        assert_eq!(b.commands[&id].prefix, "minirouter-r1");
        assert_eq!(b.commands[&id].filter.as_ref().unwrap().uuid, "u1");
        assert_eq!(b.commands[&typed].prefix, "typed");
        assert_eq!(b.with_prefix("minirouter-r1"), vec![id]);
    }

    #[test]
    fn each_client_is_offered_each_command_once() {
        let mut b = Book {
            prefix: "p".into(),
            ..Default::default()
        };
        assert_eq!(b.post(exec(&["hostname"])), 1);
        assert_eq!(b.post(exec(&["true"])), 2);
        assert_eq!(b.commands[&1].prefix, "p");
        let f = b.floor("u1", false);
        let p = b.pending("u1", f);
        assert_eq!(ids(&p), [1, 2]);
        b.offered("u1", 2, &[1, 2]);
        // Reconnected (same agent, or after a daemon restart): nothing again.
        let f = b.floor("u1", false);
        assert!(b.pending("u1", f).is_empty());
        b.post(exec(&["date"]));
        assert_eq!(ids(&b.pending("u1", f)), [3]);
        // Another client gets everything.
        assert_eq!(ids(&b.pending("u2", b.floor("u2", false))), [1, 2, 3]);
    }

    #[test]
    fn a_fresh_agent_gets_commands_again_but_once_commands_never() {
        let mut b = Book::default();
        b.post(exec(&["setup"]));
        b.post(Command {
            once: true,
            ..exec(&["reboot"])
        });
        b.offered("u1", 2, &[1, 2]);
        assert!(b.commands[&2].sent);
        let f = b.floor("u1", true);
        assert_eq!(f, 0);
        assert_eq!(ids(&b.pending("u1", f)), [1]);
        // A client that never saw the once command gets it.
        assert_eq!(ids(&b.pending("u2", b.floor("u2", true))), [1, 2]);
    }

    #[test]
    fn check_ins_prefixes_deletes_and_clear() {
        let mut b = Book::default();
        b.post(exec(&["a"]));
        b.prefix = "x".into();
        b.post(exec(&["b"]));
        b.post(exec(&["c"]));
        assert!(b.check_in(1, "u1"));
        assert!(b.check_in(1, "u1"));
        assert!(b.check_in(1, "u2"));
        assert_eq!(b.commands[&1].checked_in, ["u1", "u2"]);
        assert!(!b.check_in(9, "u1"));
        assert_eq!(b.with_prefix("x"), [2, 3]);
        assert_eq!(b.delete_prefix("x").unwrap(), [2, 3]);
        assert_eq!(b.delete_prefix("x").unwrap_err(), "no such prefix: `x`");
        assert_eq!(b.delete(7).unwrap_err(), "command 7 not found");
        b.offered("u1", 3, &[]);
        b.clear();
        assert!(b.commands.is_empty() && b.seen.is_empty());
        assert_eq!(b.post(exec(&["d"])), 1);
        assert_eq!(ids(&b.pending("u1", b.floor("u1", false))), [1]);
    }

    #[test]
    fn copies_from_other_nodes_keep_their_ids() {
        let mut b = Book::default();
        let mut c = exec(&["x"]);
        c.id = 5;
        c.checked_in = vec!["elsewhere".into()];
        b.insert(c.clone()).unwrap();
        assert_eq!(b.counter, 5);
        assert!(b.commands[&5].checked_in.is_empty());
        b.insert(c.clone()).unwrap();
        let mut other = exec(&["y"]);
        other.id = 5;
        assert_eq!(
            b.insert(other).unwrap_err(),
            "command 5 exists here and differs"
        );
        assert_eq!(b.post(exec(&["z"])), 6);
        c.id = 0;
        assert!(b.insert(c).is_err());
    }

    #[test]
    fn survives_a_json_round_trip() {
        let mut b = Book::default();
        b.post(exec(&["a"]));
        b.offered("u", 1, &[1]);
        b.listen.insert(9002);
        let back: Book = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, b);
        let empty: Book = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Book::default());
    }
}
