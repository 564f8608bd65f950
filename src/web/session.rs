//! Logged-in sessions, their CSRF tokens, and the same-origin rule.
//!
//! A login gives the browser one cookie (`mmweb`: HttpOnly, SameSite=
//! Strict, Secure under TLS) naming a session held here, and the page a
//! CSRF token it sends back in `X-CSRF-Token` with every POST. A forged
//! cross-site request carries neither (SameSite) nor knows the token; the
//! Origin check refuses the rest, websockets included (a browser sends
//! Origin on every websocket and every POST). Pure: the caller supplies
//! the clock and the random bytes.

use super::passwd::Grant;
use std::collections::HashMap;

pub const COOKIE: &str = "mmweb";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session unused for this long is gone.
pub const IDLE_SECS: u64 = 8 * 3600;
/// Sessions kept at once: a flood of logins cannot grow memory.
pub const MAX_SESSIONS: usize = 4096;

#[derive(Debug, Clone)]
pub struct Session {
    pub grant: Grant,
    pub csrf: String,
    pub last: u64,
}

#[derive(Debug, Default)]
pub struct Sessions {
    map: HashMap<String, Session>,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares in time independent of where the inputs differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// A new session for `grant`; `random` is 64 fresh random bytes (32
    /// for the cookie, 32 for the CSRF token). Returns the cookie value.
    pub fn create(&mut self, grant: Grant, random: &[u8; 64], now: u64) -> String {
        self.expire(now);
        if self.map.len() >= MAX_SESSIONS {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        let token = hex(&random[..32]);
        self.map.insert(
            token.clone(),
            Session {
                grant,
                csrf: hex(&random[32..]),
                last: now,
            },
        );
        token
    }

    /// The session a cookie names, touched now.
    pub fn get(&mut self, token: &str, now: u64) -> Option<Session> {
        let s = self.map.get_mut(token)?;
        if now.saturating_sub(s.last) > IDLE_SECS {
            self.map.remove(token);
            return None;
        }
        s.last = now;
        Some(s.clone())
    }

    pub fn remove(&mut self, token: &str) {
        self.map.remove(token);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn expire(&mut self, now: u64) {
        self.map
            .retain(|_, s| now.saturating_sub(s.last) <= IDLE_SECS);
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The `Set-Cookie` value for a session (an empty token logs out).
pub fn set_cookie(token: &str, secure: bool) -> String {
    let mut c = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    if token.is_empty() {
        c.push_str("; Max-Age=0");
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// Whether a request's Origin is this server as the browser reached it
/// (the Host header). A missing Origin passes only where `required` is
/// false: a browser sends it on every POST and websocket, so only
/// non-browser clients omit it, and they carry no ambient cookie.
pub fn same_origin(origin: Option<&str>, host: Option<&str>, required: bool) -> bool {
    let Some(origin) = origin else {
        return !required;
    };
    let Some(host) = host else {
        return false;
    };
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    rest.is_some_and(|r| r.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::super::passwd::Scope;
    use super::*;

    fn grant() -> Grant {
        Grant {
            user: "u".into(),
            readonly: false,
            scope: Scope::All,
        }
    }

    #[test]
    fn sessions_live_while_used() {
        let mut s = Sessions::default();
        let mut r = [7u8; 64];
        r[40] = 1;
        let t = s.create(grant(), &r, 1000);
        assert_eq!(t.len(), 64);
        let got = s.get(&t, 1000 + IDLE_SECS).unwrap();
        assert_eq!(got.csrf.len(), 64);
        assert_ne!(got.csrf, t, "the CSRF token is not the cookie");
        assert!(s.get(&t, 1000 + 2 * IDLE_SECS).is_some(), "touched");
        assert!(
            s.get(&t, 1000 + 3 * IDLE_SECS + 1).is_none(),
            "idle too long"
        );
        assert!(s.get("nope", 0).is_none());
        let t2 = s.create(grant(), &[9u8; 64], 5);
        s.remove(&t2);
        assert!(s.get(&t2, 5).is_none());
    }

    #[test]
    fn bounded() {
        let mut s = Sessions::default();
        for i in 0..MAX_SESSIONS + 10 {
            let mut r = [0u8; 64];
            r[..8].copy_from_slice(&(i as u64).to_le_bytes());
            s.create(grant(), &r, 100 + i as u64);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
    }

    #[test]
    fn cookies_and_secrets() {
        assert_eq!(cookie("a=1; mmweb=abc; b=2", COOKIE), Some("abc"));
        assert_eq!(cookie("xmmweb=abc", COOKIE), None);
        assert_eq!(
            set_cookie("abc", true),
            "mmweb=abc; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(set_cookie("", false).contains("Max-Age=0"));
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "ab"));
    }

    #[test]
    fn origins() {
        let h = Some("127.0.0.1:9080");
        assert!(same_origin(Some("http://127.0.0.1:9080"), h, true));
        assert!(same_origin(Some("https://127.0.0.1:9080"), h, true));
        assert!(!same_origin(Some("http://evil.example:9080"), h, true));
        assert!(!same_origin(Some("null"), h, true));
        assert!(!same_origin(None, h, true));
        assert!(same_origin(None, h, false));
        assert!(!same_origin(Some("http://127.0.0.1:9080"), None, true));
    }
}
