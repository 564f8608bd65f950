//! The settings' own syntaxes: VLAN and port ranges, Go durations, log
//! levels, the TOML file. Pure.

use super::{ConfigError, FileConfig};
use std::path::Path;
use std::time::Duration;

/// `-vlanrange MIN-MAX`, checked as minimega checks it, within the VLAN
/// numbers a switch has.
pub fn parse_vlan_range(s: &str) -> Result<(u16, u16), &'static str> {
    let Some((a, b)) = s.split_once('-') else {
        return Err("expected MIN-MAX, e.g. 101-4096");
    };
    let (Ok(min), Ok(max)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>()) else {
        return Err("expected integer values for VLAN range");
    };
    if max <= min {
        return Err("expected min < max for VLAN range");
    }
    if min == 0 || max > 4096 {
        return Err("VLANs are 1 to 4095 (max 4096, not included)");
    }
    Ok((min, max))
}

pub(super) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text).map_err(|message| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.message().to_string())
}

/// `FIRST-LAST` (or one port): a range of TCP ports, neither 0.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let port = |p: &str| -> Result<u16, String> {
        match p.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("`{p}` is not a port (1 to 65535)")),
            Ok(n) => Ok(n),
        }
    };
    let (a, b) = (port(a)?, port(b)?);
    if a > b {
        return Err("the first port is above the last".into());
    }
    Ok((a, b))
}

pub(super) fn parse_level(s: &str) -> Result<tracing::Level, ConfigError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "debug" => tracing::Level::DEBUG,
        "info" => tracing::Level::INFO,
        "warn" | "warning" => tracing::Level::WARN,
        "error" | "fatal" => tracing::Level::ERROR,
        _ => {
            return Err(ConfigError::Value {
                what: "log level",
                value: s.into(),
                why: "expected debug, info, warn or error".into(),
            })
        }
    })
}

/// Parses Go-style durations: `10s`, `500ms`, `1m30s`, `2h`.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err("expected a number".into());
        }
        let n: f64 = rest[..digits]
            .parse()
            .map_err(|_| "bad number".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err("missing unit (e.g. 10s)".into()),
            u => return Err(format!("unknown unit `{u}`")),
        };
        // A bound far past any real timeout, so sums and multiples of it
        // (3 x msa, deadlines) can never overflow.
        total = Duration::try_from_secs_f64(n * unit)
            .ok()
            .and_then(|d| total.checked_add(d))
            .filter(|d| *d <= MAX_DURATION)
            .ok_or("too long a duration (at most 10 years)")?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

pub fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).to_string();
    // minimega names nodes by their short host name.
    name.split('.').next().unwrap_or("localhost").to_string()
}
