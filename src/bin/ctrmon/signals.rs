//! SIGINT and SIGTERM as a file descriptor (`signalfd`), and what the child
//! does between `fork` and `exec`.
//!
//! The only `unsafe` in the project lives here, in the command line tool,
//! not the library (which is `#![forbid(unsafe_code)]`): rustix has no safe
//! `sigprocmask`/`signalfd`, and the standard library's only hook between
//! fork and exec (`pre_exec`) is unsafe. The signals are blocked in the
//! calling thread before any other thread starts (threads inherit the mask),
//! so they are only ever delivered through the fd. The block is inherited
//! by a spawned child too (checked: the standard library leaves the mask as
//! it is), so the child unblocks them before `exec`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

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

/// A signal read from the signalfd.
pub struct Received {
    pub signo: i32,
    /// Sent by the kernel (`SI_KERNEL`): a terminal's Ctrl-C or Ctrl-\,
    /// which the terminal also sends to the child in the same process group.
    pub from_kernel: bool,
}

/// Blocks until a signal arrives on `fd` and returns it.
pub fn next(fd: &OwnedFd) -> std::io::Result<Received> {
    // struct signalfd_siginfo is 128 bytes: ssi_signo (u32), ssi_errno
    // (i32), ssi_code (i32), ...
    let mut buf = [0u8; 128];
    let word = |b: &[u8], at: usize| [b[at], b[at + 1], b[at + 2], b[at + 3]];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(128) => {
                return Ok(Received {
                    signo: u32::from_ne_bytes(word(&buf, 0)) as i32,
                    from_kernel: i32::from_ne_bytes(word(&buf, 8)) == libc::SI_KERNEL,
                })
            }
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

/// Makes `cmd`'s child join the cgroup whose `cgroup.procs` is `procs`
/// and unblock SIGINT and SIGTERM, between fork and exec: the command is in
/// its cgroup from its first instruction, and ctrmon itself never is.
pub fn start_in_cgroup(cmd: &mut std::process::Command, procs: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    // Built before the fork: the child may not allocate.
    let path = std::ffi::CString::new(procs.as_os_str().as_bytes())?;
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed. It calls `getpid`, `open`,
    // `write`, `close`, `sigemptyset`, `sigaddset` and `pthread_sigmask`,
    // all async-signal-safe; it formats the pid into a stack buffer, takes
    // no lock and allocates nothing (`path` was allocated before the fork;
    // the error values are built from a raw errno, which does not allocate).
    // Every pointer passed is to a live local or to `path`, which the
    // closure owns.
    unsafe {
        cmd.pre_exec(move || {
            let mut digits = [0u8; 12];
            let mut n = libc::getpid() as u32;
            let mut at = digits.len();
            loop {
                at -= 1;
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let len = digits.len() - at;
            let written = libc::write(fd, digits[at..].as_ptr().cast(), len);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if written != len as isize {
                return Err(err);
            }
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
    Ok(())
}
