//! The client against a tiny in-process RFB server speaking Raw, and
//! (ignored by default) against QEMU.

use super::*;
use crate::console::rfb::{ClientStream, Limits};
use tokio::io::{duplex, DuplexStream};

const CHALLENGE: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// `password` against CHALLENGE, from `openssl enc -des-ecb` (see rfb's tests).
const PASSWORD_RESPONSE: [u8; 16] = [
    0xb8, 0x66, 0x92, 0x41, 0x25, 0xc8, 0xee, 0xbb, 0x9d, 0xeb, 0xc1, 0xdb, 0x61, 0xc5, 0x38, 0xe2,
];

#[derive(Clone)]
struct Fake {
    version: Version,
    /// Security types offered (3.3: the first is the one used); empty
    /// refuses the connection.
    security: Vec<u8>,
    screen: Screen,
    format: PixelFormat,
    name: Vec<u8>,
    /// Sent before each update.
    extras: Vec<u8>,
    /// Rectangles of each update; None: one Raw rectangle as asked.
    rects: Option<Vec<(Rect, Vec<u8>)>>,
}

impl Fake {
    fn new(screen: Screen) -> Fake {
        Fake {
            version: Version::V3_8,
            security: vec![security::NONE],
            screen,
            format: PixelFormat::RGB888,
            name: b"QEMU (vm0)".to_vec(),
            extras: Vec::new(),
            rects: None,
        }
    }
}

/// What the fake server saw: the messages it acted on, and every byte the
/// client sent (to run through the shim's parser afterwards).
struct Seen {
    messages: Vec<ClientMessage>,
    bytes: Vec<u8>,
}

struct Logged {
    s: DuplexStream,
    bytes: Vec<u8>,
}

impl Logged {
    async fn read(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut b = vec![0; n];
        self.s.read_exact(&mut b).await?;
        self.bytes.extend_from_slice(&b);
        Ok(b)
    }
}

/// Pixels in a client's chosen format (true colour, 8/16/32 bits).
fn encode_pixel(pf: &PixelFormat, [r, g, b]: [u8; 3], out: &mut Vec<u8>) {
    let scale = |v: u8, max: u16| (u32::from(v) * u32::from(max) + 127) / 255;
    let v = scale(r, pf.red_max) << pf.red_shift
        | scale(g, pf.green_max) << pf.green_shift
        | scale(b, pf.blue_max) << pf.blue_shift;
    let n = pf.bytes_per_pixel();
    if pf.big_endian {
        out.extend_from_slice(&v.to_be_bytes()[4 - n..]);
    } else {
        out.extend_from_slice(&v.to_le_bytes()[..n]);
    }
}

async fn serve(s: DuplexStream, mut fake: Fake) -> io::Result<Seen> {
    let mut c = Logged {
        s,
        bytes: Vec::new(),
    };
    c.s.write_all(&fake.version.encode()).await?;
    let theirs = Version::parse(&c.read(12).await?.try_into().unwrap()).unwrap();
    let pick = if theirs == Version::V3_3 {
        let t = fake.security.first().copied().unwrap_or(0);
        c.s.write_all(&u32::from(t).to_be_bytes()).await?;
        t
    } else {
        let mut b = Vec::new();
        rfb::encode_security_types(&fake.security, &mut b);
        c.s.write_all(&b).await?;
        if fake.security.is_empty() {
            0
        } else {
            c.read(1).await?[0]
        }
    };
    if pick == 0 {
        let mut b = Vec::new();
        rfb::encode_string(b"too many clients", &mut b);
        c.s.write_all(&b).await?;
        return Ok(Seen {
            messages: vec![],
            bytes: c.bytes,
        });
    }
    let mut ok = true;
    if pick == security::VNC_AUTH {
        c.s.write_all(&CHALLENGE).await?;
        ok = c.read(16).await? == PASSWORD_RESPONSE;
    }
    if pick == security::VNC_AUTH || theirs == Version::V3_8 {
        let mut b = Vec::new();
        let reason = (!ok && theirs == Version::V3_8).then_some("Authentication failed");
        rfb::encode_security_result(ok, reason, &mut b);
        c.s.write_all(&b).await?;
    }
    if !ok {
        return Ok(Seen {
            messages: vec![],
            bytes: c.bytes,
        });
    }
    c.read(1).await?; // ClientInit
    let init = ServerInit {
        width: fake.screen.width(),
        height: fake.screen.height(),
        pixel_format: fake.format,
        name: fake.name.clone(),
    };
    let mut b = Vec::new();
    init.encode(&mut b);
    c.s.write_all(&b).await?;

    let mut parser = ClientStream::messages_only(Limits::default());
    let mut messages = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = c.s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        c.bytes.extend_from_slice(&buf[..n]);
        parser.push(&buf[..n]);
        while let Some(m) = parser.next_message().unwrap() {
            if let ClientMessage::SetPixelFormat(pf) = &m {
                fake.format = *pf;
            }
            if let &ClientMessage::FramebufferUpdateRequest {
                x,
                y,
                width,
                height,
                ..
            } = &m
            {
                let mut out = fake.extras.clone();
                let rects = fake.rects.clone().unwrap_or_else(|| {
                    let rect = Rect {
                        x,
                        y,
                        width,
                        height,
                        encoding: encoding::RAW,
                    };
                    let mut data = Vec::new();
                    for j in y..y + height {
                        for i in x..x + width {
                            encode_pixel(&fake.format, fake.screen.pixel(i, j), &mut data);
                        }
                    }
                    vec![(rect, data)]
                });
                rfb::encode_framebuffer_update(rects.len() as u16, &mut out);
                for (rect, data) in rects {
                    rect.encode(&mut out);
                    out.extend_from_slice(&data);
                }
                c.s.write_all(&out).await?;
            }
            messages.push(m);
        }
    }
    Ok(Seen {
        messages,
        bytes: c.bytes,
    })
}

fn picture(w: u16, h: u16) -> Screen {
    let mut s = Screen::new(w, h);
    for y in 0..h {
        for x in 0..w {
            s.set_pixel(x, y, [(x * 8) as u8, (y * 16) as u8, ((x + y) * 4) as u8]);
        }
    }
    s
}

async fn start(
    fake: Fake,
    opts: &Options,
) -> (
    Result<Client<DuplexStream>, ClientError>,
    tokio::task::JoinHandle<io::Result<Seen>>,
) {
    let (a, b) = duplex(64 * 1024);
    let server = tokio::spawn(serve(b, fake));
    (Client::connect(a, opts).await, server)
}

fn password(p: &str) -> Options {
    Options {
        password: Some(p.as_bytes().to_vec()),
        ..Options::default()
    }
}

#[tokio::test]
async fn connects_and_takes_a_screenshot() {
    let fake = Fake::new(picture(32, 16));
    let (client, server) = start(fake, &Options::default()).await;
    let mut client = client.unwrap();
    assert_eq!(client.version(), Version::V3_8);
    assert_eq!(client.name(), b"QEMU (vm0)");
    let shot = client.screenshot().await.unwrap().clone();
    assert_eq!(shot, picture(32, 16));
    drop(client);
    let seen = server.await.unwrap().unwrap();
    assert_eq!(
        seen.messages[..2],
        [
            ClientMessage::SetPixelFormat(PixelFormat::RGB888),
            ClientMessage::SetEncodings(vec![encoding::RAW, encoding::DESKTOP_SIZE]),
        ]
    );
}

#[tokio::test]
async fn every_handshake_and_the_shim_parser_follows_it() {
    let cases: &[(Version, &[u8], Option<&str>)] = &[
        (Version::V3_8, &[security::NONE], None),
        (Version::V3_8, &[security::VNC_AUTH], Some("password")),
        (Version::V3_8, &[security::VNC_AUTH, security::NONE], None),
        (Version::V3_7, &[security::NONE], None),
        (Version::V3_7, &[security::VNC_AUTH], Some("password")),
        (Version::V3_3, &[security::NONE], None),
        (Version::V3_3, &[security::VNC_AUTH], Some("password")),
        (
            Version {
                major: 3,
                minor: 889,
            },
            &[security::NONE],
            None,
        ),
    ];
    for &(version, sec, pw) in cases {
        let fake = Fake {
            version,
            security: sec.to_vec(),
            ..Fake::new(picture(8, 8))
        };
        let opts = pw.map(password).unwrap_or_default();
        let (client, server) = start(fake, &opts).await;
        let mut client = client.unwrap_or_else(|e| panic!("{version} {sec:?}: {e}"));
        client.screenshot().await.unwrap();
        let key = KeyEvent {
            down: true,
            keysym: 0x61,
        };
        client.key(key).await.unwrap();
        drop(client);
        let seen = server.await.unwrap().unwrap();
        // The bytes the client sent, from the first, parse as the shim
        // would parse them.
        let mut shim = ClientStream::new(sec[0] == security::VNC_AUTH, Limits::default());
        shim.push(&seen.bytes);
        let mut parsed = Vec::new();
        while let Some(m) = shim.next_message().unwrap() {
            parsed.push(m);
        }
        assert_eq!(parsed, seen.messages, "{version}");
        assert_eq!(parsed.last(), Some(&ClientMessage::Key(key)));
    }
}

#[tokio::test]
async fn authentication_failures() {
    let fake = |version| Fake {
        version,
        security: vec![security::VNC_AUTH],
        ..Fake::new(picture(4, 4))
    };
    let (c, _) = start(fake(Version::V3_8), &password("wrong")).await;
    assert!(matches!(c, Err(ClientError::AuthFailed(r)) if r == "Authentication failed"));
    let (c, _) = start(fake(Version::V3_3), &password("wrong")).await;
    assert!(matches!(c, Err(ClientError::AuthFailed(r)) if r.is_empty()));
    let (c, _) = start(fake(Version::V3_8), &Options::default()).await;
    assert!(matches!(c, Err(ClientError::PasswordRequired)));
    let (c, _) = start(fake(Version::V3_3), &Options::default()).await;
    assert!(matches!(c, Err(ClientError::PasswordRequired)));
    let refuse = |version| Fake {
        version,
        security: vec![],
        ..Fake::new(picture(4, 4))
    };
    let (c, _) = start(refuse(Version::V3_8), &Options::default()).await;
    assert!(matches!(c, Err(ClientError::Refused(r)) if r == "too many clients"));
    let (c, _) = start(refuse(Version::V3_3), &Options::default()).await;
    assert!(matches!(c, Err(ClientError::Refused(r)) if r == "too many clients"));
    let tls = Fake {
        security: vec![19],
        ..Fake::new(picture(4, 4))
    };
    let (c, _) = start(tls, &Options::default()).await;
    assert!(matches!(c, Err(ClientError::NoCommonSecurity(t)) if t == [19]));
}

#[tokio::test]
async fn events_reach_the_server_in_order() {
    let (client, server) = start(Fake::new(picture(4, 4)), &Options::default()).await;
    let mut client = client.unwrap();
    let events = crate::console::keys::type_text("Hi").unwrap();
    for k in &events {
        client.key(*k).await.unwrap();
    }
    let p = PointerEvent {
        buttons: 1,
        x: 2,
        y: 3,
    };
    client.pointer(p).await.unwrap();
    drop(client);
    let seen = server.await.unwrap().unwrap();
    let mut want: Vec<_> = events.into_iter().map(ClientMessage::Key).collect();
    want.push(ClientMessage::Pointer(p));
    assert_eq!(seen.messages[2..], want);
}

#[tokio::test]
async fn other_pixel_formats_decode() {
    let rgb565 = PixelFormat {
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
    };
    let mut pic = Screen::new(3, 1);
    pic.set_pixel(0, 0, [255, 0, 0]);
    pic.set_pixel(1, 0, [0, 255, 255]);
    pic.set_pixel(2, 0, [255, 255, 255]);
    // Asked for.
    let opts = Options {
        pixel_format: Some(rgb565),
        ..Options::default()
    };
    let (client, _server) = start(Fake::new(pic.clone()), &opts).await;
    let mut client = client.unwrap();
    assert_eq!(client.screenshot().await.unwrap(), &pic);
    // The server's own, kept.
    let fake = Fake {
        format: PixelFormat {
            big_endian: true,
            ..PixelFormat::RGB888
        },
        ..Fake::new(pic.clone())
    };
    let opts = Options {
        pixel_format: None,
        ..Options::default()
    };
    let (client, _server) = start(fake, &opts).await;
    let mut client = client.unwrap();
    assert!(client.server_format().big_endian);
    assert_eq!(client.screenshot().await.unwrap(), &pic);
    // Changed later.
    client
        .send(&ClientMessage::SetPixelFormat(rgb565))
        .await
        .unwrap();
    assert_eq!(client.screenshot().await.unwrap(), &pic);
}

#[tokio::test]
async fn bells_cut_text_colour_maps_and_pseudo_rectangles() {
    let mut extras = Vec::new();
    rfb::encode_bell(&mut extras);
    rfb::encode_server_cut_text(b"copied", &mut extras);
    rfb::encode_set_colour_map_entries(0, &[[0, 0, 0], [65535, 0, 0]], &mut extras);
    let resize = Rect {
        x: 0,
        y: 0,
        width: 6,
        height: 2,
        encoding: encoding::DESKTOP_SIZE,
    };
    let cursor = Rect {
        x: 1,
        y: 1,
        width: 9,
        height: 2,
        encoding: encoding::CURSOR,
    };
    let raw = Rect {
        x: 4,
        y: 1,
        width: 2,
        height: 1,
        encoding: encoding::RAW,
    };
    let copy = Rect {
        x: 0,
        y: 0,
        width: 2,
        height: 1,
        encoding: encoding::COPY_RECT,
    };
    let mut pixels = Vec::new();
    encode_pixel(&PixelFormat::RGB888, [1, 2, 3], &mut pixels);
    encode_pixel(&PixelFormat::RGB888, [4, 5, 6], &mut pixels);
    let fake = Fake {
        extras,
        rects: Some(vec![
            (resize, vec![]),
            (cursor, vec![0xee; rfb::cursor_data_len(&cursor, 4)]),
            (raw, pixels),
            (copy, vec![0, 4, 0, 1]), // from (4, 1)
        ]),
        ..Fake::new(picture(4, 4))
    };
    let opts = Options {
        encodings: vec![
            encoding::RAW,
            encoding::COPY_RECT,
            encoding::DESKTOP_SIZE,
            encoding::CURSOR,
        ],
        ..Options::default()
    };
    let (client, _server) = start(fake, &opts).await;
    let mut client = client.unwrap();
    client.request_update(false).await.unwrap();
    assert_eq!(client.read_message().await.unwrap(), ServerEvent::Bell);
    assert_eq!(
        client.read_message().await.unwrap(),
        ServerEvent::CutText(b"copied".to_vec())
    );
    assert_eq!(
        client.read_message().await.unwrap(),
        ServerEvent::ColourMap { first: 0, count: 2 }
    );
    assert_eq!(
        client.read_message().await.unwrap(),
        ServerEvent::Update(vec![resize, cursor, raw, copy])
    );
    let s = client.screen();
    assert_eq!((s.width(), s.height()), (6, 2));
    assert_eq!(s.pixel(4, 1), [1, 2, 3]);
    assert_eq!(s.pixel(0, 0), [1, 2, 3]);
    assert_eq!(s.pixel(1, 0), [4, 5, 6]);
    assert_eq!(s.pixel(5, 0), [0, 0, 0], "new area, not drawn");
}

#[tokio::test]
async fn servers_gone_wrong_are_typed_errors() {
    let bad = |rects| Fake {
        rects: Some(rects),
        ..Fake::new(picture(4, 4))
    };
    let outside = Rect {
        x: 3,
        y: 0,
        width: 2,
        height: 1,
        encoding: encoding::RAW,
    };
    let (client, _s) = start(bad(vec![(outside, vec![0; 8])]), &Options::default()).await;
    let e = client.unwrap().screenshot().await.unwrap_err();
    assert!(matches!(e, ClientError::RectOutside { .. }), "{e}");

    let tight = Rect {
        encoding: encoding::TIGHT,
        ..outside
    };
    let (client, _s) = start(bad(vec![(tight, vec![])]), &Options::default()).await;
    let e = client.unwrap().screenshot().await.unwrap_err();
    assert!(matches!(e, ClientError::UnexpectedEncoding(7)), "{e}");

    let huge = Rect {
        x: 0,
        y: 0,
        width: 60000,
        height: 60000,
        encoding: encoding::DESKTOP_SIZE,
    };
    let (client, _s) = start(bad(vec![(huge, vec![])]), &Options::default()).await;
    let e = client.unwrap().screenshot().await.unwrap_err();
    assert!(matches!(e, ClientError::TooLarge { .. }), "{e}");

    let opts = Options {
        max_pixels: 15,
        ..Options::default()
    };
    let (c, _s) = start(Fake::new(picture(4, 4)), &opts).await;
    assert!(matches!(
        c,
        Err(ClientError::TooLarge {
            width: 4,
            height: 4,
            max: 15
        })
    ));

    let opts = Options {
        max_text: 4,
        ..Options::default()
    };
    let (c, _s) = start(Fake::new(picture(4, 4)), &opts).await;
    assert!(matches!(
        c,
        Err(ClientError::TextTooLong { len: 10, max: 4 })
    ));

    let mut extras = Vec::new();
    rfb::encode_server_cut_text(&[b'x'; 100], &mut extras);
    let fake = Fake {
        extras,
        ..Fake::new(picture(4, 4))
    };
    let opts = Options {
        max_text: 64,
        ..Options::default()
    };
    let (client, _s) = start(fake, &opts).await;
    let e = client.unwrap().screenshot().await.unwrap_err();
    assert!(
        matches!(e, ClientError::TextTooLong { len: 100, max: 64 }),
        "{e}"
    );

    let (a, mut b) = duplex(1024);
    tokio::spawn(async move { b.write_all(b"HTTP/1.1 400\r\n\r\n").await });
    let e = Client::connect(a, &Options::default()).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Rfb(RfbError::BadVersion(_))),
        "{e}"
    );
}

#[tokio::test]
async fn split_halves_work_from_two_tasks() {
    let (client, server) = start(Fake::new(picture(8, 4)), &Options::default()).await;
    let (mut reader, mut writer) = client.unwrap().into_split();
    let read = tokio::spawn(async move {
        reader.read_message().await.unwrap();
        reader.screen().clone()
    });
    writer.request_update(false, 8, 4).await.unwrap();
    let p = PointerEvent {
        buttons: 0,
        x: 1,
        y: 1,
    };
    writer.pointer(p).await.unwrap();
    assert!(matches!(
        writer
            .send(&ClientMessage::SetPixelFormat(PixelFormat::RGB888))
            .await,
        Err(ClientError::PixelFormatAfterSplit)
    ));
    assert_eq!(read.await.unwrap(), picture(8, 4));
    drop(writer);
    let seen = server.await.unwrap().unwrap();
    assert_eq!(seen.messages.last(), Some(&ClientMessage::Pointer(p)));
}

#[tokio::test]
async fn the_raw_stream_after_the_handshake_is_the_servers() {
    let (client, _server) = start(Fake::new(picture(2, 1)), &Options::default()).await;
    let mut client = client.unwrap();
    client.request_update(false).await.unwrap();
    let mut s = client.into_inner();
    let mut head = [0u8; 4 + Rect::LEN];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(
        head[..4],
        [0, 0, 0, 1],
        "a FramebufferUpdate of one rectangle"
    );
    assert_eq!(Rect::parse(head[4..].try_into().unwrap()).width, 2);
}

mod qemu;
