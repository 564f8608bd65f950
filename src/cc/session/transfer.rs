//! Files an agent moves: what `cc send` named, served in parts from the
//! files directory when the agent asks, and what `cc recv` brings back.

use super::*;

impl Agent {
    /// The agent asks for a file `cc send` named: sent in parts from the
    /// files directory, or an error naming the problem.
    pub(super) fn serve_file(&self, name: String) {
        let out = self.out.clone();
        let filepath = self.cc.filepath().to_path_buf();
        let ns = self.ns.clone();
        let label = self.label.clone();
        tokio::spawn(async move {
            let fail = |e: String| Message {
                kind: kind::FILE,
                file: Some(ron::File {
                    name: name.clone(),
                    ..Default::default()
                }),
                error: e,
                ..Message::default()
            };
            let path = match files::servable(&filepath, &ns, &name) {
                Ok(p) => p,
                Err(e) => {
                    warn!("cc: {label} asked for {name}: {e}");
                    let _ = out.send(Out::Msg(Box::new(fail(e)))).await;
                    return;
                }
            };
            if let Err(e) = send_parts(&out, &path, &name).await {
                warn!("cc: {label}: sending {}: {e}", path.display());
                let _ = out.send(Out::Msg(Box::new(fail(e.to_string())))).await;
            }
        });
    }

    /// A part of a file the agent sends (`cc recv`), stored under the
    /// response tree: `<name>.partial` until its last part.
    pub(super) async fn receive(&self, file: ron::File) {
        let known = self
            .cc
            .with_book(&self.ns, |b| (b.commands.contains_key(&file.id), false));
        if !known {
            warn!(
                "cc: {}: a file for command {}, which does not exist; dropped",
                self.label, file.id
            );
            return;
        }
        let path = match files::received_path(&self.root, file.id, &self.uuid, &file.name) {
            Ok(p) => p,
            Err(e) => {
                warn!(
                    "cc: {}: a file named {}: {e}; dropped",
                    self.label, file.name
                );
                return;
            }
        };
        let end = (file.offset.max(0) as u64).saturating_add(file.data.len() as u64);
        if file.offset < 0 || end > MAX_RECEIVED {
            warn!(
                "cc: {}: {} would end at byte {end}; dropped",
                self.label, file.name
            );
            return;
        }
        let label = self.label.clone();
        let r = tokio::task::spawn_blocking(move || files::store_part(&path, &file)).await;
        if let Ok(Err(e)) = r {
            warn!("cc: {label}: cannot store a received file: {e}");
        }
    }
}

async fn send_parts(
    out: &mpsc::Sender<Out>,
    path: &std::path::Path,
    name: &str,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(path).await?;
    let perm = f.metadata().await?.permissions().mode() as u64 & 0o777;
    let mut offset = 0i64;
    loop {
        let mut data = vec![0u8; ron::PART_SIZE];
        let mut n = 0;
        while n < data.len() {
            let got = f.read(&mut data[n..]).await?;
            if got == 0 {
                break;
            }
            n += got;
        }
        data.truncate(n);
        let eof = n < ron::PART_SIZE;
        let m = Message {
            kind: kind::FILE,
            file: Some(ron::File {
                id: 0,
                name: name.to_string(),
                perm,
                data,
                offset,
                eof,
            }),
            ..Message::default()
        };
        if out.send(Out::Msg(Box::new(m))).await.is_err() {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        offset += n as i64;
        if eof {
            return Ok(());
        }
    }
}
