//! `tests/exit_info.rs` in the cgroup v2 test guest (tests/guest/run.sh):
//! Debian's 6.1 kernel has no `PIDFD_GET_INFO`, so there `exit_info` must
//! answer `Unsupported` for every reaped process, and the OOM kill happens
//! in a v2 memory cgroup.

mod common;

include!("exit_info/cases.rs");
