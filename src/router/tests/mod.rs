//! The router's tests. Expected texts are written by hand from minimega
//! 3.1.0's `writeConfig` and `String` and its tests/router*.want files,
//! never produced by the code under test.

mod clear;
mod config;
mod forms;
mod grammar;
mod summary;

use super::{Kind, Router};

/// A VM router with `n` networks.
fn vm(n: usize) -> Router {
    Router::new(n, Kind::Vm)
}

/// A container router with `n` networks.
fn container(n: usize) -> Router {
    Router::new(n, Kind::Container)
}
