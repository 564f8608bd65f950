//! xterm.js for the browser, from Debian's own files. Debian 12's
//! `libjs-xterm` ships `/usr/share/javascript/xterm/xterm.js` as a stub
//! that `require`s modules it does not ship (its rollup build went wrong);
//! the modules themselves are in `node-xterm` (`/usr/share/nodejs/xterm/
//! lib`, CommonJS). This joins the modules an entry reaches into one
//! script that defines `window.Terminal`, the way a bundler would, at run
//! time and from the installed files: nothing of xterm.js is vendored, and
//! a fixed `libjs-xterm` (a real bundle) is served as it is instead.

use std::collections::{BTreeMap, VecDeque};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum BundleError {
    #[error("xterm.js module {0} is missing")]
    Missing(String),
    #[error("xterm.js module {module} requires {name}, which is not there")]
    Unresolved { module: String, name: String },
}

/// Whether a browser script stands on its own (no CommonJS `require`).
pub fn is_browser_bundle(js: &str) -> bool {
    js.len() > 10_000 || !js.contains("require(")
}

/// The relative `require("./x")` names a module uses.
fn requires(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("require(") {
        rest = &rest[i + "require(".len()..];
        let q = match rest.chars().next() {
            Some(c @ ('"' | '\'')) => c,
            _ => continue,
        };
        if let Some(end) = rest[1..].find(q) {
            let name = &rest[1..1 + end];
            if name.starts_with('.') {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// `name` required from module `from` (both relative to the lib root).
fn join(from: &str, name: &str) -> String {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for seg in name.split('/') {
        match seg {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// One script holding `entry` and every module it reaches; it sets
/// `window[global]` to the entry's export `export`.
pub fn bundle(
    entry: &str,
    global: &str,
    export: &str,
    load: &dyn Fn(&str) -> Option<String>,
) -> Result<String, BundleError> {
    let mut modules: BTreeMap<String, (String, BTreeMap<String, String>)> = BTreeMap::new();
    let mut queue = VecDeque::from([entry.to_string()]);
    let src = load(entry).ok_or_else(|| BundleError::Missing(entry.into()))?;
    let mut pending = BTreeMap::from([(entry.to_string(), src)]);
    while let Some(path) = queue.pop_front() {
        if modules.contains_key(&path) {
            continue;
        }
        let Some(src) = pending.remove(&path) else {
            continue;
        };
        let mut map = BTreeMap::new();
        for name in requires(&src) {
            let base = join(&path, &name);
            let found = [
                format!("{base}.js"),
                format!("{base}/index.js"),
                base.clone(),
            ]
            .into_iter()
            .filter(|c| c.ends_with(".js"))
            .find_map(|c| {
                if modules.contains_key(&c) || pending.contains_key(&c) {
                    return Some(c);
                }
                let s = load(&c)?;
                pending.insert(c.clone(), s);
                Some(c)
            })
            .ok_or_else(|| BundleError::Unresolved {
                module: path.clone(),
                name: name.clone(),
            })?;
            queue.push_back(found.clone());
            map.insert(name, found);
        }
        modules.insert(path, (src, map));
    }
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = String::from("(function () {\n\"use strict\";\nvar defs = {};\n");
    for (path, (src, map)) in &modules {
        let map_js = serde_json::to_string(map).unwrap_or_else(|_| "{}".into());
        out.push_str(&format!(
            "defs[{}] = [{}, function (require, module, exports) {{\n{}\n}}];\n",
            q(path),
            map_js,
            src
        ));
    }
    out.push_str(&format!(
        "var cache = {{}};\n\
         function load(p) {{\n\
         \x20 if (cache[p]) return cache[p].exports;\n\
         \x20 var m = {{ exports: {{}} }};\n\
         \x20 cache[p] = m;\n\
         \x20 var d = defs[p];\n\
         \x20 d[1].call(m.exports, function (n) {{ return load(d[0][n]); }}, m, m.exports);\n\
         \x20 return m.exports;\n\
         }}\n\
         window[{}] = load({})[{}];\n\
         }})();\n",
        q(global),
        q(entry),
        q(export)
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_what_the_entry_reaches() {
        let files = BTreeMap::from([
            (
                "public/T.js",
                "var a = require(\"../A\"); exports.T = a.x + 1;",
            ),
            ("A.js", "var u = require('./u'); exports.x = u.y;"),
            (
                "u/index.js",
                "exports.y = 41; var again = require(\"../A\");",
            ),
            ("unused.js", "exports.z = 0;"),
        ]);
        let load = |p: &str| files.get(p).map(|s| s.to_string());
        let js = bundle("public/T.js", "Terminal", "T", &load).unwrap();
        assert!(
            js.contains("defs[\"u/index.js\"] = [{\"../A\":\"A.js\"}"),
            "{js}"
        );
        assert!(js.contains("window[\"Terminal\"] = load(\"public/T.js\")[\"T\"]"));
        assert!(!js.contains("unused"));
        let missing = BTreeMap::from([("e.js", "require('./gone')")]);
        let load = |p: &str| missing.get(p).map(|s| s.to_string());
        assert_eq!(
            bundle("e.js", "X", "X", &load).unwrap_err(),
            BundleError::Unresolved {
                module: "e.js".into(),
                name: "./gone".into()
            }
        );
        assert!(!is_browser_bundle(
            "module.exports = require(\"./public/Terminal\")"
        ));
        assert!(is_browser_bundle("window.Terminal = function () {}"));
    }

    #[test]
    fn debian_node_xterm_bundles_when_installed() {
        let root = std::path::Path::new("/usr/share/nodejs/xterm/lib");
        assert!(root.exists(), "install node-xterm (scripts/deps.sh)");
        let load = |p: &str| std::fs::read_to_string(root.join(p)).ok();
        let js = bundle("public/Terminal.js", "Terminal", "Terminal", &load).unwrap();
        assert!(js.len() > 100_000, "{}", js.len());
        assert!(js.contains("defs[\"Terminal.js\"]"));
    }
}
