//! Process exits through pidfds.
//!
//! A pidfd names one process for good: unlike a pid number, it cannot come to
//! mean a different process after the first is reaped and its number reused.
//! It becomes readable when the process exits. For our own child,
//! `waitid(P_PIDFD)` then reaps it and gives its code or signal; for anyone
//! else's process the kernel says `ECHILD` and all we know is that it exited.

use std::os::fd::{AsFd, OwnedFd};

use rustix::event::epoll::EventFlags;
use rustix::io::Errno;
use rustix::process::{pidfd_open, waitid, Pid, PidfdFlags, WaitId, WaitIdOptions, WaitIdStatus};

use crate::event::{EventKind, Exit, ExitStatus, WatchId};
use crate::{Error, Subject};

pub(crate) const INTEREST: EventFlags = EventFlags::IN;

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
}

/// Opens a pidfd for `pid`. `ESRCH` means the process is already gone
/// (exited and reaped), which the error says in so many words.
pub(crate) fn open(pid: i32) -> Result<OwnedFd, Error> {
    // `Pid::from_raw` asserts on negative values: check first.
    let id = (pid > 0)
        .then(|| Pid::from_raw(pid))
        .flatten()
        .ok_or_else(|| {
            Error::invalid(
                "watch",
                Subject::Pid(pid),
                "a pid must be greater than zero",
            )
        })?;
    // pidfds are always close-on-exec.
    pidfd_open(id, PidfdFlags::empty())
        .map_err(|e| Error::os("open pidfd for", Subject::Pid(pid), e))
}

impl PidInfo {
    pub(crate) fn on_ready(&self, fd: &OwnedFd) -> Option<EventKind> {
        let mut options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
        if !self.reap {
            options |= WaitIdOptions::NOWAIT;
        }
        let exit = |status, reaped| {
            Some(EventKind::Exited(Exit {
                pid: self.pid,
                status,
                oom_killed: false,
                reaped,
            }))
        };
        match waitid(WaitId::PidFd(fd.as_fd()), options) {
            Ok(Some(st)) => exit(status_of(&st), self.reap),
            // Readable but not yet waitable: not an exit (yet).
            Ok(None) => None,
            // Not our child, or someone else reaped it first.
            Err(Errno::CHILD) => exit(ExitStatus::Unknown, false),
            Err(e) => Some(EventKind::Failed(Error::os(
                "wait for",
                Subject::Pid(self.pid),
                e,
            ))),
        }
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

fn status_of(st: &WaitIdStatus) -> ExitStatus {
    if let Some(code) = st.exit_status() {
        ExitStatus::Code(code)
    } else if let Some(sig) = st.terminating_signal() {
        ExitStatus::Signal(sig)
    } else {
        ExitStatus::Unknown
    }
}
