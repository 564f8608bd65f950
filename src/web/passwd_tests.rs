use super::*;

/// The classic bcrypt vector (`U*U`, cost 5), as miniweb stores it.
const VECTOR: &str = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn reads_miniweb_files() {
    let text = format!(
        r#"[
	{{"path": "/", "username": "admin", "password": "{}"}},
	{{"path": "/exp1/", "username": "alice", "password": "{}", "readonly": true}}
]"#,
        b64(VECTOR),
        b64(VECTOR)
    );
    let users = Users::parse(&text).unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(
        users.check("admin", "U*U"),
        Some(Grant {
            user: "admin".into(),
            readonly: false,
            scope: Scope::All
        })
    );
    assert_eq!(users.check("admin", "wrong"), None);
    assert_eq!(users.check("nobody", "U*U"), None);
    let alice = users.check("alice", "U*U").unwrap();
    assert!(alice.readonly);
    assert_eq!(alice.scope, Scope::Only("exp1".into()));
    assert!(alice.scope.allows("exp1") && !alice.scope.allows("exp2"));
}

#[test]
fn refuses_what_would_let_nobody_or_anybody_in() {
    assert_eq!(Users::parse("[]").unwrap_err(), PasswdError::Empty);
    assert!(matches!(Users::parse("{}"), Err(PasswdError::Json(_))));
    let plain = r#"[{"path":"/","username":"a","password":"secret"}]"#;
    assert_eq!(
        Users::parse(plain).unwrap_err().to_string(),
        "entry 0 (a): the password is not base64 of a bcrypt hash"
    );
    let nouser = format!(
        r#"[{{"path":"/","username":"","password":"{}"}}]"#,
        b64(VECTOR)
    );
    assert_eq!(
        Users::parse(&nouser).unwrap_err(),
        PasswdError::NoUser { index: 0 }
    );
    let badpath = format!(
        r#"[{{"path":"vms","username":"a","password":"{}"}}]"#,
        b64(VECTOR)
    );
    assert!(matches!(
        Users::parse(&badpath),
        Err(PasswdError::Path { .. })
    ));
}

#[test]
fn written_entries_read_back() {
    let e = entry("bob", "pw", true, Some("exp"), 4).unwrap();
    assert_eq!(e.path, "/exp/");
    let text = upsert("", e).unwrap();
    let again = upsert(&text, entry("bob", "pw2", true, Some("exp"), 4).unwrap()).unwrap();
    let again = upsert(&again, entry("carol", "x", false, None, 4).unwrap()).unwrap();
    let users = Users::parse(&again).unwrap();
    assert_eq!(users.len(), 2, "bob's entry was replaced: {again}");
    assert_eq!(users.check("bob", "pw"), None);
    let bob = users.check("bob", "pw2").unwrap();
    assert!(bob.readonly);
    assert_eq!(bob.scope, Scope::Only("exp".into()));
    assert_eq!(users.check("carol", "x").unwrap().scope, Scope::All);
    assert!(!again.contains("\"readonly\": false"), "{again}");
}
