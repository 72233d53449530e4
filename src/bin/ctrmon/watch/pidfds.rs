//! `watch --pidfd-socket PATH`: pidfds sent by a container runtime.
//!
//! A thread of its own listens at PATH and reads each connection when it
//! becomes readable (runc connects before it starts the container, and its
//! init sends the pidfd later). Each pidfd received is watched in the
//! shared monitor, which any thread may add to. A bad message, or a peer
//! that may not send (see [`PidfdListener`]), is reported on standard error
//! and the connection dropped; the listener goes on.
//!
//! # Order
//!
//! The `pidfd` line is queued *before* the pidfd is watched, and the main
//! loop writes every queued line before it writes a received process's
//! `exit` (and at the top of each round): the exit cannot be dispatched
//! before the watch exists, and the watch exists only after its line was
//! queued, so a `pidfd` line always comes before its `exit`, also for a
//! process that was a zombie when it arrived or was reaped at once. The
//! line's `pid` is read when the message arrives; a process reaped before
//! that has no pid left for the kernel to tell, and its line says `pid:0`
//! (as does its exit).
//!
//! # Under pressure
//!
//! Hostile or broken peers can connect and send nothing, and the process
//! can run out of file descriptors (its own limit, `EMFILE`, or the
//! system's, `ENFILE`). The listener stays bounded and never spins:
//! - at most [`MAX_CONNECTIONS`] accepted connections wait for their
//!   message; more wait in the kernel's backlog (64, then `connect` blocks);
//! - a connection that has sent nothing for [`IDLE_LIMIT`] is closed; when
//!   the table is full, or fds run out, the oldest one that has been idle
//!   for [`GRACE`] is closed to make room (runc and crun send within
//!   milliseconds of connecting, so real senders are served while idle
//!   ones wait);
//! - out of fds, it stops accepting (the listener is not polled, so its
//!   level-triggered readiness cannot make a busy loop) and retries every
//!   [`FD_RETRY`] until an fd is freed, saying so once (at most once per
//!   10 s, with a count of the times held back; so for idle connections
//!   closed, and for bad messages and refused peers, so that a neighbour
//!   connecting in a loop cannot fill the log);
//! - it holds [`SPARE_FDS`] spare fds, released just before each receive
//!   and watch and taken back after: a pidfd that arrives with no fd free
//!   to put it in is lost by the kernel (`MSG_CTRUNC`), and the watch
//!   reads the pidfd's fdinfo. Without its spares it neither reads nor
//!   accepts.

use ctrmon::watch::Process;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctrmon::pidfd::{PidfdConnection, PidfdListener};
use ctrmon::Monitor;
use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::json::Line;
use crate::output::say;
use crate::Failure;

/// Accepted connections waiting for their message, at most.
pub const MAX_CONNECTIONS: usize = 64;
/// A connection that has sent nothing for this long is closed.
pub const IDLE_LIMIT: Duration = Duration::from_secs(10);
/// Under pressure (table full, out of fds), a connection idle this long is
/// closed to make room.
pub const GRACE: Duration = Duration::from_secs(1);
/// Out of fds, accepting is retried this often.
pub const FD_RETRY: Duration = Duration::from_millis(100);
/// Spare fds held for receiving and watching.
pub const SPARE_FDS: usize = 2;
/// Connections accepted in one round before the others are read.
const ACCEPT_BATCH: usize = 16;

/// Lines made by the listener thread, for the main loop to write.
pub type Pending = Arc<Mutex<Vec<String>>>;

/// Removes the socket file when `watch` ends.
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Who may send, besides root and ctrmon's own uid.
#[derive(Debug, Default, Clone)]
pub struct Allowed {
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
}

/// Listens at `path` and watches every pidfd that arrives with receiver
/// `target`.
pub fn listen(
    path: &Path,
    allowed: &Allowed,
    monitor: Arc<Monitor<u32>>,
    target: u32,
    pending: Pending,
) -> Result<SocketFile, Failure> {
    let mut listener = PidfdListener::bind(path)?;
    for &uid in &allowed.uids {
        listener.allow_uid(uid);
    }
    for &gid in &allowed.gids {
        listener.allow_gid(gid);
    }
    let file = SocketFile(path.to_path_buf());
    std::thread::spawn(move || Server::new(listener, &monitor, target, &pending).serve());
    Ok(file)
}

/// Writes every queued `pidfd` line with `write`; called by the main loop
/// before a received process's exit and at the top of each round.
pub fn drain(pending: &Pending, mut write: impl FnMut(&str)) {
    let lines = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
    for line in lines {
        write(&line);
    }
}

struct Conn {
    conn: PidfdConnection,
    since: Instant,
}

/// A message said at most once per [`Throttle::EVERY`], with a count of
/// those held back.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(10);

    fn say(&mut self, now: Instant, msg: impl std::fmt::Display) {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Self::EVERY)
        {
            self.held += 1;
            return;
        }
        if self.held > 0 {
            say(format_args!(
                "{msg} ({} more like it held back since the last one)",
                self.held
            ));
        } else {
            say(msg);
        }
        self.last = Some(now);
        self.held = 0;
    }
}

struct Server<'a> {
    listener: PidfdListener,
    monitor: &'a Monitor<u32>,
    target: u32,
    pending: &'a Pending,
    conns: Vec<Conn>,
    spares: Vec<OwnedFd>,
    /// Out of fds: accept again at this time.
    retry_at: Option<Instant>,
    /// Said at most once per [`Throttle::EVERY`] each: out of fds, and
    /// idle connections closed.
    fds_out: Throttle,
    idle: Throttle,
    /// Bad messages and refused peers: a neighbour that connects in a loop
    /// must not fill the log.
    bad: Throttle,
}

impl<'a> Server<'a> {
    fn new(
        listener: PidfdListener,
        monitor: &'a Monitor<u32>,
        target: u32,
        pending: &'a Pending,
    ) -> Server<'a> {
        let mut s = Server {
            listener,
            monitor,
            target,
            pending,
            conns: Vec::new(),
            spares: Vec::new(),
            retry_at: None,
            fds_out: Throttle::default(),
            idle: Throttle::default(),
            bad: Throttle::default(),
        };
        s.refill();
        s
    }

    fn path(&self) -> String {
        self.listener.path().display().to_string()
    }

    /// Takes the spare fds back; false if the process has no fd for them.
    fn refill(&mut self) -> bool {
        while self.spares.len() < SPARE_FDS {
            match rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            ) {
                Ok(fd) => self.spares.push(fd),
                Err(_) => return false,
            }
        }
        true
    }

    fn out_of_fds(&mut self, now: Instant, what: impl std::fmt::Display) {
        self.retry_at = Some(now + FD_RETRY);
        self.fds_out.say(
            now,
            format_args!(
                "{what}; not accepting more connections until a file descriptor is freed \
                 (they wait in the backlog)"
            ),
        );
    }

    /// Closes the oldest connection if it has been idle for [`GRACE`].
    fn evict_oldest(&mut self, now: Instant, why: &str) -> bool {
        let Some(oldest) = self.conns.first() else {
            return false;
        };
        if now.duration_since(oldest.since) < GRACE {
            return false;
        }
        self.conns.remove(0);
        let path = self.path();
        self.idle.say(
            now,
            format_args!("closed a connection to {path} that had sent nothing, {why}"),
        );
        true
    }

    fn serve(mut self) {
        loop {
            let now = Instant::now();
            let before = self.conns.len();
            self.conns
                .retain(|c| now.duration_since(c.since) < IDLE_LIMIT);
            if self.conns.len() < before {
                let path = self.path();
                self.idle.say(
                    now,
                    format_args!(
                        "closed {} connection(s) to {path} that sent nothing in {} s",
                        before - self.conns.len(),
                        IDLE_LIMIT.as_secs()
                    ),
                );
            }
            if self.retry_at.is_some_and(|t| now >= t) {
                self.retry_at = None;
            }
            let fed = self.refill();
            if !fed && self.retry_at.is_none() {
                let what = format!(
                    "keep spare file descriptors for {}: out of file descriptors",
                    self.path()
                );
                self.out_of_fds(now, what);
            }
            let full = self.conns.len() >= MAX_CONNECTIONS;
            let evictable = self
                .conns
                .first()
                .is_some_and(|c| now.duration_since(c.since) >= GRACE);
            let accepting = fed && self.retry_at.is_none() && (!full || evictable);
            // Wake for the next idle limit, the next retry, or (full) the
            // moment the oldest may be closed to make room.
            let mut wake = self.conns.first().map(|c| c.since + IDLE_LIMIT);
            let mut sooner = |t: Option<Instant>| {
                if let Some(t) = t {
                    wake = Some(wake.map_or(t, |w| w.min(t)));
                }
            };
            sooner(self.retry_at);
            if full && !evictable {
                sooner(self.conns.first().map(|c| c.since + GRACE));
            }
            if !fed {
                sooner(Some(now + FD_RETRY));
            }
            let timeout = wake.map(|w| {
                let d = w.saturating_duration_since(now) + Duration::from_millis(1);
                Timespec {
                    tv_sec: d.as_secs() as i64,
                    tv_nsec: d.subsec_nanos() as i64,
                }
            });
            let (listener_ready, ready) = {
                let listener_fd = accepting.then(|| self.listener.as_fd());
                let mut fds: Vec<PollFd<'_>> = listener_fd
                    .into_iter()
                    .chain(self.conns.iter().filter(|_| fed).map(|c| c.conn.as_fd()))
                    .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
                    .collect();
                match poll(&mut fds, timeout.as_ref()) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => {
                        say(format_args!("poll {}: {e}", self.path()));
                        return;
                    }
                }
                let mut flags = fds.iter().map(|f| !f.revents().is_empty());
                let listener_ready = accepting && flags.next().unwrap_or(false);
                let ready: Vec<bool> = flags.collect();
                (listener_ready, ready)
            };
            if fed {
                self.read_ready(&ready);
            }
            if listener_ready {
                self.accept_some();
            }
        }
    }

    /// Receives from the connections that are ready (`ready[i]` for
    /// `conns[i]`), watching each pidfd that arrives.
    fn read_ready(&mut self, ready: &[bool]) {
        let mut i = 0;
        let mut conns = std::mem::take(&mut self.conns);
        conns.retain(|c| {
            let is_ready = ready.get(i).copied().unwrap_or(false);
            i += 1;
            if !is_ready {
                return true;
            }
            // The spares make room for the pidfd and the files read about
            // it (see the module's doc).
            self.spares.clear();
            let keep = self.receive(&c.conn);
            self.refill();
            keep
        });
        // Accepted meanwhile: none (accepting comes after reading).
        self.conns = conns;
    }

    /// Reads one connection; false when it is done with.
    fn receive(&mut self, conn: &PidfdConnection) -> bool {
        match conn.receive() {
            Ok(None) => true,
            Ok(Some(got)) => {
                let pid = got.pid.unwrap_or(0);
                let payload = String::from_utf8_lossy(&got.payload).into_owned();
                let line = Line::new("pidfd")
                    .num("pid", pid)
                    .str("payload", &payload)
                    .finish();
                // Queued first: see the module's doc on order.
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.clone());
                match self.monitor.watch(Process::pidfd(got.pidfd), self.target) {
                    Ok(_) => {}
                    Err(e) => {
                        let mut queued = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                        match queued.iter().rposition(|l| *l == line) {
                            Some(at) => {
                                queued.remove(at);
                                drop(queued);
                                say(e);
                            }
                            None => {
                                drop(queued);
                                say(format_args!(
                                    "{e} (the pidfd line for pid {pid} has no exit to follow)"
                                ));
                            }
                        }
                    }
                }
                let _ = self.monitor.wake();
                false
            }
            Err(e) => {
                self.bad.say(Instant::now(), e);
                false
            }
        }
    }

    fn accept_some(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            let now = Instant::now();
            if self.conns.len() >= MAX_CONNECTIONS
                && !self.evict_oldest(now, "to make room for a new one")
            {
                return;
            }
            match self.listener.accept() {
                Ok(Some(conn)) => self.conns.push(Conn { conn, since: now }),
                Ok(None) => return,
                Err(e) if e.is_fd_limit() => {
                    if !self.evict_oldest(now, "to free a file descriptor") {
                        self.out_of_fds(now, e);
                        return;
                    }
                }
                // A refused peer (named), or an error of one connection.
                Err(e) => self.bad.say(now, e),
            }
        }
    }
}
