//! The VMs' screens over VNC: the pieces the VNC shim and the `vnc`
//! commands are built from. Pure except [`client`]; imports no other room.
//!
//! - [`rfb`]: RFB messages, and [`rfb::ClientStream`], which follows a
//!   client's bytes as the shim forwards them
//! - [`kb`]: kb recordings (`vnc record kb`, `vnc play`, `vnc inject`)
//! - [`keys`]: keysym names, and text typed as key events (`vnc type`,
//!   ClientCutText)
//! - [`matcher`]: WaitForIt and ClickIt (is a template on the screen)
//! - [`fbrec`]: fb recordings (`vnc record fb`), in the original's format
//! - [`screen`]: an RGB picture of a screen
//! - [`godur`]: Go's duration text, which kb files and the listing use
//! - [`client`]: a small async RFB client (playback, fb recording, tests)

pub mod client;
pub mod fbrec;
pub mod godur;
pub mod kb;
pub mod keys;
mod keysymdef;
pub mod matcher;
pub mod rfb;
pub mod screen;
