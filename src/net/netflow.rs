//! NetFlow v5, as Open vSwitch exports it and minimega's `capture
//! netflow` writes it: a packet read into its header and flow records,
//! and the ASCII line per record minimega prints (phenix reads its fields
//! 2, 3, 5, 6 and 7). Pure.

use std::net::Ipv4Addr;
use std::time::Duration;
use thiserror::Error;

pub const HEADER_LEN: usize = 24;
pub const RECORD_LEN: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NetflowError {
    #[error("netflow packet of {0} bytes is too short")]
    Short(usize),
    #[error("netflow version {0}, not 5")]
    Version(u16),
    #[error("netflow packet announces {count} records, holds {held}")]
    Count { count: usize, held: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub count: u16,
    /// Milliseconds since the exporter started.
    pub uptime_ms: u32,
    pub unix_secs: u32,
    pub unix_nsecs: u32,
    pub sequence: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub packets: u32,
    pub octets: u32,
    /// Exporter uptime (ms) at the flow's first and last packet.
    pub first_ms: u32,
    pub last_ms: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub header: Header,
    pub records: Vec<Record>,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

impl Packet {
    pub fn parse(b: &[u8]) -> Result<Packet, NetflowError> {
        if b.len() < HEADER_LEN {
            return Err(NetflowError::Short(b.len()));
        }
        let version = u16_at(b, 0);
        if version != 5 {
            return Err(NetflowError::Version(version));
        }
        let header = Header {
            count: u16_at(b, 2),
            uptime_ms: u32_at(b, 4),
            unix_secs: u32_at(b, 8),
            unix_nsecs: u32_at(b, 12),
            sequence: u32_at(b, 16),
        };
        let held = (b.len() - HEADER_LEN) / RECORD_LEN;
        let count = header.count as usize;
        if count > held {
            return Err(NetflowError::Count { count, held });
        }
        let records = (0..count)
            .map(|i| {
                let r = &b[HEADER_LEN + i * RECORD_LEN..][..RECORD_LEN];
                Record {
                    src: Ipv4Addr::from(u32_at(r, 0)),
                    dst: Ipv4Addr::from(u32_at(r, 4)),
                    packets: u32_at(r, 16),
                    octets: u32_at(r, 20),
                    first_ms: u32_at(r, 24),
                    last_ms: u32_at(r, 28),
                    src_port: u16_at(r, 32),
                    dst_port: u16_at(r, 34),
                    protocol: r[38],
                }
            })
            .collect();
        Ok(Packet { header, records })
    }

    /// minimega's ASCII form: one line per record, tab-separated: start
    /// (RFC 3339, in the zone `utc_offset_secs` east of UTC), duration (a
    /// Go duration), protocol number, `src:port`, `<->`, `dst:port`,
    /// packets, octets.
    pub fn ascii(&self, utc_offset_secs: i64) -> String {
        let h = &self.header;
        let base_ms = h.unix_secs as i64 * 1000;
        let mut out = String::new();
        for r in &self.records {
            // As minimega: the record's times are offsets back from the
            // header's uptime, plus the header's nanoseconds.
            let first = base_ms - (h.uptime_ms as i64 - r.first_ms as i64);
            let last = base_ms - (h.uptime_ms as i64 - r.last_ms as i64);
            let start_ns = first * 1_000_000 + h.unix_nsecs as i64;
            let dur = Duration::from_millis((last - first).max(0) as u64);
            out.push_str(&format!(
                "{}\t{}\t{}\t{}:{}\t<->\t{}:{}\t{}\t{}\n",
                rfc3339(start_ns.div_euclid(1_000_000_000), utc_offset_secs),
                crate::timefmt::go_duration_exact(dur),
                r.protocol,
                r.src,
                r.src_port,
                r.dst,
                r.dst_port,
                r.packets,
                r.octets
            ));
        }
        out
    }
}

/// `2006-01-02T15:04:05Z07:00` of a Unix time, in a zone `offset` seconds
/// east of UTC (`Z` for UTC), as Go's `time.RFC3339`.
pub fn rfc3339(unix: i64, offset: i64) -> String {
    let local = unix + offset;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    // Flows are recent: a time before 1970 shows as 1970-01-01.
    let (y, m, d) = crate::timefmt::civil((days * 86_400).max(0) as u64);
    let zone = if offset == 0 {
        "Z".to_string()
    } else {
        let a = offset.abs();
        format!(
            "{}{:02}:{:02}",
            if offset < 0 { '-' } else { '+' },
            a / 3600,
            a % 3600 / 60
        )
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{zone}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v5 packet of one TCP flow, as Open vSwitch sends it.
    pub fn sample() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(5u16.to_be_bytes());
        b.extend(1u16.to_be_bytes());
        b.extend(100_000u32.to_be_bytes()); // uptime 100 s
        b.extend(1_700_000_000u32.to_be_bytes());
        b.extend(0u32.to_be_bytes());
        b.extend(7u32.to_be_bytes());
        b.extend([0, 0, 0, 0]);
        let mut r = vec![0u8; RECORD_LEN];
        r[0..4].copy_from_slice(&[10, 0, 0, 1]);
        r[4..8].copy_from_slice(&[10, 0, 0, 2]);
        r[16..20].copy_from_slice(&12u32.to_be_bytes());
        r[20..24].copy_from_slice(&3456u32.to_be_bytes());
        r[24..28].copy_from_slice(&90_000u32.to_be_bytes()); // 10 s before
        r[28..32].copy_from_slice(&92_500u32.to_be_bytes());
        r[32..34].copy_from_slice(&40000u16.to_be_bytes());
        r[34..36].copy_from_slice(&80u16.to_be_bytes());
        r[38] = 6;
        b.extend(r);
        b
    }

    #[test]
    fn a_v5_packet_as_minimega_prints_it() {
        let p = Packet::parse(&sample()).unwrap();
        assert_eq!(p.header.sequence, 7);
        assert_eq!(p.records.len(), 1);
        assert_eq!(
            p.ascii(0),
            "2023-11-14T22:13:10Z\t2.5s\t6\t10.0.0.1:40000\t<->\t10.0.0.2:80\t12\t3456\n"
        );
        // phenix's fields: 2 protocol, 3 source, 5 destination, 6 packets, 7 bytes.
        let line = p.ascii(0);
        let f: Vec<&str> = line.trim_end().split('\t').collect();
        assert_eq!(
            (f[2], f[3], f[5], f[6], f[7]),
            ("6", "10.0.0.1:40000", "10.0.0.2:80", "12", "3456")
        );
        assert!(p.ascii(3600).starts_with("2023-11-14T23:13:10+01:00\t"));
    }

    #[test]
    fn bad_packets_are_refused() {
        assert_eq!(Packet::parse(&[0; 10]), Err(NetflowError::Short(10)));
        let mut b = sample();
        b[1] = 9;
        assert_eq!(Packet::parse(&b), Err(NetflowError::Version(9)));
        let mut b = sample();
        b[3] = 2;
        assert!(matches!(Packet::parse(&b), Err(NetflowError::Count { .. })));
    }

    #[test]
    fn rfc3339_zones() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(86_400, -5 * 3600), "1970-01-01T19:00:00-05:00");
    }
}
