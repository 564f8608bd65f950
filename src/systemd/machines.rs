//! Containers registered with systemd-machined, so `machinectl` lists and
//! shows them by name beside `systemctl status` (their scope units are
//! ours; machined only records them). Best effort: a host without machined
//! runs containers all the same.

use zbus::Connection;

#[zbus::proxy(
    interface = "org.freedesktop.machine1.Manager",
    default_service = "org.freedesktop.machine1",
    default_path = "/org/freedesktop/machine1"
)]
trait Machines {
    fn register_machine(
        &self,
        name: &str,
        id: &[u8],
        service: &str,
        class: &str,
        leader: u32,
        root_directory: &str,
    ) -> zbus::Result<()>;
}

/// A machine name machined takes (a hostname's characters, at most 64)
/// for the container `name` of namespace `ns`.
pub fn machine_name(ns: &str, name: &str) -> String {
    let raw = format!("minimega-{ns}-{name}");
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(64);
    out
}

/// Registers the machine whose leader is `leader` (already in its scope
/// unit). machined drops it by itself when the leader exits.
pub async fn register(conn: &Connection, name: &str, leader: u32) -> Result<(), String> {
    let m = MachinesProxy::new(conn).await.map_err(|e| e.to_string())?;
    m.register_machine(name, &[], "minimega", "container", leader, "")
        .await
        .map_err(|e| format!("machined: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names_are_hostname_characters() {
        assert_eq!(machine_name("exp", "web1"), "minimega-exp-web1");
        assert_eq!(machine_name("a b", "c/d"), "minimega-a-b-c-d");
        assert_eq!(machine_name("n", &"x".repeat(80)).len(), 64);
    }
}
