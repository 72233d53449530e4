//! `watch --pidfd-socket PATH`: pidfds sent by a container runtime.
//!
//! A thread of its own listens at PATH and reads each connection when it
//! becomes readable (runc connects before it starts the container, and its
//! init sends the pidfd later). Each pidfd received is watched in the
//! shared monitor, which any thread may add to; the `pidfd` line it makes
//! is queued for the main loop, which is woken to write it. A bad message
//! is reported on standard error and the connection dropped; the listener
//! goes on.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ctrmon::pidfd::{PidfdConnection, PidfdListener};
use ctrmon::Monitor;
use rustix::event::{poll, PollFd, PollFlags};

use crate::json::Line;
use crate::output::say;
use crate::Failure;

/// Lines made by the listener thread, for the main loop to write.
pub type Pending = Arc<Mutex<Vec<String>>>;

/// Removes the socket file when `watch` ends.
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Listens at `path` and watches every pidfd that arrives with receiver
/// `target`.
pub fn listen(
    path: &Path,
    monitor: Arc<Monitor<u32>>,
    target: u32,
    pending: Pending,
) -> Result<SocketFile, Failure> {
    let listener = PidfdListener::bind(path)?;
    let file = SocketFile(path.to_path_buf());
    std::thread::spawn(move || serve(&listener, &monitor, target, &pending));
    Ok(file)
}

fn serve(listener: &PidfdListener, monitor: &Monitor<u32>, target: u32, pending: &Pending) {
    let mut conns: Vec<PidfdConnection> = Vec::new();
    loop {
        let mut fds: Vec<PollFd<'_>> = std::iter::once(listener.as_fd())
            .chain(conns.iter().map(|c| c.as_fd()))
            .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
            .collect();
        if let Err(e) = poll(&mut fds, None) {
            if e != rustix::io::Errno::INTR {
                say(format_args!("poll {}: {e}", listener.path().display()));
                return;
            }
            continue;
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        // Connections first (their indices are those of `ready[1..]`).
        let mut i = 0;
        conns.retain(|conn| {
            i += 1;
            if !ready[i] {
                return true;
            }
            match conn.receive() {
                Ok(None) => true,
                Ok(Some(got)) => {
                    let pid = got.pid.unwrap_or(0);
                    let payload = String::from_utf8_lossy(&got.payload).into_owned();
                    match monitor.watch_pidfd(got.pidfd, target) {
                        Ok(_) => {
                            let line = Line::new("pidfd")
                                .num("pid", pid)
                                .str("payload", &payload)
                                .finish();
                            pending.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                            let _ = monitor.wake();
                        }
                        Err(e) => say(e),
                    }
                    false
                }
                Err(e) => {
                    say(e);
                    false
                }
            }
        });
        if ready[0] {
            loop {
                match listener.accept() {
                    Ok(Some(conn)) => conns.push(conn),
                    Ok(None) => break,
                    Err(e) => {
                        say(e);
                        break;
                    }
                }
            }
        }
    }
}
