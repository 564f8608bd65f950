//! QEMU's command line for one VM, built from its config and where its
//! files live. Pure: no file is touched here, so every argv is unit-tested.
//!
//! QEMU starts paused (`-S`) and in the foreground (no `-daemonize`: the
//! daemon keeps it as a child and watches it); its monitor is one QMP unix
//! socket in the VM's folder; serial ports are unix sockets there too, each
//! also logged to a file so the console is readable after the fact.

use super::accel::Accel;
use super::config::VmConfig;
use std::path::{Path, PathBuf};

/// Files of one VM under `<base>/<id>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPaths {
    pub dir: PathBuf,
}

impl VmPaths {
    pub fn new(base: &Path, id: u64) -> VmPaths {
        VmPaths {
            dir: base.join(id.to_string()),
        }
    }
    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp")
    }
    pub fn vnc(&self) -> PathBuf {
        self.dir.join("vnc")
    }
    pub fn serial(&self, n: u64) -> PathBuf {
        self.dir.join(format!("serial{n}"))
    }
    pub fn serial_log(&self, n: u64) -> PathBuf {
        self.dir.join(format!("serial{n}.log"))
    }
    /// QEMU's stdout and stderr.
    pub fn qemu_log(&self) -> PathBuf {
        self.dir.join("qemu.log")
    }
}

/// Translation cache for TCG, in MiB: bounded so a VM's memory limit can
/// hold it (QEMU's own default is up to 1 GiB per VM).
pub const TCG_TB_SIZE_MIB: u64 = 256;

/// Everything the argv depends on.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub name: &'a str,
    pub uuid: &'a str,
    pub paths: &'a VmPaths,
    pub accel: Accel,
    pub config: &'a VmConfig,
    /// Arguments the VM hooks added (NICs, the cc port, ...).
    pub extra: &'a [String],
}

/// The full argv, program first.
pub fn qemu_argv(l: &Launch<'_>) -> Vec<String> {
    let c = l.config;
    let p = l.paths;
    let mut a: Vec<String> = vec![c.qemu.clone()];
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["-name", l.name, "-uuid", l.uuid]);
    push(&["-m", &c.memory.to_string(), "-smp", &c.hw.smp(c.vcpus)]);
    match l.accel {
        Accel::Kvm => push(&["-accel", "kvm"]),
        Accel::Tcg => push(&["-accel", &format!("tcg,tb-size={TCG_TB_SIZE_MIB}")]),
    }
    if !c.machine.is_empty() {
        push(&["-machine", &c.machine]);
    }
    let cpu = match (c.cpu.as_str(), l.accel) {
        ("", Accel::Kvm) => "host",
        (cpu, _) => cpu,
    };
    if !cpu.is_empty() {
        push(&["-cpu", cpu]);
    }
    // QEMU's default devices, as minimega's guests get them (images expect
    // ttyS0 and the rest): no -nodefaults. No NIC but the configured
    // ones (minimega's `-net none`), and the default HMP monitor is gone
    // with the QMP one below.
    push(&["-no-user-config", "-display", "none", "-net", "none"]);
    push(&["-vga", &c.vga]);
    // With a password QEMU refuses every client until the VNC room sets
    // it over QMP (`change-vnc-password`), so it is never in the argv.
    let auth = if c.vnc_password.is_empty() {
        ""
    } else {
        ",password=on"
    };
    push(&["-vnc", &format!("unix:{}{auth}", p.vnc().display())]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=qmp,path={},server=on,wait=off",
            p.qmp().display()
        ),
        "-mon",
        "chardev=qmp,mode=control",
    ]);
    if c.serial_ports == 0 {
        // The default ttyS0 (minimega's goes to QEMU's captured stdout):
        // written to the log the first serial port would have.
        push(&[
            "-chardev",
            &format!(
                "file,id=serial0,path={}",
                escape(&p.serial_log(0).to_string_lossy())
            ),
            "-serial",
            "chardev:serial0",
        ]);
    }
    for n in 0..c.serial_ports {
        push(&[
            "-chardev",
            &format!(
                "socket,id=serial{n},path={},server=on,wait=off,logfile={}",
                p.serial(n).display(),
                p.serial_log(n).display()
            ),
            "-device",
            &format!("isa-serial,chardev=serial{n}"),
        ]);
    }
    let ports = super::virtio::argv(&c.virtio_ports, &p.dir);
    push(&ports.iter().map(String::as_str).collect::<Vec<_>>());
    a.extend(c.hw.tpm_args());
    a.extend(c.hw.copy_paste_args());
    a.extend(crate::vm::drive::drive_args(&c.disks, c.snapshot, &p.dir));
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    // Always present, so `vm cdrom change` works on a VM booted without one.
    let mut cd = String::from("id=cdrom,if=ide,media=cdrom");
    if !c.cdrom.is_empty() {
        cd.push_str(&format!(",file={}", escape(&c.cdrom)));
    }
    push(&["-drive", &cd]);
    if !c.kernel.is_empty() {
        push(&["-kernel", &c.kernel]);
    }
    if !c.initrd.is_empty() {
        push(&["-initrd", &c.initrd]);
    }
    if !c.append.is_empty() {
        push(&["-append", &c.append.join(" ")]);
    }
    a.extend(l.extra.iter().cloned());
    a.push("-S".into());
    a.extend(c.qemu_append.iter().cloned());
    let program = a.remove(0);
    let mut a = super::overrides::apply(a, &c.qemu_override);
    a.insert(0, program);
    a
}

/// QEMU option values double a comma to mean a literal one.
fn escape(v: &str) -> String {
    v.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::drive::DiskSpec;

    fn argv(c: &VmConfig, accel: Accel) -> Vec<String> {
        let paths = VmPaths::new(Path::new("/b"), 7);
        qemu_argv(&Launch {
            name: "web1",
            uuid: "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc",
            paths: &paths,
            accel,
            config: c,
            extra: &[],
        })
    }

    #[test]
    fn default_config_under_tcg() {
        let got = argv(&VmConfig::default(), Accel::Tcg).join(" ");
        let want = "qemu-system-x86_64 -name web1 -uuid 9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc \
            -m 2048 -smp 1 -accel tcg,tb-size=256 -no-user-config -display none -net none \
            -vga std -vnc unix:/b/7/vnc \
            -chardev socket,id=qmp,path=/b/7/qmp,server=on,wait=off -mon chardev=qmp,mode=control \
            -chardev file,id=serial0,path=/b/7/serial0.log -serial chardev:serial0 \
            -drive id=cdrom,if=ide,media=cdrom -S";
        assert_eq!(got, want);
    }

    #[test]
    fn kvm_defaults_to_the_host_cpu() {
        let a = argv(&VmConfig::default(), Accel::Kvm);
        let s = a.join(" ");
        assert!(s.contains("-accel kvm -cpu host -no-user-config"), "{s}");
        let c = VmConfig {
            cpu: "qemu64".into(),
            ..VmConfig::default()
        };
        assert!(argv(&c, Accel::Kvm).join(" ").contains("-cpu qemu64"));
    }

    #[test]
    fn everything_set() {
        let c = VmConfig {
            memory: 256,
            vcpus: 2,
            disks: vec![
                DiskSpec::path("/img/a,b.qcow2"),
                DiskSpec::path("/img/c.qcow2"),
            ],
            snapshot: true,
            cdrom: "/iso/x.iso".into(),
            kernel: "/k/vmlinuz".into(),
            initrd: "/k/initrd".into(),
            append: vec!["console=ttyS0".into(), "quiet".into()],
            machine: "q35".into(),
            qemu: "/opt/qemu".into(),
            qemu_append: vec!["-rtc".into(), "base=utc".into()],
            serial_ports: 2,
            vga: "none".into(),
            ..VmConfig::default()
        };
        let a = argv(&c, Accel::Tcg);
        assert_eq!(a[0], "/opt/qemu");
        let expect_pairs = [
            ("-m", "256"),
            ("-smp", "2"),
            ("-machine", "q35"),
            ("-vga", "none"),
            ("-kernel", "/k/vmlinuz"),
            ("-initrd", "/k/initrd"),
            ("-append", "console=ttyS0 quiet"),
        ];
        for (flag, val) in expect_pairs {
            let i = a.iter().position(|x| x == flag).expect(flag);
            assert_eq!(a[i + 1], val, "{flag}");
        }
        let s = a.join(" ");
        assert!(s.contains(
            "-chardev socket,id=serial0,path=/b/7/serial0,server=on,wait=off,logfile=/b/7/serial0.log -device isa-serial,chardev=serial0"
        ), "{s}");
        assert!(s.contains("id=serial1,path=/b/7/serial1,"), "{s}");
        // The configured ports replace the default ttyS0.
        assert!(!s.contains("-serial chardev:serial0"), "{s}");
        assert!(!s.contains("-nodefaults"), "{s}");
        // With snapshot, each disk is the VM's own overlay (see disk::spec).
        assert!(s.contains("-drive file=/b/7/disk-0.qcow2,if=ide,id=disk0,media=disk,cache=unsafe"));
        assert!(s.contains("-drive file=/b/7/disk-1.qcow2,if=ide,id=disk1,media=disk,cache=unsafe"));
        assert!(s.contains("-drive id=cdrom,if=ide,media=cdrom,file=/iso/x.iso"));
        assert!(
            s.ends_with("-S -rtc base=utc"),
            "qemu-append goes last: {s}"
        );
    }

    #[test]
    fn a_vnc_password_turns_authentication_on_without_showing_it() {
        let c = VmConfig {
            vnc_password: "s3cret".into(),
            ..VmConfig::default()
        };
        let s = argv(&c, Accel::Tcg).join(" ");
        assert!(s.contains("-vnc unix:/b/7/vnc,password=on "), "{s}");
        assert!(!s.contains("s3cret"), "{s}");
    }

    #[test]
    fn no_snapshot_writes_the_disk() {
        let c = VmConfig {
            disks: vec![DiskSpec::path("/img/a.qcow2")],
            snapshot: false,
            ..VmConfig::default()
        };
        let s = argv(&c, Accel::Tcg).join(" ");
        assert!(s.contains(
            "-drive file=/img/a.qcow2,if=ide,id=disk0,media=disk,cache=writeback -drive"
        ));
    }
}
