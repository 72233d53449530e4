// The cases of tests/exit_info.rs and tests/guest_exit_info.rs, included by
// both (each is its own test binary, with `mod common;` at its root).

use ctrmon::watch::{CgroupOom, Process};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::{kernel_has_exit_info, memory_hierarchy, Kid, TestCgroup};
use ctrmon::pidfd::{exit_info, ExitInfo};
use ctrmon::ExitStatus;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

/// What `exit_info` must say of a reaped process that ended with `status`.
fn reaped_as(status: ExitStatus) -> ExitInfo {
    if kernel_has_exit_info() {
        ExitInfo::Exited(status)
    } else {
        ExitInfo::Unsupported
    }
}

/// What it must say of a process that has not been reaped: `NotYet` where
/// the ioctl exists (6.13+), `Unsupported` before.
fn not_reaped() -> ExitInfo {
    match exit_info(Kid::sleeper().pidfd()).unwrap() {
        // Before 6.13 (no such ioctl), checked against a live process.
        ExitInfo::Unsupported if !kernel_has_exit_info() => ExitInfo::Unsupported,
        _ => ExitInfo::NotYet,
    }
}

/// A grandchild started by an intermediate `sh` that reaps it. Dropped:
/// the grandchild is killed (through its pidfd) before the intermediate.
struct Grandchild {
    pidfd: OwnedFd,
    pid: i32,
    go: ChildStdin,
    // Dropped last: kills and reaps the intermediate.
    _parent: Kid,
}

impl Grandchild {
    /// `script` runs as the grandchild (`sh -c`), with the go line on fd 3.
    fn start(script: &str) -> Grandchild {
        let quoted = script.replace('\'', r"'\''");
        let outer = format!("exec 3<&0; sh -c '{quoted}' & echo $!; wait $!");
        let mut parent = Kid::spawn(
            Command::new("sh")
                .args(["-c", &outer])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                // Not `sh`'s "Killed" job report.
                .stderr(Stdio::null()),
        );
        let go = parent.child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(parent.child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid: i32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("pid line {line:?}"));
        // It is waiting for the go line: it cannot have exited yet.
        let pidfd = pidfd_open(Pid::from_raw(pid).unwrap(), PidfdFlags::empty()).unwrap();
        Grandchild {
            pidfd,
            pid,
            go,
            _parent: parent,
        }
    }

    fn go(&mut self) {
        self.go.write_all(b"go\n").unwrap();
        self.go.flush().unwrap();
    }

    /// Waits for the exit (the pidfd turns readable), then for its parent to
    /// reap it (bounded); returns what `exit_info` says then.
    fn exit_info_when_reaped(&self) -> ExitInfo {
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        let limit = Timespec {
            tv_sec: 30,
            tv_nsec: 0,
        };
        assert_eq!(
            poll(&mut fds, Some(&limit)).unwrap(),
            1,
            "pid {} did not exit",
            self.pid
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = exit_info(self.pidfd.as_fd()).unwrap();
            if now != ExitInfo::NotYet || Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Grandchild {
    fn drop(&mut self) {
        let _ = pidfd_send_signal(&self.pidfd, Signal::KILL);
    }
}

#[test]
fn a_running_process_has_no_exit_info() {
    let kid = Kid::sleeper();
    let info = exit_info(kid.pidfd()).unwrap();
    if kernel_has_exit_info() {
        assert_eq!(info, ExitInfo::NotYet);
    } else {
        assert!(matches!(info, ExitInfo::NotYet | ExitInfo::Unsupported), "{info:?}");
    }
}

#[test]
fn a_non_child_exit_code_is_read_back() {
    let mut g = Grandchild::start("read x <&3; exit 3");
    assert_eq!(exit_info(g.pidfd.as_fd()).unwrap(), not_reaped());
    g.go();
    let last = g.exit_info_when_reaped();
    assert_eq!(last, reaped_as(ExitStatus::Code(3)));
    // Asked again: the kernel keeps it as long as the pidfd is open.
    assert_eq!(exit_info(g.pidfd.as_fd()).unwrap(), last);
}

#[test]
fn a_non_child_killed_by_a_signal_is_read_back() {
    let g = Grandchild::start("exec sleep 600");
    pidfd_send_signal(&g.pidfd, Signal::KILL).unwrap();
    let last = g.exit_info_when_reaped();
    assert_eq!(last, reaped_as(ExitStatus::Signal(9)));
}

#[test]
fn a_non_child_oom_kill_is_read_back() {
    let Some(root) = memory_hierarchy() else {
        return;
    };
    let cg = TestCgroup::new(&root, "exitinfo-oom");
    cg.limit_memory(32 << 20);
    let mut g = Grandchild::start(&format!(
        "echo $$ > '{}/cgroup.procs' && read x <&3 && exec tail /dev/zero",
        cg.path.display()
    ));
    g.go();
    let last = g.exit_info_when_reaped();
    assert_eq!(last, reaped_as(ExitStatus::Signal(9)));
    assert_eq!(cg.oom_kills(), 1);
}

#[test]
fn a_zombie_has_no_exit_info_until_it_is_reaped() {
    // Our own child this time, so that the test decides when it is reaped.
    let kid = Kid::sh("exit 7");
    kid.wait_exited_no_reap();
    assert_eq!(exit_info(kid.pidfd()).unwrap(), not_reaped());
    assert!(kid.reap());
    assert_eq!(exit_info(kid.pidfd()).unwrap(), reaped_as(ExitStatus::Code(7)));
}

#[test]
fn an_fd_that_is_not_a_pidfd_gets_unsupported() {
    // An eventfd knows no such ioctl (ENOTTY), as a pidfd on a kernel
    // before 6.13 does not.
    let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
    assert_eq!(exit_info(efd.as_fd()).unwrap(), ExitInfo::Unsupported);
}

// Through the monitor: a non-child's exit comes with the kernel's status
// (waiting, if need be, for its parent to reap it), and an OOM kill in a
// linked cgroup is marked.

fn monitor_exit(m: &mut ctrmon::Monitor<()>) -> ctrmon::Exit {
    let mut exit = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while exit.is_none() {
        assert!(Instant::now() < deadline, "no exit");
        m.wait_mut(Some(Duration::from_millis(100)), |e, _| {
            if let ctrmon::EventKind::Exited(x) = e.kind {
                exit = Some(x);
            }
        })
        .unwrap();
    }
    exit.unwrap()
}

/// What a non-child's exit must say when its parent reaps it at once: its
/// status, read from its zombie or (6.15+) kept by the kernel; before
/// 6.15, if the parent reaped it before the monitor read the zombie,
/// `Unknown` with that reason. `got` picks between the two only there.
fn expected_exit(
    status: ExitStatus,
    got: (ExitStatus, Option<ctrmon::WhyUnknown>),
) -> (ExitStatus, Option<ctrmon::WhyUnknown>) {
    if kernel_has_exit_info() || got.1.is_none() {
        (status, None)
    } else {
        (ExitStatus::Unknown, Some(ctrmon::WhyUnknown::NoExitInfo))
    }
}

#[test]
fn the_monitor_reports_a_non_childs_code() {
    let mut m = ctrmon::Monitor::new().unwrap();
    let mut g = Grandchild::start("read x <&3; exit 3");
    m.watch(Process::pid(g.pid), ()).unwrap();
    g.go();
    let x = monitor_exit(&mut m);
    assert_eq!((x.pid, x.reaped), (g.pid, false));
    assert_eq!(
        (x.status, x.unknown),
        expected_exit(ExitStatus::Code(3), (x.status, x.unknown))
    );
}

#[test]
fn the_monitor_reports_a_zombie_before_its_slow_parent_reaps_it() {
    // The parent reaps only when told to (a line on its stdin), long after
    // the exit: the pidfd is readable well before the kernel has a status.
    let mut m = ctrmon::Monitor::new().unwrap();
    let outer = "sleep 600 & echo $!; read y; wait $!";
    let mut parent = Kid::spawn(
        Command::new("sh")
            .args(["-c", outer])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut reap_now = parent.child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(parent.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: i32 = line.trim().parse().unwrap();
    let pidfd = pidfd_open(Pid::from_raw(pid).unwrap(), PidfdFlags::empty()).unwrap();
    m.watch(Process::pid(pid), ()).unwrap();
    // Kill it only once the shell sits in `read`: a shell between commands
    // may reap a finished background job (dash does when SIGCHLD came).
    // dash reads fd 0 (`read`, 0); busybox's sh polls it first (`poll`, 7;
    // `ppoll`, 271).
    let deadline = Instant::now() + Duration::from_secs(10);
    let syscall = format!("/proc/{}/syscall", parent.pid());
    let in_read = |s: &str| ["0 0x0 ", "7 ", "271 "].iter().any(|p| s.starts_with(p));
    while !std::fs::read_to_string(&syscall).is_ok_and(|s| in_read(&s)) {
        assert!(Instant::now() < deadline, "the shell never blocked in read");
        std::thread::sleep(Duration::from_millis(2));
    }
    pidfd_send_signal(&pidfd, Signal::KILL).unwrap();
    // Reported while it is a zombie (its status read from
    // /proc/<pid>/stat), on any kernel, not when the parent reaps it.
    let x = monitor_exit(&mut m);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert_eq!(stat.rsplit_once(") ").unwrap().1.chars().next(), Some('Z'));
    assert_eq!((x.status, x.unknown), (ExitStatus::Signal(9), None));
    reap_now.write_all(b"now\n").unwrap();
    assert_eq!(parent.child.wait().unwrap().code(), Some(128 + 9));
}

#[test]
fn the_monitor_marks_a_non_childs_oom_kill() {
    let Some(root) = memory_hierarchy() else {
        return;
    };
    let cg = TestCgroup::new(&root, "exitinfo-monitor-oom");
    cg.limit_memory(32 << 20);
    let mut m = ctrmon::Monitor::new().unwrap();
    let cgw = m.watch(CgroupOom::dir(&cg.path), ()).unwrap().id();
    let mut g = Grandchild::start(&format!(
        "echo $$ > '{}/cgroup.procs' && read x <&3 && exec tail /dev/zero",
        cg.path.display()
    ));
    m.watch(Process::pid(g.pid).oom_watch(cgw), ()).unwrap();
    g.go();
    let x = monitor_exit(&mut m);
    assert_eq!(
        (x.status, x.unknown),
        expected_exit(ExitStatus::Signal(9), (x.status, x.unknown))
    );
    assert!(x.oom_killed, "{x:?}");
}

