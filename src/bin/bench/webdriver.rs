//! A small W3C WebDriver client over plain HTTP on loopback, for Debian's
//! chromedriver and headless chromium: `bench web` and the browser tests
//! (tests/common/browser.rs includes this file) drive the web console
//! with it.

// Shared with the browser tests, which use parts the bench does not.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 exchange on loopback: (status, head, body). A websocket
/// handshake that succeeds returns at its head (the socket stays open).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String, Vec<u8>), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("port {port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(300)))
        .map_err(|e| e.to_string())?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        if raw.starts_with(b"HTTP/1.1 101") && raw.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        // chromedriver answers `Connection: close` and keeps the socket
        // open anyway: a body of known length ends the exchange, or every
        // call would wait out the read timeout.
        if complete(&raw) {
            break;
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[(split + 4).min(raw.len())..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    Ok((status, head, body))
}

/// Whether `raw` holds a whole response with a Content-Length.
fn complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .is_some_and(|n| raw.len() >= split + 4 + n)
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < eol + 2 + n {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[(eol + 4 + n).min(b.len())..];
    }
    out
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// chromedriver and one headless chromium session; both end on drop.
pub struct Driver {
    child: Child,
    port: u16,
    session: String,
    profile: PathBuf,
}

impl Driver {
    /// `profile`: an empty directory of the caller's for the browser.
    pub fn start(profile: &Path) -> Result<Driver, String> {
        let port = free_port()?;
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("chromedriver (install chromium-driver): {e}"))?;
        let mut d = Driver {
            child,
            port,
            session: String::new(),
            profile: profile.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("chromedriver did not listen within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The flags known to work here: headless, no sandbox as root, and
        // no background networking (the machine has no network).
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,900",
            format!("--user-data-dir={}", d.profile.display()),
        ]);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let v = d.call("POST", "/session", Some(caps))?;
        d.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {v}"))?
            .to_string();
        d.call(
            "POST",
            &d.s("/timeouts"),
            Some(json!({"script": 300_000, "pageLoad": 300_000})),
        )?;
        Ok(d)
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, _, out) = http(
            self.port,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )?;
        let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        if status != 200 {
            return Err(format!(
                "WebDriver {method} {path}: {status} {}",
                String::from_utf8_lossy(&out)
            ));
        }
        Ok(v["value"].clone())
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.call("POST", &self.s("/url"), Some(json!({ "url": url })))
            .map(drop)
    }

    pub fn url(&self) -> Result<String, String> {
        Ok(self
            .call("GET", &self.s("/url"), None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// Runs `js` (a function body; `arguments` are `args`) in the page.
    pub fn js(&self, js: &str, args: Value) -> Result<Value, String> {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({"script": js, "args": args})),
        )
    }

    /// Runs async `js`: it calls `arguments[arguments.length - 1](result)`.
    pub fn js_async(&self, js: &str, args: Value) -> Result<Value, String> {
        self.call(
            "POST",
            &self.s("/execute/async"),
            Some(json!({"script": js, "args": args})),
        )
    }

    /// Waits until `js` returns something truthy; returns it.
    pub fn wait(&self, what: &str, limit: Duration, js: &str) -> Result<Value, String> {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        loop {
            // A page still loading (its elements not there yet) throws:
            // asked again, until the time is up.
            let v = match self.js(js, json!([])) {
                Ok(v) => v,
                Err(e) if e.contains("javascript error") => {
                    last = format!(" (last: {e})");
                    Value::Null
                }
                Err(e) => return Err(e),
            };
            let truthy =
                !matches!(v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0);
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out after {limit:?} waiting for {what}{last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn find(&self, css: &str) -> Result<String, String> {
        let v = self.call(
            "POST",
            &self.s("/element"),
            Some(json!({"using": "css selector", "value": css})),
        )?;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|x| x.as_str())
            .map(String::from)
            .ok_or_else(|| format!("no element {css}"))
    }

    pub fn type_into(&self, css: &str, text: &str) -> Result<(), String> {
        let e = self.find(css)?;
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/value")),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    pub fn click(&self, css: &str) -> Result<(), String> {
        let e = self.find(css)?;
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/click")),
            Some(json!({})),
        )
        .map(drop)
    }

    /// A PNG of the page.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        let v = self.call("GET", &self.s("/screenshot"), None)?;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .map_err(|e| e.to_string())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(self.port, "DELETE", &self.s(""), &[], b"");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
