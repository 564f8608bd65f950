//! The client against our server over a socket pair.

use super::*;
use crate::ninep::server::Server;
use crate::ninep::wire::{dm, om};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

fn served(root: &Path, msize: u32) -> Client<UnixStream> {
    let (a, b) = UnixStream::pair().unwrap();
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        let r = b.try_clone().unwrap();
        let _ = Server::new(root).serve(r, b);
    });
    Client::connect(a, msize).unwrap()
}

fn n(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn connect_negotiates_the_smaller_msize() {
    let dir = tempfile::tempdir().unwrap();
    let c = served(dir.path(), DEFAULT_MSIZE);
    assert_eq!(c.msize(), DEFAULT_MSIZE);
    assert_eq!(c.iounit(), 64 * 1024);
    let c = served(dir.path(), 1 << 24);
    assert_eq!(c.msize(), crate::ninep::server::MAX_MSIZE);
    assert!(c.alive());
}

#[test]
fn deep_walks_go_in_steps_of_sixteen() {
    let dir = tempfile::tempdir().unwrap();
    let deep: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
    let host = deep.iter().fold(dir.path().to_path_buf(), |p, d| p.join(d));
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("leaf"), "deep").unwrap();
    let c = served(dir.path(), 8192);
    let mut path = deep.clone();
    path.push("leaf".into());
    let fid = c.walk(c.root(), &path).unwrap();
    assert_eq!(c.stat(fid).unwrap().length, 4);
    c.open(fid, om::READ).unwrap();
    assert_eq!(c.read_at(fid, 0, 100).unwrap(), b"deep");
    c.clunk(fid).unwrap();
    // Failing in the third step: an error, and no fid left behind.
    path[35] = "missing".into();
    let e = c.walk(c.root(), &path).unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT, "{e}");
    let e = c.walk(c.root(), &n("nope")).unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT, "{e}");
    // The freed fids are handed out again.
    let a = c.walk(c.root(), &[]).unwrap();
    let b = c.walk(c.root(), &[]).unwrap();
    assert!(a < 4 && b < 4, "{a} {b}");
}

#[test]
fn reads_and_writes_go_in_pieces_of_the_iounit() {
    let dir = tempfile::tempdir().unwrap();
    let c = served(dir.path(), 1024);
    let fid = c.walk(c.root(), &[]).unwrap();
    c.create(fid, "big", 0o644, om::RDWR).unwrap();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(c.write(fid, 0, &data).unwrap(), data.len());
    assert_eq!(c.read_at(fid, 0, 20_000).unwrap(), data);
    assert_eq!(c.read_at(fid, 9_990, 100).unwrap(), &data[9_990..]);
    assert_eq!(c.read(fid, 0, 5000).unwrap().len(), 1000);
    c.clunk(fid).unwrap();
    assert_eq!(fs::read(dir.path().join("big")).unwrap(), data);
}

#[test]
fn directories_list_whole_over_many_reads() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..100 {
        fs::write(dir.path().join(format!("entry-number-{i:03}")), "").unwrap();
    }
    fs::create_dir(dir.path().join("sub")).unwrap();
    // A small msize: a few entries a read.
    let c = served(dir.path(), 512);
    let fid = c.walk(c.root(), &[]).unwrap();
    c.open(fid, om::READ).unwrap();
    let mut names: Vec<String> = c
        .read_dir(fid)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.sort();
    assert_eq!(names.len(), 101);
    assert_eq!(names[100], "sub");
    c.clunk(fid).unwrap();
}

#[test]
fn create_wstat_and_remove_change_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let c = served(dir.path(), 8192);
    let d = c.walk(c.root(), &[]).unwrap();
    let (q, _) = c.create(d, "dir", dm::DIR | 0o750, om::READ).unwrap();
    assert!(q.is_dir());
    c.clunk(d).unwrap();
    assert!(dir.path().join("dir").is_dir());
    let f = c.walk(c.root(), &n("dir")).unwrap();
    c.create(f, "a.txt", 0o644, om::WRITE).unwrap();
    c.write(f, 0, b"0123456789").unwrap();
    let mut st = Stat::dont_touch();
    st.length = 4;
    st.mode = 0o600;
    c.wstat(f, &st).unwrap();
    let mut st = Stat::dont_touch();
    st.name = "b.txt".into();
    c.wstat(f, &st).unwrap();
    c.clunk(f).unwrap();
    let p = dir.path().join("dir/b.txt");
    assert_eq!(fs::read(&p).unwrap(), b"0123");
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Errors say what the server said, and map to errnos.
    let d = c.walk(c.root(), &n("dir")).unwrap();
    let e = c.create(d, "b.txt", 0o644, om::WRITE).unwrap_err();
    assert_eq!(e.errno(), libc::EEXIST, "{e}");
    c.clunk(d).unwrap();
    let d = c.walk(c.root(), &n("dir")).unwrap();
    let e = c.remove(d).unwrap_err();
    assert_eq!(e.errno(), libc::ENOTEMPTY, "{e}");
    let f = c.walk(c.root(), &n("dir/b.txt")).unwrap();
    c.remove(f).unwrap();
    let d = c.walk(c.root(), &n("dir")).unwrap();
    c.remove(d).unwrap();
    assert!(!dir.path().join("dir").exists());
    let st = c.with_path(&[], |fid| c.stat(fid)).unwrap();
    assert_eq!(st.name, "/");
}

#[test]
fn a_dead_connection_fails_every_call() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    assert!(Client::connect(a, 8192).is_err());
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let root = dir.path().to_path_buf();
    let server = std::thread::spawn(move || {
        let r = b.try_clone().unwrap();
        // Answers the version and the attach, then hangs up.
        let mut s = Server::new(root);
        let mut r = r;
        let mut w = b;
        for _ in 0..2 {
            let f = crate::ninep::read_frame(&mut r, 8192).unwrap().unwrap();
            w.write_all(&s.handle(&f)).unwrap();
        }
    });
    let c = Client::connect(a, 8192).unwrap();
    server.join().unwrap();
    let e = c.stat(c.root()).unwrap_err();
    assert_eq!(e.errno(), libc::ENOTCONN, "{e}");
    assert!(!c.alive());
    assert_eq!(c.stat(c.root()).unwrap_err().errno(), libc::ENOTCONN);
}
