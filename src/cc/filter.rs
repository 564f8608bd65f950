//! `cc filter`: which clients a command is for. Parsing the `key=value`
//! words as minimega does, printing a filter, and matching one against a
//! client. Pure.

use super::ron::Filter;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What a filter is matched against: the client as it last reported
/// itself, and its VM's tags overlaid with the `vm info` columns the
/// filter names.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub uuid: &'a str,
    pub hostname: &'a str,
    pub arch: &'a str,
    pub os: &'a str,
    pub ips: &'a [String],
    pub macs: &'a [String],
    pub tags: &'a BTreeMap<String, String>,
}

/// Parses `cc filter` words: `uuid=`, `hostname=`, `arch=`, `os=`,
/// `ip=` (an address or a CIDR), `mac=`, `tag=KEY=VALUE` or
/// `tag=KEY:VALUE`, and any other `KEY=VALUE`, which matches a tag or a
/// `vm info` column of that name.
pub fn parse(words: &[String]) -> Result<Filter, String> {
    let mut f = Filter::default();
    for w in words {
        let Some((key, value)) = w.split_once('=') else {
            return Err(format!("malformed id=value pair: {w}"));
        };
        match key.to_ascii_lowercase().as_str() {
            "uuid" => f.uuid = value.to_ascii_lowercase(),
            "hostname" => f.hostname = value.into(),
            "arch" => f.arch = value.into(),
            "os" => f.os = value.into(),
            "ip" => {
                if !valid_ip_or_cidr(value) {
                    return Err(format!("invalid IP or CIDR: {value}"));
                }
                f.ip = value.into();
            }
            "mac" => f.mac = value.to_ascii_lowercase(),
            "tag" => {
                let (k, v) = value
                    .split_once('=')
                    .or_else(|| value.split_once(':'))
                    .unwrap_or((value, ""));
                f.tags.insert(k.into(), v.into());
            }
            _ => {
                f.tags.insert(key.into(), value.into());
            }
        }
    }
    Ok(f)
}

/// A filter as `cc commands` shows it: `hostname=a && ip=10.0.0.0/24 && role=web`.
pub fn describe(f: Option<&Filter>) -> String {
    let Some(f) = f else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (k, v) in [
        ("uuid", &f.uuid),
        ("hostname", &f.hostname),
        ("arch", &f.arch),
        ("os", &f.os),
        ("ip", &f.ip),
        ("mac", &f.mac),
    ] {
        if !v.is_empty() {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.extend(f.tags.iter().map(|(k, v)| format!("{k}={v}")));
    parts.join(" && ")
}

/// Every field the filter sets must match; no filter matches everyone.
pub fn matches(f: Option<&Filter>, s: &Subject) -> bool {
    let Some(f) = f else {
        return true;
    };
    let same = |want: &str, got: &str| want.is_empty() || want == got;
    same(&f.uuid, s.uuid)
        && same(&f.hostname, s.hostname)
        && same(&f.arch, s.arch)
        && same(&f.os, s.os)
        && f.tags
            .iter()
            .all(|(k, v)| s.tags.get(k).map(String::as_str).unwrap_or("") == v)
        && (f.ip.is_empty() || s.ips.iter().any(|ip| ip_matches(&f.ip, ip)))
        && (f.mac.is_empty() || s.macs.iter().any(|m| m.eq_ignore_ascii_case(&f.mac)))
}

/// The names of `vm info` columns or tags a filter asks about.
pub fn tag_keys(f: Option<&Filter>) -> Vec<String> {
    f.map(|f| f.tags.keys().cloned().collect())
        .unwrap_or_default()
}

fn valid_ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        Some((ip, bits)) => cidr(ip, bits).is_some(),
        None => s.parse::<IpAddr>().is_ok(),
    }
}

fn cidr(ip: &str, bits: &str) -> Option<(IpAddr, u32)> {
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn ip_matches(want: &str, have: &str) -> bool {
    let Ok(have) = have.parse::<IpAddr>() else {
        return false;
    };
    let have = have.to_canonical();
    match want.split_once('/') {
        None => want
            .parse::<IpAddr>()
            .is_ok_and(|w| w.to_canonical() == have),
        Some((ip, bits)) => {
            let Some((net, bits)) = cidr(ip, bits) else {
                return false;
            };
            match (net.to_canonical(), have) {
                (IpAddr::V4(n), IpAddr::V4(h)) => {
                    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                    u32::from(n) & mask == u32::from(h) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(h)) => {
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    u128::from(n) & mask == u128::from(h) & mask
                }
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn subject<'a>(tags: &'a BTreeMap<String, String>, ips: &'a [String]) -> Subject<'a> {
        Subject {
            uuid: "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc",
            hostname: "web1",
            arch: "amd64",
            os: "linux",
            ips,
            macs: &[],
            tags,
        }
    }

    #[test]
    fn parses_minimegas_words() {
        let f = parse(&words(
            "UUID=9131E2A3-AD6B-4F38-B5BA-5FF2B19E32DC hostname=web1 os=linux ip=10.0.0.0/24 tag=role:web zone=dmz name=vm1",
        ))
        .unwrap();
        assert_eq!(f.uuid, "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc");
        assert_eq!((f.hostname.as_str(), f.os.as_str()), ("web1", "linux"));
        assert_eq!(f.tags.len(), 3);
        assert_eq!(f.tags["role"], "web");
        assert_eq!(f.tags["name"], "vm1");
        assert_eq!(
            describe(Some(&f)),
            "uuid=9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc && hostname=web1 && os=linux && ip=10.0.0.0/24 && name=vm1 && role=web && zone=dmz"
        );
        assert_eq!(parse(&words("tag=a=b")).unwrap().tags["a"], "b");
        assert_eq!(
            parse(&words("hostname")).unwrap_err(),
            "malformed id=value pair: hostname"
        );
        assert_eq!(
            parse(&words("ip=10.0.0.0/33")).unwrap_err(),
            "invalid IP or CIDR: 10.0.0.0/33"
        );
        assert_eq!(describe(None), "");
    }

    #[test]
    fn every_set_field_must_match() {
        let tags = BTreeMap::from([("role".to_string(), "web".to_string())]);
        let ips = vec!["10.0.0.5".to_string(), "fe80::1".to_string()];
        let s = subject(&tags, &ips);
        let m = |w: &str| matches(Some(&parse(&words(w)).unwrap()), &s);
        assert!(matches(None, &s));
        assert!(m("hostname=web1 role=web"));
        assert!(!m("hostname=web2"));
        assert!(!m("role=db"));
        assert!(!m("missing=x"));
        assert!(m("ip=10.0.0.5"));
        assert!(m("ip=10.0.0.0/24"));
        assert!(m("ip=10.0.0.0/0"));
        assert!(!m("ip=10.0.1.0/24"));
        assert!(m("ip=fe80::/10"));
        assert!(m("ip=::ffff:10.0.0.5"));
        assert!(m(
            "uuid=9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc os=linux arch=amd64"
        ));
        assert!(!m("mac=52:54:00:00:00:01"));
        assert_eq!(
            tag_keys(Some(&parse(&words("name=a role=b")).unwrap())),
            ["name", "role"]
        );
    }
}
