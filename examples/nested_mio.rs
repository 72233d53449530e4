//! The monitor inside someone else's event loop: a mio `Poll` that also
//! serves its own sources (here a `mio::Waker` poked from another thread).
//!
//! `cargo run --example nested_mio`
//!
//! The monitor is one fd (its epoll instance) that turns readable whenever
//! an event is pending or its own timed work is due, so it is registered
//! like any other source. mio is edge-triggered: each time the monitor's
//! token fires, call `wait_mut` with a zero timeout until it returns 0
//! (one call delivers at most a batch of 128), or the fd's next edge may
//! never come.

use ctrmon::watch::Process;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ctrmon::{EventKind, Monitor};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

const MONITOR: Token = Token(0);
const WAKER: Token = Token(1);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);

    let mut monitor: Monitor<String> = Monitor::new()?;
    let raw = monitor.as_fd().as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&raw), MONITOR, Interest::READABLE)?;

    // 200 children: more than one batch ends at about the same time.
    let mut children = Vec::new();
    for i in 0..200 {
        let child = Command::new("sh")
            .args(["-c", &format!("sleep 0.{}; exit {}", i % 3, i % 5)])
            .spawn()?;
        monitor.watch(Process::pid(child.id() as i32), format!("child-{i}"))?;
        children.push(child);
    }
    // The loop's own business, from another thread.
    let poker = {
        let waker = waker.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            waker.wake()
        })
    };

    let mut events = Events::with_capacity(64);
    let mut exits = 0;
    let mut wakes = 0;
    while exits < children.len() {
        poll.poll(&mut events, Some(Duration::from_secs(30)))?;
        if events.is_empty() {
            return Err(format!("{} exits missing after 30 s", children.len() - exits).into());
        }
        for event in events.iter() {
            match event.token() {
                MONITOR => {
                    // Drain until empty before going back to `poll`.
                    while monitor.wait_mut(Some(Duration::ZERO), |e, _| {
                        if let EventKind::Exited(x) = e.kind {
                            exits += 1;
                            if exits % 50 == 0 {
                                println!("{} exited {:?} ({exits} so far)", e.receiver, x.status);
                            }
                        }
                    })? > 0
                    {}
                }
                WAKER => {
                    wakes += 1;
                    println!("the loop's own waker fired");
                }
                _ => unreachable!(),
            }
        }
    }
    poker.join().expect("waker thread")?;
    if wakes != 1 {
        return Err(format!("the waker fired {wakes} times").into());
    }
    println!("all {exits} exits delivered through mio, beside the loop's own waker");
    Ok(())
}
