use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn every_message() -> Vec<ClientMessage> {
    vec![
        ClientMessage::SetPixelFormat(PixelFormat::RGB888),
        ClientMessage::SetPixelFormat(PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            big_endian: true,
            true_colour: true,
            red_max: 31,
            green_max: 63,
            blue_max: 31,
            red_shift: 11,
            green_shift: 5,
            blue_shift: 0,
        }),
        ClientMessage::SetEncodings(vec![
            encoding::RAW,
            encoding::DESKTOP_SIZE,
            encoding::EXTENDED_CLIPBOARD,
        ]),
        ClientMessage::SetEncodings(vec![]),
        ClientMessage::FramebufferUpdateRequest {
            incremental: true,
            x: 1,
            y: 2,
            width: 800,
            height: 600,
        },
        ClientMessage::Key(KeyEvent {
            down: true,
            keysym: 0xff0d,
        }),
        ClientMessage::Key(KeyEvent {
            down: false,
            keysym: 0x1000_263a,
        }),
        ClientMessage::Pointer(PointerEvent {
            buttons: 5,
            x: 65535,
            y: 3,
        }),
        ClientMessage::CutText(b"hello, world\n".to_vec()),
        ClientMessage::CutText(vec![]),
        ClientMessage::ExtendedClipboard(vec![0x10, 0, 0, 1, 9, 9]),
        ClientMessage::Xvp {
            version: 1,
            action: 4,
        },
        ClientMessage::SetDesktopSize {
            width: 1024,
            height: 768,
            screens: vec![DesktopScreen {
                id: 7,
                x: 0,
                y: 0,
                width: 1024,
                height: 768,
                flags: 0,
            }],
        },
        ClientMessage::QemuExtendedKey {
            down: true,
            keysym: 0x61,
            keycode: 0x1e,
        },
        ClientMessage::QemuAudio(QemuAudio::Enable),
        ClientMessage::QemuAudio(QemuAudio::Disable),
        ClientMessage::QemuAudio(QemuAudio::SetFormat {
            format: 3,
            channels: 2,
            frequency: 44100,
        }),
    ]
}

fn drain(s: &mut ClientStream) -> Vec<ClientMessage> {
    let mut out = Vec::new();
    while let Some(m) = s.next_message().unwrap() {
        out.push(m);
    }
    out
}

#[test]
fn wire_layout_matches_rfc_6143() {
    let key = ClientMessage::Key(KeyEvent {
        down: true,
        keysym: 0x41,
    });
    assert_eq!(key.to_bytes(), [4, 1, 0, 0, 0, 0, 0, 0x41]);
    let ptr = ClientMessage::Pointer(PointerEvent {
        buttons: 1,
        x: 0x102,
        y: 3,
    });
    assert_eq!(ptr.to_bytes(), [5, 1, 1, 2, 0, 3]);
    let req = ClientMessage::FramebufferUpdateRequest {
        incremental: false,
        x: 0,
        y: 0,
        width: 720,
        height: 400,
    };
    assert_eq!(req.to_bytes(), [3, 0, 0, 0, 0, 0, 2, 0xd0, 1, 0x90]);
    let cut = ClientMessage::CutText(b"ab".to_vec());
    assert_eq!(cut.to_bytes(), [6, 0, 0, 0, 0, 0, 0, 2, b'a', b'b']);
    let ext = ClientMessage::ExtendedClipboard(vec![1, 2, 3, 4]);
    assert_eq!(
        ext.to_bytes(),
        [6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 1, 2, 3, 4]
    );
    let mut pf = vec![0, 0, 0, 0];
    pf.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    assert_eq!(
        ClientMessage::SetPixelFormat(PixelFormat::RGB888).to_bytes(),
        pf
    );
    let enc = ClientMessage::SetEncodings(vec![0, -223]);
    assert_eq!(
        enc.to_bytes(),
        [2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21]
    );
}

#[test]
fn every_message_round_trips_whole() {
    for m in every_message() {
        let mut s = ClientStream::messages_only(Limits::default());
        s.push(&m.to_bytes());
        assert_eq!(drain(&mut s), vec![m]);
    }
}

#[test]
fn any_split_of_the_stream_gives_the_same_messages() {
    let msgs = every_message();
    let mut stream = Vec::new();
    for m in &msgs {
        m.encode(&mut stream);
    }
    for cut in 0..=stream.len() {
        let mut s = ClientStream::messages_only(Limits::default());
        s.push(&stream[..cut]);
        let mut got = drain(&mut s);
        s.push(&stream[cut..]);
        got.extend(drain(&mut s));
        assert_eq!(got, msgs, "split at {cut}");
    }
    // One byte at a time.
    let mut s = ClientStream::messages_only(Limits::default());
    let mut got = Vec::new();
    for b in &stream {
        s.push(std::slice::from_ref(b));
        got.extend(drain(&mut s));
    }
    assert_eq!(got, msgs);
}

/// The bytes the original's protocol test decodes (a noVNC session's
/// opening): SetPixelFormat, SetEncodings of 11, two update requests.
#[test]
fn reads_a_captured_client_stream() {
    let b = [
        0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0, 2, 0, 0, 11, 0, 0, 0,
        1, 0, 0, 0, 7, 255, 255, 254, 252, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 0, 255, 255, 255, 33,
        255, 255, 255, 17, 255, 255, 255, 230, 255, 255, 255, 9, 255, 255, 255, 32, 3, 0, 0, 0, 0,
        0, 3, 32, 2, 88, 2, 0, 0, 2, 0, 0, 0, 0, 255, 255, 255, 33,
    ];
    let mut s = ClientStream::messages_only(Limits::default());
    s.push(&b);
    let got = drain(&mut s);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], ClientMessage::SetPixelFormat(PixelFormat::RGB888));
    let ClientMessage::SetEncodings(list) = &got[1] else {
        panic!("{:?}", got[1])
    };
    assert_eq!(list.len(), 11);
    assert_eq!(list[..3], [1, 7, -260]);
    assert_eq!(
        got[2],
        ClientMessage::FramebufferUpdateRequest {
            incremental: false,
            x: 0,
            y: 0,
            width: 800,
            height: 600
        }
    );
    assert_eq!(got[3], ClientMessage::SetEncodings(vec![0, -223]));
}

fn handshake(version: &[u8], security: Option<u8>, auth: bool) -> Vec<u8> {
    let mut v = version.to_vec();
    v.extend(security);
    if auth {
        v.extend_from_slice(&[0xaa; 16]);
    }
    v.push(1); // ClientInit: shared
    v
}

#[test]
fn follows_every_handshake_qemu_accepts() {
    let key = ClientMessage::Key(KeyEvent {
        down: true,
        keysym: 0x61,
    });
    let cases: &[(&[u8], Option<u8>, bool, bool)] = &[
        (b"RFB 003.008\n", Some(security::NONE), false, false),
        (b"RFB 003.008\n", Some(security::VNC_AUTH), true, true),
        (b"RFB 003.007\n", Some(security::NONE), false, false),
        (b"RFB 003.003\n", None, false, false),
        (b"RFB 003.003\n", None, true, true),
        (b"RFB 003.005\n", None, false, false),
    ];
    for &(version, sec, auth, server_auth) in cases {
        let mut bytes = handshake(version, sec, auth);
        key.encode(&mut bytes);
        for cut in 0..=bytes.len() {
            let mut s = ClientStream::new(server_auth, Limits::default());
            s.push(&bytes[..cut]);
            let mut got = drain(&mut s);
            s.push(&bytes[cut..]);
            got.extend(drain(&mut s));
            assert_eq!(got, vec![key.clone()], "{version:?} split at {cut}");
            assert!(!s.in_handshake());
        }
    }
}

#[test]
fn refuses_what_it_cannot_follow_then_stays_stopped() {
    let mut s = ClientStream::new(false, Limits::default());
    s.push(b"RFB 003.006\n");
    assert_eq!(
        s.next_message(),
        Err(RfbError::UnsupportedVersion { major: 3, minor: 6 })
    );
    s.push(&[1, 1]);
    assert_eq!(s.next_message(), Err(RfbError::Stopped));

    let mut s = ClientStream::new(false, Limits::default());
    s.push(b"GET / HTTP/1.1\r\n");
    assert!(matches!(s.next_message(), Err(RfbError::BadVersion(_))));

    // VeNCrypt: TLS follows, which the shim cannot see into.
    let mut s = ClientStream::new(false, Limits::default());
    s.push(b"RFB 003.008\n\x13");
    assert_eq!(s.next_message(), Err(RfbError::UnsupportedSecurity(19)));

    let mut s = ClientStream::messages_only(Limits::default());
    s.push(&[7, 0, 0]);
    let e = s.next_message().unwrap_err();
    assert_eq!(e, RfbError::UnknownClientMessage(7));
    assert!(e.is_fatal());

    let mut s = ClientStream::messages_only(Limits::default());
    s.push(&[255, 9]);
    assert_eq!(s.next_message(), Err(RfbError::UnknownQemuMessage(9)));
}

#[test]
fn oversized_cut_text_is_skipped_without_being_held() {
    let limits = Limits {
        cut_text: 16,
        encodings: 4,
    };
    let big = ClientMessage::CutText(vec![b'x'; 1000]).to_bytes();
    let after = ClientMessage::Pointer(PointerEvent {
        buttons: 0,
        x: 1,
        y: 2,
    });
    let mut s = ClientStream::messages_only(limits);
    s.push(&big[..8]);
    let e = s.next_message().unwrap_err();
    assert_eq!(e, RfbError::CutTextTooLong { len: 1000, max: 16 });
    assert!(!e.is_fatal());
    for chunk in big[8..].chunks(100) {
        s.push(chunk);
        assert_eq!(s.next_message(), Ok(None));
        assert!(s.held() < 64, "held {}", s.held());
    }
    s.push(&after.to_bytes());
    assert_eq!(drain(&mut s), vec![after.clone()]);

    // The skip may also start inside the chunk that carries the header.
    let mut s = ClientStream::messages_only(limits);
    let mut all = big.clone();
    after.encode(&mut all);
    s.push(&all);
    assert!(s.next_message().is_err());
    assert_eq!(drain(&mut s), vec![after.clone()]);

    // A hostile length: i32::MIN has no positive twin.
    let mut s = ClientStream::messages_only(Limits::default());
    s.push(&[6, 0, 0, 0, 0x80, 0, 0, 0]);
    assert_eq!(
        s.next_message(),
        Err(RfbError::CutTextTooLong {
            len: 1 << 31,
            max: MAX_CUT_TEXT
        })
    );

    let many = ClientMessage::SetEncodings(vec![0; 9]).to_bytes();
    let mut s = ClientStream::messages_only(limits);
    s.push(&many);
    s.push(&after.to_bytes());
    assert_eq!(
        s.next_message(),
        Err(RfbError::TooManyEncodings { count: 9, max: 4 })
    );
    assert_eq!(drain(&mut s), vec![after]);
}

#[test]
fn versions() {
    assert_eq!(Version::parse(b"RFB 003.008\n"), Ok(Version::V3_8));
    assert_eq!(Version::V3_3.encode(), *b"RFB 003.003\n");
    assert_eq!(
        Version::parse(b"RFB 003.889\n").unwrap().flow(),
        Err(RfbError::UnsupportedVersion {
            major: 3,
            minor: 889
        })
    );
    assert!(Version::parse(b"RFB 0x3.008\n").is_err());
    let answer = |s: &[u8; 12]| Version::answer(Version::parse(s).unwrap()).unwrap();
    assert_eq!(answer(b"RFB 003.889\n"), Version::V3_8);
    assert_eq!(answer(b"RFB 004.001\n"), Version::V3_8);
    assert_eq!(answer(b"RFB 003.007\n"), Version::V3_7);
    assert_eq!(answer(b"RFB 003.005\n"), Version::V3_3);
}

/// Expected values from `openssl enc -des-ecb -nopad` with the
/// bit-reversed key.
#[test]
fn vnc_auth_response_is_des_with_reversed_key_bits() {
    let challenge: [u8; 16] = std::array::from_fn(|i| i as u8);
    assert_eq!(
        vnc_auth_response(b"password", &challenge).to_vec(),
        hex("b866924125c8eebb9debc1db61c538e2")
    );
    assert_eq!(
        vnc_auth_response(b"abc", &[0; 16]).to_vec(),
        hex("0f3ddf69f786bf5e0f3ddf69f786bf5e")
    );
    // Only the first eight bytes count.
    assert_eq!(
        vnc_auth_response(b"password-longer", &challenge),
        vnc_auth_response(b"password", &challenge)
    );
}

#[test]
fn pixel_formats_decode_to_rgb() {
    let pf = PixelFormat::RGB888;
    assert_eq!(PixelFormat::parse(&pf.encode()), pf);
    // Little-endian 0x00RRGGBB: B, G, R, X in memory.
    assert_eq!(pf.rgb(&[0x30, 0x20, 0x10, 0]), [0x10, 0x20, 0x30]);
    let be = PixelFormat {
        big_endian: true,
        ..pf
    };
    assert_eq!(be.rgb(&[0, 0x10, 0x20, 0x30]), [0x10, 0x20, 0x30]);
    let rgb565 = PixelFormat {
        bits_per_pixel: 16,
        depth: 16,
        big_endian: false,
        true_colour: true,
        red_max: 31,
        green_max: 63,
        blue_max: 31,
        red_shift: 11,
        green_shift: 5,
        blue_shift: 0,
    };
    assert_eq!(rgb565.rgb(&0xffffu16.to_le_bytes()), [255, 255, 255]);
    assert_eq!(rgb565.rgb(&0xf800u16.to_le_bytes()), [255, 0, 0]);
    assert!(rgb565.check_decodable().is_ok());
    let mapped = PixelFormat {
        true_colour: false,
        ..pf
    };
    assert_eq!(mapped.check_decodable(), Err(RfbError::ColourMapped));
    let odd = PixelFormat {
        bits_per_pixel: 24,
        ..pf
    };
    assert_eq!(odd.check_decodable(), Err(RfbError::BitsPerPixel(24)));
}

#[test]
fn server_pieces() {
    let init = ServerInit {
        width: 720,
        height: 400,
        pixel_format: PixelFormat::RGB888,
        name: b"QEMU (vm0)".to_vec(),
    };
    let mut b = Vec::new();
    init.encode(&mut b);
    assert_eq!(b.len(), ServerInit::HEADER_LEN + 10);
    let (head, name_len) = ServerInit::parse_header(b[..24].try_into().unwrap());
    assert_eq!(name_len, 10);
    assert_eq!(head.width, 720);
    assert_eq!(head.pixel_format, PixelFormat::RGB888);

    let r = Rect {
        x: 1,
        y: 2,
        width: 3,
        height: 4,
        encoding: encoding::DESKTOP_SIZE,
    };
    let mut b = Vec::new();
    r.encode(&mut b);
    assert_eq!(Rect::parse(b[..].try_into().unwrap()), r);
    assert_eq!(r.raw_len(4), 48);
    assert_eq!(cursor_data_len(&r, 4), 48 + 4);

    let mut b = Vec::new();
    encode_framebuffer_update(2, &mut b);
    encode_set_colour_map_entries(5, &[[1, 2, 3]], &mut b);
    encode_bell(&mut b);
    encode_server_cut_text(b"hi", &mut b);
    encode_security_types(&[security::NONE, security::VNC_AUTH], &mut b);
    encode_security_result(false, Some("no"), &mut b);
    assert_eq!(
        b,
        [
            0, 0, 0, 2, // update
            1, 0, 0, 5, 0, 1, 0, 1, 0, 2, 0, 3, // colour map
            2, // bell
            3, 0, 0, 0, 0, 0, 0, 2, b'h', b'i', // cut text
            2, 1, 2, // security types
            0, 0, 0, 1, 0, 0, 0, 2, b'n', b'o', // failed, reason
        ]
    );
}

#[test]
fn extended_key_events_carry_a_key_event() {
    let m = ClientMessage::QemuExtendedKey {
        down: false,
        keysym: 0x61,
        keycode: 30,
    };
    assert_eq!(
        m.key_event(),
        Some(KeyEvent {
            down: false,
            keysym: 0x61
        })
    );
    assert_eq!(ClientMessage::CutText(vec![]).key_event(), None);
}
