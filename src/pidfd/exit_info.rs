//! The exit status of any process, from a pidfd (`PIDFD_GET_INFO` with
//! `PIDFD_INFO_EXIT`, Linux 6.15+).
//!
//! `waitid` gives a status only to the parent, and only once. Since 6.15 the
//! kernel also keeps the wait status with the process's pidfs inode when the
//! process is reaped (by whichever parent reaps it), and hands it to anyone
//! holding a pidfd for it. The pidfd must have been opened before the
//! process was reaped (after that, `pidfd_open` fails with `ESRCH`), which a
//! watch does anyway.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::sys;
use crate::{Error, ExitStatus, Result, Subject};

/// What the kernel knows about a process's exit.
///
/// What each kernel answers, for a process that has exited:
///
/// | kernel | still a zombie | reaped by its parent |
/// | --- | --- | --- |
/// | 6.15+ | no exit in the mask: [`ExitInfo::NotYet`] | the status: [`ExitInfo::Exited`] |
/// | 6.13, 6.14 (no exit info) | no exit in the mask: `NotYet` | `ESRCH`: [`ExitInfo::Unsupported`] |
/// | before 6.13 (no `PIDFD_GET_INFO`) | `ENOTTY` (or `EINVAL`): `Unsupported` | the same |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    /// The process has exited and its parent has reaped it: this is the
    /// status its parent's `wait` returned.
    Exited(ExitStatus),
    /// No exit status yet: the process is running, or it has exited and its
    /// parent has not reaped it yet (on a kernel before 6.15 this is also
    /// what a zombie gives; once reaped, it becomes `Unsupported`).
    NotYet,
    /// This kernel does not keep exit statuses for pidfds (before 6.15), or
    /// the process is outside this process's pid namespace. The status can
    /// only come from the process's parent.
    Unsupported,
}

const PIDFD_INFO_EXIT: u64 = libc::PIDFD_INFO_EXIT as u64;

/// Asks the kernel for the exit status of the process `pidfd` refers to.
///
/// Works for any process, child or not. See [`ExitInfo`] for what each
/// kernel answers. Errors other than the ones that mean "not supported"
/// name the fd.
pub fn exit_info(pidfd: BorrowedFd<'_>) -> Result<ExitInfo> {
    let ask = || sys::pidfd_get_info(pidfd, PIDFD_INFO_EXIT).map_err(|e| e.raw_os_error());
    let mut answer = ask();
    // Asked while the parent reaps it, a 6.15+ kernel can read "no exit
    // information yet", then find the task still there but already
    // detached from its pids, and say ESRCH. The reap records the exit
    // information before it detaches the pids, so the next question gets
    // the status. (Seen once on 6.18 in a full test run.) On 6.13 and 6.14
    // ESRCH after the reap is final, and asking again says so again.
    if matches!(answer, Err(Some(libc::ESRCH))) {
        answer = ask();
    }
    classify(answer).map_err(|errno| {
        Error::new(
            "read exit info of pidfd",
            Subject::Fd(pidfd.as_raw_fd()),
            std::io::Error::from_raw_os_error(errno),
        )
    })
}

/// The kernel's answer (`mask`, `exit_code`) or errno, as an [`ExitInfo`].
/// Pure, so that every kernel's answer can be tested on any kernel.
fn classify(
    answer: std::result::Result<(u64, i32), Option<i32>>,
) -> std::result::Result<ExitInfo, i32> {
    match answer {
        Ok((mask, status)) if mask & PIDFD_INFO_EXIT != 0 => {
            Ok(ExitInfo::Exited(decode_wait_status(status)))
        }
        Ok(_) => Ok(ExitInfo::NotYet),
        // No such ioctl (ENOTTY; EINVAL from kernels that check the size
        // first); no exit info kept for a reaped process (6.13/6.14: ESRCH),
        // or a process outside our pid namespace (ESRCH, newer: EREMOTE).
        Err(Some(libc::ENOTTY | libc::EINVAL | libc::ESRCH | libc::EREMOTE)) => {
            Ok(ExitInfo::Unsupported)
        }
        Err(errno) => Err(errno.unwrap_or(libc::EIO)),
    }
}

/// Decodes a wait status as `wait(2)` returns it: the exit code in bits
/// 8–15 when the low seven bits are zero, else the signal in the low seven
/// bits (bit 7: a core was dumped). Pure; any other value (a stopped or
/// continued status, which an exit never is, or stray high bits) decodes as
/// `Unknown`.
pub fn decode_wait_status(status: i32) -> ExitStatus {
    let sig = status & 0x7f;
    if status & !0xff00 == 0 {
        ExitStatus::Code(status >> 8)
    } else if sig != 0x7f && status & !0xff == 0 {
        ExitStatus::Signal(sig)
    } else {
        ExitStatus::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(decode_wait_status(0), ExitStatus::Code(0));
        assert_eq!(decode_wait_status(3 << 8), ExitStatus::Code(3));
        assert_eq!(decode_wait_status(255 << 8), ExitStatus::Code(255));
        assert_eq!(decode_wait_status(9), ExitStatus::Signal(9));
        // SIGSEGV with a core dump.
        assert_eq!(decode_wait_status(0x80 | 11), ExitStatus::Signal(11));
        // Stopped by SIGSTOP, continued: not exits.
        assert_eq!(decode_wait_status((19 << 8) | 0x7f), ExitStatus::Unknown);
        assert_eq!(decode_wait_status(0xffff), ExitStatus::Unknown);
        assert_eq!(decode_wait_status(-1), ExitStatus::Unknown);
        assert_eq!(decode_wait_status(i32::MIN), ExitStatus::Unknown);
    }

    #[test]
    fn every_kernel_answer_classifies() {
        assert_eq!(
            classify(Ok((PIDFD_INFO_EXIT | 1, 3 << 8))),
            Ok(ExitInfo::Exited(ExitStatus::Code(3)))
        );
        // 6.15+ on a zombie, 6.13/6.14 on anything alive.
        assert_eq!(classify(Ok((1 | 2 | 4, 0))), Ok(ExitInfo::NotYet));
        for errno in [libc::ENOTTY, libc::EINVAL, libc::ESRCH, libc::EREMOTE] {
            assert_eq!(classify(Err(Some(errno))), Ok(ExitInfo::Unsupported));
        }
        assert_eq!(classify(Err(Some(libc::EBADF))), Err(libc::EBADF));
        assert_eq!(classify(Err(None)), Err(libc::EIO));
    }
}
