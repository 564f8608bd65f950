//! One request: routed ([`route`]), let in or refused by what the route
//! needs ([`Access`]), then answered.

use super::consoles::{self, Input};
use super::State;
use crate::web::passwd::Scope;
use crate::web::route::{self, param, Access, Route, Table as TableKind};
use crate::web::session::{self, Session, COOKIE, CSRF_HEADER};
use crate::web::viewonly::ViewOnly;
use crate::web::{assets, bundle, lines, tables};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

type Resp = Response<Full<Bytes>>;

/// Request bodies larger than this are refused (the biggest is a command).
const MAX_BODY: usize = 1 << 20;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn respond(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(ctype) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; \
             connect-src 'self' ws: wss:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    r
}

fn json_resp(status: StatusCode, v: &impl serde::Serialize) -> Resp {
    let mut r = respond(
        status,
        assets::JSON,
        serde_json::to_vec(v).unwrap_or_default(),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json_resp(status, &json!({ "error": msg }))
}

fn redirect(to: &str) -> Resp {
    let mut r = respond(StatusCode::SEE_OTHER, "text/plain", "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn header_str<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn session_of(state: &State, req: &Request<Incoming>) -> Option<(String, Session)> {
    let token = session::cookie(header_str(req, "cookie")?, COOKIE)?.to_string();
    let s = state
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&token, now())?;
    Some((token, s))
}

pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let r = route::route(req.method().as_str(), req.uri().path());
    let origin_ok = |required: bool| {
        session::same_origin(
            header_str(&req, "origin"),
            header_str(&req, "host"),
            required,
        )
    };
    let sess = session_of(&state, &req);
    let resp = match (r.access(), &sess) {
        (_, _) if r == Route::NotFound => error(StatusCode::NOT_FOUND, "not found"),
        (_, _) if r == Route::Method => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        (Access::Public, _) => public(&state, r, req).await,
        (_, None) => {
            // A person opening a page is sent to the login; anything else
            // is told it needs one.
            if matches!(r, Route::Asset(n) if n.ends_with(".html")) {
                redirect("/login")
            } else {
                error(StatusCode::UNAUTHORIZED, "log in first")
            }
        }
        (Access::Socket, Some(_)) if !origin_ok(true) => {
            error(StatusCode::FORBIDDEN, "cross-origin websocket refused")
        }
        (Access::Post | Access::Act, Some((_, s))) => {
            let csrf = header_str(&req, CSRF_HEADER).unwrap_or("");
            if !origin_ok(false) || !session::same_secret(csrf, &s.csrf) {
                error(StatusCode::FORBIDDEN, "missing or wrong CSRF token")
            } else if r.access() == Access::Act && s.grant.readonly {
                error(StatusCode::FORBIDDEN, "read-only user: no actions")
            } else {
                let (token, s) = sess.clone().expect("matched Some");
                authed(&state, r, req, &token, &s).await
            }
        }
        (_, Some((token, s))) => {
            let (token, s) = (token.clone(), s.clone());
            authed(&state, r, req, &token, &s).await
        }
    };
    Ok(resp)
}

async fn public(state: &State, r: Route, req: Request<Incoming>) -> Resp {
    match r {
        Route::LoginPage => respond(StatusCode::OK, assets::HTML, assets::login_page(None)),
        Route::Login => login(state, req).await,
        Route::Asset(name) => asset(name),
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

fn asset(name: &str) -> Resp {
    match assets::get(name) {
        Some((body, ctype)) => respond(StatusCode::OK, ctype, body),
        None => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn body_bytes(req: Request<Incoming>) -> Result<Bytes, Resp> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(error(StatusCode::PAYLOAD_TOO_LARGE, "request too large")),
    }
}

async fn login(state: &State, req: Request<Incoming>) -> Resp {
    let origin_ok =
        session::same_origin(header_str(&req, "origin"), header_str(&req, "host"), false);
    if !origin_ok {
        return error(StatusCode::FORBIDDEN, "cross-origin login refused");
    }
    let body = match body_bytes(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = route::query(&String::from_utf8_lossy(&body));
    let user = param(&form, "username").unwrap_or("");
    let pass = param(&form, "password").unwrap_or("");
    let (user_c, pass_c) = (user.to_string(), pass.to_string());
    let users = state.users.clone();
    // bcrypt is slow on purpose: off the runtime's threads.
    let grant = tokio::task::spawn_blocking(move || users.check(&user_c, &pass_c))
        .await
        .ok()
        .flatten();
    let Some(grant) = grant else {
        warn!(user, "login refused");
        return respond(
            StatusCode::UNAUTHORIZED,
            assets::HTML,
            assets::login_page(Some("Wrong user name or password.")),
        );
    };
    info!(user, readonly = grant.readonly, "logged in");
    let mut random = [0u8; 64];
    if getrandom::getrandom(&mut random).is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    }
    let token = state
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .create(grant, &random, now());
    let mut r = redirect("/");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&token, state.secure)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// An action's JSON body and the namespace it names (`ns`, else as
/// [`namespace`] picks it).
async fn action_body(
    state: &State,
    s: &Session,
    req: Request<Incoming>,
) -> Result<(Value, String), Resp> {
    let body = body_bytes(req).await?;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let ns = namespace(state, s, v["ns"].as_str()).await?;
    Ok((v, ns))
}

/// The namespace a request is about: its `ns`, else the user's own, else
/// the daemon's active one; refused outside the user's scope.
async fn namespace(state: &State, s: &Session, asked: Option<&str>) -> Result<String, Resp> {
    let ns = match (asked.filter(|n| !n.is_empty()), &s.grant.scope) {
        (Some(n), _) => n.to_string(),
        (None, Scope::Only(n)) => n.clone(),
        (None, Scope::All) => active_namespace(state).await,
    };
    if !s.grant.scope.allows(&ns) {
        return Err(error(
            StatusCode::FORBIDDEN,
            &format!("{} may not see namespace {ns}", s.grant.user),
        ));
    }
    Ok(ns)
}

async fn active_namespace(state: &State) -> String {
    let t = match state.link.exec(".record false namespace").await {
        Ok(r) => tables::merge(&r),
        Err(_) => return "minimega".into(),
    };
    let col = |n: &str| t.columns.iter().position(|c| c == n);
    if let (Some(n), Some(a)) = (col("namespace"), col("active")) {
        if let Some(row) = t.rows.iter().find(|r| r[a] == "true") {
            return row[n].clone();
        }
    }
    "minimega".into()
}

async fn authed(state: &State, r: Route, req: Request<Incoming>, token: &str, s: &Session) -> Resp {
    let q = route::query(req.uri().query().unwrap_or(""));
    let ns_param = param(&q, "ns").map(String::from);
    match r {
        Route::Asset(name) => asset(name),
        Route::Logout => {
            state
                .sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(token);
            let mut r = redirect("/login");
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie("", state.secure)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Route::Whoami => {
            let ns = match namespace(state, s, None).await {
                Ok(n) => n,
                Err(r) => return r,
            };
            json_resp(
                StatusCode::OK,
                &json!({
                    "user": s.grant.user,
                    "readonly": s.grant.readonly,
                    "scope": match &s.grant.scope { Scope::All => Value::Null, Scope::Only(n) => json!(n) },
                    "namespace": ns,
                    "csrf": s.csrf,
                }),
            )
        }
        Route::Table(kind) => {
            let ns = match namespace(state, s, ns_param.as_deref()).await {
                Ok(n) => n,
                Err(r) => return r,
            };
            table(state, s, kind, &ns, param(&q, "path")).await
        }
        Route::Screenshot(vm) => {
            let ns = match namespace(state, s, ns_param.as_deref()).await {
                Ok(n) => n,
                Err(r) => return r,
            };
            screenshot(state, &ns, &vm, param(&q, "size")).await
        }
        Route::Download => {
            let ns = match namespace(state, s, ns_param.as_deref()).await {
                Ok(n) => n,
                Err(r) => return r,
            };
            download(state, &ns, param(&q, "path").unwrap_or("")).await
        }
        Route::Novnc(p) => static_file(&state.novnc.join(p)).await,
        Route::Xterm(p) => xterm(state, &p).await,
        Route::Vm(a) => {
            let (v, ns) = match action_body(state, s, req).await {
                Ok(x) => x,
                Err(r) => return r,
            };
            let names: Vec<String> = v["names"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let lines = match lines::vm_action(a, &ns, &names) {
                Ok(l) => l,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            info!(user = %s.grant.user, ns, action = a.verb(), n = names.len(), "vm action");
            let r = run_lines(state, &lines).await;
            state.hub.kick(&ns);
            r
        }
        Route::Command => {
            let (v, ns) = match action_body(state, s, req).await {
                Ok(x) => x,
                Err(r) => return r,
            };
            let line = match lines::console(&ns, v["command"].as_str().unwrap_or("")) {
                Ok(l) => l,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            info!(user = %s.grant.user, ns, command = v["command"].as_str().unwrap_or(""), "command");
            let r = run_lines(state, &[line]).await;
            state.hub.kick(&ns);
            r
        }
        Route::Events => {
            let ns = match namespace(state, s, ns_param.as_deref()).await {
                Ok(n) => n,
                Err(r) => return r,
            };
            let hub = state.hub.clone();
            upgrade(req, move |mut ws| async move {
                let (first, mut rx) = match hub.subscribe(&ns).await {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = ws
                            .send(Message::Text(
                                json!({"t":"error","error":e}).to_string().into(),
                            ))
                            .await;
                        return;
                    }
                };
                if ws.send(Message::Text(first.into())).await.is_err() {
                    return;
                }
                loop {
                    tokio::select! {
                        m = rx.recv() => match m {
                            Ok(text) => {
                                if ws.send(Message::Text(text.to_string().into())).await.is_err() {
                                    return;
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                // Too far behind for diffs: start over.
                                if let Ok((full, _)) = hub.subscribe(&ns).await {
                                    let _ = ws.send(Message::Text(full.into())).await;
                                }
                            }
                            Err(_) => return,
                        },
                        m = ws.next() => match m {
                            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                            _ => {}
                        },
                    }
                }
            })
        }
        r @ (Route::Vnc(_) | Route::Serial(_)) => {
            let (vm, serial) = match r {
                Route::Serial(vm) => (vm, true),
                Route::Vnc(vm) => (vm, false),
                _ => return error(StatusCode::NOT_FOUND, "not found"),
            };
            let ns = match namespace(state, s, ns_param.as_deref()).await {
                Ok(n) => n,
                Err(r) => return r,
            };
            let port: u64 = param(&q, "port").and_then(|p| p.parse().ok()).unwrap_or(0);
            // Opened before the upgrade, so a VM that is not there is a
            // plain HTTP error the page can show.
            let stream = if serial {
                state.doors.serial(&ns, &vm, port).await
            } else {
                state.doors.vnc(&ns, &vm).await
            };
            let stream = match stream {
                Ok(st) => st,
                Err(e) => return error(StatusCode::NOT_FOUND, &e),
            };
            let input = match (s.grant.readonly, serial) {
                (false, _) => Input::Free,
                (true, false) => Input::ViewOnly(ViewOnly::default()),
                (true, true) => Input::Nothing,
            };
            info!(user = %s.grant.user, ns, vm, serial, readonly = s.grant.readonly, "console");
            upgrade(req, move |ws| consoles::join(ws, stream, input))
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn run_lines(state: &State, lines: &[String]) -> Resp {
    let mut text = String::new();
    let mut errors = Vec::new();
    for l in lines {
        match state.link.exec(l).await {
            Ok(resps) => {
                let (t, e) = tables::text(&resps);
                text.push_str(&t);
                errors.extend(e);
            }
            Err(e) => return error(StatusCode::BAD_GATEWAY, &e),
        }
    }
    json_resp(StatusCode::OK, &json!({ "text": text, "errors": errors }))
}

async fn table(state: &State, s: &Session, kind: TableKind, ns: &str, path: Option<&str>) -> Resp {
    let line = match lines::table(kind, ns, path) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut t = match state.link.exec(&line).await {
        Ok(r) => tables::merge(&r),
        Err(e) => return error(StatusCode::BAD_GATEWAY, &e),
    };
    if kind == TableKind::Namespaces {
        if let (Scope::Only(own), Some(c)) = (
            &s.grant.scope,
            t.columns.iter().position(|c| c == "namespace"),
        ) {
            t.rows.retain(|r| &r[c] == own);
        }
    }
    json_resp(StatusCode::OK, &t)
}

async fn screenshot(state: &State, ns: &str, vm: &str, size: Option<&str>) -> Resp {
    let line = match lines::screenshot(ns, vm, size) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let resps = match state.link.exec(&line).await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_GATEWAY, &e),
    };
    if let Some(png) = tables::data_strings(&resps)
        .first()
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
    {
        let mut r = respond(StatusCode::OK, assets::PNG, png);
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    let why = resps
        .iter()
        .map(|r| r.error.as_str())
        .find(|e| !e.is_empty())
        .unwrap_or("no screenshot");
    error(StatusCode::NOT_FOUND, why)
}

async fn download(state: &State, ns: &str, path: &str) -> Resp {
    let line = match lines::file_stream(ns, path) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let resps = match state.link.exec(&line).await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_GATEWAY, &e),
    };
    if let Some(e) = resps.iter().find(|r| !r.error.is_empty()) {
        return error(StatusCode::NOT_FOUND, &e.error);
    }
    let mut body = Vec::new();
    for d in tables::data_strings(&resps) {
        match base64::engine::general_purpose::STANDARD.decode(d) {
            Ok(b) => body.extend(b),
            Err(_) => return error(StatusCode::BAD_GATEWAY, "file stream: data is not base64"),
        }
    }
    let name = path.rsplit('/').next().unwrap_or("file").replace('"', "");
    let mut r = respond(StatusCode::OK, "application/octet-stream", body);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

async fn static_file(path: &std::path::Path) -> Resp {
    match tokio::fs::read(path).await {
        Ok(b) => respond(
            StatusCode::OK,
            assets::content_type(&path.to_string_lossy()),
            b,
        ),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            &format!("{} is not installed", path.display()),
        ),
    }
}

async fn xterm(state: &State, p: &str) -> Resp {
    if p != "xterm.js" {
        return static_file(&state.xterm.join(p)).await;
    }
    let made = state.xterm_js.get_or_init(|| {
        let packaged = std::fs::read_to_string(state.xterm.join("xterm.js")).unwrap_or_default();
        if bundle::is_browser_bundle(&packaged) && !packaged.is_empty() {
            return Ok(packaged);
        }
        let lib = state.xterm_lib.clone();
        let load = move |rel: &str| std::fs::read_to_string(lib.join(rel)).ok();
        bundle::bundle("public/Terminal.js", "Terminal", "Terminal", &load)
            .map_err(|e| format!("{e} (install node-xterm: Debian 12's libjs-xterm is a stub)"))
    });
    match made {
        Ok(js) => respond(StatusCode::OK, assets::JS, js.clone()),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

/// Answers a websocket handshake and runs `f` on the socket once the
/// connection is handed over.
fn upgrade<F, Fut>(mut req: Request<Incoming>, f: F) -> Resp
where
    F: FnOnce(consoles::Ws) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let is_ws = header_str(&req, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let Some(key) = header_str(&req, "sec-websocket-key").map(|k| derive_accept_key(k.as_bytes()))
    else {
        return error(StatusCode::BAD_REQUEST, "not a websocket request");
    };
    if !is_ws {
        return error(StatusCode::BAD_REQUEST, "not a websocket request");
    }
    // noVNC may ask for the "binary" subprotocol; echo it when asked.
    let binary = header_str(&req, "sec-websocket-protocol")
        .is_some_and(|p| p.split(',').any(|x| x.trim() == "binary"));
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on.await {
            Ok(up) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                f(ws).await;
            }
            Err(e) => debug!("websocket upgrade: {e}"),
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if binary {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("binary"),
        );
    }
    r
}
