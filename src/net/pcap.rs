//! The classic pcap file format (what tcpdump and Wireshark read): a
//! global header, then one record per frame. Pure; captures write it.

/// Bytes kept of each frame, as minimega's default.
pub const SNAPLEN: u32 = 1600;
const LINKTYPE_ETHERNET: u32 = 1;

pub fn header(snaplen: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&snaplen.to_le_bytes());
    h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// One frame's record: `data` as captured (at most the snap length),
/// `orig` the frame's length on the wire.
pub fn record(secs: u32, micros: u32, data: &[u8], orig: usize) -> Vec<u8> {
    let mut r = Vec::with_capacity(16 + data.len());
    r.extend_from_slice(&secs.to_le_bytes());
    r.extend_from_slice(&micros.to_le_bytes());
    r.extend_from_slice(&(data.len() as u32).to_le_bytes());
    r.extend_from_slice(&(orig as u32).to_le_bytes());
    r.extend_from_slice(data);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let h = header(SNAPLEN);
        assert_eq!(h.len(), 24);
        assert_eq!(&h[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(h[16..20].try_into().unwrap()), 1600);
        assert_eq!(u32::from_le_bytes(h[20..24].try_into().unwrap()), 1);
        let r = record(7, 9, &[1, 2, 3], 60);
        assert_eq!(r.len(), 19);
        assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 3);
        assert_eq!(u32::from_le_bytes(r[12..16].try_into().unwrap()), 60);
    }
}
