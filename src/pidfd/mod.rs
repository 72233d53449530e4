//! pidfds beyond watching them: the exit status of a process that is not
//! ours ([`exit_info`]), pidfds sent by a container runtime over a unix
//! socket ([`PidfdListener`], [`receive_pidfd`]), telling a pidfd from
//! other fds ([`is_pidfd`]) and which process it names ([`pid_of`]).
//!
//! A pidfd names one process for good, where a pid number may come to name
//! another process once the first is reaped: a runtime that hands over a
//! pidfd (runc's `--pidfd-socket`) closes the window in which a pid read
//! from a pid file could be reused before it is watched.

pub(crate) mod check;
mod exit_info;
mod receive;
pub(crate) mod zombie;

pub use check::{is_pidfd, parse_fdinfo_pid, pid_of};
pub use exit_info::{decode_wait_status, exit_info, ExitInfo};
pub use receive::{receive_pidfd, PidfdConnection, PidfdListener, ReceivedPidfd};
