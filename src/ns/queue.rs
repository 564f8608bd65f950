//! A namespace's launch queue: what `vm launch kvm NAMES` leaves when the
//! namespace queues (`ns queueing true`), checked as minimega checks it
//! (names and UUIDs unique across the namespace's VMs and the queue), and
//! printed as `ns queue` prints it. Pure.

use crate::command::ranges;
use crate::vm::config::VmConfig;
use crate::vm::error::VmError;
use crate::vm::targets::LaunchNames;
use std::collections::{BTreeMap, BTreeSet};

/// One `vm launch kvm ...`, with the configuration it was given then.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub names: LaunchNames,
    pub config: VmConfig,
}

impl Queued {
    pub fn count(&self) -> usize {
        match &self.names {
            LaunchNames::Count(n) => *n as usize,
            LaunchNames::Names(v) => v.len(),
        }
    }

    /// The names given; none for a counted launch (its VMs are named when
    /// they launch).
    pub fn names(&self) -> &[String] {
        match &self.names {
            LaunchNames::Count(_) => &[],
            LaunchNames::Names(v) => v,
        }
    }
}

/// The names and UUIDs VMs of the namespace use already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken {
    pub names: BTreeSet<String>,
    pub uuids: BTreeSet<String>,
}

/// Whether `q` may join `queue`, in minimega's words when it may not.
pub fn check(q: &Queued, taken: &Taken, queue: &[Queued]) -> Result<(), String> {
    let uuid = &q.config.uuid;
    if q.count() > 1 && !uuid.is_empty() {
        return Err("cannot launch multiple VMs with a pre-configured UUID".into());
    }
    // The VM core's own errors: one message, whichever check finds it.
    if let Some(n) = q.names().iter().find(|n| taken.names.contains(*n)) {
        return Err(VmError::NameTaken {
            name: n.clone(),
            namespace: String::new(),
        }
        .to_string());
    }
    if !uuid.is_empty() && taken.uuids.contains(uuid) {
        return Err(VmError::UuidTaken {
            uuid: uuid.clone(),
            vm: String::new(),
        }
        .to_string());
    }
    let queued: BTreeSet<&str> = queue
        .iter()
        .flat_map(|e| e.names().iter().map(String::as_str))
        .collect();
    if let Some(n) = q.names().iter().find(|n| queued.contains(n.as_str())) {
        return Err(format!("vm already queued with name `{n}`"));
    }
    if !uuid.is_empty() && queue.iter().any(|e| &e.config.uuid == uuid) {
        return Err(format!("vm already queued with UUID `{uuid}`"));
    }
    Ok(())
}

/// `ns queue`: each queued launch, its names and the configuration it
/// launches with (the `vm config` listing).
pub fn describe(queue: &[Queued]) -> String {
    let mut out = String::new();
    for q in queue {
        out.push_str(&format!(
            "VMs: {}\nNames: {}\nVM Type: kvm\n\n{}\n",
            q.count(),
            ranges::compress(q.names()),
            q.config.describe()
        ));
    }
    out
}

/// Where `ns schedule dry-run` put each queued launch: host -> the queue's
/// entries (by index) with the names that go there.
pub type Assignment = BTreeMap<String, Vec<(usize, LaunchNames)>>;

/// The `vm` / `dst` rows of an assignment; a counted launch's VMs have
/// no name yet and show an empty one, as in minimega.
pub fn assignment_rows(a: &Assignment) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (host, entries) in a {
        for (_, names) in entries {
            match names {
                LaunchNames::Names(v) => {
                    rows.extend(v.iter().map(|n| vec![n.clone(), host.clone()]));
                }
                LaunchNames::Count(n) => {
                    rows.extend((0..*n).map(|_| vec![String::new(), host.clone()]));
                }
            }
        }
    }
    rows
}

/// `ns schedule mv VMS DST`: moves named VMs of a dry-run assignment to
/// another host of the namespace.
pub fn reassign(
    a: &mut Assignment,
    vms: &[String],
    dst: &str,
    hosts: &BTreeSet<String>,
) -> Result<(), String> {
    if !hosts.contains(dst) {
        return Err("new dst host is not in namespace".into());
    }
    for vm in vms {
        let mut found = None;
        for (host, entries) in a.iter_mut() {
            for (i, (index, names)) in entries.iter_mut().enumerate() {
                let LaunchNames::Names(v) = names else {
                    continue;
                };
                if let Some(at) = v.iter().position(|n| n == vm) {
                    v.remove(at);
                    let emptied = v.is_empty();
                    found = Some((host.clone(), i, *index, emptied));
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        let Some((host, i, index, emptied)) = found else {
            return Err(format!("reassign {vm}: vm not found"));
        };
        if emptied {
            a.get_mut(&host).map(|e| e.remove(i));
        }
        let to = a.entry(dst.to_string()).or_default();
        match to
            .iter_mut()
            .find(|(idx, n)| *idx == index && matches!(n, LaunchNames::Names(_)))
        {
            Some((_, LaunchNames::Names(v))) => v.push(vm.clone()),
            _ => to.push((index, LaunchNames::Names(vec![vm.clone()]))),
        }
    }
    a.retain(|_, e| !e.is_empty());
    Ok(())
}

/// One run of the scheduler, for `ns schedule status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleStat {
    /// Seconds since the epoch.
    pub start: u64,
    pub end: Option<u64>,
    pub launched: usize,
    pub failures: usize,
    pub total: usize,
    pub hosts: usize,
}

impl ScheduleStat {
    pub fn row(&self) -> Vec<String> {
        vec![
            rfc822(self.start),
            self.end.map(rfc822).unwrap_or_default(),
            if self.end.is_some() {
                "completed"
            } else {
                "running"
            }
            .to_string(),
            self.launched.to_string(),
            self.failures.to_string(),
            self.total.to_string(),
            self.hosts.to_string(),
        ]
    }
}

/// A time as Go's `time.RFC822` prints it in UTC: `02 Jan 06 15:04 UTC`.
pub fn rfc822(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, d) = crate::timefmt::civil(secs);
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    format!(
        "{d:02} {} {:02} {h:02}:{m:02} UTC",
        MONTHS[(month - 1) as usize],
        year.rem_euclid(100)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Queued {
        Queued {
            names: LaunchNames::Names(names.iter().map(|s| s.to_string()).collect()),
            config: VmConfig::default(),
        }
    }

    #[test]
    fn names_and_uuids_are_unique_across_vms_and_queue() {
        let taken = Taken {
            names: ["old".to_string()].into(),
            uuids: ["u1".to_string()].into(),
        };
        let queue = vec![named(&["a", "b"])];
        assert!(check(&named(&["c"]), &taken, &queue).is_ok());
        assert_eq!(
            check(&named(&["old"]), &taken, &queue).unwrap_err(),
            "vm already exists with name `old`"
        );
        assert_eq!(
            check(&named(&["b"]), &taken, &queue).unwrap_err(),
            "vm already queued with name `b`"
        );
        let mut two = named(&["x", "y"]);
        two.config.uuid = "u9".into();
        assert_eq!(
            check(&two, &taken, &queue).unwrap_err(),
            "cannot launch multiple VMs with a pre-configured UUID"
        );
        let mut one = named(&["x"]);
        one.config.uuid = "u1".into();
        assert_eq!(
            check(&one, &taken, &queue).unwrap_err(),
            "vm already exists with UUID `u1`"
        );
        one.config.uuid = "u2".into();
        let mut queue = queue;
        queue.push(one.clone());
        let mut again = named(&["z"]);
        again.config.uuid = "u2".into();
        assert_eq!(
            check(&again, &taken, &queue).unwrap_err(),
            "vm already queued with UUID `u2`"
        );
    }

    #[test]
    fn the_queue_prints_each_launch_with_its_config() {
        let mut q = named(&["web1", "web2", "web3"]);
        q.config.memory = 512;
        let text = describe(&[
            q,
            Queued {
                names: LaunchNames::Count(2),
                config: VmConfig::default(),
            },
        ]);
        assert!(
            text.starts_with("VMs: 3\nNames: web[1-3]\nVM Type: kvm\n\nVM configuration:\nMemory:"),
            "{text}"
        );
        assert!(text.contains("\nVMs: 2\nNames: \nVM Type: kvm\n"), "{text}");
        assert!(text.contains("Memory:           512\n"), "{text}");
    }

    #[test]
    fn dry_runs_can_be_edited() {
        let mut a = Assignment::new();
        a.insert(
            "n1".into(),
            vec![(0, LaunchNames::Names(vec!["a".into(), "b".into()]))],
        );
        a.insert("n2".into(), vec![(1, LaunchNames::Count(1))]);
        let hosts: BTreeSet<String> = ["n1".to_string(), "n2".to_string()].into();
        assert_eq!(
            reassign(&mut a, &["zz".into()], "n2", &hosts).unwrap_err(),
            "reassign zz: vm not found"
        );
        assert_eq!(
            reassign(&mut a, &["a".into()], "n9", &hosts).unwrap_err(),
            "new dst host is not in namespace"
        );
        reassign(&mut a, &["a".into()], "n2", &hosts).unwrap();
        reassign(&mut a, &["b".into()], "n2", &hosts).unwrap();
        assert!(!a.contains_key("n1"), "{a:?}");
        assert_eq!(
            assignment_rows(&a),
            [["", "n2"], ["a", "n2"], ["b", "n2"]].map(|r| r.map(String::from).to_vec())
        );
    }

    #[test]
    fn go_rfc822_in_utc() {
        assert_eq!(rfc822(0), "01 Jan 70 00:00 UTC");
        assert_eq!(rfc822(1_700_000_000), "14 Nov 23 22:13 UTC");
        assert_eq!(rfc822(951_782_400), "29 Feb 00 00:00 UTC");
    }
}
