//! Process exits: by pid or pidfd, the exit FIFO of containerd 0.2's
//! shims, any fd's hang-up, and the orphans a subreaper inherits.

use std::os::fd::OwnedFd;

use super::{on, sealed, watchable, Watchable};
use crate::{Result, WatchId};

/// A process, watched for its exit: [`EventKind::Exited`](crate::EventKind::Exited).
///
/// Our child is reaped and its exit code or signal reported. A process
/// that is not our child is reported as soon as it exits, with the status
/// read from its zombie (`/proc/<pid>/stat`, which needs ptrace read
/// access; confirmed through its pidfd), or, if its parent reaped it first,
/// the one the kernel keeps (Linux 6.15+); otherwise with
/// [`ExitStatus::Unknown`](crate::ExitStatus::Unknown) and
/// [`Exit::unknown`](crate::Exit::unknown) saying why. A process that has
/// already exited but is not yet reaped (a zombie) is reported on the next
/// wait. A child that `runc create` (or any runtime) started and that was
/// re-parented to a subreaper is that subreaper's child like any other:
/// its real status is reported.
///
/// # Linked to its cgroup
///
/// Alone, a process watch is not tied to any OOM watch, even one on its
/// own cgroup: its exit and that cgroup's OOM are delivered in whatever
/// order the kernel signals them, and an OOM-killed process's exit often
/// comes first (on cgroup v2 nearly always; containerd #8180).
/// [`oom_watch`](Self::oom_watch) links it to the [`CgroupOom`](super::CgroupOom)
/// watch of its memory cgroup: when the process exits that cgroup is read
/// first, an OOM it has not yet reported is delivered *before* the exit,
/// and the exit says whether the process was OOM-killed
/// ([`Exit::oom_killed`](crate::Exit::oom_killed)).
///
/// The OOM watch may also be on an ancestor of the process's cgroup. On v2
/// an ancestor's `memory.events` counts its descendants' kills, so the exit
/// is marked as for the process's own cgroup; on v1 `oom_kill` counts only
/// the cgroup's own victims, so the ancestor's OOM (when its own limit was
/// hit) still comes first, but the exit is not marked. The link is made
/// when the watch is: a process that moves to another cgroup later stays
/// linked. A cgroup removed before its process's exit is handled takes its
/// counters along, and the exit is then not marked.
/// [`nearest_containing`](crate::cgroup::nearest_containing) finds which of
/// your watched cgroups holds a process.
///
/// ```
/// use ctrmon::watch::Process;
/// use ctrmon::{EventKind, ExitStatus, Monitor};
///
/// let mut monitor = Monitor::new()?;
/// let child = std::process::Command::new("sh").args(["-c", "exit 3"]).spawn()?;
/// monitor.watch(Process::pid(child.id() as i32), "sh")?;
/// let mut status = None;
/// while status.is_none() {
///     monitor.wait_mut(None, |event, _| {
///         if let EventKind::Exited(exit) = event.kind {
///             status = Some(exit.status);
///         }
///     })?;
/// }
/// assert_eq!(status, Some(ExitStatus::Code(3)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// A process that no longer exists at all fails with an error for which
/// [`Error::is_process_gone`](crate::Error::is_process_gone) is true: its
/// exit happened before the watch and its status is lost to us. Watch a
/// child right after spawning it, before anything can reap it, and that
/// cannot happen. A pidfd must be a pidfd
/// ([`is_pidfd`](crate::pidfd::is_pidfd)) of a process: a thread's pidfd
/// (`PIDFD_THREAD`), or one naming a thread that is not its thread group's
/// leader, is refused with an error that says so, since its exit would come
/// while the process runs on; the error names the fd, and a refused fd is
/// closed. With [`oom_watch`](Self::oom_watch), that must be a live cgroup
/// OOM watch.
///
/// # Where pidfds are refused
///
/// When [`exit_mode`](crate::Monitor::exit_mode) is
/// [`SigchldFallback`](crate::ExitMode::SigchldFallback) (a seccomp filter,
/// an old SELinux policy or a kernel before 5.3 refused `pidfd_open`), only
/// our own children can be watched by pid: through SIGCHLD and
/// `waitid(P_PID)`, with the same events, the same OOM-first order and the
/// same "already gone" error. Another's process is refused with an error
/// naming the pid, `pidfd_open` and the errno. SIGCHLD must then be blocked
/// in every thread ([`block_sigchld`](crate::reaper::block_sigchld), in the
/// main thread before any other starts; the first such watch fails, naming
/// the thread, if one has it unblocked), and nothing else in the process
/// may reap a watched child (its watch then reports
/// [`WhyUnknown::ReapedElsewhere`](crate::WhyUnknown::ReapedElsewhere)).
/// Each SIGCHLD costs one `waitid` per child watched this way.
#[derive(Debug)]
pub struct Process {
    who: Who,
    reap: bool,
    oom_watch: Option<WatchId>,
}

#[derive(Debug)]
enum Who {
    Pid(i32),
    Pidfd(OwnedFd),
}

impl Process {
    /// Process `pid`. A pid names whichever process has it now: watch a
    /// child right after spawning it (it stays ours until reaped), or use a
    /// [`pidfd`](Self::pidfd) for another's process.
    pub fn pid(pid: i32) -> Self {
        Process {
            who: Who::Pid(pid),
            reap: true,
            oom_watch: None,
        }
    }

    /// The process that `pidfd` names; the monitor takes ownership of it.
    ///
    /// A pidfd names one process for good, so there is no window in which
    /// the pid could be reused by another process between a spawn (or a
    /// runtime's pid file) and the watch: use this with a pidfd from
    /// `pidfd_open` right after `fork`, or one a runtime sent
    /// ([`PidfdListener`](crate::pidfd::PidfdListener), `runc
    /// --pidfd-socket`). The exit's [`pid`](crate::Exit::pid) is the pid the
    /// pidfd named when it was watched, or 0 if the process had already been
    /// reaped (its exit is then reported at once, with the status the
    /// kernel kept, if any).
    pub fn pidfd(pidfd: OwnedFd) -> Self {
        Process {
            who: Who::Pidfd(pidfd),
            reap: true,
            oom_watch: None,
        }
    }

    /// Links the process to `cgroup`, a [`CgroupOom`](super::CgroupOom)
    /// watch of its memory cgroup (or an ancestor's): the cgroup's OOM is
    /// delivered before the exit, and the exit says whether the process was
    /// OOM-killed (see above).
    pub fn oom_watch(mut self, cgroup: impl Into<WatchId>) -> Self {
        self.oom_watch = Some(cgroup.into());
        self
    }

    /// Leaves our child a zombie for the caller to reap (its status is read
    /// with `WNOWAIT`). Use this when something else owns reaping, such as
    /// `std::process::Child::wait`.
    pub fn without_reaping(mut self) -> Self {
        self.reap = false;
        self
    }
}

impl sealed::Sealed for Process {}
impl Watchable for Process {
    type Output = WatchId;
    #[inline]
    fn add_to<T>(self, on: sealed::On<'_, '_, T>, receiver: T) -> Result<WatchId> {
        let Process {
            who,
            reap,
            oom_watch,
        } = self;
        match who {
            Who::Pid(pid) => on!(on, |m| m.add_pid(pid, reap, oom_watch, receiver)),
            Who::Pidfd(fd) => on!(on, |m| m.add_pidfd(fd, reap, oom_watch, receiver)),
        }
    }
}

/// The read end of a process's exit FIFO, as in containerd 0.2, watched for
/// its hang-up ([`EventKind::HungUp`](crate::EventKind::HungUp)) and linked
/// to the [`Process`] watch of its writer: the FIFO's watch ends with the
/// process. When the process's exit is delivered and the FIFO has not hung
/// up, its `HungUp` follows the exit at once.
///
/// # The FIFO race
///
/// A FIFO reader sees a hang-up only when the last writer closes *after*
/// the reader was opened and a writer had connected. A reader opened after
/// the writer already exited never sees one. Linked to the process, such a
/// FIFO is still reported, at the process's exit, instead of never.
///
/// # Errors
///
/// `process` must be a live process watch; if its exit is delivered while
/// the watch is made, the FIFO is not watched and the error says so.
#[derive(Debug)]
pub struct ExitFifo {
    fd: OwnedFd,
    process: WatchId,
}

impl ExitFifo {
    /// `fd`, the FIFO's read end (the monitor takes ownership of it and
    /// makes it close-on-exec), of the process watched as `process`.
    pub fn new(fd: OwnedFd, process: WatchId) -> Self {
        ExitFifo { fd, process }
    }
}

watchable!(ExitFifo => WatchId, |k, m, receiver| m.watch_exit_fifo(k.fd, k.process, receiver));

/// Any fd, watched for a hang-up (`EPOLLHUP` or `EPOLLERR`):
/// [`EventKind::HungUp`](crate::EventKind::HungUp). For an fd whose peer
/// closing means the end (a pipe, a socket). The monitor takes ownership of
/// the fd, makes it close-on-exec and closes it when the watch ends. For an
/// exit FIFO, [`ExitFifo`] links it to its process, which closes the FIFO
/// race.
#[derive(Debug)]
pub struct Hangup(OwnedFd);

impl Hangup {
    /// The fd `fd`.
    pub fn new(fd: OwnedFd) -> Self {
        Hangup(fd)
    }
}

watchable!(Hangup => WatchId, |k, m, receiver| m.watch_hangup(k.0, receiver));

/// Every child of this process that nobody watches — orphans re-parented
/// to it as a subreaper ([`become_subreaper`](crate::reaper::become_subreaper))
/// or PID 1 — reaped and reported, each as an
/// [`EventKind::Orphan`](crate::EventKind::Orphan) (pid, code or signal), on
/// one watch that lasts until `unwatch`. A watched child is never taken:
/// its watch reaps it and reports its real status. See [`crate::reaper`]
/// for how, and for what the caller must do:
///
/// - block SIGCHLD in the main thread before any other thread starts
///   ([`block_sigchld`](crate::reaper::block_sigchld)); the watch fails,
///   naming the thread, if one has it unblocked;
/// - spawn and watch each child under a
///   [`hold_orphans`](crate::Monitor::hold_orphans) (else a child that
///   exits before it is watched is reaped as an orphan, and its watch
///   fails: the process is gone), and run each command you wait for
///   yourself (`runc create`, `runc kill`) under one too;
/// - not mix this with another reaper of children in the process, such as
///   tokio's process driver (conmon-rs #80).
///
/// A child watched [`without_reaping`](Process::without_reaping) is left
/// alone only until its exit is delivered; reap it under a hold.
///
/// # Errors
///
/// A thread with SIGCHLD unblocked; orphan reaping already on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Orphans;

watchable!(Orphans => WatchId, |k, m, receiver| m.reap_orphans(receiver));
