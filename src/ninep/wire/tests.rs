use super::*;

fn sample_stat() -> Stat {
    Stat {
        ty: 0,
        dev: 0,
        qid: Qid {
            ty: qt::DIR,
            version: 7,
            path: 0x0102_0304_0506_0708,
        },
        mode: dm::DIR | 0o755,
        atime: 1_700_000_000,
        mtime: 1_700_000_001,
        length: 0,
        name: "usr".into(),
        uid: "0".into(),
        gid: "0".into(),
        muid: "".into(),
    }
}

fn every_message() -> Vec<Msg> {
    let q = Qid {
        ty: qt::FILE,
        version: 3,
        path: 42,
    };
    vec![
        Msg::Tversion {
            msize: 8192,
            version: VERSION.into(),
        },
        Msg::Rversion {
            msize: 8192,
            version: VERSION.into(),
        },
        Msg::Tauth {
            afid: 5,
            uname: "root".into(),
            aname: "".into(),
        },
        Msg::Rauth { aqid: q },
        Msg::Tattach {
            fid: 1,
            afid: NOFID,
            uname: "root".into(),
            aname: "".into(),
        },
        Msg::Rattach { qid: q },
        Msg::Rerror {
            ename: "file does not exist".into(),
        },
        Msg::Tflush { oldtag: 9 },
        Msg::Rflush,
        Msg::Twalk {
            fid: 1,
            newfid: 2,
            wnames: vec!["usr".into(), "bin".into()],
        },
        Msg::Rwalk { wqids: vec![q, q] },
        Msg::Topen {
            fid: 2,
            mode: om::RDWR | om::TRUNC,
        },
        Msg::Ropen { qid: q, iounit: 0 },
        Msg::Tcreate {
            fid: 2,
            name: "new".into(),
            perm: dm::DIR | 0o700,
            mode: om::READ,
        },
        Msg::Rcreate {
            qid: q,
            iounit: 8000,
        },
        Msg::Tread {
            fid: 2,
            offset: 1 << 40,
            count: 4096,
        },
        Msg::Rread {
            data: b"hello".to_vec(),
        },
        Msg::Twrite {
            fid: 2,
            offset: 3,
            data: vec![0, 1, 2, 255],
        },
        Msg::Rwrite { count: 4 },
        Msg::Tclunk { fid: 2 },
        Msg::Rclunk,
        Msg::Tremove { fid: 2 },
        Msg::Rremove,
        Msg::Tstat { fid: 2 },
        Msg::Rstat {
            stat: sample_stat(),
        },
        Msg::Twstat {
            fid: 2,
            stat: Stat::dont_touch(),
        },
        Msg::Rwstat,
    ]
}

#[test]
fn every_message_round_trips() {
    for (i, m) in every_message().into_iter().enumerate() {
        let tag = i as u16 * 257;
        let bytes = encode(tag, &m).unwrap();
        assert_eq!(frame_len(&bytes, 1 << 20), Ok(Some(bytes.len())), "{m:?}");
        assert_eq!(peek_tag(&bytes), Some(tag));
        assert_eq!(decode(&bytes).unwrap(), (tag, m));
    }
}

/// Tversion as intro(5) lays it out and Linux's v9fs sends it: size 19,
/// type 100, NOTAG, msize 8192, "9P2000".
#[test]
fn tversion_is_byte_exact() {
    let want = [
        0x13, 0, 0, 0, 100, 0xff, 0xff, 0x00, 0x20, 0, 0, 6, 0, b'9', b'P', b'2', b'0', b'0', b'0',
    ];
    let m = Msg::Tversion {
        msize: 8192,
        version: VERSION.into(),
    };
    assert_eq!(encode(NOTAG, &m).unwrap(), want);
    assert_eq!(decode(&want).unwrap(), (NOTAG, m));
}

#[test]
fn twalk_and_rerror_are_byte_exact() {
    let walk = Msg::Twalk {
        fid: 1,
        newfid: 2,
        wnames: vec!["usr".into(), "bin".into()],
    };
    let want: Vec<u8> = [
        &[27, 0, 0, 0, 110, 3, 0][..],
        &[1, 0, 0, 0, 2, 0, 0, 0, 2, 0],
        &[3, 0, b'u', b's', b'r', 3, 0, b'b', b'i', b'n'],
    ]
    .concat();
    assert_eq!(encode(3, &walk).unwrap(), want);
    let err = Msg::Rerror { ename: "no".into() };
    assert_eq!(
        encode(1, &err).unwrap(),
        [11, 0, 0, 0, 107, 1, 0, 2, 0, b'n', b'o']
    );
}

/// stat(5): size[2] type[2] dev[4] qid[13] mode[4] atime[4] mtime[4]
/// length[8] name[s] uid[s] gid[s] muid[s]; size excludes itself, so an
/// entry with empty strings has size 47.
#[test]
fn stat_is_byte_exact() {
    let st = Stat {
        ty: 0x0102,
        dev: 0x0304_0506,
        qid: Qid {
            ty: qt::DIR,
            version: 0x0a0b_0c0d,
            path: 0x1122_3344_5566_7788,
        },
        mode: dm::DIR | 0o755,
        atime: 1,
        mtime: 2,
        length: 3,
        name: "a".into(),
        uid: "".into(),
        gid: "".into(),
        muid: "".into(),
    };
    let want: Vec<u8> = [
        &[48, 0][..],
        &[0x02, 0x01],
        &[0x06, 0x05, 0x04, 0x03],
        &[0x80, 0x0d, 0x0c, 0x0b, 0x0a],
        &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11],
        &[0xed, 0x01, 0x00, 0x80],
        &[1, 0, 0, 0, 2, 0, 0, 0],
        &[3, 0, 0, 0, 0, 0, 0, 0],
        &[1, 0, b'a', 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    assert_eq!(st.to_bytes().unwrap(), want);
    assert_eq!(st.wire_len(), want.len());
    assert_eq!(Stat::decode(&want).unwrap(), (st.clone(), want.len()));
    // Inside Rstat: one more size, two more than the stat's own.
    let rstat = encode(7, &Msg::Rstat { stat: st }).unwrap();
    assert_eq!(&rstat[7..9], &[50, 0]);
    assert_eq!(&rstat[9..], &want[..]);
}

#[test]
fn stat_skips_fields_a_dialect_appends() {
    let mut b = sample_stat().to_bytes().unwrap();
    // A 9P2000.u server's extension string and numeric ids.
    b.extend_from_slice(&[0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
    let size = (b.len() - 2) as u16;
    b[..2].copy_from_slice(&size.to_le_bytes());
    let (st, n) = Stat::decode(&b).unwrap();
    assert_eq!((st, n), (sample_stat(), b.len()));
}

#[test]
fn directory_data_is_stats_back_to_back() {
    let mut a = sample_stat();
    let mut data = a.to_bytes().unwrap();
    a.name = "bin".into();
    a.to_bytes().map(|b| data.extend(b)).unwrap();
    let all = Stat::decode_all(&data).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].name.as_str(), all[1].name.as_str()), ("usr", "bin"));
    assert_eq!(
        Stat::decode_all(&data[..data.len() - 1]),
        Err(WireError::Truncated)
    );
}

#[test]
fn dont_touch_is_all_ones_and_empty() {
    let d = Stat::dont_touch();
    assert_eq!((d.mode, d.length, d.mtime), (!0, !0, !0));
    assert!(d.name.is_empty() && d.uid.is_empty());
    // Twstat fixed part: 47 bytes after the stat's size, plus the outer n.
    let b = encode(1, &Msg::Twstat { fid: 0, stat: d }).unwrap();
    assert_eq!(b.len(), HEADER + 4 + 2 + 2 + 47);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for m in every_message() {
        let bytes = encode(1, &m).unwrap();
        for cut in 0..bytes.len() {
            let mut short = bytes[..cut].to_vec();
            // With its size fixed up too: the body itself is short.
            assert!(decode(&short).is_err(), "{m:?} cut at {cut}");
            if cut >= 4 {
                short[..4].copy_from_slice(&(cut as u32).to_le_bytes());
                assert!(decode(&short).is_err(), "{m:?} cut at {cut}, size fixed");
            }
        }
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert_eq!(
        decode(&[7, 0, 0, 0, 106, 0, 0]),
        Err(WireError::UnknownType(106))
    );
    assert_eq!(
        decode(&[8, 0, 0, 0, 109, 0, 0, 0]),
        Err(WireError::Trailing(1))
    );
    assert!(matches!(
        decode(&[9, 0, 0, 0, 109, 0, 0]),
        Err(WireError::SizeMismatch { .. })
    ));
    // Seventeen walk names.
    let mut walk = vec![0u8, 0, 0, 0, 110, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 17, 0];
    for _ in 0..17 {
        walk.extend_from_slice(&[1, 0, b'x']);
    }
    let n = walk.len() as u32;
    walk[..4].copy_from_slice(&n.to_le_bytes());
    assert_eq!(decode(&walk), Err(WireError::TooManyElements(17)));
    // A pseudo-random byte soup, with a plausible header.
    let mut x: u32 = 12345;
    for len in 7..200usize {
        let mut b: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        b[..4].copy_from_slice(&(len as u32).to_le_bytes());
        b[4] = 100 + (b[4] % 28);
        let _ = decode(&b);
    }
}

#[test]
fn frames_are_bounded() {
    assert_eq!(frame_len(&[1, 0, 0], 8192), Ok(None));
    assert_eq!(frame_len(&[6, 0, 0, 0], 8192), Err(WireError::Size(6)));
    assert_eq!(
        frame_len(&[1, 0x20, 0, 0], 8192),
        Err(WireError::Size(8193))
    );
    assert_eq!(frame_len(&[0, 0x20, 0, 0, 9], 8192), Ok(Some(8192)));
}

#[test]
fn encoding_refuses_what_cannot_be_said() {
    let long = "x".repeat(70_000);
    assert_eq!(
        encode(1, &Msg::Rerror { ename: long }),
        Err(WireError::StringTooLong(70_000))
    );
    let walk = Msg::Twalk {
        fid: 0,
        newfid: 1,
        wnames: vec!["a".into(); 17],
    };
    assert_eq!(encode(1, &walk), Err(WireError::TooManyElements(17)));
}

#[test]
fn versions_and_msize_are_negotiated() {
    assert_eq!(version_reply("9P2000"), "9P2000");
    assert_eq!(version_reply("9P2000.u"), "9P2000");
    assert_eq!(version_reply("9P2000.L"), "9P2000");
    assert_eq!(version_reply("9P1"), "unknown");
    assert_eq!(negotiate(8192, 65536), Some(8192));
    assert_eq!(negotiate(1 << 20, 8192 + 24), Some(8216));
    assert_eq!(negotiate(8192, 100), None);
}
