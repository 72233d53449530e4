//! Is this fd a pidfd? Asked of an fd another process sent us, before we
//! trust it to name a process.
//!
//! Since Linux 6.9 pidfds live on their own filesystem, pidfs, whose
//! `fstatfs` magic says so. Before that they were anonymous inodes, which
//! share one filesystem with eventfds, signalfds and epoll fds; only the
//! link name in `/proc/self/fd` (`anon_inode:[pidfd]`, which pidfs keeps for
//! compatibility) tells them apart.
//!
//! Which process a pidfd names is in its `/proc/self/fdinfo` entry
//! (`Pid:`, Linux 5.4+): the pid in our namespace, `0` when the process is
//! outside it, `-1` once it has been reaped.

use std::os::fd::{AsRawFd, BorrowedFd};

/// `PIDFS_MAGIC` (`"PIDF"`), `include/uapi/linux/magic.h`.
const PIDFS_MAGIC: rustix::fs::FsWord = 0x5049_4446;

/// The link name of a pidfd in `/proc/self/fd` on every kernel.
const PIDFD_LINK: &str = "anon_inode:[pidfd]";

/// True when `fd` refers to a process (a pidfd).
pub fn is_pidfd(fd: BorrowedFd<'_>) -> bool {
    if rustix::fs::fstatfs(fd).is_ok_and(|st| st.f_type == PIDFS_MAGIC) {
        return true;
    }
    link_name(fd).as_deref() == Some(PIDFD_LINK)
}

/// What `/proc/self/fd/N` says `fd` is (`pipe:[…]`, `anon_inode:[eventfd]`,
/// a path...), for error messages; `None` without procfs.
pub(crate) fn link_name(fd: BorrowedFd<'_>) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    Some(link.to_string_lossy().into_owned())
}

/// The pid of the process `pidfd` names, from `/proc/self/fdinfo`: `None`
/// when it has already been reaped or is outside our pid namespace (or
/// `pidfd` is not a pidfd).
pub fn pid_of(pidfd: BorrowedFd<'_>) -> crate::Result<Option<i32>> {
    let path = format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd());
    let info = std::fs::read(&path)
        .map_err(|e| crate::Error::new("read", crate::Subject::Path(path.into()), e))?;
    Ok(parse_fdinfo_pid(&info)
        .and_then(|p| i32::try_from(p).ok())
        .filter(|&p| p > 0))
}

/// `PIDFD_THREAD` (Linux 6.9+) is `O_EXCL`, and the kernel keeps it in the
/// pidfd's file flags (`F_GETFL`), which is how a thread's pidfd is told
/// from a process's even after the thread is gone.
const PIDFD_THREAD: rustix::fs::OFlags = rustix::fs::OFlags::EXCL;

/// Why `pidfd` does not stand for a whole process, if it does not: it was
/// opened for one thread (`PIDFD_THREAD`: it becomes readable when that
/// thread ends, while its process may run on), or it names a thread that
/// is not its thread group's leader. `None` for a process's pidfd, and for
/// one whose process has been reaped (no thread of it is left to ask
/// about).
///
/// The leader check reads the pid from fdinfo, then `Tgid:` from
/// `/proc/<pid>/status`, then fdinfo again: the pidfd pins its pid number
/// while the task lives, so when the second read still says the same pid,
/// the status read was that task's and not a reuser's.
pub(crate) fn not_a_process(pidfd: BorrowedFd<'_>) -> crate::Result<Option<String>> {
    let flags = rustix::fs::fcntl_getfl(pidfd)
        .map_err(|e| crate::Error::os("read flags of", crate::Subject::Fd(pidfd.as_raw_fd()), e))?;
    let Some(pid) = pid_of(pidfd)? else {
        return Ok(flags
            .contains(PIDFD_THREAD)
            .then(|| "a thread's pidfd (PIDFD_THREAD), not a process's".to_string()));
    };
    if flags.contains(PIDFD_THREAD) {
        return Ok(Some(format!(
            "a thread's pidfd (PIDFD_THREAD, thread {pid}), not a process's: it reports \
             the thread's end, not its process's"
        )));
    }
    let Ok(status) = std::fs::read(format!("/proc/{pid}/status")) else {
        // Gone meanwhile (or no procfs): nothing says it is a thread.
        return Ok(None);
    };
    let tgid = parse_status_tgid(&status);
    if pid_of(pidfd)? != Some(pid) {
        return Ok(None);
    }
    Ok(tgid
        .filter(|&t| t != i64::from(pid))
        .map(|t| format!("a pidfd for thread {pid} of process {t}, not for a process")))
}

/// The `Tgid:` field of a `/proc/<pid>/status` file. Pure.
pub(crate) fn parse_status_tgid(status: &[u8]) -> Option<i64> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Tgid:"))?;
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

/// The `Pid:` field of an fdinfo file. Pure; `None` without one.
pub fn parse_fdinfo_pid(fdinfo: &[u8]) -> Option<i64> {
    let line = fdinfo
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Pid:"))?;
    let text = std::str::from_utf8(line).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn fdinfo_pids_parse() {
        let info =
            b"pos:\t0\nflags:\t02000002\nmnt_id:\t4\nino:\t249669\nPid:\t22565\nNSpid:\t22565\n";
        assert_eq!(parse_fdinfo_pid(info), Some(22565));
        assert_eq!(parse_fdinfo_pid(b"Pid:\t-1\nNSpid:\t-1\n"), Some(-1));
        assert_eq!(parse_fdinfo_pid(b"NSpid:\t5\n"), None);
        assert_eq!(parse_fdinfo_pid(b"Pid:\tx\n"), None);
        assert_eq!(parse_fdinfo_pid(b""), None);
    }

    #[test]
    fn status_tgids_parse() {
        assert_eq!(
            parse_status_tgid(b"Name:\tx\nTgid:\t42\nPid:\t43\n"),
            Some(42)
        );
        assert_eq!(parse_status_tgid(b"Tgid:\tx\n"), None);
        assert_eq!(parse_status_tgid(b""), None);
    }

    #[test]
    fn a_process_pidfd_is_a_process() {
        let me = rustix::process::getpid();
        let pidfd = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()).unwrap();
        assert_eq!(not_a_process(pidfd.as_fd()).unwrap(), None);
    }

    #[test]
    fn the_pid_of_a_pidfd_until_it_is_reaped() {
        let me = rustix::process::getpid();
        let pidfd = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()).unwrap();
        assert_eq!(
            pid_of(pidfd.as_fd()).unwrap(),
            Some(me.as_raw_nonzero().get())
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = rustix::process::Pid::from_child(&child);
        let fd = rustix::process::pidfd_open(id, rustix::process::PidfdFlags::empty()).unwrap();
        assert_eq!(pid_of(fd.as_fd()).unwrap(), Some(id.as_raw_nonzero().get()));
        child.wait().unwrap();
        assert_eq!(pid_of(fd.as_fd()).unwrap(), None);
    }

    #[test]
    fn pidfds_and_others() {
        let me = rustix::process::getpid();
        let pidfd = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()).unwrap();
        assert!(is_pidfd(pidfd.as_fd()));
        let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        assert!(!is_pidfd(efd.as_fd()));
        assert_eq!(
            link_name(efd.as_fd()).as_deref(),
            Some("anon_inode:[eventfd]")
        );
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert!(!is_pidfd(r.as_fd()));
        let dir = std::fs::File::open("/proc").unwrap();
        assert!(!is_pidfd(dir.as_fd()));
    }
}
