//! Serial consoles across the mesh: `console <vm> [serial port]` hands out
//! a one-time ticket on the node that runs the VM, and [`open`] attaches a
//! viewer (`minimega -console VM`, over the command socket) to the VM's
//! console here, or through such a ticket on whichever node of the
//! namespace runs it.

use crate::cli::Core;
use crate::command::{
    lexer, table, BoxFuture, Call, CmdResult, CommandError, Reach, Session, Spec,
};
use crate::node::Node;
use crate::serial::{self, Viewer};
use crate::vm::VmError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

pub fn specs() -> Vec<Spec<Node>> {
    vec![Spec {
        patterns: &["console <vm> [serial port]"],
        short: "a ticket to attach to a VM's serial console",
        long: "Attach a terminal to a VM's serial console with `minimega -console VM\n[-serial N]` (Ctrl-] leaves; several may be attached at once; each\nfirst sees the recent output). This command is what such a client asks\nthe node running the VM for: a one-time ticket, valid for 30 seconds,\nand the TCP port (and this node's addresses) to present it on. The\nticket and a newline, sent to that port, attach that connection to the\nconsole. Serial ports are counted from 0 (`vm config serial-ports`).",
        handler: console_ticket,
        mesh_ok: true,
        reach: Reach::namespace(Some(super::scope::drop_not_found)),
        ns_clear: &[],
    }]
}

fn port_arg(s: Option<&str>) -> Result<u64, CommandError> {
    match s {
        None => Ok(0),
        Some(p) => p
            .parse()
            .map_err(|_| failed(format!("invalid serial port `{p}`: not a number"))),
    }
}

/// This node's addresses another node may reach its console port on.
fn addresses(node: &Node) -> Vec<String> {
    if let Some(a) = node.config.vnc_addr.filter(|a| !a.is_unspecified()) {
        return vec![a.to_string()];
    }
    crate::mesh::ifaces::list()
        .into_iter()
        .filter(|i| i.up && !i.loopback)
        .map(|i| i.addr.to_string())
        .collect()
}

fn console_ticket(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = crate::ns::current(c.session).to_string();
        let vm = c
            .ctx
            .vms
            .one(&ns, c.args.string("vm").unwrap_or_default())?;
        let n = port_arg(c.args.string("serial"))?;
        let (port, ticket) = c.ctx.serial.ticket(&vm, n).map_err(failed)?;
        let row = vec![addresses(c.ctx).join(","), port.to_string(), ticket];
        Ok(table(["addresses", "port", "ticket"], vec![row]).into())
    })
}

/// A console opened for a viewer.
pub enum Console {
    /// On this node.
    Here(Viewer),
    /// On another node, through its console port.
    There(TcpStream),
}

/// Opens VM `vm`'s serial port `port` in `namespace` (None: the default
/// one): here if this node runs the VM, else on the node of the namespace
/// that does. The error is the one line a user sees.
pub async fn open(
    core: &Core,
    namespace: Option<&str>,
    vm: &str,
    port: u64,
) -> Result<Console, String> {
    let node = &core.node;
    let ns = namespace.unwrap_or(crate::ns::DEFAULT).to_string();
    match node.vms.one(&ns, vm) {
        Ok(v) => {
            return node
                .serial
                .attach(&v, port)
                .map(Console::Here)
                .map_err(|e| e.to_string())
        }
        Err(VmError::NotFound(_)) => {}
        Err(e) => return Err(e.to_string()),
    }
    let line = format!(
        "namespace {} console {} {port}",
        lexer::quote_if_needed(&ns, false),
        lexer::quote_if_needed(vm, false)
    );
    let mut session = Session::new();
    let mut error = None;
    for r in core
        .exec(&mut session, &line)
        .await
        .iter()
        .flat_map(|g| g.responses.iter())
    {
        if r.is_error() {
            error.get_or_insert_with(|| r.error.clone());
            continue;
        }
        let Some([addrs, tcp, ticket]) = r.tabular.first().map(Vec::as_slice) else {
            continue;
        };
        let Ok(tcp) = tcp.parse::<u16>() else {
            continue;
        };
        let mut hosts: Vec<String> = addrs
            .split(',')
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        hosts.push(r.host.clone());
        for h in hosts {
            if let Ok(Ok(mut s)) = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                TcpStream::connect((h.as_str(), tcp)),
            )
            .await
            {
                if s.write_all(format!("{ticket}\n").as_bytes()).await.is_ok() {
                    return Ok(Console::There(s));
                }
            }
        }
        error = Some(format!("cannot reach {} on port {tcp}", r.host));
    }
    Err(error.unwrap_or_else(|| format!("vm not found: {vm}")))
}

/// Joins an opened console to a viewer's stream until either ends;
/// `early` is what the viewer sent before the console was open.
pub async fn run<R, W>(console: Console, early: Vec<u8>, mut rd: R, mut wr: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match console {
        Console::Here(viewer) => {
            if !early.is_empty() {
                let _ = viewer.input.send(early).await;
            }
            serial::serve(viewer, rd, wr).await;
        }
        Console::There(tcp) => {
            let (mut tr, mut tw) = tcp.into_split();
            if !early.is_empty() && tw.write_all(&early).await.is_err() {
                return;
            }
            let down = tokio::io::copy(&mut tr, &mut wr);
            let up = async {
                let mut buf = vec![0u8; 4096];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if tw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            };
            tokio::select! {
                _ = down => {}
                _ = up => {}
            }
        }
    }
}
