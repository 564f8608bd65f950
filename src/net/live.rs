//! What runs beside the VMs: one AF_PACKET socket learning each guest's
//! addresses from its ARP and ICMPv6 (for `vm info` ip/ip6), and a sampler
//! of the taps' byte counters every few seconds (for `host` rx/tx). Both
//! start with the first tap and hold the node only weakly.

use super::sys::{self, netlink::Netlink, PacketSocket};
use super::{lock, Learned, Net};
use crate::vm::nic::Mac;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

const SAMPLE_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Live {
    /// Watched taps by link index: (tap, the guest's MAC).
    ifaces: Mutex<HashMap<u32, (String, Mac)>>,
    snooping: OnceLock<()>,
    sampling: OnceLock<()>,
    /// MB/s received and sent by the guests, summed over taps.
    rates: Mutex<(f64, f64)>,
    pub captures: super::capture::Captures,
    pub flows: super::flows::Flows,
    /// `tap mirror`s this node made.
    pub mirrors: Mutex<Vec<super::mirror::Mirror>>,
}

impl Net {
    /// Starts learning the guest's addresses on `tap`.
    pub fn watch(self: &Arc<Net>, tap: &str, mac: &str) {
        let (Some(i), Ok(mac)) = (sys::index(tap), Mac::parse(mac)) else {
            return;
        };
        lock(&self.live.ifaces).insert(i, (tap.to_string(), mac));
        let weak = Arc::downgrade(self);
        self.live.snooping.get_or_init(|| {
            tokio::spawn(snoop(weak.clone()));
        });
        self.live.sampling.get_or_init(|| {
            tokio::spawn(sample(weak));
        });
    }

    pub fn unwatch(&self, tap: &str) {
        lock(&self.live.ifaces).retain(|_, (t, _)| t != tap);
        self.update_logged(|s| {
            s.learned.remove(tap);
        });
    }

    pub fn learned(&self, tap: &str) -> Learned {
        lock(&self.saved)
            .learned
            .get(tap)
            .cloned()
            .unwrap_or_default()
    }

    /// (rx, tx) in MB/s as the guests see it.
    pub fn rates(&self) -> (f64, f64) {
        *lock(&self.live.rates)
    }
}

/// Every link's byte counters at one moment, for rates over a window
/// (`vm top`). Read by netlink: sysfs may show another network namespace.
#[derive(Default)]
pub struct Counters(HashMap<String, (u64, u64)>);

impl Counters {
    pub fn read() -> Counters {
        let links = Netlink::open().and_then(|mut nl| nl.links());
        Counters(
            links
                .unwrap_or_default()
                .into_iter()
                .map(|l| (l.name, (l.rx_bytes, l.tx_bytes)))
                .collect(),
        )
    }

    /// Bytes `vm`'s NICs received and sent: a tap's transmit is what the
    /// guest receives.
    pub fn of(&self, vm: &crate::vm::Vm) -> (u64, u64) {
        let taps: Vec<String> = vm
            .lock()
            .config
            .networks
            .iter()
            .map(|n| n.tap.clone())
            .collect();
        taps.iter()
            .filter_map(|t| self.0.get(t))
            .fold((0, 0), |(rx, tx), (r, t)| (rx + t, tx + r))
    }
}

async fn snoop(net: Weak<Net>) {
    let filter = sys::arp_ndp_filter();
    let sock = match PacketSocket::open(None, Some(&filter)) {
        Ok(s) => s,
        Err(e) => {
            warn!("networks: cannot snoop ARP and neighbour discovery ({e}); vm info shows no ip or ip6");
            return;
        }
    };
    let mut buf = vec![0u8; 512];
    loop {
        let f = match sock.recv(&mut buf).await {
            Ok(f) => f,
            Err(e) => {
                warn!("networks: snooping stopped: {e}");
                return;
            }
        };
        let Some(net) = net.upgrade() else { return };
        // What the switch sends into a tap is not the guest speaking.
        if f.pkttype == sys::PACKET_OUTGOING {
            continue;
        }
        let Some((tap, mac)) = lock(&net.live.ifaces).get(&f.ifindex).cloned() else {
            continue;
        };
        let Some((src, ip)) = super::snoop::learn(&buf[..f.len.min(buf.len())]) else {
            continue;
        };
        if src != mac {
            continue;
        }
        // Most frames repeat what is known: only a change is written.
        let known = net.learned(&tap);
        let text = ip.to_string();
        if [&known.ip4, &known.ip6].contains(&&text) {
            continue;
        }
        debug!("{tap}: the guest uses {text}");
        net.update_logged(|s| {
            let l = s.learned.entry(tap.clone()).or_default();
            match ip {
                IpAddr::V4(_) => l.ip4 = text,
                IpAddr::V6(_) => l.ip6 = text,
            }
        });
    }
}

async fn sample(net: Weak<Net>) {
    let mut last: HashMap<String, (u64, u64)> = HashMap::new();
    let mut at = Instant::now();
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let Some(net) = net.upgrade() else { return };
        let taps: Vec<String> = lock(&net.live.ifaces)
            .values()
            .map(|(t, _)| t.clone())
            .collect();
        let Ok(links) = Netlink::open().and_then(|mut nl| nl.links()) else {
            continue;
        };
        let now = Instant::now();
        let secs = now.duration_since(at).as_secs_f64().max(0.001);
        let (mut rx, mut tx) = (0.0, 0.0);
        let mut next = HashMap::new();
        for l in links.into_iter().filter(|l| taps.contains(&l.name)) {
            if let Some((r, t)) = last.get(&l.name) {
                // The tap's transmit is what the guest receives.
                rx += l.tx_bytes.saturating_sub(*t) as f64;
                tx += l.rx_bytes.saturating_sub(*r) as f64;
            }
            next.insert(l.name, (l.rx_bytes, l.tx_bytes));
        }
        let mb = (1u64 << 20) as f64;
        *lock(&net.live.rates) = (rx / mb / secs, tx / mb / secs);
        last = next;
        at = now;
    }
}
