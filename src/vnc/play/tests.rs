use super::*;
use crate::console::screen::Screen;

fn png(w: u16, h: u16) -> Vec<u8> {
    let mut s = Screen::new(w, h);
    s.set_pixel(1, 1, [255, 0, 0]);
    s.to_png().unwrap()
}

fn base64(bytes: &[u8]) -> String {
    crate::vm::screenshot::base64(bytes)
}

#[test]
fn a_file_is_read_whole_with_its_templates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.png"), png(4, 3)).unwrap();
    let text = format!(
        "#: hello\n\n100:KeyEvent,true,a\n200:KeyEvent,false,a\n0:WaitForIt,1s,{}\n0:ClickItEvent,2s,t.png\n5:LoadFile,other.kb\n",
        base64(&png(2, 2))
    );
    let path = dir.path().join("s.kb");
    std::fs::write(&path, text).unwrap();
    let s = Script::load(&path).unwrap();
    assert_eq!(s.name, path.display().to_string());
    assert_eq!(s.dir.as_deref(), Some(dir.path()));
    assert_eq!(s.steps.len(), 6, "the blank line is no step");
    assert!(matches!(&s.steps[0], Step::Comment(c) if c == "#: hello"));
    let templates: Vec<(usize, usize)> = s
        .steps
        .iter()
        .filter_map(|st| match st {
            Step::Do {
                template: Some(t), ..
            } => Some((t.width(), t.height())),
            _ => None,
        })
        .collect();
    assert_eq!(templates, [(2, 2), (4, 3)], "inline, then beside the file");
    assert_eq!(s.duration_ns, 305);
    match &s.steps[1] {
        Step::Do { text, delay_ns, .. } => {
            assert_eq!((text.as_str(), *delay_ns), ("100:KeyEvent,true,a", 100))
        }
        _ => panic!("a step"),
    }
}

#[test]
fn a_malformed_line_is_named_by_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.kb");
    std::fs::write(&path, "0:KeyEvent,true,a\n#: ok\n10:KeyEvent,maybe,a\n").unwrap();
    let e = Script::load(&path).err().unwrap().to_string();
    assert_eq!(
        e,
        format!(
            "{}: line 3: invalid KeyEvent: `maybe` is not true or false",
            path.display()
        )
    );
    std::fs::write(&path, "0:KeyEvent,true,a\n0:WaitForIt,1s,gone.png\n").unwrap();
    let e = Script::load(&path).err().unwrap().to_string();
    assert!(
        e.starts_with(&format!("{}: line 2: WaitForIt template: ", path.display()))
            && e.contains("gone.png"),
        "{e}"
    );
    let e = Script::load(&dir.path().join("nothing.kb")).err().unwrap();
    assert!(e.to_string().contains("nothing.kb: No such file"), "{e}");
}

#[test]
fn typed_text_presses_return_for_a_newline() {
    let s = Script::typed("A\n").unwrap();
    let keys: Vec<(bool, u32)> = s
        .steps
        .iter()
        .map(|st| match st {
            Step::Do {
                action: Action::Key(k),
                delay_ns: 0,
                ..
            } => (k.down, k.keysym),
            _ => panic!("only keys, at once"),
        })
        .collect();
    assert_eq!(
        keys,
        [
            (true, keys::SHIFT_L),
            (true, 'A' as u32),
            (false, 'A' as u32),
            (false, keys::SHIFT_L),
            (true, RETURN),
            (false, RETURN),
        ]
    );
    assert_eq!(s.name, "N/A");
    let e = Script::typed("é").err().unwrap().to_string();
    assert!(e.starts_with("vnc type: "), "{e}");
}
