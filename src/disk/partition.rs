//! Partition tables (MBR with logical partitions, GPT), read from an
//! image's first sectors, and the byte range `disk inject` mounts. Ours
//! rather than the kernel's partition scan: a loop device over a FUSE
//! export does not reliably get partition devices here (no udev, loop
//! `max_part` 0), while a mount at an offset always works. Pure over
//! [`Sectors`].

use thiserror::Error;

use super::args::Partition;

const SECTOR: u64 = 512;
/// Logical partitions a corrupt EBR chain may claim before we stop.
const MAX_LOGICAL: u32 = 128;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PartError {
    #[error("cannot read the partition table: {0}")]
    Read(String),
    /// minimega's words.
    #[error("please specify a partition; multiple found ({0})")]
    Several(String),
    #[error("partition {0} not found (the image has {1})")]
    Missing(u32, String),
    #[error("invalid partition table: {0}")]
    Invalid(String),
}

/// Random access to an image's bytes.
pub trait Sectors {
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>>;
}

impl Sectors for std::fs::File {
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            match FileExt::read_at(self, &mut buf[done..], offset + done as u64)? {
                0 => break,
                n => done += n,
            }
        }
        buf.truncate(done);
        Ok(buf)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// As Linux numbers them: MBR primaries 1-4, logicals from 5; GPT
    /// entries by their slot.
    pub number: u32,
    /// Bytes.
    pub start: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Table {
    /// No partition table: a file system (if any) on the whole disk.
    None,
    Mbr(Vec<Part>),
    Gpt(Vec<Part>),
}

impl Table {
    pub fn parts(&self) -> &[Part] {
        match self {
            Table::None => &[],
            Table::Mbr(p) | Table::Gpt(p) => p,
        }
    }

    fn describe(&self) -> String {
        match self.parts() {
            [] => "no partitions".into(),
            p => {
                let n: Vec<String> = p.iter().map(|p| p.number.to_string()).collect();
                format!(
                    "partition{} {}",
                    if p.len() > 1 { "s" } else { "" },
                    n.join(", ")
                )
            }
        }
    }
}

fn le32(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as u64
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn read(r: &impl Sectors, offset: u64, len: usize) -> Result<Vec<u8>, PartError> {
    let b = r
        .read_at(offset, len)
        .map_err(|e| PartError::Read(e.to_string()))?;
    if b.len() < len {
        return Err(PartError::Read(format!(
            "the image ends before byte {}",
            offset + len as u64
        )));
    }
    Ok(b)
}

/// A boot sector of a FAT file system written on the whole disk carries
/// the same 0x55AA signature as an MBR; its file system name tells it apart.
fn is_fat_boot_sector(s: &[u8]) -> bool {
    (s[0] == 0xEB || s[0] == 0xE9) && (&s[0x36..0x39] == b"FAT" || &s[0x52..0x57] == b"FAT32")
}

/// The partition table of a disk of `disk_size` bytes.
pub fn read_table(r: &impl Sectors, disk_size: u64) -> Result<Table, PartError> {
    if disk_size < SECTOR {
        return Ok(Table::None);
    }
    let mbr = read(r, 0, SECTOR as usize)?;
    if mbr[510] != 0x55 || mbr[511] != 0xAA || is_fat_boot_sector(&mbr) {
        return Ok(Table::None);
    }
    let entries: Vec<&[u8]> = (0..4)
        .map(|i| &mbr[446 + i * 16..446 + i * 16 + 16])
        .collect();
    if entries.iter().any(|e| e[0] != 0 && e[0] != 0x80) {
        // Not a partition table (boot code of some other kind).
        return Ok(Table::None);
    }
    if entries.iter().any(|e| e[4] == 0xEE) {
        return read_gpt(r, disk_size);
    }
    let mut parts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let (kind, start, count) = (e[4], le32(e, 8), le32(e, 12));
        if kind == 0 || count == 0 {
            continue;
        }
        if matches!(kind, 0x05 | 0x0F | 0x85) {
            read_logical(r, start, disk_size, &mut parts)?;
            continue;
        }
        parts.push(checked(i as u32 + 1, start, count, disk_size)?);
    }
    parts.sort_by_key(|p| p.number);
    Ok(Table::Mbr(parts))
}

fn checked(number: u32, start_lba: u64, sectors: u64, disk_size: u64) -> Result<Part, PartError> {
    let (start, size) = (start_lba * SECTOR, sectors * SECTOR);
    if start == 0 || start + size > disk_size {
        return Err(PartError::Invalid(format!(
            "partition {number} ({start}+{size} bytes) lies outside the {disk_size}-byte disk"
        )));
    }
    Ok(Part {
        number,
        start,
        size,
    })
}

/// Walks the chain of extended boot records of an extended partition.
fn read_logical(
    r: &impl Sectors,
    ext_start: u64,
    disk_size: u64,
    parts: &mut Vec<Part>,
) -> Result<(), PartError> {
    let mut ebr = ext_start;
    for n in 5..5 + MAX_LOGICAL {
        let s = read(r, ebr * SECTOR, SECTOR as usize)?;
        if s[510] != 0x55 || s[511] != 0xAA {
            return Ok(());
        }
        let (this, next) = (&s[446..462], &s[462..478]);
        if this[4] != 0 && le32(this, 12) != 0 {
            parts.push(checked(n, ebr + le32(this, 8), le32(this, 12), disk_size)?);
        }
        if next[4] == 0 || le32(next, 8) == 0 {
            return Ok(());
        }
        ebr = ext_start + le32(next, 8);
    }
    Err(PartError::Invalid("too many logical partitions".into()))
}

fn read_gpt(r: &impl Sectors, disk_size: u64) -> Result<Table, PartError> {
    let h = read(r, SECTOR, SECTOR as usize)?;
    if &h[0..8] != b"EFI PART" {
        return Err(PartError::Invalid(
            "protective MBR without a GPT header".into(),
        ));
    }
    let (lba, count, size) = (le64(&h, 72), le32(&h, 80), le32(&h, 84));
    if !(128..=4096).contains(&size) || count > 1024 {
        return Err(PartError::Invalid(format!(
            "GPT with {count} entries of {size} bytes"
        )));
    }
    let table = read(r, lba * SECTOR, (count * size) as usize)?;
    let mut parts = Vec::new();
    for i in 0..count as usize {
        let e = &table[i * size as usize..(i + 1) * size as usize];
        if e[0..16].iter().all(|b| *b == 0) {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        if last < first {
            return Err(PartError::Invalid(format!(
                "GPT entry {} ends before it starts",
                i + 1
            )));
        }
        parts.push(checked(i as u32 + 1, first, last - first + 1, disk_size)?);
    }
    Ok(Table::Gpt(parts))
}

/// The byte range (offset, size) to mount for `which`.
pub fn choose(table: &Table, which: Partition, disk_size: u64) -> Result<(u64, u64), PartError> {
    let parts = table.parts();
    match which {
        Partition::WholeDisk => Ok((0, disk_size)),
        Partition::Auto => match parts {
            [] => Ok((0, disk_size)),
            [p] => Ok((p.start, p.size)),
            _ => Err(PartError::Several(table.describe())),
        },
        Partition::Number(n) => parts
            .iter()
            .find(|p| p.number == n)
            .map(|p| (p.start, p.size))
            .ok_or_else(|| PartError::Missing(n, table.describe())),
    }
}

/// The file system at the start of a partition, as far as routing an
/// injection needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Ext,
    Fat,
    Ntfs,
    Unknown,
}

/// Bytes of a partition's start [`fs_kind`] looks at.
pub const PROBE_LEN: usize = 4096;

/// Recognises the file system from its first [`PROBE_LEN`] bytes.
pub fn fs_kind(b: &[u8]) -> FsKind {
    if b.len() >= 1082 && b[1080] == 0x53 && b[1081] == 0xEF {
        return FsKind::Ext;
    }
    if b.len() >= 512 && &b[3..11] == b"NTFS    " {
        return FsKind::Ntfs;
    }
    if b.len() >= 512 && b[510] == 0x55 && b[511] == 0xAA && is_fat_boot_sector(b) {
        return FsKind::Fat;
    }
    FsKind::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sparse in-memory disk.
    struct Disk(std::collections::BTreeMap<u64, Vec<u8>>);

    impl Disk {
        fn new() -> Disk {
            Disk(Default::default())
        }
        fn sector(&mut self, lba: u64) -> &mut Vec<u8> {
            self.0.entry(lba).or_insert_with(|| vec![0; 512])
        }
        fn entry(&mut self, lba: u64, slot: usize, kind: u8, start: u32, count: u32) {
            let s = self.sector(lba);
            let e = &mut s[446 + slot * 16..462 + slot * 16];
            e[4] = kind;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&count.to_le_bytes());
            s[510] = 0x55;
            s[511] = 0xAA;
        }
    }

    impl Sectors for Disk {
        fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            let mut out = Vec::with_capacity(len);
            for i in 0..len as u64 {
                let (lba, at) = ((offset + i) / 512, ((offset + i) % 512) as usize);
                out.push(self.0.get(&lba).map(|s| s[at]).unwrap_or(0));
            }
            Ok(out)
        }
    }

    const SIZE: u64 = 1 << 30;

    #[test]
    fn a_blank_disk_has_no_table() {
        let d = Disk::new();
        let t = read_table(&d, SIZE).unwrap();
        assert_eq!(t, Table::None);
        assert_eq!(choose(&t, Partition::Auto, SIZE).unwrap(), (0, SIZE));
        assert_eq!(
            choose(&t, Partition::Number(1), SIZE)
                .unwrap_err()
                .to_string(),
            "partition 1 not found (the image has no partitions)"
        );
    }

    #[test]
    fn mbr_primaries() {
        let mut d = Disk::new();
        d.entry(0, 0, 0x83, 2048, 4096);
        let t = read_table(&d, SIZE).unwrap();
        assert_eq!(
            choose(&t, Partition::Auto, SIZE).unwrap(),
            (2048 * 512, 4096 * 512)
        );
        d.entry(0, 1, 0x0c, 8192, 4096);
        let t = read_table(&d, SIZE).unwrap();
        assert_eq!(t.parts().len(), 2);
        assert_eq!(
            choose(&t, Partition::Auto, SIZE).unwrap_err().to_string(),
            "please specify a partition; multiple found (partitions 1, 2)"
        );
        assert_eq!(
            choose(&t, Partition::Number(2), SIZE).unwrap().0,
            8192 * 512
        );
        assert_eq!(
            choose(&t, Partition::Number(3), SIZE)
                .unwrap_err()
                .to_string(),
            "partition 3 not found (the image has partitions 1, 2)"
        );
        assert_eq!(choose(&t, Partition::WholeDisk, SIZE).unwrap(), (0, SIZE));
    }

    #[test]
    fn logical_partitions_follow_the_ebr_chain() {
        let mut d = Disk::new();
        d.entry(0, 0, 0x83, 2048, 2048);
        d.entry(0, 1, 0x05, 10000, 100000);
        // First EBR: logical 5 at +63, next EBR at ext+20000.
        d.entry(10000, 0, 0x83, 63, 1000);
        d.entry(10000, 1, 0x05, 20000, 2000);
        d.entry(30000, 0, 0x83, 63, 500);
        let t = read_table(&d, SIZE).unwrap();
        let n: Vec<(u32, u64)> = t
            .parts()
            .iter()
            .map(|p| (p.number, p.start / 512))
            .collect();
        assert_eq!(n, [(1, 2048), (5, 10063), (6, 30063)]);
    }

    #[test]
    fn gpt_entries_by_slot() {
        let mut d = Disk::new();
        d.entry(0, 0, 0xEE, 1, u32::MAX);
        let h = d.sector(1);
        h[0..8].copy_from_slice(b"EFI PART");
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        // Slots 1 and 3 used (entries are 128 bytes, 4 per sector).
        for (slot, first, last) in [(0usize, 2048u64, 4095u64), (2, 8192, 16383)] {
            let s = d.sector(2 + (slot / 4) as u64);
            let e = &mut s[(slot % 4) * 128..(slot % 4 + 1) * 128];
            e[0] = 0xAF;
            e[32..40].copy_from_slice(&first.to_le_bytes());
            e[40..48].copy_from_slice(&last.to_le_bytes());
        }
        let t = read_table(&d, SIZE).unwrap();
        assert!(matches!(t, Table::Gpt(_)));
        let n: Vec<(u32, u64, u64)> = t
            .parts()
            .iter()
            .map(|p| (p.number, p.start / 512, p.size / 512))
            .collect();
        assert_eq!(n, [(1, 2048, 2048), (3, 8192, 8192)]);
        assert!(choose(&t, Partition::Number(2), SIZE).is_err());
    }

    #[test]
    fn a_fat_boot_sector_is_not_a_table() {
        let mut d = Disk::new();
        d.entry(0, 0, 0x83, 2048, 4096);
        let s = d.sector(0);
        s[0] = 0xEB;
        s[0x52..0x57].copy_from_slice(b"FAT32");
        assert_eq!(read_table(&d, SIZE).unwrap(), Table::None);
    }

    #[test]
    fn file_systems_by_their_signatures() {
        let mut b = vec![0u8; PROBE_LEN];
        assert_eq!(fs_kind(&b), FsKind::Unknown);
        b[1080] = 0x53;
        b[1081] = 0xEF;
        assert_eq!(fs_kind(&b), FsKind::Ext);
        let mut f = vec![0u8; PROBE_LEN];
        f[0] = 0xEB;
        f[0x52..0x57].copy_from_slice(b"FAT32");
        f[510] = 0x55;
        f[511] = 0xAA;
        assert_eq!(fs_kind(&f), FsKind::Fat);
        let mut n = vec![0u8; PROBE_LEN];
        n[3..11].copy_from_slice(b"NTFS    ");
        assert_eq!(fs_kind(&n), FsKind::Ntfs);
        assert_eq!(fs_kind(&[0u8; 10]), FsKind::Unknown);
    }

    #[test]
    fn partitions_beyond_the_disk_are_refused() {
        let mut d = Disk::new();
        d.entry(0, 0, 0x83, 2048, 4_000_000);
        let e = read_table(&d, SIZE).unwrap_err().to_string();
        assert!(e.starts_with("invalid partition table: partition 1"), "{e}");
    }
}
