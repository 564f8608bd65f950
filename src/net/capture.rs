//! `capture pcap`: a VM's NIC is read with an AF_PACKET socket on its tap
//! (both directions); a whole bridge is mirrored by Open vSwitch to a tap
//! the daemon holds open and reads. Either way frames go to a pcap file
//! (see [`super::pcap`]) until the capture is stopped, or the VM's tap goes.

use super::ovs::Op;
use super::sys::{self, netlink::Netlink, PacketSocket};
use super::{bpf, lock, pcap, Net, NetError};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tracing::warn;

pub struct Capture {
    pub namespace: String,
    pub bridge: String,
    /// `VM:INDEX` for a VM's NIC, empty for a bridge.
    pub interface: String,
    pub vm: Option<String>,
    pub path: String,
    /// The tap read (a VM's, or the mirror's output).
    pub device: String,
    mirror: bool,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
pub struct Captures {
    list: Mutex<Vec<Capture>>,
    /// `capture pcap snaplen` and `capture pcap filter`, per namespace.
    config: Mutex<std::collections::BTreeMap<String, PcapConfig>>,
}

/// What new pcap captures of a namespace keep: minimega's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcapConfig {
    /// Bytes kept of each frame; 0: minimega's default (1600).
    pub snaplen: u32,
    /// A pcap-filter(7) expression; empty: every frame.
    pub filter: String,
}

impl PcapConfig {
    pub fn snaplen(&self) -> u32 {
        if self.snaplen == 0 {
            pcap::SNAPLEN
        } else {
            self.snaplen
        }
    }
}

/// Compiles a pcap-filter expression for Ethernet frames with tcpdump
/// (`-ddd`, reading an empty capture from stdin, so no interface and no
/// privilege is involved).
pub async fn compile_filter(expr: &str, snaplen: u32) -> Result<bpf::Program, NetError> {
    use tokio::io::AsyncWriteExt;
    let bad = |why: String| NetError::Failed(format!("invalid filter `{expr}`: {why}"));
    let mut child = tokio::process::Command::new("tcpdump")
        .args(["-r", "-", "-ddd", "--", expr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| bad(format!("cannot run tcpdump to compile it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&pcap::header(snaplen)).await;
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| bad("tcpdump did not answer".into()))?
        .map_err(|e| bad(e.to_string()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err
            .lines()
            .filter(|l| !l.starts_with("reading from"))
            .map(|l| l.trim_start_matches("tcpdump: "))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(bad(why));
    }
    bpf::Program::parse(&String::from_utf8_lossy(&out.stdout)).map_err(|e| bad(e.to_string()))
}

/// What a capture keeps of each frame.
struct Keep {
    snaplen: u32,
    filter: Option<bpf::Program>,
}

impl Keep {
    async fn of(config: &PcapConfig) -> Result<Keep, NetError> {
        let snaplen = config.snaplen();
        let filter = match config.filter.as_str() {
            "" => None,
            f => Some(compile_filter(f, snaplen).await?),
        };
        Ok(Keep { snaplen, filter })
    }

    /// Bytes of the frame to write; 0: leave it out.
    fn bytes(&self, frame: &[u8]) -> usize {
        let by_filter = match &self.filter {
            Some(p) => p.run(frame) as usize,
            None => usize::MAX,
        };
        frame.len().min(self.snaplen as usize).min(by_filter)
    }
}

enum Source {
    Socket(PacketSocket),
    Queue(AsyncFd<OwnedFd>),
}

impl Source {
    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::Socket(s) => s.recv(buf).await.map(|f| f.len),
            Source::Queue(q) => sys::read_queue(q, buf).await,
        }
    }
}

async fn open_file(path: &str, snaplen: u32) -> Result<tokio::fs::File, NetError> {
    if let Some(dir) = Path::new(path).parent() {
        let _ = tokio::fs::create_dir_all(dir).await;
    }
    let mut f = tokio::fs::File::create(path)
        .await
        .map_err(|e| NetError::Failed(format!("{path}: {e}")))?;
    f.write_all(&pcap::header(snaplen))
        .await
        .map_err(|e| NetError::Failed(format!("{path}: {e}")))?;
    Ok(f)
}

async fn copy(
    src: Source,
    file: tokio::fs::File,
    keep: Keep,
    mut stop: oneshot::Receiver<()>,
    what: String,
) {
    let mut out = tokio::io::BufWriter::new(file);
    let mut buf = vec![0u8; 65536];
    let mut unflushed = 0;
    loop {
        let n = tokio::select! {
            _ = &mut stop => break,
            r = src.recv(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => {
                    warn!("capture of {what} stopped: {e}");
                    break;
                }
            },
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let kept = keep.bytes(&buf[..n.min(buf.len())]);
        if kept == 0 {
            continue;
        }
        let rec = pcap::record(now.as_secs() as u32, now.subsec_micros(), &buf[..kept], n);
        if out.write_all(&rec).await.is_err() {
            break;
        }
        unflushed += 1;
        if unflushed >= 64 {
            let _ = out.flush().await;
            unflushed = 0;
        }
    }
    let _ = out.flush().await;
}

impl Net {
    /// `capture pcap snaplen|filter` of namespace `ns`.
    pub fn pcap_config(&self, ns: &str) -> PcapConfig {
        lock(&self.live.captures.config)
            .get(ns)
            .cloned()
            .unwrap_or_default()
    }

    pub fn set_pcap_config(&self, ns: &str, f: impl FnOnce(&mut PcapConfig)) {
        let mut all = lock(&self.live.captures.config);
        let c = all.entry(ns.to_string()).or_default();
        f(c);
        if *c == PcapConfig::default() {
            all.remove(ns);
        }
    }

    fn start_capture(&self, mut c: Capture, src: Source, file: tokio::fs::File, keep: Keep) {
        let (tx, rx) = oneshot::channel();
        c.stop = Some(tx);
        c.task = Some(tokio::spawn(copy(src, file, keep, rx, c.device.clone())));
        lock(&self.live.captures.list).push(c);
    }

    /// `capture pcap vm VM IFACE FILE`.
    pub async fn capture_tap(
        &self,
        ns: &str,
        vm: &str,
        index: usize,
        nic: &super::Nic,
        path: &str,
    ) -> Result<(), NetError> {
        let Some(i) = sys::index(&nic.tap) else {
            return super::failed(format!(
                "vm {vm} has no tap for interface {index} (is it running?)"
            ));
        };
        let keep = Keep::of(&self.pcap_config(ns)).await?;
        let sock = PacketSocket::open(Some(i), None)
            .map_err(|e| NetError::Failed(format!("cannot capture {}: {e}", nic.tap)))?;
        let file = open_file(path, keep.snaplen).await?;
        self.start_capture(
            Capture {
                namespace: ns.into(),
                bridge: nic.bridge.clone(),
                interface: format!("{vm}:{index}"),
                vm: Some(vm.into()),
                path: path.into(),
                device: nic.tap.clone(),
                mirror: false,
                stop: None,
                task: None,
            },
            Source::Socket(sock),
            file,
            keep,
        );
        Ok(())
    }

    /// `capture pcap bridge BR FILE`: everything on the bridge, mirrored.
    pub async fn capture_bridge(&self, ns: &str, bridge: &str, path: &str) -> Result<(), NetError> {
        crate::vm::nic::check_bridge(bridge)
            .map_err(|why| NetError::Failed(format!("invalid bridge `{bridge}`: {why}")))?;
        // A bad filter is refused before anything is made.
        let keep = Keep::of(&self.pcap_config(ns)).await?;
        let name = self.reserve_name("mega_cap");
        let queue = Netlink::open()
            .and_then(|mut nl| sys::open_queue(&name, &mut nl))
            .map_err(|e| NetError::Failed(format!("cannot make tap {name}: {e}")));
        let queue = match queue {
            Ok(q) => q,
            Err(e) => {
                self.unreserve(&name);
                return Err(e);
            }
        };
        let port = name.clone();
        let r = self
            .apply(vec![Op::AddMirror {
                bridge: bridge.into(),
                port: port.clone(),
            }])
            .await;
        let file = match r {
            Ok(()) => open_file(path, keep.snaplen).await,
            Err(e) => Err(e),
        };
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                let _ = self.apply(vec![Op::DelMirror { port }]).await;
                self.unreserve(&name);
                return Err(e);
            }
        };
        self.start_capture(
            Capture {
                namespace: ns.into(),
                bridge: bridge.into(),
                interface: String::new(),
                vm: None,
                path: path.into(),
                device: name,
                mirror: true,
                stop: None,
                task: None,
            },
            Source::Queue(queue),
            file,
            keep,
        );
        Ok(())
    }

    /// Stops the captures `which` picks; returns how many.
    pub async fn stop_captures(&self, which: impl Fn(&Capture) -> bool) -> usize {
        let gone: Vec<Capture> = {
            let mut l = lock(&self.live.captures.list);
            let (gone, keep) = std::mem::take(&mut *l).into_iter().partition(|c| which(c));
            *l = keep;
            gone
        };
        let n = gone.len();
        for mut c in gone {
            if let Some(s) = c.stop.take() {
                let _ = s.send(());
            }
            if let Some(t) = c.task.take() {
                let _ = t.await;
            }
            if c.mirror {
                if let Err(e) = self
                    .apply(vec![Op::DelMirror {
                        port: c.device.clone(),
                    }])
                    .await
                {
                    warn!("capture on {}: cannot remove its mirror: {e}", c.bridge);
                }
                self.unreserve(&c.device);
            }
        }
        n
    }

    /// `capture`: (bridge, type, interface, mode, compress, path) rows.
    pub fn capture_rows(&self, ns: &str) -> Vec<Vec<String>> {
        lock(&self.live.captures.list)
            .iter()
            .filter(|c| c.namespace == ns)
            .map(|c| {
                vec![
                    c.bridge.clone(),
                    "pcap".into(),
                    c.interface.clone(),
                    String::new(),
                    String::new(),
                    c.path.clone(),
                ]
            })
            .collect()
    }
}

/// Stops captures of taps being removed.
pub async fn stop_for_taps(net: &Arc<Net>, taps: &[String]) {
    net.stop_captures(|c| !c.mirror && taps.contains(&c.device))
        .await;
}
