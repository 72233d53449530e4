//! Which of several cgroup directories holds a process: the link between a
//! pid and the OOM watch of the cgroup it runs in.
//!
//! [`Process::oom_watch`](crate::watch::Process::oom_watch) orders a
//! process's OOM before its exit only when the caller names the right cgroup
//! watch. A caller that watches some pids and some cgroups given to it (a
//! command line, a config file) has to find, for each pid, the watched
//! cgroup that contains it. The directories a caller holds may be spelled
//! through a symlink, relative to the working directory, or through a
//! second mount of the same hierarchy, while `/proc/<pid>/cgroup` gives a
//! path relative to the hierarchy's root (as the reader's cgroup namespace
//! sees it). So both sides are turned into the same thing: the pair
//! (hierarchy, path in the hierarchy), the directory side through the mount
//! it is on (the deepest mount point above it, and that mount's root). The
//! paths are then compared component by component, never as strings
//! (`/a/bc` is not below `/a/b`).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::discover::locate_error;
use super::locate::LocateError;
use super::parse::mountinfo::{self, MountEntry};
use super::parse::proc_cgroup::{self, CgroupEntry, ProcCgroup};
use crate::{Error, Result, Subject};

const OP: &str = "find the cgroup of";

/// Finds which of `dirs` contains process `pid`: the nearest one (the
/// deepest) that is the process's cgroup or an ancestor of it, on any
/// hierarchy; on a tie (the same directory given twice) the first.
///
/// Use it to link pids to the OOM watches of the cgroups they run in, with
/// [`Process::oom_watch`](crate::watch::Process::oom_watch):
///
/// ```no_run
/// use ctrmon::Monitor;
/// let dirs = ["/sys/fs/cgroup/memory/app", "/sys/fs/cgroup/memory/app/worker"];
/// let monitor = Monitor::new()?;
/// let mut oom = Vec::new();
/// for d in dirs {
///     oom.push(monitor.watch(ctrmon::watch::CgroupOom::dir(d), d.to_string())?.id());
/// }
/// let pid = 4242;
/// match ctrmon::cgroup::nearest_containing(pid, &dirs)? {
///     Some(i) => monitor.watch(ctrmon::watch::Process::pid(pid).oom_watch(oom[i]), format!("pid {pid}"))?,
///     None => monitor.watch(ctrmon::watch::Process::pid(pid), format!("pid {pid}"))?,
/// };
/// # Ok::<(), ctrmon::Error>(())
/// ```
///
/// This is a snapshot: a process that moves to another cgroup afterwards
/// stays linked to the answer given here. A process that has already
/// exited (a zombie) is shown by cgroup v1 in the root cgroup, so there it
/// is found only in a watched root.
///
/// The directories are resolved first (symlinks followed, relative paths
/// taken from the working directory), so any spelling of a directory
/// matches; one that does not resolve (removed meanwhile) contains nothing.
/// The hierarchies are matched as [`nearest_containing_in`] says.
///
/// # Errors
///
/// A process that no longer exists gives an error for which
/// [`Error::is_process_gone`] is true; an unreadable or malformed
/// `/proc/<pid>/cgroup` or `/proc/self/mountinfo` gives an error naming it.
pub fn nearest_containing<P: AsRef<Path>>(pid: i32, dirs: &[P]) -> Result<Option<usize>> {
    if pid <= 0 {
        return Err(Error::invalid(
            OP,
            Subject::Pid(pid),
            "a pid must be positive",
        ));
    }
    let cgroup_file = PathBuf::from(format!("/proc/{pid}/cgroup"));
    let cgroup = std::fs::read(&cgroup_file).map_err(|e| {
        const ESRCH: i32 = rustix::io::Errno::SRCH.raw_os_error();
        // ENOENT or ESRCH: the process is gone, which the error says in
        // terms of the pid.
        if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ESRCH) {
            Error::new(OP, Subject::Pid(pid), io::Error::from_raw_os_error(ESRCH))
        } else {
            Error::path("read", &cgroup_file, e)
        }
    })?;
    let mountinfo_file = Path::new("/proc/self/mountinfo");
    let mountinfo =
        std::fs::read(mountinfo_file).map_err(|e| Error::path("read", mountinfo_file, e))?;
    let resolved: Vec<Option<PathBuf>> =
        dirs.iter().map(|d| std::fs::canonicalize(d).ok()).collect();
    let resolved: Vec<&Path> = resolved
        .iter()
        // An empty path is below no mount point: it contains nothing.
        .map(|d| d.as_deref().unwrap_or(Path::new("")))
        .collect();
    nearest_containing_in(&cgroup, &mountinfo, &resolved)
        .map_err(|e| locate_error(e, &cgroup_file, mountinfo_file))
}

/// [`nearest_containing`] without I/O: which of `dirs` contains the process
/// whose `/proc/<pid>/cgroup` is `proc_cgroup`, given the reader's
/// mountinfo. The directories must be resolved already (absolute, without
/// symlinks, as [`std::fs::canonicalize`] gives them).
///
/// A directory is on the mount with the deepest mount point above it (the
/// last one listed, when several are stacked on one mount point); on a
/// `cgroup2` mount it names a cgroup of the process's `0::` line, on a v1
/// `cgroup` mount one of the line whose controllers (or `name=`) that
/// mount's super options list. A directory on any other filesystem, on a
/// hierarchy the process has no line for, or outside the process's cgroup
/// contains nothing; so does any directory for a process whose cgroup was
/// removed (` (deleted)`) or lies outside the reader's cgroup namespace.
///
/// ```
/// use std::path::Path;
/// let cgroup = b"4:memory:/app/worker\n0::/user.slice\n";
/// let mountinfo = b"35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
/// let dirs = [
///     Path::new("/sys/fs/cgroup/memory/app"),
///     Path::new("/sys/fs/cgroup/memory/app/worker"),
///     Path::new("/sys/fs/cgroup/memory/ap"),
/// ];
/// let found = ctrmon::cgroup::nearest_containing_in(cgroup, mountinfo, &dirs).unwrap();
/// assert_eq!(found, Some(1));
/// ```
pub fn nearest_containing_in(
    proc_cgroup: &[u8],
    mountinfo: &[u8],
    dirs: &[&Path],
) -> std::result::Result<Option<usize>, LocateError> {
    let cgroups = proc_cgroup::parse(proc_cgroup).map_err(LocateError::ProcCgroup)?;
    let mounts = mountinfo::parse(mountinfo).map_err(LocateError::Mountinfo)?;
    let mut best: Option<(usize, usize)> = None; // (depth, index)
    for (i, dir) in dirs.iter().enumerate() {
        let Some(mount) = mount_of(dir, mounts.entries()) else {
            continue;
        };
        let Some(entry) = line_for(&mount, cgroups) else {
            continue;
        };
        let Some(cgroup) = cgroup_path(dir, &mount) else {
            continue;
        };
        let process = bytes_path(entry.path);
        if entry.deleted || !is_plain(process) || !process.starts_with(&cgroup) {
            continue;
        }
        let depth = cgroup.components().count();
        if best.map_or(true, |(d, _)| depth > d) {
            best = Some((depth, i));
        }
    }
    Ok(best.map(|(_, i)| i))
}

fn bytes_path(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

/// An absolute path of plain names, without `.`, `..` or a prefix.
fn is_plain(p: &Path) -> bool {
    let mut c = p.components();
    c.next() == Some(Component::RootDir) && c.all(|c| matches!(c, Component::Normal(_)))
}

/// The mount `dir` is on: the deepest mount point above it, the last listed
/// of those (a later mount on the same point hides the earlier).
fn mount_of<'a>(
    dir: &Path,
    mounts: impl Iterator<Item = MountEntry<'a>>,
) -> Option<MountEntry<'a>> {
    let mut best: Option<(usize, MountEntry<'a>)> = None;
    for m in mounts {
        let point = m.mount_point();
        let point = bytes_path(&point);
        if !dir.starts_with(point) {
            continue;
        }
        let depth = point.components().count();
        if best.as_ref().map_or(true, |(d, _)| depth >= *d) {
            best = Some((depth, m));
        }
    }
    best.map(|(_, m)| m)
}

/// The process's line for the hierarchy mounted by `mount`, if it is a
/// cgroup mount.
fn line_for<'a>(mount: &MountEntry<'_>, cgroups: ProcCgroup<'a>) -> Option<CgroupEntry<'a>> {
    match &*mount.fs_type() {
        b"cgroup2" => cgroups.unified(),
        // A controller (or `name=`) is bound to one v1 hierarchy at a time,
        // so the line whose names the mount lists is that hierarchy's.
        b"cgroup" => cgroups.entries().find(|e| {
            !e.is_unified()
                && e.controller_names().next().is_some()
                && e.controller_names().all(|c| mount.has_super_option(c))
        }),
        _ => None,
    }
}

/// `dir` as a path in its hierarchy: the mount's root joined with the part
/// of `dir` below the mount point.
fn cgroup_path(dir: &Path, mount: &MountEntry<'_>) -> Option<PathBuf> {
    let root = mount.root();
    let root = bytes_path(&root);
    let point = mount.mount_point();
    let below = dir.strip_prefix(bytes_path(&point)).ok()?;
    // A mount of a subtree outside the reader's namespace has a root of
    // `/..`: its paths are not comparable with the process's.
    let path = root.join(below);
    is_plain(&path).then_some(path)
}

#[cfg(test)]
mod tests;
