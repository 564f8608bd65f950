//! Where discovery broadcasts go. A cluster network often has no default
//! route, and then the limited broadcast 255.255.255.255 fails with
//! "Network is unreachable"; each interface's own (directed) broadcast
//! address always has a route. So, unless `-broadcast` names one address,
//! discovery sends to the broadcast address of every IPv4 interface that
//! is up, read again before each broadcast so interfaces that come up
//! later are used. That address is the subnet's all-ones address, which
//! Linux routes as a broadcast whatever `brd` says: an address added
//! without one (`ip addr add 10.0.0.5/24 dev eth0`) reports its own address
//! as its broadcast address, which would reach nobody.

use std::net::Ipv4Addr;

/// One IPv4 address of an interface, as getifaddrs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub up: bool,
    pub loopback: bool,
    /// The interface broadcasts (it is not point-to-point).
    pub broadcasts: bool,
    pub addr: Ipv4Addr,
    pub netmask: Ipv4Addr,
    /// The broadcast address it reports, if any.
    pub broadcast: Option<Ipv4Addr>,
}

impl Iface {
    /// The subnet's broadcast address, and the configured one if it is
    /// another; none for /31 and /32, which have no broadcast.
    fn broadcast_addrs(&self) -> Vec<Ipv4Addr> {
        let mask = u32::from(self.netmask);
        let mut out = Vec::new();
        if mask.leading_ones() < 31 && mask.count_ones() == mask.leading_ones() {
            out.push(Ipv4Addr::from(u32::from(self.addr) | !mask));
        }
        if let Some(b) = self.broadcast {
            if b != self.addr && !b.is_unspecified() && !out.contains(&b) {
                out.push(b);
            }
        }
        out
    }
}

/// The addresses to broadcast to: `explicit` alone if given, else those
/// of each up, broadcasting, non-loopback interface, once each, in order.
pub fn targets(explicit: Option<Ipv4Addr>, ifaces: &[Iface]) -> Vec<Ipv4Addr> {
    if let Some(a) = explicit {
        return vec![a];
    }
    let mut out: Vec<Ipv4Addr> = Vec::new();
    for i in ifaces
        .iter()
        .filter(|i| i.up && i.broadcasts && !i.loopback)
    {
        for b in i.broadcast_addrs() {
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    out
}

/// This host's IPv4 interface addresses (an empty list if they cannot be
/// read).
pub fn list() -> Vec<Iface> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        let v4 = |sa: *mut libc::sockaddr| -> Option<Ipv4Addr> {
            // SAFETY: a non-null sockaddr of family AF_INET is a sockaddr_in.
            unsafe {
                if sa.is_null() || (*sa).sa_family as i32 != libc::AF_INET {
                    return None;
                }
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
        };
        let Some(addr) = v4(ifa.ifa_addr) else {
            continue;
        };
        let flags = ifa.ifa_flags as i32;
        // SAFETY: getifaddrs gives every entry a NUL-terminated name.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let broadcasts = flags & libc::IFF_BROADCAST != 0;
        out.push(Iface {
            name,
            up: flags & libc::IFF_UP != 0,
            loopback: flags & libc::IFF_LOOPBACK != 0,
            broadcasts,
            addr,
            netmask: v4(ifa.ifa_netmask).unwrap_or(Ipv4Addr::BROADCAST),
            // For a point-to-point interface this field is the peer.
            broadcast: if broadcasts { v4(ifa.ifa_ifu) } else { None },
        });
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, up: bool, addr: [u8; 4], prefix: u32, brd: Option<[u8; 4]>) -> Iface {
        Iface {
            name: name.into(),
            up,
            loopback: name == "lo",
            broadcasts: !name.starts_with("tun"),
            addr: addr.into(),
            netmask: Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0)),
            broadcast: brd.map(Ipv4Addr::from),
        }
    }

    #[test]
    fn every_up_interface_once_unless_one_address_is_given() {
        let ifs = [
            iface("lo", true, [127, 0, 0, 1], 8, None),
            // Added without `brd`: it reports its own address.
            iface("eth0", true, [10, 0, 0, 5], 24, Some([10, 0, 0, 5])),
            iface("eth0", true, [10, 0, 0, 6], 24, Some([10, 0, 0, 255])),
            iface("eth1", false, [10, 1, 0, 5], 24, Some([10, 1, 0, 255])),
            iface("ib0", true, [172, 16, 3, 4], 16, Some([172, 16, 255, 255])),
            iface("tun0", true, [10, 8, 0, 1], 24, Some([10, 8, 0, 2])),
            iface("p2p", true, [192, 168, 9, 1], 31, None),
            iface("odd", true, [192, 168, 7, 1], 24, Some([192, 168, 7, 127])),
        ];
        assert_eq!(
            targets(None, &ifs),
            [
                Ipv4Addr::new(10, 0, 0, 255),
                Ipv4Addr::new(172, 16, 255, 255),
                Ipv4Addr::new(192, 168, 7, 255),
                Ipv4Addr::new(192, 168, 7, 127),
            ]
        );
        assert_eq!(
            targets(Some(Ipv4Addr::BROADCAST), &ifs),
            [Ipv4Addr::BROADCAST]
        );
        assert!(targets(None, &ifs[..1]).is_empty());
    }

    #[test]
    fn this_host_has_a_loopback() {
        assert!(list().iter().any(|i| i.loopback && i.up), "{:?}", list());
    }
}
