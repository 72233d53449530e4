//! Watch container processes for exit, and cgroups for out-of-memory and
//! memory pressure, from one epoll loop.
//!
//! ctrmon is what containerd 0.2's `Monitor` should have been, as a library
//! for container runtimes, shims and init systems: one `epoll` instance, a
//! fixed 128-event stack buffer, a slab-indexed receiver table whose keys
//! (slot and generation) travel in the epoll data, and sources that each wrap
//! one kernel mechanism through direct syscalls (`rustix`; the few calls it
//! lacks sit in one private module, the crate's only `unsafe`).
//!
//! - Process exits: pidfds, reaping our children with `waitid(P_PIDFD)`, and
//!   the exit-FIFO hang-up of containerd 0.2's shims.
//! - Out-of-memory: cgroup v1 (an eventfd through `cgroup.event_control`)
//!   and v2 (`memory.events`), reported as counter increases, with a
//!   process's OOM delivered before its exit
//!   ([`Monitor::watch_pid_in`]).
//! - Memory pressure (v1 levels, usage thresholds), v2 `populated`, and PSI
//!   triggers.
//! - Eventfd counters, for anything else that can signal one.
//! - Signals as an fd ([`signal`]) and a safe child setup for supervisors
//!   ([`spawn`]: join a cgroup, die with the parent, unblock signals).
//! - Cgroup discovery: [`cgroup`] finds a process's memory cgroup from
//!   `/proc/<pid>/cgroup` and mountinfo, also inside nested containers.
//!
//! # Example
//!
//! ```
//! use std::process::Command;
//! use std::time::Duration;
//! use ctrmon::{EventKind, ExitStatus, Monitor};
//!
//! // The receiver value can be anything cheap to clone: here, a name.
//! let monitor: Monitor<&str> = Monitor::new()?;
//! let ok = Command::new("true").spawn()?;
//! let killed = Command::new("sleep").arg("60").spawn()?;
//! monitor.watch_pid(ok.id() as i32, "ok")?;
//! monitor.watch_pid(killed.id() as i32, "killed")?;
//! rustix::process::kill_process(
//!     rustix::process::Pid::from_child(&killed),
//!     rustix::process::Signal::KILL,
//! )?;
//!
//! let mut seen = Vec::new();
//! while !monitor.is_empty() {
//!     monitor.wait(Some(Duration::from_secs(10)), |event| {
//!         if let EventKind::Exited(exit) = event.kind {
//!             seen.push((event.receiver, exit.status));
//!         }
//!     })?;
//! }
//! seen.sort_by_key(|(name, _)| *name);
//! assert_eq!(seen, [("killed", ExitStatus::Signal(9)), ("ok", ExitStatus::Code(0))]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Guarantees
//!
//! - Every fd the monitor opens is close-on-exec; fds handed to it are made
//!   so.
//! - Each watch's final event (an exit, a hang-up, a failure) is delivered
//!   exactly once, and hands back the receiver; `unwatch` returns it instead.
//! - An event queued by the kernel for a watch that has since ended is
//!   dropped, even when the table slot was already reused.
//! - No caller code runs while the monitor's lock is held (except
//!   `T::clone`, which must not call back into the monitor).
//! - Dispatch does not allocate.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cgroup;
mod error;
mod monitor;
pub mod pidfd;
pub mod reaper;
pub mod signal;
mod source;
pub mod spawn;
#[allow(unsafe_code)]
mod sys;

pub use cgroup::parse::memory_events::MemoryEvents;
pub use cgroup::parse::psi::{PsiKind, PsiTrigger};
pub use cgroup::parse::swap_events::SwapEvents;
pub use error::{Error, Result, Subject};

/// The README's example, compiled as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
#[doc(hidden)]
pub use monitor::table_slot_size;
pub use monitor::{Event, EventKind, Exit, ExitStatus, Monitor, WatchId};
pub use source::pressure_v1::{PressureLevel, PressureMode};

/// The kernel log: who the OOM killer killed, by pid.
///
/// [`KmsgReader`](kmsg::KmsgReader) reads `/dev/kmsg` from the moment it is
/// opened, one record at a time, and says how many records were lost;
/// [`VictimBook`](kmsg::VictimBook) keeps the victims it names until their
/// exits claim them. Both work on their own; see the README for what the
/// monitor does with them.
pub mod kmsg {
    pub use crate::source::kmsg::{KmsgReader, Next, Unavailable, PATH};
    pub use crate::source::oom_victims::{Victim, VictimBook};
}
