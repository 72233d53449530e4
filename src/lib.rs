#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! ctrmon (crate docs being written).

pub mod cgroup;
mod error;

pub use error::{Error, Result, Subject};

/// Placeholder until the monitor lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatchId(u64);
impl std::fmt::Display for WatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "watch {}", self.0)
    }
}
