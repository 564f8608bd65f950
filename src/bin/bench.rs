//! Benchmarks. Each subcommand measures one capability and prints its
//! figures beside a baseline measured in the same run on the same machine,
//! so the numbers mean something on a shared, noisy host.
//!
//!     bench mesh [--nodes 16] [--degree 3] [--rounds 200] [--idle 10] [--workers 1]
//!     bench launch [N, default 100] [ROUNDS, default 3]

#[path = "bench/launch.rs"]
mod launch;
#[path = "bench/mesh.rs"]
mod mesh;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("mesh") => mesh::run(&args[1..]),
        Some("launch") => launch::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: bench mesh [--nodes N] [--degree D] [--rounds R] [--idle SECS] [--workers W]"
            );
            eprintln!("       bench launch [N [ROUNDS]]");
            ExitCode::from(2)
        }
    }
}
