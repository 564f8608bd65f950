//! Who holds a VM's serial port.
//!
//! QEMU serves a serial socket to one client at a time: while a page's
//! websocket holds it, the next page's connection waits unanswered in
//! the socket's backlog, connected and blank. So the newest page wins: a
//! claim on a port tells the page that holds it to let go, and returns
//! once that page's QEMU connection is closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a new page waits for the old one to let go. The old page's
/// loop answers a kick at once; this only bounds a loop stuck elsewhere.
const LET_GO: Duration = Duration::from_secs(5);

struct Holder {
    serial: u64,
    kick: oneshot::Sender<()>,
    gone: oneshot::Receiver<()>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    held: HashMap<String, Holder>,
}

/// The ports held now, by key (namespace, VM and port).
#[derive(Clone, Default)]
pub struct Claims(Arc<Mutex<Inner>>);

/// One page's hold on a port. Dropping it lets the next page in, so the
/// holder drops it only after its QEMU connection.
pub struct Claim {
    claims: Claims,
    key: String,
    serial: u64,
    /// Fires when a newer page claims the port.
    pub kicked: oneshot::Receiver<()>,
    _gone: oneshot::Sender<()>,
}

impl Claims {
    /// Takes the port `key`, telling its holder (if any) to let go and
    /// waiting until it has.
    pub async fn take(&self, key: &str) -> Claim {
        let (kick, kicked) = oneshot::channel();
        let (gone_tx, gone) = oneshot::channel();
        let (serial, old) = {
            let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            g.next += 1;
            let serial = g.next;
            let old = g
                .held
                .insert(key.to_string(), Holder { serial, kick, gone });
            (serial, old)
        };
        if let Some(old) = old {
            let _ = old.kick.send(());
            // Err when dropped: the old page's connection is closed.
            let _ = tokio::time::timeout(LET_GO, old.gone).await;
        }
        Claim {
            claims: self.clone(),
            key: key.to_string(),
            serial,
            kicked,
            _gone: gone_tx,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().held.len()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut g = self.claims.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.held
            .get(&self.key)
            .is_some_and(|h| h.serial == self.serial)
        {
            g.held.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_claim_kicks_the_holder_and_waits_for_it_to_let_go() {
        let claims = Claims::default();
        let mut first = claims.take("ns/vm/0").await;
        let c = claims.clone();
        let second = tokio::spawn(async move { c.take("ns/vm/0").await });
        // The holder hears the kick; the new claim waits until it lets go.
        (&mut first.kicked).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished());
        drop(first);
        let second = second.await.unwrap();
        assert_eq!(claims.len(), 1);
        drop(second);
        assert_eq!(claims.len(), 0);
    }

    #[tokio::test]
    async fn other_ports_are_left_alone() {
        let claims = Claims::default();
        let mut a = claims.take("ns/vm/0").await;
        let _b = claims.take("ns/vm/1").await;
        let _c = claims.take("other/vm/0").await;
        assert!(a.kicked.try_recv().is_err());
        assert_eq!(claims.len(), 3);
    }

    #[tokio::test]
    async fn an_old_claim_dropped_late_keeps_the_new_one() {
        let claims = Claims::default();
        let first = claims.take("k").await;
        let c = claims.clone();
        let second = tokio::spawn(async move { c.take("k").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        let mut second = second.await.unwrap();
        assert_eq!(claims.len(), 1, "the old claim's drop left the new one");
        assert!(second.kicked.try_recv().is_err());
    }
}
