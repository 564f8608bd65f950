//! `capture`: a bridge's or a VM NIC's traffic to pcap files, `capture
//! pcap snaplen` and `capture pcap filter` (what a namespace's new pcap
//! captures keep, see `net::capture`), `capture netflow ...` (a bridge's
//! flows as NetFlow, see `net::flows`), and `clear capture`.

use super::net::{arg, index, namespace};
use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reply, Response, Spec};
use crate::node::Node;

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &[
                "capture",
                "capture <pcap,> bridge <bridge> <filename>",
                "capture <pcap,> vm <vm name> <interface index> <filename>",
                "capture <pcap,> <delete,> bridge <bridge>",
                "capture <pcap,> <delete,> vm <vm name>",
            ],
            short: "capture experiment data",
            long: "Capture traffic to pcap files (tcpdump and Wireshark read them):\n\n\tcapture pcap bridge mega_bridge all.pcap   everything on the bridge\n\tcapture pcap vm foo 0 foo.pcap            NIC 0 of VM foo, both ways\n\tcapture pcap delete bridge BR|all\n\tcapture pcap delete vm NAME|all\n\n`capture` lists the namespace's captures; relative file names are under\n-filepath. A VM's capture ends when its QEMU does.",
            handler: capture,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["clear capture", "clear capture <netflow,pcap>"],
            short: "stop every capture",
            long: "Stop every capture of the namespace.",
            handler: clear_capture,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &["clear capture"],
        },
        Spec {
            patterns: &[
                "capture <netflow,> <mode,> [raw,ascii]",
                "capture <netflow,> <gzip,> [true,false]",
            ],
            short: "configure netflow captures",
            long: "How the namespace's new netflow captures write, as in minimega: `raw`\n(NetFlow v5 packets as Open vSwitch sends them, the default) or `ascii`\n(one line per flow: start, duration, protocol, src:port, <->, dst:port,\npackets, bytes, tab-separated), and whether files are gzipped. Without a\nvalue each prints its setting.",
            handler: netflow_config,
            mesh_ok: true,
            reach: Reach::namespace(None),
            ns_clear: &["capture netflow mode raw", "capture netflow gzip false"],
        },
        Spec {
            patterns: &[
                "capture <netflow,> <bridge,> <bridge> <filename>",
                "capture <netflow,> <bridge,> <bridge> <tcp,udp> <hostname:port>",
                "capture <netflow,> <delete,> bridge <bridge>",
                "capture <netflow,> <timeout,> [timeout in seconds]",
            ],
            short: "capture a bridge's flows as netflow",
            long: "Have Open vSwitch export a bridge's flows as NetFlow v5, as minimega\ndoes, to a file or to a peer:\n\n\tcapture netflow bridge mega_bridge flows.nf        a file (under -filepath)\n\tcapture netflow bridge mega_bridge udp head:9995    a collector\n\tcapture netflow delete bridge mega_bridge|all\n\tcapture netflow timeout 10                          seconds\n\nThe records come to a collector of this daemon on a loopback port, which\nwrites them in the namespace's mode (`capture netflow mode`). A long flow\nis reported every timeout seconds (one timeout for every bridge, as Open\nvSwitch keeps it per bridge and minimega for all). `capture` lists them;\n`clear capture netflow` stops the namespace's.",
            handler: netflow,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
        patterns: &[
            "capture <pcap,> <snaplen,> [size]",
            "capture <pcap,> <filter,> [bpf]",
        ],
        short: "configure captures",
        long: "What the namespace's new pcap captures keep, as in minimega:\n\n\tcapture pcap snaplen 200          the first 200 bytes of each frame\n\tcapture pcap filter \"tcp port 80\"  frames the pcap-filter(7)\n\t                                  expression matches (one word: quote it)\n\nWithout a value each prints its setting (snaplen 0 means minimega's default,\n1600 bytes; an empty filter keeps every frame). `capture pcap filter \"\"`\nclears the filter. A filter is compiled with tcpdump: a bad one is refused\nwhen set (minimega finds out when a capture starts). Captures already\nrunning keep the settings they started with.",
        handler: config,
        mesh_ok: true,
        reach: Reach::namespace(None),
        ns_clear: &["capture pcap snaplen 0", "capture pcap filter \"\""],
        },
    ]
}

fn netflow_config(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = crate::ns::current(c.session).to_string();
        let net = &c.ctx.net;
        if c.args.flag("mode") {
            if c.args.flag("raw") || c.args.flag("ascii") {
                let ascii = c.args.flag("ascii");
                net.set_netflow_config(&ns, |n| n.ascii = ascii);
                return Ok(Reply::empty());
            }
            return Ok(Response::text(net.netflow_config(&ns).mode()).into());
        }
        if c.args.flag("true") || c.args.flag("false") {
            let gzip = c.args.flag("true");
            net.set_netflow_config(&ns, |n| n.gzip = gzip);
            return Ok(Reply::empty());
        }
        Ok(Response::text(net.netflow_config(&ns).gzip.to_string()).into())
    })
}

fn netflow(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = crate::ns::current(c.session).to_string();
        let net = &c.ctx.net;
        if c.args.flag("timeout") {
            let Some(v) = c.args.string("timeout") else {
                return Ok(Response::text(net.netflow_timeout().to_string()).into());
            };
            let secs: i64 = v
                .parse()
                .ok()
                .filter(|s| (1..=86_400).contains(s))
                .ok_or_else(|| {
                    CommandError::Invalid(format!(
                        "invalid timeout `{v}`: expected seconds, 1 to 86400"
                    ))
                })?;
            net.set_netflow_timeout(secs).await?;
            return Ok(Reply::empty());
        }
        let bridge = c.args.string("bridge").unwrap_or_default().to_string();
        if c.args.flag("delete") {
            if net.stop_netflow(&ns, &bridge).await == 0 && bridge != "all" {
                return Err(CommandError::Failed(format!(
                    "no netflow capture of {bridge}"
                )));
            }
            return Ok(Reply::empty());
        }
        let dest = match c.args.string("filename") {
            Some(f) => crate::net::flows::Dest::File(
                crate::vm::config::resolve_file(c.ctx.vms.filepath(), f)
                    .map_err(CommandError::failed)?,
            ),
            None => {
                let proto = if c.args.flag("udp") { "udp" } else { "tcp" };
                let addr = c.args.string("hostname:port").unwrap_or_default();
                crate::net::flows::Dest::Socket(proto.into(), addr.into())
            }
        };
        net.capture_netflow(&ns, &bridge, dest).await?;
        Ok(Reply::empty())
    })
}

fn config(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = crate::ns::current(c.session).to_string();
        let net = &c.ctx.net;
        if c.args.flag("snaplen") {
            let Some(v) = c.args.string("size") else {
                return Ok(Response::text(net.pcap_config(&ns).snaplen.to_string()).into());
            };
            let n: u32 = v.parse().map_err(|_| {
                CommandError::Invalid(format!(
                    "invalid snaplen `{v}`: expected bytes, 0 to 4294967295"
                ))
            })?;
            net.set_pcap_config(&ns, |p| p.snaplen = n);
            return Ok(Reply::empty());
        }
        let Some(f) = c.args.string("bpf") else {
            return Ok(Response::text(net.pcap_config(&ns).filter).into());
        };
        // Checked now (minimega only finds out when a capture starts).
        if !f.is_empty() {
            let snaplen = net.pcap_config(&ns).snaplen();
            crate::net::capture::compile_filter(f, snaplen).await?;
        }
        let f = f.to_string();
        net.set_pcap_config(&ns, |p| p.filter = f);
        Ok(Reply::empty())
    })
}

fn capture(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        let net = &c.ctx.net;
        let file = || {
            crate::vm::config::resolve_file(c.ctx.vms.filepath(), arg(&c, "filename"))
                .map_err(CommandError::failed)
        };
        let is_vm = c.pattern.contains(" vm ");
        if c.args.flag("delete") {
            let name = if is_vm {
                arg(&c, "vm")
            } else {
                arg(&c, "bridge")
            };
            let n = net
                .stop_captures(|k| {
                    k.namespace == ns
                        && k.vm.is_some() == is_vm
                        && (name == "all"
                            || if is_vm {
                                k.vm.as_deref() == Some(name)
                            } else {
                                k.bridge == name
                            })
                })
                .await;
            if n == 0 && name != "all" {
                return Err(CommandError::Failed(format!("no capture of {name}")));
            }
            return Ok(Reply::empty());
        }
        if c.args.flag("pcap") && is_vm {
            let vm = c.ctx.vms.one(&ns, arg(&c, "vm"))?;
            let i = index(arg(&c, "interface"))?;
            let nic = vm.lock().config.networks.get(i).cloned().ok_or_else(|| {
                CommandError::Failed(format!("vm {} has no interface {i}", vm.name))
            })?;
            net.capture_tap(&ns, &vm.name, i, &nic, &file()?).await?;
            return Ok(Reply::empty());
        }
        if c.args.flag("pcap") {
            net.capture_bridge(&ns, arg(&c, "bridge"), &file()?).await?;
            return Ok(Reply::empty());
        }
        let header = ["bridge", "type", "interface", "mode", "compress", "path"];
        let mut rows = net.capture_rows(&ns);
        rows.extend(net.netflow_rows(&ns));
        Ok(table(header, rows).listed().into())
    })
}

fn clear_capture(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let ns = namespace(&c);
        if !c.args.flag("netflow") {
            c.ctx.net.stop_captures(|k| k.namespace == ns).await;
        }
        if !c.args.flag("pcap") {
            c.ctx.net.stop_netflow(&ns, "all").await;
        }
        Ok(Reply::empty())
    })
}
