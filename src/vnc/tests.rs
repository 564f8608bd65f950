//! The room against a stand-in for QEMU's VNC socket (a small RFB server
//! on a unix socket, whose screen the test draws): ports, the relay and
//! what it records, typing a paste, playbacks and WaitForIt. Real QEMU is
//! in tests/vnc.rs.

use super::*;
use crate::console::client::{Client, Options};
use crate::console::kb;
use crate::console::rfb::{self, security, ClientStream, KeyEvent, Limits, PixelFormat, Rect};
use crate::console::screen::Screen;
use crate::vm::state::VmState;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;

/// What clients sent the stand-in, in order, over every connection.
type Seen = mpsc::UnboundedReceiver<ClientMessage>;

/// Serves `screen` (RGB888) on `path` to any number of clients.
fn fake_qemu(path: &Path, screen: Screen) -> Seen {
    let l = UnixListener::bind(path).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let (tx, screen) = (tx.clone(), screen.clone());
            tokio::spawn(async move {
                let _ = serve(s, screen, tx).await;
            });
        }
    });
    rx
}

async fn serve(
    mut s: UnixStream,
    screen: Screen,
    tx: mpsc::UnboundedSender<ClientMessage>,
) -> std::io::Result<()> {
    s.write_all(b"RFB 003.008\n").await?;
    let mut v = [0u8; 12];
    s.read_exact(&mut v).await?;
    let mut out = Vec::new();
    rfb::encode_security_types(&[security::NONE], &mut out);
    s.write_all(&out).await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    out.clear();
    rfb::encode_security_result(true, None, &mut out);
    s.write_all(&out).await?;
    s.read_exact(&mut b).await?;
    out.clear();
    rfb::ServerInit {
        width: screen.width(),
        height: screen.height(),
        pixel_format: PixelFormat::RGB888,
        name: b"fake".to_vec(),
    }
    .encode(&mut out);
    s.write_all(&out).await?;
    let mut parser = ClientStream::messages_only(Limits::default());
    let mut buf = vec![0u8; 4096];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        parser.push(&buf[..n]);
        while let Ok(Some(m)) = parser.next_message() {
            if matches!(m, ClientMessage::FramebufferUpdateRequest { .. }) {
                let mut out = Vec::new();
                rfb::encode_framebuffer_update(1, &mut out);
                Rect {
                    x: 0,
                    y: 0,
                    width: screen.width(),
                    height: screen.height(),
                    encoding: rfb::encoding::RAW,
                }
                .encode(&mut out);
                for p in screen.rgb().chunks_exact(3) {
                    out.extend_from_slice(&[p[2], p[1], p[0], 0]);
                }
                s.write_all(&out).await?;
            }
            let _ = tx.send(m);
        }
    }
}

/// A picture with something to find: a white square on black.
fn picture() -> Screen {
    let mut s = Screen::new(32, 24);
    for y in 8..14 {
        for x in 10..18 {
            s.set_pixel(x, y, [255, 255, 255]);
        }
    }
    s.set_pixel(12, 10, [255, 0, 0]);
    s
}

struct Bed {
    dir: tempfile::TempDir,
    vnc: Vnc,
    vm: Arc<Vm>,
    seen: Seen,
}

fn bed(ports: Option<(u16, u16)>) -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let vm = Arc::new(Vm::detached(3, "web1", "exp", dir.path()));
    std::fs::create_dir_all(&vm.paths.dir).unwrap();
    vm.lock().state = VmState::Running;
    let seen = fake_qemu(&vm.paths.vnc(), picture());
    let vnc = Vnc::new(
        Settings {
            addr: Some("127.0.0.1".parse().unwrap()),
            ports,
        },
        dir.path(),
    );
    Bed { dir, vnc, vm, seen }
}

/// The next key or pointer event the stand-in got (others skipped).
async fn next_event(seen: &mut Seen) -> ClientMessage {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), seen.recv())
            .await
            .expect("an event in time")
            .expect("the stand-in runs");
        if matches!(m, ClientMessage::Key(_) | ClientMessage::Pointer(_)) {
            return m;
        }
    }
}

fn key(down: bool, c: char) -> ClientMessage {
    ClientMessage::Key(KeyEvent {
        down,
        keysym: c as u32,
    })
}

async fn viewer(port: u16) -> Client<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    Client::connect(s, &Options::default()).await.unwrap()
}

async fn until_idle(vnc: &Vnc, vm: &Vm) {
    for _ in 0..400 {
        if vnc.list(&vm.namespace).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still listed: {:?}", vnc.list(&vm.namespace));
}

#[tokio::test]
async fn a_viewer_through_the_port_sees_the_screen_and_is_recorded() {
    let mut b = bed(None);
    let port = b.vnc.open_display(&b.vm).unwrap();
    assert_eq!(b.vnc.port(b.vm.id), Some(port));
    let file = b.dir.path().join("rec/s.kb");
    b.vnc.record_kb(&b.vm, &file).unwrap();
    let e = b.vnc.record_kb(&b.vm, &file).unwrap_err().to_string();
    assert_eq!(e, "kb recording for web1 already running");
    let rows = b.vnc.list("exp");
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][..2], ["web1", "record kb"]);
    assert_eq!(rows[0][3], file.display().to_string());

    let mut c = viewer(port).await;
    assert_eq!(c.screenshot().await.unwrap(), &picture());
    c.send(&key(true, 'a')).await.unwrap();
    c.send(&key(false, 'a')).await.unwrap();
    let click = rfb::PointerEvent {
        buttons: 1,
        x: 3,
        y: 4,
    };
    c.pointer(click).await.unwrap();
    assert_eq!(next_event(&mut b.seen).await, key(true, 'a'));
    assert_eq!(next_event(&mut b.seen).await, key(false, 'a'));
    assert_eq!(next_event(&mut b.seen).await, ClientMessage::Pointer(click));
    b.vnc.stop_kb(&b.vm).await.unwrap();
    let e = b.vnc.stop_kb(&b.vm).await.unwrap_err().to_string();
    assert_eq!(e, "kb recording web1 not found");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().map(|l| l.split_once(':').unwrap().1).collect();
    assert_eq!(
        lines,
        ["KeyEvent,true,a", "KeyEvent,false,a", "PointerEvent,1,3,4"]
    );
    // What was recorded plays back.
    b.vnc.play(&b.vm, &file).await.unwrap();
    assert_eq!(next_event(&mut b.seen).await, key(true, 'a'));
    assert_eq!(next_event(&mut b.seen).await, key(false, 'a'));
    assert_eq!(next_event(&mut b.seen).await, ClientMessage::Pointer(click));
    until_idle(&b.vnc, &b.vm).await;

    b.vnc.close_display(b.vm.id).await;
    assert_eq!(b.vnc.port(b.vm.id), None);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "nothing listens once the VM is gone"
    );
}

#[tokio::test]
async fn a_paste_is_typed_and_a_vm_keeps_its_port() {
    let mut b = bed(None);
    let port = b.vnc.open_display(&b.vm).unwrap();
    let mut c = viewer(port).await;
    c.send(&ClientMessage::CutText(b"hi\n".to_vec()))
        .await
        .unwrap();
    let typed = [
        key(true, 'h'),
        key(false, 'h'),
        key(true, 'i'),
        key(false, 'i'),
    ];
    for k in typed {
        assert_eq!(next_event(&mut b.seen).await, k);
    }
    let ret = |down| {
        ClientMessage::Key(KeyEvent {
            down,
            keysym: 0xff0d,
        })
    };
    assert_eq!(next_event(&mut b.seen).await, ret(true));
    assert_eq!(next_event(&mut b.seen).await, ret(false));
    drop(c);
    b.vnc.close_display(b.vm.id).await;
    assert_eq!(b.vnc.open_display(&b.vm).unwrap(), port, "the same number");
    b.vnc.close_display(b.vm.id).await;
}

#[tokio::test]
async fn wait_for_it_finds_a_cut_out_picture_and_gives_up_on_another() {
    let mut b = bed(None);
    b.vnc.open_display(&b.vm).unwrap();
    let b64 = |s: &Screen| crate::vm::screenshot::base64(&s.to_png().unwrap());
    let found = b64(&picture().crop(8, 6, 12, 10));
    let file = b.dir.path().join("found.kb");
    std::fs::write(
        &file,
        format!("#: look\n0:WaitForIt,20s,{found}\n0:KeyEvent,true,y\n"),
    )
    .unwrap();
    b.vnc.play(&b.vm, &file).await.unwrap();
    assert_eq!(next_event(&mut b.seen).await, key(true, 'y'));
    until_idle(&b.vnc, &b.vm).await;

    // A red square is nowhere on the screen.
    let mut red = Screen::new(6, 6);
    for y in 0..6 {
        for x in 0..6 {
            red.set_pixel(x, y, [255, 0, 0]);
        }
    }
    let file = b.dir.path().join("missing.kb");
    std::fs::write(
        &file,
        format!("0:WaitForIt,1500ms,{}\n0:KeyEvent,true,n\n", b64(&red)),
    )
    .unwrap();
    b.vnc.play(&b.vm, &file).await.unwrap();
    let e = b.vnc.play(&b.vm, &file).await.unwrap_err().to_string();
    assert_eq!(e, "kb playback web1 already playing");
    until_idle(&b.vnc, &b.vm).await;
    // It timed out: the key after it was never sent.
    while let Ok(m) = b.seen.try_recv() {
        assert_ne!(m, key(true, 'n'), "sent after a failed WaitForIt");
    }
    b.vnc.close_display(b.vm.id).await;
}

#[tokio::test]
async fn playbacks_pause_step_and_stop() {
    let mut b = bed(None);
    b.vnc.open_display(&b.vm).unwrap();
    let file = b.dir.path().join("slow.kb");
    std::fs::write(
        &file,
        "0:KeyEvent,true,a\n60s:KeyEvent,true,b\n60s:KeyEvent,true,c\n",
    )
    .unwrap();
    b.vnc.play(&b.vm, &file).await.unwrap();
    assert_eq!(next_event(&mut b.seen).await, key(true, 'a'));
    for _ in 0..200 {
        if b.vnc.getstep(&b.vm).unwrap().contains(",b") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.vnc.getstep(&b.vm).unwrap(), "60s:KeyEvent,true,b");
    b.vnc.pause(&b.vm).unwrap();
    assert_eq!(b.vnc.list("exp")[0][2], "PAUSED");
    assert_eq!(
        b.vnc.pause(&b.vm).unwrap_err().to_string(),
        "playback not pauseable"
    );
    assert_eq!(
        b.vnc.step(&b.vm).unwrap_err().to_string(),
        "playback not stepable"
    );
    b.vnc.resume(&b.vm).unwrap();
    assert_eq!(
        b.vnc.resume(&b.vm).unwrap_err().to_string(),
        "playback not playable"
    );
    b.vnc.step(&b.vm).unwrap();
    assert_eq!(next_event(&mut b.seen).await, key(true, 'b'));
    b.vnc
        .inject(&b.vm, kb::parse_action("KeyEvent,true,x").unwrap())
        .await
        .unwrap();
    assert_eq!(next_event(&mut b.seen).await, key(true, 'x'));
    b.vnc.stop_playback(&b.vm).unwrap();
    assert!(b.vnc.list("exp").is_empty());
    assert_eq!(
        b.vnc.stop_playback(&b.vm).unwrap_err().to_string(),
        "kb playback not found for web1"
    );
    // Without a playback, an event goes at once.
    b.vnc
        .inject(&b.vm, kb::parse_action("PointerEvent,0,1,2").unwrap())
        .await
        .unwrap();
    let p = next_event(&mut b.seen).await;
    assert_eq!(
        p,
        ClientMessage::Pointer(rfb::PointerEvent {
            buttons: 0,
            x: 1,
            y: 2
        })
    );
    b.vnc.close_display(b.vm.id).await;
}

#[tokio::test]
async fn a_vm_that_is_not_running_has_no_screen() {
    let b = bed(None);
    b.vnc.open_display(&b.vm).unwrap();
    b.vm.lock().state = VmState::Quit;
    let e = b.vnc.play(&b.vm, Path::new("/x.kb")).await.unwrap_err();
    assert_eq!(e.to_string(), "vm not running: web1");
    let e = b.vnc.record_kb(&b.vm, Path::new("/x.kb")).unwrap_err();
    assert_eq!(e.to_string(), "vm not running: web1");
    b.vnc.close_display(b.vm.id).await;
}

#[tokio::test]
async fn an_exhausted_range_is_an_error_that_leaves_nothing_listening() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let b = bed(Some((port, port)));
    let e = b.vnc.open_display(&b.vm).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("no free VNC port in port {port} (0 held by this node's VMs, the rest by other programs)")
    );
    assert_eq!(b.vnc.port(b.vm.id), None);
    drop(taken);
    assert_eq!(b.vnc.open_display(&b.vm).unwrap(), port);
    // A second VM finds the range full of this node's own.
    let other = Arc::new(Vm::detached(4, "web2", "exp", b.dir.path()));
    std::fs::create_dir_all(&other.paths.dir).unwrap();
    let e = b.vnc.open_display(&other).unwrap_err().to_string();
    assert!(e.contains("(1 held by this node's VMs"), "{e}");
    b.vnc.close_display(b.vm.id).await;
}
