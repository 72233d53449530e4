//! Every call of the crate that needs `unsafe`, each behind a safe function.
//!
//! rustix has no `sigprocmask`/`signalfd` and no `close_range`, and the
//! standard library's only hook between `fork` and `exec` (`pre_exec`) is
//! unsafe. Nothing else in the crate may use `unsafe`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

/// A set of signals, as the kernel takes it.
#[derive(Clone, Copy)]
pub(crate) struct SigSet(libc::sigset_t);

impl SigSet {
    pub(crate) fn new(signals: impl IntoIterator<Item = i32>) -> io::Result<SigSet> {
        // SAFETY: `sigemptyset` initializes every byte of the set before
        // `sigaddset` reads it; both only write into the local.
        unsafe {
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            for signo in signals {
                if libc::sigaddset(&mut set, signo) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(SigSet(set))
        }
    }
}

/// `pthread_sigmask(how, set)` on the calling thread (`SIG_BLOCK`,
/// `SIG_UNBLOCK` or `SIG_SETMASK`). Async-signal-safe.
pub(crate) fn sigmask(how: libc::c_int, set: &SigSet) -> io::Result<()> {
    // SAFETY: `set` is an initialized sigset; a null old set is allowed.
    match unsafe { libc::pthread_sigmask(how, &set.0, std::ptr::null_mut()) } {
        0 => Ok(()),
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}

/// A close-on-exec signalfd reading `set`.
pub(crate) fn signalfd(set: &SigSet, nonblock: bool) -> io::Result<OwnedFd> {
    let flags = libc::SFD_CLOEXEC | if nonblock { libc::SFD_NONBLOCK } else { 0 };
    // SAFETY: `set` is an initialized sigset; -1 asks for a new fd.
    let fd = unsafe { libc::signalfd(-1, &set.0, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Marks every fd from `first` up close-on-exec (`close_range` with
/// `CLOSE_RANGE_CLOEXEC`, Linux 5.11+). Async-signal-safe; closes nothing, so
/// no owner of those fds is disturbed.
pub(crate) fn cloexec_from(first: u32) -> io::Result<()> {
    let (last, flags) = (u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
    // SAFETY: a raw syscall with integer arguments only; it changes flags,
    // never closes an fd.
    match unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Runs `setup.in_child()` in `cmd`'s child between `fork` and `exec`.
pub(crate) fn before_exec(cmd: &mut std::process::Command, setup: crate::spawn::ChildSetup) {
    // SAFETY: the closure runs in the forked child, where only
    // async-signal-safe code may run. `ChildSetup::in_child` is written to be:
    // it makes raw syscalls through rustix and the functions above, writes to
    // stack buffers, takes no lock and allocates nothing (its paths were
    // built before the fork, and its errors come from raw errnos).
    unsafe {
        cmd.pre_exec(move || setup.in_child());
    }
}
