//! Sources of events: one kernel mechanism per file.
//!
//! Each source owns its fd, says what epoll interest it needs, and turns a
//! readiness into at most two [`EventKind`]s. The monitor calls it with its
//! table in hand (locked, or owned by the one thread that waits), so a
//! source never runs caller code and never blocks: every fd here is
//! non-blocking, and a spurious wake-up (another thread got there first)
//! yields nothing.
//!
//! The table keeps a source in two parts: the fd that epoll watches, inline
//! in the slot for the hot kinds (a caller's eventfds, hang-ups, pidfds),
//! and everything else behind one pointer ([`Cold`]; a made eventfd's fd
//! too, shared with its writer), so that a slot stays at 24 bytes and a
//! large table stays in cache.

pub(crate) mod cgroupfs;
pub(crate) mod eventfd;
pub(crate) mod hangup;
mod kernfs;
pub(crate) mod kmsg;
pub(crate) mod memory_events;
pub(crate) mod namespaces;
pub(crate) mod oom_book;
pub(crate) mod oom_v1;
pub(crate) mod oom_victims;
pub(crate) mod pidfd;
pub(crate) mod populated;
pub(crate) mod pressure_v1;
pub(crate) mod psi;
pub(crate) mod sigchld;
pub(crate) mod swap_events;
pub(crate) mod threshold_v1;
mod v1_notify;

use std::num::NonZeroU32;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use rustix::event::epoll::EventFlags;

use crate::event::{EventKind, MemoryReport};
use oom_book::OomBook;

/// The time, read at most once per readiness and only if a source needs it:
/// most events (exits, eventfds) never do, and a clock read is a large part
/// of the cost of dispatching one event.
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
    OomThenRemoved(Box<MemoryReport>),
    /// A report that carries kills, found on a readiness: it takes the slow
    /// way through the monitor (rather than being lent at once), which
    /// names the victims the kernel log shows before it goes out as
    /// [`EventKind::Memory`].
    Kills(Box<MemoryReport>),
    /// Nothing yet; look again later (an OOM waiting for its kill; the
    /// source's `OomBook` holds the time).
    RecheckLater,
    /// SIGCHLD: the monitor scans for orphans (it alone knows which pids
    /// are watched).
    ReapOrphans,
}

impl From<Option<EventKind>> for Outcome {
    #[inline(always)]
    fn from(e: Option<EventKind>) -> Outcome {
        e.map_or(Outcome::Nothing, Outcome::One)
    }
}

/// Which kind of source a slot holds. Kept in the low four bits of the
/// slot's stamp, and so of its key: dispatch learns the kind from the same
/// word that proves the key current, with no tag byte to load. The hot
/// kind is 0, so that telling it apart is one `test` (the stamp is still
/// never zero: generations start at 1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Kind {
    /// An eventfd: a caller's (inline fd), or one the monitor made (shared
    /// with its writer behind the cold pointer).
    EventFd = 0,
    /// An fd watched for hang-up (inline fd).
    Hangup = 1,
    /// A process: its pidfd inline (none for a child watched without
    /// pidfds, `sigchld.rs`); pid and options behind the cold pointer.
    Pid = 2,
    /// Everything else: fd and state behind the cold pointer.
    Cold = 3,
}

impl Kind {
    /// The kind in the low four bits of a stamp (`None`: not a kind).
    #[inline(always)]
    pub(crate) fn from_bits(bits: u32) -> Option<Kind> {
        match bits & 0xf {
            0 => Some(Kind::EventFd),
            1 => Some(Kind::Hangup),
            2 => Some(Kind::Pid),
            3 => Some(Kind::Cold),
            _ => None,
        }
    }

    /// A stamp of generation 1 for this kind, until the table gives the
    /// watch its own.
    pub(crate) fn stamp(self) -> NonZeroU32 {
        NonZeroU32::MIN.saturating_add(15 + self as u32)
    }
}

/// What one watch reads: its fd inline when it is one of the hot kinds, the
/// rest behind one pointer, and the table's stamp. 16 bytes.
pub(crate) struct Source {
    /// The table's stamp for this watch: a generation in the high 28 bits,
    /// the [`Kind`] in the low four. The stamp is never zero (generations
    /// start at 1), which gives the table's entry enum its niche: a slot is
    /// 24 bytes for an 8-byte receiver.
    pub(crate) stamp: NonZeroU32,
    pub(crate) fd: Option<OwnedFd>,
    pub(crate) cold: Option<Box<Cold>>,
}

/// The state of the watches that carry more than an fd. Boxed as a whole
/// (one allocation per watch, none per event); the two largest are boxed
/// again, so that the common ones (a pid, a made eventfd) are small to
/// make and move.
pub(crate) enum Cold {
    Pid(pidfd::PidInfo),
    /// An eventfd the monitor made; its writer shares the open file.
    MadeEventFd(Arc<OwnedFd>),
    OomV1(Box<oom_v1::OomV1Watch>),
    MemoryEvents(Box<memory_events::MemoryEventsWatch>),
    Populated(populated::PopulatedWatch),
    PressureV1(pressure_v1::PressureV1Watch),
    Threshold(threshold_v1::ThresholdWatch),
    Psi(psi::PsiWatch),
    Swap(swap_events::SwapEventsWatch),
    /// The orphan reaper (its SIGCHLD signalfd).
    Orphans(crate::reaper::OrphanReaper),
    /// Nothing: a freed box the monitor keeps for the next made eventfd
    /// (`Monitor::unwatch`'s one-slot stash). Never in a table.
    Spare,
}

impl Source {
    /// A caller's eventfd, or a hang-up fd.
    pub(crate) fn inline(kind: Kind, fd: OwnedFd) -> Source {
        Source {
            stamp: kind.stamp(),
            fd: Some(fd),
            cold: None,
        }
    }

    /// A pidfd and what else its exit needs.
    pub(crate) fn pid(fd: OwnedFd, info: pidfd::PidInfo) -> Source {
        Source {
            stamp: Kind::Pid.stamp(),
            fd: Some(fd),
            cold: Some(Box::new(Cold::Pid(info))),
        }
    }

    /// Our child watched without a pidfd (`sigchld.rs`): no fd at all, so
    /// not in epoll; the SIGCHLD scan finds it in the table.
    pub(crate) fn child(info: pidfd::PidInfo) -> Source {
        Source {
            stamp: Kind::Pid.stamp(),
            fd: None,
            cold: Some(Box::new(Cold::Pid(info))),
        }
    }

    /// A source whose fd lives in its cold part.
    pub(crate) fn cold(cold: Cold) -> Source {
        Source {
            stamp: Kind::Cold.stamp(),
            fd: None,
            cold: Some(Box::new(cold)),
        }
    }

    /// An eventfd the monitor made, which its writer shares; in `spare`,
    /// a freed cold box, when there is one (no allocation then).
    #[inline]
    pub(crate) fn made_eventfd(fd: Arc<OwnedFd>, spare: Option<Box<Cold>>) -> Source {
        let cold = match spare {
            Some(mut boxed) => {
                // A spare holds `Cold::Spare`, which has nothing to drop.
                std::mem::forget(std::mem::replace(&mut *boxed, Cold::MadeEventFd(fd)));
                boxed
            }
            None => Box::new(Cold::MadeEventFd(fd)),
        };
        Source {
            stamp: Kind::EventFd.stamp(),
            fd: None,
            cold: Some(cold),
        }
    }

    /// For a made eventfd's ended watch: its cold box, emptied (to keep for
    /// the next one), and the shared eventfd it held (to drop once the lock
    /// is released: the last reference closes the fd). `None` for any
    /// other source.
    #[inline]
    pub(crate) fn take_spare(&mut self) -> Option<(Box<Cold>, Arc<OwnedFd>)> {
        if self.kind() != Some(Kind::EventFd) || self.fd.is_some() {
            return None;
        }
        let mut boxed = self.cold.take()?;
        match std::mem::replace(&mut *boxed, Cold::Spare) {
            Cold::MadeEventFd(fd) => Some((boxed, fd)),
            other => {
                // Not a made eventfd after all (cannot happen: the kind
                // says so); put it back as it was.
                *boxed = other;
                self.cold = Some(boxed);
                None
            }
        }
    }

    #[inline(always)]
    pub(crate) fn kind(&self) -> Option<Kind> {
        Kind::from_bits(self.stamp.get())
    }

    /// The epoll interest of this source.
    #[inline]
    pub(crate) fn interest(&self) -> EventFlags {
        match (self.kind(), self.cold.as_deref()) {
            (Some(Kind::Pid), _) => pidfd::INTEREST,
            (Some(Kind::Hangup), _) => hangup::INTEREST,
            (Some(Kind::EventFd), _) => eventfd::INTEREST,
            (_, Some(Cold::MemoryEvents(_) | Cold::Populated(_) | Cold::Swap(_))) => {
                kernfs::INTEREST
            }
            (_, Some(Cold::Psi(_))) => psi::INTEREST,
            _ => eventfd::INTEREST,
        }
    }

    /// True for the kinds whose state is all behind the cold pointer.
    #[inline(always)]
    fn is_cold_kind(&self) -> bool {
        self.kind() == Some(Kind::Cold)
    }

    /// Takes the baseline of a polled file, once the fd is registered.
    #[inline]
    pub(crate) fn arm(&mut self) -> crate::Result<()> {
        if !self.is_cold_kind() {
            return Ok(());
        }
        match self.cold.as_deref_mut() {
            Some(Cold::MemoryEvents(w)) => w.arm(),
            Some(Cold::Populated(w)) => w.arm().map(drop),
            Some(Cold::Swap(w)) => w.arm(),
            _ => Ok(()),
        }
    }

    /// Turns a readiness into events, if there are any to report. The hot
    /// kinds are handled here, inline in the dispatch loop; the rest out of
    /// line.
    #[inline(always)]
    pub(crate) fn on_ready(&mut self, flags: EventFlags, clock: &mut Clock) -> Outcome {
        match (self.kind(), &self.fd) {
            (Some(Kind::EventFd), Some(fd)) => eventfd::on_ready(fd).into(),
            (Some(Kind::Hangup), _) => hangup::on_ready(flags).into(),
            _ => self.on_ready_cold(flags, clock),
        }
    }
    #[inline(never)]
    fn on_ready_cold(&mut self, flags: EventFlags, clock: &mut Clock) -> Outcome {
        let Some(cold) = self.cold.as_deref_mut() else {
            return Outcome::Nothing;
        };
        match cold {
            Cold::Pid(info) => match &self.fd {
                Some(fd) => info.on_ready(fd, clock),
                None => Outcome::Nothing,
            },
            Cold::MadeEventFd(fd) => eventfd::on_ready(fd).into(),
            Cold::OomV1(w) => kills_apart(w.check(clock.now(), false)),
            Cold::MemoryEvents(w) => kills_apart(w.check(clock.now(), false)),
            Cold::Populated(w) => w.on_ready(),
            Cold::PressureV1(w) => w.on_ready(),
            Cold::Threshold(w) => w.on_ready(),
            Cold::Psi(w) => w.on_ready(flags),
            Cold::Swap(w) => w.on_ready(),
            Cold::Orphans(_) => Outcome::ReapOrphans,
            Cold::Spare => Outcome::Nothing,
        }
    }

    /// A due re-check (`force`: report whatever is there now, because a
    /// process in the cgroup has exited and its OOM must come first).
    pub(crate) fn recheck(&mut self, now: Instant, force: bool) -> Outcome {
        match self.cold.as_deref_mut() {
            Some(Cold::OomV1(w)) => w.check(now, force),
            Some(Cold::MemoryEvents(w)) => w.check(now, force),
            // A non-child's exit, waiting for its parent to reap it.
            Some(Cold::Pid(info)) => match &self.fd {
                Some(fd) if info.retry.is_some() => info.on_ready(fd, &mut Clock(Some(now))),
                _ => Outcome::Nothing,
            },
            _ => Outcome::Nothing,
        }
    }

    /// When this watch's re-check is due: an OOM waiting for its kill, a
    /// non-child's exit waiting for its parent to reap it.
    pub(crate) fn recheck_at(&mut self) -> Option<Instant> {
        match self.cold.as_deref_mut() {
            Some(Cold::OomV1(w)) => w.book().recheck_at(),
            Some(Cold::MemoryEvents(w)) => w.book().recheck_at(),
            Some(Cold::Pid(info)) => info.recheck_at(),
            _ => None,
        }
    }

    /// A watch on a pollable kernfs file (v2 `memory.events`,
    /// `cgroup.events`, `memory.swap.events`), whose removal kernfs may fail
    /// to signal.
    #[inline]
    pub(crate) fn is_kernfs(&self) -> bool {
        self.is_cold_kind()
            && matches!(
                self.cold.as_deref(),
                Some(Cold::MemoryEvents(_) | Cold::Populated(_) | Cold::Swap(_))
            )
    }

    /// The OOM bookkeeping, for the OOM watches.
    pub(crate) fn oom_book(&mut self) -> Option<&mut OomBook> {
        match self.cold.as_deref_mut() {
            Some(Cold::OomV1(w)) => Some(w.book()),
            Some(Cold::MemoryEvents(w)) => Some(w.book()),
            _ => None,
        }
    }

    /// True for the orphan reaper's watch.
    pub(crate) fn is_orphan_reaper(&self) -> bool {
        matches!(self.cold.as_deref(), Some(Cold::Orphans(_)))
    }

    /// The orphan reaper, for its watch.
    pub(crate) fn orphan_reaper(&mut self) -> Option<&mut crate::reaper::OrphanReaper> {
        match self.cold.as_deref_mut() {
            Some(Cold::Orphans(r)) => Some(r),
            _ => None,
        }
    }

    /// The process's info, to change, for a pidfd watch.
    pub(crate) fn pid_info_mut(&mut self) -> Option<&mut pidfd::PidInfo> {
        match self.cold.as_deref_mut() {
            Some(Cold::Pid(info)) => Some(info),
            _ => None,
        }
    }

    /// The cgroup an OOM watch looks at, and whether its counters include
    /// its descendants' (v2 `memory.events`; v1's `oom_kill` and v2's
    /// `memory.events.local` count the cgroup's own victims only).
    pub(crate) fn oom_dir(&self) -> Option<(&std::path::Path, bool)> {
        match self.cold.as_deref() {
            Some(Cold::OomV1(w)) => Some((w.dir(), false)),
            Some(Cold::MemoryEvents(w)) => Some((&w.dir, w.is_hierarchical())),
            _ => None,
        }
    }

    /// The cgroup of a `populated` watch (`cgroup.events`).
    pub(crate) fn populated_dir(&self) -> Option<&std::path::Path> {
        match self.cold.as_deref() {
            Some(Cold::Populated(w)) => Some(&w.dir),
            _ => None,
        }
    }

    /// The process's info, for a pidfd watch.
    #[inline]
    pub(crate) fn pid_info(&self) -> Option<&pidfd::PidInfo> {
        if self.kind() != Some(Kind::Pid) {
            return None;
        }
        match self.cold.as_deref() {
            Some(Cold::Pid(info)) => Some(info),
            _ => None,
        }
    }

    /// Work owed when the monitor is dropped with the watch still live.
    pub(crate) fn on_monitor_drop(&self) {
        match (self.cold.as_deref(), &self.fd) {
            (Some(Cold::Pid(info)), Some(fd)) => info.reap_if_exited(fd),
            (Some(Cold::Pid(info)), None) if info.reap => sigchld::reap_if_exited(info.pid),
            _ => {}
        }
    }

    /// The fd registered with epoll.
    #[inline]
    pub(crate) fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        if let Some(fd) = &self.fd {
            return Some(fd.as_fd());
        }
        Some(match self.cold.as_deref()? {
            // Inline for this kind; never here.
            Cold::Pid(_) => return None,
            Cold::MadeEventFd(fd) => fd.as_fd(),
            Cold::OomV1(w) => w.efd.as_fd(),
            Cold::MemoryEvents(w) => w.fd.as_fd(),
            Cold::Populated(w) => w.fd.as_fd(),
            Cold::PressureV1(w) => w.efd.as_fd(),
            Cold::Threshold(w) => w.efd.as_fd(),
            Cold::Psi(w) => w.fd.as_fd(),
            Cold::Swap(w) => w.fd.as_fd(),
            Cold::Orphans(r) => r.as_fd(),
            Cold::Spare => return None,
        })
    }
}

/// Sets a report of kills apart from the other OOM outcomes (see
/// [`Outcome::Kills`]).
fn kills_apart(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::One(EventKind::Memory(m)) if m.oom_kill > 0 || m.oom_group_kill > 0 => {
            Outcome::Kills(m)
        }
        other => other,
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
