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
//! - Process exits: pidfds, reaping our children with `waitid(P_PIDFD)`,
//!   another's process's status from its zombie as it exits (any kernel)
//!   or from its pidfd once its parent has reaped it (Linux 6.15+), pidfds handed over by a runtime ([`pidfd`]), and the
//!   exit-FIFO hang-up of containerd 0.2's shims, linked to its process.
//! - Shims and inits: a subreaper that reaps every orphan and never a
//!   watched child's status ([`reaper`], [`Orphans`](crate::watch::Orphans)).
//! - Out-of-memory: cgroup v1 (an eventfd through `cgroup.event_control`)
//!   and v2 (`memory.events`), reported as counter increases, with a
//!   process's OOM delivered before its exit
//!   ([`Process::oom_watch`](crate::watch::Process::oom_watch)).
//! - Memory pressure (v1 levels, usage thresholds), v2 `populated`, and PSI
//!   triggers.
//! - Eventfd counters, for anything else that can signal one.
//! - Signals as an fd ([`signal`]) and a safe child setup for supervisors
//!   ([`spawn`]: join a cgroup, die with the parent, unblock signals).
//! - Cgroup discovery: [`cgroup`] finds a process's memory cgroup from
//!   `/proc/<pid>/cgroup` and mountinfo, also inside nested containers.
//!
//! # Which entry point
//!
//! | you have | use |
//! | --- | --- |
//! | one thread that runs a blocking loop (the common case) | [`Monitor::wait_mut`]: no lock, no atomic read-modify-write per event, receivers lent in place, [`Watches`] to add and remove from the handler |
//! | several threads that wait, add watches, wake or shut down during a wait | [`Monitor::wait`] on a monitor in an `Arc` |
//! | a tokio runtime | `ctrmon::tokio::AsyncMonitor` (the `tokio` feature): cancel-safe `next`, `wait`, `wait_mut` and a `Stream` |
//! | another event loop (mio, glib, your own epoll) | either wait with a zero timeout, until it returns 0, each time the monitor's fd ([`AsFd`](std::os::fd::AsFd)) turns readable (see [`Monitor`]; `examples/nested_mio.rs`) |
//! | producers in other threads, with `wait_mut` | [`NewEventfd`](crate::watch::NewEventfd) and its [`EventfdWriter`] |
//!
//! Both waits deliver the same events with the same guarantees. A non-final
//! event lends the receiver ([`Receiver::Lent`]); the final one hands it
//! back ([`Receiver::Owned`]): the receiver type needs neither `Clone` nor
//! `Sync`.
//!
//! # Example
//!
//! ```
//! use std::process::Command;
//! use std::time::Duration;
//! use ctrmon::watch::Process;
//! use ctrmon::{EventKind, ExitStatus, Monitor};
//!
//! // The receiver value can be anything: here, a name.
//! let mut monitor: Monitor<&str> = Monitor::new()?;
//! let ok = Command::new("true").spawn()?;
//! let killed = Command::new("sleep").arg("60").spawn()?;
//! monitor.watch(Process::pid(ok.id() as i32), "ok")?;
//! monitor.watch(Process::pid(killed.id() as i32), "killed")?;
//! rustix::process::kill_process(
//!     rustix::process::Pid::from_child(&killed),
//!     rustix::process::Signal::KILL,
//! )?;
//!
//! let mut seen = Vec::new();
//! while !monitor.is_empty() {
//!     monitor.wait_mut(Some(Duration::from_secs(10)), |event, _watches| {
//!         if let EventKind::Exited(exit) = event.kind {
//!             seen.push((*event.receiver, exit.status));
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
//! - Each watch's final event (an exit, a hang-up, a failure, `Unwatched`)
//!   is delivered exactly once, and hands back the receiver; `unwatch`
//!   returns it instead (or, while the receiver is lent to a handler, ends
//!   the watch and lets its `Unwatched` event hand it back).
//! - An event queued by the kernel for a watch that has since ended is
//!   dropped, even when the table slot was already reused.
//! - No caller code runs while the monitor's lock is held; receivers are
//!   never cloned.
//! - Dispatch does not allocate.

#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cgroup;
mod error;
mod event;
mod monitor;
pub mod pidfd;
pub mod reaper;
pub mod signal;
mod source;
pub mod spawn;
#[allow(unsafe_code)]
mod sys;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
pub mod watch;

pub use cgroup::parse::memory_events::MemoryEvents;
pub use cgroup::parse::psi::{PsiKind, PsiTrigger};
pub use cgroup::parse::swap_events::SwapEvents;
pub use error::{Error, Result, Subject};

/// The README's example, compiled as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
pub use event::{
    Comm, Event, EventKind, Exit, ExitMode, ExitStatus, KmsgMode, MemoryReport, OomLog, OomVictim,
    Receiver, WatchId, WhyUnknown,
};
#[doc(hidden)]
pub use monitor::table_slot_size;
pub use monitor::{Builder, Monitor, Watches};
pub use source::eventfd::EventfdWriter;
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
    pub use crate::source::oom_victims::{Clocks, StartTime, Victim, VictimBook, MAX_AGE};
}
