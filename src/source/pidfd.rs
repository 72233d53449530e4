//! Process exits through pidfds.
//!
//! A pidfd names one process for good: unlike a pid number, it cannot come to
//! mean a different process after the first is reaped and its number reused.
//! It becomes readable when the process exits. For our own child,
//! `waitid(P_PIDFD)` then reaps it and gives its code or signal. For anyone
//! else's process the kernel says `ECHILD`; then the status is read from
//! the zombie's `/proc/<pid>/stat` and confirmed through the pidfd
//! ([`crate::pidfd::zombie`]), on any kernel, at once. If the parent reaped
//! it first, since Linux 6.15 the kernel keeps the status with the pidfd
//! (`PIDFD_GET_INFO`, [`crate::pidfd::exit_info`]). If neither answers
//! while the process is still a zombie (its status hidden from us), the
//! watch stops listening to its pidfd (which stays readable) and looks
//! again from the monitor's timer, after 1, 2, 4 ... 100 ms, for up to
//! [`GIVE_UP_AFTER`]; after that, or on a kernel that keeps no status, the
//! exit is reported with [`ExitStatus::Unknown`] and the reason.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::epoll::EventFlags;
use rustix::io::Errno;
use rustix::process::{pidfd_open, waitid, Pid, PidfdFlags, WaitId, WaitIdOptions};

use super::{Clock, Outcome};
use crate::event::{EventKind, Exit, ExitStatus, WatchId, WhyUnknown};
use crate::pidfd::zombie::{self, Zombie};
use crate::pidfd::{exit_info, ExitInfo};
use crate::source::oom_victims::StartTime;
use crate::{Error, Subject};

pub(crate) const INTEREST: EventFlags = EventFlags::IN;

/// How long a non-child's exit waits for its parent to reap it.
pub(crate) const GIVE_UP_AFTER: Duration = Duration::from_secs(2);
const FIRST_RETRY: Duration = Duration::from_millis(1);
const LONGEST_RETRY: Duration = Duration::from_millis(100);

/// What a process watch keeps besides its pidfd (which the table holds
/// inline): needed only at the exit, so it lives behind the slot's cold
/// pointer.
pub(crate) struct PidInfo {
    pub(crate) pid: i32,
    /// Reap our child on exit (`false`: leave the zombie to the caller, and
    /// read its status with `WNOWAIT`).
    pub(crate) reap: bool,
    /// The OOM watch of the process's cgroup, re-read before its exit is
    /// reported so that the OOM comes first.
    pub(crate) oom_link: Option<WatchId>,
    /// Set once a non-child has exited but its parent has not reaped it:
    /// when to look again, and when to give up.
    pub(crate) retry: Option<Retry>,
    /// The process's exit FIFO watch, ended with the process's exit.
    pub(crate) exit_fifo: Option<WatchId>,
    /// When the process started, read when the watch was made (with the
    /// kernel log on): what binds a logged OOM victim to this process and
    /// not to an earlier one that had its pid.
    pub(crate) start: Option<StartTime>,
}

/// When the process that `fd` names started: `/proc/<pid>/stat` read, then
/// the pidfd asked whether its process is still there (not reaped: the
/// pid then still names it, so the file read was its own). `None` when
/// that cannot be told.
pub(crate) fn start_of(pid: i32, fd: std::os::fd::BorrowedFd<'_>) -> Option<StartTime> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let ticks = crate::reaper::proc::start_time(&stat)?;
    match crate::pidfd::pid_of(fd) {
        Ok(Some(p)) if p == pid => Some(StartTime::from_ticks(ticks)),
        _ => None,
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Retry {
    pub(crate) next: Instant,
    step: Duration,
    give_up: Instant,
}

/// `pid` as rustix's `Pid`, or the error a watch of it gives: zero and
/// negative values name no single process.
pub(crate) fn watchable_pid(pid: i32) -> Result<Pid, Error> {
    // `Pid::from_raw` asserts on negative values: check first.
    (pid > 0)
        .then(|| Pid::from_raw(pid))
        .flatten()
        .ok_or_else(|| {
            Error::invalid(
                "watch",
                Subject::Pid(pid),
                "a pid must be greater than zero",
            )
        })
}

/// Opens a pidfd for `pid`. `ESRCH` means the process is already gone
/// (exited and reaped), which the error says in so many words.
pub(crate) fn open(pid: i32) -> Result<OwnedFd, Error> {
    let id = watchable_pid(pid)?;
    // pidfds are always close-on-exec.
    pidfd_open(id, PidfdFlags::empty())
        .map_err(|e| Error::os("open pidfd for", Subject::Pid(pid), e))
}

impl PidInfo {
    /// The pidfd is readable (or, once it waits for a parent to reap it,
    /// its re-check is due).
    pub(crate) fn on_ready(&mut self, fd: &OwnedFd, clock: &mut Clock) -> Outcome {
        let mut options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
        if !self.reap {
            options |= WaitIdOptions::NOWAIT;
        }
        match waitid(WaitId::PidFd(fd.as_fd()), options) {
            Ok(Some(st)) => self.exit(ExitStatus::from_waitid(&st), self.reap, None),
            // Readable but not yet waitable: not an exit (yet).
            Ok(None) => Outcome::Nothing,
            // Not our child, or someone else reaped it first.
            Err(Errno::CHILD) => self.not_ours(fd, clock),
            Err(e) => Outcome::One(EventKind::Failed(Error::os(
                "wait for",
                Subject::Pid(self.pid),
                e,
            ))),
        }
    }

    /// Another's process has exited: its status from the kernel, now or
    /// after its parent has reaped it.
    #[cold]
    fn not_ours(&mut self, fd: &OwnedFd, clock: &mut Clock) -> Outcome {
        // First its zombie, so that the exit is reported when it happens,
        // not when the parent gets round to reaping it.
        let zombie = zombie::read(self.pid, fd.as_fd());
        if let Zombie::Status(status) = zombie {
            return self.exit(status, false, None);
        }
        let why = match exit_info(fd.as_fd()) {
            Ok(ExitInfo::Exited(status)) => return self.exit(status, false, None),
            Ok(ExitInfo::Unsupported) if zombie == Zombie::NoAccess => WhyUnknown::NoAccess,
            Ok(ExitInfo::Unsupported) => WhyUnknown::NoExitInfo,
            Ok(ExitInfo::NotYet) => {
                let now = clock.now();
                match &mut self.retry {
                    None => {
                        self.retry = Some(Retry {
                            next: now + FIRST_RETRY,
                            step: FIRST_RETRY,
                            give_up: now + GIVE_UP_AFTER,
                        });
                        return Outcome::RecheckLater;
                    }
                    Some(r) if now < r.give_up => {
                        r.step = (r.step * 2).min(LONGEST_RETRY);
                        r.next = (now + r.step).min(r.give_up);
                        return Outcome::RecheckLater;
                    }
                    Some(_) => WhyUnknown::NotReaped,
                }
            }
            Err(_) => WhyUnknown::Failed,
        };
        self.exit(ExitStatus::Unknown, false, Some(why))
    }

    fn exit(&mut self, status: ExitStatus, reaped: bool, unknown: Option<WhyUnknown>) -> Outcome {
        self.retry = None;
        Outcome::One(EventKind::Exited(Exit {
            pid: self.pid,
            status,
            oom_killed: false,
            reaped,
            unknown,
        }))
    }

    /// When a non-child's exit is next looked at, while its parent has not
    /// reaped it.
    pub(crate) fn recheck_at(&self) -> Option<Instant> {
        self.retry.map(|r| r.next)
    }

    /// Reaps the child if it has already exited, so that dropping the
    /// monitor does not leave zombies behind that it promised to reap.
    pub(crate) fn reap_if_exited(&self, fd: &OwnedFd) {
        if self.reap {
            let _ = waitid(
                WaitId::PidFd(fd.as_fd()),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            );
        }
    }
}
