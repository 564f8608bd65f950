//! Attaching to a console of a VM that runs on another node: that node
//! hands out a one-time ticket (over the mesh, as the answer to `vm
//! console`), and whoever presents it first on its console port, within
//! [`TICKET_LIFE`], gets the console on that TCP connection. The port is
//! bound when the first ticket is asked for, on the VNC ports' address.
//!
//! The wire: the ticket (64 hex digits) and a newline, then the console's
//! bytes both ways. A bad or late ticket gets one line saying so.

use super::{lock, serve, Serial, SerialError};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

/// How long a ticket may wait to be used.
pub const TICKET_LIFE: Duration = Duration::from_secs(30);
/// How long a connection has to present its ticket.
const PRESENT: Duration = Duration::from_secs(5);

struct Pending {
    vm_id: u64,
    name: String,
    port: u64,
    expires: Instant,
}

pub(super) struct Tickets {
    addr: Option<IpAddr>,
    port: Mutex<Option<u16>>,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
}

fn random_ticket() -> Result<String, SerialError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b)
        .map_err(|e| SerialError::Listen(std::io::Error::other(e.to_string())))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Tickets {
    pub fn new(addr: Option<IpAddr>) -> Tickets {
        Tickets {
            addr,
            port: Mutex::new(None),
            pending: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The address consoles listen on (None: every address).
    pub fn addr(&self) -> Option<IpAddr> {
        self.addr
    }

    pub fn issue(
        &self,
        serial: Serial,
        vm_id: u64,
        name: String,
        port: u64,
    ) -> Result<(u16, String), SerialError> {
        let tcp = self.listen(serial)?;
        let ticket = random_ticket()?;
        let mut p = lock(&self.pending);
        let now = Instant::now();
        p.retain(|_, t| t.expires > now);
        p.insert(
            ticket.clone(),
            Pending {
                vm_id,
                name,
                port,
                expires: now + TICKET_LIFE,
            },
        );
        Ok((tcp, ticket))
    }

    fn listen(&self, serial: Serial) -> Result<u16, SerialError> {
        let mut bound = lock(&self.port);
        if let Some(p) = *bound {
            return Ok(p);
        }
        let std = match self.addr {
            Some(a) => StdListener::bind((a, 0)),
            None => StdListener::bind((Ipv6Addr::UNSPECIFIED, 0))
                .or_else(|_| StdListener::bind((Ipv4Addr::UNSPECIFIED, 0))),
        }
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(SerialError::Listen)?;
        let l = TcpListener::from_std(std).map_err(SerialError::Listen)?;
        let port = l.local_addr().map_err(SerialError::Listen)?.port();
        info!("serial consoles of this node's VMs are attached from other nodes on port {port}");
        tokio::spawn(accept(l, serial, self.pending.clone()));
        *bound = Some(port);
        Ok(port)
    }
}

async fn accept(l: TcpListener, serial: Serial, pending: Arc<Mutex<HashMap<String, Pending>>>) {
    loop {
        let (tcp, peer) = match l.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!("console port: cannot accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (serial, pending) = (serial.clone(), pending.clone());
        tokio::spawn(async move {
            let (rd, mut wr) = tcp.into_split();
            let mut rd = BufReader::new(rd);
            let mut line = String::new();
            let read =
                tokio::time::timeout(PRESENT, (&mut rd).take(100).read_line(&mut line)).await;
            let ticket = line.trim();
            let found = match read {
                Ok(Ok(_)) => lock(&pending)
                    .remove(ticket)
                    .filter(|t| t.expires > Instant::now()),
                _ => None,
            };
            let viewer = found.and_then(|t| serial.by_id(t.vm_id, &t.name, t.port));
            let Some(viewer) = viewer else {
                debug!("console port: {peer} came without a valid ticket");
                let _ = wr
                    .write_all(b"minimega: invalid or expired console ticket\r\n")
                    .await;
                return;
            };
            info!(vm = %viewer.vm, "serial{} attached from {peer}", viewer.port);
            // What the reader buffered past the ticket is typed input.
            let early = rd.buffer().to_vec();
            if !early.is_empty() {
                let _ = viewer.input.send(early).await;
            }
            serve(viewer, rd.into_inner(), wr).await;
        });
    }
}
