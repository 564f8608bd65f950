//! The plumber's rules, on one node and on several joined in-process (the
//! mesh stand-in hands each message to the other plumber directly).

use super::modes::Mode;
use super::remote::{Answer, Message, Remote};
use super::via::Via;
use super::*;
use crate::command::BoxFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Several plumbers, each reaching the others directly.
#[derive(Default)]
struct Net {
    nodes: Mutex<BTreeMap<String, Plumber>>,
}

struct Link {
    me: String,
    net: Arc<Net>,
}

impl Remote for Link {
    fn others(&self) -> Vec<String> {
        let n = self.net.nodes.lock().unwrap();
        n.keys().filter(|k| **k != self.me).cloned().collect()
    }

    fn send(&self, targets: Vec<String>, msg: Message) -> BoxFuture<'static, Vec<Answer>> {
        let net = self.net.clone();
        Box::pin(async move {
            let mut out = Vec::new();
            for t in targets {
                let p = net.nodes.lock().unwrap().get(&t).cloned();
                let a = match p {
                    // As over the mesh: the message goes as JSON.
                    Some(p) => {
                        let line = msg.line();
                        let json = crate::command::lexer::lex(&line).unwrap()[2].value.clone();
                        p.handle(Message::parse(&json).unwrap()).await
                    }
                    None => Err(format!("{t} is not in the mesh")),
                };
                out.push((t, a));
            }
            out
        })
    }
}

/// A via that tags each run with a number, so every reader's value differs.
#[derive(Default)]
struct Tagging(AtomicU64);

impl Via for Tagging {
    fn run<'a>(
        &'a self,
        argv: &'a [String],
        input: &'a str,
    ) -> BoxFuture<'a, Result<String, String>> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(format!("{input}|{}#{n}", argv.join(" "))) })
    }
}

fn mesh(names: &[&str]) -> Vec<Plumber> {
    let net = Arc::new(Net::default());
    let via: Arc<dyn Via> = Arc::new(Tagging::default());
    let plumbers: Vec<Plumber> = names
        .iter()
        .map(|n| {
            let p = Plumber::with_via(n, via.clone());
            p.set_remote(Arc::new(Link {
                me: n.to_string(),
                net: net.clone(),
            }));
            p
        })
        .collect();
    let mut nodes = net.nodes.lock().unwrap();
    for (n, p) in names.iter().zip(&plumbers) {
        nodes.insert(n.to_string(), p.clone());
    }
    drop(nodes);
    plumbers
}

/// Everything a reader has received so far.
fn drain(r: &mut PipeReader) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(m) = r.queue.rx.try_recv() {
        out.push(m);
    }
    out
}

fn row(p: &Plumber, ns: &str, pipe: &str) -> PipeInfo {
    p.pipes(ns)
        .into_iter()
        .find(|i| i.name == pipe)
        .unwrap_or_else(|| panic!("no pipe {pipe}"))
}

#[tokio::test]
async fn mode_all_copies_to_every_reader_and_counts_without_readers() {
    let p = Plumber::new("n1");
    p.write("ns//p", "nobody listens\n").await;
    assert_eq!(row(&p, "ns", "ns//p").count, 1);
    assert_eq!(row(&p, "ns", "ns//p").last, "nobody listens");
    let mut a = p.reader("ns//p");
    let mut b = p.reader("ns//p");
    p.write("ns//p", "hello").await;
    assert_eq!(drain(&mut a), ["hello"]);
    assert_eq!(drain(&mut b), ["hello"]);
    let r = row(&p, "ns", "ns//p");
    assert_eq!((r.readers, r.writers, r.count), (2, 0, 2));
    drop(a);
    assert_eq!(row(&p, "ns", "ns//p").readers, 1);
}

#[tokio::test]
async fn round_robin_takes_turns_and_random_picks_one() {
    let p = Plumber::new("n1");
    let mut rs: Vec<PipeReader> = (0..3).map(|_| p.reader("ns//p")).collect();
    p.set_mode("ns//p", Mode::RoundRobin);
    for i in 0..6 {
        p.write("ns//p", &format!("m{i}")).await;
    }
    let got: Vec<Vec<String>> = rs.iter_mut().map(drain).collect();
    assert_eq!(got, [["m0", "m3"], ["m1", "m4"], ["m2", "m5"]]);
    p.set_mode("ns//p", Mode::Random);
    for i in 0..30 {
        p.write("ns//p", &format!("r{i}")).await;
    }
    let counts: Vec<usize> = rs.iter_mut().map(|r| drain(r).len()).collect();
    assert_eq!(
        counts.iter().sum::<usize>(),
        30,
        "each message exactly once"
    );
    assert_eq!(row(&p, "ns", "ns//p").mode, Mode::Random);
}

#[tokio::test]
async fn deleting_a_pipe_ends_its_readers_but_not_while_written() {
    let p = Plumber::new("n1");
    let mut r = p.reader("ns//p");
    let w = p.writer("ns//p");
    w.send("last words").await;
    assert_eq!(
        p.delete("ns//p").unwrap_err(),
        "cannot delete named pipe with open writers"
    );
    drop(w);
    p.delete("ns//p").unwrap();
    assert_eq!(r.recv().await.as_deref(), Some("last words"));
    assert_eq!(r.recv().await, None, "end of input once deleted");
    assert!(!p.exists("ns//p"));
    // Other namespaces' pipes are left alone by delete_all.
    let _keep = p.reader("other//q");
    p.write("ns//a", "x").await;
    p.delete_all("ns").unwrap();
    assert!(p.exists("other//q") && !p.exists("ns//a"));
}

#[tokio::test]
async fn writes_reach_readers_on_every_node() {
    let nodes = mesh(&["n1", "n2", "n3"]);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut on2 = n2.reader("ns//p");
    let mut on3 = n3.reader("ns//p");
    n1.write("ns//p", "hello from n1").await;
    assert_eq!(drain(&mut on2), ["hello from n1"]);
    assert_eq!(drain(&mut on3), ["hello from n1"]);
    // Each node holding the pipe counts the message; n1 wrote it.
    for n in &nodes {
        assert_eq!(row(n, "ns", "ns//p").count, 1);
    }
    assert_eq!(row(n2, "ns", "ns//p").last, "hello from n1");
    assert_eq!(row(n1, "ns", "ns//p").readers, 0);
}

#[tokio::test]
async fn round_robin_spans_the_nodes() {
    let nodes = mesh(&["n1", "n2"]);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let mut local = n1.reader("ns//p");
    let mut remote = n2.reader("ns//p");
    n1.set_mode("ns//p", Mode::RoundRobin);
    for i in 0..4 {
        n1.write("ns//p", &format!("m{i}")).await;
    }
    assert_eq!(drain(&mut local), ["m0", "m2"]);
    assert_eq!(drain(&mut remote), ["m1", "m3"]);
}

#[tokio::test]
async fn a_via_runs_once_per_reader_on_the_node_that_set_it() {
    let nodes = mesh(&["n1", "n2"]);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let mut a = n1.reader("ns//p");
    let mut b = n1.reader("ns//p");
    let mut c = n2.reader("ns//p");
    n1.set_via("ns//p", vec!["normal".into(), "-stddev".into(), "5".into()])
        .await;
    // Written on n2: passed to n1, which runs the via for every reader.
    n2.write("ns//p", "1.5").await;
    let got: Vec<String> = [&mut a, &mut b, &mut c]
        .into_iter()
        .flat_map(drain)
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter().all(|v| v.starts_with("1.5|normal -stddev 5#")),
        "{got:?}"
    );
    let mut distinct = got.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "each reader its own value: {got:?}");
    assert_eq!(row(n1, "ns", "ns//p").via, "normal -stddev 5");
    // Round-robin with a via: one reader, one run.
    n1.set_mode("ns//p", Mode::RoundRobin);
    n1.write("ns//p", "2").await;
    let got: Vec<String> = [&mut a, &mut b, &mut c]
        .into_iter()
        .flat_map(drain)
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    // Cleared: plain copies again, and n2 writes for itself.
    n1.set_via("ns//p", Vec::new()).await;
    n1.set_mode("ns//p", Mode::All);
    n2.write("ns//p", "plain").await;
    let got: Vec<String> = [&mut a, &mut b, &mut c]
        .into_iter()
        .flat_map(drain)
        .collect();
    assert_eq!(got, ["plain", "plain", "plain"]);
}

#[tokio::test]
async fn a_real_via_program() {
    let p = Plumber::new("n1");
    let mut r = p.reader("ns//p");
    p.set_via("ns//p", vec!["tr".into(), "a-z".into(), "A-Z".into()])
        .await;
    p.write("ns//p", "shout").await;
    assert_eq!(r.recv().await.as_deref(), Some("SHOUT"));
    // A via that fails skips that reader; the write is still counted.
    p.set_via("ns//p", vec!["false".into()]).await;
    p.write("ns//p", "lost").await;
    assert!(drain(&mut r).is_empty());
    assert_eq!(row(&p, "ns", "ns//p").count, 2);
}

async fn recv_within(r: &mut PipeReader) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(20), r.recv())
        .await
        .expect("a message within 20s")
}

#[tokio::test]
async fn a_pipeline_of_pipes_and_a_program() {
    let p = Plumber::new("n1");
    let typed: Vec<String> = ["p1", "sed -u s/a/b/", "p2"].map(String::from).to_vec();
    let name = p.plumb("minimega", &typed).await.unwrap();
    assert_eq!(name, "minimega//p1 sed -u s/a/b/ minimega//p2");
    assert_eq!(p.pipelines_of("minimega"), std::slice::from_ref(&name));
    assert!(matches!(
        p.plumb("minimega", &typed).await,
        Err(pipeline::PlumbError::Exists(_))
    ));
    let mut out = p.reader("minimega//p2");
    p.write("minimega//p1", "apple").await;
    p.write("minimega//p1", "banana").await;
    assert_eq!(recv_within(&mut out).await.as_deref(), Some("bpple"));
    assert_eq!(recv_within(&mut out).await.as_deref(), Some("bbnana"));
    let r1 = row(&p, "minimega", "minimega//p1");
    let r2 = row(&p, "minimega", "minimega//p2");
    assert_eq!((r1.readers, r1.writers), (1, 0));
    assert_eq!((r2.readers, r2.writers, r2.count), (1, 1, 2));
    // Ended by the name as typed: its reader and writer close with it.
    p.unplumb(
        "minimega",
        &["p1".into(), "sed -u s/a/b/".into(), "p2".into()],
    )
    .await
    .unwrap();
    assert!(p.pipelines_of("minimega").is_empty());
    assert_eq!(row(&p, "minimega", "minimega//p1").readers, 0);
    assert_eq!(row(&p, "minimega", "minimega//p2").writers, 0);
    assert!(matches!(
        p.unplumb("minimega", &typed).await,
        Err(pipeline::PlumbError::Missing(_))
    ));
}

#[tokio::test]
async fn a_pipeline_ends_with_its_program_or_its_input_pipe() {
    let p = Plumber::new("n1");
    // `head -n 1` exits after one line: the pipeline goes by itself.
    p.plumb("ns", &["a".into(), "head -n 1".into(), "b".into()])
        .await
        .unwrap();
    let mut b = p.reader("ns//b");
    p.write("ns//a", "first").await;
    assert_eq!(recv_within(&mut b).await.as_deref(), Some("first"));
    crate::plumb::tests::wait(|| p.pipelines_of("ns").is_empty()).await;
    assert_eq!(row(&p, "ns", "ns//a").readers, 0);
    // Deleting the first pipe ends a pipeline reading it.
    p.plumb("ns", &["c".into(), "d".into()]).await.unwrap();
    assert_eq!(row(&p, "ns", "ns//d").writers, 1);
    p.delete("ns//c").unwrap();
    wait(|| p.pipelines_of("ns").is_empty()).await;
    assert_eq!(row(&p, "ns", "ns//d").writers, 0);
}

#[tokio::test]
async fn a_pipeline_that_cannot_start_leaves_nothing() {
    let p = Plumber::new("n1");
    // A program that is found but cannot run: an executable of nonsense.
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus");
    std::fs::write(&bogus, [0u8, 1, 2, 3]).unwrap();
    std::fs::set_permissions(&bogus, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let program = bogus.display().to_string();
    let e = p
        .plumb("ns", &["x".into(), program, "y".into()])
        .await
        .unwrap_err();
    assert!(matches!(e, pipeline::PlumbError::Spawn { .. }), "{e}");
    assert!(p.pipelines_of("ns").is_empty());
    wait(|| {
        p.pipes("ns")
            .iter()
            .all(|i| i.readers == 0 && i.writers == 0)
    })
    .await;
    assert!(p.plumb("ns", &["x".into(), "'open".into()]).await.is_err());
}

pub(crate) async fn wait(mut ok: impl FnMut() -> bool) {
    for _ in 0..400 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met within 10s");
}
