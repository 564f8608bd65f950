//! The `vm config` listing, generic over the fields: each field's section,
//! rank and label come from [`Field::listing`], so a field added there is
//! listed without a change here.

use super::config::{Field, VmConfig, FIELDS};

/// The sections of the `vm config` listing, as minimega prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Vm,
    Kvm,
    Container,
}

impl Section {
    pub(super) fn title(self) -> &'static str {
        match self {
            Section::Vm => "VM configuration:",
            Section::Kvm => "KVM configuration:",
            Section::Container => "Container configuration:",
        }
    }
}

/// A label's cell: `Label:`, or the label as it is when it carries its own
/// colon and blank (minimega writes `"TPM Socket: \t"`, so that cell is
/// one character wider than `TPM Socket:`).
fn cell(label: &str) -> String {
    if label.ends_with(": ") {
        label.to_string()
    } else {
        format!("{label}:")
    }
}

impl VmConfig {
    /// `vm config <field>` alone: the field as listed, except that an empty
    /// argument list prints nothing (as minimega prints `append`), and tags
    /// and volumes print one `key -> value` line each.
    pub fn show(&self, field: Field) -> String {
        match field {
            Field::Append if self.append.is_empty() => String::new(),
            Field::QemuAppend if self.qemu_append.is_empty() => String::new(),
            Field::Tags => self
                .tags
                .iter()
                .map(|(k, v)| format!("{k} -> {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            Field::Ct(super::config::CtField::Volume) => self
                .ct
                .volumes
                .iter()
                .map(|(d, s)| format!("{d} -> {s}"))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => self.get(field),
        }
    }

    /// `vm config` alone: each section's title, then `Label: value` lines
    /// aligned as Go's tabwriter aligns minimega's, then a blank line.
    pub fn describe(&self) -> String {
        let mut fields: Vec<(Section, u16, &str, Field)> = FIELDS
            .iter()
            .filter_map(|(_, f)| f.listing().map(|(s, rank, label)| (s, rank, label, *f)))
            .collect();
        fields.sort_by_key(|(s, rank, ..)| (*s, *rank));
        let mut out = String::new();
        for section in [Section::Vm, Section::Kvm, Section::Container] {
            let rows: Vec<(String, String)> = fields
                .iter()
                .filter(|(s, ..)| *s == section)
                .map(|(_, _, label, f)| (cell(label), self.get(*f)))
                .collect();
            // Go's tabwriter with minwidth 5 and padding 1.
            let w = rows
                .iter()
                .map(|(l, _)| l.chars().count() + 1)
                .max()
                .unwrap_or(0)
                .max(5);
            out.push_str(section.title());
            out.push('\n');
            for (label, value) in rows {
                // A value of several lines (volumes) continues in the
                // value column, as tabwriter aligns minimega's.
                let value = value.replace('\n', &format!("\n{:w$}", ""));
                out.push_str(&format!("{label:<w$}{value}\n"));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn set(c: &mut VmConfig, f: &str, v: &[&str]) {
        let values: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        c.set(
            Field::parse(f).unwrap(),
            &values,
            Path::new("/tmp/minimega/files"),
        )
        .unwrap();
    }

    #[test]
    fn describe_is_minimegas_layout() {
        let text = VmConfig::default().describe();
        let want = "VM configuration:
Memory:           2048
VCPUs:            1
Networks:         []
Bonds:            []
Snapshot:         true
UUID:             
Schedule host:    
Coschedule limit: -1
Colocate:         
Backchannel:      true
Tags:             {}

KVM configuration:
State Path:               
Disks:                    []
CDROM Path:               
Kernel Path:              
Initrd Path:              
Kernel Append:            []
QEMU Path:                qemu-system-x86_64
QEMU Append:              []
Serial Ports:             0
Virtio-Serial Ports:      
Machine:                  
CPU:                      
Cores:                    0
Threads:                  0
Sockets:                  0
VGA:                      std
Usb Use XHCI:             true
Bidirectional Copy Paste: false
TPM Socket:               

Container configuration:
Filesystem Path: 
Hostname:        
Init:            [/init]
Pre-init:        
FIFOs:           0
Volumes:         

";
        assert_eq!(text, want);
        // Every listed field is there, once.
        for (_, f) in FIELDS {
            if let Some((_, _, label)) = f.listing() {
                let line = format!("\n{}", cell(label));
                assert_eq!(text.matches(&line).count(), 1, "{label}");
            }
        }
    }

    #[test]
    fn single_fields_print_as_minimega_prints_them() {
        let mut c = VmConfig::default();
        assert_eq!(c.show(Field::Append), "");
        assert_eq!(c.show(Field::Disks), "[]");
        set(&mut c, "append", &["a", "b", "c"]);
        assert_eq!(c.show(Field::Append), "[a b c]");
        set(&mut c, "tags", &["color", "red"]);
        set(&mut c, "tag", &["shape", "square"]);
        assert_eq!(c.show(Field::Tags), "color -> red\nshape -> square");
        assert_eq!(c.get(Field::Tags), r#"{"color":"red","shape":"square"}"#);
    }
}
