//! The few rtnetlink requests the networks need: bring a link up, delete
//! one, add an address, make a VXLAN or GRE device, and read every link's
//! byte counters in one dump. Messages are built and parsed by pure
//! functions (unit-tested); [`Netlink`] only sends and receives them.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_IFALIAS: u16 = 20;
const IFLA_STATS64: u16 = 23;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VXLAN_ID: u16 = 1;
const IFLA_VXLAN_GROUP: u16 = 2;
const IFLA_VXLAN_PORT: u16 = 15;
const IFLA_GRE_IFLAGS: u16 = 2;
const IFLA_GRE_OFLAGS: u16 = 3;
const IFLA_GRE_IKEY: u16 = 4;
const IFLA_GRE_OKEY: u16 = 5;
const IFLA_GRE_REMOTE: u16 = 7;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;
const GRE_KEY: u16 = 0x2000;
const HDR: usize = 16;

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// One attribute, padded.
pub fn attr(ty: u16, data: &[u8]) -> Vec<u8> {
    let len = 4 + data.len();
    let mut v = Vec::with_capacity(align(len));
    v.extend_from_slice(&(len as u16).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(data);
    v.resize(align(len), 0);
    v
}

fn nested(ty: u16, parts: &[Vec<u8>]) -> Vec<u8> {
    attr(ty | NLA_F_NESTED, &parts.concat())
}

/// A whole message: header, then `body`.
pub fn message(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = HDR + body.len();
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&(len as u32).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&seq.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v.extend_from_slice(body);
    v
}

/// `struct ifinfomsg`.
pub fn ifinfo(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut v = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    v.extend_from_slice(&(index as i32).to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&change.to_ne_bytes());
    v
}

/// A tunnel device to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tunnel {
    Vxlan { vni: u32, remote: Ipv4Addr },
    Gre { key: Option<u32>, remote: Ipv4Addr },
}

impl Tunnel {
    pub fn kind(&self) -> &'static str {
        match self {
            Tunnel::Vxlan { .. } => "vxlan",
            Tunnel::Gre { .. } => "gretap",
        }
    }

    /// The RTM_NEWLINK body for device `name`.
    pub fn body(&self, name: &str) -> Vec<u8> {
        let data = match self {
            Tunnel::Vxlan { vni, remote } => vec![
                attr(IFLA_VXLAN_ID, &vni.to_ne_bytes()),
                attr(IFLA_VXLAN_GROUP, &remote.octets()),
                attr(IFLA_VXLAN_PORT, &4789u16.to_be_bytes()),
            ],
            Tunnel::Gre { key, remote } => {
                let mut d = vec![attr(IFLA_GRE_REMOTE, &remote.octets())];
                if let Some(k) = key {
                    for (flags, ty) in [
                        (IFLA_GRE_IFLAGS, IFLA_GRE_IKEY),
                        (IFLA_GRE_OFLAGS, IFLA_GRE_OKEY),
                    ] {
                        d.push(attr(flags, &GRE_KEY.to_be_bytes()));
                        d.push(attr(ty, &k.to_be_bytes()));
                    }
                }
                d
            }
        };
        let mut b = ifinfo(0, 0, 0);
        b.extend(attr(IFLA_IFNAME, &cstr(name)));
        b.extend(nested(
            IFLA_LINKINFO,
            &[
                attr(IFLA_INFO_KIND, self.kind().as_bytes()),
                nested(IFLA_INFO_DATA, &data),
            ],
        ));
        b
    }
}

/// veth's IFLA_INFO_DATA attribute holding the peer's own link message.
const VETH_INFO_PEER: u16 = 1;

/// The RTM_NEWLINK body for a veth pair `name` <-> `peer`.
pub fn veth_body(name: &str, peer: &str) -> Vec<u8> {
    let mut peer_msg = ifinfo(0, 0, 0);
    peer_msg.extend(attr(IFLA_IFNAME, &cstr(peer)));
    let mut b = ifinfo(0, 0, 0);
    b.extend(attr(IFLA_IFNAME, &cstr(name)));
    b.extend(nested(
        IFLA_LINKINFO,
        &[
            attr(IFLA_INFO_KIND, b"veth"),
            nested(IFLA_INFO_DATA, &[attr(VETH_INFO_PEER, &peer_msg)]),
        ],
    ));
    b
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// The RTM_NEWADDR body for `ip/prefix` on link `index`.
pub fn addr_body(index: u32, ip: IpAddr, prefix: u8) -> Vec<u8> {
    let (family, bytes) = match ip {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    let mut b = vec![family, prefix, 0, 0];
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend(attr(IFA_LOCAL, &bytes));
    b.extend(attr(IFA_ADDRESS, &bytes));
    b
}

/// RTM_NEWLINK's body bringing link `index` up, with `alias` if any.
pub fn up_body(index: u32, alias: &str) -> Vec<u8> {
    let up = libc::IFF_UP as u32;
    let mut b = ifinfo(index, up, up);
    if !alias.is_empty() {
        b.extend(attr(IFLA_IFALIAS, alias.as_bytes()));
    }
    b
}

/// A link's name and byte counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Its alias (`ip link set ... alias`): a VM tap's says whose it is.
    pub alias: String,
}

/// The messages in a received buffer: (type, payload).
pub fn split(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + HDR <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or([0; 4])) as usize;
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < HDR || off + len > buf.len() {
            break;
        }
        out.push((ty, &buf[off + HDR..off + len]));
        off += align(len);
    }
    out
}

/// The attributes after a fixed-size header.
fn attrs(data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= data.len() {
        let len = u16::from_ne_bytes([data[off], data[off + 1]]) as usize;
        let ty = u16::from_ne_bytes([data[off + 2], data[off + 3]]) & !NLA_F_NESTED;
        if len < 4 || off + len > data.len() {
            break;
        }
        out.push((ty, &data[off + 4..off + len]));
        off += align(len);
    }
    out
}

/// Reads an RTM_NEWLINK payload (from a dump).
pub fn parse_link(payload: &[u8]) -> Option<Link> {
    if payload.len() < 16 {
        return None;
    }
    let index = i32::from_ne_bytes(payload[4..8].try_into().ok()?) as u32;
    let mut l = Link {
        index,
        name: String::new(),
        rx_bytes: 0,
        tx_bytes: 0,
        alias: String::new(),
    };
    for (ty, v) in attrs(&payload[16..]) {
        match ty {
            IFLA_IFNAME => {
                l.name = String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(v)).into()
            }
            IFLA_IFALIAS => {
                l.alias = String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(v)).into()
            }
            IFLA_STATS64 if v.len() >= 32 => {
                l.rx_bytes = u64::from_ne_bytes(v[16..24].try_into().ok()?);
                l.tx_bytes = u64::from_ne_bytes(v[24..32].try_into().ok()?);
            }
            _ => {}
        }
    }
    Some(l)
}

/// The errno of an NLMSG_ERROR payload (0 is an acknowledgement).
pub fn error_code(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes)
        .unwrap_or(-libc::EPROTO)
}

/// A route netlink socket of this network namespace.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the descriptor is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor nobody else owns.
        Ok(Netlink {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            seq: 0,
        })
    }

    fn send(&mut self, ty: u16, flags: u16, body: &[u8]) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let msg = message(ty, flags | NLM_F_REQUEST, self.seq, body);
        // SAFETY: sending our own buffer on our own socket (to the kernel,
        // the default destination of an unbound netlink socket).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(self.seq)
    }

    fn recv(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        // SAFETY: receiving into a buffer we own, within its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// Sends a request and waits for its acknowledgement.
    fn request(&mut self, ty: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        self.send(ty, flags | NLM_F_ACK, body)?;
        loop {
            let buf = self.recv()?;
            for (t, payload) in split(&buf) {
                if t == NLMSG_ERROR {
                    let code = error_code(payload);
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-code))
                    };
                }
            }
        }
    }

    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        self.set_up_as(index, "")
    }

    /// Brings a link up and, in the same request, gives it `alias` (none
    /// when empty).
    pub fn set_up_as(&mut self, index: u32, alias: &str) -> io::Result<()> {
        self.request(RTM_NEWLINK, 0, &up_body(index, alias))
    }

    /// Deletes a link; one that is already gone is no error.
    pub fn delete(&mut self, name: &str) -> io::Result<()> {
        let Some(index) = super::index(name) else {
            return Ok(());
        };
        match self.request(RTM_DELLINK, 0, &ifinfo(index, 0, 0)) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            r => r,
        }
    }

    pub fn add_addr(&mut self, index: u32, ip: IpAddr, prefix: u8) -> io::Result<()> {
        self.request(
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            &addr_body(index, ip, prefix),
        )
    }

    pub fn new_veth(&mut self, name: &str, peer: &str) -> io::Result<()> {
        self.request(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &veth_body(name, peer),
        )
    }

    pub fn new_tunnel(&mut self, name: &str, t: &Tunnel) -> io::Result<()> {
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &t.body(name))
    }

    /// Every link of the namespace, with its counters.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        self.send(RTM_GETLINK, NLM_F_DUMP, &ifinfo(0, 0, 0))?;
        let mut out = Vec::new();
        loop {
            let buf = self.recv()?;
            for (t, payload) in split(&buf) {
                match t {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = error_code(payload);
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    RTM_NEWLINK => out.extend(parse_link(payload)),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_messages_sized() {
        assert_eq!(attr(3, b"ab"), [6, 0, 3, 0, b'a', b'b', 0, 0]);
        let m = message(RTM_NEWLINK, NLM_F_REQUEST, 9, &ifinfo(7, 1, 1));
        assert_eq!(m.len(), 32);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 9);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
    }

    #[test]
    fn a_vxlan_device_names_vni_remote_and_port() {
        let b = Tunnel::Vxlan {
            vni: 42,
            remote: Ipv4Addr::new(10, 0, 0, 2),
        }
        .body("mega_vxlan0");
        let top = attrs(&b[16..]);
        assert_eq!(top[0], (IFLA_IFNAME, &b"mega_vxlan0\0"[..]));
        let info = attrs(top[1].1);
        assert_eq!(info[0], (IFLA_INFO_KIND, &b"vxlan"[..]));
        let data = attrs(info[1].1);
        assert_eq!(data[0], (IFLA_VXLAN_ID, &42u32.to_ne_bytes()[..]));
        assert_eq!(data[1], (IFLA_VXLAN_GROUP, &[10, 0, 0, 2][..]));
        assert_eq!(data[2], (IFLA_VXLAN_PORT, &[0x12, 0xb5][..]));
        let g = Tunnel::Gre {
            key: Some(5),
            remote: Ipv4Addr::new(1, 2, 3, 4),
        };
        assert_eq!(g.kind(), "gretap");
        let body = g.body("g");
        let info = attrs(attrs(&body[16..])[1].1);
        assert_eq!(attrs(info[1].1).len(), 5);
    }

    #[test]
    fn dumps_and_errors_parse() {
        let mut stats = vec![0u8; 64];
        stats[16..24].copy_from_slice(&1000u64.to_ne_bytes());
        stats[24..32].copy_from_slice(&2000u64.to_ne_bytes());
        let mut body = ifinfo(4, 0, 0);
        body.extend(attr(IFLA_IFNAME, b"mega_tap0\0"));
        body.extend(attr(IFLA_STATS64, &stats));
        let mut buf = message(RTM_NEWLINK, 0, 1, &body);
        buf.extend(message(NLMSG_DONE, 0, 1, &[0; 4]));
        let msgs = split(&buf);
        assert_eq!(msgs.len(), 2);
        let l = parse_link(msgs[0].1).unwrap();
        assert_eq!(
            l,
            Link {
                index: 4,
                name: "mega_tap0".into(),
                rx_bytes: 1000,
                tx_bytes: 2000,
                alias: String::new(),
            }
        );
        // A tap marked as a VM's says whose it is, in the same request
        // that brings it up.
        let mut body = up_body(4, "minimega-vm 0badf00d/3");
        assert_eq!(attrs(&body[16..])[0].1, b"minimega-vm 0badf00d/3");
        body.extend(attr(IFLA_IFNAME, b"mega_tap0\0"));
        let l = parse_link(&body).unwrap();
        assert_eq!(
            (l.name.as_str(), l.alias.as_str()),
            ("mega_tap0", "minimega-vm 0badf00d/3")
        );
        assert_eq!(msgs[1].0, NLMSG_DONE);
        assert_eq!(error_code(&(-17i32).to_ne_bytes()), -17);
        let a = addr_body(3, "10.0.0.1".parse().unwrap(), 24);
        assert_eq!(&a[..2], &[libc::AF_INET as u8, 24]);
        assert_eq!(attrs(&a[8..])[0], (IFA_LOCAL, &[10, 0, 0, 1][..]));
    }
}
