//! Exits of our own children where pidfds are refused: SIGCHLD through a
//! signalfd, then `waitid(P_PID)` for each child watched this way.
//!
//! Container seccomp allow-lists answer `pidfd_open` with `EPERM` (systemd
//! keeps a fallback for exactly this, systemd#35971), older SELinux
//! policies with `EACCES`, kernels before 5.3 with `ENOSYS`. The monitor
//! asks once, at [`Monitor::new`](crate::Monitor::new), with a pidfd of
//! itself ([`probe`]); when that is refused it watches children this way
//! for good ([`ExitMode::SigchldFallback`](crate::ExitMode)).
//!
//! Why this is as good as a pidfd, for a child:
//!
//! - **The pid cannot be reused under us.** A child's pid stays its own
//!   until its parent reaps it, and only this process can do that. So
//!   `waitid(P_PID, pid)` names the same process from watch to exit, as
//!   long as nothing else in the process reaps it (a `waitpid(-1)` loop, a
//!   `Child::wait`): that is the caller's side of the bargain, as with the
//!   orphan reaper.
//! - **Never `waitpid(-1)`**: each watched child is waited for by its own
//!   pid, with `WNOHANG`, so a child that someone else watches or waits for
//!   is never touched (design.md, peers' mistake 11).
//! - **SIGCHLD coalesces**: one pending signal may stand for many exits, so
//!   each readiness of the signalfd drains it and then asks every child
//!   watched this way (one `waitid` each: the cost of a readiness grows
//!   with their number). An exit after the drain raises a new SIGCHLD.
//! - **A child that exited before it was watched**: the watch raises
//!   SIGCHLD at this process once it is in the table ([`poke`]), so the next
//!   wait looks at it, as a zombie's pidfd is readable at once.
//! - **Only children**: `waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT)`
//!   answers `ECHILD` for a process that is not ours, which is then refused
//!   with an error naming the pid, the refused call and its errno: without
//!   a pidfd nothing tells when another's process exits, nor which process
//!   a pid number names by then.
//!
//! SIGCHLD must be blocked in every thread: a thread with it unblocked
//! takes the signal with its default action (discard), and the signalfd
//! never sees it. The first watch made this way checks every thread there
//! is and fails, naming the thread, if one has it unblocked; and fails if
//! SIGCHLD is ignored (`SIG_IGN`: the kernel then reaps children itself,
//! and their statuses are lost).

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::Errno;
use rustix::process::{
    getpid, kill_process, pidfd_open, test_kill_process, waitid, Pid, PidfdFlags, Signal, WaitId,
    WaitIdOptions,
};

use crate::event::{EventKind, Exit, ExitStatus, WhyUnknown};
use crate::signal::{SignalFd, SignalSet};
use crate::source::oom_victims::StartTime;
use crate::sys::lock::Lock;
use crate::{Error, Result, Subject};

/// `pidfd_open` of this process: `None` when pidfds work, else the errno of
/// the refusal (`EPERM`, `EACCES`, `ENOSYS`). Any other failure (out of
/// fds) says nothing about pidfds, and is taken as "they work".
pub(crate) fn probe() -> Option<i32> {
    match pidfd_open(getpid(), PidfdFlags::empty()) {
        Ok(_) => None,
        Err(e) if is_refusal(e) => Some(e.raw_os_error()),
        Err(_) => None,
    }
}

/// An errno that means "pidfds are refused here", not "this pid".
fn is_refusal(e: Errno) -> bool {
    matches!(e, Errno::PERM | Errno::ACCESS | Errno::NOSYS)
}

/// The errno's name, for messages.
pub(crate) fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOSYS => "ENOSYS",
        _ => "an error",
    }
}

/// The monitor's part of the fallback: the SIGCHLD signalfd (registered
/// with epoll under the timer's key, so that its readiness runs the
/// housekeeping and the dispatch loop has nothing new to test), the errno
/// of the refusal, and a buffer kept from scan to scan.
pub(crate) struct ChildExits {
    pub(crate) errno: i32,
    sigchld: SignalFd,
    /// Every thread was seen with SIGCHLD blocked (checked at the first
    /// watch made this way).
    checked: AtomicBool,
    /// What a scan found, by watch key: no allocation once grown.
    found: Lock<Vec<(u64, EventKind)>>,
}

impl ChildExits {
    /// The fallback's signalfd, after a refused `pidfd_open` (`errno`).
    pub(crate) fn new(errno: i32) -> Result<ChildExits> {
        let set = SignalSet::new(&[Signal::CHILD])?;
        Ok(ChildExits {
            errno,
            sigchld: SignalFd::new_nonblocking(&set)?,
            checked: AtomicBool::new(false),
            found: Lock::new(Vec::new()),
        })
    }

    /// Checks that `pid` can be watched without a pidfd: SIGCHLD is blocked
    /// in every thread (once), and `pid` is our child, running or a zombie.
    /// Errors name the pid, the refused call and its errno; a pid that no
    /// longer exists fails with `ESRCH`
    /// ([`Error::is_process_gone`](crate::Error::is_process_gone)).
    pub(crate) fn check_child(&self, pid: i32) -> Result<()> {
        let id = super::pidfd::watchable_pid(pid)?;
        let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        match waitid(WaitId::Pid(id), opts) {
            Ok(_) => {}
            Err(Errno::CHILD) => {
                return Err(match test_kill_process(id) {
                    // Gone (or never was): "already gone", as from pidfd_open.
                    Err(Errno::SRCH) => Error::os("watch", Subject::Pid(pid), Errno::SRCH),
                    _ => not_a_child(pid, self.errno),
                });
            }
            Err(e) => return Err(Error::os("wait for", Subject::Pid(pid), e)),
        }
        if !self.checked.load(Ordering::Relaxed) {
            check_every_thread_blocks_sigchld(pid, self.errno)?;
            self.checked.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Takes every pending SIGCHLD (the scan that follows looks at every
    /// child, however many exits the one signal stood for).
    pub(crate) fn drain(&self) {
        while let Ok(Some(_)) = self.sigchld.read() {}
    }

    /// The scan's buffer, emptied (put back with [`put_back`](Self::put_back)
    /// once its exits are delivered: no lock is held meanwhile).
    pub(crate) fn take_found(&self) -> Vec<(u64, EventKind)> {
        std::mem::take(&mut *self.found.lock())
    }

    pub(crate) fn put_back(&self, mut found: Vec<(u64, EventKind)>) {
        found.clear();
        let mut slot = self.found.lock();
        if found.capacity() > slot.capacity() {
            *slot = found;
        }
    }
}

impl AsFd for ChildExits {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sigchld.as_fd()
    }
}

/// Raises SIGCHLD at this process, so that the next wait scans the children
/// watched without pidfds: one that exited before its watch existed is
/// found at once.
pub(crate) fn poke() {
    let _ = kill_process(getpid(), Signal::CHILD);
}

/// Our child `pid`'s exit, if it has exited: reaped (`reap`) or left a
/// zombie (read with `WNOWAIT`). `None` while it runs.
pub(crate) fn poll(pid: i32, reap: bool) -> Option<EventKind> {
    let id = Pid::from_raw(pid)?;
    let mut opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    if !reap {
        opts |= WaitIdOptions::NOWAIT;
    }
    let (status, reaped, unknown) = match waitid(WaitId::Pid(id), opts) {
        Ok(Some(st)) => (ExitStatus::from_waitid(&st), reap, None),
        Ok(None) => return None,
        // Something else in this process reaped it, and has its status.
        Err(Errno::CHILD) => (
            ExitStatus::Unknown,
            false,
            Some(WhyUnknown::ReapedElsewhere),
        ),
        Err(e) => {
            return Some(EventKind::Failed(Error::os(
                "wait for",
                Subject::Pid(pid),
                e,
            )))
        }
    };
    Some(EventKind::Exited(Exit {
        pid,
        status,
        oom_killed: false,
        reaped,
        unknown,
    }))
}

/// Reaps our child `pid` if it has exited (a monitor dropped with the
/// watch live, which promised to reap it).
pub(crate) fn reap_if_exited(pid: i32) {
    if let Some(id) = Pid::from_raw(pid) {
        let _ = waitid(
            WaitId::Pid(id),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        );
    }
}

/// When our child `pid` started: it cannot be reaped (and its pid reused)
/// but by us, so `/proc/<pid>/stat` is its own.
pub(crate) fn start_of_child(pid: i32) -> Option<StartTime> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    crate::reaper::proc::start_time(&stat).map(StartTime::from_ticks)
}

#[cold]
fn not_a_child(pid: i32, errno: i32) -> Error {
    Error::new(
        "watch",
        Subject::Pid(pid),
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "not our child, and pidfd_open is refused here ({}: {}): without a pidfd \
                 only this process's own children can be watched (through SIGCHLD and waitid)",
                errno_name(errno),
                std::io::Error::from_raw_os_error(errno),
            ),
        ),
    )
}

/// Fails, naming the thread, if a thread of this process has SIGCHLD
/// unblocked (it would take the signal and discard it).
fn check_every_thread_blocks_sigchld(pid: i32, errno: i32) -> Result<()> {
    const TASKS: &str = "/proc/self/task";
    let dir = std::fs::read_dir(TASKS).map_err(|e| Error::path("read", TASKS.as_ref(), e))?;
    for entry in dir {
        let entry = entry.map_err(|e| Error::path("read", TASKS.as_ref(), e))?;
        let tid = entry.file_name();
        let Some(tid) = tid
            .to_str()
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let path = format!("{TASKS}/{tid}/status");
        let status = match std::fs::read(&path) {
            Ok(status) => status,
            // The thread has ended since the directory was read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::path("read", path.as_ref(), e)),
        };
        // The disposition is the process's: any thread's file says it.
        if crate::reaper::proc::signal_in(&status, b"SigIgn:", Signal::CHILD.as_raw()) == Some(true)
        {
            return Err(Error::new(
                "watch",
                Subject::Pid(pid),
                std::io::Error::other(format!(
                    "pidfd_open is refused here ({}), so children are watched through \
                     SIGCHLD, but SIGCHLD is ignored (SIG_IGN) in this process: the kernel \
                     then reaps children itself and their statuses are lost; restore its \
                     default action",
                    errno_name(errno),
                )),
            ));
        }
        if crate::reaper::proc::signal_blocked(&status, Signal::CHILD.as_raw()) == Some(false) {
            return Err(Error::new(
                "watch",
                Subject::Pid(pid),
                std::io::Error::other(format!(
                    "pidfd_open is refused here ({}), so children are watched through \
                     SIGCHLD, but thread {tid} has SIGCHLD unblocked and would take the \
                     signal and discard it; block it (ctrmon::reaper::block_sigchld) in the \
                     main thread before any other thread starts",
                    errno_name(errno),
                )),
            ));
        }
    }
    Ok(())
}
