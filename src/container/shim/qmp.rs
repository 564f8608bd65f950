//! The QMP subset a container's monitor speaks, as pure code: a request
//! line in, the answer and events out. The daemon drives containers with
//! the same client and the same commands it uses for QEMU, so the shapes
//! follow QEMU's (`{"return": ...}`, `{"error": {"class", "desc"}}`,
//! events with a timestamp).

use serde_json::{json, Value};

/// Whether the payload runs. A container is created frozen, as QEMU with
/// `-S` waits for `cont`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Paused,
}

/// What the monitor must do for a request; the I/O (freezing, killing)
/// is the caller's, which then calls [`Session::done`] with the outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Answer now; nothing to do.
    Reply(Value),
    Freeze,
    Thaw,
    Quit,
}

/// One parsed request: the command and the `id` to echo back.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub command: String,
    pub id: Option<Value>,
}

/// Parses one line of a client. Errors are the answers to send (QEMU
/// answers a malformed request with `GenericError`).
pub fn parse_request(line: &str) -> Result<Request, Value> {
    let v: Value = serde_json::from_str(line.trim())
        .map_err(|e| error(None, "GenericError", &format!("JSON parse error, {e}")))?;
    let id = v.get("id").cloned();
    let Some(obj) = v.as_object() else {
        return Err(error(id, "GenericError", "QMP input must be a JSON object"));
    };
    match obj.get("execute").and_then(Value::as_str) {
        Some(c) => Ok(Request {
            command: c.to_string(),
            id,
        }),
        None => Err(error(
            id,
            "GenericError",
            "QMP input lacks member 'execute'",
        )),
    }
}

pub fn greeting() -> Value {
    json!({"QMP": {
        "version": {"qemu": {"micro": 0, "minor": 0, "major": 0},
                    "package": "minimega container-shim"},
        "capabilities": []
    }})
}

pub fn reply(id: Option<Value>, ret: Value) -> Value {
    let mut v = json!({ "return": ret });
    if let Some(id) = id {
        v["id"] = id;
    }
    v
}

pub fn error(id: Option<Value>, class: &str, desc: &str) -> Value {
    let mut v = json!({"error": {"class": class, "desc": desc}});
    if let Some(id) = id {
        v["id"] = id;
    }
    v
}

/// An event as QEMU sends it; `now` is (seconds, microseconds).
pub fn event(name: &str, now: (u64, u32)) -> Value {
    json!({"event": name, "data": {},
           "timestamp": {"seconds": now.0, "microseconds": now.1}})
}

pub fn status(state: RunState) -> Value {
    match state {
        RunState::Running => json!({"status": "running", "running": true, "singlestep": false}),
        RunState::Paused => json!({"status": "paused", "running": false, "singlestep": false}),
    }
}

/// The state of the container as QMP sees it, shared by all clients in
/// turn (it outlives a connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub state: RunState,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            state: RunState::Paused,
        }
    }
}

impl Session {
    /// What a request asks for. `stop` of a paused container (and `cont`
    /// of a running one) answers at once, as QEMU does, without an event.
    pub fn handle(&self, req: &Request) -> Action {
        match req.command.as_str() {
            "qmp_capabilities" => Action::Reply(reply(req.id.clone(), json!({}))),
            "query-status" => Action::Reply(reply(req.id.clone(), status(self.state))),
            "stop" if self.state == RunState::Paused => {
                Action::Reply(reply(req.id.clone(), json!({})))
            }
            "stop" => Action::Freeze,
            "cont" if self.state == RunState::Running => {
                Action::Reply(reply(req.id.clone(), json!({})))
            }
            "cont" => Action::Thaw,
            "quit" => Action::Quit,
            other => Action::Reply(error(
                req.id.clone(),
                "CommandNotFound",
                &format!("{other}: not supported for containers"),
            )),
        }
    }

    /// The outcome of an action: the lines to send, in order (the answer,
    /// then the event, as QEMU orders them).
    pub fn done(
        &mut self,
        req: &Request,
        action: &Action,
        result: Result<(), String>,
        now: (u64, u32),
    ) -> Vec<Value> {
        if let Err(e) = result {
            return vec![error(req.id.clone(), "GenericError", &e)];
        }
        let ok = reply(req.id.clone(), json!({}));
        match action {
            Action::Reply(v) => vec![v.clone()],
            Action::Freeze => {
                self.state = RunState::Paused;
                vec![ok, event("STOP", now)]
            }
            Action::Thaw => {
                self.state = RunState::Running;
                vec![ok, event("RESUME", now)]
            }
            Action::Quit => vec![ok, event("SHUTDOWN", now)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(line: &str) -> Request {
        parse_request(line).unwrap()
    }

    #[test]
    fn parses_commands_and_ids() {
        let r = req(r#"{"execute":"stop","id":7}"#);
        assert_eq!(r.command, "stop");
        assert_eq!(r.id, Some(json!(7)));
        assert_eq!(req(r#"{"execute":"cont"}"#).id, None);
    }

    #[test]
    fn malformed_lines_get_errors_with_the_id() {
        let e = parse_request("nope").unwrap_err();
        assert_eq!(e["error"]["class"], "GenericError");
        let e = parse_request(r#"{"id":"x"}"#).unwrap_err();
        assert_eq!(e["id"], "x");
        assert!(parse_request("[1]").is_err());
    }

    #[test]
    fn starts_paused_and_cont_resumes_with_event() {
        let mut s = Session::default();
        let q = req(r#"{"execute":"query-status","id":1}"#);
        assert_eq!(
            s.handle(&q),
            Action::Reply(reply(Some(json!(1)), status(RunState::Paused)))
        );
        let c = req(r#"{"execute":"cont","id":2}"#);
        let a = s.handle(&c);
        assert_eq!(a, Action::Thaw);
        let out = s.done(&c, &a, Ok(()), (5, 6));
        assert_eq!(out[0], json!({"return": {}, "id": 2}));
        assert_eq!(out[1]["event"], "RESUME");
        assert_eq!(out[1]["timestamp"]["seconds"], 5);
        assert_eq!(s.state, RunState::Running);
        // Already running: answered at once.
        assert!(matches!(s.handle(&c), Action::Reply(_)));
        let st = req(r#"{"execute":"stop"}"#);
        let a = s.handle(&st);
        assert_eq!(a, Action::Freeze);
        let out = s.done(&st, &a, Ok(()), (0, 0));
        assert_eq!(out[1]["event"], "STOP");
        assert_eq!(s.state, RunState::Paused);
        assert_eq!(status(s.state)["running"], false);
    }

    #[test]
    fn failures_keep_the_state() {
        let mut s = Session::default();
        let c = req(r#"{"execute":"cont","id":"a"}"#);
        let a = s.handle(&c);
        let out = s.done(&c, &a, Err("freezer: busy".into()), (0, 0));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["error"]["desc"], "freezer: busy");
        assert_eq!(out[0]["id"], "a");
        assert_eq!(s.state, RunState::Paused);
    }

    #[test]
    fn unknown_commands_are_not_found() {
        let s = Session::default();
        let r = req(r#"{"execute":"migrate","id":3}"#);
        let Action::Reply(v) = s.handle(&r) else {
            panic!()
        };
        assert_eq!(v["error"]["class"], "CommandNotFound");
        assert_eq!(v["error"]["desc"], "migrate: not supported for containers");
        assert_eq!(v["id"], 3);
    }

    #[test]
    fn quit_answers_then_shutdown() {
        let mut s = Session::default();
        let r = req(r#"{"execute":"quit"}"#);
        let a = s.handle(&r);
        assert_eq!(a, Action::Quit);
        let out = s.done(&r, &a, Ok(()), (0, 0));
        assert_eq!(out[0], json!({"return": {}}));
        assert_eq!(out[1]["event"], "SHUTDOWN");
        assert!(greeting()["QMP"]["capabilities"].is_array());
    }
}
