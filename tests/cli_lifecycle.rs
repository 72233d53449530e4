//! The `ctrmon` binary's life cycle, black box: argument parsing, what happens
//! when ctrmon is killed or its output fails, and the smaller things a user
//! hits. Real commands, real cgroups; nothing is left behind.

mod common;

use std::process::{Command, Output, Stdio};

use common::json::{event, field, lines};
use common::{memory_v1, TmpDir};

fn ctrmon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ctrmon"))
}

/// Runs ctrmon to its end, or for 30 s at most (then kills it): a test of
/// something that would hang must fail, not hang.
fn run(args: &[&str]) -> Output {
    let child = ctrmon()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let fd = pidfd(child.id() as i32);
    if !exited_within(&fd, Duration::from_secs(30)) {
        let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
    }
    child.wait_with_output().unwrap()
}

#[test]
fn every_command_has_help_with_its_options_and_exit_statuses() {
    for (cmd, option) in [
        ("run", "--memory"),
        ("watch", "--pid"),
        ("gc", "--cgroup-parent"),
        ("locate", "PID"),
    ] {
        let out = run(&[cmd, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{cmd} --help: {text}");
        assert!(text.contains(option), "{cmd} --help: {text}");
        assert!(text.contains("Exit status"), "{cmd} --help: {text}");
    }
}

#[test]
fn option_equals_value_and_events_dash_mean_what_users_expect() {
    if memory_v1().is_none() {
        return;
    }
    let dir = TmpDir::new("cli-dash");
    // `--events -` writes to standard output, never to a file named `-`.
    let out = ctrmon()
        .current_dir(&dir.path)
        .args([
            "run",
            "--memory=32M",
            "--events",
            "-",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = lines(&out.stdout);
    let names: Vec<&str> = ev.iter().map(|l| event(l)).collect();
    assert_eq!(names, ["start", "exit"], "{ev:?}");
    assert!(!dir.path.join("-").exists(), "a file named - was created");
    // `--` ends ctrmon's options: what follows is the command's.
    let out = run(&["run", "--", "sh", "-c", "exit 4", "--memory"]);
    assert_eq!(out.status.code(), Some(4));
    // A limit of 0 would kill the command at once: refused.
    let out = run(&["run", "--memory=0", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too small"));
}

/// `ls /proc/self/fd` of a command run by ctrmon, which was started with fd
/// 7 open and not close-on-exec (as a shell's `exec 7>FILE` leaves it).
fn fds_of_command(extra: &[&str]) -> (Option<i32>, Vec<u32>) {
    let dir = TmpDir::new(&format!("cli-fds{}", extra.len()));
    let script = format!(
        "exec 7>'{}/x'; exec '{}' run {} -- ls /proc/self/fd",
        dir.path.display(),
        env!("CARGO_BIN_EXE_ctrmon"),
        extra.join(" ")
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let fds = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (out.status.code(), fds)
}

#[test]
fn inherited_fds_are_closed_at_the_commands_exec_unless_kept() {
    if memory_v1().is_none() {
        return;
    }
    let (code, fds) = fds_of_command(&[]);
    assert_eq!(code, Some(0));
    // 0, 1, 2, and the directory `ls` itself opened.
    assert!(
        !fds.contains(&7),
        "inherited fd 7 reached the command: {fds:?}"
    );
    assert!(
        fds.contains(&0) && fds.contains(&1) && fds.contains(&2),
        "{fds:?}"
    );
    let (code, fds) = fds_of_command(&["--keep-fds"]);
    assert_eq!(code, Some(0));
    assert!(fds.contains(&7), "--keep-fds did not pass fd 7 on: {fds:?}");
}

// ---------------------------------------------------------------------------
// When ctrmon is killed, or gets a signal.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Kid, TestCgroup};
use rustix::process::{pidfd_open, Pid, PidfdFlags, Signal};

/// Polls `f` every 10 ms until it returns `Some`, failing after `limit`.
fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A pidfd on any process (not only our child), to tell when it has exited
/// without ever naming a reused pid.
fn pidfd(pid: i32) -> OwnedFd {
    pidfd_open(Pid::from_raw(pid).unwrap(), PidfdFlags::empty()).expect("pidfd_open")
}

/// True once the process behind `fd` has exited (readable pidfd).
fn exited_within(fd: &OwnedFd, limit: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let t = Timespec {
        tv_sec: limit.as_secs() as i64,
        tv_nsec: limit.subsec_nanos() as i64,
    };
    poll(&mut fds, Some(&t)).unwrap() == 1
}

fn send(pid: i32, sig: Signal) {
    rustix::process::pidfd_send_signal(pidfd(pid), sig).unwrap();
}

/// `ctrmon run --events FILE ARGS`, started, with its `start` line read:
/// (ctrmon, the command's pid, its cgroup).
fn start_run(events: &Path, args: &[&str]) -> (Kid, i32, PathBuf) {
    start_run_of(ctrmon(), events, args)
}

/// [`start_run`] with ctrmon started by `cmd` (a copy, a link, a loader).
fn start_run_of(mut cmd: Command, events: &Path, args: &[&str]) -> (Kid, i32, PathBuf) {
    // A start line left from an earlier run must not be taken for this one.
    let _ = std::fs::remove_file(events);
    let kid = Kid::spawn(
        cmd.arg("run")
            .arg("--events")
            .arg(events)
            .args(args)
            .stdin(Stdio::null()),
    );
    let start = eventually(Duration::from_secs(20), "the start line", || {
        let text = std::fs::read_to_string(events).ok()?;
        let first = text.lines().next()?.to_owned();
        (event(&first) == "start").then_some(first)
    });
    let pid = field(&start, "pid").unwrap().parse().unwrap();
    let cg = PathBuf::from(field(&start, "cgroup").unwrap());
    (kid, pid, cg)
}

fn procs(cg: &Path) -> Vec<i32> {
    std::fs::read_to_string(cg.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// On drop, kills what is in the cgroups directly under a test's parent
/// cgroup, and below them, and removes them (only this test's runs made
/// them), so that the parent can go even when an assertion failed.
struct KillChildren(PathBuf);

impl Drop for KillChildren {
    fn drop(&mut self) {
        let Ok(rd) = std::fs::read_dir(&self.0) else {
            return;
        };
        for e in rd.flatten().filter(|e| e.path().is_dir()) {
            kill_tree(&e.path());
        }
    }
}

/// On drop, [`kill_tree`] on a cgroup a test's `run` made.
struct KillTree(PathBuf);

impl Drop for KillTree {
    fn drop(&mut self) {
        kill_tree(&self.0);
    }
}

/// Kills every process in the cgroup `dir` and below, and removes them all,
/// deepest first.
fn kill_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten().filter(|e| e.path().is_dir()) {
            kill_tree(&e.path());
        }
    }
    for _ in 0..200 {
        for pid in procs(dir) {
            if let Ok(fd) = pidfd_open(Pid::from_raw(pid).unwrap(), PidfdFlags::empty()) {
                let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
            }
        }
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => return,
        }
    }
}

#[test]
fn a_sigkilled_ctrmon_takes_its_command_along_and_gc_removes_the_rest() {
    let Some(root) = memory_v1() else { return };
    // Our own parent, so that no other test's `run` collects this garbage.
    let parent = TestCgroup::new(&root, "gc");
    let _collect = KillChildren(parent.path.clone());
    let dir = TmpDir::new("cli-gc");
    let events = dir.path.join("events");
    let p = parent.path.to_str().unwrap();
    // The command leaves a grandchild, which no parent-death signal reaches.
    let (ctrmon_kid, pid, cg) = start_run(
        &events,
        &[
            "--cgroup-parent",
            p,
            "--",
            "sh",
            "-c",
            "sleep 600 & exec sleep 600",
        ],
    );
    let grandchild = eventually(Duration::from_secs(10), "the grandchild", || {
        procs(&cg).into_iter().find(|&p| p != pid)
    });
    let (command, grandchild) = (pidfd(pid), pidfd(grandchild));
    ctrmon_kid.kill();
    assert!(ctrmon_kid.reap());
    // PR_SET_PDEATHSIG: the command does not outlive ctrmon.
    assert!(
        exited_within(&command, Duration::from_secs(10)),
        "the command outlived ctrmon"
    );
    assert!(
        cg.exists(),
        "nothing was left to collect: the test proves nothing"
    );
    assert!(!exited_within(&grandchild, Duration::ZERO));
    let out = run(&["gc", "--cgroup-parent", p]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!cg.exists(), "gc left {}", cg.display());
    assert!(
        exited_within(&grandchild, Duration::from_secs(10)),
        "gc left a process"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&cg.display().to_string()));

    // The same, collected by the next `run` instead of `gc`.
    let (ctrmon_kid, _, cg) = start_run(&events, &["--cgroup-parent", p, "--", "sleep", "600"]);
    ctrmon_kid.kill();
    assert!(ctrmon_kid.reap());
    assert!(cg.exists());
    let out = run(&["run", "--cgroup-parent", p, "--", "true"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!cg.exists(), "the next run left {}", cg.display());
    // gc never touches a running ctrmon's cgroup.
    let (live, _, cg) = start_run(&events, &["--cgroup-parent", p, "--", "sleep", "600"]);
    assert_eq!(run(&["gc", "--cgroup-parent", p]).status.code(), Some(0));
    assert!(cg.exists(), "gc removed a live run's cgroup");
    drop(live);
}

/// A live run of ctrmon under another name (a copy named `cm`, a hard link
/// `mon` to it, started by the dynamic loader) is never taken for dead by a
/// concurrent `gc`, nor by the `gc` every `run` does first.
#[test]
fn gc_never_kills_a_live_run_of_any_binary_name() {
    let Some(root) = memory_v1() else { return };
    let parent = TestCgroup::new(&root, "gc-names");
    let _collect = KillChildren(parent.path.clone());
    let dir = TmpDir::new("cli-gc-names");
    let p = parent.path.to_str().unwrap();
    let cm = dir.path.join("cm");
    std::fs::copy(env!("CARGO_BIN_EXE_ctrmon"), &cm).unwrap();
    let mon = dir.path.join("mon");
    std::fs::hard_link(&cm, &mon).unwrap();
    let mut starters = vec![Command::new(&cm), Command::new(&mon)];
    let loader = Path::new("/lib64/ld-linux-x86-64.so.2");
    if loader.exists() {
        let mut c = Command::new(loader);
        c.arg(env!("CARGO_BIN_EXE_ctrmon"));
        starters.push(c);
    }
    let mut live = Vec::new();
    for (i, cmd) in starters.into_iter().enumerate() {
        let events = dir.path.join(format!("events{i}"));
        let (kid, pid, cg) =
            start_run_of(cmd, &events, &["--cgroup-parent", p, "--", "sleep", "600"]);
        live.push((kid, pidfd(pid), cg));
    }
    // Collectors running side by side with the live runs.
    let gcs: Vec<_> = (0..3)
        .map(|_| {
            let p = p.to_string();
            std::thread::spawn(move || run(&["gc", "--cgroup-parent", &p]))
        })
        .collect();
    let next = run(&["run", "--cgroup-parent", p, "--", "true"]);
    assert_eq!(
        next.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    for g in gcs {
        let out = g.join().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (kid, command, cg) in &live {
        assert!(cg.exists(), "gc removed the live run's {}", cg.display());
        assert!(
            !exited_within(command, Duration::ZERO),
            "gc killed the command in {}",
            cg.display()
        );
        assert!(
            !exited_within(&pidfd(kid.pid()), Duration::ZERO),
            "the run ended"
        );
    }
}

/// `gc --cgroup-parent DIR` on a plain directory, planted with what looks
/// like a stale cgroup listing a pid: refused, naming DIR; nothing killed,
/// nothing removed.
#[test]
fn gc_refuses_a_directory_that_is_not_on_cgroupfs() {
    let dir = TmpDir::new("cli-gc-plain");
    let victim = Kid::sleeper();
    let planted = dir.path.join("ctrmon-999999-0");
    std::fs::create_dir(&planted).unwrap();
    std::fs::write(planted.join("cgroup.procs"), format!("{}\n", victim.pid())).unwrap();
    let out = run(&["gc", "--cgroup-parent", dir.path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&dir.path.display().to_string()) && err.contains("not a cgroup filesystem"),
        "{err}"
    );
    assert!(
        !exited_within(&pidfd(victim.pid()), Duration::from_millis(100)),
        "gc killed the planted pid"
    );
    assert!(planted.join("cgroup.procs").exists());
}

#[test]
fn every_forwarded_signal_reaches_the_command() {
    if memory_v1().is_none() {
        return;
    }
    let dir = TmpDir::new("cli-signals");
    let events = dir.path.join("events");
    // Signals that end `sleep`: the command dies of each, ctrmon exits 128 + N.
    for sig in [
        Signal::HUP,
        Signal::QUIT,
        Signal::USR1,
        Signal::USR2,
        Signal::ALARM,
        Signal::INT,
        Signal::TERM,
    ] {
        let (mut kid, _, cg) = start_run(&events, &["--", "sleep", "600"]);
        let _cleanup = KillTree(cg.clone());
        send(kid.pid(), sig);
        let status = kid.child.wait().unwrap();
        assert_eq!(status.code(), Some(128 + sig.as_raw()), "{sig:?}");
        assert!(!cg.exists());
    }
    // Signals that do not end it by default: the command traps them.
    for (sig, name) in [(Signal::WINCH, "WINCH"), (Signal::CONT, "CONT")] {
        let script = format!("trap 'exit 42' {name}; while :; do sleep 0.01; done");
        let (mut kid, _, cg) = start_run(&events, &["--", "sh", "-c", &script]);
        let _cleanup = KillTree(cg);
        // The trap must be set before the signal: give sh a moment.
        std::thread::sleep(Duration::from_millis(200));
        send(kid.pid(), sig);
        assert_eq!(kid.child.wait().unwrap().code(), Some(42), "{name}");
    }
}

#[test]
fn the_command_starts_with_no_signal_blocked_or_ignored() {
    if memory_v1().is_none() {
        return;
    }
    let out = run(&[
        "run",
        "--",
        "grep",
        "-E",
        "^Sig(Blk|Ign)",
        "/proc/self/status",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // Signals 1 to 31 (the real-time ones above are the C library's and
    // the test harness's business): none blocked, none ignored, SIGPIPE
    // included, though ctrmon itself ignores it.
    for l in text.lines() {
        let mask = u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(mask & 0x7fff_ffff, 0, "{l}");
    }
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn a_sub_cgroup_made_by_the_command_is_killed_and_removed_too() {
    let Some(root) = memory_v1() else { return };
    let script = format!(
        "cg={}$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup); mkdir $cg/sub; \
         sh -c \"echo \\$\\$ > $cg/sub/cgroup.procs; exec sleep 600\" & sleep 0.2; exit 5",
        root.display()
    );
    let started = Instant::now();
    let out = ctrmon()
        .args(["run", "--events", "-", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let ev = lines(&out.stdout);
    let cg = PathBuf::from(field(&ev[0], "cgroup").unwrap());
    let _cleanup = KillTree(cg.clone());
    assert_eq!(
        out.status.code(),
        Some(5),
        "{ev:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!cg.exists(), "{} left behind", cg.display());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Output that fails.

use std::io::{BufRead, BufReader};

/// Waits for `kid` to exit, at most `limit`; its status code.
fn status_within(kid: &mut Kid, limit: Duration) -> Option<i32> {
    let fd = pidfd(kid.pid());
    assert!(
        exited_within(&fd, limit),
        "ctrmon still running after {limit:?}"
    );
    kid.child.wait().unwrap().code()
}

#[test]
fn run_outlives_a_closed_event_pipe_and_keeps_the_commands_status() {
    if memory_v1().is_none() {
        return;
    }
    let dir = TmpDir::new("cli-epipe");
    let marker = dir.path.join("m");
    // `ctrmon run … 2>&1 | true`: the reader is gone before the first line.
    let script = format!("sleep 0.3; touch '{}'; exit 3", marker.display());
    let mut kid = Kid::spawn(
        ctrmon()
            .args(["run", "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    drop(kid.child.stderr.take());
    assert_eq!(status_within(&mut kid, Duration::from_secs(20)), Some(3));
    assert!(marker.exists(), "the command was stopped");

    // `… | head -1`: the reader takes the start line, then goes.
    let mut kid = Kid::spawn(
        ctrmon()
            .args(["run", "--", "sh", "-c", "sleep 0.3; exit 4"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut first = String::new();
    BufReader::new(kid.child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(event(&first), "start");
    assert_eq!(status_within(&mut kid, Duration::from_secs(20)), Some(4));
}

#[test]
fn run_says_once_how_many_events_were_lost() {
    if memory_v1().is_none() {
        return;
    }
    let out = run(&["run", "--events", "/dev/full", "--", "sh", "-c", "exit 6"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert_eq!(err.matches("ctrmon: ").count(), 1, "{err}");
    assert!(
        err.contains("2 of 2 events could not be written to /dev/full"),
        "{err}"
    );
}

#[test]
fn watch_ends_at_once_when_its_reader_goes_away() {
    let (a, b) = (Kid::sleeper(), Kid::sleeper());
    let mut watcher = Kid::spawn(
        ctrmon()
            .args(["watch", "--pid", &a.pid().to_string()])
            .args(["--pid", &b.pid().to_string()])
            .stdout(Stdio::piped()),
    );
    std::thread::sleep(Duration::from_millis(300));
    a.kill();
    // `| head -1`: one line, then the reader is gone; `b` lives on.
    let mut first = String::new();
    BufReader::new(watcher.child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(event(&first), "exit");
    assert_eq!(
        status_within(&mut watcher, Duration::from_secs(5)),
        Some(141)
    );
    assert!(!exited_within(&pidfd(b.pid()), Duration::ZERO));
}

#[test]
fn watch_to_a_regular_file_ends_normally() {
    let a = Kid::sleeper();
    let dir = TmpDir::new("cli-watch-file");
    let events = dir.path.join("events");
    let mut watcher = Kid::spawn(
        ctrmon()
            .args(["watch", "--pid", &a.pid().to_string(), "--events"])
            .arg(&events),
    );
    std::thread::sleep(Duration::from_millis(300));
    a.kill();
    assert_eq!(
        status_within(&mut watcher, Duration::from_secs(10)),
        Some(0)
    );
    let ev = lines(&std::fs::read(&events).unwrap());
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(event(&ev[0]), "exit");
}

/// A 4 KiB tmpfs, unmounted on drop.
struct TinyFs(TmpDir);

impl TinyFs {
    fn new() -> Option<TinyFs> {
        let dir = TmpDir::new("cli-tinyfs");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4k", "tmpfs"])
            .arg(&dir.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(!common::cgroups_required(), "cannot mount a tmpfs");
            eprintln!("skipping: cannot mount a tmpfs");
            return None;
        }
        Some(TinyFs(dir))
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0.path).status();
    }
}

#[test]
fn a_full_disk_leaves_whole_lines_and_says_so() {
    let Some(fs) = TinyFs::new() else { return };
    let events = fs.0.path.join("events");
    let sleepers: Vec<Kid> = (0..150).map(|_| Kid::sleeper()).collect();
    let mut cmd = ctrmon();
    cmd.args(["watch", "--events"]).arg(&events);
    for k in &sleepers {
        cmd.args(["--pid", &k.pid().to_string()]);
    }
    let mut watcher = Kid::spawn(cmd.stderr(Stdio::piped()));
    std::thread::sleep(Duration::from_millis(300));
    for k in &sleepers {
        k.kill();
    }
    let code = status_within(&mut watcher, Duration::from_secs(20));
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut watcher.child.stderr.take().unwrap(), &mut err);
    let text = std::fs::read_to_string(&events).unwrap();
    // Whole lines only, fewer than 150 (the disk filled up), and a message.
    assert!(
        text.ends_with('\n'),
        "a cut line at the end: {:?}",
        &text[text.len().saturating_sub(80)..]
    );
    let n = text.lines().count();
    assert!(
        text.lines().all(|l| l.starts_with('{') && l.ends_with('}')),
        "{text}"
    );
    assert!(n > 0 && n < 150, "{n} lines");
    assert_eq!(code, Some(141), "{err}");
    assert!(
        err.contains("write events to") && err.contains(&events.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_fifo_without_a_reader_is_a_clear_error_not_a_hang() {
    let dir = TmpDir::new("cli-fifo");
    let fifo = dir.path.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let a = Kid::sleeper();
    for args in [
        vec!["watch".to_owned(), "--pid".to_owned(), a.pid().to_string()],
        vec!["run".to_owned(), "--".to_owned(), "true".to_owned()],
    ] {
        let mut kid = Kid::spawn(
            ctrmon()
                .args(&args[..1])
                .arg("--events")
                .arg(&fifo)
                .args(&args[1..])
                .stderr(Stdio::piped()),
        );
        assert_eq!(status_within(&mut kid, Duration::from_secs(10)), Some(2));
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut kid.child.stderr.take().unwrap(), &mut err);
        assert!(err.contains("FIFO with no reader"), "{err}");
    }
}

// ---------------------------------------------------------------------------
// Smaller things a user hits.

fn failure(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    err
}

/// Removes an (empty) directory on drop, if it is still there.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_cgroup_path_that_is_not_utf8_is_printed_exactly() {
    use std::os::unix::ffi::OsStrExt;
    let Some(root) = memory_v1() else { return };
    let mut name = format!("ctrmon-test-raw-{}-", std::process::id()).into_bytes();
    name.push(0xff);
    let path = root.join(std::ffi::OsStr::from_bytes(&name));
    std::fs::create_dir(&path).unwrap();
    let _guard = RemoveDir(path.clone());
    let mut watcher = Kid::spawn(
        ctrmon()
            .arg("watch")
            .arg("--cgroup")
            .arg(&path)
            .stdout(Stdio::piped()),
    );
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_dir(&path).unwrap();
    let code = status_within(&mut watcher, Duration::from_secs(10));
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut watcher.child.stdout.take().unwrap(), &mut out).unwrap();
    let ev = lines(&out);
    assert_eq!(code, Some(0), "{ev:?}");
    let hex: String = path
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(event(&ev[0]), "removed", "{ev:?}");
    assert_eq!(field(&ev[0], "cgroup_hex"), Some(hex.as_str()), "{ev:?}");
}

#[test]
fn a_thread_id_names_its_process() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let me = std::fs::read_link("/proc/thread-self").unwrap();
        tx.send(me.file_name().unwrap().to_string_lossy().into_owned())
            .unwrap();
        let _ = stop_rx.recv();
    });
    let tid = rx.recv().unwrap();
    let err = failure(&["watch", "--pid", &tid]);
    stop_tx.send(()).unwrap();
    thread.join().unwrap();
    assert!(
        err.contains(&format!(
            "{tid} is a thread of process {}",
            std::process::id()
        )),
        "{err}"
    );
}

#[test]
fn a_pid_of_another_pid_namespace_is_named_as_such() {
    if Command::new("unshare").arg("--version").output().is_err() {
        assert!(
            !common::cgroups_required(),
            "unshare (util-linux) is missing"
        );
        return;
    }
    // Inside a new pid namespace, this test's own (live) pid is not visible.
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_ctrmon"))
        .args(["watch", "--pid", &std::process::id().to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not visible in this pid namespace"), "{err}");
}

#[test]
fn a_v1_hierarchy_without_memory_says_so() {
    let pids = Path::new("/sys/fs/cgroup/pids");
    if memory_v1().is_none() || !pids.join("cgroup.procs").exists() {
        return;
    }
    let err = failure(&["watch", "--cgroup", "/sys/fs/cgroup/pids"]);
    assert!(err.contains("the memory controller is not there"), "{err}");
}

#[test]
fn a_symlink_anywhere_in_a_cgroup_path_is_refused() {
    let Some(root) = memory_v1() else { return };
    let cg = TestCgroup::new(&root, "linked");
    let dir = TmpDir::new("cli-links");
    let link = dir.path.join("link");
    std::os::unix::fs::symlink(&root, &link).unwrap();
    let name = cg.path.file_name().unwrap().to_str().unwrap();
    for path in [
        format!("{}/", link.display()),
        format!("{}/{name}", link.display()),
        format!("{}/{name}/", link.display()),
    ] {
        let err = failure(&["watch", "--cgroup", &path]);
        assert!(err.contains("symbolic link"), "{path}: {err}");
    }
}

#[test]
fn a_psi_only_watch_ends_with_its_cgroup() {
    let Some(root) = common::unified_v2() else {
        return;
    };
    let mut cg = TestCgroup::new(&root, "psi-only");
    let psi = format!("{}/cpu.pressure=some 150000 2000000", cg.path.display());
    let mut watcher = Kid::spawn(
        ctrmon()
            .args(["watch", "--psi", &psi])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    // Armed before the removal: a sleep was not enough in a 5.10 guest
    // under emulation (ctrmon found no cgroup and exited 2).
    let file = cg.path.join("cpu.pressure");
    common::wait_in_epoll(&mut watcher, "the PSI trigger", |_, _, target| {
        Path::new(target) == file
    });
    cg.remove();
    assert_eq!(
        status_within(&mut watcher, Duration::from_secs(10)),
        Some(0)
    );
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut watcher.child.stdout.take().unwrap(), &mut out).unwrap();
    let ev = lines(&out);
    assert_eq!(
        ev.iter().map(|l| event(l)).collect::<Vec<_>>(),
        ["removed"],
        "{ev:?}"
    );
}
