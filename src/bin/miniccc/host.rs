//! What the agent reports about its guest: the SMBIOS UUID (the VM's),
//! the host name, and each interface's MAC and addresses.

use std::ffi::CStr;

/// The SMBIOS product UUID, which QEMU sets to the VM's UUID (and a
/// container's monitor binds over the file where the host has DMI).
pub fn uuid() -> Result<String, String> {
    for p in [
        "/sys/devices/virtual/dmi/id/product_uuid",
        "/sys/class/dmi/id/product_uuid",
    ] {
        if let Ok(s) = std::fs::read_to_string(p) {
            return Ok(s.trim().to_ascii_lowercase());
        }
    }
    // In a container on a host without DMI: its UUID as systemd's
    // container interface passes it to PID 1 (minimega's monitor does).
    if let Ok(u) = std::env::var("container_uuid") {
        if !u.trim().is_empty() {
            return Ok(u.trim().to_ascii_lowercase());
        }
    }
    Err("cannot read the SMBIOS UUID (/sys/devices/virtual/dmi/id/product_uuid)".into())
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname terminates
    // the name within it when it fits.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len() - 1) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// (IPs, MACs) of the interfaces that have a hardware address, as Go's
/// net.Interfaces reports them (the loopback has none).
pub fn addresses() -> (Vec<String>, Vec<String>) {
    let mut macs: Vec<(String, String)> = Vec::new();
    let mut ips: Vec<(String, String)> = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return (Vec::new(), Vec::new());
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` walks the list getifaddrs returned, still alive.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a NUL-terminated name owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr points at a sockaddr of the family it names.
        let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
        match family {
            libc::AF_PACKET => {
                // SAFETY: AF_PACKET addresses are sockaddr_ll.
                let ll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
                let n = (ll.sll_halen as usize).min(8);
                let hw = &ll.sll_addr[..n];
                if n > 0 && hw.iter().any(|b| *b != 0) {
                    let mac = hw
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":");
                    macs.push((name, mac));
                }
            }
            libc::AF_INET => {
                // SAFETY: AF_INET addresses are sockaddr_in.
                let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                ips.push((name, ip.to_string()));
            }
            libc::AF_INET6 => {
                // SAFETY: AF_INET6 addresses are sockaddr_in6.
                let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                ips.push((name, ip.to_string()));
            }
            _ => {}
        }
    }
    // SAFETY: the list getifaddrs made, freed once.
    unsafe { libc::freeifaddrs(head) };
    let with_mac = |n: &String| macs.iter().any(|(m, _)| m == n);
    let ips = ips
        .into_iter()
        .filter(|(n, _)| with_mac(n))
        .map(|(_, ip)| ip)
        .collect();
    (ips, macs.into_iter().map(|(_, m)| m).collect())
}
