//! Against a real QEMU (no disk: SeaBIOS, then "No bootable device").
//! Ignored by default; run with
//! `cargo test --lib console::client::tests::qemu -- --ignored`.

use super::*;
use crate::console::matcher::{self, Template};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::UnixStream;

struct Qemu {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Qemu {
    /// `vnc_extra` is appended to `-vnc unix:<dir>/vnc`.
    fn start(extra: &[&str], vnc_extra: &str) -> Qemu {
        let dir = tempfile::tempdir().unwrap();
        let vnc = format!("unix:{}{vnc_extra}", dir.path().join("vnc").display());
        let child = Command::new("qemu-system-x86_64")
            .args([
                "-accel",
                "tcg",
                "-display",
                "none",
                "-nodefaults",
                "-vga",
                "std",
            ])
            .args(["-m", "64", "-vnc", &vnc])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 (apt-get install qemu-system-x86)");
        Qemu { child, dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("vnc")
    }

    async fn connect(&self, opts: &Options) -> Result<Client<UnixStream>, ClientError> {
        let path = self.socket();
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match UnixStream::connect(&path).await {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("{}: {e}", path.display()),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        Client::connect(stream, opts).await
    }
}

fn save(screen: &Screen, name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, screen.to_png().unwrap()).unwrap();
    path
}

#[tokio::test]
#[ignore = "runs qemu-system-x86_64"]
async fn qemu_handshake_screenshot_and_events() {
    let qemu = Qemu::start(&["-S"], "");
    let mut client = qemu.connect(&Options::default()).await.unwrap();
    assert_eq!(client.version(), Version::V3_8);
    assert_eq!(client.name(), b"QEMU");
    let shot = client.screenshot().await.unwrap().clone();
    assert!(shot.width() > 0 && shot.height() > 0);
    eprintln!(
        "paused guest: {}x{}, {}",
        shot.width(),
        shot.height(),
        save(&shot, "qemu-paused.png").display()
    );
    for k in crate::console::keys::type_text("Hello\n").unwrap() {
        client.key(k).await.unwrap();
    }
    client
        .pointer(PointerEvent {
            buttons: 0,
            x: 10,
            y: 10,
        })
        .await
        .unwrap();
    // QEMU is still talking to us after the events.
    client.screenshot().await.unwrap();
}

#[tokio::test]
#[ignore = "runs qemu-system-x86_64"]
async fn qemu_vnc_authentication() {
    let qemu = Qemu::start(
        &["-S", "-object", "secret,id=vncpw,data=s3cret"],
        ",password-secret=vncpw",
    );
    let e = qemu.connect(&Options::default()).await.unwrap_err();
    assert!(matches!(e, ClientError::PasswordRequired), "{e}");
    let e = qemu.connect(&password("wrong")).await.unwrap_err();
    assert!(matches!(e, ClientError::AuthFailed(_)), "{e}");
    let mut client = qemu.connect(&password("s3cret")).await.unwrap();
    client.screenshot().await.unwrap();
}

/// Waits (as WaitForIt does) until SeaBIOS's "No bootable device" is on
/// the screen: a template cut from one run's screen is found in another.
#[tokio::test]
#[ignore = "runs qemu-system-x86_64"]
async fn qemu_wait_for_it() {
    let found = |qemu: Qemu| async move {
        let mut client = qemu.connect(&Options::default()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let shot = client.screenshot().await.unwrap().clone();
            if let Some(m) = find_text(&shot) {
                return (shot, m);
            }
            assert!(
                Instant::now() < deadline,
                "{}",
                save(&shot, "qemu-timeout.png").display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let (first, (x, y)) = found(Qemu::start(&[], "")).await;
    // The line's first 170x21 pixels, from one pixel above it.
    let template = Template::from_png(&first.crop(x, y, 170, 21).to_png().unwrap()).unwrap();
    let (second, _) = found(Qemu::start(&[], "")).await;
    let m = matcher::find(&second, &template).expect("the template on a second guest's screen");
    assert_eq!(
        (m.x, m.y),
        (x, y),
        "{}",
        save(&second, "qemu-second.png").display()
    );
    eprintln!(
        "found at {x},{y}; click {:?}; {}",
        m.click(),
        save(&second, "qemu-no-boot.png").display()
    );
}

/// Where the last line of text (SeaBIOS's "No bootable device.") starts:
/// the top left of the lowest non-black row band, once there is one below
/// the banner.
fn find_text(s: &Screen) -> Option<(u16, u16)> {
    // 640x480 is QEMU's "Guest has not initialized the display (yet).";
    // SeaBIOS writes in 720x400 text mode.
    if s.width() != 720 {
        return None;
    }
    let lit = |y: u16| (0..s.width()).find(|&x| s.pixel(x, y) != [0, 0, 0]);
    let rows: Vec<u16> = (0..s.height()).filter(|&y| lit(y).is_some()).collect();
    let last = *rows.last()?;
    // SeaBIOS writes its banner, then a few lines; the no-boot line is the
    // last, well below the first.
    if last < 100 {
        return None;
    }
    let top = rows
        .iter()
        .rev()
        .take_while(|&&y| y + 20 > last)
        .last()
        .copied()?;
    let x = (top..=last).filter_map(lit).min()?;
    Some((x.saturating_sub(1), top.saturating_sub(1)))
}
