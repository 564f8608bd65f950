//! `cc mount`'s host side for real: our 9P2000 server exports a directory
//! over loopback TCP, `ninep::fuse::serve` serves it on a /dev/fuse the
//! test mounted as the daemon will (mount(2), "fd=N,rootmode=40000,..."),
//! and plain std::fs works through the mount. Needs root and /dev/fuse;
//! skipped, saying so, without /dev/fuse.

use minimega::ninep::{fuse, server::Server};
use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Unmounts when dropped, a failed assertion included.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let c = CString::new(self.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
            // SAFETY: likewise; something still holds it: detach.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn mount_fuse(at: &Path) -> Option<(OwnedFd, Mounted)> {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: this machine has no /dev/fuse");
        return None;
    }
    let fd: OwnedFd = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .unwrap()
        .into();
    let data = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
        fd.as_raw_fd()
    );
    let (src, fstype) = (
        CString::new("ninep").unwrap(),
        CString::new("fuse").unwrap(),
    );
    let target = CString::new(at.as_os_str().as_bytes()).unwrap();
    let data = CString::new(data).unwrap();
    // SAFETY: valid C strings; the data is the options string.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    assert_eq!(rc, 0, "mount: {}", io::Error::last_os_error());
    Some((fd, Mounted(at.to_path_buf())))
}

/// A connection to our server exporting `root`, and the server's end.
fn export(root: &Path) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let root = root.to_path_buf();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        tx.send(s.try_clone().unwrap()).unwrap();
        let r = s.try_clone().unwrap();
        let _ = Server::new(root).serve(r, s);
    });
    let c = TcpStream::connect(addr).unwrap();
    (c, rx.recv().unwrap())
}

fn finished<T>(t: &JoinHandle<T>, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while !t.is_finished() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn errno(r: io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

#[test]
fn a_directory_is_served_through_fuse() {
    let exported = tempfile::tempdir().unwrap();
    let ex = exported.path();
    fs::write(ex.join("hello.txt"), "hello, world\n").unwrap();
    fs::create_dir(ex.join("sub")).unwrap();
    fs::write(ex.join("sub/inner.txt"), "inner").unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let Some((fd, mounted)) = mount_fuse(mnt.path()) else {
        return;
    };
    let (conn, _server_end) = export(ex);
    let served = std::thread::spawn(move || fuse::serve(fd, conn));
    let m = mnt.path();

    // Listing and reading.
    let mut names: Vec<String> = fs::read_dir(m)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["hello.txt", "sub"]);
    // What `ls -l` does: each entry's attributes right after the listing.
    for e in fs::read_dir(m.join("sub")).unwrap() {
        let e = e.unwrap();
        let here = e.metadata().unwrap();
        let there = fs::metadata(ex.join("sub").join(e.file_name())).unwrap();
        assert_eq!((here.len(), here.is_dir()), (there.len(), there.is_dir()));
    }
    assert_eq!(
        fs::read_to_string(m.join("hello.txt")).unwrap(),
        "hello, world\n"
    );
    // Reads are not cached: a change on the other side shows at once.
    fs::write(ex.join("sub/inner.txt"), "changed").unwrap();
    assert_eq!(
        fs::read_to_string(m.join("sub/inner.txt")).unwrap(),
        "changed"
    );
    fs::write(ex.join("sub/inner.txt"), "inner").unwrap();
    assert_eq!(
        fs::read_to_string(m.join("sub/inner.txt")).unwrap(),
        "inner"
    );
    assert!(fs::metadata(m.join("sub")).unwrap().is_dir());
    assert_eq!(fs::metadata(m.join("hello.txt")).unwrap().len(), 13);
    assert_eq!(errno(fs::metadata(m.join("nope"))), Some(libc::ENOENT));

    // Writing: a new file, then a big one, in many 9P writes and reads.
    fs::write(m.join("new.txt"), "new contents").unwrap();
    assert_eq!(fs::read(ex.join("new.txt")).unwrap(), b"new contents");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(m.join("sub/big"), &big).unwrap();
    assert_eq!(fs::read(ex.join("sub/big")).unwrap(), big);
    assert_eq!(fs::read(m.join("sub/big")).unwrap(), big);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.join("new.txt"))
        .unwrap();
    f.seek(io::SeekFrom::Start(4)).unwrap();
    f.write_all(b"CONTENTS").unwrap();
    f.rewind().unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "new CONTENTS");
    drop(f);

    // Directories, renames, truncation, modes.
    fs::create_dir(m.join("newdir")).unwrap();
    assert!(ex.join("newdir").is_dir());
    assert_eq!(errno(fs::create_dir(m.join("newdir"))), Some(libc::EEXIST));
    fs::rename(m.join("new.txt"), m.join("renamed.txt")).unwrap();
    assert!(!ex.join("new.txt").exists());
    assert_eq!(fs::read(ex.join("renamed.txt")).unwrap(), b"new CONTENTS");
    assert_eq!(fs::read(m.join("renamed.txt")).unwrap(), b"new CONTENTS");
    assert_eq!(errno(fs::metadata(m.join("new.txt"))), Some(libc::ENOENT));
    assert_eq!(
        errno(fs::rename(m.join("renamed.txt"), m.join("newdir/x"))),
        Some(libc::EXDEV)
    );
    fs::OpenOptions::new()
        .write(true)
        .open(m.join("renamed.txt"))
        .unwrap()
        .set_len(3)
        .unwrap();
    assert_eq!(fs::read(ex.join("renamed.txt")).unwrap(), b"new");
    fs::write(m.join("renamed.txt"), "again").unwrap();
    assert_eq!(fs::read(ex.join("renamed.txt")).unwrap(), b"again");
    fs::set_permissions(m.join("renamed.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let mode = fs::metadata(ex.join("renamed.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        fs::metadata(m.join("renamed.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Removing.
    assert_eq!(errno(fs::remove_dir(m.join("sub"))), Some(libc::ENOTEMPTY));
    fs::remove_file(m.join("renamed.txt")).unwrap();
    fs::remove_dir(m.join("newdir")).unwrap();
    assert!(!ex.join("renamed.txt").exists() && !ex.join("newdir").exists());
    let mut names: Vec<String> = fs::read_dir(m)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["hello.txt", "sub"]);

    // Unmounted, serve returns.
    drop(mounted);
    assert!(
        finished(&served, Duration::from_secs(10)),
        "serve still runs"
    );
    served.join().unwrap().unwrap();
}

#[test]
fn serve_returns_when_the_connection_ends() {
    let exported = tempfile::tempdir().unwrap();
    fs::write(exported.path().join("f"), "x").unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let Some((fd, _mounted)) = mount_fuse(mnt.path()) else {
        return;
    };
    let (conn, server_end) = export(exported.path());
    let served = std::thread::spawn(move || fuse::serve(fd, conn));
    assert_eq!(fs::read(mnt.path().join("f")).unwrap(), b"x");
    server_end.shutdown(Shutdown::Both).unwrap();
    assert!(
        finished(&served, Duration::from_secs(10)),
        "serve still runs"
    );
    served.join().unwrap().unwrap();
    // The mount stays until unmounted; it can no longer reach the files.
    assert!(fs::read(mnt.path().join("f")).is_err());
}
