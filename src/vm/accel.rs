//! Which accelerator QEMU gets: KVM when it really works, else TCG. Probed
//! once at start. Opening /dev/kvm and creating a VM is not enough: under
//! broken nested virtualisation KVM creates VMs but hides basic CPU
//! features (SSE3) the host has, and guests then hang in early boot. So the
//! probe also compares KVM's supported CPUID with the host's, and finally
//! runs a tiny real QEMU (firmware only, no disk: it boots, finds nothing,
//! and exits) under a timeout.

use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
const KVM_CREATE_VM: libc::c_ulong = 0xAE01;
/// _IOWR(KVMIO, 0x05, struct kvm_cpuid2), the struct's fixed part being 8 bytes.
const KVM_GET_SUPPORTED_CPUID: libc::c_ulong = 0xC008_AE05;
const KVM_API_VERSION: i32 = 12;

/// Why KVM cannot be used, in one line, or Ok.
pub fn probe_kvm_ioctl(dev: &Path) -> Result<(), String> {
    let path = std::ffi::CString::new(dev.as_os_str().as_encoded_bytes())
        .map_err(|_| "bad device path".to_string())?;
    // SAFETY: plain syscalls on a descriptor we own; the CPUID buffer is
    // sized for `nent` entries as the ioctl requires.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(format!(
                "cannot open {}: {}",
                dev.display(),
                std::io::Error::last_os_error()
            ));
        }
        let kvm = OwnedFd::from_raw_fd(fd);
        let v = libc::ioctl(kvm.as_raw_fd(), KVM_GET_API_VERSION, 0);
        if v != KVM_API_VERSION {
            return Err(format!("unexpected KVM API version {v}"));
        }
        let vm = libc::ioctl(kvm.as_raw_fd(), KVM_CREATE_VM, 0);
        if vm < 0 {
            return Err(format!(
                "KVM_CREATE_VM failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        drop(OwnedFd::from_raw_fd(vm));
        check_cpuid(kvm.as_raw_fd())
    }
}

/// One `struct kvm_cpuid_entry2`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CpuidEntry {
    function: u32,
    index: u32,
    flags: u32,
    eax: u32,
    ebx: u32,
    ecx: u32,
    edx: u32,
    padding: [u32; 3],
}

#[repr(C)]
struct Cpuid2 {
    nent: u32,
    padding: u32,
    entries: [CpuidEntry; 256],
}

/// Leaf 1 features every x86-64 host has had for twenty years; QEMU's
/// default CPU model needs them. ECX: SSE3, SSSE3... keep to the oldest.
const LEAF1_ECX_REQUIRED: u32 = 1; // SSE3 (pni)
const LEAF1_EDX_REQUIRED: u32 = (1 << 25) | (1 << 26); // SSE, SSE2

unsafe fn check_cpuid(kvm: i32) -> Result<(), String> {
    let mut buf = Box::new(Cpuid2 {
        nent: 256,
        padding: 0,
        entries: [CpuidEntry::default(); 256],
    });
    if libc::ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &mut *buf as *mut Cpuid2) < 0 {
        return Err(format!(
            "KVM_GET_SUPPORTED_CPUID failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    let n = (buf.nent as usize).min(256);
    let Some(leaf1) = buf.entries[..n].iter().find(|e| e.function == 1) else {
        return Err("KVM reports no CPUID leaf 1".into());
    };
    let host = std::arch::x86_64::__cpuid(1);
    let want_ecx = LEAF1_ECX_REQUIRED & host.ecx;
    let want_edx = LEAF1_EDX_REQUIRED & host.edx;
    if leaf1.ecx & want_ecx != want_ecx || leaf1.edx & want_edx != want_edx {
        return Err(
            "KVM hides basic CPU features the host has (broken nested virtualisation)".into(),
        );
    }
    Ok(())
}

/// Boots QEMU's firmware with nothing to boot and `-no-reboot`: it exits
/// on its own within a second or two when KVM runs guest code.
pub async fn probe_kvm_qemu(qemu: &str, limit: Duration) -> Result<(), String> {
    let child = tokio::process::Command::new(qemu)
        .args([
            "-accel",
            "kvm",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-m",
            "32",
            "-no-reboot",
            "-boot",
            "reboot-timeout=0",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {qemu}: {e}"))?;
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Err(_) => Err(format!(
            "a test guest under KVM did not finish within {limit:?}"
        )),
        Ok(Err(e)) => Err(format!("waiting for {qemu}: {e}")),
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                Err(format!(
                    "{qemu} -accel kvm failed: {}",
                    err.lines().next().unwrap_or("no message")
                ))
            } else if err.contains("doesn't support requested feature") {
                Err("KVM lacks CPU features QEMU asks for (broken nested virtualisation)".into())
            } else {
                Ok(())
            }
        }
    }
}

/// The probe as the daemon runs it: KVM or why not.
pub async fn probe(qemu: &str) -> (Accel, Option<String>) {
    let dev = Path::new("/dev/kvm");
    if let Err(why) = probe_kvm_ioctl(dev) {
        return (Accel::Tcg, Some(why));
    }
    match probe_kvm_qemu(qemu, Duration::from_secs(15)).await {
        Ok(()) => (Accel::Kvm, None),
        Err(why) => (Accel::Tcg, Some(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_a_reason() {
        let e = probe_kvm_ioctl(Path::new("/nonexistent/kvm")).unwrap_err();
        assert!(e.starts_with("cannot open /nonexistent/kvm"), "{e}");
    }

    #[test]
    fn display() {
        assert_eq!(Accel::Kvm.to_string(), "kvm");
        assert_eq!(Accel::Tcg.to_string(), "tcg");
    }
}
