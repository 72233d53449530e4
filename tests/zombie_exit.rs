//! The exit of a process that is not ours is reported when it exits, with
//! its real status, while its parent has not reaped it yet: read from its
//! zombie (`/proc/<pid>/stat` field 52) and confirmed through its pidfd.
//!
//! The parent is a python helper that forks the watched process and reaps
//! it only when the test writes a line to its stdin, so the zombie's
//! existence at report time is checked (state `Z`), not timed.

mod common;

use ctrmon::watch::Process;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use ctrmon::{EventKind, ExitStatus, Monitor, WhyUnknown};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

/// Forks a child that exits with 7 (`exit`) or waits to be killed
/// (`pause`), prints its pid, reaps it when a line comes on stdin, and
/// prints the wait status it got.
const PARENT: &str = r#"
import os, signal, sys
pid = os.fork()
if pid == 0:
    if sys.argv[1] == "exit":
        os._exit(7)
    while True:
        signal.pause()
print(pid, flush=True)
sys.stdin.readline()
print(os.waitpid(pid, 0)[1], flush=True)
sys.stdin.readline()
"#;

/// A slow parent and its child; both are killed (by pidfd) when dropped.
struct Family {
    parent: common::Kid,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    child: i32,
    child_fd: OwnedFd,
}

impl Family {
    fn new(mode: &str) -> Family {
        Family::spawn(Command::new("python3").args(["-c", PARENT, mode]))
    }

    /// Starts the helper parent `cmd` and takes the pid of the child it
    /// forked from its first line.
    fn spawn(cmd: &mut Command) -> Family {
        let mut parent = common::Kid::spawn(cmd.stdin(Stdio::piped()).stdout(Stdio::piped()));
        let stdin = parent.child.stdin.take().unwrap();
        let mut stdout = BufReader::new(parent.child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let child: i32 = line.trim().parse().expect("the helper's child pid");
        // Not reaped before the parent reads a line: the pid is still its.
        let child_fd = pidfd_open(Pid::from_raw(child).unwrap(), PidfdFlags::empty()).unwrap();
        Family {
            parent,
            stdin,
            stdout,
            child,
            child_fd,
        }
    }

    fn kill_child(&self) {
        pidfd_send_signal(&self.child_fd, Signal::KILL).unwrap();
    }

    /// The child's state letter, or `None` once it is reaped.
    fn child_state(&self) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child)).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .next()?
            .chars()
            .next()
    }

    /// Lets the parent reap; the wait status it got.
    fn reap(&mut self) -> i32 {
        self.stdin.write_all(b"reap\n").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().parse().expect("the helper's wait status")
    }
}

impl Drop for Family {
    fn drop(&mut self) {
        let _ = pidfd_send_signal(&self.child_fd, Signal::KILL);
        // The parent's Kid kills and reaps it; its child is then reaped by
        // init, or was reaped by it.
        let _ = &self.parent;
    }
}

/// The watched process's exit, and its state when it was reported.
fn next_exit(m: &Monitor<()>, family: &Family) -> (ctrmon::Exit, Option<char>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = None;
    while got.is_none() {
        assert!(Instant::now() < deadline, "no exit within 20 s");
        m.wait(Some(Duration::from_millis(200)), |e| {
            if let EventKind::Exited(x) = e.kind {
                got = Some((x, family.child_state()));
            }
        })
        .unwrap();
    }
    got.unwrap()
}

#[test]
fn a_zombies_exit_code_is_reported_before_its_parent_reaps_it() {
    let mut family = Family::new("exit");
    let m: Monitor<()> = Monitor::builder().kernel_log(false).build().unwrap();
    m.watch(Process::pid(family.child), ()).unwrap();
    let (x, state) = next_exit(&m, &family);
    assert_eq!(state, Some('Z'), "reported after the reap: {x:?}");
    assert_eq!(
        (x.pid, x.status, x.unknown, x.reaped),
        (family.child, ExitStatus::Code(7), None, false)
    );
    // The parent still gets the status: the watch took nothing from it.
    assert_eq!(family.reap(), 7 << 8);
}

#[test]
fn a_zombies_signal_is_reported_before_its_parent_reaps_it() {
    let mut family = Family::new("pause");
    let m: Monitor<()> = Monitor::builder().kernel_log(false).build().unwrap();
    m.watch(Process::pid(family.child), ()).unwrap();
    family.kill_child();
    let (x, state) = next_exit(&m, &family);
    assert_eq!(state, Some('Z'), "reported after the reap: {x:?}");
    assert_eq!(
        (x.status, x.unknown, x.reaped),
        (ExitStatus::Signal(9), None, false)
    );
    assert_eq!(family.reap(), 9);
}

#[test]
fn a_process_its_parent_reaped_first_gets_the_kernels_status_or_a_reason() {
    let mut family = Family::new("exit");
    let m: Monitor<()> = Monitor::builder().kernel_log(false).build().unwrap();
    m.watch(Process::pid(family.child), ()).unwrap();
    // Reaped before the monitor looks: no zombie left to read.
    assert_eq!(family.reap(), 7 << 8);
    let (x, state) = next_exit(&m, &family);
    assert_eq!(state, None);
    let expected = if common::kernel_has_exit_info() {
        (ExitStatus::Code(7), None)
    } else {
        (ExitStatus::Unknown, Some(WhyUnknown::NoExitInfo))
    };
    assert_eq!((x.status, x.unknown), expected);
    if let Some(why) = x.unknown {
        assert!(why.as_str().contains("reaped it before"), "{why}");
    }
}

/// `ctrmon watch --pid` of the family's child (as `user`, if given): its
/// first line, and the child's state when the line came.
fn cli_first_line(family: &Family, user: Option<&str>) -> (String, Option<char>) {
    let mut cmd = match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--", env!("CARGO_BIN_EXE_ctrmon")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_ctrmon")),
    };
    cmd.args(["watch", "--no-kmsg", "--pid", &family.child.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut watcher = common::Kid::spawn(&mut cmd);
    let mut out = BufReader::new(watcher.child.stdout.take().unwrap());
    let mut line = String::new();
    // A hang guard only: the watcher is killed if no line comes.
    let guard_fd = pidfd_open(Pid::from_raw(watcher.pid()).unwrap(), PidfdFlags::empty()).unwrap();
    let guard = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        let _ = pidfd_send_signal(&guard_fd, Signal::KILL);
    });
    out.read_line(&mut line).unwrap();
    let state = family.child_state();
    drop(guard);
    (line, state)
}

#[test]
fn cli_watch_prints_a_zombies_code_and_signal_before_its_parent_reaps_it() {
    for (mode, field) in [("exit", "\"code\":7"), ("pause", "\"signal\":9")] {
        let mut family = Family::new(mode);
        if mode == "pause" {
            // Killed once the watcher is up: killed before, it would be a
            // zombie at the watch, which the test above covers.
            let child_fd = family.child_fd.try_clone().unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                let _ = pidfd_send_signal(&child_fd, Signal::KILL);
            });
        }
        let (line, state) = cli_first_line(&family, None);
        assert_eq!(state, Some('Z'), "{mode}: printed after the reap: {line}");
        assert!(line.contains("\"exit\""), "{mode}: {line}");
        assert!(line.contains(field), "{mode}: {line}");
        assert!(!line.contains("unknown"), "{mode}: {line}");
        family.reap();
    }
}

/// Forks as `nobody` (`runuser`, which sets real, effective and saved ids)
/// a child that exits with `code`; the same as [`Family`] otherwise.
fn nobodys_family(code: &str) -> Family {
    let script = PARENT.replace("os._exit(7)", &format!("os._exit({code})"));
    Family::spawn(
        Command::new("runuser").args(["-u", "nobody", "--", "python3", "-c", &script, "exit"]),
    )
}

#[test]
fn a_watcher_without_ptrace_access_never_takes_a_hidden_status_for_0() {
    // Root's process, watched by nobody: the kernel shows its zombie's
    // exit_code as 0 whatever it was. The watcher must not print code 0.
    let mut family = Family::new("exit");
    let (line, state) = cli_first_line(&family, Some("nobody"));
    // The zombie was never reaped while the watcher looked: no status.
    assert_eq!(state, Some('Z'), "{line}");
    assert!(line.contains("\"unknown\""), "{line}");
    assert!(!line.contains("\"code\""), "{line}");
    if !common::kernel_has_exit_info() {
        assert!(line.contains("ptrace read access"), "{line}");
    }
    family.reap();
}

#[test]
fn a_user_reads_its_own_processes_zombies_even_a_0() {
    for code in ["0", "3"] {
        let mut family = nobodys_family(code);
        let (line, state) = cli_first_line(&family, Some("nobody"));
        assert_eq!(state, Some('Z'), "printed after the reap: {line}");
        assert!(line.contains(&format!("\"code\":{code}")), "{line}");
        family.reap();
    }
}
