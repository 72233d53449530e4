//! mio + `HashMap<Token, _>`: what a Rust user writes by default. One
//! `Poll`, `Events::with_capacity(128)`, receivers in a std `HashMap` keyed
//! by token (SipHash, as it comes), eventfds registered as `SourceFd`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Child;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustix::process::{pidfd_open, waitid, Pid, PidfdFlags, WaitId, WaitIdOptions};

use crate::common::{kill_all, Variant, BATCH};

pub struct Receiver {
    fd: OwnedFd,
    count: u64,
}

pub struct Mio {
    poll: Poll,
    events: Events,
    receivers: HashMap<Token, Receiver>,
    next: usize,
    /// Counts of receivers that were unwatched, so `total` stays exact.
    retired: u64,
}

impl Variant for Mio {
    const NAME: &'static str = "mio";
    type Handle = Token;

    fn new() -> io::Result<Self> {
        Ok(Mio {
            poll: Poll::new()?,
            events: Events::with_capacity(BATCH),
            receivers: HashMap::new(),
            next: 0,
            retired: 0,
        })
    }

    fn watch(&mut self, fd: OwnedFd, _index: usize) -> io::Result<Token> {
        let token = Token(self.next);
        self.next += 1;
        self.poll
            .registry()
            .register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        self.receivers.insert(token, Receiver { fd, count: 0 });
        Ok(token)
    }

    fn unwatch(&mut self, token: Token) -> io::Result<()> {
        let r = self.receivers.remove(&token).expect("live token");
        self.poll
            .registry()
            .deregister(&mut SourceFd(&r.fd.as_raw_fd()))?;
        self.retired += r.count;
        Ok(())
    }

    #[inline]
    fn poll<F: FnMut()>(&mut self, timeout: Option<Duration>, mut seen: F) -> usize {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return 0,
            Err(e) => panic!("mio poll: {e}"),
        }
        let mut delivered = 0;
        for ev in self.events.iter() {
            let Some(r) = self.receivers.get_mut(&ev.token()) else {
                continue;
            };
            let mut b = [0u8; 8];
            if let Ok(8) = rustix::io::read(&r.fd, &mut b) {
                r.count += u64::from_ne_bytes(b);
                delivered += 1;
                seen();
            }
        }
        delivered
    }

    fn total(&mut self) -> u64 {
        self.retired + self.receivers.values().map(|r| r.count).sum::<u64>()
    }
}

/// W4: pidfds as `SourceFd`s keyed by token in a `HashMap`; reap with
/// `waitid(P_PIDFD)`, deregister, close.
pub fn w4(children: &[Child]) -> io::Result<Duration> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(BATCH);
    let mut fds: HashMap<Token, OwnedFd> = HashMap::new();
    for (i, c) in children.iter().enumerate() {
        let pid = Pid::from_raw(c.id() as i32).expect("pid");
        let fd = pidfd_open(pid, PidfdFlags::empty())?;
        poll.registry()
            .register(&mut SourceFd(&fd.as_raw_fd()), Token(i), Interest::READABLE)?;
        fds.insert(Token(i), fd);
    }
    let start = Instant::now();
    kill_all(children);
    let mut exits = 0;
    while exits < children.len() {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            let Some(fd) = fds.get(&ev.token()) else {
                continue;
            };
            let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
            if let Ok(Some(_status)) = waitid(WaitId::PidFd(fd.as_fd()), opts) {
                let fd = fds.remove(&ev.token()).expect("live");
                poll.registry().deregister(&mut SourceFd(&fd.as_raw_fd()))?;
                exits += 1;
            }
        }
    }
    Ok(start.elapsed())
}
