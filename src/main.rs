//! `minimega`: the daemon when run without `-e`/`-attach`, else the client.

use clap::Parser;
use minimega::config::{normalize_args, Config, Flags};
use std::process::ExitCode;

// `pub`: the test daemon (src/bin/minimega-faults.rs) is this same main
// with its fault switch armed first.
pub fn main() -> ExitCode {
    // The container monitor and its stage are modes of this binary (so
    // they are wherever the daemon is); they take their own arguments.
    let argv: Vec<String> = std::env::args().collect();
    let mode = argv.get(1).map(String::as_str);
    if mode == Some(minimega::container::spec::SHIM_VERB) {
        return ExitCode::from(minimega::container::shim::main(&argv[2..]) as u8);
    }
    if mode == Some(minimega::container::spec::INIT_VERB) {
        return ExitCode::from(minimega::container::shim::init::main(&argv[2..]) as u8);
    }
    let flags = match Flags::try_parse_from(normalize_args(std::env::args())) {
        Ok(f) => f,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if flags.cli == Some(true) {
        println!("{}", minimega::doc::cli_json(&minimega::cli::engine()));
        return ExitCode::SUCCESS;
    }
    if flags.show_version {
        println!("minimega {}", minimega::VERSION);
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("minimega: {e}");
            return ExitCode::from(2);
        }
    };
    if flags.exec {
        return minimega::client::exec_once(&config, &flags.command);
    }
    if !flags.command.is_empty() {
        eprintln!(
            "minimega: unexpected argument `{}` (to run a command on the daemon use -e)",
            flags.command[0]
        );
        return ExitCode::from(2);
    }
    if flags.attach {
        return minimega::client::attach(&config);
    }
    if let Some(vm) = &flags.console {
        return minimega::client::console::attach(&config, vm, flags.serial.unwrap_or(0));
    }
    if let Some(pipe) = &flags.pipe {
        return minimega::client::pipe::attach_stdio(&config, pipe);
    }
    if let Err(e) =
        minimega::systemd::logging::init(config.level, config.logfile.as_deref(), config.log_stderr)
    {
        eprintln!("minimega: cannot open log file: {e}");
        return ExitCode::FAILURE;
    }
    for what in &config.no_effect {
        tracing::warn!("flag has no effect here: {what}");
    }
    match minimega::daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
