//! The kernel's requests, each answered with 9P2000 round trips.

use super::{attr_of, errno, lock, open_mode, secs, Fs, DIR_HANDLES, TTL};
use crate::ninep::wire::{dm, om, Stat};
use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::SystemTime;

impl<S: Read + Write + Send + 'static> Filesystem for Fs<S> {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (path, _) = match self.child(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        match self.stat(&path) {
            Ok(st) => reply.entry(&TTL, &self.entry(&path, &st), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = match fh {
            Some(FileHandle(fid)) if fid < DIR_HANDLES => self.c.stat(fid as u32),
            _ => match self.path(ino) {
                Ok(p) => self.stat(&p),
                Err(e) => return reply.error(e),
            },
        };
        match st {
            Ok(st) => reply.attr(&TTL, &attr_of(ino.0, &st)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = self.set(ino, fh, |st, now| {
            if let Some(m) = mode {
                // A directory's DMDIR must be said again (stat(5)).
                st.mode = (now.mode & dm::DIR) | (m & dm::PERM);
            }
            if let Some(s) = size {
                st.length = s;
            }
            if let Some(t) = atime {
                st.atime = secs(t);
            }
            if let Some(t) = mtime {
                st.mtime = secs(t);
            }
            if let Some(u) = uid {
                st.uid = u.to_string();
            }
            if let Some(g) = gid {
                st.gid = g.to_string();
            }
        });
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.changed();
        let (path, name) = match self.child(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let made = self.parent_fid(&path).and_then(|fid| {
            let perm = dm::DIR | (mode & !umask & dm::PERM);
            let st = self
                .c
                .create(fid, &name, perm, om::READ)
                .and_then(|_| self.c.stat(fid));
            let _ = self.c.clunk(fid);
            st
        });
        match made {
            Ok(st) => reply.entry(&TTL, &self.entry(&path, &st), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.changed();
        let path = match self.child(parent, name) {
            Ok((p, _)) => p,
            Err(e) => return reply.error(e),
        };
        let gone = self
            .c
            .walk(self.c.root(), &path)
            .and_then(|fid| self.c.remove(fid));
        match gone {
            Ok(()) => {
                lock(&self.inodes).removed(&path);
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.unlink(req, parent, name, reply)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.changed();
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        // 9P2000 renames only within a directory (wstat's name); mv(1)
        // copies when told EXDEV.
        if parent != newparent {
            return reply.error(Errno::EXDEV);
        }
        let ((from, _), (to, newname)) =
            match (self.child(parent, name), self.child(parent, newname)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return reply.error(e),
            };
        let mut st = Stat::dont_touch();
        st.name = newname;
        match self.c.with_path(&from, |fid| self.c.wstat(fid, &st)) {
            Ok(()) => {
                lock(&self.inodes).renamed(&from, &to);
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_TRUNC != 0 {
            self.changed();
        }
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let opened = self.c.walk(self.c.root(), &path).and_then(|fid| {
            match self.c.open(fid, open_mode(flags.0)) {
                Ok(_) => Ok(fid),
                Err(e) => {
                    let _ = self.c.clunk(fid);
                    Err(e)
                }
            }
        });
        match opened {
            Ok(fid) => reply.opened(FileHandle(fid as u64), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.c.read_at(fh.0 as u32, offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.changed();
        match self.c.write(fh.0 as u32, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _ = self.c.clunk(fh.0 as u32);
        reply.ok()
    }

    /// A wstat that changes nothing is 9P2000's sync (stat(5)).
    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.c.wstat(fh.0 as u32, &Stat::dont_touch()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.list(ino) {
            Ok(entries) => {
                let id = self.next_dir.fetch_add(1, Ordering::Relaxed);
                lock(&self.dirs).insert(id, entries);
                reply.opened(FileHandle(id), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dirs = lock(&self.dirs);
        let Some(entries) = dirs.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e.ino), i as u64 + 1, e.kind, &e.name) {
                break;
            }
        }
        reply.ok()
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.dirs).remove(&fh.0);
        reply.ok()
    }

    /// 9P2000 cannot tell; df(1) shows an empty file system.
    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096)
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.changed();
        let (path, name) = match self.child(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let made = self.parent_fid(&path).and_then(|fid| {
            let perm = mode & !umask & dm::PERM;
            let st = self
                .c
                .create(fid, &name, perm, open_mode(flags) & !om::TRUNC)
                .and_then(|_| self.c.stat(fid));
            match st {
                Ok(st) => Ok((fid, st)),
                Err(e) => {
                    let _ = self.c.clunk(fid);
                    Err(e)
                }
            }
        });
        match made {
            Ok((fid, st)) => reply.created(
                &TTL,
                &self.entry(&path, &st),
                Generation(0),
                FileHandle(fid as u64),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }
}
