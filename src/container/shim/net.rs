//! The container's network namespace, made and removed with `ip`: the
//! daemon made each NIC's veth pair on the host; the monitor moves the
//! inner ends into the namespace and names them as the guest sees them.
//!
//! Each inner end computes its own checksums (TX checksum offload off,
//! as `ethtool -K eth0 tx off` would): a veth hands its peer packets
//! whose TCP and UDP checksums are left for the hardware to fill, and
//! Open vSwitch's userspace datapath (the netdev bridges used where the
//! openvswitch module is not loaded) forwards them unfilled, so the
//! receiver drops them as corrupt. Ping (checksummed in software) works
//! without this, but a router container's DHCP server gave no lease in
//! 90 s until its NICs had it off (tests/router_e2e.rs).

use crate::container::spec::Spec;
use std::process::Command;

/// The `ip` invocations that make the namespace, in order.
pub fn setup_commands(spec: &Spec) -> Vec<Vec<String>> {
    let ns = spec.netns.as_str();
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut out = vec![v(&["netns", "add", ns])];
    for nic in &spec.nics {
        out.push(v(&["link", "set", "dev", &nic.peer, "netns", ns]));
        out.push(v(&[
            "-n", ns, "link", "set", "dev", &nic.peer, "name", &nic.name, "address", &nic.mac,
        ]));
        out.push(v(&["-n", ns, "link", "set", "dev", &nic.name, "up"]));
    }
    out.push(v(&["-n", ns, "link", "set", "dev", "lo", "up"]));
    out
}

/// An `ip` invocation that failed, with the first line it printed.
#[derive(Debug, thiserror::Error)]
#[error("ip {cmd}: {why}")]
pub struct NetError {
    pub cmd: String,
    pub why: String,
}

fn ip(args: &[String]) -> Result<(), NetError> {
    let fail = |why: String| NetError {
        cmd: args.join(" "),
        why,
    };
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(fail(
        err.lines().next().unwrap_or("failed").trim().to_string(),
    ))
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x17;

/// `struct ifreq` with its `ifr_data` member, as SIOCETHTOOL takes it.
#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// Turns off TX checksum offload on `dev` (in this network namespace).
pub fn tx_checksum_off(dev: &str) -> Result<(), NetError> {
    let fail = |why: String| NetError {
        cmd: format!("ethtool -K {dev} tx off"),
        why,
    };
    if dev.is_empty() || dev.len() >= libc::IFNAMSIZ {
        return Err(fail("bad device name".into()));
    }
    // struct ethtool_value { u32 cmd; u32 data; }
    let mut value: [u32; 2] = [ETHTOOL_STXCSUM, 0];
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: value.as_mut_ptr().cast(),
        _pad: [0; 16],
    };
    req.name[..dev.len()].copy_from_slice(dev.as_bytes());
    // SAFETY: a datagram socket only for the ioctl, closed below; the
    // request and the value it points to outlive the call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(fail(std::io::Error::last_os_error().to_string()));
        }
        let rc = libc::ioctl(fd, SIOCETHTOOL as _, &mut req as *mut IfreqData);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(fail(err.to_string()));
        }
    }
    Ok(())
}

/// Makes the namespace; on failure nothing of it is left.
pub fn setup(spec: &Spec) -> Result<(), NetError> {
    // Before the move: the ends are still in this namespace, and the
    // setting goes along with them.
    for nic in &spec.nics {
        tx_checksum_off(&nic.peer)?;
    }
    // One of this name is a leftover of a monitor that was killed (the
    // name is this VM's): its processes died with that monitor.
    if std::path::Path::new("/run/netns")
        .join(&spec.netns)
        .exists()
    {
        remove(&spec.netns);
    }
    for (i, cmd) in setup_commands(spec).iter().enumerate() {
        if let Err(e) = ip(cmd) {
            if i > 0 {
                remove(&spec.netns);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Deleting the namespace (once its processes are gone) destroys the
/// veth ends inside, and with them their host-side peers.
pub fn remove(netns: &str) {
    let _ = ip(&["netns".into(), "delete".into(), netns.into()]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::NicSpec;

    #[test]
    fn moves_renames_and_raises_each_nic() {
        let spec = Spec {
            name: "c".into(),
            uuid: String::new(),
            hostname: String::new(),
            vmdir: "/vm".into(),
            filesystem: "/fs".into(),
            snapshot: false,
            init: vec!["/init".into()],
            preinit: String::new(),
            fifos: 0,
            volumes: vec![],
            nics: vec![NicSpec {
                peer: "mm0p".into(),
                name: "eth0".into(),
                mac: "00:11:22:33:44:55".into(),
            }],
            netns: "mm-c".into(),
            memory: 0,
            cgroup_leaf: "l".into(),
        };
        let c: Vec<String> = setup_commands(&spec).iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            c,
            [
                "netns add mm-c",
                "link set dev mm0p netns mm-c",
                "-n mm-c link set dev mm0p name eth0 address 00:11:22:33:44:55",
                "-n mm-c link set dev eth0 up",
                "-n mm-c link set dev lo up",
            ]
        );
    }
}
