//! The events rooms announce (a VM's state, a peer joining or leaving),
//! which the front doors turn into D-Bus signals and systemd's STATUS=.

/// Something a front door may want to announce (D-Bus signals, STATUS=).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    VmState {
        namespace: String,
        name: String,
        id: u64,
        state: String,
    },
    PeerJoined(String),
    PeerLeft(String),
}
