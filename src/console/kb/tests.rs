use super::*;
use crate::console::rfb::QemuAudio;

fn key(down: bool, keysym: u32) -> Action {
    Action::Key(KeyEvent { down, keysym })
}

fn ptr(buttons: u8, x: u16, y: u16) -> Action {
    Action::Pointer(PointerEvent { buttons, x, y })
}

fn step(line: &str) -> (i64, Action) {
    match parse_line(line) {
        Ok(Line::Step { delay_ns, action }) => (delay_ns, action),
        other => panic!("{line}: {other:?}"),
    }
}

/// The example in the original's documentation (someone clicking, then
/// typing `foo`), byte for byte.
const DOCUMENTED: &str = "178759303:PointerEvent,0,606,44
130044895:PointerEvent,1,606,44
97711488:PointerEvent,0,606,44
578412037:KeyEvent,true,f
8141459:KeyEvent,false,f
111708110:KeyEvent,true,o
10379962:KeyEvent,false,o
69607950:KeyEvent,true,o
102641640:KeyEvent,false,o
436817511:PointerEvent,0,606,43
54109:PointerEvent,0,606,41
4740247:PointerEvent,0,607,38
39063:PointerEvent,0,607,17
";

#[test]
fn the_documented_recording_reads_and_writes_back_byte_for_byte() {
    let entries = parse(DOCUMENTED).unwrap();
    assert_eq!(entries.len(), 13);
    assert_eq!(
        entries[3].line,
        Line::Step {
            delay_ns: 578412037,
            action: key(true, 0x66)
        }
    );
    assert_eq!(entries[3].number, 4);
    assert_eq!(entries[3].text, "578412037:KeyEvent,true,f");
    let written: String = entries
        .iter()
        .map(|e| match &e.line {
            Line::Step { delay_ns, action } => format_line(*delay_ns, action),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(written, DOCUMENTED);
}

#[test]
fn the_recorder_writes_keys_and_the_pointer_only() {
    let ms = Duration::from_millis;
    let msg = ClientMessage::Key(KeyEvent {
        down: true,
        keysym: 0xffe1,
    });
    assert_eq!(
        record_line(ms(5), &msg).as_deref(),
        Some("5000000:KeyEvent,true,Shift_L\n")
    );
    let msg = ClientMessage::Pointer(PointerEvent {
        buttons: 1,
        x: 105,
        y: 205,
    });
    assert_eq!(
        record_line(Duration::ZERO, &msg).as_deref(),
        Some("0:PointerEvent,1,105,205\n")
    );
    let msg = ClientMessage::QemuExtendedKey {
        down: false,
        keysym: 0xff08,
        keycode: 14,
    };
    assert_eq!(
        record_line(ms(1), &msg).as_deref(),
        Some("1000000:KeyEvent,false,BackSpace\n")
    );
    let unnamed = ClientMessage::Key(KeyEvent {
        down: true,
        keysym: 0x100_263a,
    });
    assert_eq!(
        record_line(ms(0), &unnamed).as_deref(),
        Some("0:KeyEvent,true,U+100263A\n")
    );
    for skipped in [
        ClientMessage::CutText(b"x".to_vec()),
        ClientMessage::SetEncodings(vec![0]),
        ClientMessage::QemuAudio(QemuAudio::Enable),
        ClientMessage::FramebufferUpdateRequest {
            incremental: true,
            x: 0,
            y: 0,
            width: 1,
            height: 1,
        },
    ] {
        assert_eq!(record_line(ms(1), &skipped), None);
    }
}

#[test]
fn every_recorded_event_round_trips() {
    let actions = [
        key(false, 0xff08),
        key(true, 0x30),
        key(true, 0x41),
        key(true, 0xffe1),
        key(true, 0x100_263a),
        ptr(0, 100, 200),
        ptr(1, 105, 205),
        ptr(255, 65535, 65535),
    ];
    for a in actions {
        let line = format_line(12345, &a);
        let (delay, back) = step(line.trim_end_matches('\n'));
        assert_eq!((delay, back), (12345, a), "{line}");
    }
}

#[test]
fn hand_written_lines() {
    assert_eq!(
        step("1s:KeyEvent,1,Return"),
        (1_000_000_000, key(true, 0xff0d))
    );
    assert_eq!(
        step("1m30s:KeyEvent,F,a"),
        (90_000_000_000, key(false, 0x61))
    );
    assert_eq!(step("+5:KeyEvent,True,U+0041"), (5, key(true, 0x41)));
    assert_eq!(step("-5:PointerEvent,007,0,0"), (-5, ptr(7, 0, 0)));
    assert_eq!(
        step("0:LoadFile,more/steps.kb"),
        (0, Action::LoadFile("more/steps.kb".into()))
    );
    assert_eq!(step("0:LoadFile,"), (0, Action::LoadFile(String::new())));
    // A colon belongs to the event once the delay is cut off.
    assert_eq!(
        step("0:LoadFile,/tmp/a:b.kb"),
        (0, Action::LoadFile("/tmp/a:b.kb".into()))
    );
}

#[test]
fn comments_blanks_and_line_ends() {
    let text = "#: This is an example of a vnc playback comment\r\n\n  \n# note: anything\n0:KeyEvent,true,a";
    let got: Vec<_> = entries(text).collect();
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[0].as_ref().unwrap().line,
        Line::Comment("#: This is an example of a vnc playback comment".into())
    );
    assert_eq!(got[1].as_ref().unwrap().line, Line::Blank);
    assert_eq!(got[2].as_ref().unwrap().line, Line::Blank);
    assert_eq!(
        got[3].as_ref().unwrap().line,
        Line::Comment("# note: anything".into())
    );
    assert_eq!(got[4].as_ref().unwrap().number, 5);
    assert_eq!(lines("a\n").count(), 1);
    assert_eq!(lines("").count(), 0);
    assert_eq!(lines("\n").count(), 1);
}

#[test]
fn malformed_lines_name_their_line_and_cause() {
    let text = "0:KeyEvent,true,a\n# a comment without a colon\n";
    assert_eq!(
        parse(text),
        Err(KbError {
            line: 2,
            error: EventError::NoDelay
        })
    );
    let cases: &[(&str, EventError)] = &[
        ("0:Nope,1", EventError::UnknownEvent("Nope".into())),
        (
            "0:KeyEvent,true",
            EventError::FieldCount {
                event: "KeyEvent",
                want: 2,
                got: 1,
            },
        ),
        ("0:KeyEvent,yes,a", EventError::Bool("yes".into())),
        (
            "0:KeyEvent,true,nokey",
            EventError::Key(KeysError::UnknownKey("nokey".into())),
        ),
        (
            "0:PointerEvent,256,0,0",
            EventError::Number {
                what: "mask",
                value: "256".into(),
            },
        ),
        (
            "0:PointerEvent,0,-1,0",
            EventError::Number {
                what: "x",
                value: "-1".into(),
            },
        ),
        (
            "0:PointerEvent,0,0,65536",
            EventError::Number {
                what: "y",
                value: "65536".into(),
            },
        ),
        (
            "0:LoadFile,a,b",
            EventError::FieldCount {
                event: "LoadFile",
                want: 1,
                got: 2,
            },
        ),
        (
            "0:WaitForIt,soon,x.png",
            EventError::Timeout(DurationError::Invalid("soon".into())),
        ),
        (
            "later:KeyEvent,true,a",
            EventError::Delay(DurationError::Invalid("later".into())),
        ),
        // The event is read first.
        ("later:Nope", EventError::UnknownEvent("Nope".into())),
    ];
    for (i, (line, want)) in cases.iter().enumerate() {
        let text = format!("#: first\n{line}\n");
        let got = parse(&text).unwrap_err();
        assert_eq!(
            got,
            KbError {
                line: 2,
                error: want.clone()
            },
            "case {i}"
        );
        assert!(got.to_string().starts_with("line 2: "), "{got}");
    }
    // entries() reads on past a bad line, as the original plays on.
    let results: Vec<_> = entries("0:Nope\n0:KeyEvent,true,a\n").collect();
    assert!(results[0].is_err() && results[1].is_ok());
}

/// A 1x1 PNG, base64.
const DOT: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==";

#[test]
fn wait_for_it_takes_base64_or_a_file_name() {
    let (_, a) = step(&format!("1000:WaitForIt,10s,{DOT}"));
    let Action::WaitForIt(w) = &a else {
        panic!("{a:?}")
    };
    assert_eq!(w.timeout(), Duration::from_secs(10));
    assert!(!w.click);
    let Template::Inline { image, .. } = &w.template else {
        panic!("{w:?}")
    };
    assert_eq!(&image[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(w.template.label(), format!("{}...", &DOT[..29]));
    assert_eq!(a.to_string(), format!("WaitForIt,10s,{DOT}"));

    let (_, a) = step("1000:ClickItEvent,1500ms,template.png");
    let Action::WaitForIt(w) = &a else {
        panic!("{a:?}")
    };
    assert!(w.click);
    assert_eq!(w.template, Template::File("template.png".into()));
    assert_eq!(w.template.label(), "template.png");
    assert_eq!(a.to_string(), "ClickItEvent,1.5s,template.png");
    // The documentation's spelling.
    let (_, b) = step("1000:ClickIt,1.5s,template.png");
    assert_eq!(a, b);
    // Unitless timeouts are nanoseconds.
    let (_, a) = step("0:WaitForIt,5000000000,t.png");
    assert_eq!(a.to_string(), "WaitForIt,5s,t.png");
}

#[test]
fn base64_as_go_decodes_it() {
    assert_eq!(decode_base64(""), Some(vec![]));
    assert_eq!(decode_base64("QQ=="), Some(b"A".to_vec()));
    assert_eq!(decode_base64("QUI="), Some(b"AB".to_vec()));
    assert_eq!(decode_base64("QUJD"), Some(b"ABC".to_vec()));
    assert_eq!(decode_base64("QR=="), Some(b"A".to_vec()));
    for bad in [
        "QQ", "QQ=", "Q===", "QQ==QUJD", "QU=D", "a.png", "abc", "ab+/c",
    ] {
        assert_eq!(decode_base64(bad), None, "{bad}");
    }
    // Four letters are base64, so such a file name is not taken as one.
    assert!(matches!(
        parse_action("WaitForIt,1s,abcd"),
        Ok(Action::WaitForIt(WaitForIt {
            template: Template::Inline { .. },
            ..
        }))
    ));
}

#[test]
fn typing_as_the_original_writes_it() {
    assert_eq!(
        typed("a!").unwrap(),
        "0:KeyEvent,true,a\n0:KeyEvent,false,a\n0:KeyEvent,true,Shift_L\n0:KeyEvent,true,exclam\n0:KeyEvent,false,exclam\n0:KeyEvent,false,Shift_L\n"
    );
    assert_eq!(typed("").unwrap(), "");
    assert!(typed("\u{e9}").is_err());
}

#[test]
fn file_duration_as_the_listing_sums_it() {
    assert_eq!(file_duration_ns(DOCUMENTED), 1_729_057_774);
    assert_eq!(file_duration_ns("#:c\n5:KeyEvent,true,a\nnone\n7:x"), 12);
    // Go durations and `#...` comments zero it, as in the original.
    assert_eq!(file_duration_ns("1s:KeyEvent,true,a\n5:x"), 0);
    assert_eq!(file_duration_ns("#note:c\n5:x"), 0);
}

#[test]
fn actions_become_messages() {
    assert_eq!(
        key(true, 0x61).message(),
        Some(ClientMessage::Key(KeyEvent {
            down: true,
            keysym: 0x61
        }))
    );
    assert_eq!(Action::LoadFile("x".into()).message(), None);
}
