//! Discovery of memory cgroups against the real kernel of this machine.
//!
//! The expected directory is computed here independently of the crate's
//! parsers, with the simplest reading of the two files that is right on an
//! ordinary host (mount root `/`). When the machine has no memory cgroup at
//! all the tests skip, unless `CTRMON_REQUIRE_CGROUPS=1`, which CI sets so
//! that a missing prerequisite fails instead of passing silently.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ctrmon::cgroup::{cgroup_version, memory_cgroup_of, memory_cgroup_of_in, CgroupVersion};

/// The memory mount (version, mount point, root) and this process's cgroup
/// path in it, or `None` (after reporting a skip) when there is none.
fn prerequisites() -> Option<(CgroupVersion, PathBuf, String, String)> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = |fstype: &str, opt: Option<&str>| {
        mountinfo.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let post: Vec<_> = post.split(' ').collect();
            let pre: Vec<_> = pre.split(' ').collect();
            let opt_ok = opt.map_or(true, |o| post[2].split(',').any(|x| x == o));
            (post[0] == fstype && opt_ok).then(|| (pre[4].to_string(), pre[3].to_string()))
        })
    };
    let v1 = cgroup.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
        ctrl.split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    });
    let found = match (v1, mount("cgroup", Some("memory"))) {
        (Some(path), Some((mp, root))) => Some((CgroupVersion::V1, PathBuf::from(mp), root, path)),
        _ => {
            let v2 = cgroup
                .lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string));
            match (v2, mount("cgroup2", None)) {
                (Some(path), Some((mp, root)))
                    if std::fs::read_to_string(Path::new(&mp).join("cgroup.controllers"))
                        .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory")) =>
                {
                    Some((CgroupVersion::V2, PathBuf::from(mp), root, path))
                }
                _ => None,
            }
        }
    };
    if found.is_none() {
        let msg =
            "no memory cgroup is mounted (no cgroup v1 memory hierarchy, no cgroup2 with memory)";
        if std::env::var_os("CTRMON_REQUIRE_CGROUPS").is_some_and(|v| v == "1") {
            panic!("CTRMON_REQUIRE_CGROUPS=1 but {msg}");
        }
        eprintln!("skipping: {msg}");
    }
    found
}

fn expected_dir(mount_point: &Path, root: &str, path: &str) -> PathBuf {
    let rel = Path::new(path)
        .strip_prefix(root)
        .expect("this test expects the process to be under the mount root");
    if rel.as_os_str().is_empty() {
        mount_point.to_path_buf()
    } else {
        mount_point.join(rel)
    }
}

struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn current_process_matches_proc_self_cgroup() {
    let Some((version, mount_point, root, path)) = prerequisites() else {
        return;
    };
    let cg = memory_cgroup_of(None).unwrap();
    assert_eq!(cg.version, version);
    assert_eq!(cg.mount_point, mount_point);
    assert!(cg.path.is_dir(), "{}", cg.path.display());
    assert!(cg.oom_file().is_file(), "{}", cg.oom_file().display());
    match version {
        CgroupVersion::V1 => assert!(cg.path.join("memory.oom_control").is_file()),
        CgroupVersion::V2 => assert!(cg.path.join("memory.events").is_file()),
    }
    let leaf = expected_dir(&mount_point, &root, &path);
    if leaf.join(version.oom_file()).exists() {
        assert_eq!(cg.path, leaf);
    } else {
        assert!(
            leaf.starts_with(&cg.path),
            "{} is not an ancestor of {}",
            cg.path.display(),
            leaf.display()
        );
    }
    assert_eq!(cgroup_version(&cg.path).unwrap(), version);
}

#[test]
fn spawned_child_is_in_the_same_cgroup() {
    let Some(_) = prerequisites() else { return };
    let child = Reaped(Command::new("sleep").arg("30").spawn().unwrap());
    let pid = child.0.id() as i32;
    let mine = memory_cgroup_of(None).unwrap();
    let its = memory_cgroup_of(Some(pid)).unwrap();
    assert_eq!(its, mine);
}

#[test]
fn missing_pid_is_reported_as_gone_naming_the_pid() {
    let err = memory_cgroup_of(Some(i32::MAX)).unwrap_err();
    assert!(err.is_process_gone(), "{err}");
    assert_eq!(err.pid(), Some(i32::MAX));
    assert!(err.to_string().contains(&i32::MAX.to_string()), "{err}");
    let err = memory_cgroup_of(Some(0)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn zombie_on_v1_is_an_error_not_the_root_cgroup() {
    let Some((version, ..)) = prerequisites() else {
        return;
    };
    let mut child = Reaped(Command::new("true").spawn().unwrap());
    let pid = child.0.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, s)| s.starts_with('Z'))
        {
            break;
        }
        assert!(Instant::now() < deadline, "child never became a zombie");
        std::thread::sleep(Duration::from_millis(5));
    }
    let result = memory_cgroup_of(Some(pid));
    if version == CgroupVersion::V1 {
        let err = result.unwrap_err();
        assert_eq!(err.pid(), Some(pid));
        assert!(err.to_string().contains("zombie"), "{err}");
    }
    child.0.wait().unwrap();
}

#[test]
fn cgroup_version_by_statfs() {
    let Some((version, mount_point, ..)) = prerequisites() else {
        return;
    };
    assert_eq!(cgroup_version(&mount_point).unwrap(), version);
    if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        assert_eq!(
            cgroup_version(Path::new("/sys/fs/cgroup/unified")).unwrap(),
            CgroupVersion::V2
        );
    }
    let err = cgroup_version(Path::new("/proc")).unwrap_err();
    assert_eq!(err.path_involved(), Some(Path::new("/proc")));
    assert!(err.to_string().contains("not a cgroup filesystem"), "{err}");
    let scratch = Scratch::new("symlink");
    let link = scratch.0.join("link");
    std::os::unix::fs::symlink(&mount_point, &link).unwrap();
    let err = cgroup_version(&link).unwrap_err();
    assert_eq!(err.path_involved(), Some(link.as_path()), "{err}");
    let err = cgroup_version(&scratch.0.join("missing")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

/// A scratch directory under the temp dir, removed on drop.
struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ctrmon-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    /// A fake procfs with `self/mountinfo` and `<pid>/cgroup`.
    fn fake_proc(&self, pid: i32, cgroup: &str, mountinfo: &str) -> PathBuf {
        let proc_root = self.0.join("proc");
        std::fs::create_dir_all(proc_root.join("self")).unwrap();
        std::fs::create_dir_all(proc_root.join(pid.to_string())).unwrap();
        std::fs::write(proc_root.join("self/mountinfo"), mountinfo).unwrap();
        std::fs::write(proc_root.join(pid.to_string()).join("cgroup"), cgroup).unwrap();
        proc_root
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn errors_name_the_file() {
    let s = Scratch::new("errors");
    let proc_root = s.fake_proc(
        42,
        "4:memory:/a\n",
        "35 31 0:32 / /x rw - cgroup cgroup rw,cpu\n",
    );
    let err = memory_cgroup_of_in(&proc_root, Some(42)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert_eq!(
        err.path_involved(),
        Some(proc_root.join("self/mountinfo").as_path())
    );
    assert!(err.to_string().contains("no memory controller"), "{err}");

    let proc_root = s.fake_proc(
        42,
        "4:memory:/a\n",
        "35 31 0:32 / /x rw cgroup cgroup rw,memory\n",
    );
    let err = memory_cgroup_of_in(&proc_root, Some(42)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(
        err.path_involved(),
        Some(proc_root.join("self/mountinfo").as_path())
    );
    assert!(err.to_string().contains("line 1"), "{err}");

    let proc_root = s.fake_proc(
        42,
        "4:memory",
        "35 31 0:32 / /x rw - cgroup cgroup rw,memory\n",
    );
    let err = memory_cgroup_of_in(&proc_root, Some(42)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(
        err.path_involved(),
        Some(proc_root.join("42/cgroup").as_path())
    );

    let proc_root = s.fake_proc(
        42,
        "4:memory:/docker/abcdef\n",
        "35 31 0:32 /docker/abc /x rw - cgroup cgroup rw,memory\n",
    );
    let err = memory_cgroup_of_in(&proc_root, Some(42)).unwrap_err();
    assert!(
        err.to_string()
            .contains("not visible from this mount namespace"),
        "{err}"
    );

    let err = memory_cgroup_of_in(&proc_root, Some(43)).unwrap_err();
    assert!(err.is_process_gone(), "{err}");
    assert_eq!(err.pid(), Some(43));
}

#[test]
fn walks_up_to_the_nearest_cgroup_with_memory_files_within_the_mount() {
    // A fake hierarchy on an ordinary filesystem: the walk finds the
    // ancestor with the memory file, then the statfs check rejects it,
    // naming the directory it chose.
    let s = Scratch::new("walk");
    let mnt = s.0.join("mnt");
    std::fs::create_dir_all(mnt.join("a/b")).unwrap();
    std::fs::write(mnt.join("a/memory.oom_control"), "").unwrap();
    std::fs::write(s.0.join("memory.oom_control"), "").unwrap();
    let mountinfo = format!(
        "35 31 0:32 / {} rw - cgroup cgroup rw,memory\n",
        mnt.display()
    );
    let proc_root = s.fake_proc(42, "4:memory:/a/b\n", &mountinfo);
    let err = memory_cgroup_of_in(&proc_root, Some(42)).unwrap_err();
    assert_eq!(err.path_involved(), Some(mnt.join("a").as_path()), "{err}");
    assert!(err.to_string().contains("not a cgroup filesystem"), "{err}");

    // Never above the mount point, even though its parent has the file.
    std::fs::remove_file(mnt.join("a/memory.oom_control")).unwrap();
    let err = memory_cgroup_of_in(&proc_root, Some(42)).unwrap_err();
    assert_eq!(
        err.path_involved(),
        Some(mnt.join("a/b").as_path()),
        "{err}"
    );
    assert!(err.to_string().contains("no memory.oom_control"), "{err}");

    // A leaf that does not exist is an error, not its parent.
    let proc_root = s.fake_proc(42, "4:memory:/a/gone\n", &mountinfo);
    std::fs::write(mnt.join("a/memory.oom_control"), "").unwrap();
    let err = memory_cgroup_of_in(&proc_root, Some(42)).unwrap_err();
    assert_eq!(
        err.path_involved(),
        Some(mnt.join("a/gone").as_path()),
        "{err}"
    );
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}
