//! `cc tunnel` and `cc rtunnel` through an agent in a real guest: ours
//! here, the stock Go agent in `the_stock_go_agent_works_with_this_daemon`
//! (both run [`tunnels_through`]).

use super::*;
use std::net::TcpListener;

/// Whether something listens on this host's `port`.
fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Sends `line` through a new connection to `port` and reads it echoed.
fn echoed(port: u16, line: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.write_all(line.as_bytes()).ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < line.len() {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// Forward and reverse tunnels through the agent of running VM `vm`
/// (`uuid`), whose guest has busybox: an echo server in the guest reached
/// from this host, a server on this host reached from the guest, the
/// listing, closing, and the errors. Leaves the VM running.
pub(crate) fn tunnels_through(d: &Daemon, vm: &str, uuid: &str) {
    // An echo server in the guest, on its loopback.
    let bg = post(d, "cc background /bin/busybox nc -ll -p 7777 -e /bin/cat");
    wait_answers(d, bg, 1);
    let src = free_port();
    d.ok(&format!("cc tunnel {vm} {src} 127.0.0.1 7777"));
    assert!(listening(src), "nothing listens on the forward's port");
    // Data both ways, larger than one tunnel message (32 KiB) too.
    let big = "0123456789abcdef".repeat(8 * 1024) + "\n";
    wait_for("the guest's echo through the tunnel", ANSWER, || {
        (echoed(src, "ping\n").as_deref() == Some("ping\n")).then_some(())
    });
    assert_eq!(echoed(src, &big).as_deref(), Some(big.as_str()));
    // Two connections at once stay apart.
    let mut a = TcpStream::connect(("127.0.0.1", src)).unwrap();
    let mut b = TcpStream::connect(("127.0.0.1", src)).unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    a.write_all(b"from-a\n").unwrap();
    b.write_all(b"from-b\n").unwrap();
    let mut buf = [0u8; 7];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from-b\n");
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from-a\n");
    drop((a, b));

    // Listed as minimega lists it; `all` too.
    let want = BTreeMap::from([
        ("vm".to_string(), vm.to_string()),
        ("id".to_string(), "1".to_string()),
        ("src port".to_string(), src.to_string()),
        ("dst".to_string(), "127.0.0.1".to_string()),
        ("dst port".to_string(), "7777".to_string()),
    ]);
    assert_eq!(rows(d, &format!("cc tunnel list {vm}")), vec![want.clone()]);
    assert_eq!(rows(d, "cc tunnel list all"), vec![want.clone()]);
    assert_eq!(rows(d, &format!("cc tunnel list {uuid}"))[0]["id"], "1");

    // Bad input: one clear error each, and nothing more listed.
    let busy = fails(d, &format!("cc tunnel {vm} {src} 127.0.0.1 7777"));
    assert!(
        busy.contains(&format!("listen tcp :{src}:")) && busy.contains("in use"),
        "{busy}"
    );
    assert!(fails(d, "cc tunnel nosuchvm 20001 127.0.0.1 22").contains("vm not found: nosuchvm"));
    assert!(
        fails(d, &format!("cc tunnel {vm} http 127.0.0.1 22")).contains("non-integer src: http")
    );
    assert!(fails(d, &format!("cc tunnel {vm} 20001 127.0.0.1 99999"))
        .contains("invalid dst port: 99999"));
    assert!(fails(d, &format!("cc tunnel close {vm} 9")).contains("forwarder with ID 9 not found"));
    assert!(fails(d, &format!("cc tunnel close {vm} x")).contains("invalid format for tunnel ID"));
    assert_eq!(rows(d, "cc tunnel list all").len(), 1);

    // A destination the guest cannot reach: the connection closes.
    let dead = free_port();
    d.ok(&format!("cc tunnel {vm} {dead} 127.0.0.1 1"));
    let mut s = TcpStream::connect(("127.0.0.1", dead)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut one = [0u8; 1];
    assert!(matches!(s.read(&mut one), Ok(0) | Err(_)));
    d.ok(&format!("cc tunnel close {vm} 2"));

    // The other way: the agent listens in the guest, this host answers.
    let here = TcpListener::bind("127.0.0.1:0").unwrap();
    let here_port = here.local_addr().unwrap().port();
    d.ok(&format!("cc rtunnel 7778 127.0.0.1 {here_port}"));
    let sent = post(
        d,
        "cc exec /bin/sh -c \"(echo from-the-guest; sleep 5) | /bin/busybox nc 127.0.0.1 7778\"",
    );
    let (mut conn, _) = here.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut line = [0u8; 15];
    conn.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"from-the-guest\n");
    // And back: what this host writes, the guest's nc prints.
    conn.write_all(b"from-the-host\n").unwrap();
    wait_answers(d, sent, 1);
    assert_eq!(
        response(d, sent, uuid, "stdout").unwrap(),
        "from-the-host\n"
    );
    drop(conn);
    // A guest port in use is the agent's error, named.
    let taken = fails(d, "cc rtunnel 7777 127.0.0.1 1");
    assert!(taken.contains("listen tcp :7777"), "{taken}");
    // Not a forward of this host: not listed.
    assert_eq!(rows(d, "cc tunnel list all").len(), 1);

    // Closing stops listening.
    d.ok(&format!("cc tunnel close {vm} 1"));
    assert!(!listening(src), "the closed forward still listens");
    assert!(rows(d, "cc tunnel list all").is_empty());
    assert!(fails(d, &format!("cc tunnel close {vm} 1")).contains("forwarder with ID 1 not found"));

    // When the agent goes, so do its forwards.
    let again = free_port();
    d.ok(&format!("cc tunnel {vm} {again} 127.0.0.1 7777"));
    assert!(listening(again));
    d.ok(&format!("vm kill {vm}"));
    wait_for("the agent to go", ANSWER, || {
        (clients(d) == 0).then_some(())
    });
    wait_for("its forward to close", ANSWER, || {
        (!listening(again)).then_some(())
    });
    let gone = fails(d, &format!("cc tunnel {vm} {again} 127.0.0.1 7777"));
    assert!(gone.contains(&format!("no such client: {uuid}")), "{gone}");
    assert!(!listening(again));
}

#[test]
fn tunnels_through_our_agent_in_a_guest() {
    let bus = Bus::start();
    let daemon = Daemon::start(&bus);
    let d = &daemon;
    let _qemus = VmGuard {
        base: d.base.clone(),
    };
    let (kernel, initrd) = guest_with_agent(&d.scratch.path);
    d.ok("vm config memory 192");
    d.ok(&format!("vm config kernel {}", kernel.display()));
    d.ok(&format!("vm config initrd {}", initrd.display()));
    d.ok("vm config serial-ports 1");
    d.ok("vm config append console=ttyS0 mm.hostname=tun1");
    d.ok("vm launch kvm tun1");
    let u = uuids(d)["tun1"].clone();
    d.ok("vm start tun1");
    wait_for("the agent", BOOT, || (clients(d) == 1).then_some(()));
    tunnels_through(d, "tun1", &u);
}
