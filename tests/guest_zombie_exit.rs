//! `ctrmon watch --pid` of a process whose parent never reaps it prints its
//! real code or signal at once, on every kernel (the guest boots kernels
//! without `PIDFD_INFO_EXIT`; it also runs on the host). No python in the
//! guest: the parent is `sh` that execs into a `sleep`, which never reaps,
//! and the watched process waits for a line on fd 3 before it exits.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

/// A process that exits 7 when told, under a parent that never reaps it.
struct Orphanless {
    _parent: common::Kid,
    go: ChildStdin,
    pid: i32,
    pidfd: OwnedFd,
}

impl Orphanless {
    fn start() -> Orphanless {
        let mut parent = common::Kid::spawn(
            Command::new("sh")
                .args([
                    "-c",
                    "exec 3<&0; sh -c 'read x <&3; exit 7' & echo $!; exec sleep 600",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        let go = parent.child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(parent.child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid: i32 = line.trim().parse().expect("the watched pid");
        // It waits for its line: it cannot have exited, nor been reaped.
        let pidfd = pidfd_open(Pid::from_raw(pid).unwrap(), PidfdFlags::empty()).unwrap();
        Orphanless {
            _parent: parent,
            go,
            pid,
            pidfd,
        }
    }

    fn state(&self) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .next()?
            .chars()
            .next()
    }
}

impl Drop for Orphanless {
    fn drop(&mut self) {
        let _ = pidfd_send_signal(&self.pidfd, Signal::KILL);
    }
}

/// The first line of `ctrmon watch --no-kmsg --pid P` after `end` ended
/// the process, and the process's state then.
fn watch_first_line(
    p: &mut Orphanless,
    end: impl FnOnce(&mut Orphanless),
) -> (String, Option<char>) {
    let mut watcher = common::Kid::spawn(
        Command::new(env!("CARGO_BIN_EXE_ctrmon"))
            .args(["watch", "--no-kmsg", "--pid", &p.pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    );
    let out = watcher.child.stdout.take().unwrap();
    // A hang guard only: the watcher is killed if no line comes.
    let guard = pidfd_open(Pid::from_raw(watcher.pid()).unwrap(), PidfdFlags::empty()).unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        let _ = pidfd_send_signal(&guard, Signal::KILL);
    });
    end(p);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    (line, p.state())
}

#[test]
fn watch_prints_the_code_of_a_process_its_parent_never_reaps() {
    let mut p = Orphanless::start();
    let (line, state) = watch_first_line(&mut p, |p| p.go.write_all(b"go\n").unwrap());
    assert_eq!(state, Some('Z'), "{line}");
    assert!(line.contains("\"event\":\"exit\""), "{line}");
    assert!(line.contains("\"code\":7"), "{line}");
    assert!(!line.contains("unknown"), "{line}");
}

#[test]
fn watch_prints_the_signal_of_a_process_its_parent_never_reaps() {
    let mut p = Orphanless::start();
    let (line, state) = watch_first_line(&mut p, |p| {
        pidfd_send_signal(&p.pidfd, Signal::KILL).unwrap();
    });
    assert_eq!(state, Some('Z'), "{line}");
    assert!(line.contains("\"signal\":9"), "{line}");
    assert!(!line.contains("unknown"), "{line}");
}
