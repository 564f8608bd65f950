//! The D-Bus edge: the `org.minimega.Minimega1` service the daemon serves
//! and the calls the thin client makes. It only translates between D-Bus
//! and the command engine.

pub mod client;
pub mod server;

pub const BUS_NAME: &str = "org.minimega.Minimega1";
pub const OBJECT_PATH: &str = "/org/minimega/Minimega1";
pub const INTERFACE: &str = "org.minimega.Minimega1";

use crate::config::Bus;

/// Starts a connection builder for the configured bus. zbus reads
/// `DBUS_SYSTEM_BUS_ADDRESS` / `DBUS_SESSION_BUS_ADDRESS`, so tests point
/// both ends at a private `dbus-daemon`.
pub fn builder(bus: &Bus) -> zbus::Result<zbus::connection::Builder<'static>> {
    match bus {
        Bus::System => zbus::connection::Builder::system(),
        Bus::Session => zbus::connection::Builder::session(),
        Bus::Address(a) => zbus::connection::Builder::address(a.as_str()),
        Bus::None => Err(zbus::Error::Address(
            "D-Bus is turned off (bus = none)".into(),
        )),
    }
}

/// The bus as users name it in messages.
pub fn describe(bus: &Bus) -> String {
    match bus {
        Bus::System => "the system bus".into(),
        Bus::Session => "the session bus".into(),
        Bus::Address(a) => format!("the bus at {a}"),
        Bus::None => "no bus".into(),
    }
}
