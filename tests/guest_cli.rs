//! `ctrmon run` on a cgroup v2-only kernel (the test guest,
//! tests/guest/run.sh): where it creates the command's cgroup, by the
//! kernel's rules and systemd's. The guest has no systemd; "a host that
//! systemd manages" is simulated with `/run/systemd/system` and the
//! `trusted.delegate` attribute. On a host without the v2 memory controller
//! every test here skips.
//!
//! Every test holds one lock: the simulated systemd marker is machine-wide,
//! and the runs without `--cgroup-parent` create their cgroup at the root.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::json::field;
use common::{memory_v2, serial, TestCgroup};

const CTRMON: &str = env!("CARGO_BIN_EXE_ctrmon");

/// `ctrmon ARGS`, run from `sh` after it moved itself into `cgroup` (or
/// where the test runs, for `None`).
fn ctrmon_in(cgroup: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = match cgroup {
        Some(dir) => {
            let mut c = Command::new("sh");
            c.args([
                "-c",
                &format!(
                    "echo $$ > '{}/cgroup.procs' && exec \"$0\" \"$@\"",
                    dir.display()
                ),
                CTRMON,
            ]);
            c
        }
        None => Command::new(CTRMON),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ctrmon")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The event lines (JSON) on stderr, by their `event` name.
fn events(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("{\"event\":\"")?;
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

/// The cgroups `ctrmon run` made (`ctrmon-<pid>-<n>`) in `dir`.
fn run_cgroups(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ctrmon-") && !n.starts_with("ctrmon-test-"))
        .collect()
}

/// Every cgroup in `dir`.
fn subdirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// `/run/systemd/system` while alive: "this host is managed by systemd".
struct SystemdMarker;

impl SystemdMarker {
    fn new() -> SystemdMarker {
        assert!(
            !Path::new("/run/systemd").exists(),
            "a real systemd host: the simulation must not touch it"
        );
        std::fs::create_dir_all("/run/systemd/system").unwrap();
        SystemdMarker
    }
}

impl Drop for SystemdMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir("/run/systemd/system");
        let _ = std::fs::remove_dir("/run/systemd");
    }
}

/// Removes `dir` (the `supervisor` leaf ctrmon made) before its parent's
/// guard runs; it is empty once ctrmon has exited.
struct RemoveLeaf(PathBuf);

impl Drop for RemoveLeaf {
    fn drop(&mut self) {
        if self.0.exists() {
            if let Err(e) = std::fs::remove_dir(&self.0) {
                eprintln!("warning: could not remove {}: {e}", self.0.display());
            }
        }
    }
}

#[test]
fn run_in_the_root_cgroup_without_systemd_exits_with_the_commands_status() {
    let Some(root) = memory_v2() else { return };
    let _lock = serial();
    let o = ctrmon_in(None, &["run", "--", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(events(&o), ["start", "exit"], "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("\"cgroup\":\"{}/ctrmon-", root.display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(run_cgroups(&root), Vec::<String>::new());
}

#[test]
fn run_with_a_memory_limit_reports_the_oom_before_the_killed_exit() {
    let Some(root) = memory_v2() else { return };
    let _lock = serial();
    let o = ctrmon_in(
        None,
        &[
            "run",
            "--memory",
            "32M",
            "--",
            "sh",
            "-c",
            "exec tail /dev/zero",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(137), "{err}");
    // v2 also reports `memory` lines (`max` rising without an OOM).
    let mut seen = events(&o);
    seen.retain(|e| e != "memory");
    assert_eq!(seen, ["start", "oom", "exit"], "{err}");
    assert!(
        err.contains("\"oom_kill\":1") && err.contains("\"oom_killed\":true"),
        "{err}"
    );
    assert_eq!(run_cgroups(&root), Vec::<String>::new());
}

#[test]
fn cgroup_parent_gets_memory_enabled_and_the_limit_applies() {
    let Some(root) = memory_v2() else { return };
    let _lock = serial();
    let parent = TestCgroup::new(&root, "cli-parent");
    assert!(!parent.read("cgroup.subtree_control").contains("memory"));
    let p = parent.path.to_str().unwrap();
    let o = ctrmon_in(
        None,
        &[
            "run",
            "--memory",
            "32M",
            "--cgroup-parent",
            p,
            "--",
            "sh",
            "-c",
            "cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "33554432");
    assert!(
        stderr(&o).contains(&format!("\"cgroup\":\"{p}/ctrmon-")),
        "{}",
        stderr(&o)
    );
    assert!(parent.read("cgroup.subtree_control").contains("memory"));
    assert_eq!(run_cgroups(&parent.path), Vec::<String>::new());
}

#[test]
fn cgroup_parent_with_processes_of_its_own_is_refused_naming_it() {
    let Some(root) = memory_v2() else { return };
    let _lock = serial();
    let parent = TestCgroup::new(&root, "cli-busy");
    let _resident = parent.sh("exec sleep 600");
    common::wait_for(std::time::Duration::from_secs(30), || {
        !parent.read("cgroup.procs").trim().is_empty()
    });
    let p = parent.path.to_str().unwrap();
    let o = ctrmon_in(None, &["run", "--cgroup-parent", p, "--", "true"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(p) && err.contains("no internal processes"),
        "{err}"
    );
    // Nothing left behind: no cgroup, no controller enabled.
    assert_eq!(run_cgroups(&parent.path), Vec::<String>::new());
    assert_eq!(parent.read("cgroup.subtree_control").trim(), "");
}

#[test]
fn systemd_host_never_creates_under_the_root_cgroup() {
    let Some(root) = memory_v2() else { return };
    let _lock = serial();
    let _systemd = SystemdMarker::new();
    // This test process sits in the root cgroup, and so does ctrmon.
    let o = ctrmon_in(None, &["run", "--", "sh", "-c", "exit 7"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("systemd-run --scope -p Delegate=yes ctrmon run -- sh -c 'exit 7'")
            && err.contains("root cgroup"),
        "{err}"
    );
    assert_eq!(run_cgroups(&root), Vec::<String>::new());
}

#[test]
fn systemd_host_refuses_a_cgroup_that_is_not_delegated() {
    let Some(root) = memory_v2() else { return };
    let _lock = serial();
    let scope = TestCgroup::new(&root, "cli-scope");
    let _systemd = SystemdMarker::new();
    let o = ctrmon_in(Some(&scope.path), &["run", "--", "true"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&*scope.path.to_string_lossy())
            && err.contains("not delegated")
            && err.contains("systemd-run --scope -p Delegate=yes"),
        "{err}"
    );
    assert_eq!(subdirs(&scope.path), Vec::<String>::new());
}

#[test]
fn systemd_host_delegated_cgroup_ctrmon_moves_into_a_leaf_and_runs_beside_it() {
    let Some(root) = memory_v2() else { return };
    let _lock = serial();
    let scope = TestCgroup::new(&root, "cli-delegated");
    let _leaf = RemoveLeaf(scope.path.join("supervisor"));
    let set = Command::new("setfattr")
        .args(["-n", "trusted.delegate", "-v", "1"])
        .arg(&scope.path)
        .status()
        .expect("setfattr");
    assert!(set.success());
    let _systemd = SystemdMarker::new();
    let o = ctrmon_in(
        Some(&scope.path),
        &[
            "run",
            "--memory",
            "32M",
            "--",
            "sh",
            "-c",
            "cut -d: -f3 /proc/self/cgroup; cat /proc/$PPID/cgroup | cut -d: -f3; \
             cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let scope_rel = format!(
        "/{}",
        scope.path.strip_prefix(&root).unwrap().to_string_lossy()
    );
    // The command in its own cgroup beside the leaf, ctrmon (its parent) in
    // the leaf, and the limit in force.
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with(&format!("{scope_rel}/ctrmon-")),
        "{out}"
    );
    assert_eq!(lines[1], format!("{scope_rel}/supervisor"), "{out}");
    assert_eq!(lines[2], "33554432", "{out}");
    assert!(scope.read("cgroup.subtree_control").contains("memory"));
    assert_eq!(run_cgroups(&scope.path), Vec::<String>::new());
    assert_eq!(run_cgroups(&root), Vec::<String>::new());
}

/// True when this kernel's `memory.events` has `oom_group_kill` (5.17+),
/// as a fresh cgroup under `root` shows.
fn kernel_counts_group_kills(root: &Path) -> bool {
    TestCgroup::new(root, "cli-probe")
        .read("memory.events")
        .lines()
        .any(|l| l.split_whitespace().next() == Some("oom_group_kill"))
}

#[test]
fn run_oom_group_kills_the_whole_command() {
    let Some(root) = memory_v2() else { return };
    let _lock = serial();
    let o = ctrmon_in(
        None,
        &[
            "run",
            "--oom-group",
            "--memory",
            "32M",
            "--",
            "sh",
            "-c",
            "sleep 600 & sleep 600 & exec tail </dev/zero",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(137), "{err}");
    let oom: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("\"event\":\"oom\""))
        .collect();
    assert_eq!(oom.len(), 1, "{err}");
    // `oom_group_kill` came in 5.17 (`memory.oom.group` in 4.19): where the
    // kernel lacks the counter, the line omits it and ctrmon says why.
    let note = "has no oom_group_kill counter (Linux 5.17+)";
    if kernel_counts_group_kills(&root) {
        assert_eq!(field(oom[0], "oom_group_kill"), Some("1"), "{err}");
        assert!(!err.contains(note), "{err}");
    } else {
        assert_eq!(field(oom[0], "oom_group_kill"), None, "{err}");
        assert!(err.contains(note), "{err}");
    }
    // The hog and both sleepers (6.1 counts the first victim twice).
    let kills: u64 = field(oom[0], "oom_kill").unwrap().parse().unwrap();
    assert!((3..=4).contains(&kills), "{err}");
    assert!(err.contains("\"oom_killed\":true"), "{err}");
    assert_eq!(run_cgroups(&root), Vec::<String>::new());
}

#[test]
fn watch_local_events_tells_the_ancestors_limit_from_the_cgroups_own() {
    let Some(root) = memory_v2() else { return };
    let _lock = serial();
    let mut parent = TestCgroup::new(&root, "cli-local");
    parent.set("memory.max", "33554432");
    parent.set("memory.swap.max", "0");
    parent.set("cgroup.subtree_control", "+memory");
    let mut child = parent.child("leaf");
    let mut watcher = common::Kid::spawn(
        Command::new(CTRMON)
            .args(["watch", "--local-events", "--cgroup"])
            .arg(&child.path)
            .arg("--cgroup")
            .arg(&parent.path)
            .stdout(Stdio::piped()),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let hog = child.memory_hog();
    hog.reap();
    drop(hog);
    // Let the parent's OOM (which waits for a kill that is not its own) out.
    std::thread::sleep(std::time::Duration::from_millis(500));
    // How many OOMs the kernel counted at the parent's limit: one kill can
    // take more than one (seen twice on 6.1 and 6.12), so the report is
    // compared with the kernel's own count, not with a constant.
    let parent_ooms = parent.counter("memory.events.local", "oom");
    assert!(parent_ooms >= 1);
    child.remove();
    parent.remove();
    common::wait_for(std::time::Duration::from_secs(30), || {
        watcher.state() != common::KidState::Running
    });
    let mut out = String::new();
    std::io::Read::read_to_string(watcher.child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(watcher.child.wait().unwrap().code(), Some(0), "{out}");
    let of = |dir: &Path| -> Vec<&str> {
        let tag = format!("\"cgroup\":\"{}\"", dir.display());
        out.lines()
            .filter(|l| l.contains("\"event\":\"oom\"") && l.contains(&tag))
            .collect()
    };
    // The child: its process killed, for a limit that is not its own.
    let c = of(&child.path);
    assert_eq!(c.len(), 1, "{out}");
    assert_eq!(
        (field(c[0], "oom"), field(c[0], "oom_kill")),
        (None, Some("1")),
        "{out}"
    );
    // The parent: its limit hit, no process of its own killed.
    let p = of(&parent.path);
    assert_eq!(p.len(), 1, "{out}");
    let counted = parent_ooms.to_string();
    assert_eq!(
        (field(p[0], "oom"), field(p[0], "oom_kill")),
        (Some(counted.as_str()), None),
        "{out}"
    );
    assert_eq!(out.matches("\"event\":\"removed\"").count(), 2, "{out}");
}

// What the command leaves running in its cgroup is killed (through
// cgroup.kill on this kernel) and the cgroup removed.
#[test]
fn run_kills_what_the_command_left_and_removes_the_cgroup() {
    let Some(root) = memory_v2() else { return };
    let _lock = serial();
    let o = ctrmon_in(
        None,
        &["run", "--", "sh", "-c", "sleep 600 & echo $!; exit 3"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let left: i32 = stdout(&o).trim().parse().unwrap();
    // Gone, or a zombie waiting for the guest's init to reap it.
    let state = std::fs::read_to_string(format!("/proc/{left}/stat")).unwrap_or_default();
    let state = state.rsplit(')').next().unwrap_or("").trim_start();
    assert!(
        state.is_empty() || state.starts_with('Z'),
        "sleep {left} still runs: {state}"
    );
    assert_eq!(run_cgroups(&root), Vec::<String>::new());
}
