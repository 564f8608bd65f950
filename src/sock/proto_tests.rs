use super::*;
use crate::command::{Flags, Mode};

fn all(d: &mut Decoder) -> Result<Vec<String>, FrameError> {
    let mut out = Vec::new();
    while let Some(o) = d.next_object()? {
        out.push(String::from_utf8(o).unwrap());
    }
    Ok(out)
}

#[test]
fn objects_back_to_back_and_split_anywhere() {
    let stream = br#"{"Command":"version"}
  {"Command":"echo }{ \"]\" \\"}{"Suggest":"vers","x":[1,{"y":2}]}"#;
    let mut whole = Decoder::new(MAX_REQUEST);
    whole.push(stream);
    let expected = all(&mut whole).unwrap();
    assert_eq!(expected.len(), 3, "{expected:?}");
    assert_eq!(expected[0], r#"{"Command":"version"}"#);
    assert!(!whole.is_partial());
    // Every byte on its own gives the same objects.
    let mut bytewise = Decoder::new(MAX_REQUEST);
    let mut got = Vec::new();
    for b in stream {
        bytewise.push(&[*b]);
        got.extend(all(&mut bytewise).unwrap());
    }
    assert_eq!(got, expected);
}

#[test]
fn partial_object_waits() {
    let mut d = Decoder::new(MAX_REQUEST);
    d.push(br#"{"Command": "ver"#);
    assert_eq!(d.next_object(), Ok(None));
    assert!(d.is_partial());
    d.push(br#"sion"}"#);
    assert_eq!(
        d.next_object().unwrap().unwrap(),
        br#"{"Command": "version"}"#
    );
    assert!(!d.is_partial());
}

#[test]
fn garbage_is_an_error_that_sticks() {
    let mut d = Decoder::new(MAX_REQUEST);
    d.push(b"hello\n{\"Command\":\"version\"}");
    let e = d.next_object().unwrap_err();
    assert_eq!(
        e.to_string(),
        "expected a JSON object such as {\"Command\": \"version\"}, found `hello`"
    );
    assert_eq!(d.next_object().unwrap_err(), e);
    let mut d = Decoder::new(MAX_REQUEST);
    d.push(&[0xff, 0x00]);
    assert!(matches!(
        d.next_object(),
        Err(FrameError::NotAnObject { .. })
    ));
    let mut d = Decoder::new(MAX_REQUEST);
    d.push(b"\x00");
    assert_eq!(
        d.next_object().unwrap_err().to_string(),
        "expected a JSON object such as {\"Command\": \"version\"}, found byte 0x00"
    );
    // Mismatched brackets end an object all the same; the JSON parser
    // then refuses it, and what follows is garbage.
    let mut d = Decoder::new(MAX_REQUEST);
    d.push(b"{]]");
    let o = d.next_object().unwrap().unwrap();
    assert!(matches!(parse_request(&o), Err(RequestError::Json(_))));
    assert!(matches!(
        d.next_object(),
        Err(FrameError::NotAnObject { .. })
    ));
}

#[test]
fn oversized_object_is_refused_before_it_ends() {
    let mut d = Decoder::new(64);
    d.push(b"{\"Command\": \"");
    d.push(&[b'a'; 100]);
    assert_eq!(d.next_object(), Err(FrameError::TooLarge { limit: 64 }));
    // An object of exactly the limit passes.
    let mut d = Decoder::new(20);
    let obj = br#"{"Command":"abcdef"}"#;
    assert_eq!(obj.len(), 20);
    d.push(obj);
    assert_eq!(d.next_object().unwrap().unwrap(), obj);
    // Whitespace between objects does not count, nor pile up.
    let mut d = Decoder::new(20);
    for _ in 0..100 {
        d.push(&[b' '; 50]);
        assert_eq!(d.next_object(), Ok(None));
    }
    assert!(!d.is_partial());
}

#[test]
fn requests() {
    let p = |s: &str| parse_request(s.as_bytes());
    assert_eq!(
        p(r#"{"Command":"vm info","Suggest":"","PlumbPipe":""}"#),
        Ok(Request::Command("vm info".into()))
    );
    assert_eq!(
        p(r#"{"command":"version","extra":1}"#),
        Ok(Request::Command("version".into()))
    );
    assert_eq!(
        p(r#"{"Suggest":"vm la","Command":null}"#),
        Ok(Request::Suggest("vm la".into()))
    );
    assert_eq!(
        p(r#"{"PlumbPipe":"p"}"#),
        Ok(Request::PlumbPipe("p".into()))
    );
    assert_eq!(p(r#"{}"#), Err(RequestError::Neither));
    assert_eq!(
        p(r#"{"Command":"a","Suggest":"b"}"#),
        Err(RequestError::Neither)
    );
    assert_eq!(
        p(r#"{"Command":5}"#).unwrap_err().to_string(),
        "`Command` must be a string"
    );
    assert!(matches!(
        p(r#"{"Command":"x",}"#),
        Err(RequestError::Json(_))
    ));
    assert!(matches!(
        parse_request(b"{\"Command\":\"\xff\"}"),
        Err(RequestError::Json(_))
    ));
}

#[test]
fn request_encoding_is_the_go_clients() {
    let r = encode_request(&Request::Command("vm info".into()));
    assert_eq!(
        String::from_utf8(r).unwrap(),
        "{\"Command\":\"vm info\",\"PlumbPipe\":\"\",\"Suggest\":\"\"}\n"
    );
    let r = encode_request(&Request::Suggest("ver".into()));
    assert_eq!(parse_request(&r).unwrap(), Request::Suggest("ver".into()));
}

fn table_group(flags: Flags) -> Group {
    Group {
        responses: vec![Response {
            host: "n1".into(),
            header: vec!["name".into(), "state".into()],
            tabular: vec![vec!["a".into(), "RUNNING".into()]],
            ..Default::default()
        }],
        flags,
    }
}

#[test]
fn replies_carry_minimegas_fields() {
    let r = Reply::from_group(&table_group(Flags::default()), false);
    let v: serde_json::Value = serde_json::from_slice(&r.encode()).unwrap();
    let text = String::from_utf8(r.encode()).unwrap();
    let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
    assert!(text.starts_with("{\"Resp\":[{\"Host\":\"n1\""), "{text}");
    assert!(at("Resp") < at("Rendered") && at("Rendered") < at("More"));
    assert!(at("More") < at("Status"), "{text}");
    assert_eq!(v.as_object().unwrap().len(), 4, "{text}");
    assert_eq!(v["Resp"][0]["Host"], "n1");
    assert_eq!(v["Resp"][0]["Header"][1], "state");
    assert_eq!(v["Resp"][0]["Tabular"][0][1], "RUNNING");
    assert_eq!(v["Resp"][0]["Error"], "");
    assert_eq!(v["Resp"][0]["Response"], "");
    assert!(v["Resp"][0]["Data"].is_null());
    assert_eq!(v["Rendered"], "host | name | state\nn1   | a    | RUNNING");
    assert_eq!(v["More"], false);
    assert!(r.encode().ends_with(b"}\n"));
    assert_eq!(r.text(), r.rendered);
}

#[test]
fn rendered_follows_the_session_flags() {
    let flags = Flags {
        annotate: false,
        headers: false,
        ..Flags::default()
    };
    let r = Reply::from_group(&table_group(flags), false);
    assert_eq!(r.rendered, "a    | RUNNING");
    let flags = Flags {
        mode: Mode::Json,
        ..Flags::default()
    };
    let r = Reply::from_group(&table_group(flags), false);
    let v: serde_json::Value = serde_json::from_str(&r.rendered).unwrap();
    assert_eq!(v[0]["Tabular"][0][0], "a");
}

#[test]
fn errors_are_in_resp_not_in_rendered() {
    let g = Group {
        responses: vec![Response::error("n1", "no such vm: foo")],
        flags: Flags::default(),
    };
    let r = Reply::from_group(&g, false);
    assert_eq!(r.rendered, "");
    assert!(r.has_error());
    assert_eq!(r.text(), "E: no such vm: foo");
    let v: serde_json::Value = serde_json::from_slice(&r.encode()).unwrap();
    assert_eq!(v["Resp"][0]["Error"], "no such vm: foo");
    assert!(v["Resp"][0]["Header"].is_null());
    let e = Reply::error("n1", "must specify either command or suggest");
    assert_eq!(e.rendered, "");
    assert_eq!(
        e.resp.as_ref().unwrap()[0].error,
        "must specify either command or suggest"
    );
}

#[test]
fn one_object_per_group_more_until_the_last() {
    let g = table_group(Flags::default());
    let rs = command_replies(&[g.clone(), g.clone(), g]);
    let more: Vec<bool> = rs.iter().map(|r| r.more).collect();
    assert_eq!(more, [true, true, false]);
    let none = command_replies(&[]);
    assert_eq!(none.len(), 1);
    let v: serde_json::Value = serde_json::from_slice(&none[0].encode()).unwrap();
    assert!(v["Resp"].is_null());
    assert_eq!(v["Rendered"], "");
    assert_eq!(v["More"], false);
}

#[test]
fn suggestions_and_round_trip() {
    let r = Reply::suggestions(vec!["version".into()]);
    let bytes = r.encode();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["Suggest"][0], "version");
    assert!(v["Resp"].is_null());
    let back: Reply = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(back, r);
    // No suggestions: the field is left out, as Go's omitempty does.
    let v: serde_json::Value =
        serde_json::from_slice(&Reply::suggestions(vec![]).encode()).unwrap();
    assert!(v.get("Suggest").is_none());
}
