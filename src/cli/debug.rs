//! minimega's `debug`: what the daemon itself is doing. minimega writes Go's
//! pprof profiles; a Rust daemon has no such runtime, so the same four
//! forms write plain-text reports read off /proc (threads, their CPU time,
//! memory by mapping) and the async runtime's counters. Same words, same
//! errors, so scripts and habits carry over; the file format differs
//! (minimega(1), DIFFERENCES FROM MINIMEGA).

use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reply, Spec};
use crate::node::Node;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

pub fn specs() -> Vec<Spec<Node>> {
    vec![Spec {
        patterns: &[
            "debug",
            "debug <memory,> <file>",
            "debug <cpu,> <start,> <file>",
            "debug <cpu,> <stop,>",
            "debug <goroutine,> <file>",
        ],
        short: "display internal debug information",
        long: "Without arguments, print the daemon's version, its threads, the async\ntasks alive in its runtime, its open file descriptors and its resident\nmemory (KiB).\n\nWith arguments, write a plain-text report to a file (a relative name is\nunder the files directory):\n\n- memory: the daemon's memory as the kernel counts it, and its largest\n  mappings\n- cpu start / cpu stop: CPU time used by each thread between the two\n- goroutine: every thread (name, state, where it waits, CPU time) and the\n  async runtime's counters\n\nminimega writes Go pprof profiles here; this daemon has no Go runtime.",
        handler: debug,
        mesh_ok: true,
        reach: Reach::Here,
        ns_clear: &[],
    }]
}

/// The CPU profile being taken: where it goes and the threads' times at
/// its start.
struct CpuProfile {
    file: PathBuf,
    started: Instant,
    process: u64,
    threads: BTreeMap<u32, Task>,
}

static CPU: Mutex<Option<CpuProfile>> = Mutex::new(None);

fn debug(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let file = match c.args.string("file") {
            Some(name) => Some(
                crate::paths::confine(&c.ctx.config.filepath, name)
                    .map_err(|e| CommandError::Invalid(e.to_string()))?,
            ),
            None => None,
        };
        let write = |path: PathBuf, text: String| {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            std::fs::write(&path, text)
                .map_err(|e| CommandError::Failed(format!("{}: {e}", path.display())))
        };
        let mut cpu = CPU.lock().unwrap_or_else(|p| p.into_inner());
        if c.args.flag("memory") {
            write(file.unwrap_or_default(), memory_report())?;
        } else if c.args.flag("goroutine") {
            write(file.unwrap_or_default(), thread_report())?;
        } else if c.args.flag("start") {
            if cpu.is_some() {
                return Err(CommandError::Failed("CPU profile still running".into()));
            }
            let file = file.unwrap_or_default();
            // Created now, as minimega does, so a bad path fails at start.
            write(file.clone(), String::new())?;
            *cpu = Some(CpuProfile {
                file,
                started: Instant::now(),
                process: process_ticks(),
                threads: tasks(),
            });
        } else if c.args.flag("stop") {
            let Some(p) = cpu.take() else {
                return Err(CommandError::Failed("CPU profile not running".into()));
            };
            let text = cpu_report(
                p.started.elapsed().as_secs_f64(),
                process_ticks().saturating_sub(p.process),
                &p.threads,
                &tasks(),
                ticks_per_second(),
            );
            write(p.file, text)?;
        } else {
            return Ok(table(
                ["version", "threads", "tasks", "fds", "rss"],
                [vec![
                    env!("CARGO_PKG_VERSION").to_string(),
                    tasks().len().to_string(),
                    runtime_tasks().to_string(),
                    std::fs::read_dir("/proc/self/fd")
                        .map(|d| d.count())
                        .unwrap_or(0)
                        .to_string(),
                    status_field(&read("/proc/self/status"), "VmRSS").unwrap_or_default(),
                ]],
            )
            .into());
        }
        Ok(Reply::empty())
    })
}

/// One thread as /proc/self/task/TID/stat shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub name: String,
    pub state: char,
    /// User plus system time, in clock ticks.
    pub ticks: u64,
}

/// A `stat` line of proc(5): the name sits in parentheses and may hold
/// spaces and parentheses itself, so fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<Task> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let state = rest.first()?.chars().next()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some(Task {
        name,
        state,
        ticks: utime + stime,
    })
}

/// The value of one `Name:   value` line of /proc/self/status.
pub fn status_field(status: &str, name: &str) -> Option<String> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.split_whitespace().next().unwrap_or("").to_string())
    })
}

/// Resident KiB per mapped object of /proc/self/smaps, largest first.
pub fn mappings_by_rss(smaps: &str) -> Vec<(String, u64)> {
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    let mut current = String::new();
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's head: range perms offset dev inode [path].
            current = line
                .split_whitespace()
                .nth(5)
                .unwrap_or("[anonymous]")
                .to_string();
        } else if first == "Rss:" {
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            *by.entry(current.clone()).or_default() += kib;
        }
    }
    let mut v: Vec<(String, u64)> = by.into_iter().filter(|(_, k)| *k > 0).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// CPU time per thread between two samples, busiest first; threads that
/// ended in between are in the process total only.
pub fn cpu_report(
    seconds: f64,
    process_ticks: u64,
    before: &BTreeMap<u32, Task>,
    after: &BTreeMap<u32, Task>,
    hz: u64,
) -> String {
    let ms = |t: u64| t * 1000 / hz.max(1);
    let mut rows: Vec<(u32, &Task, u64)> = after
        .iter()
        .map(|(tid, t)| {
            let was = before
                .get(tid)
                .filter(|b| b.name == t.name)
                .map_or(0, |b| b.ticks);
            (*tid, t, t.ticks.saturating_sub(was))
        })
        .collect();
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let mut out = format!(
        "# minimega CPU profile: {seconds:.1} s wall, {} ms CPU for the whole process\n# tid\tthread\tcpu_ms\n",
        ms(process_ticks)
    );
    for (tid, t, d) in rows {
        let _ = writeln!(out, "{tid}\t{}\t{}", t.name, ms(d));
    }
    out
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn tasks() -> BTreeMap<u32, Task> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return BTreeMap::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let task = parse_stat(&read(&format!("/proc/self/task/{tid}/stat")))?;
            Some((tid, task))
        })
        .collect()
}

fn process_ticks() -> u64 {
    parse_stat(&read("/proc/self/stat")).map_or(0, |t| t.ticks)
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

fn runtime_tasks() -> usize {
    tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_alive_tasks())
}

fn memory_report() -> String {
    let status = read("/proc/self/status");
    let mut out = String::from("# minimega memory (KiB), from /proc/self/status\n");
    for f in [
        "VmPeak", "VmSize", "VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "VmData", "VmStk",
        "VmSwap", "Threads",
    ] {
        if let Some(v) = status_field(&status, f) {
            let _ = writeln!(out, "{f}\t{v}");
        }
    }
    out.push_str("\n# /proc/self/smaps_rollup\n");
    out.push_str(&read("/proc/self/smaps_rollup"));
    out.push_str("\n# resident KiB by mapping, largest first\n");
    for (name, kib) in mappings_by_rss(&read("/proc/self/smaps")).iter().take(40) {
        let _ = writeln!(out, "{kib}\t{name}");
    }
    out
}

fn thread_report() -> String {
    let hz = ticks_per_second();
    let all = tasks();
    let mut out = format!(
        "# minimega threads: {}; async tasks alive: {}\n# tid\tthread\tstate\twchan\tcpu_ms\n",
        all.len(),
        runtime_tasks()
    );
    for (tid, t) in &all {
        let wchan = read(&format!("/proc/self/task/{tid}/wchan"));
        let wchan = if wchan.is_empty() || wchan == "0" {
            "-"
        } else {
            wchan.trim()
        };
        let _ = writeln!(
            out,
            "{tid}\t{}\t{}\t{wchan}\t{}",
            t.name,
            t.state,
            t.ticks * 1000 / hz
        );
    }
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        let m = h.metrics();
        let _ = write!(
            out,
            "\n# async runtime\nworkers\t{}\nalive_tasks\t{}\nglobal_queue\t{}\n",
            m.num_workers(),
            m.num_alive_tasks(),
            m.global_queue_depth()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_with_spaces_and_parentheses() {
        let line =
            "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 9 0 1234 0 0";
        let t = parse_stat(line).unwrap();
        assert_eq!(t.name, "tokio (rt) 1");
        assert_eq!(t.state, 'S');
        assert_eq!(t.ticks, 22);
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn status_fields_read_by_name() {
        let s = "Name:\tminimega\nVmRSS:\t   10240 kB\nThreads:\t9\n";
        assert_eq!(status_field(s, "VmRSS").as_deref(), Some("10240"));
        assert_eq!(status_field(s, "Threads").as_deref(), Some("9"));
        assert_eq!(status_field(s, "VmSwap"), None);
    }

    #[test]
    fn mappings_summed_by_object_largest_first() {
        let smaps = "\
55d0-55d1 r-xp 00000000 fe:01 123 /usr/bin/minimega
Rss:                 100 kB
Pss:                  50 kB
55d2-55d3 r--p 00001000 fe:01 123 /usr/bin/minimega
Rss:                  20 kB
7f00-7f10 rw-p 00000000 00:00 0
Rss:                 300 kB
7f20-7f21 r--p 00000000 fe:01 9 /usr/lib/libc.so.6
Rss:                   0 kB
";
        assert_eq!(
            mappings_by_rss(smaps),
            [
                ("[anonymous]".to_string(), 300),
                ("/usr/bin/minimega".to_string(), 120)
            ]
        );
    }

    #[test]
    fn cpu_report_counts_only_the_window() {
        let t = |name: &str, ticks| Task {
            name: name.into(),
            state: 'S',
            ticks,
        };
        let before = BTreeMap::from([(1, t("main", 50)), (2, t("worker", 10))]);
        // Thread 2 ended; its id was reused by another thread: counted from 0.
        let after = BTreeMap::from([(1, t("main", 60)), (2, t("qmp", 3)), (3, t("new", 40))]);
        let r = cpu_report(2.0, 70, &before, &after, 100);
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(
            lines[0],
            "# minimega CPU profile: 2.0 s wall, 700 ms CPU for the whole process"
        );
        assert_eq!(&lines[2..], ["3\tnew\t400", "1\tmain\t100", "2\tqmp\t30"]);
    }
}
