//! The event vocabulary: what a watch is called ([`WatchId`]), what can
//! happen to it ([`EventKind`], [`Exit`]), and what a handler receives
//! ([`Event`], its [`Receiver`]).
//!
//! It sits at the crate root, below both the sources (which produce
//! `EventKind`s) and the monitor (which delivers them), so that the
//! dependency runs one way: monitor → sources → events.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;

use crate::cgroup::parse::memory_events::MemoryEvents;
use crate::cgroup::parse::swap_events::SwapEvents;
use crate::PressureLevel;

/// Identifies one watch for as long as it lives, and never another one.
///
/// The id is the receiver-table key that also travels in the epoll event's
/// data: a slot index and a generation. Once a watch ends, its id is dead for
/// good: a new watch that reuses the slot gets a new generation, so an old id
/// can neither see the new watch's events nor unwatch it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchId(pub(crate) u64);

impl WatchId {
    /// The raw 64-bit value (the slot's stamp, a generation and the kind of
    /// source, in the high half; the slot in the low). Useful as a log key;
    /// it is unique for the monitor's lifetime, barring 2^28 watches made
    /// while the old id is still held.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for WatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WatchId({:#x})", self.0)
    }
}

impl fmt::Display for WatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "watch {}.{}", self.0 & 0xffff_ffff, self.0 >> 36)
    }
}

/// How a watched process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
    /// It exited, but it was not our child (or someone else reaped it
    /// first), and the kernel could not tell us how: see
    /// [`Exit::unknown`].
    Unknown,
}

impl ExitStatus {
    /// The shell's convention: the code, or 128 + the signal.
    pub fn shell_code(self) -> Option<i32> {
        match self {
            ExitStatus::Code(c) => Some(c),
            ExitStatus::Signal(s) => Some(128 + s),
            ExitStatus::Unknown => None,
        }
    }

    /// What `waitid` said. A status that is neither an exit nor a
    /// terminating signal cannot come with `WEXITED` alone: `Unknown`.
    pub(crate) fn from_waitid(st: &rustix::process::WaitIdStatus) -> Self {
        if let Some(code) = st.exit_status() {
            ExitStatus::Code(code)
        } else if let Some(sig) = st.terminating_signal() {
            ExitStatus::Signal(sig)
        } else {
            ExitStatus::Unknown
        }
    }
}

/// A watched process has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The pid that was watched (0 for a pidfd watched with
    /// [`Process::pidfd`](crate::watch::Process::pidfd) after its
    /// process had been reaped).
    pub pid: i32,
    /// Its exit status, if we could learn it.
    pub status: ExitStatus,
    /// Whether the process was killed by the OOM killer.
    ///
    /// With the kernel log ([`KmsgMode::On`](crate::KmsgMode::On), the
    /// default where `/dev/kmsg` can be read): exactly when the kernel
    /// logged `Killed process <pid>` for this pid, with no time window and
    /// whatever the watch; a `SIGKILL` from anyone else is not an OOM kill.
    /// If log records were lost (overwritten before they were read) around
    /// the kill, the counter rule below decides for it, and the OOM event
    /// says so ([`OomLog::records_lost`]).
    ///
    /// Without it (the counter rule): the process was watched with
    /// [`Process::oom_watch`](crate::watch::Process::oom_watch), its cgroup's
    /// kill counter rose for a kill not yet attributed to another exit, while
    /// that OOM was still in progress or within three seconds of it, and it
    /// died of `SIGKILL` — or, for a process that is not our child, whose
    /// status is [`ExitStatus::Unknown`], it exited just then: the kernel
    /// gives us no better evidence for another's process.
    pub oom_killed: bool,
    /// Whether the process was reaped by the monitor (it was our child and the
    /// watch asked for reaping). When false and the process is our child, it
    /// is still a zombie waiting for the caller's `wait`.
    pub reaped: bool,
    /// Why [`status`](Self::status) is [`ExitStatus::Unknown`] (`None` when
    /// it is known).
    pub unknown: Option<WhyUnknown>,
}

/// Why a process's exit status could not be learnt.
///
/// Our own child is reaped with `waitid`, which gives its status. Another's
/// process (or our child reaped by someone else) is read while it is a
/// zombie, from `/proc/<pid>/stat` (its `exit_code`, with ptrace read
/// access), which the pidfd then confirms was still that process; if its
/// parent reaped it first, the pidfd is asked (`PIDFD_GET_INFO` with
/// `PIDFD_INFO_EXIT`, Linux 6.15+), which gives the status once the
/// process's parent has reaped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WhyUnknown {
    /// Its parent reaped it before its zombie could be read (or `/proc` is
    /// another pid namespace's), and the kernel keeps no exit status for
    /// pidfds (before Linux 6.15), or the process is outside this
    /// process's pid namespace.
    NoExitInfo,
    /// The process's parent had not reaped it (it stayed a zombie) within
    /// the time the monitor waits for that, about two seconds, and its
    /// zombie's status could not be read.
    NotReaped,
    /// Asking the kernel failed (the error is not kept; this is rare).
    Failed,
    /// Our child, watched without a pidfd
    /// ([`ExitMode::SigchldFallback`]), was reaped by something else in this
    /// process (a `waitpid(-1)` loop, `Child::wait`), which took its status.
    ReapedElsewhere,
    /// Its zombie's status is hidden from us (no ptrace read access: not
    /// root, and the process is another user's or changed credentials),
    /// and the kernel keeps no exit status for pidfds (before Linux 6.15).
    NoAccess,
}

impl WhyUnknown {
    /// A sentence for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            WhyUnknown::NoExitInfo => {
                "not our child, its parent reaped it before its zombie was read, and this \
                 kernel gives exit statuses only to the parent (PIDFD_INFO_EXIT needs Linux 6.15)"
            }
            WhyUnknown::NotReaped => {
                "not our child, its zombie's status could not be read, and its parent did \
                 not reap it within 2 s"
            }
            WhyUnknown::Failed => "not our child, and asking the kernel for its status failed",
            WhyUnknown::ReapedElsewhere => {
                "our child, watched without a pidfd, was reaped by something else in this \
                 process, which took its status"
            }
            WhyUnknown::NoAccess => {
                "not our child, its zombie's status in /proc/<pid>/stat needs ptrace read \
                 access (root or its own user), and this kernel gives exit statuses only to \
                 the parent (PIDFD_INFO_EXIT needs Linux 6.15)"
            }
        }
    }
}

impl fmt::Display for WhyUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A memory cgroup's counters that rose, and, for an OOM kill the kernel
/// logged in `/dev/kmsg`, who was killed and why.
///
/// Derefs to the counters, so `report.oom_kill` reads as before. What the
/// log said ([`OomLog`]) sits behind a second box, allocated only for an
/// event the log had something to say about (kills are rare), so that a
/// report without it stays one small allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// The increase of each counter since the last report.
    pub counters: MemoryEvents,
    // Boxed apart: most reports have nothing from the log.
    log: Option<Box<OomLog>>,
}

/// What the kernel log said about the kills of one [`MemoryReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OomLog {
    /// The processes the kernel logged as killed in this cgroup (or in a
    /// cgroup below it, for a hierarchical watch) since the last report.
    pub victims: Vec<OomVictim>,
    /// The cgroup whose limit fired, relative to the root of its hierarchy
    /// (`/parent` for a kill in `/parent/child` caused by the parent's
    /// limit), when the kernel logged it: its `oom-kill:` context line is
    /// rate-limited, the victim line is not.
    pub oom_memcg: Option<PathBuf>,
    /// Kernel log records were lost (overwritten before the monitor read
    /// them) around this OOM: a kill here may have no victim listed, and the
    /// exits of its victims are judged by the counter rule instead (see
    /// [`Exit::oom_killed`]).
    pub records_lost: bool,
}

impl MemoryReport {
    /// A report of these counters, with nothing from the log.
    pub fn new(counters: MemoryEvents) -> MemoryReport {
        MemoryReport {
            counters,
            log: None,
        }
    }

    /// What the kernel log said, when the monitor reads it
    /// ([`KmsgMode::On`]) and it named a victim or lost records.
    pub fn log(&self) -> Option<&OomLog> {
        self.log.as_deref()
    }

    /// The victims the kernel log named (empty without it).
    pub fn victims(&self) -> &[OomVictim] {
        self.log().map_or(&[], |l| &l.victims)
    }

    /// The cgroup whose limit fired, when the kernel logged it.
    pub fn oom_memcg(&self) -> Option<&std::path::Path> {
        self.log()?.oom_memcg.as_deref()
    }

    /// Kernel log records were lost around this OOM (see
    /// [`OomLog::records_lost`]).
    pub fn records_lost(&self) -> bool {
        self.log().is_some_and(|l| l.records_lost)
    }

    pub(crate) fn set_log(&mut self, log: OomLog) {
        let empty = log.victims.is_empty() && log.oom_memcg.is_none() && !log.records_lost;
        self.log = (!empty).then(|| Box::new(log));
    }
}

impl Deref for MemoryReport {
    type Target = MemoryEvents;
    fn deref(&self) -> &MemoryEvents {
        &self.counters
    }
}

/// A process's name (`comm`), as the kernel logged it: bytes, not
/// necessarily UTF-8, that a process can set to anything
/// (`prctl(PR_SET_NAME)`). It prints as text: valid UTF-8 as it is, with
/// control characters, backslashes and invalid bytes as `\xNN`, as the
/// kernel log escapes them, so a printed name never spans lines or
/// fakes a terminal sequence.
///
/// ```
/// let comm = ctrmon::Comm::from(&b"tail\x1b[2J"[..]);
/// assert_eq!(comm.to_string(), "tail\\x1b[2J");
/// assert_eq!(comm, b"tail\x1b[2J");
/// assert_eq!(format!("{comm:?}"), "\"tail\\x1b[2J\"");
/// let odd = ctrmon::Comm::from(&b"\xffa\\b\xc3\xa9\xe2\x82"[..]);
/// assert_eq!(odd.to_string(), "\\xffa\\x5cb\u{e9}\\xe2\\x82");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Comm(Vec<u8>);

impl Comm {
    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Comm {
    fn from(v: Vec<u8>) -> Comm {
        Comm(v)
    }
}

impl From<&[u8]> for Comm {
    fn from(v: &[u8]) -> Comm {
        Comm(v.to_vec())
    }
}

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let escape = |f: &mut fmt::Formatter<'_>, bytes: &[u8]| {
            bytes.iter().try_for_each(|b| write!(f, "\\x{b:02x}"))
        };
        // `<[u8]>::utf8_chunks` needs Rust 1.79; this is its loop.
        let mut rest = &self.0[..];
        while !rest.is_empty() {
            let (valid, bad) = match std::str::from_utf8(rest) {
                Ok(all) => (all, 0),
                Err(e) => {
                    let (ok, _) = rest.split_at(e.valid_up_to());
                    let bad = e.error_len().unwrap_or(rest.len() - ok.len());
                    (std::str::from_utf8(ok).unwrap_or_default(), bad)
                }
            };
            for c in valid.chars() {
                if c.is_control() || c == '\\' {
                    let mut b = [0u8; 4];
                    escape(f, c.encode_utf8(&mut b).as_bytes())?;
                } else {
                    f.write_char(c)?;
                }
            }
            let (_, after) = rest.split_at(valid.len());
            let (invalid, after) = after.split_at(bad);
            escape(f, invalid)?;
            rest = after;
        }
        Ok(())
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl PartialEq<[u8]> for Comm {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl PartialEq<&[u8]> for Comm {
    fn eq(&self, other: &&[u8]) -> bool {
        self.0 == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Comm {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.0 == other[..]
    }
}

impl PartialEq<&str> for Comm {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// A process the OOM killer killed, as the kernel logged it
/// (`Killed process <pid> (<comm>)`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OomVictim {
    /// Its pid. The kernel logs pids of the initial pid namespace, and a
    /// monitor in any other does not read the log
    /// ([`KmsgMode::OtherPidNamespace`]).
    pub pid: i32,
    /// Its name (`comm`, at most 15 bytes), unescaped; prints as text.
    pub comm: Comm,
    /// The cgroup it lived in, relative to the root of its hierarchy, when
    /// known: from the log's context line, else from `/proc/<pid>/cgroup`
    /// read when the log was, from the victim's own process (checked by its
    /// start time) and only in the initial cgroup namespace. An exiting
    /// victim shows the root there on v1, which counts as unknown.
    pub cgroup: Option<PathBuf>,
}

/// Which way the monitor learns who the OOM killer killed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KmsgMode {
    /// The monitor reads `/dev/kmsg`: exits are marked
    /// [`oom_killed`](Exit::oom_killed) by the victim's pid.
    On,
    /// The kernel log could not be opened (no `/dev/kmsg`, as in many
    /// containers; neither root nor `CAP_SYSLOG`): the counter rule is used.
    Unavailable(crate::kmsg::Unavailable),
    /// The monitor runs in a pid namespace other than the initial one: the
    /// log names victims by their pids in the initial namespace, which are
    /// not this process's, so the log is not read and the counter rule is
    /// used.
    OtherPidNamespace,
    /// Turned off by the caller: the counter rule is used.
    Off,
}

/// How the monitor learns that a watched process exited
/// ([`Monitor::exit_mode`](crate::Monitor::exit_mode)), decided once, when
/// the monitor is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitMode {
    /// Through pidfds: any process can be watched, our children are reaped
    /// through their pidfds.
    Pidfd,
    /// `pidfd_open` was refused with `errno` (`EPERM` from a container's
    /// seccomp filter, `EACCES` from an old SELinux policy, `ENOSYS` before
    /// Linux 5.3): our own children are watched through SIGCHLD (a
    /// signalfd) and `waitid(P_PID)`, with the same events; another's
    /// process cannot be watched (the error names the pid, the call and
    /// the errno), and SIGCHLD must be blocked in every thread
    /// ([`block_sigchld`](crate::reaper::block_sigchld)). Pidfds the caller
    /// already holds ([`Process::pidfd`](crate::watch::Process::pidfd)) are
    /// still watched through epoll.
    SigchldFallback {
        /// The errno `pidfd_open` failed with.
        errno: i32,
    },
}

impl fmt::Display for ExitMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitMode::Pidfd => f.write_str("exits through pidfds"),
            ExitMode::SigchldFallback { errno } => write!(
                f,
                "pidfd_open is refused here ({}: {}); watching our own children through \
                 SIGCHLD and waitid instead, and no other process",
                crate::source::sigchld::errno_name(*errno),
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

/// What happened to a watched source.
#[derive(Debug)]
#[non_exhaustive]
pub enum EventKind {
    /// A process watched with [`Process`](crate::watch::Process)
    /// exited. Ends the watch.
    Exited(Exit),
    /// An fd watched with [`Hangup`](crate::watch::Hangup)
    /// hung up (`EPOLLHUP`) or reported an error (`EPOLLERR`): for an exit
    /// FIFO, the last writer is gone. Ends the watch.
    HungUp,
    /// An eventfd watched with
    /// [`Eventfd`](crate::watch::Eventfd) was signalled;
    /// `count` is the counter value the read drained. The watch goes on.
    Signaled {
        /// The value read from the eventfd (the sum of the writes since the
        /// last read).
        count: u64,
    },
    /// A memory cgroup's event counters rose: the increase of each counter
    /// since the last report (or since the watch was armed). An OOM when
    /// [`MemoryEvents::any_oom`] is true; on v2 also `max` and `high`.
    /// On v1, `oom` counts OOM notifications and `oom_kill` comes from
    /// `memory.oom_control`. With the kernel log, an event that carries
    /// kills also names the victims the log showed ([`MemoryReport`]
    /// derefs to the counters). The watch goes on. (Boxed to keep every
    /// event small; these are rare.)
    Memory(Box<MemoryReport>),
    /// A v2 memory cgroup's swap counters (`memory.swap.events`) rose: the
    /// increase of each since the last report. `max` and `fail` rising
    /// together means swap-outs were refused at `memory.swap.max`. The
    /// watch goes on. (Boxed, as `Memory`.)
    Swap(Box<SwapEvents>),
    /// The watched cgroup was removed. Ends the watch.
    Removed,
    /// A v2 cgroup's `populated` flag changed (false: its last process is
    /// gone). The watch goes on.
    Populated(bool),
    /// A v1 memory pressure notification at this level. Expect many per
    /// episode. The watch goes on.
    Pressure(PressureLevel),
    /// A v1 usage threshold was crossed. The watch goes on.
    Threshold {
        /// `memory.usage_in_bytes` (or the memsw one) read right after the
        /// crossing; near the threshold it may already be back across.
        usage: u64,
        /// Which side the crossing went to: true for upward. Tracked from
        /// the kernel's count of crossings, which alternate.
        above: bool,
    },
    /// A PSI trigger fired: tasks stalled for longer than its threshold
    /// within its window. The watch goes on.
    Psi,
    /// Reading or reaping the source failed. Ends the watch, so that a broken
    /// source cannot make the loop spin; the error names the fd or pid.
    Failed(crate::Error),
    /// A child of this process that nobody watched was reaped by the watch
    /// from [`Orphans`](crate::watch::Orphans): an
    /// orphan re-parented to this subreaper (or PID 1), or a child whose
    /// watch had ended. The watch goes on.
    Orphan(crate::reaper::Orphan),
    /// The watch was ended by `unwatch` while its receiver was lent to a
    /// handler (for this very event's watch, or by another thread during a
    /// delivery), so `unwatch` could not hand the receiver back: it comes
    /// back here instead, right after that handler returns. Ends the watch.
    Unwatched,
}

impl EventKind {
    /// True when this event ends its watch (the receiver is handed back).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            EventKind::Exited(_)
                | EventKind::HungUp
                | EventKind::Removed
                | EventKind::Failed(_)
                | EventKind::Unwatched
        )
    }

    /// `Populated(false)`: resolved off the hot path, after the OOM watch of
    /// the same cgroup reported what it holds.
    #[inline]
    pub(crate) fn is_emptied(&self) -> bool {
        matches!(self, EventKind::Populated(false))
    }
}

/// One delivered event, with the receiver value that was registered with the
/// watch.
///
/// For an event that ends the watch ([`is_final`](Self::is_final)) the
/// receiver is the value itself, handed back ([`Receiver::Owned`]). For any
/// other event it is lent ([`Receiver::Lent`]): the handler may read and
/// change it in place, and it goes back into the monitor's table when the
/// handler returns. Nothing is cloned, so `T` can be anything (a
/// `oneshot::Sender`, a `Box<dyn FnMut>`...).
///
/// `Event` derefs nothing itself; `event.receiver` derefs to `T`.
#[derive(Debug)]
pub struct Event<'a, T> {
    /// The watch this event belongs to.
    pub id: WatchId,
    /// What happened.
    pub kind: EventKind,
    /// The caller's receiver value for this watch: lent, or handed back.
    pub receiver: Receiver<'a, T>,
}

impl<'a, T> Event<'a, T> {
    /// True when the watch ended with this event.
    pub fn is_final(&self) -> bool {
        self.kind.is_final()
    }

    /// The receiver, when this event handed it back (a final event).
    pub fn into_receiver(self) -> Option<T> {
        self.receiver.into_owned()
    }

    /// A copy of the event that does not borrow from the monitor: a lent
    /// receiver is cloned (a final one is moved). For tests and for
    /// collecting events; a handler that only reads the receiver needs none
    /// of this.
    pub fn cloned(self) -> Event<'static, T>
    where
        T: Clone,
    {
        Event {
            id: self.id,
            kind: self.kind,
            receiver: Receiver::Owned(match self.receiver {
                Receiver::Lent(r) => r.clone(),
                Receiver::Owned(r) => r,
            }),
        }
    }
}

/// An event's receiver value: lent for the duration of the handler, or
/// handed back for good. Derefs to `T` either way.
#[derive(Debug)]
pub enum Receiver<'a, T> {
    /// The watch goes on; the value stays in the monitor.
    Lent(&'a mut T),
    /// The watch has ended; the value is the caller's again.
    Owned(T),
}

impl<'a, T> Receiver<'a, T> {
    /// The value, if it was handed back.
    pub fn into_owned(self) -> Option<T> {
        match self {
            Receiver::Lent(_) => None,
            Receiver::Owned(t) => Some(t),
        }
    }

    /// True when the value is the caller's again (the watch ended).
    pub fn is_owned(&self) -> bool {
        matches!(self, Receiver::Owned(_))
    }
}

impl<T> Deref for Receiver<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match self {
            Receiver::Lent(r) => r,
            Receiver::Owned(r) => r,
        }
    }
}

impl<T> DerefMut for Receiver<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        match self {
            Receiver::Lent(r) => r,
            Receiver::Owned(r) => r,
        }
    }
}

impl<T: fmt::Display> fmt::Display for Receiver<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        T::fmt(self, f)
    }
}

impl<T: PartialEq> PartialEq<T> for Receiver<'_, T> {
    fn eq(&self, other: &T) -> bool {
        **self == *other
    }
}
