//! The systemd edge: readiness and watchdog notifications, logging to the
//! journal, and (for VMs) transient units. Each part degrades to a no-op or
//! a plain alternative when systemd is not there.

pub mod limits;
pub mod logging;
pub mod machines;
pub mod notify;
pub mod units;
