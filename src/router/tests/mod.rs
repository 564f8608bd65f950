//! The router's tests. Expected texts are written by hand from minimega
//! 3.1.0's `writeConfig` and `String` and its tests/router*.want files,
//! never produced by the code under test.

mod clear;
mod config;
mod forms;
mod grammar;
mod summary;

use super::Router;

/// A router (a VM's or a container's: they are alike) with `n` networks.
fn vm(n: usize) -> Router {
    Router::new(n)
}
