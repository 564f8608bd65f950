//! The server, driven frame by frame on a temporary directory.

use super::*;
use crate::ninep::wire::{decode, encode};
use std::os::unix::fs::PermissionsExt;

struct T {
    s: Server,
    dir: tempfile::TempDir,
    tag: u16,
}

impl T {
    fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("hello.txt"), "hello, world\n").unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        let mut t = T {
            s: Server::new(&root),
            dir,
            tag: 0,
        };
        t.ok(Msg::Tversion {
            msize: 8192,
            version: "9P2000".into(),
        });
        t.ok(Msg::Tattach {
            fid: 0,
            afid: NOFID,
            uname: "root".into(),
            aname: "".into(),
        });
        t
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn call(&mut self, m: Msg) -> Msg {
        self.tag += 1;
        let (tag, r) = decode(&self.s.handle(&encode(self.tag, &m).unwrap())).unwrap();
        assert_eq!(tag, self.tag);
        r
    }

    fn ok(&mut self, m: Msg) -> Msg {
        let what = format!("{m:?}");
        match self.call(m) {
            Msg::Rerror { ename } => panic!("{what}: {ename}"),
            r => r,
        }
    }

    fn err(&mut self, m: Msg) -> String {
        match self.call(m) {
            Msg::Rerror { ename } => ename,
            r => panic!("expected an error, got {r:?}"),
        }
    }

    fn walk(&mut self, newfid: u32, names: &[&str]) -> Msg {
        self.call(Msg::Twalk {
            fid: 0,
            newfid,
            wnames: names.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn stat(&mut self, fid: u32) -> Stat {
        match self.ok(Msg::Tstat { fid }) {
            Msg::Rstat { stat } => stat,
            r => panic!("{r:?}"),
        }
    }

    fn read(&mut self, fid: u32, offset: u64, count: u32) -> Vec<u8> {
        match self.ok(Msg::Tread { fid, offset, count }) {
            Msg::Rread { data } => data,
            r => panic!("{r:?}"),
        }
    }
}

#[test]
fn version_is_negotiated_and_resets_the_session() {
    let mut t = T::new();
    let r = t.ok(Msg::Tversion {
        msize: 1 << 30,
        version: "9P2000.L".into(),
    });
    assert_eq!(
        r,
        Msg::Rversion {
            msize: MAX_MSIZE,
            version: "9P2000".into()
        }
    );
    // The attach of before is gone.
    assert_eq!(t.err(Msg::Tstat { fid: 0 }), "unknown fid");
    let r = t.ok(Msg::Tversion {
        msize: 8192,
        version: "9P3000".into(),
    });
    assert!(matches!(r, Msg::Rversion { version, .. } if version == "unknown"));
    assert_eq!(
        t.err(Msg::Tversion {
            msize: 100,
            version: "9P2000".into()
        }),
        "msize too small"
    );
    assert_eq!(
        t.err(Msg::Tauth {
            afid: 1,
            uname: "root".into(),
            aname: "".into()
        }),
        "authentication not required"
    );
}

#[test]
fn a_broken_frame_gets_an_error_with_its_tag() {
    let mut t = T::new();
    let mut frame = encode(77, &Msg::Tclunk { fid: 0 }).unwrap();
    frame[4] = 106; // Terror, which does not exist
    let (tag, r) = decode(&t.s.handle(&frame)).unwrap();
    assert_eq!(tag, 77);
    assert!(matches!(r, Msg::Rerror { ename } if ename.contains("unknown message type")));
    // A reply sent to the server is not a request.
    assert_eq!(t.err(Msg::Rflush), "unexpected Rflush");
}

#[test]
fn stat_shows_the_file_with_numeric_owners() {
    let mut t = T::new();
    let root = t.stat(0);
    assert_eq!(root.name, "/");
    assert!(root.qid.is_dir() && root.is_dir());
    t.walk(1, &["hello.txt"]);
    let st = t.stat(1);
    let m = fs::metadata(t.root().join("hello.txt")).unwrap();
    assert_eq!(st.name, "hello.txt");
    assert_eq!(st.length, 13);
    assert_eq!(st.qid.ty, qt::FILE);
    assert_eq!(st.mode, m.permissions().mode() & 0o777);
    assert_eq!(
        (st.uid.clone(), st.gid.clone()),
        (m.uid().to_string(), m.gid().to_string())
    );
    assert_eq!(st.muid, st.uid);
    assert_eq!(st.mtime as i64, m.mtime());
}

#[test]
fn walk_stays_inside_the_root() {
    let mut t = T::new();
    // ".." at the root is the root.
    let r = t.walk(1, &["..", "..", "hello.txt"]);
    assert!(matches!(r, Msg::Rwalk { ref wqids } if wqids.len() == 3));
    assert_eq!(t.stat(1).name, "hello.txt");
    let e = t.walk(2, &["..", "outside.txt"]);
    assert!(
        matches!(e, Msg::Rwalk { ref wqids } if wqids.len() == 1),
        "{e:?}"
    );
    assert_eq!(t.err(Msg::Tstat { fid: 2 }), "unknown fid");
    assert!(matches!(t.walk(2, &["a/b"]), Msg::Rerror { .. }));
    assert!(matches!(t.walk(2, &[""]), Msg::Rerror { .. }));
}

#[test]
fn walk_answers_as_far_as_it_got() {
    let mut t = T::new();
    // The first name fails: an error.
    let e = t.walk(1, &["nope", "x"]);
    assert!(matches!(e, Msg::Rerror { ref ename } if ename == "No such file or directory"));
    // A later one: the qids so far, and no newfid.
    let r = t.walk(1, &["sub", "nope"]);
    assert!(matches!(r, Msg::Rwalk { ref wqids } if wqids.len() == 1 && wqids[0].is_dir()));
    assert_eq!(t.err(Msg::Tclunk { fid: 1 }), "unknown fid");
    // Through a file: not a directory.
    let r = t.walk(1, &["hello.txt", "x"]);
    assert!(matches!(r, Msg::Rwalk { ref wqids } if wqids.len() == 1));
    // No names: a copy; fid in use: refused.
    assert!(matches!(t.walk(1, &[]), Msg::Rwalk { ref wqids } if wqids.is_empty()));
    assert_eq!(t.stat(1).name, "/");
    assert!(
        matches!(t.walk(1, &["sub"]), Msg::Rerror { ref ename } if ename == "fid already in use")
    );
}

#[test]
fn open_modes_are_kept() {
    let mut t = T::new();
    t.walk(1, &["hello.txt"]);
    t.ok(Msg::Topen {
        fid: 1,
        mode: om::READ,
    });
    assert_eq!(t.read(1, 7, 100), b"world\n");
    assert_eq!(t.read(1, 100, 100), b"");
    let w = Msg::Twrite {
        fid: 1,
        offset: 0,
        data: b"x".to_vec(),
    };
    assert_eq!(t.err(w), "file not open for writing");
    assert_eq!(
        t.err(Msg::Topen {
            fid: 1,
            mode: om::READ
        }),
        "fid already open"
    );
    // OTRUNC empties it; OWRITE cannot read.
    t.walk(2, &["hello.txt"]);
    t.ok(Msg::Topen {
        fid: 2,
        mode: om::WRITE | om::TRUNC,
    });
    assert_eq!(fs::read(t.root().join("hello.txt")).unwrap(), b"");
    t.ok(Msg::Twrite {
        fid: 2,
        offset: 3,
        data: b"abc".to_vec(),
    });
    assert_eq!(fs::read(t.root().join("hello.txt")).unwrap(), b"\0\0\0abc");
    assert_eq!(
        t.err(Msg::Tread {
            fid: 2,
            offset: 0,
            count: 10
        }),
        "file not open for reading"
    );
    // A directory opens for reading only.
    t.walk(3, &["sub"]);
    assert_eq!(
        t.err(Msg::Topen {
            fid: 3,
            mode: om::RDWR
        }),
        "Is a directory"
    );
}

#[test]
fn directory_reads_continue_from_the_last_offset() {
    let mut t = T::new();
    for i in 0..40 {
        fs::write(t.root().join(format!("file-{i:02}")), "x").unwrap();
    }
    t.walk(1, &[]);
    t.ok(Msg::Topen {
        fid: 1,
        mode: om::READ,
    });
    let mut names = Vec::new();
    let mut offset = 0;
    loop {
        let data = t.read(1, offset, 300);
        assert!(data.len() <= 300);
        if data.is_empty() {
            break;
        }
        offset += data.len() as u64;
        names.extend(Stat::decode_all(&data).unwrap().into_iter().map(|s| s.name));
    }
    names.sort();
    assert_eq!(names.len(), 42);
    assert_eq!(names[0], "file-00");
    assert!(names.contains(&"sub".to_string()));
    assert_eq!(
        t.err(Msg::Tread {
            fid: 1,
            offset: 5,
            count: 300
        }),
        "bad offset in directory read"
    );
    // Offset 0 starts over.
    let again = Stat::decode_all(&t.read(1, 0, 8000)).unwrap();
    assert_eq!(again.len(), 42);
    // Too small for one entry.
    assert!(t
        .err(Msg::Tread {
            fid: 1,
            offset: 0,
            count: 10
        })
        .contains("too small"));
}

#[test]
fn create_makes_files_and_directories_and_moves_the_fid() {
    let mut t = T::new();
    t.walk(1, &["sub"]);
    let r = t.ok(Msg::Tcreate {
        fid: 1,
        name: "new.txt".into(),
        perm: 0o640,
        mode: om::RDWR,
    });
    assert!(matches!(r, Msg::Rcreate { qid, .. } if !qid.is_dir()));
    t.ok(Msg::Twrite {
        fid: 1,
        offset: 0,
        data: b"data".to_vec(),
    });
    assert_eq!(t.read(1, 0, 10), b"data");
    assert_eq!(t.stat(1).name, "new.txt");
    let p = t.root().join("sub/new.txt");
    assert_eq!(fs::read(&p).unwrap(), b"data");
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o077,
        0o040 & 0o077
    );
    // It exists now.
    t.walk(2, &["sub"]);
    let e = t.err(Msg::Tcreate {
        fid: 2,
        name: "new.txt".into(),
        perm: 0o644,
        mode: om::WRITE,
    });
    assert_eq!(e, "File exists");
    let r = t.ok(Msg::Tcreate {
        fid: 2,
        name: "d".into(),
        perm: dm::DIR | 0o755,
        mode: om::READ,
    });
    assert!(matches!(r, Msg::Rcreate { qid, .. } if qid.is_dir()));
    assert!(t.root().join("sub/d").is_dir());
    t.walk(3, &["sub"]);
    let e = t.err(Msg::Tcreate {
        fid: 3,
        name: "..".into(),
        perm: 0o644,
        mode: om::WRITE,
    });
    assert_eq!(e, "Invalid argument");
}

#[test]
fn remove_and_orclose_remove_and_free_the_fid() {
    let mut t = T::new();
    fs::write(t.root().join("sub/f"), "").unwrap();
    t.walk(1, &["sub"]);
    assert_eq!(t.err(Msg::Tremove { fid: 1 }), "Directory not empty");
    assert_eq!(t.err(Msg::Tclunk { fid: 1 }), "unknown fid");
    t.walk(1, &["sub", "f"]);
    t.ok(Msg::Tremove { fid: 1 });
    assert!(!t.root().join("sub/f").exists());
    t.walk(1, &["hello.txt"]);
    t.ok(Msg::Topen {
        fid: 1,
        mode: om::READ | om::RCLOSE,
    });
    assert!(t.root().join("hello.txt").exists());
    t.ok(Msg::Tclunk { fid: 1 });
    assert!(!t.root().join("hello.txt").exists());
    t.walk(1, &[]);
    assert_eq!(t.err(Msg::Tremove { fid: 1 }), "cannot remove the root");
}

#[test]
fn wstat_renames_truncates_chmods_and_touches_only_what_it_is_told() {
    let mut t = T::new();
    let p = t.root().join("hello.txt");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o4644)).unwrap();
    t.walk(1, &["hello.txt"]);
    let before = fs::metadata(&p).unwrap();
    t.ok(Msg::Twstat {
        fid: 1,
        stat: Stat::dont_touch(),
    });
    let after = fs::metadata(&p).unwrap();
    assert_eq!(
        (before.len(), before.mode(), before.mtime()),
        (after.len(), after.mode(), after.mtime())
    );
    let mut st = Stat::dont_touch();
    st.length = 5;
    st.mode = 0o600;
    st.mtime = 1_000_000_000;
    t.ok(Msg::Twstat { fid: 1, stat: st });
    let m = fs::metadata(&p).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"hello");
    // The setuid bit 9P2000 cannot say stays.
    assert_eq!(m.mode() & 0o7777, 0o4600);
    assert_eq!(m.mtime(), 1_000_000_000);
    assert_ne!(m.atime(), 1_000_000_000);
    let mut st = Stat::dont_touch();
    st.name = "renamed.txt".into();
    t.ok(Msg::Twstat { fid: 1, stat: st });
    assert!(!p.exists());
    assert_eq!(fs::read(t.root().join("renamed.txt")).unwrap(), b"hello");
    // The fid follows the file.
    assert_eq!(t.stat(1).name, "renamed.txt");
    let mut st = Stat::dont_touch();
    st.name = "../escape".into();
    assert_eq!(t.err(Msg::Twstat { fid: 1, stat: st }), "Invalid argument");
    let mut st = Stat::dont_touch();
    st.uid = "harvey".into();
    assert_eq!(
        t.err(Msg::Twstat { fid: 1, stat: st }),
        "Operation not permitted"
    );
    t.walk(2, &["sub"]);
    let mut st = Stat::dont_touch();
    st.length = 0;
    assert_eq!(t.err(Msg::Twstat { fid: 2, stat: st }), "Is a directory");
}

#[test]
fn serve_answers_a_stream_until_it_ends() {
    let t = T::new();
    let mut input = Vec::new();
    for (tag, m) in [
        (
            NOTAG,
            Msg::Tversion {
                msize: 8192,
                version: "9P2000".into(),
            },
        ),
        (
            1,
            Msg::Tattach {
                fid: 5,
                afid: NOFID,
                uname: "root".into(),
                aname: "sub".into(),
            },
        ),
        (2, Msg::Tstat { fid: 5 }),
    ] {
        input.extend(encode(tag, &m).unwrap());
    }
    let mut out = Vec::new();
    Server::new(t.root()).serve(&input[..], &mut out).unwrap();
    let mut replies = Vec::new();
    let mut rest = &out[..];
    while let Some(f) = read_frame(&mut rest, 8192).unwrap() {
        replies.push(decode(&f).unwrap());
    }
    assert_eq!(replies.len(), 3);
    assert!(matches!(&replies[2], (2, Msg::Rstat { stat }) if stat.name == "sub"));
}
