//! The password file: miniweb's format, so a site's existing file keeps
//! working. A JSON array of entries `{"path", "username", "password"}`,
//! the password a bcrypt hash stored as Go stores a `[]byte` (base64 of
//! the `$2a$...` text). Two readings of our own on top:
//!
//! - `path` is miniweb's URL prefix: `/` opens every namespace, `/NS` (or
//!   `/NS/...`) only namespace NS, as miniweb's `/<ns>/...` URLs did.
//! - an optional `"readonly": true` makes a viewer: tables, screens and
//!   consoles to watch, no action, no keystroke.

use base64::Engine;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum PasswdError {
    #[error("the password file is not miniweb's JSON list of entries: {0}")]
    Json(String),
    #[error("entry {index} ({user}): the password is not base64 of a bcrypt hash")]
    Hash { index: usize, user: String },
    #[error("entry {index}: empty username")]
    NoUser { index: usize },
    #[error("entry {index} ({user}): the path must start with /")]
    Path { index: usize, user: String },
    #[error("the password file has no entries: nobody could log in")]
    Empty,
    #[error("cannot hash the password: {0}")]
    Bcrypt(String),
}

/// One line of the file, as miniweb writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub path: String,
    pub username: String,
    /// Base64 of the bcrypt text (Go's `[]byte` in JSON).
    pub password: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
}

/// Which namespaces a user may see and act in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Only(String),
}

impl Scope {
    fn of_path(path: &str) -> Scope {
        match path.trim_matches('/').split('/').next().unwrap_or("") {
            "" => Scope::All,
            ns => Scope::Only(ns.to_string()),
        }
    }

    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(ns) => ns == namespace,
        }
    }
}

/// What a successful login grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub user: String,
    pub readonly: bool,
    pub scope: Scope,
}

/// The parsed file.
#[derive(Debug, Clone)]
pub struct Users {
    entries: Vec<(Entry, String)>,
}

impl Users {
    pub fn parse(text: &str) -> Result<Users, PasswdError> {
        let list: Vec<Entry> =
            serde_json::from_str(text).map_err(|e| PasswdError::Json(e.to_string()))?;
        if list.is_empty() {
            return Err(PasswdError::Empty);
        }
        let mut entries = Vec::new();
        for (index, e) in list.into_iter().enumerate() {
            if e.username.is_empty() {
                return Err(PasswdError::NoUser { index });
            }
            if !e.path.is_empty() && !e.path.starts_with('/') {
                return Err(PasswdError::Path {
                    index,
                    user: e.username,
                });
            }
            let hash = base64::engine::general_purpose::STANDARD
                .decode(e.password.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|h| h.starts_with("$2"))
                .ok_or_else(|| PasswdError::Hash {
                    index,
                    user: e.username.clone(),
                })?;
            entries.push((e, hash));
        }
        Ok(Users { entries })
    }

    /// The grant of the first entry of `user` whose password matches. Every
    /// entry is tried, so one name may hold a viewer's and an operator's
    /// password, as miniweb allowed one name per path.
    pub fn check(&self, user: &str, password: &str) -> Option<Grant> {
        self.entries
            .iter()
            .filter(|(e, _)| e.username == user)
            .find(|(_, hash)| bcrypt::verify(password, hash).unwrap_or(false))
            .map(|(e, _)| Grant {
                user: e.username.clone(),
                readonly: e.readonly,
                scope: Scope::of_path(if e.path.is_empty() { "/" } else { &e.path }),
            })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An entry for `minimega-web passwd`, hashed at `cost`.
pub fn entry(
    user: &str,
    password: &str,
    readonly: bool,
    namespace: Option<&str>,
    cost: u32,
) -> Result<Entry, PasswdError> {
    if user.is_empty() {
        return Err(PasswdError::NoUser { index: 0 });
    }
    let hash = bcrypt::hash(password, cost).map_err(|e| PasswdError::Bcrypt(e.to_string()))?;
    Ok(Entry {
        path: match namespace {
            Some(ns) => format!("/{ns}/"),
            None => "/".into(),
        },
        username: user.into(),
        password: base64::engine::general_purpose::STANDARD.encode(hash),
        readonly,
    })
}

/// The file with `new` added, replacing an entry of the same user and path.
pub fn upsert(text: &str, new: Entry) -> Result<String, PasswdError> {
    let mut list: Vec<Entry> = if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(text).map_err(|e| PasswdError::Json(e.to_string()))?
    };
    list.retain(|e| !(e.username == new.username && e.path == new.path));
    list.push(new);
    let mut out =
        serde_json::to_string_pretty(&list).map_err(|e| PasswdError::Json(e.to_string()))?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
#[path = "passwd_tests.rs"]
mod tests;
