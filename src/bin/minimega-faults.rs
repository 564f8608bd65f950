//! `minimega-faults`: the daemon (and client) exactly as `minimega`, with
//! the fault switch (`minimega::fault`) armed from `MINIMEGA_FAULT`, for
//! the tests that put a crash or a full disk at a chosen point. Built with
//! everything else (one build serves tests and packages) but never
//! installed nor packaged: the shipped `minimega` never arms the switch.

#[path = "../main.rs"]
mod daemon;

fn main() -> std::process::ExitCode {
    if let Err(e) = minimega::fault::arm_from_env() {
        eprintln!("minimega-faults: MINIMEGA_FAULT: {e}");
        return std::process::ExitCode::from(2);
    }
    daemon::main()
}
