//! Signalling a process where `pidfd_open` is refused: a `/proc/<pid>`
//! directory fd names one process for good as a pidfd does (once that
//! process is reaped, the fd is stale and `pidfd_send_signal` through it
//! fails with `ESRCH`, whoever has the pid number by then), and
//! `pidfd_send_signal` (Linux 5.1+) takes it.
//!
//! Where `pidfd_send_signal` is refused as well, the signal goes by pid,
//! after the fd was seen to name a live process: only a reap and the pid's
//! reuse in the microseconds between that look and the `kill` could
//! misdirect it.

use std::os::fd::OwnedFd;

use rustix::fs::{openat, Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::process::{kill_process, pidfd_send_signal, Pid, Signal};

/// One process, held by its `/proc/<pid>` directory.
pub struct ProcFd {
    dir: OwnedFd,
    pid: Pid,
}

impl ProcFd {
    /// `/proc/<pid>`, if the process exists (it is the process that has
    /// the pid now: for a pid read from a file, check afterwards that it
    /// is still the one meant).
    pub fn open(pid: Pid) -> Option<ProcFd> {
        let path = format!("/proc/{}", pid.as_raw_nonzero());
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = openat(CWD, path, flags, Mode::empty()).ok()?;
        Some(ProcFd { dir, pid })
    }

    /// Sends `sig`; `ESRCH` once the process is gone.
    pub fn signal(&self, sig: Signal) -> Result<(), Errno> {
        match pidfd_send_signal(&self.dir, sig) {
            Err(Errno::PERM | Errno::ACCESS | Errno::NOSYS) if self.alive() => {
                kill_process(self.pid, sig)
            }
            other => other,
        }
    }

    /// The process is not reaped: its directory still reads.
    fn alive(&self) -> bool {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        openat(&self.dir, "stat", flags, Mode::empty()).is_ok()
    }
}
