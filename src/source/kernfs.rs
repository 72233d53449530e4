//! Pollable kernfs files (cgroup v2 `memory.events`, `cgroup.events`).
//!
//! kernfs signals a change with `EPOLLPRI | EPOLLERR`, and keeps signalling
//! (level-triggered) until the file is read again from offset 0 — seeking
//! alone does not clear it. A freshly opened fd is ready at once, so the
//! first readiness after arming usually finds nothing new. Changes are
//! rate-limited by the kernel (about 20 ms), so one notification may cover
//! several increments: only counter differences are meaningful.
//! After an rmdir the open fd reads `ENODEV`.

use std::os::fd::OwnedFd;

use rustix::event::epoll::EventFlags;
use rustix::fs::OFlags;

use super::cgroupfs::{is_removed, read_at_start, CgroupDir};
use crate::{Error, Result};

pub(crate) const INTEREST: EventFlags = EventFlags::PRI;

/// Opens `name` in `dir` for polling.
pub(crate) fn open(dir: &CgroupDir, name: &str) -> Result<OwnedFd> {
    dir.open_file(name, OFlags::RDONLY | OFlags::NONBLOCK)
}

/// Re-reads the file from offset 0 (clearing the notification). `Ok(None)`
/// when the cgroup has been removed.
pub(crate) fn reread<'b>(fd: &OwnedFd, buf: &'b mut [u8]) -> rustix::io::Result<Option<&'b [u8]>> {
    match read_at_start(fd, buf) {
        Ok(b) => Ok(Some(b)),
        Err(e) if is_removed(e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Turns a parse failure of `name` in `dir` into the crate's error.
pub(crate) fn parse_error(
    dir: &std::path::Path,
    name: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::path(
        "parse",
        &dir.join(name),
        std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    )
}
