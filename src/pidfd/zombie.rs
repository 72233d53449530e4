//! The exit status of another's process while it is a zombie, on any
//! kernel: `/proc/<pid>/stat` field 52 (`exit_code`, Linux 3.5+), confirmed
//! through the pidfd.
//!
//! Only the parent can `wait` for a process, and `PIDFD_GET_INFO` (6.15+)
//! answers only after the parent has reaped it. But from its exit until
//! that reap the process is a zombie, and the kernel shows its wait status
//! in its `stat` file. A pid names a process only until it is reaped (then
//! the number may be reused), so the read is believed only when a signal 0
//! sent through the pidfd *afterwards* succeeds: the pidfd's process had
//! not been reaped then, so the pid still named it during the read.
//!
//! What can make the read say nothing ([`Zombie`]):
//! - the parent reaped it first (the file is gone, or the signal says
//!   `ESRCH`), or the process never was a zombie (its parent ignores
//!   `SIGCHLD`, so the kernel reaps it at once);
//! - no ptrace read access to it: the kernel then prints 0 in place of the
//!   status. A 0 is believed only when the process's `ns/pid` link, which
//!   the kernel shows under the same check (and still shows for a zombie),
//!   can be read; non-zero is proof enough. Root has access; another user
//!   has it to its own processes unless they changed credentials (setuid:
//!   all of real, effective and saved ids must be the watcher's). A
//!   zombie's 0400 files (`io`, `environ`) belong to root, so they cannot
//!   tell;
//! - our `/proc` belongs to another pid namespace than our pids (a pid then
//!   names another process there).
//!
//! One case reads wrong and cannot be told apart: a process whose main
//! thread ended first (`pthread_exit`) and whose last thread then called
//! `exit_group` shows the main thread's own status, where `wait` gives the
//! group's.
//!
//! Nothing is allocated: paths and contents live in stack buffers.

use std::io::Write;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;

use rustix::fs::{Mode, OFlags, CWD};

use crate::event::ExitStatus;
use crate::pidfd::decode_wait_status;
use crate::reaper::proc::zombie_exit_code;
use crate::sys;

/// What a zombie read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zombie {
    /// The status of the pidfd's process, confirmed.
    Status(ExitStatus),
    /// No zombie of that process to read (reaped, never a zombie, or
    /// `/proc` of another pid namespace, or no `/proc`).
    Gone,
    /// A zombie whose status is hidden from us (no ptrace read access).
    NoAccess,
}

/// Reads the status of the process `pidfd` names, whose pid is `pid`,
/// while it is a zombie.
pub(crate) fn read(pid: i32, pidfd: BorrowedFd<'_>) -> Zombie {
    if pid <= 0 || !proc_is_ours() {
        return Zombie::Gone;
    }
    let mut buf = [0u8; 2048];
    let Some(stat) = read_proc(pid, "stat", &mut buf) else {
        return Zombie::Gone;
    };
    let Some(status) = zombie_exit_code(stat) else {
        return Zombie::Gone;
    };
    // A hidden status reads as 0 too: believe a 0 only with access.
    let hidden = status == 0 && !may_read(pid);
    // The reads above were of the pidfd's process only if it was still
    // unreaped after them. EPERM (no right to signal it) also means the
    // kernel found it.
    match sys::pidfd_signal_zero(pidfd) {
        Err(e) if e.raw_os_error() != Some(libc::EPERM) => Zombie::Gone,
        _ if hidden => Zombie::NoAccess,
        _ => Zombie::Status(decode_wait_status(status)),
    }
}

/// Whether `/proc/self` is this process: otherwise the `/proc` mounted here
/// is another pid namespace's, where our pids name other processes.
fn proc_is_ours() -> bool {
    let mut link = [MaybeUninit::<u8>::uninit(); 16];
    let Ok((name, _)) = rustix::fs::readlinkat_raw(CWD, "/proc/self", &mut link) else {
        return false;
    };
    let mut own = [0u8; 12];
    let len = digits(rustix::process::getpid().as_raw_nonzero().get(), &mut own);
    *name == own[..len]
}

/// Whether we have ptrace read access to `pid`: its `ns/pid` link reads
/// (`EACCES` without access).
fn may_read(pid: i32) -> bool {
    let mut path = [0u8; 32];
    let Some(path) = proc_path(pid, "ns/pid", &mut path) else {
        return false;
    };
    let mut link = [MaybeUninit::<u8>::uninit(); 64];
    rustix::fs::readlinkat_raw(CWD, path, &mut link).is_ok()
}

/// `/proc/<pid>/<leaf>` in `buf`.
fn proc_path<'a>(pid: i32, leaf: &str, buf: &'a mut [u8; 32]) -> Option<&'a str> {
    let len = {
        let mut w = &mut buf[..];
        write!(w, "/proc/{pid}/{leaf}").ok()?;
        32 - w.len()
    };
    std::str::from_utf8(&buf[..len]).ok()
}

/// Reads `/proc/<pid>/<leaf>` whole into `buf`; `None` when it cannot be
/// read or does not fit.
fn read_proc<'a>(pid: i32, leaf: &str, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let mut path = [0u8; 32];
    let path = proc_path(pid, leaf, &mut path)?;
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut filled = 0;
    loop {
        let n = rustix::io::read(&fd, &mut buf[filled..]).ok()?;
        if n == 0 {
            return Some(&buf[..filled]);
        }
        filled += n;
        if filled == buf.len() {
            return None;
        }
    }
}

/// `n` in decimal into `out`; its length.
fn digits(n: i32, out: &mut [u8; 12]) -> usize {
    let mut w = &mut out[..];
    // 12 bytes hold any i32.
    let _ = write!(w, "{n}");
    12 - w.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_here_is_this_namespaces() {
        assert!(proc_is_ours());
    }

    #[test]
    fn a_running_process_is_no_zombie() {
        let fd = rustix::process::pidfd_open(
            rustix::process::getpid(),
            rustix::process::PidfdFlags::empty(),
        )
        .unwrap();
        use std::os::fd::AsFd;
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        assert_eq!(read(pid, fd.as_fd()), Zombie::Gone);
        assert_eq!(read(0, fd.as_fd()), Zombie::Gone);
    }

    #[test]
    fn digits_print() {
        let mut out = [0u8; 12];
        let n = digits(i32::MAX, &mut out);
        assert_eq!(&out[..n], b"2147483647");
    }
}
