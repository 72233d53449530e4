//! cgroup v1 notifications: an eventfd registered through
//! `cgroup.event_control`.
//!
//! Writing `"<eventfd> <fd of a control file> [args]"` to
//! `cgroup.event_control` asks the kernel to signal the eventfd on OOM
//! (`memory.oom_control`), on memory pressure (`memory.pressure_level`,
//! args `low|medium|critical[,hierarchy|local]`) or when usage crosses a
//! threshold (`memory.usage_in_bytes`, args the byte count). The control
//! file's fd is needed only for the write and is closed right after, so a
//! watch costs one fd. Every registration is also signalled once when the
//! cgroup is removed (12–40 ms after the rmdir), which is why each watch
//! checks that the cgroup still exists before believing a notification.
//!
//! memcg v1 is being retired (`CONFIG_MEMCG_V1`; PREEMPT_RT kernels answer
//! `EOPNOTSUPP`): a refusal is a clear error naming the cgroup.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::event::{eventfd, EventfdFlags};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::cgroupfs::{is_removed, read_at_start, CgroupDir};
use crate::cgroup::CgroupVersion;
use crate::{Error, Result};

/// Registers a new eventfd for `control_file` (with `args`) in `dir`.
pub(crate) fn register(dir: &CgroupDir, control_file: &str, args: &str) -> Result<OwnedFd> {
    if dir.version() != CgroupVersion::V1 {
        return Err(Error::path(
            "watch",
            dir.path(),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{control_file} notifications need a cgroup v1 memory hierarchy"),
            ),
        ));
    }
    let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
        .map_err(|e| Error::path("create eventfd for", dir.path(), e.into()))?;
    let control = dir.open_file(control_file, OFlags::RDONLY)?;
    let line = format!("{} {} {}", efd.as_raw_fd(), control.as_raw_fd(), args);
    dir.write_file("cgroup.event_control", line.trim_end().as_bytes())
        .map_err(|e| explain_refusal(e, dir.path(), control_file))?;
    Ok(efd)
}

fn explain_refusal(e: Error, dir: &Path, control_file: &str) -> Error {
    let why = match e.raw_os_error() {
        Some(c) if c == Errno::OPNOTSUPP.raw_os_error() => {
            "the kernel refuses memcg v1 event notifications (EOPNOTSUPP: PREEMPT_RT, or \
             memcg v1 is being retired on this kernel)"
        }
        Some(c) if c == Errno::INVAL.raw_os_error() => {
            "the kernel rejected the registration (EINVAL: bad arguments, or the file does not \
             support notifications)"
        }
        _ => return e,
    };
    Error::path(
        "register cgroup v1 notification",
        &dir.join(control_file),
        io::Error::new(e.kind(), why),
    )
}

/// Which cgroup a v1 watch was armed on: the directory's path and inode.
///
/// The eventfd belongs to that cgroup. If it is removed and a cgroup of the
/// same name is created (a restarted container) before the removal's
/// notification is handled, the path finds the new one; the inode tells
/// them apart, so the watch still ends with its cgroup.
pub(crate) struct Identity {
    pub(crate) dir: PathBuf,
    inode: u64,
}

impl Identity {
    pub(crate) fn of(dir: &CgroupDir) -> Result<Identity> {
        Ok(Identity {
            dir: dir.path().to_path_buf(),
            inode: dir.inode()?,
        })
    }

    /// Whether the cgroup the watch was armed on still exists.
    pub(crate) fn is_present(&self) -> Result<bool> {
        match rustix::fs::stat(&self.dir) {
            Ok(st) => Ok(st.st_ino == self.inode),
            Err(e) if is_removed(e) => Ok(false),
            Err(e) => Err(Error::path("stat", &self.dir, e.into())),
        }
    }
}

/// Reads the file at `path` into `buf`; `Ok(None)` when its cgroup is gone.
/// v1 watches keep the file's path (built once, at registration), not a
/// directory fd, so that each costs one fd.
pub(crate) fn read_if_present<'b>(
    path: &Path,
    buf: &'b mut [u8],
) -> rustix::io::Result<Option<&'b [u8]>> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) if is_removed(e) => return Ok(None),
        Err(e) => return Err(e),
    };
    match read_at_start(&fd, buf) {
        Ok(b) => Ok(Some(b)),
        Err(e) if is_removed(e) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(errno: Errno) -> String {
        let e = Error::path("write", Path::new("/cg/cgroup.event_control"), errno.into());
        explain_refusal(e, Path::new("/cg"), "memory.oom_control").to_string()
    }

    #[test]
    fn a_kernel_without_v1_notifications_is_named_as_such() {
        let text = refused(Errno::OPNOTSUPP);
        assert!(text.contains("/cg/memory.oom_control"), "{text}");
        assert!(
            text.contains("EOPNOTSUPP") && text.contains("PREEMPT_RT"),
            "{text}"
        );
        assert!(refused(Errno::INVAL).contains("EINVAL"));
        // Anything else passes through as it was.
        assert!(refused(Errno::ACCESS).contains("cgroup.event_control"));
    }
}
