//! Safe access to a cgroup directory: verified by filesystem type, files
//! opened relative to it, symlinks never followed.
//!
//! ctrmon writes to kernel control files (`cgroup.event_control`, PSI
//! triggers). A path from a caller or from a parsed mountinfo could point
//! anywhere, so before anything is written the directory is opened with
//! `openat2(RESOLVE_NO_SYMLINKS)` — a symlink anywhere in the path is
//! refused, also one before the last component or named with a trailing
//! slash, which `O_NOFOLLOW` alone would follow — its filesystem type is
//! checked with `fstatfs` on that very fd (no window between check and use),
//! and every file is opened with `openat` relative to it, with `O_NOFOLLOW`.
//! (Before Linux 5.6, which has no `openat2`, only the last component is
//! checked.)

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{openat, Mode, OFlags, ResolveFlags, CWD, PROC_SUPER_MAGIC};
use rustix::io::Errno;

use crate::cgroup::CgroupVersion;
use crate::{Error, Result, Subject};

const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

/// The cgroup version of the filesystem `fd` is on, if it is a cgroup one.
pub(crate) fn version_of(fd: impl AsFd) -> rustix::io::Result<Option<CgroupVersion>> {
    let st = rustix::fs::fstatfs(fd)?;
    Ok(match st.f_type as u64 {
        CGROUP_SUPER_MAGIC => Some(CgroupVersion::V1),
        CGROUP2_SUPER_MAGIC => Some(CgroupVersion::V2),
        _ => None,
    })
}

fn is_procfs(fd: impl AsFd) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|st| st.f_type == PROC_SUPER_MAGIC)
}

/// Errno values that mean "the cgroup is gone": its directory was removed
/// (`ENOENT`), or a file we still hold belongs to a removed cgroup (`ENODEV`).
pub(crate) fn is_removed(e: Errno) -> bool {
    e == Errno::NOENT || e == Errno::NODEV
}

/// An open, verified cgroup directory.
pub(crate) struct CgroupDir {
    fd: OwnedFd,
    path: PathBuf,
    version: CgroupVersion,
}

impl CgroupDir {
    /// Opens `path` as a cgroup directory, refusing symlinks, non-directories
    /// and anything not on a cgroup filesystem, before any write can happen.
    pub(crate) fn open(path: &Path) -> Result<CgroupDir> {
        check_path(path)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = open_without_links(path, flags)
            .map_err(|e| Error::path("open cgroup directory", path, explain_open(e, path)))?;
        let version = version_of(&fd)
            .map_err(|e| Error::path("fstatfs", path, e.into()))?
            .ok_or_else(|| {
                Error::path(
                    "watch cgroup",
                    path,
                    io::Error::new(io::ErrorKind::InvalidInput, "not on a cgroup filesystem"),
                )
            })?;
        Ok(CgroupDir {
            fd,
            path: path.to_path_buf(),
            version,
        })
    }

    pub(crate) fn version(&self) -> CgroupVersion {
        self.version
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's inode number: a cgroup's identity, which a new
    /// cgroup of the same name does not share.
    pub(crate) fn inode(&self) -> Result<u64> {
        rustix::fs::fstat(&self.fd)
            .map(|st| st.st_ino)
            .map_err(|e| Error::path("fstat", &self.path, e.into()))
    }

    /// Opens `name` (one path component) inside the directory.
    pub(crate) fn open_file(&self, name: &str, flags: OFlags) -> Result<OwnedFd> {
        openat(
            &self.fd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            let path = self.path.join(name);
            Error::path("open", &path, explain_open(e, &path))
        })
    }

    /// Reads `name` into `buf` and returns the filled part.
    pub(crate) fn read_file<'b>(&self, name: &str, buf: &'b mut [u8]) -> Result<&'b [u8]> {
        let fd = self.open_file(name, OFlags::RDONLY)?;
        read_at_start(&fd, buf).map_err(|e| Error::path("read", &self.path.join(name), e.into()))
    }

    /// Writes `data` to `name` in one `write`, as control files require.
    pub(crate) fn write_file(&self, name: &str, data: &[u8]) -> Result<()> {
        let fd = self.open_file(name, OFlags::WRONLY)?;
        write_all_once(&fd, data).map_err(|e| Error::path("write", &self.path.join(name), e.into()))
    }
}

/// The pressure files of a cgroup, and of `/proc/pressure`.
const CGROUP_PRESSURE_FILES: [&str; 4] = [
    "cpu.pressure",
    "memory.pressure",
    "io.pressure",
    "irq.pressure",
];
const PROC_PRESSURE_FILES: [&str; 4] = ["cpu", "memory", "io", "irq"];

/// A pressure file for a PSI trigger, opened read-write: a cgroup's
/// `cpu|memory|io|irq.pressure` on a cgroup filesystem, or
/// `/proc/pressure/cpu|memory|io|irq` on procfs. The name is checked before
/// anything is opened and the filesystem after, because a trigger written
/// to any other control file would be taken as a value (a v1
/// `memory.max_usage_in_bytes` resets, a `/proc/*/comm` renames a thread).
pub(crate) fn open_pressure_file(path: &Path) -> Result<OwnedFd> {
    check_path(path)?;
    let refuse = |why: &str| {
        Error::path(
            "watch pressure",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
        )
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let in_proc =
        path.parent() == Some(Path::new("/proc/pressure")) && PROC_PRESSURE_FILES.contains(&name);
    if !in_proc && !CGROUP_PRESSURE_FILES.contains(&name) {
        return Err(refuse(
            "not a pressure file (a cgroup's cpu|memory|io|irq.pressure, or /proc/pressure/*)",
        ));
    }
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = open_without_links(path, flags)
        .map_err(|e| Error::path("open pressure file", path, explain_open(e, path)))?;
    let on_right_fs = if in_proc {
        is_procfs(&fd)
    } else {
        version_of(&fd).ok().flatten().is_some()
    };
    if !on_right_fs {
        return Err(refuse(if in_proc {
            "not on procfs"
        } else {
            "not on a cgroup filesystem"
        }));
    }
    Ok(fd)
}

/// Empty paths and paths with NUL bytes are refused up front with a clear
/// error, instead of an `EINVAL` from deep in a syscall.
fn check_path(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let why = if bytes.is_empty() {
        "the path is empty"
    } else if bytes.contains(&0) {
        "the path contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::invalid(
        "watch",
        Subject::Path(path.to_path_buf()),
        why,
    ))
}

/// Opens `path` refusing a symlink in any of its components (`ELOOP`).
fn open_without_links(path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    match rustix::fs::openat2(CWD, path, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS) {
        Err(Errno::NOSYS) => rustix::fs::open(path, flags, Mode::empty()),
        r => r,
    }
}

/// A symlink in the path fails with `ELOOP` (or with `ENOTDIR` when
/// `O_NOFOLLOW` and `O_DIRECTORY` meet one); say which it was.
fn explain_open(e: Errno, path: &Path) -> io::Error {
    let is_link = || std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match e {
        Errno::LOOP | Errno::NOTDIR if is_link() => io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a symbolic link (refused: cgroup files are opened without following links)",
        ),
        Errno::LOOP => io::Error::new(
            io::ErrorKind::InvalidInput,
            "a component of the path is a symbolic link (refused: cgroup paths are resolved \
             without following links)",
        ),
        Errno::NOTDIR => io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
        e => e.into(),
    }
}

/// `pread` from offset 0. For kernfs files this is also what clears a
/// pending poll notification (seeking alone does not).
pub(crate) fn read_at_start<'b>(fd: &OwnedFd, buf: &'b mut [u8]) -> rustix::io::Result<&'b [u8]> {
    let n = rustix::io::pread(fd, &mut *buf, 0)?;
    Ok(&buf[..n])
}

fn write_all_once(fd: &OwnedFd, data: &[u8]) -> rustix::io::Result<()> {
    let n = rustix::io::write(fd, data)?;
    if n == data.len() {
        Ok(())
    } else {
        Err(Errno::IO)
    }
}
