//! fb recordings (`vnc record fb`), in the original's file format, which
//! its `rfbplay` plays and transcodes: one gzip stream of chunks
//!
//! ```text
//! <ns since the previous chunk> <length>\r\n<length bytes>\r\n
//! ```
//!
//! where the bytes are the server-to-client RFB stream of a client of its
//! own, from just after ServerInit on, cut where the reads fell (at most
//! 4096 bytes a chunk). That client asked for [`PixelFormat::RGB888`] and
//! the Raw and DesktopSize encodings ([`setup_messages`]), and asks for a
//! whole, non-incremental update every 100 ms ([`update_request`]). The
//! file keeps neither the ServerInit nor the pixel format: players assume
//! that format and take the size from the updates. The first chunk's time
//! counts from when recording started.

use super::rfb::{encoding, ClientMessage, PixelFormat};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::time::Duration;
use thiserror::Error;

/// How often the recorder asks for the whole screen.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The most the original reads (and so writes as one chunk) at a time.
pub const READ_SIZE: usize = 4096;

/// The longest chunk [`FbReader`] accepts; the original writes at most
/// [`READ_SIZE`].
pub const MAX_CHUNK: usize = 16 << 20;

#[derive(Debug, Error)]
pub enum FbError {
    #[error("fb recording: {0}")]
    Io(#[from] io::Error),
    #[error("fb recording: malformed chunk header `{0}`")]
    Header(String),
    #[error("fb recording: chunk of {len} bytes is over the limit of {max}")]
    ChunkTooLong { len: u64, max: usize },
    #[error("fb recording: chunk not closed by \\r\\n")]
    MissingTrailer,
    #[error("fb recording: ends inside a chunk")]
    Truncated,
}

/// What the recorder's client sends after the handshake, before its first
/// update request.
pub fn setup_messages() -> [ClientMessage; 2] {
    [
        ClientMessage::SetPixelFormat(PixelFormat::RGB888),
        ClientMessage::SetEncodings(vec![encoding::RAW, encoding::DESKTOP_SIZE]),
    ]
}

/// The recorder's periodic request: the whole screen, not incremental.
pub fn update_request(width: u16, height: u16) -> ClientMessage {
    ClientMessage::FramebufferUpdateRequest {
        incremental: false,
        x: 0,
        y: 0,
        width,
        height,
    }
}

/// Writes chunks into a gzip stream over any writer.
pub struct FbWriter<W: Write> {
    gz: GzEncoder<W>,
}

impl<W: Write> FbWriter<W> {
    pub fn new(out: W) -> FbWriter<W> {
        FbWriter {
            gz: GzEncoder::new(out, Compression::default()),
        }
    }

    /// One chunk: `offset` is the time since the previous chunk (since
    /// the start, for the first). Empty reads are not written.
    pub fn write_chunk(&mut self, offset: Duration, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let ns = i64::try_from(offset.as_nanos()).unwrap_or(i64::MAX);
        write!(self.gz, "{ns} {}\r\n", data.len())?;
        self.gz.write_all(data)?;
        self.gz.write_all(b"\r\n")
    }

    /// Pushes what is compressed so far to the writer, so a recording cut
    /// short (a crash) still plays up to here; the original never did.
    pub fn flush(&mut self) -> io::Result<()> {
        self.gz.flush()
    }

    /// Ends the gzip stream and gives the writer back.
    pub fn finish(self) -> io::Result<W> {
        self.gz.finish()
    }
}

/// One chunk of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub offset_ns: i64,
    pub data: Vec<u8>,
}

/// Reads chunks back (tests, and a player to come).
pub struct FbReader<R: Read> {
    r: BufReader<MultiGzDecoder<R>>,
}

impl<R: Read> FbReader<R> {
    pub fn new(input: R) -> FbReader<R> {
        FbReader {
            r: BufReader::new(MultiGzDecoder::new(input)),
        }
    }

    /// The next chunk, `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, FbError> {
        let mut header = Vec::new();
        // A header is two numbers; more than this is not one.
        let n = (&mut self.r).take(64).read_until(b'\n', &mut header)?;
        if n == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&header).into_owned();
        let bad = || FbError::Header(text.trim_end().to_string());
        let line = header
            .strip_suffix(b"\r\n")
            .or_else(|| header.strip_suffix(b"\n"))
            .ok_or_else(bad)?;
        let line = std::str::from_utf8(line).map_err(|_| bad())?;
        let (offset, len) = line.split_once(' ').ok_or_else(bad)?;
        let offset_ns: i64 = offset.parse().map_err(|_| bad())?;
        let len: u64 = len.parse().map_err(|_| bad())?;
        if len > MAX_CHUNK as u64 {
            return Err(FbError::ChunkTooLong {
                len,
                max: MAX_CHUNK,
            });
        }
        let mut data = vec![0; len as usize];
        self.r.read_exact(&mut data).map_err(truncated)?;
        let mut end = [0; 2];
        self.r.read_exact(&mut end).map_err(truncated)?;
        if &end != b"\r\n" {
            return Err(FbError::MissingTrailer);
        }
        Ok(Some(Chunk { offset_ns, data }))
    }

    /// The server's stream, chunks joined.
    pub fn into_stream(mut self) -> Result<Vec<u8>, FbError> {
        let mut out = Vec::new();
        while let Some(c) = self.next_chunk()? {
            out.extend_from_slice(&c.data);
        }
        Ok(out)
    }
}

fn truncated(e: io::Error) -> FbError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        FbError::Truncated
    } else {
        FbError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;

    fn record(chunks: &[(u64, &[u8])]) -> Vec<u8> {
        let mut w = FbWriter::new(Vec::new());
        for &(ns, data) in chunks {
            w.write_chunk(Duration::from_nanos(ns), data).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn the_original_layout_inside_gzip() {
        let file = record(&[(123, b"\x00\x00\x00\x01"), (5, b""), (100_000_000, b"ab")]);
        assert_eq!(&file[..2], [0x1f, 0x8b], "gzip magic");
        let mut plain = Vec::new();
        GzDecoder::new(&file[..]).read_to_end(&mut plain).unwrap();
        assert_eq!(plain, b"123 4\r\n\x00\x00\x00\x01\r\n100000000 2\r\nab\r\n");
    }

    #[test]
    fn reads_back_what_it_wrote() {
        let big = vec![7u8; READ_SIZE];
        let file = record(&[(1, b"\r\n\r\n"), (2, &big), (3, b"x")]);
        let mut r = FbReader::new(&file[..]);
        let want = [
            (1, b"\r\n\r\n".to_vec()),
            (2, big.clone()),
            (3, b"x".to_vec()),
        ];
        for (offset_ns, data) in want {
            assert_eq!(r.next_chunk().unwrap(), Some(Chunk { offset_ns, data }));
        }
        assert_eq!(r.next_chunk().unwrap(), None);
        let stream = FbReader::new(&file[..]).into_stream().unwrap();
        assert_eq!(stream.len(), 4 + READ_SIZE + 1);
    }

    #[test]
    fn flushed_recordings_play_up_to_the_cut() {
        let mut w = FbWriter::new(Vec::new());
        w.write_chunk(Duration::from_nanos(9), b"first").unwrap();
        w.flush().unwrap();
        let cut = w.gz.get_ref().clone();
        w.write_chunk(Duration::from_nanos(9), b"second").unwrap();
        let mut r = FbReader::new(&cut[..]);
        assert_eq!(r.next_chunk().unwrap().unwrap().data, b"first");
        assert!(r.next_chunk().is_err(), "the gzip stream has no end");
    }

    fn gz(plain: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(plain).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn malformed_recordings_are_typed_errors() {
        let err = |plain: &[u8]| FbReader::new(&gz(plain)[..]).next_chunk().unwrap_err();
        assert!(matches!(err(b"12\r\nab\r\n"), FbError::Header(h) if h == "12"));
        assert!(matches!(err(b"x 2\r\nab\r\n"), FbError::Header(_)));
        assert!(matches!(err(b"1 -2\r\nab\r\n"), FbError::Header(_)));
        assert!(matches!(err(b"1 2\r\nabXY"), FbError::MissingTrailer));
        assert!(matches!(err(b"1 5\r\nab"), FbError::Truncated));
        assert!(matches!(err(&[b'1'; 100]), FbError::Header(_)));
        assert!(matches!(
            err(b"1 99999999999\r\n"),
            FbError::ChunkTooLong {
                len: 99999999999,
                ..
            }
        ));
    }

    #[test]
    fn setup_and_requests() {
        let [pf, enc] = setup_messages();
        assert_eq!(pf, ClientMessage::SetPixelFormat(PixelFormat::RGB888));
        assert_eq!(
            enc.to_bytes(),
            [2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21]
        );
        assert_eq!(
            update_request(800, 600).to_bytes(),
            [3, 0, 0, 0, 0, 0, 3, 0x20, 2, 0x58]
        );
    }
}
