//! The `file` commands, with minimega's names and columns, and the offer
//! nodes ask each other for.

use crate::command::Reach;
use crate::command::{
    table, BoxFuture, Call, CmdResult, CommandError, Group, Reply, Response, Spec,
};
use crate::files::transfer::OFFER_COLUMNS;
use crate::files::{local, FileError};
use crate::node::Node;

impl From<FileError> for CommandError {
    fn from(e: FileError) -> CommandError {
        CommandError::Failed(e.to_string())
    }
}

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["file list", "file list <path> [recursive,]"],
            short: "list files served by minimega",
            long: "List the files directory (-filepath), or a path in it (a file, a\ndirectory's entries, or every match of a glob such as *.qcow2): dir\n(<dir> for a directory), name relative to the files directory, size in\nbytes, modified. With 'recursive', every file below instead.\n\n\tfile list\n\tfile list images recursive",
            handler: list,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["file get <file>"],
            short: "fetch a file from the mesh",
            long: "Fetch a file (a directory, or a glob's matches) from the nodes of the\nmesh that hold it into this node's files directory, and return once the\ntransfer has begun; `file status` shows it. A file already here is left\nalone. When nodes hold different versions (size and modification time),\nthe newest is fetched, from every node that holds it at once.\n\nThe mesh only finds the holders; the data flows on direct TCP connections\nto them, authenticated and checked part by part (8 MiB, SHA-256 under a\nMAC) with the mesh key. Parts are written in place in a hidden partial\nfile beside the destination, which is renamed into place when complete\n(with the source's mode and modification time), so a large image is never\nstored twice. A lost holder's parts are fetched from the others, or from\nit again when it comes back; a later `file get` resumes a transfer that\nfailed. A file is never fetched twice at once.\n\nTo have another node fetch a file: mesh send node2 file get foo.qcow2",
            handler: get,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["file stream <file>"],
            short: "stream a file's contents",
            long: "Send a file of the files directory in the answer, as minimega does for\nminiweb's downloads: one answer per 10 MiB part, its bytes in the\nresponse's Data (base64), in order; an empty file is an answer with no\nresponse. The file must be on this node (minimega also streams a file\nonly another node holds). Files above 1 GiB are refused: the parts are\nheld in memory until the answer is sent.",
            handler: stream,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["file delete <file>"],
            short: "delete a file served by minimega",
            long: "Delete a file, a directory with everything below it, or a glob's\nmatches, from the files directory (a name is always inside it). A file\nbeing fetched is refused until its transfer ends.",
            handler: delete,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["file status"],
            short: "show file transfers in flight",
            long: "One row per transfer: filename, its partial file (tempdir), parts\ncompleted of all, and whether it waits its turn (queued: three run at\nonce). A transfer that fails leaves the list and says why in the log.",
            handler: status,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["file bandwidth [rate in MiB/s]"],
            short: "view or limit how fast this node serves files",
            long: "View or set the rate at which this node sends files to each fetching\nnode, in MiB/s (fractions allowed); 0, the default, is no limit.",
            handler: bandwidth,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["file offer <file>"],
            short: "what this node serves under a name (asked by other nodes)",
            long: "Nodes ask each other with this before `file get`: one row per file this\nnode holds under the name (a file, a directory, a glob), with its size,\nmodification time (ns), mode, and the port and addresses of this node's\nfile server.",
            handler: offer,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

fn name(c: &Call<'_, Node>) -> String {
    c.args.string("file").unwrap_or_default().to_string()
}

fn list(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let path = c.args.string("path").unwrap_or("/");
        let rows = c.ctx.files.list(path, c.args.flag("recursive"))?;
        let hashed = c.ctx.config.hash_files;
        let files = c.ctx.files.clone();
        // Hashing reads whole images: off the runtime's threads.
        let hashes: Vec<Option<String>> = tokio::task::spawn_blocking({
            let rows = rows.clone();
            move || rows.iter().map(|e| hashed.then(|| files.hash(e))).collect()
        })
        .await
        .map_err(|e| CommandError::Failed(format!("hashing files: {e}")))?;
        let rows = rows.into_iter().zip(hashes).map(|(e, hash)| {
            let mut row = vec![
                if e.dir { "<dir>".into() } else { String::new() },
                e.name,
                e.size.to_string(),
                local::rfc3339(e.version.mtime_ns),
            ];
            row.extend(hash);
            row
        });
        let mut header = vec!["dir", "name", "size", "modified"];
        if hashed {
            header.push("hash");
        }
        Ok(table(header, rows).listed().into())
    })
}

/// minimega's part size for `file stream`.
const STREAM_PART: usize = 10 << 20;
/// Above this, `file stream` would hold too much in memory.
const STREAM_LIMIT: u64 = 1 << 30;

fn stream(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let name = name(&c);
        let path = c.ctx.files.stream_path(&name)?;
        let host = c.ctx.hostname().to_string();
        let flags = c.session.flags;
        let groups = tokio::task::spawn_blocking(move || -> Result<Vec<Group>, CommandError> {
            use std::io::Read;
            let io = |e: std::io::Error| CommandError::Failed(format!("stream {name}: {e}"));
            let mut f = std::fs::File::open(&path).map_err(io)?;
            let len = f.metadata().map_err(io)?.len();
            if len > STREAM_LIMIT {
                return Err(CommandError::Failed(format!(
                    "stream {name}: {len} bytes is more than file stream sends (1 GiB); fetch it with `file get` or read the files directory"
                )));
            }
            let mut groups = Vec::new();
            let mut buf = vec![0u8; STREAM_PART];
            loop {
                let mut n = 0;
                while n < buf.len() {
                    match f.read(&mut buf[n..]).map_err(io)? {
                        0 => break,
                        k => n += k,
                    }
                }
                if n == 0 {
                    break;
                }
                let r = Response {
                    host: host.clone(),
                    ..Default::default()
                }
                .with_data(serde_json::Value::String(crate::vm::screenshot::base64(
                    &buf[..n],
                )));
                groups.push(Group {
                    responses: vec![r],
                    flags,
                });
            }
            Ok(groups)
        })
        .await
        .map_err(|e| CommandError::Failed(format!("file stream: {e}")))??;
        Ok(Reply::Groups(groups))
    })
}

fn get(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        c.ctx.files.get(&name(&c)).await?;
        Ok(Reply::empty())
    })
}

fn delete(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        c.ctx.files.delete(&name(&c))?;
        Ok(Reply::empty())
    })
}

fn status(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let rows = c.ctx.files.status().into_iter().map(|s| {
            vec![
                s.name,
                s.partial,
                format!("{}/{}", s.completed, s.parts),
                s.queued.to_string(),
            ]
        });
        Ok(table(["filename", "tempdir", "completed", "queued"], rows)
            .listed()
            .into())
    })
}

fn bandwidth(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let Some(v) = c.args.string("rate") else {
            let mib = c.ctx.files.limit() as f64 / (1u64 << 20) as f64;
            return Ok(Response::text(format!("{mib}")).into());
        };
        let mib: f64 = v
            .parse()
            .ok()
            .filter(|m: &f64| m.is_finite() && *m >= 0.0)
            .ok_or_else(|| {
                CommandError::Invalid(format!(
                    "invalid rate `{v}`: expected MiB/s, 0 for no limit"
                ))
            })?;
        c.ctx.files.set_limit((mib * (1u64 << 20) as f64) as u64);
        Ok(Reply::empty())
    })
}

fn offer(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let (port, addrs, files) = c.ctx.files.offer(&name(&c))?;
        let addrs = addrs.join(",");
        let rows = files.into_iter().map(|e| {
            vec![
                e.name,
                e.version.size.to_string(),
                e.version.mtime_ns.to_string(),
                format!("{:o}", e.mode),
                port.to_string(),
                addrs.clone(),
            ]
        });
        Ok(table(OFFER_COLUMNS, rows).into())
    })
}
