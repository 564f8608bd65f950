//! A real browser for the web console's tests: Debian's chromium, headless,
//! driven over WebDriver by Debian's chromedriver (the bench's small
//! client, src/bin/bench/webdriver.rs), and `minimega-web` started against
//! a test daemon. Each browser saves a screenshot of its page under
//! target/ when the test fails.

use super::*;
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;

#[path = "../../src/bin/bench/webdriver.rs"]
mod webdriver;

pub const WEB_BIN: &str = env!("CARGO_BIN_EXE_minimega-web");

/// One HTTP/1.1 exchange on loopback: (status, head, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    webdriver::http(port, method, path, headers, body).unwrap()
}

/// `minimega-web` on a free loopback port, for a daemon.
pub struct Web {
    pub port: u16,
    pub passwords: PathBuf,
    child: Child,
    pub log: PathBuf,
    _dir: Scratch,
}

impl Web {
    /// Users: (name, password, read-only), written with `minimega-web passwd`.
    pub fn start(d: &Daemon, users: &[(&str, &str, bool)], extra: &[&str]) -> Web {
        let dir = Scratch::new("web");
        let passwords = dir.path.join("web.passwd");
        for (user, pass, ro) in users {
            let mut args = vec!["passwd", "-passwords", passwords.to_str().unwrap()];
            if *ro {
                args.push("-readonly");
            }
            args.push(user);
            let mut c = Command::new(WEB_BIN)
                .args(&args)
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{pass}\n").as_bytes())
                .unwrap();
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "passwd: {}", stderr(&out));
        }
        let port = free_port();
        let log = dir.path.join("web.log");
        let child = Command::new(WEB_BIN)
            .args(["-addr", &format!("127.0.0.1:{port}")])
            .args(["-passwords", passwords.to_str().unwrap()])
            .args(["-base", d.base.to_str().unwrap()])
            .args(["-level", "debug"])
            .args(extra)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &d.bus)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let mut w = Web {
            port,
            passwords,
            child,
            log,
            _dir: dir,
        };
        wait_for("minimega-web to answer", Duration::from_secs(60), || {
            if let Some(s) = w.child.try_wait().unwrap() {
                panic!("minimega-web exited ({s}):\n{}", w.log_text());
            }
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        w
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Logs in over plain HTTP; the session cookie's value.
    pub fn login(&self, user: &str, pass: &str) -> Option<String> {
        let body = format!("username={user}&password={pass}");
        let (status, head, _) = http(
            self.port,
            "POST",
            "/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        );
        if status != 303 {
            return None;
        }
        head.lines()
            .find_map(|l| l.strip_prefix("set-cookie: mmweb="))
            .map(|v| v.split(';').next().unwrap().to_string())
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- minimega-web log ---\n{}", self.log_text());
        }
    }
}

/// A headless chromium; every call must succeed.
pub struct Browser {
    d: webdriver::Driver,
    /// The test's name: its screenshot on failure is target/tmp/web-NAME.png.
    pub name: String,
    _profile: Scratch,
}

impl Browser {
    pub fn start(name: &str) -> Browser {
        let profile = Scratch::new("chromium");
        let d = webdriver::Driver::start(&profile.path).unwrap();
        Browser {
            d,
            name: name.to_string(),
            _profile: profile,
        }
    }

    pub fn goto(&self, url: &str) {
        self.d.goto(url).unwrap()
    }

    pub fn url(&self) -> String {
        self.d.url().unwrap()
    }

    pub fn js(&self, js: &str, args: Value) -> Value {
        self.d.js(js, args).unwrap()
    }

    pub fn js_async(&self, js: &str, args: Value) -> Value {
        self.d.js_async(js, args).unwrap()
    }

    /// Waits until `js` returns something truthy; returns it.
    pub fn wait(&self, what: &str, limit: Duration, js: &str) -> Value {
        self.d.wait(what, limit, js).unwrap()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        self.d.type_into(css, text).unwrap()
    }

    pub fn click(&self, css: &str) {
        self.d.click(css).unwrap()
    }

    pub fn screenshot(&self) -> Vec<u8> {
        self.d.screenshot().unwrap()
    }

    /// Logs in through the form, as a person does.
    pub fn login(&self, web: &Web, user: &str, pass: &str) {
        self.goto(&web.url("/login"));
        self.type_into("#username", user);
        self.type_into("#password", pass);
        self.click("#submit");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            let path = dir.join(format!("web-{}.png", self.name));
            if let Ok(png) = self.d.screenshot() {
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(&path, png);
                eprintln!("screenshot of the page: {}", path.display());
            }
        }
    }
}
