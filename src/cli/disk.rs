//! The `disk` commands, with minimega's names, words and output.

use crate::command::Reach;
use crate::command::{table, BoxFuture, Call, CmdResult, CommandError, Reply, Response, Spec};
use crate::disk::{info, DiskError};
use crate::node::Node;

impl From<DiskError> for CommandError {
    fn from(e: DiskError) -> CommandError {
        CommandError::Failed(e.to_string())
    }
}

/// The files-directory rule, appended to every `disk` command's help.
macro_rules! paths {
    () => {
        "\n\nA relative path is under the files directory (-filepath) and may not\nclimb out of it; an absolute path is used as given."
    };
}

pub fn specs() -> Vec<Spec<Node>> {
    vec![
        Spec {
            patterns: &["disk create <qcow2,raw> <image> <size>"],
            short: "creates a new disk",
            long: concat!("Create a new qcow2 or raw disk of the given size: bytes, or a number with\na suffix k, M, G or T (1.5G works). An existing file is never overwritten.\n\n\tdisk create qcow2 foo.qcow2 100G", paths!()),
            handler: create,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["disk snapshot <image> [dst image]"],
            short: "creates a new disk 'dst' backed by 'image'",
            long: concat!("Create a qcow2 image 'dst' backed by 'image' (a snapshot: 'image' is\nonly read from then on). Without 'dst', a generated name in the files\ndirectory is used and printed. The new image names its backing file\nrelative to its own folder, so a files directory can move or be\nmirrored on another node as a whole.\n\n\tdisk snapshot windows7.qc2 windows7_miniccc.qc2", paths!()),
            handler: snapshot,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["disk info <image> [recursive,]"],
            short: "provides info about a disk",
            long: concat!("Show an image's format, virtual size, size on disk, backing file, and\nwhether a process has it open (inuse). With 'recursive', one row per\nimage of the backing chain, the image first.", paths!()),
            handler: info_cmd,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "disk <rebase,> <image> [backing file]",
                "disk <set-backing,> <image> [backing file]",
            ],
            short: "rebases the disk onto a different backing image",
            long: concat!("Rebase 'image' onto a new backing file, writing into 'image' whatever\ndiffers between the old backing file and the new one. Without a backing\nfile, all backing data is written into 'image', which becomes standalone.\n'set-backing' only changes the pointer, writing nothing.\n\n\tdisk rebase myimage.qcow2 base.qcow2\n\tdisk set-backing myimage.qcow2 base.qcow2\n\tdisk rebase myimage.qcow2", paths!()),
            handler: rebase,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["disk commit <image>"],
            short: "commits the contents of the disk to its backing file",
            long: concat!("Write the contents of 'image' into its backing file. 'image' is left\nunchanged. Refused while a VM uses the image.", paths!()),
            handler: commit,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &["disk resize <image> <size>"],
            short: "resizes a disk",
            long: concat!("Change the size of a disk, to an absolute size or by a relative +/-\namount (512M, +1G, -2G). Grow the file system inside afterwards; shrink\nit first before shrinking the disk. Refused while a VM uses the image.", paths!()),
            handler: resize,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
        Spec {
            patterns: &[
                "disk <inject,> <image> files <files like src:dst>...",
                "disk <inject,> <image> <delete,> files <files like dst>...",
                "disk <inject,> <image> <options,> <options> files <files like src:dst>...",
                "disk <inject,> <image> <options,> <options> <delete,> files <files like dst>...",
            ],
            short: "injects files into a disk",
            long: concat!("Write files into, or delete files from, a partition of a raw or qcow2\nimage. Each argument after 'files' is a source:destination pair; the\ndestination is inside the partition:\n\n\tdisk inject win7_miniccc.qc2 files miniccc:\"Program Files/miniccc\"\n\nA partition is chosen with :N (or :none for a file system on the whole\ndisk); without one, the image's only partition is used, or the whole\ndisk when it has no partition table:\n\n\tdisk inject win7_miniccc.qc2:2 files miniccc:\"Program Files/miniccc\"\n\nTo delete, list destinations after 'delete files' (commas separate too):\n\n\tdisk inject win7_miniccc.qc2 delete files \"Program Files/miniccc\",foo.txt\n\nNo nbd module is needed: qemu-storage-daemon exports the image over FUSE\nand the partition is mounted through a loop device at its offset\n(ext4, and whatever else the kernel mounts; FAT with mtools when the\nkernel has no vfat). Links inside the image are never followed. The image is locked while this runs and is never left\nmounted or exported, also after an error or a crash of the daemon. An\nimage a running VM uses is refused.\n\nWith `options OPTS` (minimega's form) the file system is mounted with those\noptions as well, e.g.\n\n\tdisk inject win.qc2:2 options \"windows_names\" files foo.txt:foo.txt\n\nOptions that would undo the daemon's own (loop, offset, sizelimit, exec,\nsuid, dev, symfollow...) are refused.", paths!()),
            handler: inject,
            mesh_ok: true,
            reach: Reach::Here,
            ns_clear: &[],
        },
    ]
}

fn image(c: &Call<'_, Node>) -> String {
    c.args.string("image").unwrap_or_default().to_string()
}

fn create(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let format = if c.args.flag("qcow2") { "qcow2" } else { "raw" };
        let size = c.args.string("size").unwrap_or_default();
        c.ctx.disks.create(format, &image(&c), size).await?;
        Ok(Reply::empty())
    })
}

fn snapshot(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let dst = c.args.string("dst");
        let made = c.ctx.disks.snapshot(&image(&c), dst).await?;
        Ok(match dst {
            Some(_) => Reply::empty(),
            None => Response::text(made.display().to_string()).into(),
        })
    })
}

fn info_cmd(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let rows = c
            .ctx
            .disks
            .info(&image(&c), c.args.flag("recursive"))
            .await?;
        let rows = rows.iter().map(|(i, used)| info::row(i, *used));
        Ok(table(info::COLUMNS, rows).into())
    })
}

fn rebase(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let backing = c.args.string("backing");
        let unsafe_ = c.args.flag("set-backing");
        c.ctx.disks.rebase(&image(&c), backing, unsafe_).await?;
        Ok(Reply::empty())
    })
}

fn commit(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        c.ctx.disks.commit(&image(&c)).await?;
        Ok(Reply::empty())
    })
}

fn resize(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let size = c.args.string("size").unwrap_or_default();
        c.ctx.disks.resize(&image(&c), size).await?;
        Ok(Reply::empty())
    })
}

fn inject(c: Call<'_, Node>) -> BoxFuture<'_, CmdResult> {
    Box::pin(async move {
        let delete = c.args.flag("delete");
        c.ctx
            .disks
            .inject_with(
                &image(&c),
                delete,
                c.args.list("files"),
                c.args.string("options"),
            )
            .await?;
        Ok(Reply::empty())
    })
}
