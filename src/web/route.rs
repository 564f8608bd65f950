//! Which handler a request goes to, and what it takes to reach it.

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The login form (GET) and its submission (POST).
    LoginPage,
    Login,
    Logout,
    /// The app's own pages and files, compiled in.
    Asset(&'static str),
    /// A file of Debian's noVNC (`/novnc/...`) or xterm.js (`/xterm/...`).
    Novnc(String),
    Xterm(String),
    Whoami,
    /// A read-only table: namespaces, hosts, vlans, files, vms, top.
    Table(Table),
    Screenshot(String),
    Download,
    /// POST: vm start/stop/kill/flush, the command console.
    Vm(VmAction),
    Command,
    /// Websockets.
    Events,
    Vnc(String),
    Serial(String),
    NotFound,
    /// The path exists, the method does not.
    Method,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Namespaces,
    Hosts,
    Vlans,
    Files,
    Vms,
    Top,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmAction {
    Start,
    Stop,
    Kill,
    Flush,
}

impl VmAction {
    pub fn verb(self) -> &'static str {
        match self {
            VmAction::Start => "start",
            VmAction::Stop => "stop",
            VmAction::Kill => "kill",
            VmAction::Flush => "flush",
        }
    }
}

/// What a route needs besides being routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The login form, its stylesheet: nothing.
    Public,
    /// A logged-in session.
    Read,
    /// A session, the CSRF token and the same origin (logging out).
    Post,
    /// As Post, and a session that is not read-only.
    Act,
    /// A websocket: a session and the same origin (what it may do inside
    /// depends on read-only).
    Socket,
}

impl Route {
    pub fn access(&self) -> Access {
        match self {
            Route::LoginPage | Route::Login | Route::NotFound | Route::Method => Access::Public,
            Route::Asset(name) if *name == "login.css" => Access::Public,
            Route::Vm(_) | Route::Command => Access::Act,
            Route::Logout => Access::Post,
            Route::Events | Route::Vnc(_) | Route::Serial(_) => Access::Socket,
            _ => Access::Read,
        }
    }
}

/// A path segment decoded from `%XX` (VM names may hold anything but `/`).
pub fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The query's parameters, decoded.
pub fn query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((unescape(k)?, unescape(v)?))
        })
        .collect()
}

pub fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A relative path under a static root, or None if it could leave it.
pub fn safe_rel(path: &str) -> Option<String> {
    let p = unescape(path)?;
    let ok = !p.is_empty()
        && !p.starts_with('/')
        && p.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'));
    ok.then_some(p)
}

const ASSETS: &[(&str, &str)] = &[
    ("/", "index.html"),
    ("/index.html", "index.html"),
    ("/app.js", "app.js"),
    ("/app.css", "app.css"),
    ("/login.css", "login.css"),
    ("/vnc.html", "vnc.html"),
    ("/vnc.js", "vnc.js"),
    ("/serial.html", "serial.html"),
    ("/serial.js", "serial.js"),
];

pub fn route(method: &str, path: &str) -> Route {
    let get = method == "GET" || method == "HEAD";
    let post = method == "POST";
    let want = |r: Route, ok: bool| if ok { r } else { Route::Method };
    if let Some((_, name)) = ASSETS.iter().find(|(p, _)| *p == path) {
        return want(Route::Asset(name), get);
    }
    if let Some(rest) = path.strip_prefix("/novnc/") {
        return match safe_rel(rest) {
            Some(p) => want(Route::Novnc(p), get),
            None => Route::NotFound,
        };
    }
    if let Some(rest) = path.strip_prefix("/xterm/") {
        return match safe_rel(rest) {
            Some(p) => want(Route::Xterm(p), get),
            None => Route::NotFound,
        };
    }
    let name_after = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?;
        (!rest.is_empty() && !rest.contains('/'))
            .then(|| unescape(rest))
            .flatten()
    };
    match path {
        "/login" => {
            return if post {
                Route::Login
            } else if get {
                Route::LoginPage
            } else {
                Route::Method
            }
        }
        "/logout" => return want(Route::Logout, post),
        "/api/whoami" => return want(Route::Whoami, get),
        "/api/namespaces" => return want(Route::Table(Table::Namespaces), get),
        "/api/hosts" => return want(Route::Table(Table::Hosts), get),
        "/api/vlans" => return want(Route::Table(Table::Vlans), get),
        "/api/files" => return want(Route::Table(Table::Files), get),
        "/api/vms" => return want(Route::Table(Table::Vms), get),
        "/api/top" => return want(Route::Table(Table::Top), get),
        "/api/download" => return want(Route::Download, get),
        "/api/vm/start" => return want(Route::Vm(VmAction::Start), post),
        "/api/vm/stop" => return want(Route::Vm(VmAction::Stop), post),
        "/api/vm/kill" => return want(Route::Vm(VmAction::Kill), post),
        "/api/vm/flush" => return want(Route::Vm(VmAction::Flush), post),
        "/api/command" => return want(Route::Command, post),
        "/ws/events" => return want(Route::Events, get),
        _ => {}
    }
    if let Some(n) = name_after("/api/screenshot/") {
        return want(Route::Screenshot(n), get);
    }
    if let Some(n) = name_after("/ws/vnc/") {
        return want(Route::Vnc(n), get);
    }
    if let Some(n) = name_after("/ws/serial/") {
        return want(Route::Serial(n), get);
    }
    Route::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_access() {
        assert_eq!(route("GET", "/"), Route::Asset("index.html"));
        assert_eq!(route("GET", "/login"), Route::LoginPage);
        assert_eq!(route("POST", "/login"), Route::Login);
        assert_eq!(route("GET", "/logout"), Route::Method, "logout is a POST");
        assert_eq!(route("POST", "/api/vm/kill"), Route::Vm(VmAction::Kill));
        assert_eq!(route("GET", "/api/vm/kill"), Route::Method);
        assert_eq!(
            route("GET", "/api/screenshot/a%20b"),
            Route::Screenshot("a b".into())
        );
        assert_eq!(route("GET", "/api/screenshot/"), Route::NotFound);
        assert_eq!(route("GET", "/ws/vnc/vm1"), Route::Vnc("vm1".into()));
        assert_eq!(route("GET", "/ws/serial/vm1"), Route::Serial("vm1".into()));
        assert_eq!(
            route("GET", "/novnc/core/rfb.js"),
            Route::Novnc("core/rfb.js".into())
        );
        assert_eq!(route("GET", "/novnc/../../etc/passwd"), Route::NotFound);
        assert_eq!(route("GET", "/novnc/core/%2e%2e/x"), Route::NotFound);
        assert_eq!(route("GET", "/xterm//etc/passwd"), Route::NotFound);
        assert_eq!(route("GET", "/nothing"), Route::NotFound);

        assert_eq!(route("POST", "/login").access(), Access::Public);
        assert_eq!(route("GET", "/login.css").access(), Access::Public);
        assert_eq!(
            route("GET", "/").access(),
            Access::Read,
            "every page needs a login"
        );
        assert_eq!(route("GET", "/app.js").access(), Access::Read);
        assert_eq!(route("GET", "/api/vms").access(), Access::Read);
        assert_eq!(route("POST", "/api/vm/start").access(), Access::Act);
        assert_eq!(route("POST", "/api/command").access(), Access::Act);
        assert_eq!(route("POST", "/logout").access(), Access::Post);
        assert_eq!(route("GET", "/ws/events").access(), Access::Socket);
        assert_eq!(route("GET", "/ws/vnc/a").access(), Access::Socket);
    }

    #[test]
    fn queries() {
        let q = query("ns=exp%201&size=240&flag&x=a+b");
        assert_eq!(param(&q, "ns"), Some("exp 1"));
        assert_eq!(param(&q, "size"), Some("240"));
        assert_eq!(param(&q, "flag"), Some(""));
        assert_eq!(param(&q, "x"), Some("a b"));
        assert_eq!(param(&q, "y"), None);
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("%4"), None);
    }
}
