//! Test support: children that are always killed and reaped, even when an
//! assertion fails, without ever signalling a pid that might have been
//! reused (everything goes through a pidfd opened right after spawn).
#![allow(dead_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};

use rustix::process::{
    pidfd_open, pidfd_send_signal, waitid, Pid, PidfdFlags, Signal, WaitId, WaitIdOptions,
};

/// A child process that is killed and reaped when dropped.
pub struct Kid {
    pub child: Child,
    pidfd: OwnedFd,
}

impl Kid {
    pub fn spawn(cmd: &mut Command) -> Kid {
        let child = cmd.spawn().expect("spawn test child");
        // The child cannot have been reaped yet: only we can reap it.
        let pidfd = pidfd_open(Pid::from_child(&child), PidfdFlags::empty()).expect("pidfd_open");
        Kid { child, pidfd }
    }

    pub fn sh(script: &str) -> Kid {
        Kid::spawn(Command::new("sh").args(["-c", script]))
    }

    pub fn sh_piped(script: &str) -> Kid {
        Kid::spawn(
            Command::new("sh")
                .args(["-c", script])
                .stdout(Stdio::piped()),
        )
    }

    pub fn sleeper() -> Kid {
        Kid::spawn(Command::new("sleep").arg("600"))
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill(&self) {
        // ESRCH once it has been reaped: the pidfd never names another process.
        let _ = pidfd_send_signal(&self.pidfd, Signal::KILL);
    }

    /// Blocks until the child has exited, without reaping it.
    pub fn wait_exited_no_reap(&self) {
        waitid(
            WaitId::PidFd(self.pidfd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        )
        .expect("waitid NOWAIT");
    }

    /// Reaps the child (blocking); returns false if someone else already did.
    pub fn reap(&self) -> bool {
        waitid(WaitId::PidFd(self.pidfd.as_fd()), WaitIdOptions::EXITED).is_ok()
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.kill();
        self.reap();
    }
}

/// Open fds of this process, by number.
pub fn open_fds() -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}
