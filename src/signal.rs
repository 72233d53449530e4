//! Signals as a file descriptor: a set of signals blocked in every thread
//! and read from a `signalfd`, in a blocking loop of its own or in an epoll
//! loop (a non-blocking signalfd is readable while a signal is pending).
//!
//! Threads inherit the signal mask of the thread that creates them, so the
//! set must be [`block`]ed in the main thread before any other thread starts;
//! a thread that still has it unblocked would take the signal with its
//! default action (for most signals, the end of the process). A child
//! inherits the mask too: unblock the set in it before `exec`
//! ([`ChildSetup::unblock`](crate::spawn::ChildSetup::unblock)).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

pub use rustix::process::Signal;

use crate::sys::{self, SigSet};
use crate::{Error, Result, Subject};

/// A set of signals to block, unblock or read from a [`SignalFd`].
#[derive(Clone, Copy)]
pub struct SignalSet(pub(crate) SigSet);

impl SignalSet {
    /// The set holding `signals`.
    pub fn new(signals: &[Signal]) -> Result<SignalSet> {
        SigSet::new(signals.iter().map(|s| s.as_raw()))
            .map(SignalSet)
            .map_err(|e| Error::new("build signal set", Subject::None, e))
    }
}

impl std::fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalSet")
    }
}

/// Blocks `set` in the calling thread (and so in every thread it starts
/// from now on).
pub fn block(set: &SignalSet) -> Result<()> {
    sys::sigmask(libc::SIG_BLOCK, &set.0).map_err(|e| Error::new("block signals", Subject::None, e))
}

/// Unblocks `set` in the calling thread.
pub fn unblock(set: &SignalSet) -> Result<()> {
    sys::sigmask(libc::SIG_UNBLOCK, &set.0)
        .map_err(|e| Error::new("unblock signals", Subject::None, e))
}

/// A close-on-exec `signalfd`: each read returns one pending signal of its
/// set (which must be [`block`]ed, or the signal is not kept pending for it).
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// A signalfd whose [`read`](Self::read) blocks until a signal arrives.
    pub fn new(set: &SignalSet) -> Result<SignalFd> {
        Self::open(set, false)
    }

    /// A non-blocking signalfd, for an epoll loop: readable (`EPOLLIN`)
    /// while one of its signals is pending.
    pub fn new_nonblocking(set: &SignalSet) -> Result<SignalFd> {
        Self::open(set, true)
    }

    fn open(set: &SignalSet, nonblock: bool) -> Result<SignalFd> {
        let fd = sys::signalfd(&set.0, nonblock)
            .map_err(|e| Error::new("open signalfd", Subject::None, e))?;
        Ok(SignalFd { fd })
    }

    /// Takes one pending signal: blocks for it, or (non-blocking) returns
    /// `None` when none is pending.
    pub fn read(&self) -> Result<Option<SignalInfo>> {
        let mut buf = [0u8; SIGINFO_SIZE];
        loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(SIGINFO_SIZE) => return Ok(Some(SignalInfo::parse(&buf))),
                Ok(n) => {
                    return Err(Error::new(
                        "read signalfd",
                        Subject::Fd(self.fd.as_raw_fd()),
                        std::io::Error::other(format!("short read of {n} bytes")),
                    ))
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(e) => {
                    return Err(Error::os(
                        "read signalfd",
                        Subject::Fd(self.fd.as_raw_fd()),
                        e,
                    ))
                }
            }
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `sizeof(struct signalfd_siginfo)`.
const SIGINFO_SIZE: usize = 128;

/// One signal read from a [`SignalFd`]: the fields of `signalfd_siginfo`
/// that say what it was and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalInfo {
    /// The signal number.
    pub signo: i32,
    /// How it was sent (`si_code`: `SI_USER` for `kill`, `SI_KERNEL`, or
    /// for SIGCHLD `CLD_EXITED`, `CLD_KILLED`...).
    pub code: i32,
    /// The sender's pid (for SIGCHLD, the child's).
    pub pid: u32,
    /// For SIGCHLD: the exit code or signal.
    pub status: i32,
}

impl SignalInfo {
    /// Decodes a `signalfd_siginfo` record. Pure: no I/O.
    pub fn parse(record: &[u8; SIGINFO_SIZE]) -> SignalInfo {
        let word = |at: usize| [record[at], record[at + 1], record[at + 2], record[at + 3]];
        SignalInfo {
            signo: u32::from_ne_bytes(word(0)) as i32,
            code: i32::from_ne_bytes(word(8)),
            pid: u32::from_ne_bytes(word(12)),
            status: i32::from_ne_bytes(word(40)),
        }
    }

    /// Sent by the kernel (`SI_KERNEL`): a terminal's Ctrl-C or Ctrl-\,
    /// which the terminal also sends to the rest of its process group.
    pub fn from_kernel(&self) -> bool {
        self.code == libc::SI_KERNEL
    }

    /// The signal, if it is one rustix names.
    pub fn signal(&self) -> Option<Signal> {
        Signal::from_named_raw(self.signo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_decodes() {
        let mut rec = [0u8; SIGINFO_SIZE];
        rec[0..4].copy_from_slice(&17u32.to_ne_bytes());
        rec[8..12].copy_from_slice(&1i32.to_ne_bytes());
        rec[12..16].copy_from_slice(&4242u32.to_ne_bytes());
        rec[40..44].copy_from_slice(&3i32.to_ne_bytes());
        let info = SignalInfo::parse(&rec);
        assert_eq!(
            info,
            SignalInfo {
                signo: 17,
                code: 1,
                pid: 4242,
                status: 3
            }
        );
        assert_eq!(info.signal(), Some(Signal::CHILD));
        assert!(!info.from_kernel());
    }

    #[test]
    fn nothing_pending_reads_as_none() {
        // Signals the tests never send, so blocking them here changes nothing.
        let set = SignalSet::new(&[Signal::WINCH, Signal::URG]).unwrap();
        block(&set).unwrap();
        let fd = SignalFd::new_nonblocking(&set).unwrap();
        assert_eq!(fd.read().unwrap(), None);
        unblock(&set).unwrap();
    }
}
