//! The console's own pages, scripts and styles, compiled into the binary
//! (plain JavaScript, no build step). noVNC and xterm.js are not here:
//! they come from Debian's packages at run time.

/// The file and its content type, by name.
pub fn get(name: &str) -> Option<(&'static str, &'static str)> {
    let found = match name {
        "index.html" => (include_str!("assets/index.html"), HTML),
        "login.html" => (include_str!("assets/login.html"), HTML),
        "vnc.html" => (include_str!("assets/vnc.html"), HTML),
        "serial.html" => (include_str!("assets/serial.html"), HTML),
        "app.js" => (include_str!("assets/app.js"), JS),
        "vnc.js" => (include_str!("assets/vnc.js"), JS),
        "serial.js" => (include_str!("assets/serial.js"), JS),
        "app.css" => (include_str!("assets/app.css"), CSS),
        "login.css" => (include_str!("assets/login.css"), CSS),
        _ => return None,
    };
    Some(found)
}

pub const HTML: &str = "text/html; charset=utf-8";
pub const JS: &str = "text/javascript; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";
pub const JSON: &str = "application/json";
pub const PNG: &str = "image/png";

/// The content type of a file served from a Debian package, by its name.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "js" | "mjs" => JS,
        "css" => CSS,
        "html" => HTML,
        "json" => JSON,
        "png" => PNG,
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        _ => "application/octet-stream",
    }
}

/// The login page, with an error line when the last try failed.
pub fn login_page(error: Option<&str>) -> String {
    let msg = error
        .map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", escape(e)))
        .unwrap_or_default();
    include_str!("assets/login.html").replace("<!--ERROR-->", &msg)
}

/// Text made safe inside HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_there() {
        for n in [
            "index.html",
            "login.html",
            "vnc.html",
            "serial.html",
            "app.js",
            "vnc.js",
            "serial.js",
            "app.css",
            "login.css",
        ] {
            assert!(get(n).is_some(), "{n}");
        }
        assert!(get("../Cargo.toml").is_none());
        let p = login_page(Some("<bad>"));
        assert!(p.contains("&lt;bad&gt;") && !p.contains("<bad>"));
        assert!(!login_page(None).contains("login-error"));
        assert_eq!(content_type("core/rfb.js"), JS);
    }
}
