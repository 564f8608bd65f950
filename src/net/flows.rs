//! `capture netflow`: Open vSwitch exports a bridge's flows as NetFlow v5
//! (set through OVSDB) to a collector of ours on a loopback UDP port, one
//! per bridge, which writes each packet to every capture of that bridge:
//! a file (raw packets or minimega's ASCII lines, gzip on request) or a
//! TCP or UDP peer (phenix listens for the ASCII lines on UDP).

use super::netflow::Packet;
use super::ovs::Op;
use super::{lock, Net, NetError};
use std::io::Write;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::warn;

/// minimega's default active timeout, seconds; one for all bridges.
pub const DEFAULT_TIMEOUT: i64 = 10;

/// `capture netflow mode` and `gzip` of a namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetflowConfig {
    pub ascii: bool,
    pub gzip: bool,
}

impl NetflowConfig {
    pub fn mode(&self) -> &'static str {
        if self.ascii {
            "ascii"
        } else {
            "raw"
        }
    }
}

/// Where one capture writes.
pub enum Dest {
    File(String),
    /// `tcp` or `udp`, and `host:port`.
    Socket(String, String),
}

enum Sink {
    File(std::io::BufWriter<std::fs::File>),
    Gzip(flate2::write::GzEncoder<std::fs::File>),
    Udp(UdpSocket),
    Tcp(std::net::TcpStream),
}

struct Writer {
    namespace: String,
    /// As `capture` lists it: the file, or `udp:host:port`.
    path: String,
    config: NetflowConfig,
    sink: Sink,
}

impl Writer {
    fn write(&mut self, raw: &[u8], p: &Packet, offset: i64) -> std::io::Result<()> {
        let ascii;
        let bytes: &[u8] = if self.config.ascii {
            ascii = p.ascii(offset);
            ascii.as_bytes()
        } else {
            raw
        };
        match &mut self.sink {
            Sink::File(f) => f.write_all(bytes).and_then(|_| f.flush()),
            Sink::Gzip(g) => g.write_all(bytes),
            Sink::Udp(s) => s.send(bytes).map(|_| ()),
            Sink::Tcp(s) => s.write_all(bytes),
        }
    }

    fn finish(self) {
        let r = match self.sink {
            Sink::File(mut f) => f.flush(),
            Sink::Gzip(g) => g.finish().map(|_| ()),
            Sink::Udp(_) | Sink::Tcp(_) => Ok(()),
        };
        if let Err(e) = r {
            warn!("netflow capture {}: {e}", self.path);
        }
    }
}

/// A bridge's collector.
pub struct Collector {
    pub bridge: String,
    /// The loopback UDP port it reads.
    port: u16,
    writers: Arc<Mutex<Vec<Writer>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Every bridge's collector, and the shared timeout.
#[derive(Default)]
pub struct Flows {
    collectors: Mutex<Vec<Collector>>,
    config: Mutex<std::collections::BTreeMap<String, NetflowConfig>>,
    /// 0: not set, the default.
    timeout: AtomicI64,
}

/// Seconds east of UTC of the host's zone now, as Go's local time.
fn utc_offset() -> i64 {
    // SAFETY: localtime_r fills the tm we own.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

fn collect(sock: UdpSocket, writers: Arc<Mutex<Vec<Writer>>>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                warn!("netflow collector: {e}");
                return;
            }
        };
        let p = match Packet::parse(&buf[..n]) {
            Ok(p) => p,
            Err(e) => {
                warn!("netflow collector: {e}");
                continue;
            }
        };
        let offset = utc_offset();
        let mut ws = lock(&writers);
        for w in ws.iter_mut() {
            if let Err(e) = w.write(&buf[..n], &p, offset) {
                warn!("netflow capture {}: {e}", w.path);
            }
        }
    }
}

fn open_sink(dest: &Dest, gzip: bool) -> Result<(String, Sink), NetError> {
    match dest {
        Dest::File(path) => {
            if let Some(dir) = std::path::Path::new(path).parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let f = std::fs::File::create(path)
                .map_err(|e| NetError::Failed(format!("{path}: {e}")))?;
            let sink = if gzip {
                Sink::Gzip(flate2::write::GzEncoder::new(
                    f,
                    flate2::Compression::default(),
                ))
            } else {
                Sink::File(std::io::BufWriter::new(f))
            };
            Ok((path.clone(), sink))
        }
        Dest::Socket(proto, addr) => {
            let fail = |e: std::io::Error| NetError::Failed(format!("{proto} {addr}: {e}"));
            let sink = if proto == "udp" {
                let s = UdpSocket::bind("0.0.0.0:0").map_err(fail)?;
                s.connect(addr.as_str()).map_err(fail)?;
                Sink::Udp(s)
            } else {
                Sink::Tcp(std::net::TcpStream::connect(addr.as_str()).map_err(fail)?)
            };
            Ok((format!("{proto}:{addr}"), sink))
        }
    }
}

impl Net {
    pub fn netflow_config(&self, ns: &str) -> NetflowConfig {
        lock(&self.live.flows.config)
            .get(ns)
            .copied()
            .unwrap_or_default()
    }

    pub fn set_netflow_config(&self, ns: &str, f: impl FnOnce(&mut NetflowConfig)) {
        let mut all = lock(&self.live.flows.config);
        let c = all.entry(ns.to_string()).or_default();
        f(c);
        if *c == NetflowConfig::default() {
            all.remove(ns);
        }
    }

    pub fn netflow_timeout(&self) -> i64 {
        match self.live.flows.timeout.load(Ordering::Relaxed) {
            0 => DEFAULT_TIMEOUT,
            t => t,
        }
    }

    /// `capture netflow timeout N`: every bridge's export, now and later.
    pub async fn set_netflow_timeout(&self, secs: i64) -> Result<(), NetError> {
        self.live
            .flows
            .timeout
            .store(secs.max(1), Ordering::Relaxed);
        let targets: Vec<(String, String)> = lock(&self.live.flows.collectors)
            .iter()
            .filter_map(|c| c.target().map(|t| (c.bridge.clone(), t)))
            .collect();
        let ops: Vec<Op> = targets
            .into_iter()
            .map(|(bridge, t)| Op::SetNetflow {
                bridge,
                target: Some((t, self.netflow_timeout())),
            })
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        self.apply(ops).await
    }

    /// `capture netflow bridge BR FILE` and `... BR tcp|udp HOST:PORT`.
    pub async fn capture_netflow(
        &self,
        ns: &str,
        bridge: &str,
        dest: Dest,
    ) -> Result<(), NetError> {
        crate::vm::nic::check_bridge(bridge)
            .map_err(|why| NetError::Failed(format!("invalid bridge `{bridge}`: {why}")))?;
        let config = self.netflow_config(ns);
        // The file or peer first: a capture that cannot write starts nothing.
        let (path, sink) = open_sink(&dest, config.gzip)?;
        let writer = Writer {
            namespace: ns.to_string(),
            path,
            config,
            sink,
        };
        let existing = lock(&self.live.flows.collectors)
            .iter()
            .find(|c| c.bridge == bridge)
            .map(|c| c.writers.clone());
        if let Some(ws) = existing {
            lock(&ws).push(writer);
            return Ok(());
        }
        let sock = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| {
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                Ok(s)
            })
            .map_err(|e| NetError::Failed(format!("netflow collector: {e}")))?;
        let port = sock
            .local_addr()
            .map_err(|e| NetError::Failed(format!("netflow collector: {e}")))?
            .port();
        let writers = Arc::new(Mutex::new(vec![writer]));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (w, s) = (writers.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("netflow-{bridge}"))
                .spawn(move || collect(sock, w, s))
                .map_err(|e| NetError::Failed(format!("netflow collector: {e}")))?
        };
        let mut c = Collector {
            bridge: bridge.to_string(),
            port,
            writers,
            stop,
            thread: Some(thread),
        };
        let op = Op::SetNetflow {
            bridge: bridge.to_string(),
            target: Some((format!("127.0.0.1:{port}"), self.netflow_timeout())),
        };
        if let Err(e) = self.apply(vec![op]).await {
            c.shut();
            return Err(e);
        }
        lock(&self.live.flows.collectors).push(c);
        Ok(())
    }

    /// Stops the namespace's netflow captures on `bridge` (`all`: every
    /// bridge); a bridge left with no capture stops exporting. Returns
    /// how many stopped.
    pub async fn stop_netflow(&self, ns: &str, bridge: &str) -> usize {
        let mut stopped = 0;
        let mut idle: Vec<Collector> = Vec::new();
        {
            let mut all = lock(&self.live.flows.collectors);
            for c in all.iter() {
                if bridge != "all" && c.bridge != bridge {
                    continue;
                }
                let mut ws = lock(&c.writers);
                let (gone, keep): (Vec<Writer>, Vec<Writer>) = std::mem::take(&mut *ws)
                    .into_iter()
                    .partition(|w| w.namespace == ns);
                *ws = keep;
                stopped += gone.len();
                gone.into_iter().for_each(Writer::finish);
            }
            let (empty, busy): (Vec<Collector>, Vec<Collector>) = std::mem::take(&mut *all)
                .into_iter()
                .partition(|c| lock(&c.writers).is_empty());
            *all = busy;
            idle.extend(empty);
        }
        for mut c in idle {
            let op = Op::SetNetflow {
                bridge: c.bridge.clone(),
                target: None,
            };
            if let Err(e) = self.apply(vec![op]).await {
                warn!("netflow on {}: cannot stop the export: {e}", c.bridge);
            }
            c.shut();
        }
        stopped
    }

    /// `capture` rows of the namespace's netflow captures.
    pub fn netflow_rows(&self, ns: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for c in lock(&self.live.flows.collectors).iter() {
            for w in lock(&c.writers).iter().filter(|w| w.namespace == ns) {
                rows.push(vec![
                    c.bridge.clone(),
                    "netflow".into(),
                    String::new(),
                    w.config.mode().into(),
                    w.config.gzip.to_string(),
                    w.path.clone(),
                ]);
            }
        }
        rows
    }
}

impl Collector {
    /// Where Open vSwitch sends this bridge's flows.
    fn target(&self) -> Option<String> {
        Some(format!("127.0.0.1:{}", self.port))
    }

    fn shut(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for w in std::mem::take(&mut *lock(&self.writers)) {
            w.finish();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.shut();
    }
}
