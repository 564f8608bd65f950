//! From the last good state to the next: the checks to run before
//! anything changes (each tool reads its new configuration), then the
//! steps that change the guest, each with the file line it serves.

use super::bird;
use super::dnsmasq::{self, DnsmasqFiles};
use super::model::{Addr, IfaceAddr, LineNo, State};
use super::nft;
use super::render::{Names, PlanError, Rendered};
use super::state::Commits;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Where minirouter keeps its files (`-path`, `/tmp/minirouter` as the
/// stock one), and the root of the kernel's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
    pub proc_sys: PathBuf,
}

impl Paths {
    pub fn new(dir: impl Into<PathBuf>) -> Paths {
        Paths {
            dir: dir.into(),
            proc_sys: PathBuf::from("/proc/sys"),
        }
    }
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// Where a new configuration waits for its tool's check.
    pub fn staged(&self, name: &str) -> PathBuf {
        self.dir.join("next").join(name)
    }
    /// The last good state, in the file format.
    pub fn state(&self) -> PathBuf {
        self.file("state")
    }
    /// The last lines of the log (`minirouter_log`).
    pub fn log(&self) -> PathBuf {
        self.file("log")
    }
}

pub const DNSMASQ_CONF: &str = "dnsmasq.conf";
pub const BIRD_CONF: &str = "bird.conf";
pub const NFT_RULES: &str = "firewall.nft";

/// What a failed command may say and still be a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerate {
    Nothing,
    /// Its error output holds one of these.
    Saying(&'static [&'static str]),
    Anything,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Write {
        path: PathBuf,
        contents: String,
    },
    /// A setting that may be read-only (a container's /proc/sys).
    Set {
        path: PathBuf,
        value: String,
    },
    Run {
        argv: Vec<String>,
        tolerate: Tolerate,
    },
    /// Ends the daemon whose pid the file holds, if it runs.
    Stop {
        pidfile: PathBuf,
    },
    /// Starts a daemon unless the one the pid file names runs.
    Start {
        pidfile: PathBuf,
        argv: Vec<String>,
    },
}

/// A tool's configuration file a step's error output may name by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blame {
    pub path: PathBuf,
    pub rendered: Rendered,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The file line the step serves (0: none, or the last good state's).
    pub line: LineNo,
    pub action: Action,
    pub blame: Option<Blame>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub checks: Vec<Step>,
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

impl Plan {
    fn run(&mut self, line: LineNo, args: Vec<String>, tolerate: Tolerate) {
        self.steps.push(Step {
            line,
            action: Action::Run {
                argv: args,
                tolerate,
            },
            blame: None,
        });
    }

    fn push(&mut self, line: LineNo, action: Action) {
        self.steps.push(Step {
            line,
            action,
            blame: None,
        });
    }

    /// Writes a tool's configuration where its check reads it, checks it
    /// with `check` (the staged path appended), and later writes it in
    /// place.
    fn stage(&mut self, paths: &Paths, name: &str, line: LineNo, r: Rendered, check: &[&str]) {
        let staged = paths.staged(name);
        self.checks.push(Step {
            line,
            action: Action::Write {
                path: staged.clone(),
                contents: r.text.clone(),
            },
            blame: None,
        });
        let mut args = argv(check);
        args.push(p(&staged));
        self.checks.push(Step {
            line,
            action: Action::Run {
                argv: args,
                tolerate: Tolerate::Nothing,
            },
            blame: Some(Blame {
                path: staged,
                rendered: r.clone(),
            }),
        });
        self.push(
            line,
            Action::Write {
                path: paths.file(name),
                contents: r.text,
            },
        );
    }
}

fn same(a: &Addr, b: &Addr) -> bool {
    a.iface == b.iface && a.addr == b.addr
}

fn ip_argv(family: IpAddr, rest: &[&str]) -> Vec<String> {
    let mut v = argv(&["ip"]);
    if family.is_ipv6() {
        v.push("-6".into());
    }
    v.extend(argv(rest));
    v
}

fn addresses(plan: &mut Plan, prev: &State, next: &State, names: &Names) -> Result<(), PlanError> {
    for a in &next.addrs {
        names.get(a.iface, a.line)?;
    }
    for a in prev
        .addrs
        .iter()
        .filter(|a| !next.addrs.iter().any(|b| same(a, b)))
    {
        // An interface that went away took its address along.
        let Ok(dev) = names.get(a.iface, 0) else {
            continue;
        };
        match a.addr {
            IfaceAddr::Static(c) => plan.run(
                0,
                argv(&["ip", "addr", "del", &c.to_string(), "dev", &dev]),
                Tolerate::Saying(&["Cannot assign requested address"]),
            ),
            IfaceAddr::Dhcp => plan.run(0, argv(&["dhclient", "-r", &dev]), Tolerate::Anything),
        }
    }
    let mut up: Vec<String> = Vec::new();
    for a in &next.addrs {
        let dev = names.get(a.iface, a.line)?;
        if !up.contains(&dev) {
            plan.run(
                a.line,
                argv(&["ip", "link", "set", &dev, "up"]),
                Tolerate::Nothing,
            );
            up.push(dev.clone());
        }
        if prev.addrs.iter().any(|b| same(a, b)) {
            continue;
        }
        match a.addr {
            IfaceAddr::Static(c) => plan.run(
                a.line,
                argv(&["ip", "addr", "add", &c.to_string(), "dev", &dev]),
                Tolerate::Saying(&["File exists"]),
            ),
            IfaceAddr::Dhcp => plan.run(a.line, argv(&["dhclient", &dev]), Tolerate::Nothing),
        }
    }
    Ok(())
}

fn gateway(plan: &mut Plan, prev: &State, next: &State) {
    match (prev.gateway, next.gateway) {
        (_, Some(g)) => plan.run(
            g.line,
            ip_argv(
                g.via,
                &["route", "replace", "default", "via", &g.via.to_string()],
            ),
            Tolerate::Nothing,
        ),
        // Only the default route minirouter made goes: one a DHCP server
        // gave stays.
        (Some(g), None) => plan.run(
            0,
            ip_argv(
                g.via,
                &["route", "del", "default", "via", &g.via.to_string()],
            ),
            Tolerate::Saying(&["No such process", "No such file"]),
        ),
        (None, None) => {}
    }
}

/// The plan from `prev` to `next` on a guest with interfaces `guest`.
/// `commits` are the file's requests to restart services whose
/// configuration did not change.
pub fn plan(
    prev: &State,
    next: &State,
    commits: &Commits,
    guest: &[String],
    paths: &Paths,
) -> Result<Plan, PlanError> {
    let names = Names::new(guest);
    let mut plan = Plan::default();
    for key in ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"] {
        plan.push(
            0,
            Action::Set {
                path: paths.proc_sys.join(key),
                value: "1".into(),
            },
        );
    }
    addresses(&mut plan, prev, next, &names)?;
    gateway(&mut plan, prev, next);

    // A service restarts when its configuration changed; a commit of an
    // unchanged one only starts it if it is not running, so a commit for
    // a DNS name does not drop every BGP session.
    if next.dnsmasq != prev.dnsmasq || commits.dnsmasq.is_some() {
        let line = commits.dnsmasq.unwrap_or(0);
        let pid = paths.file("dnsmasq.pid");
        if next.dnsmasq.is_empty() {
            plan.push(line, Action::Stop { pidfile: pid });
        } else {
            let files = DnsmasqFiles {
                pid: p(&pid),
                leases: p(&paths.file("dnsmasq.leases")),
            };
            let r = dnsmasq::render(&next.dnsmasq, &files, line);
            plan.stage(paths, DNSMASQ_CONF, line, r, &["dnsmasq", "--test", "-C"]);
            if next.dnsmasq != prev.dnsmasq {
                plan.push(
                    line,
                    Action::Stop {
                        pidfile: pid.clone(),
                    },
                );
            }
            let args = argv(&["dnsmasq", "-C", &p(&paths.file(DNSMASQ_CONF))]);
            plan.push(
                line,
                Action::Start {
                    pidfile: pid,
                    argv: args,
                },
            );
        }
    }

    if next.bird != prev.bird || commits.bird.is_some() {
        let line = commits.bird.unwrap_or(0);
        let pid = paths.file("bird.pid");
        if next.bird.is_empty() {
            plan.push(line, Action::Stop { pidfile: pid });
        } else {
            let (r, warnings) = bird::render(&next.bird, &next.addrs, &names, line)?;
            plan.warnings.extend(warnings);
            plan.stage(paths, BIRD_CONF, line, r, &["bird", "-p", "-c"]);
            if next.bird != prev.bird {
                plan.push(
                    line,
                    Action::Stop {
                        pidfile: pid.clone(),
                    },
                );
            }
            let conf = p(&paths.file(BIRD_CONF));
            let ctl = p(&paths.file("bird.ctl"));
            let args = argv(&["bird", "-c", &conf, "-s", &ctl, "-P", &p(&pid)]);
            plan.push(
                line,
                Action::Start {
                    pidfile: pid,
                    argv: args,
                },
            );
        }
    }

    if next.firewall != prev.firewall || commits.firewall.is_some() {
        let line = commits.firewall.unwrap_or(0);
        let r = match &next.firewall {
            Some(fw) => nft::render(fw, &names, line)?,
            None => nft::remove(),
        };
        plan.stage(paths, NFT_RULES, line, r, &["nft", "-c", "-f"]);
        plan.run(
            line,
            argv(&["nft", "-f", &p(&paths.file(NFT_RULES))]),
            Tolerate::Nothing,
        );
    }
    Ok(plan)
}

/// The plan that puts `prev` back after a failure on the way to `next`:
/// every service is rewritten from `prev` and started if it is not
/// running, whatever the file asked.
pub fn restore(
    prev: &State,
    next: &State,
    guest: &[String],
    paths: &Paths,
) -> Result<Plan, PlanError> {
    let all = Commits {
        dnsmasq: Some(0),
        bird: Some(0),
        firewall: prev.firewall.as_ref().or(next.firewall.as_ref()).map(|_| 0),
    };
    let mut p = plan(next, prev, &all, guest, paths)?;
    // The previous configuration passed its checks when it was applied.
    p.checks.clear();
    Ok(p)
}
