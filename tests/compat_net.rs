//! minimega's capture and mirror commands on a real guest, a real Open
//! vSwitch (userspace datapath) and real traffic: `capture pcap snaplen`
//! and `filter` (frames cut and picked as tcpdump's filter says),
//! `capture netflow` (Open vSwitch's NetFlow export read back as
//! minimega's ASCII lines) and `tap mirror` (a guest's traffic seen on
//! another tap). Needs openvswitch-switch, tcpdump and cpio
//! (scripts/deps.sh).

mod common;

use common::guest::*;
use common::ovs::Site;
use common::*;
use std::time::Duration;

/// The records of a pcap file: (captured length, original length, bytes).
fn pcap_records(b: &[u8]) -> (u32, Vec<(u32, u32, Vec<u8>)>) {
    assert!(b.len() >= 24, "no pcap header");
    let le = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let snaplen = le(16);
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let (incl, orig) = (le(i + 8), le(i + 12));
        let end = i + 16 + incl as usize;
        if end > b.len() {
            break;
        }
        out.push((incl, orig, b[i + 16..end].to_vec()));
        i = end;
    }
    (snaplen, out)
}

#[test]
fn captures_and_mirrors_as_minimega_makes_them() {
    let site = Site::new("compat-net");
    let bus = Bus::start();
    let d = site.daemon(&bus, None);
    let base = d.base.clone();
    let files = base.join("files");
    let _guard = VmGuard { base: base.clone() };
    let initrd = ping_initrd(&site.scratch.path);

    d.ok("tap create 100 bridge mega_bridge ip 10.98.0.1/24 hosttap");
    d.ok("tap create 100 bridge mega_bridge name mirror0");
    let (kernel, _) = guest();
    d.ok("clear vm config");
    d.ok("vm config memory 256");
    d.ok(&format!("vm config kernel {}", kernel.display()));
    d.ok(&format!("vm config initrd {}", initrd.display()));
    d.ok("vm config serial-ports 1");
    d.ok("vm config net 100");
    d.ok("vm config append console=ttyS0 mm.ip=10.98.0.11/24 mm.ping=10.98.0.1");
    d.ok("vm launch kvm g1");

    // pcap settings, minimega's forms; a bad filter is refused when set.
    assert_eq!(d.ok("capture pcap snaplen"), "0");
    d.ok("capture pcap snaplen 64");
    d.ok("capture pcap filter icmp");
    let e = fails(&d, "capture pcap filter \"bogus junk\"");
    assert!(e.contains("invalid filter `bogus junk`"), "{e}");
    assert_eq!(d.ok("capture pcap filter"), "icmp");
    assert_eq!(d.ok("capture pcap snaplen"), "64");

    // netflow: ASCII lines into a file, a short timeout.
    assert_eq!(d.ok("capture netflow mode"), "raw");
    d.ok("capture netflow mode ascii");
    d.ok("capture netflow timeout 1");
    assert_eq!(d.ok("capture netflow timeout"), "1");
    d.ok("capture netflow bridge mega_bridge flows.txt");
    assert!(
        site.ovs()
            .vsctl(&["get", "bridge", "mega_bridge", "netflow"])
            .len()
            > 2,
        "Open vSwitch exports the bridge's flows"
    );

    d.ok("vm start g1");
    let id = vm_info(&d)[0]["id"].clone();
    let tap = vm_info(&d)[0]["tap"]
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    wait_for("g1 pinging the host tap", BOOT, || {
        std::fs::read_to_string(base.join(&id).join("serial0.log"))
            .unwrap_or_default()
            .contains("MM-PING 10.98.0.1 ok")
            .then_some(())
    });

    // pcap: only ICMP, at most 64 bytes of each frame.
    d.ok("capture pcap vm g1 0 g1.pcap");
    let pcap = files.join("g1.pcap");
    wait_for("pings in the capture", Duration::from_secs(120), || {
        let b = std::fs::read(&pcap).unwrap_or_default();
        (b.len() > 24 && pcap_records(&b).1.len() >= 4).then_some(())
    });
    d.ok("capture pcap delete vm g1");
    let (snaplen, recs) = pcap_records(&std::fs::read(&pcap).unwrap());
    assert_eq!(snaplen, 64);
    for (incl, orig, data) in &recs {
        assert!(
            *incl <= 64 && *orig > 64,
            "cut to the snaplen: {incl} of {orig}"
        );
        assert_eq!(&data[12..14], &[0x08, 0x00], "IPv4");
        assert_eq!(data[23], 1, "ICMP only, as the filter says");
    }

    // tap mirror: g1's traffic also leaves mirror0.
    d.ok(&format!("tap mirror {tap} mirror0"));
    assert_eq!(
        fails(&d, &format!("tap mirror {tap} mirror0")),
        "E: destination tap is already a mirror"
    );
    assert_eq!(
        fails(&d, "tap mirror mirror0 mirror0"),
        "E: cannot mirror tap to itself"
    );
    assert!(site.ovs().vsctl(&["list", "mirror"]).contains("mirror0"));
    let seen = site.sh("timeout 120 tcpdump -nn -i mirror0 -c 2 icmp 2>/dev/null | wc -l");
    assert_eq!(seen, "2", "two ICMP frames mirrored to mirror0");
    d.ok("clear tap mirror mirror0");
    assert_eq!(
        fails(&d, "clear tap mirror mirror0"),
        "E: not a valid mirror"
    );
    assert!(!site.ovs().vsctl(&["list", "mirror"]).contains("mirror0"));

    // netflow records of the pings, minimega's ASCII fields.
    let flows = files.join("flows.txt");
    wait_for("an ICMP flow exported", Duration::from_secs(180), || {
        let t = std::fs::read_to_string(&flows).unwrap_or_default();
        t.lines()
            .find(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                f.len() == 8 && f[2] == "1" && f[3].starts_with("10.98.0.11:") && f[4] == "<->"
            })
            .map(String::from)
    });
    let listed = d.ok(".annotate false .columns type,mode,compress,path capture");
    assert!(listed.contains("netflow | ascii | false    | "), "{listed}");
    d.ok("capture netflow delete bridge mega_bridge");
    assert_eq!(
        site.ovs()
            .vsctl(&["get", "bridge", "mega_bridge", "netflow"])
            .trim(),
        "[]"
    );
    assert_eq!(d.ok(".annotate false capture"), "");
    d.ok("vm kill all");
    d.ok("clear namespace all");
}
