//! A blocking 9P2000 server exporting a host directory: what our agent
//! runs on the guest's "/" for `cc mount`. One request at a time, answered
//! in order (Tflush has nothing to cancel). Each fid is a list of names
//! below the root; a walk takes ".." lexically and never above the root,
//! as Go's ufs does. Symbolic links are the OS's to follow (a stat shows
//! what a link points to, a dangling one as itself), so /bin -> usr/bin
//! lists as the directory it is; a link may lead outside the root.

use super::wire::{self, dm, om, qt, Msg, Qid, Stat, IOHDRSZ, NOFID, NOTAG};
use super::{read_frame, Error};
use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The largest msize this server agrees to.
pub const MAX_MSIZE: u32 = 1 << 20;

pub struct Server {
    root: PathBuf,
    msize: u32,
    fids: HashMap<u32, Fid>,
}

struct Fid {
    /// Below the root; never "", ".", ".." nor anything with a slash.
    names: Vec<String>,
    open: Option<Open>,
    /// ORCLOSE: removed when clunked.
    rclose: bool,
}

enum Open {
    File {
        file: File,
        read: bool,
        write: bool,
        /// Pipes and devices ignore offsets (and have no pread).
        seekable: bool,
    },
    Dir(Option<Listing>),
}

/// A directory's entries as packed stats, read once at offset 0: 9P
/// offsets into a directory only ever continue the previous read.
struct Listing {
    entries: Vec<Vec<u8>>,
    next: usize,
    offset: u64,
}

/// An Rerror's text.
struct Ename(String);

impl From<io::Error> for Ename {
    fn from(e: io::Error) -> Ename {
        Ename(ename(&e))
    }
}

impl From<&str> for Ename {
    fn from(s: &str) -> Ename {
        Ename(s.to_string())
    }
}

/// strerror(3)'s words, which clients (ours, Linux's) map back to errnos,
/// without Rust's "(os error N)".
fn ename(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn host(root: &Path, names: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(names);
    p
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n != "." && n != ".." && !n.contains('/') && !n.contains('\0')
}

/// What a stat shows: the file a link leads to, or the link itself when
/// it leads nowhere (the bool).
fn meta(path: &Path) -> io::Result<(Metadata, bool)> {
    match fs::metadata(path) {
        Ok(m) => Ok((m, false)),
        Err(e) => match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Ok((m, true)),
            _ => Err(e),
        },
    }
}

fn qid_of(m: &Metadata, dangling: bool) -> Qid {
    Qid {
        ty: if m.is_dir() {
            qt::DIR
        } else if dangling {
            qt::SYMLINK
        } else {
            qt::FILE
        },
        version: (m.mtime() as u32).wrapping_mul(1000) ^ (m.mtime_nsec() as u32 / 1_000_000),
        // The device keeps files of two file systems under the root (/ and
        // /proc) apart: inode numbers repeat across them.
        path: m.ino() ^ (m.dev() << 48),
    }
}

fn stat_of(root: &Path, names: &[String]) -> Result<Stat, Ename> {
    let (m, dangling) = meta(&host(root, names))?;
    let name = names.last().map(String::as_str).unwrap_or("/");
    Ok(stat_from(&m, dangling, name))
}

fn stat_from(m: &Metadata, dangling: bool, name: &str) -> Stat {
    let dir = m.is_dir();
    let uid = m.uid().to_string();
    Stat {
        ty: 0,
        dev: m.dev() as u32,
        qid: qid_of(m, dangling),
        mode: (m.mode() & dm::PERM) | if dir { dm::DIR } else { 0 },
        atime: m.atime() as u32,
        mtime: m.mtime() as u32,
        length: if dir { 0 } else { m.len() },
        name: name.to_string(),
        muid: uid.clone(),
        uid,
        gid: m.gid().to_string(),
    }
}

fn list(dir: &Path) -> io::Result<Listing> {
    let mut entries = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        // An entry gone since readdir is simply not listed.
        let Ok((m, dangling)) = meta(&e.path()) else {
            continue;
        };
        if let Ok(b) = stat_from(&m, dangling, &name).to_bytes() {
            entries.push(b);
        }
    }
    Ok(Listing {
        entries,
        next: 0,
        offset: 0,
    })
}

fn set_times(path: &Path, atime: u32, mtime: u32) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let ts = |t: u32| libc::timespec {
        tv_sec: t as libc::time_t,
        tv_nsec: if t == !0 { libc::UTIME_OMIT } else { 0 },
    };
    let times = [ts(atime), ts(mtime)];
    // SAFETY: a valid C string and two timespecs.
    if unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A uid or gid of a Twstat: empty is "don't touch"; only numbers name one.
fn owner(s: &str) -> Result<Option<u32>, Ename> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| Ename::from("Operation not permitted"))
}

impl Server {
    pub fn new(root: impl Into<PathBuf>) -> Server {
        Server {
            root: root.into(),
            msize: MAX_MSIZE,
            fids: HashMap::new(),
        }
    }

    /// Serves requests read from `r`, answering on `w`, until `r` ends.
    pub fn serve(&mut self, mut r: impl Read, mut w: impl Write) -> Result<(), Error> {
        while let Some(frame) = read_frame(&mut r, self.msize)? {
            // One write per answer: a relay may pass each write on whole.
            w.write_all(&self.handle(&frame))?;
            w.flush()?;
        }
        Ok(())
    }

    /// The answer to one request frame.
    pub fn handle(&mut self, frame: &[u8]) -> Vec<u8> {
        let (tag, reply) = match wire::decode(frame) {
            Ok((tag, msg)) => (tag, self.answer(msg)),
            Err(e) => (
                wire::peek_tag(frame).unwrap_or(NOTAG),
                Err(Ename(format!("bad message: {e}"))),
            ),
        };
        let reply = reply.unwrap_or_else(|Ename(ename)| Msg::Rerror { ename });
        wire::encode(tag, &reply).unwrap_or_else(|e| {
            let ename = format!("cannot answer: {e}");
            wire::encode(tag, &Msg::Rerror { ename }).unwrap_or_default()
        })
    }

    fn fid(&mut self, fid: u32) -> Result<&mut Fid, Ename> {
        self.fids.get_mut(&fid).ok_or(Ename::from("unknown fid"))
    }

    fn answer(&mut self, msg: Msg) -> Result<Msg, Ename> {
        match msg {
            Msg::Tversion { msize, version } => {
                // A new session: whatever the old one had is gone.
                self.fids.clear();
                let msize =
                    wire::negotiate(MAX_MSIZE, msize).ok_or(Ename::from("msize too small"))?;
                self.msize = msize;
                let version = wire::version_reply(&version).to_string();
                Ok(Msg::Rversion { msize, version })
            }
            Msg::Tauth { .. } => Err("authentication not required".into()),
            Msg::Tattach {
                fid, afid, aname, ..
            } => self.attach(fid, afid, &aname),
            Msg::Tflush { .. } => Ok(Msg::Rflush),
            Msg::Twalk {
                fid,
                newfid,
                wnames,
            } => self.walk(fid, newfid, &wnames),
            Msg::Topen { fid, mode } => self.open(fid, mode),
            Msg::Tcreate {
                fid,
                name,
                perm,
                mode,
            } => self.create(fid, name, perm, mode),
            Msg::Tread { fid, offset, count } => self.read(fid, offset, count),
            Msg::Twrite { fid, offset, data } => self.write(fid, offset, &data),
            Msg::Tclunk { fid } => {
                let f = self.fids.remove(&fid).ok_or(Ename::from("unknown fid"))?;
                if f.rclose {
                    let _ = remove(&host(&self.root, &f.names));
                }
                Ok(Msg::Rclunk)
            }
            Msg::Tremove { fid } => {
                // The fid goes whether or not the file does.
                let f = self.fids.remove(&fid).ok_or(Ename::from("unknown fid"))?;
                if f.names.is_empty() {
                    return Err("cannot remove the root".into());
                }
                remove(&host(&self.root, &f.names))?;
                Ok(Msg::Rremove)
            }
            Msg::Tstat { fid } => {
                let names = self.fid(fid)?.names.clone();
                Ok(Msg::Rstat {
                    stat: stat_of(&self.root, &names)?,
                })
            }
            Msg::Twstat { fid, stat } => self.wstat(fid, &stat),
            other => Err(Ename(format!("unexpected {}", other.name()))),
        }
    }

    fn attach(&mut self, fid: u32, afid: u32, aname: &str) -> Result<Msg, Ename> {
        if afid != NOFID {
            return Err("authentication not required".into());
        }
        if self.fids.contains_key(&fid) {
            return Err("fid already in use".into());
        }
        let mut names: Vec<String> = Vec::new();
        for n in aname.split('/') {
            match n {
                "" | "." => {}
                ".." => {
                    names.pop();
                }
                _ => names.push(n.to_string()),
            }
        }
        let (m, dangling) = meta(&host(&self.root, &names))?;
        if !m.is_dir() {
            return Err("Not a directory".into());
        }
        self.fids.insert(
            fid,
            Fid {
                names,
                open: None,
                rclose: false,
            },
        );
        Ok(Msg::Rattach {
            qid: qid_of(&m, dangling),
        })
    }

    /// intro(5)'s walk: an error only if the first name fails; else the
    /// qids of the names that worked, and newfid only if all did.
    fn walk(&mut self, fid: u32, newfid: u32, wnames: &[String]) -> Result<Msg, Ename> {
        let root = self.root.clone();
        let f = self.fid(fid)?;
        if f.open.is_some() {
            return Err("cannot walk an open fid".into());
        }
        let mut names = f.names.clone();
        if newfid != fid && self.fids.contains_key(&newfid) {
            return Err("fid already in use".into());
        }
        let mut is_dir = wnames.is_empty() || meta(&host(&root, &names))?.0.is_dir();
        let mut wqids = Vec::new();
        for (i, n) in wnames.iter().enumerate() {
            let step = if !is_dir {
                Err(Ename::from("Not a directory"))
            } else if n == ".." {
                names.pop();
                Ok(())
            } else if n != "." && !valid_name(n) {
                Err(Ename::from("Invalid argument"))
            } else {
                if n != "." {
                    names.push(n.clone());
                }
                Ok(())
            };
            let found = step.and_then(|()| meta(&host(&root, &names)).map_err(Ename::from));
            match found {
                Ok((m, dangling)) => {
                    is_dir = m.is_dir();
                    wqids.push(qid_of(&m, dangling));
                }
                Err(e) if i == 0 => return Err(e),
                Err(_) => return Ok(Msg::Rwalk { wqids }),
            }
        }
        self.fids.insert(
            newfid,
            Fid {
                names,
                open: None,
                rclose: false,
            },
        );
        Ok(Msg::Rwalk { wqids })
    }

    fn open(&mut self, fid: u32, mode: u8) -> Result<Msg, Ename> {
        let root = self.root.clone();
        let f = self.fid(fid)?;
        if f.open.is_some() {
            return Err("fid already open".into());
        }
        let path = host(&root, &f.names);
        let (m, dangling) = meta(&path)?;
        let acc = mode & 3;
        let trunc = mode & om::TRUNC != 0;
        let write = acc == om::WRITE || acc == om::RDWR || trunc;
        f.open = Some(if m.is_dir() {
            if write {
                return Err("Is a directory".into());
            }
            Open::Dir(None)
        } else {
            let seekable = m.is_file();
            let file = fs::OpenOptions::new()
                .read(acc != om::WRITE)
                .write(write)
                .truncate(trunc)
                // A FIFO would block the open until a writer comes.
                .custom_flags(if seekable { 0 } else { libc::O_NONBLOCK })
                .open(&path)?;
            Open::File {
                file,
                read: acc != om::WRITE,
                write,
                seekable,
            }
        });
        f.rclose = mode & om::RCLOSE != 0;
        Ok(Msg::Ropen {
            qid: qid_of(&m, dangling),
            iounit: 0,
        })
    }

    fn create(&mut self, fid: u32, name: String, perm: u32, mode: u8) -> Result<Msg, Ename> {
        let root = self.root.clone();
        let f = self.fid(fid)?;
        if f.open.is_some() {
            return Err("fid already open".into());
        }
        if !valid_name(&name) {
            return Err("Invalid argument".into());
        }
        let dir = host(&root, &f.names);
        if !meta(&dir)?.0.is_dir() {
            return Err("Not a directory".into());
        }
        let path = dir.join(&name);
        let acc = mode & 3;
        let open = if perm & dm::DIR != 0 {
            fs::DirBuilder::new().mode(perm & dm::PERM).create(&path)?;
            Open::Dir(None)
        } else {
            // Read and write whatever the mode, as creat(2) may: the file's
            // own permissions (0444, say) hold only for later opens.
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(perm & dm::PERM)
                .open(&path)?;
            Open::File {
                file,
                read: acc != om::WRITE,
                write: acc == om::WRITE || acc == om::RDWR,
                seekable: true,
            }
        };
        let (m, dangling) = meta(&path)?;
        f.names.push(name);
        f.open = Some(open);
        f.rclose = mode & om::RCLOSE != 0;
        Ok(Msg::Rcreate {
            qid: qid_of(&m, dangling),
            iounit: 0,
        })
    }

    fn read(&mut self, fid: u32, offset: u64, count: u32) -> Result<Msg, Ename> {
        let count = count.min(self.msize - IOHDRSZ) as usize;
        let root = self.root.clone();
        let f = self.fid(fid)?;
        let dir = host(&root, &f.names);
        match &mut f.open {
            None => Err("fid not open".into()),
            Some(Open::File {
                file,
                read,
                seekable,
                ..
            }) => {
                if !*read {
                    return Err("file not open for reading".into());
                }
                let mut buf = vec![0u8; count];
                let n = if *seekable {
                    fill_at(file, &mut buf, offset)?
                } else {
                    match file.read(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                        r => r?,
                    }
                };
                buf.truncate(n);
                Ok(Msg::Rread { data: buf })
            }
            Some(Open::Dir(listing)) => {
                if offset == 0 {
                    *listing = Some(list(&dir)?);
                }
                let Some(l) = listing.as_mut().filter(|l| l.offset == offset) else {
                    return Err("bad offset in directory read".into());
                };
                let mut data = Vec::new();
                while let Some(e) = l.entries.get(l.next) {
                    if data.len() + e.len() > count {
                        break;
                    }
                    data.extend_from_slice(e);
                    l.next += 1;
                }
                if data.is_empty() && l.next < l.entries.len() {
                    return Err("count too small for a directory entry".into());
                }
                l.offset += data.len() as u64;
                Ok(Msg::Rread { data })
            }
        }
    }

    fn write(&mut self, fid: u32, offset: u64, data: &[u8]) -> Result<Msg, Ename> {
        match &mut self.fid(fid)?.open {
            None => Err("fid not open".into()),
            Some(Open::Dir(_)) => Err("Is a directory".into()),
            Some(Open::File {
                file,
                write,
                seekable,
                ..
            }) => {
                if !*write {
                    return Err("file not open for writing".into());
                }
                if *seekable {
                    file.write_all_at(data, offset)?;
                } else {
                    file.write_all(data)?;
                }
                Ok(Msg::Rwrite {
                    count: data.len() as u32,
                })
            }
        }
    }

    /// Each field not at its "don't touch" value is changed; the name last,
    /// after every check, so a refused rename leaves the file as it was.
    fn wstat(&mut self, fid: u32, st: &Stat) -> Result<Msg, Ename> {
        let root = self.root.clone();
        let f = self.fid(fid)?;
        let path = host(&root, &f.names);
        let rename = !st.name.is_empty() && f.names.last() != Some(&st.name);
        if rename && f.names.is_empty() {
            return Err("cannot rename the root".into());
        }
        if rename && !valid_name(&st.name) {
            return Err("Invalid argument".into());
        }
        let (uid, gid) = (owner(&st.uid)?, owner(&st.gid)?);
        let (m, _) = meta(&path)?;
        if st.length != !0 {
            if m.is_dir() {
                return Err("Is a directory".into());
            }
            fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(st.length)?;
        }
        if st.mode != !0 {
            // Bits 9P2000 cannot say (setuid, sticky) stay as they are.
            let mode = (m.mode() & !dm::PERM) | (st.mode & dm::PERM);
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        }
        if st.atime != !0 || st.mtime != !0 {
            set_times(&path, st.atime, st.mtime)?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::chown(&path, uid, gid)?;
        }
        if rename {
            fs::rename(&path, path.with_file_name(&st.name))?;
            if let Some(last) = f.names.last_mut() {
                *last = st.name.clone();
            }
        }
        Ok(Msg::Rwstat)
    }
}

/// Reads at `offset` until `buf` is full or the file ends.
fn fill_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // What was read stands; the error comes again on the next read.
            Err(_) if n > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A directory with rmdir(2), anything else (a link too) with unlink(2).
fn remove(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir(path)
    } else {
        fs::remove_file(path)
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
