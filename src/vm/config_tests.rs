use super::*;

fn set(c: &mut VmConfig, f: &str, v: &[&str]) -> Result<(), ConfigError> {
    let values: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    c.set(Field::parse(f)?, &values, Path::new("/tmp/minimega/files"))
}

#[test]
fn defaults_are_minimegas() {
    let c = VmConfig::default();
    assert_eq!((c.memory, c.vcpus, c.snapshot), (2048, 1, true));
    assert_eq!(c.qemu, "qemu-system-x86_64");
    assert_eq!(c.vga, "std");
    assert_eq!(c.coschedule, -1);
    assert!(c.disks.is_empty() && c.uuid.is_empty());
}

#[test]
fn fields_by_name_alias_and_prefix() {
    assert_eq!(Field::parse("memory"), Ok(Field::Memory));
    assert_eq!(Field::parse("mem"), Ok(Field::Memory));
    assert_eq!(Field::parse("disk"), Ok(Field::Disks));
    assert_eq!(Field::parse("qemu"), Ok(Field::Qemu));
    assert_eq!(Field::parse("qemu-a"), Ok(Field::QemuAppend));
    assert!(matches!(Field::parse("c"), Err(ConfigError::Ambiguous(..))));
    let e = Field::parse("frobnicate").unwrap_err().to_string();
    assert!(e.starts_with("unknown vm config field `frobnicate`"), "{e}");
}

#[test]
fn the_vnc_password_is_named_in_full_and_fits_vnc_authentication() {
    assert_eq!(Field::parse("vnc-password"), Ok(Field::VncPassword));
    assert!(Field::parse("vnc").is_err(), "no prefix of it");
    assert_eq!(Field::VncPassword.name(), "vnc-password");
    assert!(!field_list().contains("vnc"), "minimega's list stays");
    let mut c = VmConfig::default();
    set(&mut c, "vnc-password", &["s3cret"]).unwrap();
    assert_eq!(c.get(Field::VncPassword), "s3cret");
    let e = set(&mut c, "vnc-password", &["123456789"]).unwrap_err();
    assert!(e.to_string().contains("at most 8"), "{e}");
    assert!(!e.to_string().contains("123456789"), "not echoed: {e}");
    assert_eq!(c.vnc_password, "s3cret");
    assert!(!c.describe().contains("s3cret"), "not in the listing");
    c.clear(Field::VncPassword);
    assert_eq!(c.vnc_password, "");
}

#[test]
fn numbers_are_checked() {
    let mut c = VmConfig::default();
    set(&mut c, "memory", &["512"]).unwrap();
    assert_eq!(c.memory, 512);
    assert_eq!(
        set(&mut c, "memory", &["lots"]).unwrap_err().to_string(),
        "invalid memory `lots`: not a number"
    );
    assert_eq!(
        set(&mut c, "memory", &["0"]).unwrap_err().to_string(),
        "invalid memory `0`: must be greater than 0"
    );
    assert!(set(&mut c, "vcpus", &["-1"]).is_err());
    assert_eq!(c.memory, 512, "a bad value changes nothing");
}

#[test]
fn relative_files_resolve_against_filepath() {
    let mut c = VmConfig::default();
    set(&mut c, "kernel", &["foo"]).unwrap();
    assert_eq!(c.get(Field::Kernel), "/tmp/minimega/files/foo");
    set(&mut c, "disk", &["a.qcow2", "/abs/b.qcow2"]).unwrap();
    set(&mut c, "migrate", &["saved/web.state"]).unwrap();
    assert_eq!(c.get(Field::State), "/tmp/minimega/files/saved/web.state");
    assert_eq!(
        c.get(Field::Disks),
        "[/tmp/minimega/files/a.qcow2 /abs/b.qcow2]"
    );
    let e = set(&mut c, "kernel", &["../../x"]).unwrap_err().to_string();
    assert!(e.contains("outside the files directory"), "{e}");
    assert_eq!(c.get(Field::Kernel), "/tmp/minimega/files/foo", "unchanged");
}

#[test]
fn tags_are_json_as_go_writes_it() {
    let mut t = BTreeMap::new();
    assert_eq!(tags_json(&t), "{}");
    t.insert("b".to_string(), "<x & y>".to_string());
    t.insert("a".to_string(), "\"q\"".to_string());
    assert_eq!(
        tags_json(&t),
        r#"{"a":"\"q\"","b":"\u003cx \u0026 y\u003e"}"#
    );
}

#[test]
fn hardware_fields_are_fields() {
    let mut c = VmConfig::default();
    set(&mut c, "cores", &["2"]).unwrap();
    set(&mut c, "usb", &["false"]).unwrap();
    assert_eq!(c.get(Field::parse("cores").unwrap()), "2");
    assert!(!c.hw.usb_use_xhci);
    assert!(matches!(Field::parse("t"), Err(ConfigError::Ambiguous(..))));
    let back: VmConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    c.clear(Field::parse("usb-use-xhci").unwrap());
    assert!(c.hw.usb_use_xhci);
}

#[test]
fn tags_uuid_and_clear() {
    let mut c = VmConfig::default();
    set(&mut c, "tags", &["role", "web"]).unwrap();
    assert_eq!(c.get(Field::Tags), r#"{"role":"web"}"#);
    assert!(set(&mut c, "uuid", &["nope"]).is_err());
    set(&mut c, "uuid", &["9131E2A3-AD6B-4F38-B5BA-5FF2B19E32DC"]).unwrap();
    assert_eq!(c.uuid, "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc");
    set(&mut c, "memory", &["64"]).unwrap();
    c.clear(Field::Memory);
    assert_eq!(c.memory, 2048);
    c.clear(Field::Tags);
    assert!(c.tags.is_empty());
}

#[test]
fn overrides_virtio_ports_and_placement_fields() {
    let mut c = VmConfig::default();
    set(&mut c, "qemu-override", &["-vga std", "-vga cirrus"]).unwrap();
    set(&mut c, "qemu-override", &["a", ""]).unwrap();
    assert_eq!(
        c.get(Field::QemuOverride),
        "id\tmatch\treplacement\n0\t\"-vga std\"\t\"-vga cirrus\"\n1\t\"a\"\t\"\""
    );
    assert!(set(&mut c, "qemu-override", &["only"]).is_err());
    set(&mut c, "virtio-ports", &["foo,bar"]).unwrap();
    assert_eq!(c.get(Field::VirtioPorts), "foo,bar");
    assert!(set(&mut c, "virtio-ports", &["a b"]).is_err());
    set(&mut c, "schedule", &["n1"]).unwrap();
    assert_eq!(
        set(&mut c, "colocate", &["web"]).unwrap_err().to_string(),
        "cannot specify colocate and schedule in the same config"
    );
    c.clear(Field::Schedule);
    set(&mut c, "colocate", &["web"]).unwrap();
    assert!(set(&mut c, "schedule", &["n1"]).is_err());
    c.clear(Field::QemuOverride);
    assert!(c.qemu_override.is_empty());
}

#[test]
fn serde_round_trip_fills_defaults() {
    let c: VmConfig = serde_json::from_str(r#"{"memory":64}"#).unwrap();
    assert_eq!((c.memory, c.vcpus), (64, 1));
    let back: VmConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}
