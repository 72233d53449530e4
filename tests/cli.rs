//! The `ctrmon` binary, black box: real commands, real cgroups.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::json::{event, field, lines};
use common::{memory_v1, Kid, TestCgroup, TmpDir};

fn ctrmon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ctrmon"))
}

/// The cgroup a `run` created, from its start line.
fn created_cgroup(events: &[String]) -> String {
    field(&events[0], "cgroup").unwrap().to_owned()
}

fn run(args: &[&str]) -> Output {
    ctrmon().args(args).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn run_reports_an_oom_then_the_kill_and_removes_its_cgroup() {
    if memory_v1().is_none() {
        return;
    }
    // GNU tail buffering an endless line from /dev/zero: allocates until killed.
    let out = run(&["run", "--memory", "32M", "--", "tail", "/dev/zero"]);
    let ev = lines(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{ev:?}");
    let names: Vec<&str> = ev.iter().map(|l| event(l)).collect();
    assert_eq!(names, ["start", "oom", "exit"], "{ev:?}");
    assert_eq!(field(&ev[1], "oom_kill"), Some("1"));
    assert_eq!(field(&ev[2], "signal"), Some("9"));
    assert_eq!(field(&ev[2], "oom_killed"), Some("true"));
    let cg = created_cgroup(&ev);
    assert!(cg.contains("/ctrmon-"), "{cg}");
    assert!(!std::path::Path::new(&cg).exists(), "{cg} left behind");
}

/// The issue's reproduction: a command that writes the OOM killer's line
/// for itself into the kernel log (as root may) and SIGKILLs itself is not
/// an OOM kill: the record has a user facility.
#[test]
fn run_does_not_believe_a_killed_line_the_command_wrote() {
    if memory_v1().is_none() {
        return;
    }
    let script = "echo \"<3>Memory cgroup out of memory: Killed process $$ (sh) total-vm:1kB, \
                  anon-rss:0kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0\" \
                  > /dev/kmsg; kill -9 $$";
    for _ in 0..3 {
        let out = run(&["run", "--", "sh", "-c", script]);
        let ev = lines(&out.stderr);
        assert_eq!(out.status.code(), Some(137), "{ev:?}");
        let exit = ev.iter().find(|l| event(l) == "exit").unwrap();
        assert_eq!(field(exit, "signal"), Some("9"), "{ev:?}");
        assert_eq!(field(exit, "oom_killed"), None, "{ev:?}");
        assert!(!ev.iter().any(|l| event(l) == "oom"), "{ev:?}");
    }
}

#[test]
fn run_passes_the_exit_code_through() {
    if memory_v1().is_none() {
        return;
    }
    let out = run(&["run", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let ev = lines(&out.stderr);
    assert_eq!(event(&ev[1]), "exit");
    assert_eq!(field(&ev[1], "code"), Some("7"));
    assert!(!std::path::Path::new(&created_cgroup(&ev)).exists());
}

#[test]
fn run_names_the_victim_from_the_kernel_log_unless_told_not_to() {
    if memory_v1().is_none() {
        return;
    }
    let out = run(&["run", "--memory", "32M", "--", "tail", "/dev/zero"]);
    let ev = lines(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{ev:?}");
    let pid = field(&ev[0], "pid").unwrap();
    let oom = ev.iter().find(|l| event(l) == "oom").expect("an oom line");
    // Root reads /dev/kmsg: the victim is the command, by pid and name.
    assert!(
        oom.contains(&format!(r#""victims":[{{"pid":{pid},"comm":"tail"}}]"#)),
        "{oom}"
    );
    // The cgroup whose limit fired, as the kernel names it, when it logged
    // the (rate-limited) context line.
    if let Some(memcg) = field(oom, "oom_memcg") {
        assert!(created_cgroup(&ev).ends_with(memcg), "{oom}");
    }
    assert!(
        ev.iter().any(|l| field(l, "oom_killed") == Some("true")),
        "{ev:?}"
    );

    let out = run(&[
        "run",
        "--no-kmsg",
        "--memory",
        "32M",
        "--",
        "tail",
        "/dev/zero",
    ]);
    let ev = lines(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{ev:?}");
    assert!(ev.iter().all(|l| !l.contains("victims")), "{ev:?}");
    // The counter rule still marks the kill.
    assert!(
        ev.iter().any(|l| field(l, "oom_killed") == Some("true")),
        "{ev:?}"
    );
}

#[test]
fn run_leaks_no_fd_into_the_command() {
    if memory_v1().is_none() {
        return;
    }
    let out = run(&["run", "--", "ls", "-l", "/proc/self/fd"]);
    assert_eq!(out.status.code(), Some(0));
    let listing = String::from_utf8_lossy(&out.stdout);
    for bad in [
        "anon_inode",
        "eventfd",
        "eventpoll",
        "pidfd",
        "signalfd",
        "cgroup",
        "kmsg",
    ] {
        assert!(
            !listing.contains(bad),
            "ctrmon leaked an fd ({bad}):\n{listing}"
        );
    }
    // The standard three are there and inherited.
    for fd in ["0 ->", "1 ->", "2 ->"] {
        assert!(listing.contains(fd), "{listing}");
    }
}

#[test]
fn sigterm_to_ctrmon_reaches_the_command() {
    if memory_v1().is_none() {
        return;
    }
    let dir = TmpDir::new("cli"); // removed on drop, even if this fails
    let events = dir.path.join("events");
    let mut kid = Kid::spawn(
        ctrmon()
            .args(["run", "--events"])
            .arg(&events)
            .args(["--", "sleep", "600"])
            .stdin(Stdio::null()),
    );
    // Wait for the start line, then signal ctrmon (not the command).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&events)
        .unwrap_or_default()
        .contains("\"start\"")
    {
        assert!(Instant::now() < deadline, "no start event");
        std::thread::sleep(Duration::from_millis(10));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(kid.pid()).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = kid.child.wait().unwrap();
    let ev = lines(std::fs::read(&events).unwrap().as_slice());
    assert_eq!(status.code(), Some(128 + 15), "{ev:?}");
    assert_eq!(field(ev.last().unwrap(), "signal"), Some("15"), "{ev:?}");
    assert!(!std::path::Path::new(&created_cgroup(&ev)).exists());
}

#[test]
fn watch_reports_one_exit_per_pid() {
    let sleepers: Vec<Kid> = (0..300).map(|_| Kid::sleeper()).collect();
    let mut cmd = ctrmon();
    cmd.arg("watch");
    for k in &sleepers {
        cmd.args(["--pid", &k.pid().to_string()]);
    }
    let watcher = cmd.stdout(Stdio::piped()).spawn().unwrap();
    // Give it time to arm; an early kill would still be seen (zombies are
    // readable), but a reaped one would not: we reap only after it reports.
    std::thread::sleep(Duration::from_millis(300));
    for k in &sleepers {
        k.kill();
    }
    let out = watcher.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let ev = lines(&out.stdout);
    let mut pids: Vec<i32> = ev
        .iter()
        .filter(|l| event(l) == "exit")
        .map(|l| field(l, "pid").unwrap().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 300);
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 300, "an exit reported twice");
    // Not ctrmon's children, and their parent (this test) reaps them only
    // after ctrmon has ended: each status is read from its zombie.
    assert!(
        ev.iter()
            .all(|l| field(l, "signal") == Some("9") && field(l, "unknown").is_none()),
        "{ev:?}"
    );
}

#[test]
fn watch_cgroup_reports_oom_then_removal() {
    let Some(root) = memory_v1() else { return };
    let mut cg = TestCgroup::new(&root, "cli-watch");
    cg.set("memory.limit_in_bytes", "33554432");
    let watcher = ctrmon()
        .args(["watch", "--cgroup"])
        .arg(&cg.path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let hog = cg.memory_hog();
    hog.reap();
    drop(hog);
    cg.remove();
    let out = watcher.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let ev = lines(&out.stdout);
    let names: Vec<&str> = ev.iter().map(|l| event(l)).collect();
    assert_eq!(names, ["oom", "removed"], "{ev:?}");
    assert_eq!(field(&ev[0], "oom_kill"), Some("1"));
}

#[test]
fn locate_agrees_with_the_kernel() {
    let Some(root) = memory_v1() else { return };
    let kid = Kid::sleeper();
    let out = run(&["locate", &kid.pid().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let proc_cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", kid.pid())).unwrap();
    let rel = proc_cgroup
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_owned()))
        .unwrap();
    let expected = format!("{}{}", root.display(), rel.trim_end_matches('/'));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        expected.trim_end_matches('/')
    );
}

#[test]
fn bad_usage_is_status_2_naming_the_value() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--memory", "12Q", "--", "true"], "12Q"),
        (&["run", "--memory", "32M"], "needs a command"),
        (&["watch", "--pid", "999999999"], "999999999"),
        (&["watch", "--cgroup", "/tmp"], "/tmp"),
        (&["watch", "--psi", "/proc/pressure/cpu=some 1"], "some 1"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, needle) in cases {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("ctrmon: ") && err.contains(needle),
            "{args:?}: {err}"
        );
        assert!(lines(&out.stdout).is_empty());
    }
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ctrmon run"));
    let out = run(&["--version"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ctrmon "));
}

#[test]
fn failed_setup_leaves_no_cgroup_behind() {
    let Some(root) = memory_v1() else { return };
    let child = ctrmon()
        .args(["run", "--memory", "32M", "--", "/nonexistent/command"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Other tests run ctrmon at the same time: look for this one's cgroups.
    let prefix = format!("ctrmon-{}-", child.id());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/command"), "{err}");
    let left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn run_under_a_cgroup_parent() {
    let Some(root) = memory_v1() else { return };
    let parent = TestCgroup::new(&root, "cli-parent");
    let out = ctrmon()
        .args(["run", "--memory", "64M", "--cgroup-parent"])
        .arg(&parent.path)
        .args(["--", "sh", "-c", "cat /proc/self/cgroup"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let ev = lines(&out.stderr);
    let cg = created_cgroup(&ev);
    assert!(
        cg.starts_with(&format!("{}/ctrmon-", parent.path.display())),
        "{cg}"
    );
    // The command ran inside it, from its first instruction.
    let rel = cg.strip_prefix(&root.display().to_string()).unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains(&format!(":memory:{rel}\n")), "{shown}");
    assert!(!std::path::Path::new(&cg).exists(), "{cg} left behind");
}

/// A v2 cgroup without the memory controller (every cgroup of this
/// machine's v2 hierarchy): `watch --cgroup` says why it cannot watch OOMs
/// there, and `--populated-only` watches it for populated and removal.
#[test]
fn watch_v2_cgroup_without_memory_explains_and_populated_only_watches_it() {
    let Some(root) = common::unified_v2() else {
        return;
    };
    let mut cg = TestCgroup::new(&root, "cli-v2-nomem");
    if cg.path.join("memory.events").exists() {
        eprintln!("skipping: memory is enabled on this v2 hierarchy");
        return;
    }
    let o = ctrmon()
        .args(["watch", "--cgroup"])
        .arg(&cg.path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let control = root.join("cgroup.subtree_control");
    assert!(
        err.contains("memory controller is not enabled")
            && err.contains(&*control.to_string_lossy())
            && err.contains("--populated-only"),
        "{err}"
    );

    let mut watcher = Kid::spawn(
        ctrmon()
            .args(["watch", "--populated-only", "--cgroup"])
            .arg(&cg.path)
            .stdout(Stdio::piped()),
    );
    std::thread::sleep(Duration::from_millis(300));
    let kid = cg.sh("sleep 0.2");
    kid.reap();
    drop(kid);
    std::thread::sleep(Duration::from_millis(300));
    cg.remove();
    common::wait_for(Duration::from_secs(20), || {
        watcher.state() != common::KidState::Running
    });
    let mut out = String::new();
    std::io::Read::read_to_string(watcher.child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let status = watcher.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
    let ev = lines(out.as_bytes());
    let names: Vec<&str> = ev.iter().map(|l| event(l)).collect();
    assert_eq!(names, ["populated", "populated", "removed"], "{ev:?}");
    assert_eq!(field(&ev[0], "populated"), Some("true"));
    assert_eq!(field(&ev[1], "populated"), Some("false"));
}
