//! `vm hotplug`: USB drives added to and removed from running VMs over
//! QMP, as minimega does. Every VM gets a USB 1.1 bus (`usb-bus.0`) and an
//! xHCI controller (`xhci.0`, for 2.0 and 3.0) at launch, from the
//! [`Usb`] hook. Each VM's drives are kept in `hotplug.json` in its folder,
//! so they survive a daemon restart with the VM, and go with its QEMU.

use super::config;
use super::hooks::VmHook;
use super::manager::{Vm, VmError};
use crate::command::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// How long a removed drive may take to let go of its image.
const UNPLUG_WAIT: Duration = Duration::from_secs(10);

/// The USB version a drive appears as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UsbVersion {
    #[serde(rename = "1.1")]
    V11,
    #[serde(rename = "2.0")]
    V20,
    #[serde(rename = "3.0")]
    V30,
}

impl UsbVersion {
    /// minimega's versions; none given is 1.1.
    pub fn parse(s: Option<&str>) -> Result<UsbVersion, String> {
        match s.unwrap_or("") {
            "" | "1.1" => Ok(UsbVersion::V11),
            "2.0" => Ok(UsbVersion::V20),
            "3.0" => Ok(UsbVersion::V30),
            v => Err(format!("invalid version: `{v}`")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            UsbVersion::V11 => "1.1",
            UsbVersion::V20 => "2.0",
            UsbVersion::V30 => "3.0",
        }
    }

    /// The bus the drive goes on (see [`config::Hardware::usb_args`]).
    pub fn bus(self) -> &'static str {
        match self {
            UsbVersion::V11 => "usb-bus.0",
            UsbVersion::V20 | UsbVersion::V30 => "xhci.0",
        }
    }
}

/// One hotplugged drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drive {
    pub file: String,
    pub version: UsbVersion,
    #[serde(default)]
    pub serial: String,
}

/// A VM's drives by id.
pub type Drives = BTreeMap<u32, Drive>;

/// The id a new drive gets: one more than the highest, as minimega.
pub fn next_id(drives: &Drives) -> u32 {
    drives.keys().next_back().map_or(0, |k| k + 1)
}

/// QEMU's name for drive `id`, both its block node and its device.
pub fn qemu_id(id: u32) -> String {
    format!("hotplug{id}")
}

/// The image format, from the file's first bytes (QEMU's own magics);
/// anything else is raw.
pub fn image_format(head: &[u8]) -> &'static str {
    const MAGICS: &[(&[u8], &str)] = &[
        (b"QFI\xfb", "qcow2"),
        (b"QED\0", "qed"),
        (b"KDMV", "vmdk"),
        (b"vhdxfile", "vhdx"),
        (b"conectix", "vpc"),
    ];
    for (magic, fmt) in MAGICS {
        if head.starts_with(magic) {
            return fmt;
        }
    }
    // VDI keeps its signature at byte 64.
    if head.len() >= 68 && head[64..68] == [0x7f, 0x10, 0xda, 0xbe] {
        return "vdi";
    }
    "raw"
}

/// `blockdev-add` arguments for a drive image.
pub fn blockdev_args(id: u32, file: &str, format: &str) -> Value {
    json!({
        "driver": format,
        "node-name": qemu_id(id),
        "file": { "driver": "file", "filename": file },
    })
}

/// `device_add` arguments for the USB storage device of a drive.
pub fn device_args(id: u32, d: &Drive) -> Value {
    let mut v = json!({
        "driver": "usb-storage",
        "id": qemu_id(id),
        "drive": qemu_id(id),
        "bus": d.version.bus(),
    });
    if !d.serial.is_empty() {
        v["serial"] = json!(d.serial);
    }
    v
}

fn record_path(vm: &Vm) -> PathBuf {
    vm.paths.dir.join("hotplug.json")
}

/// The VM's drives, as recorded.
pub fn drives(vm: &Vm) -> Drives {
    std::fs::read(record_path(vm))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}

fn save(vm: &Vm, d: &Drives) -> Result<(), VmError> {
    let path = record_path(vm);
    if d.is_empty() {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    crate::durable::write_json(&path, d, &format!("VM {}'s USB drives", vm.name))
        .map_err(VmError::Save)
}

fn format_of(file: &Path) -> Result<&'static str, VmError> {
    let mut head = [0u8; 72];
    let mut f = std::fs::File::open(file).map_err(|e| VmError::File {
        path: file.to_path_buf(),
        source: e,
    })?;
    let n = f.read(&mut head).unwrap_or(0);
    Ok(image_format(&head[..n]))
}

/// Plugs a drive into a running VM; returns its id. A drive QEMU refuses
/// leaves nothing behind.
pub async fn add(
    vm: &Arc<Vm>,
    file: &str,
    version: UsbVersion,
    serial: &str,
) -> Result<u32, VmError> {
    let _op = vm.op.lock().await;
    let q = vm.qmp()?;
    let fail = |e: super::qmp::QmpError| VmError::qmp(&vm.name, "hotplug", e);
    let format = format_of(Path::new(file))?;
    let mut all = drives(vm);
    let id = next_id(&all);
    let drive = Drive {
        file: file.to_string(),
        version,
        serial: serial.to_string(),
    };
    q.execute("blockdev-add", Some(blockdev_args(id, file, format)))
        .await
        .map_err(fail)?;
    if let Err(e) = q.execute("device_add", Some(device_args(id, &drive))).await {
        let _ = q
            .execute("blockdev-del", Some(json!({ "node-name": qemu_id(id) })))
            .await;
        return Err(fail(e));
    }
    all.insert(id, drive);
    if let Err(e) = save(vm, &all) {
        // Not recorded, so not done: unplugged again.
        let _ = q
            .execute("device_del", Some(json!({ "id": qemu_id(id) })))
            .await;
        let _ = q
            .execute("blockdev-del", Some(json!({ "node-name": qemu_id(id) })))
            .await;
        return Err(e);
    }
    Ok(id)
}

/// Unplugs one drive, or every drive (`None`).
pub async fn remove(vm: &Arc<Vm>, which: Option<u32>) -> Result<(), VmError> {
    let _op = vm.op.lock().await;
    let q = vm.qmp()?;
    let mut all = drives(vm);
    let ids: Vec<u32> = match which {
        Some(id) if all.contains_key(&id) => vec![id],
        Some(_) => return Err(VmError::NoHotplugDevice),
        None if all.is_empty() => return Err(VmError::NoHotplugDevices),
        None => all.keys().copied().collect(),
    };
    for id in ids {
        let name = qemu_id(id);
        if let Err(e) = q.execute("device_del", Some(json!({ "id": name }))).await {
            // Already gone (the guest let go of it): free the image anyway.
            if !matches!(&e, super::qmp::QmpError::Command { class, .. } if class == "DeviceNotFound")
            {
                return Err(VmError::qmp(&vm.name, "hotplug", e));
            }
        }
        // The device goes asynchronously; its image is free once it has.
        let deadline = tokio::time::Instant::now() + UNPLUG_WAIT;
        loop {
            match q
                .execute("blockdev-del", Some(json!({ "node-name": name })))
                .await
            {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(VmError::qmp(&vm.name, "hotplug", e));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        all.remove(&id);
        save(vm, &all)?;
    }
    Ok(())
}

/// Adds the USB buses to every VM, and forgets drives with their QEMU.
pub struct Usb;

impl VmHook for Usb {
    fn name(&self) -> &'static str {
        "usb"
    }

    fn prepare<'a>(
        &'a self,
        vm: &'a Arc<Vm>,
        config: &'a config::VmConfig,
    ) -> BoxFuture<'a, Result<Vec<String>, VmError>> {
        Box::pin(async move {
            // A new QEMU starts with no drive plugged in.
            let _ = std::fs::remove_file(record_path(vm));
            Ok(config.hw.usb_args())
        })
    }

    fn release<'a>(&'a self, vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = std::fs::remove_file(record_path(vm)) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!(vm = %vm.name, "cannot remove {}: {e}", record_path(vm).display());
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_their_buses() {
        assert_eq!(UsbVersion::parse(None), Ok(UsbVersion::V11));
        assert_eq!(UsbVersion::parse(Some("1.1")).unwrap().bus(), "usb-bus.0");
        assert_eq!(UsbVersion::parse(Some("2.0")).unwrap().bus(), "xhci.0");
        assert_eq!(UsbVersion::parse(Some("3.0")).unwrap().name(), "3.0");
        assert_eq!(
            UsbVersion::parse(Some("4")).unwrap_err(),
            "invalid version: `4`"
        );
    }

    #[test]
    fn ids_follow_the_highest() {
        let d = |f: &str| Drive {
            file: f.into(),
            version: UsbVersion::V11,
            serial: String::new(),
        };
        let mut all = Drives::new();
        assert_eq!(next_id(&all), 0);
        all.insert(0, d("a"));
        all.insert(3, d("b"));
        assert_eq!(next_id(&all), 4);
        all.remove(&3);
        assert_eq!(next_id(&all), 1);
    }

    #[test]
    fn formats_from_magic_numbers() {
        assert_eq!(image_format(b"QFI\xfb\0\0\0\x03"), "qcow2");
        assert_eq!(image_format(b"KDMV\x01"), "vmdk");
        assert_eq!(image_format(b"\0\0\0\0"), "raw");
        assert_eq!(image_format(b""), "raw");
        let mut vdi = vec![0u8; 72];
        vdi[64..68].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(image_format(&vdi), "vdi");
    }

    #[test]
    fn qmp_arguments() {
        let a = blockdev_args(2, "/f/usb.img", "raw");
        assert_eq!(a["node-name"], "hotplug2");
        assert_eq!(a["file"]["filename"], "/f/usb.img");
        let d = Drive {
            file: "/f/usb.img".into(),
            version: UsbVersion::V20,
            serial: "abc".into(),
        };
        let v = device_args(2, &d);
        assert_eq!(
            v,
            json!({"driver": "usb-storage", "id": "hotplug2", "drive": "hotplug2",
                   "bus": "xhci.0", "serial": "abc"})
        );
        let plain = Drive {
            serial: String::new(),
            ..d
        };
        assert!(device_args(0, &plain).get("serial").is_none());
        let back: Drives = serde_json::from_str(r#"{"0":{"file":"x","version":"2.0"}}"#).unwrap();
        assert_eq!(back[&0].version, UsbVersion::V20);
    }
}
