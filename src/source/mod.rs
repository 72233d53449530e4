//! Sources of events: one kernel mechanism per file.
//!
//! Each source owns its fd, says what epoll interest it needs, and turns a
//! readiness into at most two [`EventKind`]s. The monitor calls it with its
//! table locked, so a source never runs caller code and never blocks: every
//! fd here is non-blocking, and a spurious wake-up (another thread got there
//! first) yields nothing.

pub(crate) mod cgroupfs;
pub(crate) mod eventfd;
pub(crate) mod hangup;
mod kernfs;
pub(crate) mod kmsg;
pub(crate) mod memory_events;
mod oom_book;
pub(crate) mod oom_v1;
pub(crate) mod oom_victims;
pub(crate) mod pidfd;
pub(crate) mod populated;
pub(crate) mod pressure_v1;
pub(crate) mod psi;
pub(crate) mod swap_events;
pub(crate) mod threshold_v1;
mod v1_notify;

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use rustix::event::epoll::EventFlags;

use crate::cgroup::parse::memory_events::MemoryEvents;
use crate::monitor::EventKind;
use oom_book::OomBook;

/// The time, read at most once per dispatch pass and only if a source needs
/// it: most events (exits, eventfds) never do, and a clock read is a large
/// part of the cost of dispatching one event.
#[derive(Default)]
pub(crate) struct Clock(Option<Instant>);

impl Clock {
    pub(crate) fn now(&mut self) -> Instant {
        *self.0.get_or_insert_with(Instant::now)
    }
}

/// What one look at a source produced.
pub(crate) enum Outcome {
    Nothing,
    One(EventKind),
    /// An OOM, then the removal it preceded (v1: a count of 2 or more on an
    /// eventfd whose cgroup is gone).
    OomThenRemoved(Box<MemoryEvents>),
    /// Nothing yet; look again later (an OOM waiting for its kill; the
    /// source's `OomBook` holds the time).
    RecheckLater,
}

impl From<Option<EventKind>> for Outcome {
    #[inline]
    fn from(e: Option<EventKind>) -> Outcome {
        e.map_or(Outcome::Nothing, Outcome::One)
    }
}

/// Everything the monitor can watch.
///
/// `repr(u8)` gives the enum a plain tag byte: with the default layout the
/// tag hides in a niche of the fds, and decoding it cost ten instructions
/// per dispatched event.
#[repr(u8)]
pub(crate) enum Source {
    // The many and hot kinds inline; the cgroup watches, which carry paths
    // and counters, boxed, so that a table slot stays small (one allocation
    // per cgroup watch, none per event).
    Pid(pidfd::PidWatch),
    Hangup(hangup::HangupWatch),
    EventFd(eventfd::CounterWatch),
    OomV1(Box<oom_v1::OomV1Watch>),
    MemoryEvents(Box<memory_events::MemoryEventsWatch>),
    Populated(Box<populated::PopulatedWatch>),
    PressureV1(Box<pressure_v1::PressureV1Watch>),
    Threshold(Box<threshold_v1::ThresholdWatch>),
    Psi(Box<psi::PsiWatch>),
    Swap(Box<swap_events::SwapEventsWatch>),
}

impl Source {
    pub(crate) fn interest(&self) -> EventFlags {
        match self {
            Source::Pid(_) => pidfd::INTEREST,
            Source::Hangup(_) => hangup::INTEREST,
            Source::EventFd(_)
            | Source::OomV1(_)
            | Source::PressureV1(_)
            | Source::Threshold(_) => eventfd::INTEREST,
            Source::MemoryEvents(_) | Source::Populated(_) | Source::Swap(_) => kernfs::INTEREST,
            Source::Psi(_) => psi::INTEREST,
        }
    }

    /// Takes the baseline of a polled file, once the fd is registered.
    pub(crate) fn arm(&mut self) -> crate::Result<()> {
        match self {
            Source::MemoryEvents(w) => w.arm(),
            Source::Populated(w) => w.arm().map(drop),
            Source::Swap(w) => w.arm(),
            _ => Ok(()),
        }
    }

    /// Turns a readiness into events, if there are any to report.
    #[inline]
    pub(crate) fn on_ready(&mut self, flags: EventFlags, clock: &mut Clock) -> Outcome {
        match self {
            Source::Pid(w) => w.on_ready().into(),
            Source::Hangup(_) => hangup::on_ready(flags).into(),
            Source::EventFd(w) => w.on_ready().into(),
            Source::OomV1(w) => w.check(clock.now(), false),
            Source::MemoryEvents(w) => w.check(clock.now(), false),
            Source::Populated(w) => w.on_ready(),
            Source::PressureV1(w) => w.on_ready(),
            Source::Threshold(w) => w.on_ready(),
            Source::Psi(w) => w.on_ready(flags),
            Source::Swap(w) => w.on_ready(),
        }
    }

    /// A due re-check (`force`: report whatever is there now, because a
    /// process in the cgroup has exited and its OOM must come first).
    pub(crate) fn recheck(&mut self, now: Instant, force: bool) -> Outcome {
        match self {
            Source::OomV1(w) => w.check(now, force),
            Source::MemoryEvents(w) => w.check(now, force),
            _ => Outcome::Nothing,
        }
    }

    /// A watch on a pollable kernfs file (v2 `memory.events`,
    /// `cgroup.events`, `memory.swap.events`), whose removal kernfs may fail
    /// to signal.
    pub(crate) fn is_kernfs(&self) -> bool {
        matches!(
            self,
            Source::MemoryEvents(_) | Source::Populated(_) | Source::Swap(_)
        )
    }

    /// The OOM bookkeeping, for the OOM watches.
    pub(crate) fn oom_book(&mut self) -> Option<&mut OomBook> {
        match self {
            Source::OomV1(w) => Some(w.book()),
            Source::MemoryEvents(w) => Some(w.book()),
            _ => None,
        }
    }

    /// Work owed when the monitor is dropped with the watch still live.
    pub(crate) fn on_monitor_drop(&self) {
        if let Source::Pid(w) = self {
            w.reap_if_exited();
        }
    }
}

impl AsFd for Source {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::Pid(w) => w.fd.as_fd(),
            Source::Hangup(w) => w.fd.as_fd(),
            Source::EventFd(w) => w.fd.as_fd(),
            Source::OomV1(w) => w.efd.as_fd(),
            Source::MemoryEvents(w) => w.fd.as_fd(),
            Source::Populated(w) => w.fd.as_fd(),
            Source::PressureV1(w) => w.efd.as_fd(),
            Source::Threshold(w) => w.efd.as_fd(),
            Source::Psi(w) => w.fd.as_fd(),
            Source::Swap(w) => w.fd.as_fd(),
        }
    }
}

/// Makes a caller-supplied fd safe to own: close-on-exec (so it cannot leak
/// into a container's process) and, where we read it, non-blocking (so a
/// wake-up another thread already consumed cannot block the loop).
pub(crate) fn adopt_fd(fd: BorrowedFd<'_>, nonblocking: bool) -> rustix::io::Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    use rustix::io::{fcntl_getfd, fcntl_setfd, FdFlags};
    let fdflags = fcntl_getfd(fd)?;
    if !fdflags.contains(FdFlags::CLOEXEC) {
        fcntl_setfd(fd, fdflags | FdFlags::CLOEXEC)?;
    }
    if nonblocking {
        let fl = fcntl_getfl(fd)?;
        if !fl.contains(OFlags::NONBLOCK) {
            fcntl_setfl(fd, fl | OFlags::NONBLOCK)?;
        }
    }
    Ok(())
}
