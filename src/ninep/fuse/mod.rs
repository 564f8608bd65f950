//! The tree of a 9P2000 server as a FUSE file system: `cc mount` without
//! the kernel's 9p module. Every operation walks from the attached root to
//! the file's path (numbered by path, see inodes.rs) and clunks what it walked, so no
//! fid outlives an operation but an open file's. Files open with direct
//! I/O: a guest's /proc and /sys files say length 0 yet have contents,
//! and another writer may change any file behind the page cache's back.
//! Attributes and entries live one second.

use super::client::{Client, DEFAULT_MSIZE};
use super::inodes::{Inodes, ROOT};
use super::wire::{dm, om, Stat};
use super::Error;
use fuser::{Errno, FileAttr, FileHandle, FileType, INodeNo, Session, SessionACL, TimeOrNow};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod ops;

const TTL: Duration = Duration::from_secs(1);
/// Directory handles are numbered from here; below are file handles,
/// which are the open file's fid.
const DIR_HANDLES: u64 = 1 << 32;

/// Serves the tree of the 9P2000 server at the other end of `conn` on an
/// already-open `/dev/fuse` descriptor the caller has mounted (mount(2) with
/// fstype "fuse", options "fd=N,rootmode=40000,user_id=0,group_id=0,allow_other").
/// Blocks until the file system is unmounted or the connection ends.
///
/// When the connection ends first, the mount stays (its operations fail
/// with ENOTCONN) until the caller unmounts it; the thread serving it ends
/// then.
pub fn serve(fuse: OwnedFd, conn: TcpStream) -> Result<(), Error> {
    let _ = conn.set_nodelay(true);
    let watch = conn.try_clone()?;
    let client = Arc::new(Client::connect(conn, DEFAULT_MSIZE)?);
    let fs = Fs::new(client.clone());
    let mut config = fuser::Config::default();
    config.acl = SessionACL::All;
    let session = Session::from_fd(fs, fuse, SessionACL::All, config).map_err(Error::Fuse)?;
    let (done_tx, done) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("ninep-fuse".into())
        .spawn(move || {
            let r = session.run();
            let _ = done_tx.send(());
            r
        })
        .map_err(Error::Fuse)?;
    loop {
        match done.try_recv() {
            Ok(()) | Err(mpsc::TryRecvError::Disconnected) => {
                return match worker.join() {
                    Ok(r) => r.map_err(Error::Fuse),
                    Err(_) => Err(Error::Fuse(std::io::Error::other("FUSE session panicked"))),
                };
            }
            Err(mpsc::TryRecvError::Empty) => {}
        }
        if hung_up(&watch, 200) || !client.alive() {
            return Ok(());
        }
    }
}

/// Whether the peer closed `s`, waiting up to `ms` to see; pending data
/// does not wake it.
fn hung_up(s: &TcpStream, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd on a socket we hold.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// One entry of an open directory.
struct Entry {
    ino: u64,
    kind: FileType,
    name: String,
}

struct Fs<S> {
    c: Arc<Client<S>>,
    inodes: Mutex<Inodes>,
    dirs: Mutex<HashMap<u64, Vec<Entry>>>,
    next_dir: AtomicU64,
    /// The stats of the last directory listed, by path: `ls -l` looks up
    /// every entry it just listed, three round trips each otherwise. Kept
    /// as long as an attribute is (TTL), dropped by any change.
    recent: Mutex<(Instant, HashMap<Vec<String>, Stat>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn errno(e: &Error) -> Errno {
    Errno::from_i32(e.errno())
}

/// What FUSE shows of a stat. Owners are numbers when the server says
/// numbers (ours), else root (Go's ufs says "harvey").
pub fn attr_of(ino: u64, st: &Stat) -> FileAttr {
    let dir = st.is_dir() || st.qid.is_dir();
    let t = |s: u32| UNIX_EPOCH + Duration::from_secs(s as u64);
    FileAttr {
        ino: INodeNo(ino),
        size: st.length,
        blocks: st.length.div_ceil(512),
        atime: t(st.atime),
        mtime: t(st.mtime),
        ctime: t(st.mtime),
        crtime: t(st.mtime),
        kind: if dir {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: (st.mode & dm::PERM) as u16,
        nlink: if dir { 2 } else { 1 },
        uid: st.uid.parse().unwrap_or(0),
        gid: st.gid.parse().unwrap_or(0),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// open(2)'s flags as a 9P open mode.
pub fn open_mode(flags: i32) -> u8 {
    let acc = match flags & libc::O_ACCMODE {
        libc::O_WRONLY => om::WRITE,
        libc::O_RDWR => om::RDWR,
        _ => om::READ,
    };
    acc | if flags & libc::O_TRUNC != 0 {
        om::TRUNC
    } else {
        0
    }
}

/// Seconds since the epoch, as a stat holds them.
fn secs(t: TimeOrNow) -> u32 {
    let t = match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    };
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl<S: Read + Write + Send + 'static> Fs<S> {
    fn new(c: Arc<Client<S>>) -> Fs<S> {
        Fs {
            c,
            inodes: Mutex::new(Inodes::default()),
            dirs: Mutex::new(HashMap::new()),
            next_dir: AtomicU64::new(DIR_HANDLES),
            recent: Mutex::new((Instant::now(), HashMap::new())),
        }
    }

    /// Something changed through us: listed stats may be stale.
    fn changed(&self) {
        lock(&self.recent).1.clear();
    }

    fn path(&self, ino: INodeNo) -> Result<Vec<String>, Errno> {
        lock(&self.inodes).path(ino.0).ok_or(Errno::ENOENT)
    }

    /// The path of `name` in `parent`, and the name as 9P says it.
    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<(Vec<String>, String), Errno> {
        let name = name.to_str().ok_or(Errno::ENOENT)?;
        let path = lock(&self.inodes)
            .child(parent.0, name)
            .ok_or(Errno::ENOENT)?;
        Ok((path, name.to_string()))
    }

    fn stat(&self, path: &[String]) -> Result<Stat, Error> {
        {
            let recent = lock(&self.recent);
            if recent.0.elapsed() < TTL {
                if let Some(st) = recent.1.get(path) {
                    return Ok(st.clone());
                }
            }
        }
        if path.is_empty() {
            return self.c.stat(self.c.root());
        }
        self.c.with_path(path, |fid| self.c.stat(fid))
    }

    fn entry(&self, path: &[String], st: &Stat) -> FileAttr {
        let ino = lock(&self.inodes).ino(path);
        attr_of(ino, st)
    }

    /// A fid on `parent`'s directory, for Tcreate.
    fn parent_fid(&self, path: &[String]) -> Result<u32, Error> {
        self.c
            .walk(self.c.root(), &path[..path.len().saturating_sub(1)])
    }

    fn list(&self, ino: INodeNo) -> Result<Vec<Entry>, Errno> {
        let path = self.path(ino)?;
        let fid = self.c.walk(self.c.root(), &path).map_err(|e| errno(&e))?;
        let listed = self
            .c
            .open(fid, om::READ)
            .and_then(|_| self.c.read_dir(fid));
        let _ = self.c.clunk(fid);
        let stats = listed.map_err(|e| errno(&e))?;
        let mut seen = HashMap::new();
        let mut t = lock(&self.inodes);
        let up = t.child(ino.0, "..").map(|p| t.ino(&p)).unwrap_or(ROOT);
        let mut out = vec![
            Entry {
                ino: ino.0,
                kind: FileType::Directory,
                name: ".".into(),
            },
            Entry {
                ino: up,
                kind: FileType::Directory,
                name: "..".into(),
            },
        ];
        for st in stats {
            if st.name.is_empty() || st.name == "." || st.name == ".." || st.name.contains('/') {
                continue;
            }
            let mut p = path.clone();
            p.push(st.name.clone());
            out.push(Entry {
                ino: t.ino(&p),
                kind: attr_of(0, &st).kind,
                name: st.name.clone(),
            });
            seen.insert(p, st);
        }
        *lock(&self.recent) = (Instant::now(), seen);
        Ok(out)
    }

    /// Twstat of what `change` sets (given the stat as it is), then the
    /// attributes as they became.
    fn set(
        &self,
        ino: INodeNo,
        fh: Option<FileHandle>,
        change: impl FnOnce(&mut Stat, &Stat),
    ) -> Result<FileAttr, Errno> {
        self.changed();
        let on = |fid: u32| -> Result<FileAttr, Error> {
            let now = self.c.stat(fid)?;
            let mut st = Stat::dont_touch();
            change(&mut st, &now);
            if st != Stat::dont_touch() {
                self.c.wstat(fid, &st)?;
            }
            Ok(attr_of(ino.0, &self.c.stat(fid)?))
        };
        let r = match fh {
            Some(FileHandle(fid)) if fid < DIR_HANDLES => on(fid as u32),
            _ => {
                let path = self.path(ino)?;
                if path.is_empty() {
                    on(self.c.root())
                } else {
                    self.c.with_path(&path, on)
                }
            }
        };
        r.map_err(|e| errno(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ninep::wire::{qt, Qid};

    #[test]
    fn stats_become_attributes() {
        let mut st = Stat {
            mode: dm::DIR | 0o755,
            mtime: 1_700_000_000,
            atime: 1_700_000_001,
            uid: "1000".into(),
            gid: "harvey".into(),
            ..Stat::default()
        };
        let a = attr_of(7, &st);
        assert_eq!(
            (a.ino, a.kind, a.perm, a.nlink),
            (INodeNo(7), FileType::Directory, 0o755, 2)
        );
        assert_eq!((a.uid, a.gid), (1000, 0));
        assert_eq!(a.mtime, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        st.mode = 0o640;
        st.length = 1000;
        st.qid = Qid {
            ty: qt::SYMLINK,
            ..Qid::default()
        };
        let a = attr_of(8, &st);
        assert_eq!(
            (a.kind, a.perm, a.size, a.blocks),
            (FileType::RegularFile, 0o640, 1000, 2)
        );
        // Go's ufs marks directories in the qid as well as the mode.
        st.qid.ty = qt::DIR;
        assert_eq!(attr_of(9, &st).kind, FileType::Directory);
    }

    #[test]
    fn open_flags_become_9p_modes() {
        assert_eq!(open_mode(libc::O_RDONLY), om::READ);
        assert_eq!(
            open_mode(libc::O_WRONLY | libc::O_TRUNC),
            om::WRITE | om::TRUNC
        );
        assert_eq!(
            open_mode(libc::O_RDWR | libc::O_APPEND | libc::O_CREAT),
            om::RDWR
        );
    }
}
