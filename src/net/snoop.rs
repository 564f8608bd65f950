//! Which addresses a guest uses, learned as minimega does from its own
//! traffic: the sender of its ARP packets, and the source of its ICMPv6
//! (neighbour discovery) packets, skipping unspecified, link-local and
//! multicast ones. Pure; the daemon feeds it frames from one AF_PACKET
//! socket (a BPF filter lets only ARP and ICMPv6 through), no libpcap.

use crate::vm::nic::Mac;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The source MAC and the address a frame shows its sender using.
pub fn learn(frame: &[u8]) -> Option<(Mac, IpAddr)> {
    let src = Mac(frame.get(6..12)?.try_into().ok()?);
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let p = frame.get(14..)?;
    let ip = match ethertype {
        0x0806 => {
            // htype 1, ptype IPv4, hlen 6, plen 4; sender address at 14.
            if p.get(2..6)? != [0x08, 0x00, 6, 4] {
                return None;
            }
            let a: [u8; 4] = p.get(14..18)?.try_into().ok()?;
            IpAddr::V4(Ipv4Addr::from(a))
        }
        0x86dd => {
            if *p.get(6)? != 58 {
                return None;
            }
            let a: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return None,
    };
    useful(&ip).then_some((src, ip))
}

fn useful(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_unspecified() || a.is_link_local() || a.is_multicast() || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            !(a.is_unspecified() || a.is_multicast() || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn arp(sender: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
        p.extend_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
        p.extend_from_slice(&sender);
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&[10, 0, 0, 2]);
        p
    }

    fn icmp6(src: Ipv6Addr) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 8, 58, 255];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&[0xff; 16]);
        p.extend_from_slice(&[135, 0, 0, 0]);
        p
    }

    const M: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];

    #[test]
    fn arp_senders_and_icmpv6_sources() {
        let (mac, ip) = learn(&eth(M, 0x0806, &arp([10, 0, 0, 1]))).unwrap();
        assert_eq!(mac.to_string(), "52:54:00:00:00:01");
        assert_eq!(ip.to_string(), "10.0.0.1");
        let (_, ip) = learn(&eth(M, 0x86dd, &icmp6("fd00::5".parse().unwrap()))).unwrap();
        assert_eq!(ip.to_string(), "fd00::5");
    }

    #[test]
    fn probes_link_local_and_others_teach_nothing() {
        assert!(learn(&eth(M, 0x0806, &arp([0, 0, 0, 0]))).is_none());
        assert!(learn(&eth(M, 0x0806, &arp([169, 254, 1, 1]))).is_none());
        assert!(learn(&eth(M, 0x86dd, &icmp6(Ipv6Addr::UNSPECIFIED))).is_none());
        assert!(learn(&eth(M, 0x86dd, &icmp6("fe80::1".parse().unwrap()))).is_none());
        let mut udp6 = icmp6("fd00::5".parse().unwrap());
        udp6[6] = 17;
        assert!(learn(&eth(M, 0x86dd, &udp6)).is_none());
        assert!(learn(&eth(M, 0x0800, &[0; 40])).is_none());
        assert!(learn(&[0; 10]).is_none());
        assert!(learn(&eth(M, 0x0806, &arp([10, 0, 0, 1])[..10])).is_none());
    }
}
