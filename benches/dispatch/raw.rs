//! raw: the floor. A hand-written loop straight on rustix epoll: the epoll
//! data is a plain `Vec` index, and there is no table, generation, lock or
//! callback. Same 128-event `MaybeUninit` stack buffer as ctrmon.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::event::Timespec;
use rustix::process::{pidfd_open, waitid, Pid, PidfdFlags, WaitId, WaitIdOptions};

use crate::common::{kill_all, Variant, BATCH};

pub struct Receiver {
    fd: Option<OwnedFd>,
    count: u64,
}

pub struct Raw {
    epoll: OwnedFd,
    receivers: Vec<Receiver>,
    free: Vec<usize>,
}

impl Variant for Raw {
    const NAME: &'static str = "raw";
    type Handle = usize;

    fn new() -> io::Result<Self> {
        Ok(Raw {
            epoll: epoll::create(CreateFlags::CLOEXEC)?,
            receivers: Vec::new(),
            free: Vec::new(),
        })
    }

    fn watch(&mut self, fd: OwnedFd, _index: usize) -> io::Result<usize> {
        let slot = self.free.pop().unwrap_or(self.receivers.len());
        epoll::add(
            &self.epoll,
            fd.as_fd(),
            EventData::new_u64(slot as u64),
            EventFlags::IN,
        )?;
        let r = Receiver {
            fd: Some(fd),
            count: 0,
        };
        if slot == self.receivers.len() {
            self.receivers.push(r);
        } else {
            self.receivers[slot] = r;
        }
        Ok(slot)
    }

    fn unwatch(&mut self, slot: usize) -> io::Result<()> {
        let fd = self.receivers[slot].fd.take().expect("live slot");
        epoll::delete(&self.epoll, &fd)?;
        self.free.push(slot);
        Ok(())
    }

    #[inline]
    fn poll<F: FnMut()>(&mut self, timeout: Option<Duration>, mut seen: F) -> usize {
        let mut buf = [MaybeUninit::<epoll::Event>::uninit(); BATCH];
        let ts = timeout.map(|t| Timespec::try_from(t).expect("timeout"));
        let (events, _) = match epoll::wait(&self.epoll, &mut buf, ts.as_ref()) {
            Ok(r) => r,
            Err(rustix::io::Errno::INTR) => return 0,
            Err(e) => panic!("epoll_wait: {e}"),
        };
        let mut delivered = 0;
        for ev in events.iter() {
            let data = ev.data;
            let i = data.u64() as usize;
            let r = &mut self.receivers[i];
            let Some(fd) = &r.fd else { continue };
            let mut b = [0u8; 8];
            if let Ok(8) = rustix::io::read(fd, &mut b) {
                r.count += u64::from_ne_bytes(b);
                delivered += 1;
                seen();
            }
        }
        delivered
    }

    fn total(&mut self) -> u64 {
        self.receivers.iter().map(|r| r.count).sum()
    }
}

/// W3's second floor: raw, but each churn's eventfd is shared with a writer
/// through an `Arc`, as a ctrmon-made eventfd is shared by its watch and
/// its `EventfdWriter` (one allocation, one clone, two releases, the last
/// one closing the fd). The difference from raw is what the sharing costs
/// on its own, with no table, lock or checks.
pub struct RawArc {
    raw: Raw,
    shared: Vec<Option<Arc<OwnedFd>>>,
    free: Vec<usize>,
}

impl Variant for RawArc {
    const NAME: &'static str = "raw_arc";
    type Handle = usize;

    fn new() -> io::Result<Self> {
        Ok(RawArc {
            raw: Raw::new()?,
            shared: Vec::new(),
            free: Vec::new(),
        })
    }

    fn watch(&mut self, fd: OwnedFd, index: usize) -> io::Result<usize> {
        self.raw.watch(fd, index)
    }

    fn unwatch(&mut self, slot: usize) -> io::Result<()> {
        self.raw.unwatch(slot)
    }

    fn churn_one(&mut self, _index: usize) -> io::Result<()> {
        let fd = Arc::new(crate::common::new_eventfd()?);
        let writer = Arc::clone(&fd);
        let slot = self.free.pop().unwrap_or(self.shared.len());
        epoll::add(
            &self.raw.epoll,
            fd.as_fd(),
            EventData::new_u64(slot as u64),
            EventFlags::IN,
        )?;
        if slot == self.shared.len() {
            self.shared.push(Some(fd));
        } else {
            self.shared[slot] = Some(fd);
        }
        let fd = self.shared[slot].take().expect("live slot");
        epoll::delete(&self.raw.epoll, fd.as_fd())?;
        self.free.push(slot);
        drop(fd);
        drop(writer);
        Ok(())
    }

    fn poll<F: FnMut()>(&mut self, timeout: Option<Duration>, seen: F) -> usize {
        self.raw.poll(timeout, seen)
    }

    fn total(&mut self) -> u64 {
        self.raw.total()
    }
}

/// W4: pidfd per child in epoll, `waitid(P_PIDFD)` to reap on readiness,
/// then `EPOLL_CTL_DEL` and close (as ctrmon does).
pub fn w4(children: &[Child]) -> io::Result<Duration> {
    let ep = epoll::create(CreateFlags::CLOEXEC)?;
    let mut fds: Vec<Option<OwnedFd>> = Vec::with_capacity(children.len());
    for (i, c) in children.iter().enumerate() {
        let pid = Pid::from_raw(c.id() as i32).expect("pid");
        let fd = pidfd_open(pid, PidfdFlags::empty())?;
        epoll::add(&ep, &fd, EventData::new_u64(i as u64), EventFlags::IN)?;
        fds.push(Some(fd));
    }
    let start = Instant::now();
    kill_all(children);
    let mut exits = 0;
    let mut buf = [MaybeUninit::<epoll::Event>::uninit(); BATCH];
    while exits < children.len() {
        let (events, _) = match epoll::wait(&ep, &mut buf, None) {
            Ok(r) => r,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for ev in events.iter() {
            let data = ev.data;
            let i = data.u64() as usize;
            let Some(fd) = &fds[i] else { continue };
            let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
            if let Ok(Some(_status)) = waitid(WaitId::PidFd(fd.as_fd()), opts) {
                let fd = fds[i].take().expect("live");
                epoll::delete(&ep, &fd)?;
                drop(fd);
                exits += 1;
            }
        }
    }
    Ok(start.elapsed())
}
