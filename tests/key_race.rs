//! A watch whose arming fails after its fd was registered with epoll must
//! not leave its key to the next watch: a waiter in another thread may
//! already hold the failed fd's readiness under that key, and would resolve
//! it against the new watch. A kernfs fd (`cgroup.events`) is ready the
//! moment it is registered, and a v2 cgroup removed between the open and the
//! first read makes arming fail, so this is reproduced with real cgroups:
//! pipes are watched for hang-ups in a loop, their writers kept open, while
//! other threads add `populated` watches on cgroups that a remover deletes
//! under them. Any `HungUp` for such a pipe is a false final event.

mod common;

use ctrmon::watch::{Hangup, Populated};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::unified_v2;
use ctrmon::{EventKind, Monitor};

/// Receivers at or above this are cgroup watches; below, pipes.
const CGROUP: u64 = 1 << 40;

#[test]
fn a_failed_add_never_hands_its_key_to_the_next_watch() {
    let Some(root) = unified_v2() else { return };
    let m: Arc<Monitor<u64>> = Arc::new(Monitor::new().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let false_hangups = Arc::new(AtomicUsize::new(0));
    let failed_adds = Arc::new(AtomicUsize::new(0));
    let run_for = Duration::from_secs(8);

    let waiter = {
        let (m, stop, false_hangups) = (m.clone(), stop.clone(), false_hangups.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                m.wait(Some(Duration::from_millis(20)), |e| {
                    // Every pipe's writer stays open until its watch is gone.
                    if *e.receiver < CGROUP && matches!(e.kind, EventKind::HungUp) {
                        false_hangups.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .unwrap();
            }
        })
    };

    // Cgroup adders: each makes its own cgroup names, and a remover thread
    // of its own deletes each one as soon as it exists.
    let mut workers = Vec::new();
    for t in 0..2 {
        let latest = Arc::new(Mutex::new(None::<PathBuf>));
        let made = Arc::new(AtomicU64::new(0));
        let remover = {
            let (latest, stop) = (latest.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let p = latest.lock().unwrap().take();
                    match p {
                        Some(p) => {
                            let _ = std::fs::remove_dir(&p);
                        }
                        None => std::thread::yield_now(),
                    }
                }
            })
        };
        let (m, stop, root, failed_adds) =
            (m.clone(), stop.clone(), root.clone(), failed_adds.clone());
        let adder = std::thread::spawn(move || {
            let base = format!("ctrmon-test-keyrace-{}-{t}", std::process::id());
            let mut names = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let n = made.fetch_add(1, Ordering::Relaxed);
                let p = root.join(format!("{base}-{n}"));
                if std::fs::create_dir(&p).is_err() {
                    continue;
                }
                names.push(p.clone());
                *latest.lock().unwrap() = Some(p.clone());
                if m.watch(Populated::dir(&p), CGROUP + n).is_err() {
                    failed_adds.fetch_add(1, Ordering::Relaxed);
                }
                // Whatever the remover missed is removed here.
                let _ = std::fs::remove_dir(&p);
                names.retain(|p| p.exists());
            }
            names
        });
        workers.push((adder, remover));
    }

    // The pipes, on this thread.
    let deadline = Instant::now() + run_for;
    let mut pipes = 0u64;
    while Instant::now() < deadline && false_hangups.load(Ordering::Relaxed) == 0 {
        let (r, w): (OwnedFd, OwnedFd) = rustix::pipe::pipe().unwrap();
        let id = m.watch(Hangup::new(r), pipes).unwrap();
        std::thread::yield_now();
        // Fails only if the watch already ended: the waiter counted why.
        let _ = m.unwatch(id);
        drop(w);
        pipes += 1;
    }

    stop.store(true, Ordering::Relaxed);
    m.wake().unwrap();
    waiter.join().unwrap();
    let mut leftovers = Vec::new();
    for (adder, remover) in workers {
        leftovers.extend(adder.join().unwrap());
        remover.join().unwrap();
    }
    for p in &leftovers {
        let _ = std::fs::remove_dir(p);
    }
    let false_hangups = false_hangups.load(Ordering::Relaxed);
    let failed_adds = failed_adds.load(Ordering::Relaxed);
    eprintln!("{pipes} pipes, {failed_adds} failed cgroup adds, {false_hangups} false hang-ups");
    assert_eq!(
        false_hangups, 0,
        "false HungUp for pipes whose writer was open"
    );
    assert!(
        pipes > 1000,
        "only {pipes} pipes watched: the race was not exercised"
    );
}
