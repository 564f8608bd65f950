//! The guest side of `router`: minirouter, which applies the file
//! `router VM commit` sends. Its lines are read into typed commands
//! ([`parse`]), folded into the router's state over the last good one
//! ([`state`]), and rendered for what a current distribution runs:
//! `ip` commands for addresses and the default route ([`plan`]), a
//! dnsmasq configuration for DHCP, DNS and router advertisements
//! ([`dnsmasq`]), one bird 2 configuration for IPv4 and IPv6 routing
//! ([`bird`]), and an nftables ruleset for the firewall ([`nft`]).
//! [`run::update`] checks all of it with the tools before changing
//! anything, applies it, and puts the previous configuration back when a
//! step fails; its I/O is the [`run::System`] the binary supplies.

pub mod bird;
pub mod dnsmasq;
pub mod line;
pub mod model;
pub mod nft;
pub mod parse;
pub mod plan;
pub mod render;
pub mod run;
pub mod state;

pub use parse::{parse, Cmd, LineError};
pub use plan::{Paths, Plan};
pub use run::{update, System, UpdateError};

#[cfg(test)]
mod tests;
