//! Command and control: running commands and moving files inside guests
//! through minimega's in-guest agent, miniccc, wire-compatible with the
//! stock Go agent.
//!
//! - [`gob`]: Go's encoding/gob, the subset the protocol uses (pure)
//! - [`ron`]: the protocol's messages (pure)

pub mod gob;
pub mod ron;
