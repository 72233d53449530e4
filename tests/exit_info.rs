//! Exit statuses of processes that are not ours, from their pidfds
//! (`PIDFD_GET_INFO` with `PIDFD_INFO_EXIT`, Linux 6.15+).
//!
//! Each process is a grandchild: an intermediate `sh` starts it in the
//! background, prints its pid, and reaps it with `wait`; the test opens a
//! pidfd for the grandchild before letting it go on (a line on the
//! intermediate's stdin, which the grandchild reads from fd 3), so the
//! status can only come from the kernel, never from our own `waitid`.
//!
//! Also run in the v2 test guest (`tests/guest_exit_info.rs`), whose 6.1
//! kernel has no `PIDFD_GET_INFO`: there every answer must be `Unsupported`.

mod common;

include!("exit_info/cases.rs");
