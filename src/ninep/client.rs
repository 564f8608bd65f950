//! A blocking 9P2000 client: one request at a time, each written with one
//! write (a relay that passes writes on whole keeps every message in one
//! piece; Go's ufs reads each header with one read). Speaks plain 9P2000
//! with `uname` "root", as Linux's v9fs did for minimega, so it works with
//! Go's Harvey-OS/ninep ufs (the stock agent) and with [`super::server`].

use super::wire::{self, Msg, Qid, Stat, IOHDRSZ, MAXWELEM, NOFID, NOTAG};
use super::{read_frame, Error};
use std::io::{self, Read, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// What [`Client::connect`] asks for: big reads and writes cost fewer
/// trips through cc.
pub const DEFAULT_MSIZE: u32 = 64 * 1024 + IOHDRSZ;

pub struct Client<S> {
    conn: Mutex<Conn<S>>,
    msize: u32,
    root: u32,
    fids: Mutex<Fids>,
}

struct Conn<S> {
    stream: S,
    tag: u16,
    /// A broken or out-of-step stream is not used again.
    dead: bool,
}

#[derive(Default)]
struct Fids {
    next: u32,
    free: Vec<u32>,
}

fn unexpected(sent: &Msg, got: &Msg) -> Error {
    Error::Unexpected {
        sent: sent.name(),
        got: got.name(),
    }
}

impl<S> Conn<S>
where
    S: Read + Write,
{
    fn rpc(&mut self, tag: u16, msg: &Msg, max: u32) -> Result<Msg, Error> {
        if self.dead {
            return Err(io::Error::from(io::ErrorKind::NotConnected).into());
        }
        let frame = wire::encode(tag, msg)?;
        let reply = self.exchange(&frame, max);
        let (got, reply) = match reply {
            Ok(r) => r,
            Err(e) => {
                self.dead = true;
                return Err(e);
            }
        };
        if got != tag {
            self.dead = true;
            return Err(Error::Tag { want: tag, got });
        }
        match reply {
            Msg::Rerror { ename } => Err(Error::Remote(ename)),
            r => Ok(r),
        }
    }

    fn exchange(&mut self, frame: &[u8], max: u32) -> Result<(u16, Msg), Error> {
        self.stream.write_all(frame)?;
        self.stream.flush()?;
        let reply = read_frame(&mut self.stream, max)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        Ok(wire::decode(&reply)?)
    }
}

impl<S> Client<S>
where
    S: Read + Write,
{
    /// Negotiates the version and an msize of at most `msize`, and attaches
    /// to the server's root as "root".
    pub fn connect(stream: S, msize: u32) -> Result<Client<S>, Error> {
        let mut conn = Conn {
            stream,
            tag: 0,
            dead: false,
        };
        let ask = Msg::Tversion {
            msize,
            version: wire::VERSION.into(),
        };
        let msize = match conn.rpc(NOTAG, &ask, msize)? {
            Msg::Rversion { version, .. } if version != wire::VERSION => {
                return Err(Error::Version(version))
            }
            // A server may lower the msize, never raise it.
            Msg::Rversion { msize: theirs, .. } => {
                wire::negotiate(msize, theirs).ok_or(Error::Msize(theirs))?
            }
            other => return Err(unexpected(&ask, &other)),
        };
        let client = Client {
            conn: Mutex::new(conn),
            msize,
            root: 0,
            fids: Mutex::new(Fids {
                next: 1,
                free: Vec::new(),
            }),
        };
        let attach = Msg::Tattach {
            fid: client.root,
            afid: NOFID,
            uname: "root".into(),
            aname: String::new(),
        };
        match client.rpc(&attach)? {
            Msg::Rattach { .. } => Ok(client),
            other => Err(unexpected(&attach, &other)),
        }
    }

    fn conn(&self) -> MutexGuard<'_, Conn<S>> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn rpc(&self, msg: &Msg) -> Result<Msg, Error> {
        let mut c = self.conn();
        // Tags 1..=0xfffe in turn: NOTAG is Tversion's alone.
        c.tag = c.tag % (NOTAG - 1) + 1;
        let tag = c.tag;
        c.rpc(tag, msg, self.msize)
    }

    pub fn msize(&self) -> u32 {
        self.msize
    }

    /// The most data one read or write moves.
    pub fn iounit(&self) -> u32 {
        self.msize - IOHDRSZ
    }

    /// The fid of the attached root; walk from it, never open or clunk it.
    pub fn root(&self) -> u32 {
        self.root
    }

    /// False once the connection broke.
    pub fn alive(&self) -> bool {
        !self.conn().dead
    }

    fn alloc(&self) -> u32 {
        let mut f = self.fids.lock().unwrap_or_else(PoisonError::into_inner);
        f.free.pop().unwrap_or_else(|| {
            f.next += 1;
            f.next - 1
        })
    }

    fn release(&self, fid: u32) {
        let mut f = self.fids.lock().unwrap_or_else(PoisonError::into_inner);
        // Twice free would be twice handed out.
        if fid != self.root && !f.free.contains(&fid) {
            f.free.push(fid);
        }
    }

    /// A new fid for the file `names` leads to from `from` (a copy of
    /// `from` for none), in steps of at most 16 names.
    pub fn walk(&self, from: u32, names: &[String]) -> Result<u32, Error> {
        let newfid = self.alloc();
        let steps: Vec<&[String]> = if names.is_empty() {
            vec![names]
        } else {
            names.chunks(MAXWELEM).collect()
        };
        let mut at = from;
        for (i, step) in steps.into_iter().enumerate() {
            let msg = Msg::Twalk {
                fid: at,
                newfid,
                wnames: step.to_vec(),
            };
            let done = match self.rpc(&msg) {
                Ok(Msg::Rwalk { wqids }) if wqids.len() == step.len() => Ok(()),
                // Some names walked, not all: newfid was not made.
                Ok(Msg::Rwalk { .. }) => Err(Error::Remote("file does not exist".into())),
                Ok(other) => Err(unexpected(&msg, &other)),
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                // After the first step newfid exists, where the last one left it.
                match i {
                    0 => self.release(newfid),
                    _ => {
                        let _ = self.clunk(newfid);
                    }
                }
                return Err(e);
            }
            at = newfid;
        }
        Ok(newfid)
    }

    /// Opens a walked fid (`mode`: wire::om); its qid and iounit.
    pub fn open(&self, fid: u32, mode: u8) -> Result<(Qid, u32), Error> {
        let msg = Msg::Topen { fid, mode };
        match self.rpc(&msg)? {
            Msg::Ropen { qid, iounit } => Ok((qid, iounit)),
            other => Err(unexpected(&msg, &other)),
        }
    }

    /// Creates `name` in the directory `fid` is on (a directory when
    /// `perm` has DMDIR); `fid` is then the new file, open with `mode`.
    pub fn create(&self, fid: u32, name: &str, perm: u32, mode: u8) -> Result<(Qid, u32), Error> {
        let msg = Msg::Tcreate {
            fid,
            name: name.into(),
            perm,
            mode,
        };
        match self.rpc(&msg)? {
            Msg::Rcreate { qid, iounit } => Ok((qid, iounit)),
            other => Err(unexpected(&msg, &other)),
        }
    }

    /// One Tread of at most [`Client::iounit`] bytes.
    pub fn read(&self, fid: u32, offset: u64, count: u32) -> Result<Vec<u8>, Error> {
        let msg = Msg::Tread {
            fid,
            offset,
            count: count.min(self.iounit()),
        };
        match self.rpc(&msg)? {
            Msg::Rread { data } => Ok(data),
            other => Err(unexpected(&msg, &other)),
        }
    }

    /// Up to `len` bytes at `offset`, in as many reads as it takes; fewer
    /// at the end of the file (or wherever a read came back short).
    pub fn read_at(&self, fid: u32, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(len.min(1 << 20));
        while out.len() < len {
            let ask = (len - out.len()).min(self.iounit() as usize) as u32;
            let got = self.read(fid, offset + out.len() as u64, ask)?;
            let short = got.len() < ask as usize;
            out.extend_from_slice(&got);
            if short {
                break;
            }
        }
        Ok(out)
    }

    /// Writes all of `data` at `offset` in pieces of [`Client::iounit`];
    /// the bytes written, fewer if the server took less.
    pub fn write(&self, fid: u32, offset: u64, data: &[u8]) -> Result<usize, Error> {
        let mut done = 0;
        for piece in data.chunks(self.iounit() as usize) {
            let msg = Msg::Twrite {
                fid,
                offset: offset + done as u64,
                data: piece.to_vec(),
            };
            let n = match self.rpc(&msg)? {
                Msg::Rwrite { count } => count as usize,
                other => return Err(unexpected(&msg, &other)),
            };
            done += n.min(piece.len());
            if n < piece.len() {
                break;
            }
        }
        Ok(done)
    }

    /// Every entry of the directory open on `fid`. Offsets continue from
    /// the previous read, as 9P wants; Go's ufs answers one entry a read.
    pub fn read_dir(&self, fid: u32) -> Result<Vec<Stat>, Error> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let data = self.read(fid, offset, self.iounit())?;
            if data.is_empty() {
                return Ok(out);
            }
            offset += data.len() as u64;
            out.extend(Stat::decode_all(&data)?);
        }
    }

    /// Forgets `fid`; it is free again whatever the server said.
    pub fn clunk(&self, fid: u32) -> Result<(), Error> {
        let r = self.rpc(&Msg::Tclunk { fid });
        self.release(fid);
        match r? {
            Msg::Rclunk => Ok(()),
            other => Err(unexpected(&Msg::Tclunk { fid }, &other)),
        }
    }

    /// Removes the file of `fid`; the fid is gone either way.
    pub fn remove(&self, fid: u32) -> Result<(), Error> {
        let r = self.rpc(&Msg::Tremove { fid });
        self.release(fid);
        match r? {
            Msg::Rremove => Ok(()),
            other => Err(unexpected(&Msg::Tremove { fid }, &other)),
        }
    }

    pub fn stat(&self, fid: u32) -> Result<Stat, Error> {
        match self.rpc(&Msg::Tstat { fid })? {
            Msg::Rstat { stat } => Ok(stat),
            other => Err(unexpected(&Msg::Tstat { fid }, &other)),
        }
    }

    /// Changes what `stat` sets; start from [`Stat::dont_touch`]. Go's ufs
    /// refuses any uid or gid.
    pub fn wstat(&self, fid: u32, stat: &Stat) -> Result<(), Error> {
        let msg = Msg::Twstat {
            fid,
            stat: stat.clone(),
        };
        match self.rpc(&msg)? {
            Msg::Rwstat => Ok(()),
            other => Err(unexpected(&msg, &other)),
        }
    }

    /// `walk` from the root, `f`, then clunk: for one-off operations (not
    /// a remove, which clunks itself).
    pub fn with_path<T>(
        &self,
        names: &[String],
        f: impl FnOnce(u32) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let fid = self.walk(self.root, names)?;
        let r = f(fid);
        let _ = self.clunk(fid);
        r
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
