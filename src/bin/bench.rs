//! Benchmarks. Each subcommand measures one capability and prints its
//! figures beside a baseline measured in the same run on the same machine,
//! so the numbers mean something on a shared, noisy host.
//!
//!     bench mesh [--nodes 16] [--degree 3] [--rounds 200] [--idle 10] [--workers 1]
//!     bench launch [N, default 100] [ROUNDS, default 3]
//!     bench cc [N, default 20] [ROUNDS, default 5]
//!     bench files [--size MiB, default 1024] [--rounds 2]
//!     bench net [N, default 100] [ROUNDS, default 3]
//!     bench web [N, default 1000] [ROUNDS, default 5]
//!     bench vnc [ROUNDS, default 100]
//!     bench churn [CLIENTS, default 16] [SECONDS, default 60] [NAMES, default 24]
//!     bench containers [N, default 100] [ROUNDS, default 3]

#[path = "bench/cc.rs"]
mod cc;
#[path = "bench/churn.rs"]
mod churn;
#[path = "bench/containers.rs"]
mod containers;
#[path = "bench/daemon.rs"]
mod daemon;
#[path = "bench/files.rs"]
mod files;
#[path = "bench/launch.rs"]
mod launch;
#[path = "bench/mesh.rs"]
mod mesh;
#[path = "bench/net.rs"]
mod net;
#[path = "bench/vnc.rs"]
mod vnc;
#[path = "bench/web.rs"]
mod web;
#[path = "bench/webdriver.rs"]
mod webdriver;

use std::process::ExitCode;

/// The 1, 5 and 15 minute load averages, printed beside the figures: the
/// machine is shared, and a figure means little without the load then.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs benchmark `name` that needs root (network namespaces): usage
/// errors exit 2, a failed run 1.
fn as_root<O>(
    name: &str,
    opts: Result<O, String>,
    bench: impl FnOnce(&O) -> Result<(), String>,
) -> ExitCode {
    let opts = match opts {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench {name}: {e}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: reading our own uid.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench {name}: run as root (it makes network namespaces)");
        return ExitCode::from(2);
    }
    match bench(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a benchmark taking `[N [ROUNDS]]` (defaults `n`, `rounds`; at
/// least one round): a word that is not a count is a usage error (exit
/// 2), a failed run exits 1.
fn counted(
    name: &str,
    args: &[String],
    (n, rounds): (u64, usize),
    bench: impl FnOnce(u64, usize) -> Result<(), String>,
) -> ExitCode {
    let word = |i: usize, what: &str, default: u64| -> Result<u64, String> {
        match args.get(i) {
            None => Ok(default),
            Some(w) => w.parse().map_err(|_| {
                format!("{what} `{w}` is not a count: usage: bench {name} [N [ROUNDS]]")
            }),
        }
    };
    let parsed = word(0, "N", n).and_then(|n| Ok((n, word(1, "ROUNDS", rounds as u64)?)));
    let (n, rounds) = match parsed {
        Ok(v) => v,
        Err(e) => {
            eprintln!("bench {name}: {e}");
            return ExitCode::from(2);
        }
    };
    match bench(n, (rounds as usize).max(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("mesh") => mesh::run(&args[1..]),
        Some("launch") => launch::run(&args[1..]),
        Some("containers") => containers::run(&args[1..]),
        Some("cc") => cc::run(&args[1..]),
        Some("files") => files::run(&args[1..]),
        Some("net") => net::run(&args[1..]),
        Some("web") => web::run(&args[1..]),
        Some("vnc") => vnc::run(&args[1..]),
        Some("churn") => churn::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: bench mesh [--nodes N] [--degree D] [--rounds R] [--idle SECS] [--workers W]"
            );
            eprintln!("       bench launch [N [ROUNDS]]");
            eprintln!("       bench cc [N [ROUNDS]]");
            eprintln!("       bench files [--size MIB] [--rounds R]");
            eprintln!("       bench net [N [ROUNDS]]");
            eprintln!("       bench web [N [ROUNDS]]");
            eprintln!("       bench vnc [ROUNDS]");
            eprintln!("       bench containers [N [ROUNDS]]");
            eprintln!("       bench churn [CLIENTS [SECONDS [NAMES]]]");
            ExitCode::from(2)
        }
    }
}
