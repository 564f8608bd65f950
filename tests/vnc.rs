//! The VMs' screens and consoles on real QEMU (TCG) with the project's
//! test guest: a shell on its VGA console (`mm.vgashell`) that keys typed
//! over VNC drive, and one on its serial port (`mm.serialshell`) that
//! `minimega -console` attaches to. A command typed into a guest proves it
//! ran by writing to the serial port, which the daemon logs (serial0.log):
//! `$((6*7))` there prints 42 only when a shell ran it.

mod common;

use common::guest::*;
use common::pty::Pty;
use common::*;
use minimega::console::client::{Client, Options};
use minimega::console::rfb::{KeyEvent, PointerEvent};
use minimega::console::screen::Screen;
use minimega::console::{keys, matcher};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn serial_log(base: &Path, id: &str) -> String {
    std::fs::read_to_string(base.join(id).join("serial0.log")).unwrap_or_default()
}

fn wait_serial(base: &Path, id: &str, what: &str) {
    wait_for(&format!("`{what}` on VM {id}'s serial port"), BOOT, || {
        serial_log(base, id).contains(what).then_some(())
    });
}

/// The guest starts its VGA shell only after MINIMEGA-GUEST-UP, and keys
/// that reach tty1 before the shell has opened it are gone. So knock: type
/// a line (again every 20 s) until the shell answers on the serial port;
/// the keys under test go after that, once.
fn wait_vga_shell(d: &Daemon, base: &Path, name: &str, id: &str) {
    let mut knocked: Option<Instant> = None;
    wait_for(&format!("the VGA shell of {name}"), BOOT, || {
        if serial_log(base, id).contains("VGA-2-UP") {
            return Some(());
        }
        if knocked.is_none_or(|t| t.elapsed() > Duration::from_secs(20)) {
            d.ok(&format!(
                "vnc type {name} \"echo VGA-$((1+1))-UP >/dev/ttyS0\n\""
            ));
            knocked = Some(Instant::now());
        }
        None
    });
}

/// The row of `vm info` of VM `name`.
fn info(d: &Daemon, name: &str) -> std::collections::HashMap<String, String> {
    vm_info(d)
        .into_iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no VM {name}"))
}

fn vnc_port(d: &Daemon, name: &str) -> u16 {
    let p = &info(d, name)["vnc_port"];
    p.parse()
        .unwrap_or_else(|_| panic!("vnc_port of {name} is `{p}`"))
}

async fn connect(port: u16) -> Client<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    Client::connect(s, &Options::default()).await.unwrap()
}

/// Types `text` as a viewer would, key by key (Return for a newline).
async fn type_keys(c: &mut Client<TcpStream>, text: &str) {
    for k in keys::type_text(text).unwrap() {
        let k = if k.keysym == 0xff0a {
            KeyEvent {
                keysym: 0xff0d,
                ..k
            }
        } else {
            k
        };
        c.key(k).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `vm screenshot` as a PPM, read back.
fn screenshot(d: &Daemon, name: &str, dir: &Path) -> minimega::vm::screenshot::Image {
    let f = dir.join(format!("{name}.ppm"));
    d.ok(&format!("vm screenshot {name} file {}", f.display()));
    minimega::vm::screenshot::parse_ppm(&std::fs::read(&f).unwrap()).unwrap()
}

/// Pixels two pictures of one screen differ in (a blinking cursor may).
fn differing(a: &Screen, b: &minimega::vm::screenshot::Image) -> usize {
    a.rgb()
        .chunks_exact(3)
        .zip(b.rgb.chunks_exact(3))
        .filter(|(x, y)| x != y)
        .count()
}

fn b64_png(s: &Screen) -> String {
    minimega::vm::screenshot::base64(&s.to_png().unwrap())
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn screens_typing_recording_playback_and_wait_for_it() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let base = d.base.clone();
    let files = base.join("files");
    let work = Scratch::new("vnc-work");
    configure_guest(&d, "console=ttyS0 mm.vgashell");
    d.ok("vm launch kvm one,two");
    let rows = vm_info(&d);
    let (one, two) = (rows[0]["id"].clone(), rows[1]["id"].clone());
    let port = vnc_port(&d, "one");
    assert_ne!(port, vnc_port(&d, "two"));
    d.ok("vm start all");
    wait_serial(&base, &one, "MINIMEGA-GUEST-UP");
    wait_serial(&base, &two, "MINIMEGA-GUEST-UP");
    wait_vga_shell(&d, &base, "one", &one);
    wait_vga_shell(&d, &base, "two", &two);
    let rt = rt();

    // A viewer on vnc_port sees what `vm screenshot` sees.
    let mut c = rt.block_on(connect(port));
    assert!(String::from_utf8_lossy(c.name()).contains("QEMU"));
    wait_for("the two pictures to agree", BOOT, || {
        let shot = rt.block_on(c.screenshot()).unwrap().clone();
        let png = screenshot(&d, "one", &work.path);
        assert_eq!(
            (usize::from(shot.width()), usize::from(shot.height())),
            (png.width, png.height)
        );
        // The same but for a cursor cell at most (9x16 pixels).
        (differing(&shot, &png) <= 9 * 16).then_some(())
    });

    // `vnc type`: a newline is Return, and the shell runs the line.
    d.ok("vnc type one \"echo TYPED-$((6*7)) >/dev/ttyS0\n\"");
    wait_serial(&base, &one, "TYPED-42");

    // A viewer's session recorded, then played into the other VM.
    d.ok("vnc record kb one session.kb");
    let listed = d.ok(".annotate false .columns name,type,filename vnc");
    assert_eq!(
        listed,
        format!(
            "name | type      | filename\none  | record kb | {}",
            files.join("session.kb").display()
        )
    );
    rt.block_on(async {
        type_keys(&mut c, "echo RECORDED-$((5*5)) >/dev/ttyS0\n").await;
        c.pointer(PointerEvent {
            buttons: 0,
            x: 10,
            y: 10,
        })
        .await
        .unwrap();
    });
    wait_serial(&base, &one, "RECORDED-25");
    d.ok("vnc stop kb one");
    assert_eq!(d.ok("vnc"), "");
    let rec = std::fs::read_to_string(files.join("session.kb")).unwrap();
    assert!(rec.contains(":KeyEvent,true,Shift_L\n"), "{rec}");
    assert!(rec.contains(":KeyEvent,false,Return\n"), "{rec}");
    assert!(rec.ends_with(":PointerEvent,0,10,10\n"), "{rec}");
    assert!(!serial_log(&base, &two).contains("RECORDED-25"));
    d.ok("vnc play two session.kb");
    wait_serial(&base, &two, "RECORDED-25");
    // The keys after Return (its release, the pointer) still play once the
    // guest has answered; one VM plays one file at a time, as in minimega.
    wait_for("the playback to end", BOOT, || {
        d.ok("vnc").is_empty().then_some(())
    });

    // A recording written by hand in the original's format.
    let mut hand = String::from("#: written by hand\n");
    for (i, k) in keys::type_text("echo HANDMADE-$((3*3)) >/dev/ttyS0")
        .unwrap()
        .into_iter()
        .enumerate()
    {
        let name = keys::format_key(k.keysym);
        let delay = if i % 2 == 0 { "30000000" } else { "10ms" };
        hand.push_str(&format!("{delay}:KeyEvent,{},{name}\n", k.down));
    }
    // Return after a pause, as a person's recording has it: a key that
    // lands while a loaded TCG guest still drains the ones before it can
    // be lost in its PS/2 queue (seen once under the full suite's load).
    hand.push_str("30000000:KeyEvent,true,Return\n10ms:KeyEvent,false,Return\n");
    std::fs::write(files.join("hand.kb"), hand).unwrap();
    d.ok("vnc play two hand.kb");
    wait_serial(&base, &two, "HANDMADE-9");
    wait_for("the playback to end", BOOT, || {
        d.ok("vnc").is_empty().then_some(())
    });

    // WaitForIt: a piece of the screen as it is now is found, and the
    // keys after it run; a picture that is nowhere times out, and the keys
    // after it never go.
    let now = rt.block_on(c.screenshot()).unwrap().clone();
    let piece = now.crop(0, 0, 180, 16);
    assert!(matcher::find(&now, &matcher::Template::from_screen(&piece).unwrap()).is_some());
    let mut red = Screen::new(40, 20);
    for y in 0..20 {
        for x in 0..40 {
            red.set_pixel(x, y, [250, 10, 10]);
        }
    }
    let typed = |text: &str| -> String {
        keys::type_text(text)
            .unwrap()
            .into_iter()
            .map(|k| format!("0:KeyEvent,{},{}\n", k.down, keys::format_key(k.keysym)))
            .collect::<String>()
            + "0:KeyEvent,true,Return\n0:KeyEvent,false,Return\n"
    };
    std::fs::write(
        files.join("wait.kb"),
        format!(
            "0:WaitForIt,60s,{}\n{}",
            b64_png(&piece),
            typed("echo FOUND-$((8*8)) >/dev/ttyS0")
        ),
    )
    .unwrap();
    d.ok("vnc play one wait.kb");
    wait_serial(&base, &one, "FOUND-64");
    std::fs::write(
        files.join("nowhere.kb"),
        format!(
            "0:WaitForIt,3s,{}\n{}",
            b64_png(&red),
            typed("echo NOTFOUND-$((9*9)) >/dev/ttyS0")
        ),
    )
    .unwrap();
    d.ok("vnc play one nowhere.kb");
    // A column is 5 wide at least, as Go's tabwriter pads it (minwidth 5).
    let row = d.ok(".annotate false .headers false .columns name,type vnc");
    assert_eq!(row, "one  | playback kb");
    wait_for("the playback to time out", BOOT, || {
        d.log_text().contains("timeout waiting for").then_some(())
    });
    wait_for("the playback to end", BOOT, || {
        d.ok("vnc").is_empty().then_some(())
    });
    // Give a wrongly played line every chance to show.
    d.ok("vnc type one \"echo AFTER-$((2*2)) >/dev/ttyS0\n\"");
    wait_serial(&base, &one, "AFTER-4");
    assert!(!serial_log(&base, &one).contains("NOTFOUND-81"));
    drop(c);

    // kill -9 of the daemon: after the restart the VMs' ports answer again,
    // with the same numbers.
    d.crash();
    assert!(!listening(port), "the port went with the daemon");
    let mut d = Daemon::start_with(
        &bus,
        DaemonOpts {
            base: Some(base.clone()),
            ..Default::default()
        },
    );
    assert_eq!(vnc_port(&d, "one"), port);
    let mut c = rt.block_on(connect(port));
    let shot = rt.block_on(c.screenshot()).unwrap().clone();
    assert!(shot.width() >= 640, "{shot:?}");
    drop(c);

    // Killed: the port is free, and `vm info` says N/A.
    d.ok("vm kill one");
    assert_eq!(info(&d, "one")["vnc_port"], "N/A");
    assert!(!listening(port));
    let e = fails(&d, "vnc play one wait.kb");
    assert_eq!(e, "E: vm not running: one");
    // Relaunched, it gets its number back.
    d.ok("vm start one");
    assert_eq!(vnc_port(&d, "one"), port);
    d.ok("vm kill all");
    d.ok("vm flush");
    assert!(!listening(port));
    d.stop();
}

/// Ports the daemon listens on (TCP, any address).
fn listening_ports(pid: u32) -> Vec<u16> {
    let o = Command::new("ss")
        .args(["-Htlnp"])
        .output()
        .expect("ss (iproute2)");
    let mut out: Vec<u16> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .filter_map(|l| {
            let local = l.split_whitespace().nth(3)?;
            local.rsplit(':').next()?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing_listening() {
    let bus = Bus::start();
    // Two ports for VNC; the harness's mesh port is another.
    let first = free_port();
    let d = Daemon::start_with(
        &bus,
        DaemonOpts {
            extra: vec!["-vncports".into(), format!("{first}-{first}")],
            ..Default::default()
        },
    );
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let files = d.base.join("files");
    std::fs::create_dir_all(&files).unwrap();
    configure_guest(&d, "console=ttyS0");
    let before = listening_ports(d.pid());
    d.ok("vm launch kvm a");
    assert_eq!(vnc_port(&d, "a"), first);
    assert!(listening_ports(d.pid()).contains(&first));

    // The range is exhausted: the launch fails, and leaves no VM, no QEMU
    // and no port behind.
    let e = fails(&d, "vm launch kvm b");
    assert!(
        e.contains(&format!(
            "no free VNC port for 1 more VM(s): 0 of port {first} free"
        )),
        "{e}"
    );
    assert_eq!(column(&vm_info(&d), "name"), ["a"]);
    assert_eq!(qemus_under(&d.base).len(), 1);
    let mut now = listening_ports(d.pid());
    now.retain(|p| *p != first);
    assert_eq!(now, before, "no port but a's was added");

    // A file that is nowhere.
    let e = fails(&d, "vnc play a nothing.kb");
    assert_eq!(
        e,
        format!(
            "E: {}: not on this node, and no node of the mesh has it",
            files.join("nothing.kb").display()
        )
    );
    // A malformed line, named.
    std::fs::write(
        files.join("bad.kb"),
        "#: fine so far\n0:KeyEvent,true,a\n100:KeyPress,true,a\n",
    )
    .unwrap();
    let e = fails(&d, "vnc play a bad.kb");
    assert_eq!(
        e,
        format!(
            "E: {}: line 3: unknown event `KeyPress`",
            files.join("bad.kb").display()
        )
    );
    let e = fails(&d, "vnc inject a KeyEvent,true,nokey");
    assert_eq!(e, "E: vnc inject: unknown key: `nokey`");
    let e = fails(&d, "vnc stop a");
    assert_eq!(e, "E: kb playback not found for a");
    let e = fails(&d, "vnc play nobody bad.kb");
    assert_eq!(e, "E: vm not found: nobody");
    assert_eq!(d.ok("vnc"), "", "nothing plays");

    // A VM that is not running.
    d.ok("vm kill a");
    for line in [
        "vnc play a bad.kb",
        "vnc record kb a x.kb",
        "vnc record fb a x.fb",
        "vnc type a hello",
    ] {
        assert_eq!(fails(&d, line), "E: vm not running: a", "{line}");
    }
    assert!(!files.join("x.kb").exists() && !files.join("x.fb").exists());
    assert_eq!(listening_ports(d.pid()), before, "a's port went with it");
    d.ok("vm flush");
}

#[test]
fn fb_recording_and_a_vnc_password() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let files = d.base.join("files");
    configure_guest(&d, "console=ttyS0");
    d.ok("vm config vnc-password s3cret");
    assert_eq!(d.ok("vm config vnc-password"), "s3cret");
    d.ok("vm launch kvm locked");
    d.ok("vm start locked");
    let port = vnc_port(&d, "locked");
    let rt = rt();
    rt.block_on(async {
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let e = Client::connect(s, &Options::default()).await.unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let wrong = Options {
            password: Some(b"guess".to_vec()),
            ..Options::default()
        };
        assert!(Client::connect(s, &wrong).await.is_err());
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let right = Options {
            password: Some(b"s3cret".to_vec()),
            ..Options::default()
        };
        let mut c = Client::connect(s, &right).await.unwrap();
        assert!(c.screenshot().await.unwrap().width() > 0);
    });
    // The daemon's own client knows the password: an fb recording runs.
    d.ok("vnc record fb locked screen.fb");
    let listed = d.ok(".annotate false .headers false .columns name,type vnc");
    assert_eq!(listed, "locked | record fb");
    std::thread::sleep(Duration::from_secs(2));
    d.ok("vnc stop fb locked");
    let data = std::fs::read(files.join("screen.fb")).unwrap();
    let stream = minimega::console::fbrec::FbReader::new(&data[..])
        .into_stream()
        .unwrap();
    // A FramebufferUpdate (type 0) of raw pixels: at least one whole screen.
    assert_eq!(stream[0], 0, "starts with a FramebufferUpdate");
    assert!(stream.len() > 640 * 400 * 4, "{} bytes", stream.len());
    d.ok("vm kill all");
    d.ok("vm flush");
}

fn console(base: &Path, vm: &str) -> Pty {
    let mut c = Command::new(BIN);
    c.args(["-base", base.to_str().unwrap(), "-console", vm])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    Pty::spawn(c)
}

#[test]
fn serial_consoles_with_two_viewers_and_replay() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let base = d.base.clone();
    configure_guest(&d, "console=ttyS0 mm.serialshell");
    d.ok("vm launch kvm s");
    let id = info(&d, "s")["id"].clone();
    d.ok("vm start s");
    wait_serial(&base, &id, "MINIMEGA-GUEST-UP");

    let mut a = console(&base, "s");
    // Recent output first: the boot's marker, from before anyone attached.
    a.wait_for("MINIMEGA-GUEST-UP", 0, BOOT);
    let at = a.wait_for("Ctrl-] leaves", 0, BOOT);
    a.type_bytes(b"echo ONE-$((6*6))\r");
    let at = a.wait_for("ONE-36", at, BOOT);

    // A second viewer sees the earlier session replayed, then both see
    // what either types.
    let mut b = console(&base, "s");
    let bt = b.wait_for("ONE-36", 0, BOOT);
    b.type_bytes(b"echo TWO-$((7*7))\r");
    b.wait_for("TWO-49", bt, BOOT);
    a.wait_for("TWO-49", at, BOOT);
    assert!(serial_log(&base, &id).contains("TWO-49"));

    // Ctrl-] leaves; the other viewer stays.
    b.type_bytes(&[0x1d]);
    assert!(b.wait_exit(Duration::from_secs(30)).success());
    a.type_bytes(b"echo THREE-$((2*5))\r");
    a.wait_for("THREE-10", at, BOOT);

    // The VM goes: the viewer is told and the client ends.
    d.ok("vm kill s");
    a.wait_for("the serial console closed", 0, BOOT);
    assert!(a.wait_exit(Duration::from_secs(30)).success());

    // Errors, one line each.
    let o = Command::new(BIN)
        .args(["-base", base.to_str().unwrap(), "-console", "s"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(stderr(&o), "minimega: vm not running: s");
    let o = Command::new(BIN)
        .args(["-base", base.to_str().unwrap(), "-console", "nobody"])
        .output()
        .unwrap();
    assert_eq!(stderr(&o), "minimega: vm not found: nobody");
    d.ok("vm start s");
    let o = Command::new(BIN)
        .args([
            "-base",
            base.to_str().unwrap(),
            "-console",
            "s",
            "-serial",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(
        stderr(&o),
        "minimega: vm s has no serial port 3 (vm config serial-ports is 1)"
    );
    d.ok("vm kill all");
    d.ok("vm flush");
}
