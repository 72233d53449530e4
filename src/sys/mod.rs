//! Every call of the crate that needs `unsafe`, each behind a safe function.
//!
//! rustix has no `sigprocmask`/`signalfd`, no `close_range` and no
//! `PIDFD_GET_INFO`, and the standard library's only hook between `fork` and
//! `exec` (`pre_exec`) is unsafe. Nothing else in the crate may use `unsafe`.

pub(crate) mod lock;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
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

/// `ioctl(PIDFD_GET_INFO)` asking for `mask` (Linux 6.13+): the kernel's
/// `mask` of what it filled in, and the wait status (`exit_code`, valid when
/// the mask has `PIDFD_INFO_EXIT`).
pub(crate) fn pidfd_get_info(pidfd: BorrowedFd<'_>, mask: u64) -> io::Result<(u64, i32)> {
    // SAFETY: `pidfd_info` is plain integers, so all-zero is a valid value.
    let mut info: libc::pidfd_info = unsafe { std::mem::zeroed() };
    info.mask = mask;
    // SAFETY: the request's size (encoded in `PIDFD_GET_INFO`) is that of
    // `info`, which outlives the call; the kernel writes at most that much.
    let rc = unsafe { libc::ioctl(pidfd.as_raw_fd(), libc::PIDFD_GET_INFO, &mut info) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((info.mask, info.exit_code))
}

/// `getsockopt(SO_PEERCRED)` on a connected unix socket: the peer's pid,
/// effective uid and gid when it connected. The pid is 0 for a peer outside
/// our pid namespace, which rustix's `UCred` (a non-zero `Pid`) cannot
/// hold: hence this one.
pub(crate) fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<(i32, u32, u32)> {
    // SAFETY: `ucred` is plain integers, so all-zero is a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` outlive the call, and `len` is `cred`'s size:
    // the kernel writes at most that much and stores the size it wrote.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.pid, cred.uid, cred.gid))
}

/// `fcntl(fd, F_SETFD, FD_CLOEXEC)` on an fd known only by its number (the
/// `/proc/self/fd` walk of a forked child). Async-signal-safe. `FD_CLOEXEC`
/// is the only fd flag, so setting it loses nothing.
pub(crate) fn set_cloexec_raw(fd: i32) -> io::Result<()> {
    // SAFETY: fcntl takes any integer; on a number that is not an open fd
    // it fails with EBADF. It changes the fd's flag, never closes it, so no
    // owner of the fd is disturbed.
    match unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// `pidfd_send_signal(pidfd, 0)`: delivers nothing, but succeeds (or fails
/// with `EPERM`) exactly while the process has not been reaped, and fails
/// with `ESRCH` after. rustix's wrapper takes only non-zero signals.
pub(crate) fn pidfd_signal_zero(pidfd: BorrowedFd<'_>) -> io::Result<()> {
    let null = std::ptr::null::<libc::siginfo_t>();
    // SAFETY: a raw syscall on a borrowed (so open) fd; a null siginfo and
    // zero flags are what the call takes for a plain signal, and signal 0
    // is only a check.
    match unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), 0, null, 0) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
