//! Marking a forked child's inherited fds close-on-exec, on every kernel.
//!
//! `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)` does it in one call, but the
//! flag needs Linux 5.11: 5.10 answers `EINVAL`, kernels before 5.9 have no
//! `close_range` (`ENOSYS`), and a container's seccomp profile may refuse it
//! (`EPERM`). There the child lists its own fd table, `/proc/self/fd`, and
//! sets `FD_CLOEXEC` on every fd it finds from 3 up.
//!
//! Why the child lists the table, not the parent before `fork`: the parent
//! may be multi-threaded, and another thread may open an fd between a
//! listing and the fork. `O_CLOEXEC` discipline would cover fds opened by
//! this crate and by the standard library, but not a caller's `dup` or a C
//! library's `open` without the flag, which is what the option is there to
//! catch. The child's table is a copy taken at the fork, and the child runs
//! one thread: what it lists is exactly what it will pass to `exec`, and
//! nothing can be added in between.
//!
//! Why nothing is allocated: after a fork from a multi-threaded parent,
//! only async-signal-safe code may run (a lock, such as malloc's, may be
//! held by a thread that does not exist in the child). The listing reads
//! `getdents64` records into a buffer on the stack (rustix's `RawDir`), the
//! path is a constant, and each fd is changed with one `fcntl`.
//!
//! The walk needs `/proc` mounted where the child runs and one free fd for
//! the directory (the table must not be full up to `RLIMIT_NOFILE`).
//! [`CloexecMethod::detect`] checks both in the parent, so that a caller
//! can fail with a message instead of an errno from the child.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;

use rustix::fs::{Mode, OFlags, RawDir};

use crate::sys;
use crate::{Error, Result, Subject};

/// `/proc/self/fd`, built at compile time: the child may not allocate.
const PROC_SELF_FD: &CStr = match CStr::from_bytes_with_nul(b"/proc/self/fd\0") {
    Ok(c) => c,
    Err(_) => panic!("a NUL in the constant"),
};

/// How a child's inherited fds are made close-on-exec
/// ([`ChildSetup::close_inherited_fds`](super::ChildSetup::close_inherited_fds)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloexecMethod {
    /// One `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)` (Linux 5.11+).
    CloseRange,
    /// The child reads `/proc/self/fd` into a stack buffer and sets
    /// `FD_CLOEXEC` on each fd from 3 up: for kernels that refuse the flag
    /// (5.10: `EINVAL`; before 5.9: `ENOSYS`) or a seccomp filter that
    /// refuses the call.
    ProcSelfFd,
}

impl CloexecMethod {
    /// The method this process can use: `close_range` with the flag if the
    /// kernel takes it (asked on an empty range, which changes nothing),
    /// else the `/proc/self/fd` walk if that directory can be opened.
    ///
    /// The error, when neither works, names both calls and the kernel
    /// version the flag needs.
    ///
    /// ```
    /// use ctrmon::spawn::CloexecMethod;
    /// // `CloseRange` on Linux 5.11+, unless a seccomp filter refuses it.
    /// let method = CloexecMethod::detect()?;
    /// println!("inherited fds are marked with {method:?}");
    /// # Ok::<(), ctrmon::Error>(())
    /// ```
    pub fn detect() -> Result<CloexecMethod> {
        // The range ~0..=~0 holds no fd: a kernel that knows the flag
        // answers 0 and marks nothing.
        let refused = match sys::cloexec_from(u32::MAX) {
            Ok(()) => return Ok(CloexecMethod::CloseRange),
            Err(e) => e,
        };
        match rustix::fs::open(
            PROC_SELF_FD,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(_) => Ok(CloexecMethod::ProcSelfFd),
            Err(e) => Err(neither(&refused, e.into())),
        }
    }
}

/// The error when the kernel refuses the flag and `/proc/self/fd` cannot
/// be opened either.
fn neither(refused: &io::Error, open: io::Error) -> Error {
    Error::new(
        "mark inherited fds close-on-exec",
        Subject::Path(PROC_SELF_FD.to_string_lossy().into_owned().into()),
        io::Error::new(
            open.kind(),
            format!(
                "close_range(CLOSE_RANGE_CLOEXEC) was refused ({refused}; the flag needs \
                 Linux 5.11, the call 5.9), and the fallback cannot open /proc/self/fd \
                 ({open})"
            ),
        ),
    )
}

/// In the forked child: marks every fd from `first` up close-on-exec.
/// Async-signal-safe: raw syscalls and a stack buffer only.
///
/// With [`CloexecMethod::CloseRange`] a refusal of the flag still falls
/// back to the walk, so that a setup made where the flag works (or a
/// seccomp filter installed later) does not fail the spawn.
pub(crate) fn in_child(method: CloexecMethod, first: u32) -> io::Result<()> {
    if method == CloexecMethod::CloseRange {
        match sys::cloexec_from(first) {
            Ok(()) => return Ok(()),
            Err(e) if refused(&e) => {}
            Err(e) => return Err(e),
        }
    }
    mark_listed(first)
}

/// The errnos with which a kernel or a seccomp filter refuses the call or
/// its flag, as opposed to failing it.
fn refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EPERM)
    )
}

/// The `/proc/self/fd` walk. The directory's own fd is skipped (it is
/// close-on-exec already, and closed on return).
fn mark_listed(first: u32) -> io::Result<()> {
    let dir = rustix::fs::open(
        PROC_SELF_FD,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let own = dir.as_raw_fd();
    // 1 KiB holds about 40 records; `RawDir` reads again when it is used up.
    let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
    let mut entries = RawDir::new(&dir, &mut buf);
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let Some(fd) = fd_number(entry.file_name().to_bytes()) else {
            // `.` and `..`.
            continue;
        };
        if fd < first || fd as i32 == own {
            continue;
        }
        match sys::set_cloexec_raw(fd as i32) {
            // EBADF cannot happen in a one-threaded child (nothing closes
            // fds behind the walk), but it would mean "no fd to mark".
            Err(e) if e.raw_os_error() != Some(libc::EBADF) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The fd number a `/proc/self/fd` entry names: a decimal number that fits
/// an `i32`; `None` for anything else (`.`, `..`). Pure.
pub(crate) fn fd_number(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = name.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    u32::try_from(n).ok().filter(|&n| n <= i32::MAX as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_names_parse() {
        assert_eq!(fd_number(b"0"), Some(0));
        assert_eq!(fd_number(b"17"), Some(17));
        assert_eq!(fd_number(b"2147483647"), Some(i32::MAX as u32));
        for bad in [
            &b"."[..],
            b"..",
            b"",
            b"2147483648",
            b"99999999999",
            b"-1",
            b"1a",
        ] {
            assert_eq!(fd_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_last_error_names_both_calls_and_the_kernel() {
        let e = neither(
            &io::Error::from_raw_os_error(libc::EINVAL),
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        let text = e.to_string();
        for part in [
            "close_range(CLOSE_RANGE_CLOEXEC)",
            "Linux 5.11",
            "/proc/self/fd",
            "os error 22",
            "os error 2)",
        ] {
            assert!(text.contains(part), "{part:?} missing: {text}");
        }
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn this_kernel_takes_one_method() {
        // Whatever the kernel: /proc is mounted here, so one of them works.
        assert!(CloexecMethod::detect().is_ok());
    }
}
