//! A VM's screen and console from the head when the VM runs on another
//! node of the test bed (real systemd nodes on one private LAN, the
//! daemon as its unit runs it): the VNC port of a VM on node2 answers a
//! viewer on the head, `vm screenshot` reaches it, `vnc play` of a file
//! only the head has types into it (node2 fetches the file), and
//! `minimega -console` on the head attaches a terminal to its serial port
//! through the mesh.

mod common;

use common::guest::{guest, BOOT};
use common::pty::Pty;
use common::testbed::Testbed;
use std::time::{Duration, Instant};

const KEY: &str = "dGhlIHZuYyBtZXNoIHRlc3QncyBvd24gbWVzaCBrZXkgIQ==";

/// A viewer's handshake and one whole-screen update, in Python on `from`:
/// prints the screen's size and the first update's message type.
const VIEWER: &str = r#"
import socket, struct, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 30)
def rd(n):
    b = b''
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            sys.exit('the server hung up')
        b += c
    return b
rd(12); s.sendall(b'RFB 003.008\n')
n = rd(1)[0]; rd(n); s.sendall(b'\x01'); rd(4); s.sendall(b'\x01')
h = rd(24); w, hh = struct.unpack('>HH', h[:4]); rd(struct.unpack('>I', h[20:24])[0])
s.sendall(struct.pack('>BBHHHH', 3, 0, 0, 0, w, hh))
print(w, hh, rd(4)[0])
"#;

/// A kb file typing `text` and Return, in the original's format.
fn kb_typing(text: &str) -> String {
    use minimega::console::keys;
    let mut out = String::from("#: written on the head\n");
    for k in keys::type_text(text).unwrap() {
        out.push_str(&format!(
            "20000000:KeyEvent,{},{}\n",
            k.down,
            keys::format_key(k.keysym)
        ));
    }
    // Return after a pause, as a person types it (see tests/vnc.rs).
    out + "20000000:KeyEvent,true,Return\n20000000:KeyEvent,false,Return\n"
}

#[test]
fn a_vm_on_node2_is_seen_played_into_and_attached_to_from_the_head() {
    let (kernel, initrd) = guest();
    let bed = Testbed::mesh_of(&["head", "node2"], KEY);
    let (head, node2) = (bed.node("head"), bed.node("node2"));
    for line in [
        "namespace exp vm config memory 256".to_string(),
        format!("namespace exp vm config kernel {}", kernel.display()),
        format!("namespace exp vm config initrd {}", initrd.display()),
        "namespace exp vm config append console=ttyS0 mm.vgashell mm.serialshell".into(),
        "namespace exp vm config serial-ports 1".into(),
        "namespace exp vm config schedule node2".into(),
        "namespace exp vm launch kvm far".into(),
        "namespace exp vm start far".into(),
    ] {
        head.mm(&line);
    }
    // vm info on the head: the VM is on node2, with its port.
    let row = head.mm(
        ".annotate true .headers false .csv true .columns name,id,vnc_port namespace exp vm info",
    );
    let f: Vec<&str> = row.split(',').collect();
    assert_eq!((f[0], f[1]), ("node2", "far"), "{row}");
    let (id, port) = (f[2].to_string(), f[3].to_string());
    port.parse::<u16>().unwrap_or_else(|_| panic!("{row}"));
    let log = format!("/run/minimega/{id}/serial0.log");
    node2.wait_ok(&format!("grep -q MINIMEGA-GUEST-UP {log}"), BOOT);
    // The VGA shell starts after that marker, and keys that reach tty1
    // before it has opened it are gone: knock (a line typed again every
    // 20 s) until it answers; the file played below goes once.
    let deadline = Instant::now() + BOOT;
    let mut knocked: Option<Instant> = None;
    while !node2
        .sh(&format!("grep -q VGA-2-UP {log}"))
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the VGA shell never answered");
        if knocked.is_none_or(|t| t.elapsed() > Duration::from_secs(20)) {
            head.mm("namespace exp vnc type far \"echo VGA-$((1+1))-UP >/dev/ttyS0\n\"");
            knocked = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // A viewer on the head reaches node2's port.
    head.ok(&format!("cat > /root/viewer.py <<'EOF'\n{VIEWER}\nEOF"));
    let got = head.ok(&format!("python3 /root/viewer.py node2 {port}"));
    assert_eq!(got, "720 400 0", "a text-mode screen, then an update");
    // vm screenshot from the head, of a VM on node2.
    // Its PNG comes back in the answer's Data, from node2.
    let shot = head.mm(".json true namespace exp vm screenshot far 200");
    assert!(
        shot.contains("\"node2\"") && shot.contains("iVBORw0KGgo"),
        "{shot}"
    );

    // A file only the head has, played into the VM on node2.
    head.ok(&format!(
        "mkdir -p /run/minimega/files && cat > /run/minimega/files/remote.kb <<'EOF'\n{}EOF",
        kb_typing("echo REMOTE-$((2*3)) >/dev/ttyS0")
    ));
    node2.ok("test ! -e /run/minimega/files/remote.kb");
    head.mm("namespace exp vnc play far remote.kb");
    node2.wait_ok(&format!("grep -q REMOTE-6 {log}"), BOOT);
    node2.ok("test -f /run/minimega/files/remote.kb");

    // The serial console, attached on the head through the mesh.
    let mut p = Pty::spawn(head.command("minimega -namespace exp -console far"));
    let at = p.wait_for("Ctrl-] leaves", 0, BOOT);
    p.type_bytes(b"echo MESH-$((7*3))\r");
    p.wait_for("MESH-21", at, BOOT);
    p.type_bytes(&[0x1d]);
    assert!(p.wait_exit(Duration::from_secs(60)).success());
    node2.ok(&format!("grep -q MESH-21 {log}"));

    head.mm("namespace exp vm kill all");
    head.mm("namespace exp vm flush");
}
