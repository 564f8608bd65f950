//! The kernel edge: taps made with /dev/net/tun ioctls, links changed with
//! rtnetlink ([`netlink`]), and AF_PACKET sockets for snooping and
//! capture. No shell, no `ip` process per tap. Everything acts in the
//! daemon's own network namespace.

pub mod netlink;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_TUN_EXCL: libc::c_short = -0x8000;

/// The link's index, if it exists.
pub fn index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name we own.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens /dev/net/tun attached to tap `name` (made if missing; with
/// `exclusive`, an existing one is an error).
fn tun(name: &str, exclusive: bool) -> io::Result<OwnedFd> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: open(2) of a constant path; the descriptor is owned at once.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("/dev/net/tun: {e}")));
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI | if exclusive { IFF_TUN_EXCL } else { 0 },
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes an ifreq we own.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Registers a descriptor with the runtime's reactor.
fn reactor(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd stays open, and is the same descriptor, for as
    // long as the AsyncFd owns it.
    unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

/// Makes a persistent tap for QEMU to open by name, and brings it up,
/// with `alias` (whose tap it is; none when empty).
pub fn create_tap(name: &str, alias: &str, nl: &mut netlink::Netlink) -> io::Result<()> {
    let fd = tun(name, true)?;
    // SAFETY: TUNSETPERSIST takes an integer argument.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETPERSIST, 1 as libc::c_ulong) } < 0 {
        let e = io::Error::last_os_error();
        drop(fd);
        return Err(e);
    }
    drop(fd);
    let r = index(name)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))
        .and_then(|i| nl.set_up_as(i, alias));
    if r.is_err() {
        let _ = nl.delete(name);
    }
    r
}

/// Makes a veth pair for a container's NIC: `name` on the switch, up,
/// with `alias`; `peer` for the container's monitor to move in.
pub fn create_veth(
    name: &str,
    peer: &str,
    alias: &str,
    nl: &mut netlink::Netlink,
) -> io::Result<()> {
    nl.new_veth(name, peer)?;
    let r = index(name)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))
        .and_then(|i| nl.set_up_as(i, alias));
    if r.is_err() {
        let _ = nl.delete(name);
    }
    r
}

/// A tap that exists while the returned queue is open (a capture's
/// mirror output): frames the switch sends out of it are read here.
pub fn open_queue(name: &str, nl: &mut netlink::Netlink) -> io::Result<AsyncFd<OwnedFd>> {
    let fd = tun(name, true)?;
    let i = index(name).ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?;
    nl.set_up(i)?;
    reactor(fd)
}

const ETH_P_ALL: u16 = 0x0003;
pub const PACKET_OUTGOING: u8 = 4;

/// A classic BPF program: ARP, and IPv6 whose next header is ICMPv6.
pub fn arp_ndp_filter() -> Vec<libc::sock_filter> {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    vec![
        op(0x28, 0, 0, 12),     // ldh [12]: ethertype
        op(0x15, 3, 0, 0x0806), // ARP: accept
        op(0x15, 0, 3, 0x86dd), // not IPv6: drop
        op(0x30, 0, 0, 20),     // ldb [20]: next header
        op(0x15, 0, 1, 58),     // ICMPv6: accept
        op(0x06, 0, 0, 256),
        op(0x06, 0, 0, 0),
    ]
}

/// An AF_PACKET socket on one link (`Some(index)`) or all of them.
pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
}

/// What a received frame is.
pub struct Frame {
    pub len: usize,
    pub ifindex: u32,
    pub pkttype: u8,
}

impl PacketSocket {
    pub fn open(
        ifindex: Option<u32>,
        filter: Option<&[libc::sock_filter]>,
    ) -> io::Result<PacketSocket> {
        // SAFETY: plain socket(2); the descriptor is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                ETH_P_ALL.to_be() as i32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if let Some(f) = filter {
            let prog = libc::sock_fprog {
                len: f.len() as u16,
                filter: f.as_ptr() as *mut libc::sock_filter,
            };
            // SAFETY: the program outlives the call; the kernel copies it.
            let r = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ATTACH_FILTER,
                    (&prog as *const libc::sock_fprog).cast(),
                    std::mem::size_of::<libc::sock_fprog>() as u32,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(i) = ifindex {
            // SAFETY: an all-zero sockaddr_ll is valid; we set what bind reads.
            let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sa.sll_family = libc::AF_PACKET as u16;
            sa.sll_protocol = ETH_P_ALL.to_be();
            sa.sll_ifindex = i as i32;
            // SAFETY: binding our socket to an address we own.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(PacketSocket { fd: reactor(fd)? })
    }

    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Frame> {
        let mut frame = Frame {
            len: 0,
            ifindex: 0,
            pkttype: 0,
        };
        frame.len = self
            .fd
            .async_io(Interest::READABLE, |fd| {
                // SAFETY: an all-zero sockaddr_ll is valid for recvfrom to fill.
                let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut sl = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                // SAFETY: receiving into buffers we own, within their lengths.
                let n = unsafe {
                    libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_TRUNC,
                        (&mut sa as *mut libc::sockaddr_ll).cast(),
                        &mut sl,
                    )
                };
                frame.ifindex = sa.sll_ifindex as u32;
                frame.pkttype = sa.sll_pkttype;
                result(n)
            })
            .await?;
        Ok(frame)
    }
}

/// A syscall's byte count, or its error.
fn result(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reads one frame from a tap's queue.
pub async fn read_queue(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    fd.async_io(Interest::READABLE, |fd| {
        // SAFETY: reading into a buffer we own, within its length.
        result(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
    })
    .await
}
