//! The cgroups `run` creates: `ctrmon-<pid>-<n>`, made before the command
//! starts, and on every way out killed (with everything in its subtree) and
//! removed depth first. A ctrmon that was SIGKILLed cannot do that; `gc`
//! (and every `run`, before it starts) removes what such a ctrmon left.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use crate::{fail, Failure};

/// How long removal waits for killed processes to leave.
const REMOVAL_PATIENCE: Duration = Duration::from_secs(5);

/// The directory `run` creates its cgroup in when not told, as
/// [`placement`](crate::placement) decides it, without preparing anything.
pub fn default_parent() -> Result<PathBuf, Failure> {
    crate::placement::default_parent()
}

/// A cgroup made by `run`, killed and removed when dropped if
/// [`remove`](Self::remove) was not called.
pub struct CreatedCgroup {
    pub path: PathBuf,
    removed: bool,
}

impl CreatedCgroup {
    pub fn new(parent: &Path) -> Result<CreatedCgroup, Failure> {
        let me = std::process::id();
        for n in 0..1000 {
            let path = parent.join(format!("ctrmon-{me}-{n}"));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    return Ok(CreatedCgroup {
                        path,
                        removed: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return fail(format_args!("create cgroup {}", path.display()), e),
            }
        }
        fail(
            format_args!("create cgroup in {}", parent.display()),
            "1000 names taken",
        )
    }

    pub fn write(&self, file: &str, value: &str) -> Result<(), Failure> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path.join(file);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()));
        written.or_else(|e| fail(format_args!("write {value} to {}", path.display()), e))
    }

    pub fn remove(mut self) -> Result<(), Failure> {
        self.removed = true;
        kill_and_remove(&self.path)
            .or_else(|(p, e)| fail(format_args!("remove cgroup {}", p.display()), e))
    }
}

impl Drop for CreatedCgroup {
    fn drop(&mut self) {
        if !self.removed {
            if let Err((p, e)) = kill_and_remove(&self.path) {
                crate::say(format_args!("remove cgroup {}: {e}", p.display()));
            }
        }
    }
}

/// Kills every process in the cgroup at `path` and its descendants, and
/// removes them all, deepest first, retrying while the killed processes
/// leave (and killing again: one may have forked meanwhile). A cgroup that
/// is already gone counts as removed. The error names the cgroup that could
/// not be removed.
pub fn kill_and_remove(path: &Path) -> Result<(), (PathBuf, io::Error)> {
    let deadline = Instant::now() + REMOVAL_PATIENCE;
    loop {
        kill_all(path);
        match remove_tree(path) {
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
fn kill_all(path: &Path) {
    if std::fs::write(path.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    let me = std::process::id() as i32;
    for_each_cgroup(path, &mut |dir| {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        // ctrmon itself never joins the cgroup; never kill it all the same.
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            if pid == me {
                continue;
            }
            // A pidfd, so that a pid reused since the read is not signalled
            // if it left the cgroup (pidfd_open fails for a reaped pid).
            if let Some(fd) =
                Pid::from_raw(pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok())
            {
                let _ = pidfd_send_signal(&fd, Signal::KILL);
            }
        }
    });
}

/// Calls `f` on `dir` and on every cgroup below it.
fn for_each_cgroup(dir: &Path, f: &mut dyn FnMut(&Path)) {
    f(dir);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                for_each_cgroup(&e.path(), f);
            }
        }
    }
}

/// Removes `dir` and every cgroup below it, children first.
fn remove_tree(dir: &Path) -> Result<(), (PathBuf, io::Error)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err((dir.to_path_buf(), e)),
    };
    for e in entries.flatten() {
        // cgroupfs has no symlinks; a directory is a child cgroup.
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err((dir.to_path_buf(), e)),
        _ => Ok(()),
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

/// True when `pid` is a running ctrmon: `/proc/<pid>/exe` is a file whose
/// name starts with `ctrmon`, or has the name this ctrmon runs under (a
/// renamed copy, such as a second build installed beside the first, must
/// not take another's live runs for dead). Unknown (the link unreadable for
/// another reason than the process being gone) counts as running: gc never
/// removes a cgroup it is unsure about.
fn runs_ctrmon(pid: u32) -> bool {
    let name = |exe: &Path| {
        exe.file_name().map(|n| {
            let n = n.to_string_lossy().into_owned();
            n.strip_suffix(" (deleted)").map(str::to_owned).unwrap_or(n)
        })
    };
    match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(exe) => name(&exe).is_some_and(|n| {
            n.starts_with("ctrmon")
                || std::fs::read_link("/proc/self/exe").is_ok_and(|me| name(&me) == Some(n))
        }),
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// Removes, in `parent`, the `ctrmon-<pid>-<n>` cgroups whose creator is
/// no longer a running ctrmon, killing what is left in them. Returns the
/// cgroups removed; the error names one that could not be.
pub fn gc(parent: &Path) -> Result<Vec<PathBuf>, Failure> {
    let me = std::process::id();
    let entries = std::fs::read_dir(parent)
        .or_else(|e| fail(format_args!("read {}", parent.display()), e))?;
    let mut removed = Vec::new();
    let mut failed = None;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(creator_of) else {
            continue;
        };
        if pid == me || runs_ctrmon(pid) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        match kill_and_remove(&e.path()) {
            Ok(()) => removed.push(e.path()),
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

    #[test]
    fn runs_ctrmon_checks_the_executable() {
        // A `sleep` is not a ctrmon; this process runs under its own name,
        // which counts (a renamed copy of ctrmon); pid u32::MAX never has a
        // /proc entry.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let not_ctrmon = runs_ctrmon(sleeper.id());
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert!(!not_ctrmon);
        assert!(runs_ctrmon(std::process::id()));
        assert!(!runs_ctrmon(u32::MAX));
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
        let result = kill_and_remove(&top);
        let status = kid.wait().unwrap();
        // Cleanup of last resort before asserting.
        let _ = kill_and_remove(&top);
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
