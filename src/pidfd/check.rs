//! Is this fd a pidfd? Asked of an fd another process sent us, before we
//! trust it to name a process.
//!
//! Since Linux 6.9 pidfds live on their own filesystem, pidfs, whose
//! `fstatfs` magic says so. Before that they were anonymous inodes, which
//! share one filesystem with eventfds, signalfds and epoll fds; only the
//! link name in `/proc/self/fd` (`anon_inode:[pidfd]`, which pidfs keeps for
//! compatibility) tells them apart.

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

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
