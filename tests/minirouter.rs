//! minirouter on real tools, in network namespaces the test makes: a
//! router between a client and a server. One update gives the router its
//! addresses, a dnsmasq DHCP range (the client is offered an address from
//! it) and DNS record, and an nftables rule that drops the client's TCP to
//! the server; the next update without the rule lets it through; a bad
//! update is refused with its line named and the last good one stays.
//!
//! Needs root, `ip`, `dnsmasq` and `nft` (Debian: iproute2, dnsmasq-base,
//! nftables; scripts/deps.sh installs them).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The namespaces (and what runs in them) of one run, gone on drop.
struct Lab {
    tag: String,
    dir: PathBuf,
}

impl Lab {
    fn ns(&self, which: &str) -> String {
        format!("mrt{}{which}", self.tag)
    }

    fn new() -> Lab {
        let lab = Lab {
            tag: std::process::id().to_string(),
            dir: std::env::temp_dir().join(format!("minirouter-test-{}", std::process::id())),
        };
        let (r, c, s) = (lab.ns("r"), lab.ns("c"), lab.ns("s"));
        for ns in [&r, &c, &s] {
            sh(&["ip", "netns", "add", ns]);
        }
        sh(&[
            "ip", "link", "add", "eth0", "netns", &r, "type", "veth", "peer", "name", "c0",
            "netns", &c,
        ]);
        sh(&[
            "ip", "link", "add", "eth1", "netns", &r, "type", "veth", "peer", "name", "s0",
            "netns", &s,
        ]);
        for (ns, dev, addr, gw) in [
            (&c, "c0", "10.77.0.2/24", "10.77.0.1"),
            (&s, "s0", "10.78.0.2/24", "10.78.0.1"),
        ] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            sh(&["ip", "-n", ns, "route", "add", "default", "via", gw]);
        }
        lab
    }

    /// `minirouter -u` with `text`, in the router's namespace.
    fn update(&self, text: &str) -> Output {
        std::fs::create_dir_all(&self.dir).unwrap();
        let file = self.dir.join("minirouter-r");
        std::fs::write(&file, text).unwrap();
        let state = self.dir.join("state");
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("r"),
                env!("CARGO_BIN_EXE_minirouter"),
                "-u",
            ])
            .arg(&file)
            .arg("-path")
            .arg(&state)
            .args(["-miniccc", "true"])
            .output()
            .unwrap()
    }

    /// Runs `f` on a thread inside namespace `which`.
    fn inside<T: Send + 'static>(&self, which: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = File::open(Path::new("/var/run/netns").join(self.ns(which))).unwrap();
        std::thread::spawn(move || {
            // SAFETY: setns on this thread only, with a namespace fd we hold.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for daemon in ["dnsmasq", "bird"] {
            let pidfile = self.dir.join("state").join(format!("{daemon}.pid"));
            if let Ok(pid) = std::fs::read_to_string(pidfile)
                .unwrap_or_default()
                .trim()
                .parse::<i32>()
            {
                // SAFETY: the daemon this test's minirouter started.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        for which in ["r", "c", "s"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(which)])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A DHCPDISCOVER from `mac` on `dev`; the address offered, if any.
fn dhcp_offer(dev: &str, mac: [u8; 6]) -> Option<Ipv4Addr> {
    let sock = UdpSocket::bind("0.0.0.0:68").unwrap();
    sock.set_broadcast(true).unwrap();
    // SAFETY: SO_BINDTODEVICE with a name buffer of the given length.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            dev.as_ptr().cast(),
            dev.len() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut p = vec![0u8; 240];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[4..8].copy_from_slice(&0x3903_f326u32.to_be_bytes());
    p[10] = 0x80; // answer by broadcast: the client has no address yet
    p[28..34].copy_from_slice(&mac);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(&[53, 1, 1, 255]); // DISCOVER
    sock.send_to(&p, "255.255.255.255:67").unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    let reply = &buf[..n];
    let offered = reply.len() > 240 && reply[0] == 2 && reply[4..8] == p[4..8];
    offered.then(|| Ipv4Addr::new(reply[16], reply[17], reply[18], reply[19]))
}

/// The A record of `name` from the DNS server at `server`.
fn dns_a(server: &str, name: &str) -> Option<Ipv4Addr> {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    sock.send_to(&q, format!("{server}:53")).unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).ok()?;
    // The answer's address ends the message (one A record, no extras).
    let answers = u16::from_be_bytes([buf[6], buf[7]]);
    (answers > 0 && n >= 4).then(|| Ipv4Addr::new(buf[n - 4], buf[n - 3], buf[n - 2], buf[n - 1]))
}

fn connects(to: SocketAddr) -> bool {
    TcpStream::connect_timeout(&to, Duration::from_secs(2))
        .and_then(|mut s| {
            s.write_all(b"x")?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)
        })
        .is_ok()
}

/// A server in `s` that answers each connection with one byte.
fn serve(lab: &Lab) {
    let listener = lab.inside("s", || TcpListener::bind("10.78.0.2:8080").unwrap());
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let mut b = [0u8; 1];
            if c.read_exact(&mut b).is_ok() {
                let _ = c.write_all(b"y");
            }
        }
    });
}

const ROUTER: &str = "log level info
ip flush
ip add 0 10.77.0.1/24
ip add 1 10.78.0.1/24
dnsmasq flush
dnsmasq dhcp range 10.77.0.1 10.77.0.100 10.77.0.150
dnsmasq dns 10.78.0.2 server.test
route del default
dnsmasq commit
bird flush
bird routerid 10.77.0.1
bird commit
fw flush
fw default accept
";

#[test]
fn minirouter_sets_addresses_dhcp_dns_and_a_firewall() {
    let missing: Vec<&str> = ["ip", "dnsmasq", "nft"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    // scripts/deps.sh installs them: a machine without them fails here
    // rather than passing a test that ran nothing.
    assert!(
        missing.is_empty(),
        "needs {missing:?} (Debian: iproute2 dnsmasq-base nftables; scripts/deps.sh)"
    );
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root");
    let lab = Lab::new();
    let drop_rule = format!("{ROUTER}fw drop in 0 10.78.0.2:8080 tcp\n");
    let out = lab.update(&drop_rule);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let addrs = String::from_utf8(sh(&["ip", "-n", &lab.ns("r"), "-br", "addr"]).stdout).unwrap();
    assert!(
        addrs.contains("10.77.0.1/24") && addrs.contains("10.78.0.1/24"),
        "{addrs}"
    );

    let offer = lab.inside("c", || dhcp_offer("c0", [0x02, 0, 0, 0, 0, 0x42]));
    let offer = offer.expect("no DHCP offer");
    assert!(
        (100..=150).contains(&offer.octets()[3]) && offer.octets()[..3] == [10, 77, 0],
        "{offer}"
    );
    assert_eq!(
        lab.inside("c", || dns_a("10.77.0.1", "server.test")),
        Some(Ipv4Addr::new(10, 78, 0, 2))
    );

    serve(&lab);
    let server: SocketAddr = "10.78.0.2:8080".parse().unwrap();
    assert!(
        !lab.inside("c", move || connects(server)),
        "the drop rule let the client through"
    );

    let out = lab.update(ROUTER);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        lab.inside("c", move || connects(server)),
        "forwarding is blocked without the rule"
    );

    // A bad update names its line and leaves the good configuration.
    let out = lab.update(&format!("{ROUTER}fw drop in 5 10.78.0.2 tcp\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 15 (`fw drop in 5 10.78.0.2 tcp`): no interface 5"),
        "{err}"
    );
    assert!(lab.inside("c", move || connects(server)));
}
