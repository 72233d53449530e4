//! Joining `/proc/<pid>/cgroup` with mountinfo, without I/O.
//!
//! Both files give paths relative to the reader's cgroup namespace: the
//! cgroup file says where the process is, the mount's `root` field says
//! which part of the hierarchy is mounted at the mount point. The directory
//! is the mount point plus what is left of the cgroup path after removing
//! the mount root, compared component by component: `/a/bc` is not under
//! `/a/b`, which a string-prefix test gets wrong. When the cgroup path is
//! not under the root of any mount of its hierarchy (a container that
//! mounted only its own subtree, looking at a process outside it, or at
//! itself from a namespace whose root is above the mounted subtree), the
//! cgroup is not visible here and guessing would watch the wrong cgroup, so
//! it is an error.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::parse::mountinfo::{self, MountEntry, MountInfo};
use super::parse::proc_cgroup;
use super::parse::ParseError;
use super::CgroupVersion;

/// Where a process's memory cgroup is, as far as the two files tell.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Location {
    /// The hierarchy that holds the memory controller.
    pub version: CgroupVersion,
    /// Where that hierarchy (or the part of it that holds the cgroup) is
    /// mounted.
    pub mount_point: PathBuf,
    /// The cgroup path as `/proc/<pid>/cgroup` shows it.
    pub cgroup_path: PathBuf,
    /// The cgroup's directory: the mount point joined with the part of
    /// `cgroup_path` below the mount's root.
    pub dir: PathBuf,
}

impl Location {
    /// The cgroup's directory and its ancestors, leaf first, ending at the
    /// mount point (never above it): where to look for the memory files
    /// when the leaf lacks them.
    pub fn dir_and_ancestors(&self) -> impl Iterator<Item = &Path> {
        self.dir
            .ancestors()
            .take_while(move |p| p.starts_with(&self.mount_point))
    }
}

/// Why [`locate_in`] found no memory cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocateError {
    /// `/proc/<pid>/cgroup` is malformed.
    ProcCgroup(ParseError),
    /// The mountinfo file is malformed.
    Mountinfo(ParseError),
    /// No hierarchy with the memory controller is both listed for the
    /// process and mounted; the reason says which part is missing.
    NoMemoryController(&'static str),
    /// The process's cgroup is outside every mount of its hierarchy.
    NotVisible {
        /// The cgroup path from `/proc/<pid>/cgroup`.
        cgroup: PathBuf,
        /// The root of the (first) mount of that hierarchy.
        mount_root: PathBuf,
        /// Where that mount is.
        mount_point: PathBuf,
    },
    /// The kernel marks the process's v2 cgroup ` (deleted)`.
    Deleted(PathBuf),
}

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocateError::ProcCgroup(e) | LocateError::Mountinfo(e) => e.fmt(f),
            LocateError::NoMemoryController(why) => write!(f, "no memory controller: {why}"),
            LocateError::NotVisible {
                cgroup,
                mount_root,
                mount_point,
            } => write!(
                f,
                "cgroup {} is not visible from this mount namespace: it is not under {}, \
                 the part of the hierarchy mounted at {}",
                cgroup.display(),
                mount_root.display(),
                mount_point.display()
            ),
            LocateError::Deleted(p) => write!(f, "cgroup {} has been removed", p.display()),
        }
    }
}

impl std::error::Error for LocateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LocateError::ProcCgroup(e) | LocateError::Mountinfo(e) => Some(e),
            _ => None,
        }
    }
}

/// Finds the memory cgroup directory from the contents of
/// `/proc/<pid>/cgroup` and the reader's mountinfo.
///
/// A v1 line with the `memory` controller wins (the controller is then bound
/// to v1 and cannot be on v2); otherwise the `0::` line is used with a
/// `cgroup2` mount, provided `v2_has_memory(mount_point)` says that mount's
/// `cgroup.controllers` lists `memory` (on a hybrid machine the v2 mount
/// may lack it). This does no I/O itself: the caller reads the files and
/// answers `v2_has_memory`.
///
/// ```
/// use std::path::Path;
/// use ctrmon::cgroup::{locate_in, CgroupVersion};
/// // Inside a container that bind-mounts its own subtree of the hierarchy.
/// let cgroup = b"11:memory:/docker/abc/app\n0::/\n";
/// let mountinfo = b"1203 1190 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
/// let loc = locate_in(cgroup, mountinfo, |_| false).unwrap();
/// assert_eq!(loc.version, CgroupVersion::V1);
/// assert_eq!(loc.dir, Path::new("/sys/fs/cgroup/memory/app"));
/// ```
pub fn locate_in(
    proc_cgroup: &[u8],
    mountinfo: &[u8],
    mut v2_has_memory: impl FnMut(&Path) -> bool,
) -> Result<Location, LocateError> {
    let cgroups = proc_cgroup::parse(proc_cgroup).map_err(LocateError::ProcCgroup)?;
    let mounts = mountinfo::parse(mountinfo).map_err(LocateError::Mountinfo)?;

    if let Some(entry) = cgroups.memory_v1() {
        let is_memory_v1 =
            |m: &MountEntry<'_>| &*m.fs_type() == b"cgroup" && m.has_super_option(b"memory");
        if !mounts.entries().any(|m| is_memory_v1(&m)) {
            return Err(LocateError::NoMemoryController(
                "the process's cgroup v1 memory hierarchy is not mounted (no `cgroup` mount with the `memory` option)",
            ));
        }
        return join(
            CgroupVersion::V1,
            (entry.path, entry.deleted),
            mounts,
            is_memory_v1,
            |_| true,
        );
    }
    if let Some(entry) = cgroups.unified() {
        let is_v2 = |m: &MountEntry<'_>| &*m.fs_type() == b"cgroup2";
        if !mounts.entries().any(|m| is_v2(&m)) {
            return Err(LocateError::NoMemoryController(
                "the process has no cgroup v1 memory hierarchy, and cgroup2 is not mounted",
            ));
        }
        return join(
            CgroupVersion::V2,
            (entry.path, entry.deleted),
            mounts,
            is_v2,
            |p| v2_has_memory(p),
        );
    }
    Err(LocateError::NoMemoryController(
        "/proc/<pid>/cgroup lists neither a v1 memory hierarchy nor a v2 (`0::`) line",
    ))
}

/// Where the memory cgroup at `path` is, in this mount namespace: the
/// same join as [`locate_in`]'s, for a cgroup known by its path rather than
/// by a process in it (an OOM victim that the kernel log names, or that is
/// gone). `self_cgroup` is the reader's own `/proc/self/cgroup`, which says
/// whether the memory controller is on a v1 hierarchy or on v2.
///
/// `path` must be relative to the reader's cgroup namespace, as
/// `/proc/<pid>/cgroup` and mountinfo are: the kernel log's paths are
/// relative to the hierarchy's root, which is the same only in the initial
/// cgroup namespace.
///
/// ```
/// use std::path::Path;
/// use ctrmon::cgroup::memory_cgroup_dir_in;
/// let me = b"11:memory:/\n0::/\n";
/// let mountinfo = b"30 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
///                   31 25 0:28 /pod /srv/pod rw - cgroup cgroup rw,memory\n";
/// let dir = memory_cgroup_dir_in(b"/pod/web", me, mountinfo).unwrap();
/// assert_eq!(dir, Path::new("/srv/pod/web"));
/// // Not `/web`, which only ends like it.
/// assert_eq!(memory_cgroup_dir_in(b"/web", me, mountinfo).unwrap(), Path::new("/sys/fs/cgroup/memory/web"));
/// ```
pub fn memory_cgroup_dir_in(
    path: &[u8],
    self_cgroup: &[u8],
    mountinfo: &[u8],
) -> Result<PathBuf, LocateError> {
    let cgroups = proc_cgroup::parse(self_cgroup).map_err(LocateError::ProcCgroup)?;
    let mounts = mountinfo::parse(mountinfo).map_err(LocateError::Mountinfo)?;
    let located = if cgroups.memory_v1().is_some() {
        let is_memory_v1 =
            |m: &MountEntry<'_>| &*m.fs_type() == b"cgroup" && m.has_super_option(b"memory");
        join(
            CgroupVersion::V1,
            (path, false),
            mounts,
            is_memory_v1,
            |_| true,
        )
    } else {
        let is_v2 = |m: &MountEntry<'_>| &*m.fs_type() == b"cgroup2";
        join(CgroupVersion::V2, (path, false), mounts, is_v2, |_| true)
    };
    located.map(|l| l.dir)
}

fn bytes_path(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

/// Picks the visible mount (of those `wanted`) whose root is the longest
/// ancestor of the cgroup path, and joins.
fn join(
    version: CgroupVersion,
    (path, deleted): (&[u8], bool),
    mounts: MountInfo<'_>,
    wanted: impl Fn(&MountEntry<'_>) -> bool,
    mut has_memory: impl FnMut(&Path) -> bool,
) -> Result<Location, LocateError> {
    let cgroup = bytes_path(path);
    if deleted {
        return Err(LocateError::Deleted(cgroup.to_path_buf()));
    }
    // (components of the root, mount point, part of the cgroup path below the root)
    let mut best: Option<(usize, PathBuf, PathBuf)> = None;
    let mut first_seen: Option<(PathBuf, PathBuf)> = None;
    let mut any_contains = false;
    let last_on_mount_point: HashMap<&[u8], usize> = mounts
        .entries()
        .enumerate()
        .map(|(i, m)| (m.mount_point_raw, i))
        .collect();
    for (i, m) in mounts.entries().enumerate() {
        if !wanted(&m) {
            continue;
        }
        let root = m.root();
        let mount_point = bytes_path(&m.mount_point()).to_path_buf();
        first_seen.get_or_insert_with(|| (bytes_path(&root).to_path_buf(), mount_point.clone()));
        let Ok(rel) = cgroup.strip_prefix(bytes_path(&root)) else {
            continue;
        };
        // `..` below the root would leave the mount; the kernel writes `..`
        // only for cgroups outside the reader's namespace.
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            continue;
        }
        // A later mount on the same mount point hides this one.
        if last_on_mount_point.get(m.mount_point_raw) != Some(&i) {
            continue;
        }
        any_contains = true;
        let depth = bytes_path(&root).components().count();
        if best.as_ref().is_some_and(|(d, _, _)| *d >= depth) {
            continue;
        }
        if !has_memory(&mount_point) {
            continue;
        }
        best = Some((depth, mount_point, rel.to_path_buf()));
    }
    match best {
        Some((_, mount_point, rel)) => Ok(Location {
            version,
            // `join("")` would add a trailing slash.
            dir: if rel.as_os_str().is_empty() {
                mount_point.clone()
            } else {
                mount_point.join(rel)
            },
            mount_point,
            cgroup_path: cgroup.to_path_buf(),
        }),
        None if any_contains => Err(LocateError::NoMemoryController(
            "no cgroup2 mount lists `memory` in its cgroup.controllers",
        )),
        None => {
            let (mount_root, mount_point) = first_seen.unwrap_or_default();
            Err(LocateError::NotVisible {
                cgroup: cgroup.to_path_buf(),
                mount_root,
                mount_point,
            })
        }
    }
}

#[cfg(test)]
mod tests;
