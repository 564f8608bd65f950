//! minimega-web: the web console (see `minimega::web` and
//! minimega-web(8)).
//!
//!     minimega-web [-addr HOST:PORT] [-passwords FILE] [-cert PEM -key PEM]
//!                  [-base DIR] [-vncaddr ADDR] [-bus system|session|ADDRESS]
//!                  [-refresh SECS]
//!     minimega-web passwd [-passwords FILE] [-readonly] [-namespace NS] USER
//!
//! Flags are Go style (`-flag value`, `-flag=value`, `--flag`), as
//! miniweb's. `passwd` reads the password from the first line of standard
//! input and adds or replaces USER's entry.

use minimega::config::{default_base, Bus};
use minimega::web::edge::{run, Options};
use minimega::web::{passwd, CERTS_DIR, DEFAULT_ADDR, NOVNC_DIR, PASSWORDS, XTERM_DIR, XTERM_LIB};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: minimega-web [-addr HOST:PORT] [-passwords FILE] [-cert PEM -key PEM] \
[-base DIR] [-vncaddr ADDR] [-bus system|session|ADDRESS] [-refresh SECS] [-level LEVEL]\n       \
minimega-web passwd [-passwords FILE] [-readonly] [-namespace NS] USER";

struct Flags {
    opts: Options,
    level: String,
    readonly: bool,
    namespace: Option<String>,
    rest: Vec<String>,
}

fn parse(args: Vec<String>) -> Result<Flags, String> {
    let mut f = Flags {
        opts: Options {
            addr: DEFAULT_ADDR.into(),
            passwords: PASSWORDS.into(),
            cert: None,
            key: None,
            bus: Bus::System,
            base: default_base(),
            vnc_addr: None,
            refresh: Duration::from_secs(30),
            novnc: NOVNC_DIR.into(),
            xterm: XTERM_DIR.into(),
            xterm_lib: XTERM_LIB.into(),
        },
        level: "info".into(),
        readonly: false,
        namespace: None,
        rest: Vec::new(),
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        // Flags may follow the command too (`passwd -readonly USER`).
        if !arg.starts_with('-') || arg == "-" {
            f.rest.push(arg);
            continue;
        }
        let body = arg.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        if name == "readonly" {
            f.readonly = true;
            continue;
        }
        if name == "h" || name == "help" {
            return Err(USAGE.into());
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| format!("flag -{name} needs a value\n{USAGE}"))?,
        };
        match name.as_str() {
            "addr" => f.opts.addr = value,
            "passwords" => f.opts.passwords = value.into(),
            "cert" => f.opts.cert = Some(value.into()),
            "key" => f.opts.key = Some(value.into()),
            "base" => f.opts.base = value.into(),
            "vncaddr" => {
                f.opts.vnc_addr = Some(
                    value
                        .parse()
                        .map_err(|_| format!("-vncaddr {value}: not an IP address"))?,
                )
            }
            "bus" => f.opts.bus = Bus::parse(&value),
            "refresh" => {
                let s: u64 = value
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("-refresh {value}: a number of seconds"))?;
                f.opts.refresh = Duration::from_secs(s);
            }
            "novnc" => f.opts.novnc = value.into(),
            "xterm" => f.opts.xterm = value.into(),
            "level" => f.level = value,
            "namespace" => f.namespace = Some(value),
            _ => return Err(format!("unknown flag -{name}\n{USAGE}")),
        }
    }
    // Cockpit's habit: a certificate dropped in the directory turns TLS on.
    if f.opts.cert.is_none() && f.opts.key.is_none() {
        let (c, k) = (
            PathBuf::from(CERTS_DIR).join("cert.pem"),
            PathBuf::from(CERTS_DIR).join("key.pem"),
        );
        if c.exists() && k.exists() {
            f.opts.cert = Some(c);
            f.opts.key = Some(k);
        }
    }
    Ok(f)
}

fn add_user(f: &Flags) -> Result<(), String> {
    let [user] = &f.rest[1..] else {
        return Err(USAGE.into());
    };
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password: {e}"))?;
    let pass = line.trim_end_matches(['\n', '\r']);
    if pass.is_empty() {
        return Err("empty password".into());
    }
    let entry = passwd::entry(
        user,
        pass,
        f.readonly,
        f.namespace.as_deref(),
        bcrypt::DEFAULT_COST,
    )
    .map_err(|e| e.to_string())?;
    let path = &f.opts.passwords;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let text = passwd::upsert(&old, entry).map_err(|e| format!("{}: {e}", path.display()))?;
    // Written beside and renamed: a reader never sees half a file. Mode
    // 0640: root and the console's group.
    let tmp = path.with_extension("new");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        file.write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
    }
    // The console's own user reads it through its group.
    if let Some(gid) = minimega::users::group_id("minimega-web") {
        let _ = std::os::unix::fs::chown(&tmp, None, Some(gid));
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "{}: {} {user}",
        path.display(),
        if old.contains(&format!("\"{user}\"")) {
            "updated"
        } else {
            "added"
        }
    );
    Ok(())
}

fn main() -> ExitCode {
    let f = match parse(std::env::args().skip(1).collect()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match f.rest.first().map(String::as_str) {
        Some("passwd") => {
            return match add_user(&f) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("minimega-web passwd: {e}");
                    ExitCode::from(if e.starts_with("usage") { 2 } else { 1 })
                }
            }
        }
        Some(other) => {
            eprintln!("unknown command {other}\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(format!("minimega={}", f.level))
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("minimega=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("minimega-web: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(f.opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minimega-web: {e}");
            ExitCode::FAILURE
        }
    }
}
