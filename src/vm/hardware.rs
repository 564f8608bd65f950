//! The `vm config` fields of the guest's virtual hardware that minimega
//! 3.1.0 added beside the older ones: CPU topology (`sockets`, `cores`,
//! `threads`), the USB controller (`usb-use-xhci`), a TPM (`tpm-socket`)
//! and the clipboard agent (`bidirectional-copy-paste`); their parsing,
//! listing and QEMU arguments. Pure.

use super::config::{boolean, count, ConfigError, Section};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Hardware {
    /// 0: QEMU's default for each.
    pub sockets: u64,
    pub cores: u64,
    pub threads: u64,
    /// xHCI (qemu-xhci) for USB 2.0/3.0 devices, else EHCI (usb-ehci).
    pub usb_use_xhci: bool,
    /// A TPM emulator's socket (swtpm); empty: no TPM.
    pub tpm_socket: String,
    /// QEMU's vdagent on a virtio-serial port: the guest's clipboard
    /// shared both ways over VNC.
    pub bidirectional_copy_paste: bool,
}

impl Default for Hardware {
    fn default() -> Self {
        Hardware {
            sockets: 0,
            cores: 0,
            threads: 0,
            usb_use_xhci: true,
            tpm_socket: String::new(),
            bidirectional_copy_paste: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwField {
    Sockets,
    Cores,
    Threads,
    UsbUseXhci,
    TpmSocket,
    BidirectionalCopyPaste,
}

/// The fields by their command names.
pub const HW_FIELDS: &[(&str, HwField)] = &[
    ("sockets", HwField::Sockets),
    ("cores", HwField::Cores),
    ("threads", HwField::Threads),
    ("usb-use-xhci", HwField::UsbUseXhci),
    ("tpm-socket", HwField::TpmSocket),
    ("bidirectional-copy-paste", HwField::BidirectionalCopyPaste),
];

impl HwField {
    pub fn name(self) -> &'static str {
        HW_FIELDS
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Where minimega's `vm config` lists it (KVM section, after CPU).
    pub fn listing(self) -> (Section, u16, &'static str) {
        match self {
            HwField::Cores => (Section::Kvm, 130, "Cores"),
            HwField::Threads => (Section::Kvm, 140, "Threads"),
            HwField::Sockets => (Section::Kvm, 150, "Sockets"),
            HwField::UsbUseXhci => (Section::Kvm, 170, "Usb Use XHCI"),
            HwField::BidirectionalCopyPaste => (Section::Kvm, 180, "Bidirectional Copy Paste"),
            // minimega's label has a blank before its tab.
            HwField::TpmSocket => (Section::Kvm, 190, "TPM Socket: "),
        }
    }
}

impl Hardware {
    pub fn set(&mut self, f: HwField, v: &str, filepath: &Path) -> Result<(), ConfigError> {
        match f {
            HwField::Sockets => self.sockets = count("sockets", v, 0, 1024, "at most 1024")?,
            HwField::Cores => self.cores = count("cores", v, 0, 1024, "at most 1024")?,
            HwField::Threads => self.threads = count("threads", v, 0, 1024, "at most 1024")?,
            HwField::UsbUseXhci => self.usb_use_xhci = boolean("usb-use-xhci", v)?,
            HwField::TpmSocket => self.tpm_socket = super::config::resolve_file(filepath, v)?,
            HwField::BidirectionalCopyPaste => {
                self.bidirectional_copy_paste = boolean("bidirectional-copy-paste", v)?
            }
        }
        Ok(())
    }

    pub fn get(&self, f: HwField) -> String {
        match f {
            HwField::Sockets => self.sockets.to_string(),
            HwField::Cores => self.cores.to_string(),
            HwField::Threads => self.threads.to_string(),
            HwField::UsbUseXhci => self.usb_use_xhci.to_string(),
            HwField::TpmSocket => self.tpm_socket.clone(),
            HwField::BidirectionalCopyPaste => self.bidirectional_copy_paste.to_string(),
        }
    }

    pub fn clear(&mut self, f: HwField) {
        let d = Hardware::default();
        match f {
            HwField::Sockets => self.sockets = d.sockets,
            HwField::Cores => self.cores = d.cores,
            HwField::Threads => self.threads = d.threads,
            HwField::UsbUseXhci => self.usb_use_xhci = d.usb_use_xhci,
            HwField::TpmSocket => self.tpm_socket = d.tpm_socket,
            HwField::BidirectionalCopyPaste => {
                self.bidirectional_copy_paste = d.bidirectional_copy_paste
            }
        }
    }

    /// `-smp`'s value: the vCPUs and the topology given (minimega's order).
    pub fn smp(&self, vcpus: u64) -> String {
        let mut s = vcpus.to_string();
        for (k, v) in [
            ("cores", self.cores),
            ("threads", self.threads),
            ("sockets", self.sockets),
        ] {
            if v != 0 {
                s.push_str(&format!(",{k}={v}"));
            }
        }
        s
    }

    /// The USB buses every VM gets, as minimega gives them: USB 1.1
    /// (`usb-bus.0`, with a tablet on it so VNC's pointer is absolute) and
    /// an xHCI or EHCI controller for 2.0 and 3.0 devices.
    pub fn usb_args(&self) -> Vec<String> {
        let controller = if self.usb_use_xhci {
            "qemu-xhci,id=xhci"
        } else {
            "usb-ehci,id=ehci"
        };
        [
            "-usb",
            "-device",
            controller,
            "-device",
            "usb-tablet,bus=usb-bus.0",
        ]
        .map(String::from)
        .to_vec()
    }

    /// The bus USB 2.0 and 3.0 drives are plugged into.
    pub fn usb2_bus(&self) -> &'static str {
        if self.usb_use_xhci {
            "xhci.0"
        } else {
            "ehci.0"
        }
    }

    /// A TPM on the emulator's socket, as minimega wires it.
    pub fn tpm_args(&self) -> Vec<String> {
        if self.tpm_socket.is_empty() {
            return Vec::new();
        }
        vec![
            "-chardev".into(),
            format!(
                "socket,id=chrtpm,path={}",
                self.tpm_socket.replace(',', ",,")
            ),
            "-tpmdev".into(),
            "emulator,id=tpm0,chardev=chrtpm".into(),
            "-device".into(),
            "tpm-tis,tpmdev=tpm0".into(),
        ]
    }

    /// QEMU's clipboard agent on a virtio-serial port of its own, named as
    /// SPICE's agent expects (`com.redhat.spice.0`).
    pub fn copy_paste_args(&self) -> Vec<String> {
        if !self.bidirectional_copy_paste {
            return Vec::new();
        }
        [
            "-device",
            "virtio-serial-pci,id=virtio-serial-vdagent",
            "-chardev",
            "qemu-vdagent,id=vdagent,clipboard=on",
            "-device",
            "virtserialport,bus=virtio-serial-vdagent.0,chardev=vdagent,name=com.redhat.spice.0",
        ]
        .map(String::from)
        .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_minimegas() {
        let h = Hardware::default();
        assert_eq!((h.sockets, h.cores, h.threads), (0, 0, 0));
        assert!(h.usb_use_xhci && !h.bidirectional_copy_paste && h.tpm_socket.is_empty());
        assert_eq!(h.smp(2), "2");
        assert!(h.tpm_args().is_empty() && h.copy_paste_args().is_empty());
        assert_eq!(
            h.usb_args().join(" "),
            "-usb -device qemu-xhci,id=xhci -device usb-tablet,bus=usb-bus.0"
        );
    }

    #[test]
    fn set_get_clear() {
        let mut h = Hardware::default();
        let fp = Path::new("/tmp/minimega/files");
        h.set(HwField::Cores, "2", fp).unwrap();
        h.set(HwField::Threads, "2", fp).unwrap();
        h.set(HwField::Sockets, "1", fp).unwrap();
        assert_eq!(h.smp(4), "4,cores=2,threads=2,sockets=1");
        assert_eq!(
            h.set(HwField::Cores, "foo", fp).unwrap_err().to_string(),
            "invalid cores `foo`: not a number"
        );
        h.set(HwField::UsbUseXhci, "false", fp).unwrap();
        assert_eq!(h.get(HwField::UsbUseXhci), "false");
        assert!(h.usb_args().contains(&"usb-ehci,id=ehci".to_string()));
        assert_eq!(h.usb2_bus(), "ehci.0");
        h.set(HwField::TpmSocket, "swtpm/sock", fp).unwrap();
        assert_eq!(h.tpm_socket, "/tmp/minimega/files/swtpm/sock");
        assert_eq!(
            h.tpm_args().join(" "),
            "-chardev socket,id=chrtpm,path=/tmp/minimega/files/swtpm/sock \
             -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0"
        );
        h.set(HwField::BidirectionalCopyPaste, "true", fp).unwrap();
        assert!(h
            .copy_paste_args()
            .join(" ")
            .contains("qemu-vdagent,id=vdagent,clipboard=on"));
        assert!(h.set(HwField::BidirectionalCopyPaste, "yes", fp).is_err());
        for (_, f) in HW_FIELDS {
            h.clear(*f);
        }
        assert_eq!(h, Hardware::default());
    }
}
