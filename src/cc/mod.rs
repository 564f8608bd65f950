//! Command and control: running commands and moving files inside guests
//! through minimega's in-guest agent, miniccc, wire-compatible with the
//! stock Go agent (and our own, `src/bin/miniccc.rs`).
//!
//! - [`gob`]: Go's encoding/gob, the subset the protocol uses (pure)
//! - [`minitunnel`]: the tunnels' own messages inside TUNNEL ones (pure); [`tunnel`]: their connections
//! - [`ron`]: the protocol's messages (pure)
//! - [`book`], [`filter`]: commands, delivery and filters per namespace (pure)
//! - [`files`]: the response tree and the files `cc send` serves
//! - [`server`]: the node's cc state, clients and saved books
//! - [`session`], [`transport`]: one agent's connection; virtio-serial and TCP
//! - [`ufs`]: the agent's file server on a local port; [`mount`]: `cc mount`'s mounts
//! - [`hook`]: the VM's `cc` port, opened and closed with its QEMU
//! - [`commands`], [`post`]: the `cc` commands

pub mod book;
pub mod files;
pub mod filter;
pub mod gob;
pub mod hook;
pub mod minitunnel;
pub mod mount;
pub mod pipes;
pub mod ron;
pub mod server;
pub mod session;
pub mod transport;
pub mod tunnel;
pub mod ufs;

pub use server::{Cc, CcError};
