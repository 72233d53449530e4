//! The cgroups `run` creates: `ctrmon-<pid>-<n>`, made before the command
//! starts, and on every way out killed (with everything in its subtree) and
//! removed depth first. A ctrmon that was SIGKILLed cannot do that; `gc`
//! (and every `run`, before it starts) removes what such a ctrmon left.
//!
//! # How `gc` tells a live run
//!
//! A run holds an exclusive `flock` on its cgroup's directory from just
//! after `mkdir` until the directory is removed. The kernel drops the lock
//! when the run's last fd for it closes, which is the moment the run ends,
//! however it ends (a SIGKILL included), and it is the same lock in every
//! pid and mount namespace that sees the directory. So a cgroup whose lock
//! `gc` cannot take belongs to a live run, whatever that run's binary is
//! called, wherever it was started from, by whatever loader: nothing about
//! names, links or `/proc/<pid>/exe` is trusted. (Before, `gc` took a run
//! for dead when `/proc/<pid>/exe` did not look like ctrmon, and killed
//! the live runs of a copy named `cm`.)
//!
//! `gc` removes a cgroup only while it holds that lock. The pid in the name
//! is not consulted: it says nothing about a run in another pid namespace,
//! and a reused pid would keep a dead run's cgroup. A process that takes
//! the lock itself (anyone who can open the directory can) only keeps that
//! cgroup from being collected; nothing but the run's own end, or its
//! removing the cgroup, frees the lock of a live run.
//!
//! The run's side closes the window between `mkdir` and `flock`: if a `gc`
//! took the lock first (it will remove the empty directory), the run's
//! `flock` fails, or succeeds on a directory that is no longer at its path
//! (checked by inode after locking), and the run tries the next name.
//!
//! Everything is opened from a directory fd that `fstatfs` says is on
//! cgroupfs, with `O_NOFOLLOW`, and removed with `unlinkat`: a
//! `--cgroup-parent` that is a plain directory (where anyone with write
//! access could plant `ctrmon-1-0/cgroup.procs` listing a pid to kill) is
//! refused, and no symlink is followed.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{
    flock, fstat, fstatfs, mkdirat, openat, statat, unlinkat, AtFlags, Dir, FileType,
    FlockOperation, Mode, OFlags,
};
use rustix::io::Errno;
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use crate::{fail, Failure};

/// How long removal waits for killed processes to leave.
const REMOVAL_PATIENCE: Duration = Duration::from_secs(5);

const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The directory where `run` creates its cgroup when not told, as
/// [`placement`](crate::placement) decides it, without preparing anything.
pub fn default_parent() -> Result<PathBuf, Failure> {
    crate::placement::default_parent()
}

/// Opens `dir` (not following a symlink at its end) and checks with
/// `fstatfs` on what was opened that it is on cgroupfs.
fn open_cgroup_dir(dir: &Path) -> Result<OwnedFd, Failure> {
    let fd = rustix::fs::open(dir, DIR_FLAGS, Mode::empty())
        .or_else(|e| fail(format_args!("open {}", dir.display()), e))?;
    on_cgroupfs(fd.as_fd(), dir)?;
    Ok(fd)
}

fn on_cgroupfs(fd: BorrowedFd<'_>, dir: &Path) -> Result<(), Failure> {
    let st = fstatfs(fd).or_else(|e| fail(format_args!("fstatfs {}", dir.display()), e))?;
    match st.f_type as u64 {
        CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC => Ok(()),
        other => fail(
            format_args!("use {}", dir.display()),
            format_args!(
                "not a cgroup filesystem (statfs f_type {other:#x}); ctrmon creates, kills and \
                 removes only cgroups"
            ),
        ),
    }
}

/// A cgroup made by `run`, killed and removed when dropped if
/// [`remove`](Self::remove) was not called. It holds the cgroup's lock (see
/// the module's doc) for as long as it lives.
pub struct CreatedCgroup {
    pub path: PathBuf,
    parent: OwnedFd,
    name: String,
    /// The cgroup's directory, `flock`ed: the mark of a live run.
    dir: OwnedFd,
    removed: bool,
}

impl CreatedCgroup {
    pub fn new(parent_path: &Path) -> Result<CreatedCgroup, Failure> {
        let parent = open_cgroup_dir(parent_path)?;
        let me = std::process::id();
        for n in 0..1000 {
            let name = format!("ctrmon-{me}-{n}");
            let path = parent_path.join(&name);
            match mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(Errno::EXIST) => continue,
                Err(e) => return fail(format_args!("create cgroup {}", path.display()), e),
            }
            let Some(dir) = lock_new(&parent, &name) else {
                // A gc took it first, and removes it: the next name.
                continue;
            };
            return Ok(CreatedCgroup {
                path,
                parent,
                name,
                dir,
                removed: false,
            });
        }
        fail(
            format_args!("create cgroup in {}", parent_path.display()),
            "1000 names taken",
        )
    }

    pub fn write(&self, file: &str, value: &str) -> Result<(), Failure> {
        let written = openat(
            &self.dir,
            file,
            OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .and_then(|fd| std::fs::File::from(fd).write_all(value.as_bytes()));
        written.or_else(|e| {
            fail(
                format_args!("write {value} to {}", self.path.join(file).display()),
                e,
            )
        })
    }

    pub fn remove(mut self) -> Result<(), Failure> {
        self.removed = true;
        kill_and_remove(&self.parent, &self.name, &self.dir, &self.path)
            .or_else(|(p, e)| fail(format_args!("remove cgroup {}", p.display()), e))
    }
}

impl Drop for CreatedCgroup {
    fn drop(&mut self) {
        if !self.removed {
            if let Err((p, e)) = kill_and_remove(&self.parent, &self.name, &self.dir, &self.path) {
                crate::say(format_args!("remove cgroup {}: {e}", p.display()));
            }
        }
    }
}

/// Locks the directory `name` just made in `parent`: its fd, or `None` if
/// a gc holds the lock, or removed it before the lock was taken (the inode
/// at `name` is then another, or none).
fn lock_new(parent: &OwnedFd, name: &str) -> Option<OwnedFd> {
    let dir = openat(parent, name, DIR_FLAGS, Mode::empty()).ok()?;
    flock(&dir, FlockOperation::NonBlockingLockExclusive).ok()?;
    let locked = fstat(&dir).ok()?;
    let now = statat(parent, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    ((locked.st_dev, locked.st_ino) == (now.st_dev, now.st_ino)).then_some(dir)
}

/// Kills every process in the cgroup `dir` (`name` in `parent`; `path` for
/// messages) and its descendants, and removes them all, deepest first,
/// retrying while the killed processes leave (and killing again: one may
/// have forked meanwhile). A cgroup that is already gone counts as removed.
/// The error names the cgroup that could not be removed.
fn kill_and_remove(
    parent: &OwnedFd,
    name: &str,
    dir: &OwnedFd,
    path: &Path,
) -> Result<(), (PathBuf, io::Error)> {
    let deadline = Instant::now() + REMOVAL_PATIENCE;
    loop {
        kill_all(dir.as_fd());
        match remove_tree(parent.as_fd(), name, dir.as_fd(), path) {
            Ok(()) => return Ok(()),
            Err((_, e)) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(failed) => return Err(failed),
        }
    }
}

/// SIGKILLs everything in the subtree: one write to `cgroup.kill` where the
/// kernel has it (v2, 5.14+), else each process of each cgroup by pidfd.
fn kill_all(dir: BorrowedFd<'_>) {
    let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if let Ok(fd) = openat(dir, "cgroup.kill", flags, Mode::empty()) {
        if std::fs::File::from(fd).write_all(b"1").is_ok() {
            return;
        }
    }
    let me = std::process::id() as i32;
    for_each_cgroup(dir, &mut |cg| {
        // ctrmon itself never joins the cgroup; never kill it all the same.
        for pid in procs_of(cg) {
            if pid == me {
                continue;
            }
            // A pidfd, so that a pid reused since the read is not signalled
            // if it left the cgroup (pidfd_open fails for a reaped pid).
            let Some(p) = Pid::from_raw(pid) else {
                continue;
            };
            match pidfd_open(p, PidfdFlags::empty()) {
                Ok(fd) => {
                    let _ = pidfd_send_signal(&fd, Signal::KILL);
                }
                // Refused (seccomp, SELinux, before 5.3): the process held
                // by its /proc directory, then found in the cgroup again,
                // so that the one held is one of the cgroup's.
                Err(Errno::PERM | Errno::ACCESS | Errno::NOSYS) => {
                    if let Some(proc) = crate::procfd::ProcFd::open(p) {
                        if procs_of(cg).contains(&pid) {
                            let _ = proc.signal(Signal::KILL);
                        }
                    }
                }
                Err(_) => {}
            }
        }
    });
}

/// The pids in `cg`'s `cgroup.procs` (none if it cannot be read).
fn procs_of(cg: BorrowedFd<'_>) -> Vec<i32> {
    let mut procs = String::new();
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if let Ok(fd) = openat(cg, "cgroup.procs", flags, Mode::empty()) {
        let _ = std::fs::File::from(fd).read_to_string(&mut procs);
    }
    procs
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .collect()
}

/// The names of the child directories of `dir` (symlinks and files left
/// out: cgroupfs has no symlinks, and a child cgroup is a directory).
fn child_dirs(dir: BorrowedFd<'_>) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
            _ => false,
        };
        if is_dir {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Calls `f` on `dir` and on every cgroup below it.
fn for_each_cgroup(dir: BorrowedFd<'_>, f: &mut dyn FnMut(BorrowedFd<'_>)) {
    f(dir);
    for name in child_dirs(dir).unwrap_or_default() {
        if let Ok(child) = openat(dir, name.as_str(), DIR_FLAGS, Mode::empty()) {
            for_each_cgroup(child.as_fd(), f);
        }
    }
}

/// Removes `name` (open as `dir`) from `parent`, every cgroup below it
/// first.
fn remove_tree(
    parent: BorrowedFd<'_>,
    name: &str,
    dir: BorrowedFd<'_>,
    path: &Path,
) -> Result<(), (PathBuf, io::Error)> {
    let children = match child_dirs(dir) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err((path.to_path_buf(), e)),
    };
    for child in children {
        let cpath = path.join(&child);
        let fd = match openat(dir, child.as_str(), DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err((cpath, e.into())),
        };
        remove_tree(dir, &child, fd.as_fd(), &cpath)?;
    }
    match unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err((path.to_path_buf(), e.into())),
    }
}

/// The pid in a name `ctrmon-<pid>-<n>`, if the name is one.
pub fn creator_of(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix("ctrmon-")?.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

/// Removes, in `parent`, the `ctrmon-<pid>-<n>` cgroups of runs that have
/// ended (see the module's doc), killing what is left in them. Returns the
/// cgroups removed; the error names one that could not be removed, or
/// `parent` if it is not on cgroupfs.
pub fn gc(parent_path: &Path) -> Result<Vec<PathBuf>, Failure> {
    let parent = open_cgroup_dir(parent_path)?;
    let names = child_dirs(parent.as_fd())
        .or_else(|e| fail(format_args!("read {}", parent_path.display()), e))?;
    let mut removed = Vec::new();
    let mut failed = None;
    for name in names {
        if creator_of(&name).is_none() {
            continue;
        }
        let path = parent_path.join(&name);
        let Ok(dir) = openat(&parent, name.as_str(), DIR_FLAGS, Mode::empty()) else {
            continue;
        };
        if on_cgroupfs(dir.as_fd(), &path).is_err() {
            continue;
        }
        // Held by a live run (or by someone who wants it kept): not ours.
        if flock(&dir, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        match kill_and_remove(&parent, &name, &dir, &path) {
            Ok(()) => removed.push(path),
            Err((p, e)) => {
                failed.get_or_insert(Failure(format!("remove stale cgroup {}: {e}", p.display())));
            }
        }
    }
    match failed {
        Some(f) => Err(f),
        None => Ok(removed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(creator_of("ctrmon-1234-0"), Some(1234));
        assert_eq!(creator_of("ctrmon-1-17"), Some(1));
        for not in [
            "ctrmon-test-x-1",
            "ctrmon-12",
            "ctrmon--1",
            "ctrmon-1-",
            "ctrmon-1-2-3",
            "x-1-2",
            "ctrmon-+1-2",
        ] {
            assert_eq!(creator_of(not), None, "{not}");
        }
    }

    /// `kill_and_remove` by path, for the tests.
    fn kill_and_remove_path(path: &Path) -> Result<(), (PathBuf, io::Error)> {
        let parent = rustix::fs::open(path.parent().unwrap(), DIR_FLAGS, Mode::empty()).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let Ok(dir) = openat(&parent, name, DIR_FLAGS, Mode::empty()) else {
            return Ok(());
        };
        kill_and_remove(&parent, name, &dir, path)
    }

    /// Skips, or fails under CTRMON_REQUIRE_CGROUPS=1, without `root`.
    fn usable(root: &Path) -> bool {
        let ok = rustix::process::geteuid().is_root() && root.join("cgroup.procs").exists();
        assert!(
            ok || std::env::var("CTRMON_REQUIRE_CGROUPS").as_deref() != Ok("1"),
            "CTRMON_REQUIRE_CGROUPS=1 but {} is not usable",
            root.display()
        );
        ok
    }

    /// A `ctrmon-<pid>-0` cgroup is kept while someone holds its lock, and
    /// removed once the lock is free, whether its pid is alive (here: this
    /// process's) or can never be (beyond any pid_max).
    #[test]
    fn gc_keeps_a_locked_cgroup_and_removes_an_unlocked_one() {
        let root = Path::new("/sys/fs/cgroup/memory");
        if !usable(root) {
            return;
        }
        let parent = root.join(format!("ctrmon-test-gclock-{}", std::process::id()));
        std::fs::create_dir(&parent).unwrap();
        struct Cleanup(PathBuf);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                if let Ok(rd) = std::fs::read_dir(&self.0) {
                    for e in rd.flatten() {
                        let _ = kill_and_remove_path(&e.path());
                    }
                }
                let _ = std::fs::remove_dir(&self.0);
            }
        }
        let _cleanup = Cleanup(parent.clone());
        let dead = parent.join(format!("ctrmon-{}-0", 1 << 23));
        let alive = parent.join(format!("ctrmon-{}-0", std::process::id()));
        std::fs::create_dir(&dead).unwrap();
        std::fs::create_dir(&alive).unwrap();
        let lock = |p: &Path| {
            let fd = rustix::fs::open(p, DIR_FLAGS, Mode::empty()).unwrap();
            flock(&fd, FlockOperation::NonBlockingLockExclusive).unwrap();
            fd
        };
        // A child that another test forks while a lock fd is open holds a
        // copy of it until its exec (close-on-exec): the lock is freed a
        // moment after our close, then. Retried until it is.
        let collect = |expected: &Path| {
            let started = Instant::now();
            loop {
                let removed = gc(&parent).unwrap();
                if !removed.is_empty() || started.elapsed() > Duration::from_secs(10) {
                    return removed;
                }
                assert!(expected.exists());
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let held = (lock(&dead), lock(&alive));
        assert_eq!(gc(&parent).unwrap(), Vec::<PathBuf>::new());
        assert!(dead.exists() && alive.exists());
        drop(held.0);
        assert_eq!(collect(&dead), vec![dead.clone()]);
        assert!(!dead.exists() && alive.exists());
        drop(held.1);
        assert_eq!(collect(&alive), vec![alive.clone()]);
        assert!(!alive.exists());
    }

    /// A run's own cgroup is locked for as long as the run holds it.
    #[test]
    fn a_created_cgroup_is_locked_until_removed() {
        let root = Path::new("/sys/fs/cgroup/memory");
        if !usable(root) {
            return;
        }
        let parent = root.join(format!("ctrmon-test-created-{}", std::process::id()));
        std::fs::create_dir(&parent).unwrap();
        let cg = CreatedCgroup::new(&parent).unwrap();
        let other = rustix::fs::open(&cg.path, DIR_FLAGS, Mode::empty()).unwrap();
        let locked = flock(&other, FlockOperation::NonBlockingLockExclusive);
        let path = cg.path.clone();
        let removed = cg.remove();
        drop(other);
        let _ = std::fs::remove_dir(&parent);
        assert_eq!(locked, Err(Errno::WOULDBLOCK));
        assert!(removed.is_ok() && !path.exists());
    }

    /// A subtree two levels deep with a process in the deepest cgroup, under
    /// `root` (v1 memory or v2): killed and removed in one call.
    fn subtree_is_killed_and_removed(root: &str) {
        let root = Path::new(root);
        if !rustix::process::geteuid().is_root() || !root.join("cgroup.procs").exists() {
            assert!(
                std::env::var("CTRMON_REQUIRE_CGROUPS").as_deref() != Ok("1"),
                "CTRMON_REQUIRE_CGROUPS=1 but {} is not usable",
                root.display()
            );
            return;
        }
        let top = root.join(format!("ctrmon-test-tree-{}", std::process::id()));
        let deep = top.join("ctrmon-test-a").join("ctrmon-test-b");
        std::fs::create_dir_all(&deep).unwrap();
        let script = format!(
            "echo $$ > '{}/cgroup.procs' && exec sleep 600",
            deep.display()
        );
        let mut kid = std::process::Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::fs::read_to_string(deep.join("cgroup.procs"))
            .unwrap_or_default()
            .is_empty()
        {
            assert!(started.elapsed() < Duration::from_secs(10), "never joined");
            std::thread::sleep(Duration::from_millis(5));
        }
        let result = kill_and_remove_path(&top);
        let status = kid.wait().unwrap();
        // Cleanup of last resort before asserting.
        let _ = kill_and_remove_path(&top);
        result.unwrap();
        assert!(!top.exists());
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
    }

    #[test]
    fn v1_subtree_is_killed_and_removed() {
        subtree_is_killed_and_removed("/sys/fs/cgroup/memory");
    }

    #[test]
    fn v2_subtree_is_killed_and_removed() {
        subtree_is_killed_and_removed("/sys/fs/cgroup/unified");
    }
}
