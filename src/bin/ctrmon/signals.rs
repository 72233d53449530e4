//! SIGINT and SIGTERM as a file descriptor (`signalfd`).
//!
//! The only `unsafe` in the project lives here, in the command line tool,
//! not the library (which is `#![forbid(unsafe_code)]`): rustix has no
//! safe `sigprocmask`/`signalfd`, so they are called through `libc`. The
//! signals are blocked in the calling thread before any other thread
//! starts (threads inherit the mask), so they are only ever delivered
//! through the fd. Children do not inherit the block: the standard
//! library resets the signal mask in a spawned child before `exec`.

use std::os::fd::{FromRawFd, OwnedFd};

/// Blocks SIGINT and SIGTERM and returns a blocking, close-on-exec
/// signalfd that reads them.
pub fn block_and_open() -> std::io::Result<OwnedFd> {
    // SAFETY: `set` is a plain bit set that `sigemptyset` fully initializes
    // before anything reads it; every pointer passed is to a live local, and
    // a null `oldset` is allowed by `pthread_sigmask`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `signalfd` just returned this fd and nothing else owns it.
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Blocks until a signal arrives on `fd` and returns its number.
pub fn next(fd: &OwnedFd) -> std::io::Result<i32> {
    // struct signalfd_siginfo is 128 bytes; ssi_signo is its first u32.
    let mut buf = [0u8; 128];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(128) => return Ok(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as i32),
            Ok(n) => {
                return Err(std::io::Error::other(format!(
                    "short read of {n} bytes from signalfd"
                )))
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Makes `cmd`'s child start with SIGINT and SIGTERM unblocked: the block
/// set by [`block_and_open`] is inherited across `fork` and `exec`, and the
/// standard library leaves the mask as it is.
pub fn unblock_in_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: it builds the set on the
    // stack and calls `sigemptyset`, `sigaddset` and `pthread_sigmask`, all
    // async-signal-safe, allocating nothing and taking no lock.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            match libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) {
                0 => Ok(()),
                rc => Err(std::io::Error::from_raw_os_error(rc)),
            }
        });
    }
}
