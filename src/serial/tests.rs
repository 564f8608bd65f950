//! The relay and its viewers against a stand-in for QEMU's serial socket
//! (a unix socket the test plays the guest on). Real QEMU is in
//! tests/vnc.rs.

use super::relay::{Relay, UnixSocket};
use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

async fn recv(v: &mut Viewer) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(20), v.output.recv())
        .await
        .expect("output in time")
        .expect("the console is open")
        .to_vec()
}

#[tokio::test]
async fn viewers_see_the_recent_output_then_everything_and_all_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serial0");
    let l = UnixListener::bind(&path).unwrap();
    let relay = Relay::start(UnixSocket(path.clone()), b"before the restart\n");
    let (mut guest, _) = l.accept().await.unwrap();

    let mut a = relay.viewer("vm", 0);
    assert_eq!(a.replay, b"before the restart\n");
    guest.write_all(b"login: ").await.unwrap();
    assert_eq!(recv(&mut a).await, b"login: ");
    let mut b = relay.viewer("vm", 0);
    assert_eq!(b.replay, b"before the restart\nlogin: ");
    assert_eq!(relay.viewer_count(), 2);

    a.input.send(b"root\r".to_vec()).await.unwrap();
    b.input.send(b"ls\r".to_vec()).await.unwrap();
    let mut got = vec![0u8; 8];
    guest.read_exact(&mut got).await.unwrap();
    assert_eq!(got, b"root\rls\r");
    guest.write_all(b"# ").await.unwrap();
    assert_eq!(recv(&mut a).await, b"# ");
    assert_eq!(recv(&mut b).await, b"# ");

    // QEMU hangs up and takes a new connection: the relay comes back.
    drop(guest);
    let (mut guest, _) = l.accept().await.unwrap();
    guest.write_all(b"again").await.unwrap();
    assert_eq!(recv(&mut a).await, b"again");

    relay.close();
    let e = tokio::time::timeout(Duration::from_secs(20), a.output.recv())
        .await
        .unwrap();
    assert!(e.is_err(), "closed: the viewer sees the end");
    assert!(relay.viewer("vm", 0).replay.ends_with(b"again"));
}

#[tokio::test]
async fn serve_replays_then_relays_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serial0");
    let l = UnixListener::bind(&path).unwrap();
    let relay = Relay::start(UnixSocket(path.clone()), b"");
    let (mut guest, _) = l.accept().await.unwrap();
    guest.write_all(b"hello\n").await.unwrap();
    // Wait until the relay has it.
    for _ in 0..200 {
        if !relay.viewer("vm", 0).replay.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (client, server) = tokio::io::duplex(1024);
    let (sr, sw) = tokio::io::split(server);
    let task = tokio::spawn(serve(relay.viewer("vm", 0), sr, sw));
    let (mut cr, mut cw) = tokio::io::split(client);
    let mut got = vec![0u8; 6];
    cr.read_exact(&mut got).await.unwrap();
    assert_eq!(got, b"hello\n");
    cw.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    guest.read_exact(&mut one).await.unwrap();
    assert_eq!(&one, b"x");
    relay.close();
    let mut rest = Vec::new();
    cr.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, CLOSED_NOTICE);
    task.await.unwrap();
}

#[test]
fn a_log_tail_is_at_most_the_scrollback() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serial0.log");
    assert!(relay::log_tail(&log).is_empty(), "no log: nothing");
    let big: Vec<u8> = (0..SCROLLBACK + 100).map(|i| (i % 251) as u8).collect();
    std::fs::write(&log, &big).unwrap();
    assert_eq!(relay::log_tail(&log), big[100..]);
}
