//! The web console, `minimega-web`: the experiment at a glance in a
//! browser, live, with each VM's screen and serial console in the page.
//!
//! # Design
//!
//! **A program of its own, beside the daemon.** `minimega-web` is a binary
//! of this crate run by `minimega-web.service`, socket-activated by
//! `minimega-web.socket` (127.0.0.1:9080), as cockpit.socket activates
//! cockpit-ws: the socket is bound by systemd, so the console costs
//! nothing until someone connects, may listen on any port without a
//! capability, and a crash or upgrade of the console never touches the
//! daemon or its VMs. It runs as its own system user `minimega-web`, a
//! member of group `minimega` and nothing more: what the group may do
//! over D-Bus is all it can do. (Inside the daemon it would run as root
//! with every VM's sockets; a parser bug in front of the network would be
//! root's.)
//!
//! **D-Bus, not the command socket.** `org.minimega.Minimega1` carries
//! the two things the console needs: `Exec` for every command (each line
//! names its namespace, see [`lines`]) and the signals `VmStateChanged`,
//! `PeerJoined` and `PeerLeft`, so updates are pushed, not polled. The
//! bus policy already lets group `minimega` call `Exec`, the bus starts
//! before either service, and a daemon restart is a name owner change the
//! console rides out. The command socket has no events, so a console on it
//! would have to poll as miniweb does; stock miniweb keeps using it.
//!
//! **Logins: miniweb's password file, not PAM.** PAM would have to read
//! `/etc/shadow` for every other user: that takes root or a setuid helper
//! (cockpit ships `cockpit-session` setuid root for exactly this), far
//! more than a member of group `minimega` has. Group membership alone
//! proves nothing to a browser. So users are the entries of a bcrypt
//! password file in miniweb's format (a site's existing file works,
//! `minimega-web passwd` writes new entries), readable only by root and
//! the console, with two readings of our own ([`passwd`]): an entry's path
//! `/NS/` confines the user to namespace NS, and `"readonly": true` makes
//! a viewer. Every page, API call and websocket needs a login except the
//! login form; a viewer cannot start, stop, kill, flush, run commands, or
//! type into a screen or a serial console (its VNC input is dropped in the
//! server, [`viewonly`], its serial input too).
//!
//! **CSRF-safe actions** ([`session`]): the session cookie is HttpOnly and
//! SameSite=Strict (Secure under TLS); actions are POSTs carrying the
//! session's CSRF token in a header, which another site can neither read
//! nor send; and every POST and websocket must come from this origin.
//!
//! **Listening**: 127.0.0.1 by default (reach it over an SSH tunnel, or
//! set an address deliberately); TLS when given a certificate and key
//! (`-cert`/`-key`, or `/etc/minimega/web-certs.d/{cert,key}.pem` as
//! cockpit's ws-certs.d).
//!
//! **Live tables**: a page opens `/ws/events` for its namespace; the
//! server keeps one `vm info` table per watched namespace ([`live`]),
//! sends it whole once, then only changed rows. A `VmStateChanged` signal
//! patches the VM's state in every page at once and triggers a `vm info`
//! shortly after (coalescing bursts) for the other columns. Signals come
//! from this node only, so a slow backstop refresh (`-refresh`, 30 s)
//! catches what no signal reports (another node's VMs, a learned IP).
//!
//! **Consoles in the page**: noVNC from Debian's `novnc` and xterm.js from
//! Debian's `node-xterm` ([`bundle`]), served from /usr/share, not
//! vendored. The server joins the page's websocket to the VM's screen and
//! serial port through a small trait (`edge::consoles::Doors`), today
//! QEMU's own sockets in the VM's folder.
//!
//! # Rooms
//!
//! Pure, unit-tested: [`route`] (paths to handlers and what they need),
//! [`passwd`], [`session`] (sessions, CSRF, origins), [`lines`] (the
//! command lines sent), [`tables`] (answers shaped for the page), [`live`]
//! (the VM table diffed into pushes), [`viewonly`], [`bundle`], [`assets`]
//! (the pages, compiled in). The I/O is in [`edge`]: HTTP and websockets
//! (hyper, tokio-tungstenite), TLS (rustls), the D-Bus link, the consoles.

pub mod assets;
pub mod bundle;
pub mod edge;
pub mod lines;
pub mod live;
pub mod passwd;
pub mod route;
pub mod session;
pub mod tables;
pub mod viewonly;

/// Where the console listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9080";
/// Debian's noVNC.
pub const NOVNC_DIR: &str = "/usr/share/novnc";
/// Debian's xterm.js: the browser bundle, and the CommonJS modules it
/// stands for (see [`bundle`]).
pub const XTERM_DIR: &str = "/usr/share/javascript/xterm";
pub const XTERM_LIB: &str = "/usr/share/nodejs/xterm/lib";
/// Certificates, as cockpit's /etc/cockpit/ws-certs.d.
pub const CERTS_DIR: &str = "/etc/minimega/web-certs.d";
pub const PASSWORDS: &str = "/etc/minimega/web.passwd";
