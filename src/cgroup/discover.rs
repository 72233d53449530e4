//! Finding a process's memory cgroup on this machine: the I/O around
//! [`locate_in`].
//!
//! Three things here need the filesystem and cannot be decided from the two
//! files alone: whether a cgroup2 mount actually has the memory controller
//! (a hybrid machine may mount v2 without it), which ancestor of the leaf
//! has the memory files, and whether the directory really is a cgroup
//! filesystem of the expected version (checked with `fstatfs`, so a stale
//! or faked mountinfo cannot send the monitor to an ordinary directory).

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::locate::{locate_in, LocateError, Location};
use super::parse::controllers;
use crate::{Error, Result, Subject};

const OP: &str = "find memory cgroup";
const CGROUP_SUPER_MAGIC: i128 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: i128 = 0x6367_7270;

/// A cgroup hierarchy's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies (`cgroup` filesystem).
    V1,
    /// The unified hierarchy (`cgroup2` filesystem).
    V2,
}

impl CgroupVersion {
    /// The file that reports OOM kills in a memory cgroup of this version:
    /// `memory.oom_control` (v1) or `memory.events` (v2).
    pub fn oom_file(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        }
    }
}

/// A process's memory cgroup, as found by [`memory_cgroup_of`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryCgroup {
    /// The cgroup's directory: the process's own cgroup, or its nearest
    /// ancestor with the memory files (see [`CgroupVersion::oom_file`]).
    pub path: PathBuf,
    /// The hierarchy's version.
    pub version: CgroupVersion,
    /// Where the hierarchy is mounted; `path` is at or below it.
    pub mount_point: PathBuf,
}

impl MemoryCgroup {
    /// The path of the file that reports OOM kills in this cgroup.
    pub fn oom_file(&self) -> PathBuf {
        self.path.join(self.version.oom_file())
    }
}

/// Finds the memory cgroup of `pid` (or of the calling process, for
/// `None`), as a directory reachable from this process's mount namespace.
///
/// Reads `/proc/<pid>/cgroup` and `/proc/self/mountinfo`, joins them with
/// [`locate_in`], walks up from the leaf to the nearest cgroup that has the
/// memory files (never above the mount point), and checks with `fstatfs`
/// that the directory is a cgroup filesystem of the expected version.
///
/// Errors name what is missing and where: a pid that does not exist gives
/// an error for which [`Error::is_process_gone`] is true; a machine without
/// the memory controller, or a cgroup that is not visible from this mount
/// namespace, gives [`std::io::ErrorKind::NotFound`] naming the mountinfo
/// file; a malformed file gives [`std::io::ErrorKind::InvalidData`] naming it.
///
/// On cgroup v1 an exiting process (a zombie) is shown in the root cgroup,
/// so for a zombie this fails rather than answer with the root.
///
/// ```no_run
/// let cg = ctrmon::cgroup::memory_cgroup_of(None)?;
/// println!("{} ({:?})", cg.path.display(), cg.version);
/// # Ok::<(), ctrmon::Error>(())
/// ```
pub fn memory_cgroup_of(pid: Option<i32>) -> Result<MemoryCgroup> {
    memory_cgroup_of_in(Path::new("/proc"), pid)
}

/// [`memory_cgroup_of`] with procfs at `proc_root` instead of `/proc`.
pub fn memory_cgroup_of_in(proc_root: &Path, pid: Option<i32>) -> Result<MemoryCgroup> {
    if let Some(p) = pid.filter(|&p| p <= 0) {
        return Err(Error::invalid(
            OP,
            Subject::Pid(p),
            "a pid must be positive",
        ));
    }
    let proc_dir = match pid {
        Some(p) => proc_root.join(p.to_string()),
        None => proc_root.join("self"),
    };
    let cgroup_file = proc_dir.join("cgroup");
    let cgroup = std::fs::read(&cgroup_file).map_err(|e| proc_error(pid, &cgroup_file, e))?;
    let mountinfo_file = proc_root.join("self/mountinfo");
    let mountinfo =
        std::fs::read(&mountinfo_file).map_err(|e| Error::path("read", &mountinfo_file, e))?;

    let loc = locate_in(&cgroup, &mountinfo, |mount_point| {
        std::fs::read(mount_point.join("cgroup.controllers"))
            .is_ok_and(|c| controllers::contains(&c, b"memory"))
    })
    .map_err(|e| locate_error(e, &cgroup_file, &mountinfo_file))?;

    if let (Some(p), CgroupVersion::V1) = (pid, loc.version) {
        if loc.cgroup_path == Path::new("/") {
            check_not_exiting(p, &proc_dir)?;
        }
    }
    let path = nearest_with_memory_files(&loc)?;
    let found = cgroup_version(&path)?;
    if found != loc.version {
        return Err(Error::new(
            OP,
            Subject::Path(path),
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{mountinfo_file:?} says {:?} but statfs says {found:?}",
                    loc.version
                ),
            ),
        ));
    }
    Ok(MemoryCgroup {
        path,
        version: loc.version,
        mount_point: loc.mount_point,
    })
}

/// Tells whether `dir` is on a cgroup filesystem, and which version, from
/// `fstatfs` (`CGROUP_SUPER_MAGIC` or `CGROUP2_SUPER_MAGIC`).
///
/// The directory is opened with `O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC`, so a
/// symlink or a file is an error, as is any other filesystem.
///
/// ```no_run
/// use ctrmon::cgroup::{cgroup_version, CgroupVersion};
/// assert_eq!(cgroup_version("/sys/fs/cgroup/unified".as_ref())?, CgroupVersion::V2);
/// assert!(cgroup_version("/tmp".as_ref()).is_err());
/// # Ok::<(), ctrmon::Error>(())
/// ```
pub fn cgroup_version(dir: &Path) -> Result<CgroupVersion> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(dir, flags, Mode::empty())
        .map_err(|e| Error::path("open cgroup directory", dir, e.into()))?;
    let st = rustix::fs::fstatfs(&fd).map_err(|e| Error::path("fstatfs", dir, e.into()))?;
    match i128::from(st.f_type) {
        CGROUP_SUPER_MAGIC => Ok(CgroupVersion::V1),
        CGROUP2_SUPER_MAGIC => Ok(CgroupVersion::V2),
        other => Err(Error::new(
            "check cgroup filesystem",
            Subject::Path(dir.to_path_buf()),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a cgroup filesystem (statfs f_type {other:#x})"),
            ),
        )),
    }
}

/// The leaf or its nearest ancestor (up to the mount point) that has the
/// version's memory file. The leaf itself must exist: if it does not, the
/// process moved or its cgroup was removed, and an ancestor would be the
/// wrong answer.
fn nearest_with_memory_files(loc: &Location) -> Result<PathBuf> {
    let file = loc.version.oom_file();
    if let Err(e) = std::fs::metadata(&loc.dir) {
        return Err(Error::path("find memory cgroup directory", &loc.dir, e));
    }
    for dir in loc.dir_and_ancestors() {
        if dir.join(file).try_exists().unwrap_or(false) {
            return Ok(dir.to_path_buf());
        }
    }
    Err(Error::new(
        OP,
        Subject::Path(loc.dir.clone()),
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no {file} in this cgroup or any parent up to the mount point {}",
                loc.mount_point.display()
            ),
        ),
    ))
}

/// A failed read of `/proc/<pid>/…`: ENOENT or ESRCH mean the process is
/// gone, and the error says so in terms of the pid.
fn proc_error(pid: Option<i32>, file: &Path, e: io::Error) -> Error {
    let gone = e.kind() == io::ErrorKind::NotFound
        || e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error());
    match pid {
        Some(p) if gone => Error::new(
            OP,
            Subject::Pid(p),
            io::Error::from_raw_os_error(rustix::io::Errno::SRCH.raw_os_error()),
        ),
        _ => Error::path("read", file, e),
    }
}

pub(super) fn locate_error(e: LocateError, cgroup_file: &Path, mountinfo_file: &Path) -> Error {
    let (file, kind) = match &e {
        LocateError::ProcCgroup(_) => (cgroup_file, io::ErrorKind::InvalidData),
        LocateError::Mountinfo(_) => (mountinfo_file, io::ErrorKind::InvalidData),
        LocateError::NoMemoryController(_) | LocateError::NotVisible { .. } => {
            (mountinfo_file, io::ErrorKind::NotFound)
        }
        _ => (cgroup_file, io::ErrorKind::NotFound),
    };
    let op = if kind == io::ErrorKind::InvalidData {
        "parse"
    } else {
        OP
    };
    let msg = match &e {
        LocateError::ProcCgroup(_) | LocateError::Mountinfo(_) => e.to_string(),
        _ => format!(
            "{e} (from {} and {})",
            cgroup_file.display(),
            mountinfo_file.display()
        ),
    };
    Error::new(
        op,
        Subject::Path(file.to_path_buf()),
        io::Error::new(kind, msg),
    )
}

/// Fails when `pid` is a zombie: cgroup v1 shows an exiting process in the
/// root cgroup, which would silently be the wrong answer.
fn check_not_exiting(pid: i32, proc_dir: &Path) -> Result<()> {
    let stat_file = proc_dir.join("stat");
    let stat = std::fs::read(&stat_file).map_err(|e| proc_error(Some(pid), &stat_file, e))?;
    // `pid (comm) S …`: comm may contain anything, so the state is the
    // first byte after the last `) `.
    let state = stat
        .iter()
        .rposition(|&b| b == b')')
        .and_then(|i| stat.get(i + 2).copied());
    if matches!(state, Some(b'Z' | b'X')) {
        return Err(Error::new(
            OP,
            Subject::Pid(pid),
            io::Error::new(
                io::ErrorKind::NotFound,
                "the process has exited (zombie); cgroup v1 shows exiting processes in the \
                 root cgroup, so its memory cgroup can no longer be told",
            ),
        ));
    }
    Ok(())
}
