//! The tokio adapter (`--features tokio`), on both runtime flavours, with
//! real processes and real cgroups: exactly-once delivery of 1,000 exits,
//! an OOM before its exit, the timer's work waking an idle task,
//! cancellation that loses nothing, a blocked runtime, and shutdown.

mod common;

use ctrmon::watch::{CgroupOom, NewEventfd, Process};
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::{Kid, KidState, TestCgroup};
use ctrmon::tokio::AsyncMonitor;
use ctrmon::{Event, EventKind, ExitStatus};
use futures_core::Stream;

/// Runs the test body on a current-thread runtime, then on a multi-thread
/// one with two workers (this machine has two cores).
fn on_both_runtimes<F, Fut>(body: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(body());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(body());
}

/// The next event, or a panic after `limit`.
async fn next_within<T: Clone + 'static>(
    m: &AsyncMonitor<T>,
    limit: Duration,
) -> Event<'static, T> {
    tokio::time::timeout(limit, m.next())
        .await
        .unwrap_or_else(|_| panic!("no event within {limit:?}"))
        .expect("next")
        .expect("not shut down")
}

/// A pipe whose write end, once dropped, ends every child reading the
/// other (both ends close-on-exec, so no child holds the write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe")
}

fn noop_waker() -> Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    Waker::from(Arc::new(Noop))
}

/// Polls `f` once (inside the runtime, so it can register with the reactor).
fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(&noop_waker()))
}

/// Polls a stream once, as `poll_once` does a future.
fn poll_stream<S: Stream + Unpin>(s: &mut S) -> Poll<Option<S::Item>> {
    Pin::new(s).poll_next(&mut Context::from_waker(&noop_waker()))
}

/// The stream's next item.
async fn stream_next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

#[test]
fn a_thousand_children_exiting_together_are_each_delivered_once() {
    let _serial = common::serial();
    on_both_runtimes(|| async {
        const N: usize = 1000;
        let monitor = Arc::new(AsyncMonitor::<usize>::new().unwrap());
        let (read, write) = pipe();
        let kids: Vec<Kid> = (0..N)
            .map(|i| {
                let kid = Kid::spawn(
                    Command::new("cat")
                        .stdin(Stdio::from(read.try_clone().unwrap()))
                        .stdout(Stdio::null()),
                );
                monitor.monitor().watch(Process::pid(kid.pid()), i).unwrap();
                kid
            })
            .collect();
        drop(read);
        // Four consumers share the monitor, one of each way to wait but the
        // owner's: each event goes to exactly one of them.
        let consumers: Vec<_> = (0..4)
            .map(|kind| {
                let m = monitor.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut note = |e: Event<'_, usize>| {
                        let status = match e.kind {
                            EventKind::Exited(x) => Some(x.status),
                            _ => None,
                        };
                        got.push((*e.receiver, status));
                    };
                    match kind {
                        0 | 1 => {
                            while let Some(e) = m.next().await.unwrap() {
                                note(e);
                            }
                        }
                        2 => {
                            let mut events = m.events();
                            while let Some(e) = stream_next(&mut events).await {
                                note(e.unwrap());
                            }
                        }
                        _ => while m.wait(&mut note).await.unwrap() > 0 {},
                    }
                    got
                })
            })
            .collect();
        // End of input: every `cat` exits at once.
        drop(write);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !monitor.monitor().is_empty() {
            assert!(
                Instant::now() < deadline,
                "{} exits missing",
                monitor.monitor().len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        monitor.monitor().shutdown().unwrap();
        let mut all = Vec::new();
        for c in consumers {
            all.extend(c.await.unwrap());
        }
        assert_eq!(all.len(), N, "every exit once, nothing else");
        all.sort_unstable_by_key(|(who, _)| *who);
        for (i, (who, status)) in all.iter().enumerate() {
            assert_eq!((*who, *status), (i, Some(ExitStatus::Code(0))));
        }
        assert!(kids.iter().all(|k| k.state() == KidState::Reaped));
    });
}

#[test]
fn an_oom_is_reported_before_the_exit() {
    let Some(root) = common::memory_v1() else {
        return;
    };
    on_both_runtimes(|| async {
        let cg = TestCgroup::new(&root, "tokio-oom");
        cg.limit_memory(32 << 20);
        let monitor = AsyncMonitor::<&str>::new().unwrap();
        let cgroup = monitor
            .monitor()
            .watch(CgroupOom::dir(&cg.path), "cgroup")
            .unwrap()
            .id();
        let hog = cg.memory_hog();
        monitor
            .monitor()
            .watch(Process::pid(hog.pid()).oom_watch(cgroup), "hog")
            .unwrap();
        let mut order = Vec::new();
        let mut killed = 0;
        loop {
            let e = next_within(&monitor, Duration::from_secs(30)).await;
            match e.kind {
                EventKind::Memory(d) if d.any_oom() => {
                    killed += d.oom_kill;
                    order.push("oom");
                }
                EventKind::Exited(x) => {
                    assert_eq!(x.status, ExitStatus::Signal(9));
                    assert!(x.oom_killed, "{x:?}");
                    order.push("exit");
                    break;
                }
                ref k => panic!("unexpected {k:?}"),
            }
        }
        assert_eq!(order.first(), Some(&"oom"), "{order:?}");
        assert_eq!(order.last(), Some(&"exit"));
        assert!(killed >= 1);
    });
}

/// A kill is reported 50 ms after it is counted, from the monitor's
/// timerfd: with nothing else watched, only the timer's readiness can wake
/// the waiting task for it.
#[test]
fn the_monitors_timed_work_wakes_an_idle_task() {
    let Some(root) = common::memory_v1() else {
        return;
    };
    on_both_runtimes(|| async {
        let cg = TestCgroup::new(&root, "tokio-timer");
        cg.limit_memory(32 << 20);
        let monitor = AsyncMonitor::<()>::new().unwrap();
        monitor
            .monitor()
            .watch(CgroupOom::dir(&cg.path), ())
            .unwrap()
            .id();
        let hog = cg.memory_hog();
        let mut killed = 0;
        while killed == 0 {
            let e = next_within(&monitor, Duration::from_secs(30)).await;
            match e.kind {
                EventKind::Memory(d) => killed += d.oom_kill,
                k => panic!("unexpected {k:?}"),
            }
        }
        // Reported while the cgroup still exists: not by its removal.
        assert!(cg.path.exists());
        assert!(cg.oom_kills() >= 1);
        drop(hog);
    });
}

#[test]
fn a_future_dropped_mid_wait_loses_nothing() {
    let _serial = common::serial();
    on_both_runtimes(|| async {
        let monitor = AsyncMonitor::<usize>::new().unwrap();
        let mut kids: Vec<Kid> = (0..3).map(|_| Kid::sleeper()).collect();
        for (i, k) in kids.iter().enumerate() {
            monitor.monitor().watch(Process::pid(k.pid()), i).unwrap();
        }
        let (_, writer) = monitor.monitor().watch(NewEventfd, 100).unwrap();

        // 1. Waiting, then woken (the exits are queued in the kernel), then
        // dropped before running again: nothing was taken.
        let mut handled = 0;
        {
            let mut next = std::pin::pin!(monitor.next());
            let mut wait = std::pin::pin!(monitor.wait(|_| handled += 1));
            let mut stream = monitor.events();
            assert!(poll_once(next.as_mut()).is_pending());
            assert!(poll_once(wait.as_mut()).is_pending());
            assert!(poll_stream(&mut stream).is_pending());
            for k in &kids {
                k.kill();
                k.wait_exited_no_reap();
            }
        }
        assert_eq!(handled, 0);
        // 2. A batch half taken: `next` returns one event and queues the
        // rest; a `wait` then delivers the queue first.
        writer.signal(5).unwrap();
        let first = next_within(&monitor, Duration::from_secs(10)).await;
        let mut rest = Vec::new();
        let n = monitor
            .wait(|e| rest.push((e.id, format!("{:?}", e.kind), *e.receiver)))
            .await
            .unwrap();
        assert_eq!(n, rest.len());
        assert_eq!(
            1 + n,
            4,
            "three exits and one eventfd signal: {first:?} {rest:?}"
        );

        // 3. Cancelled at random points by a timeout while exits arrive.
        for i in 3..10 {
            // One exit every 30 ms or so.
            let kid = Kid::sh(&format!("sleep 0.{:02}", i * 3));
            monitor.monitor().watch(Process::pid(kid.pid()), i).unwrap();
            kids.push(kid);
        }
        let mut got = vec![first];
        let mut queued: Vec<usize> = rest.iter().map(|r| r.2).collect();
        let mut cancelled = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() + queued.len() < 11 {
            assert!(Instant::now() < deadline);
            match tokio::time::timeout(Duration::from_micros(200), monitor.next()).await {
                Ok(e) => got.push(e.unwrap().unwrap()),
                Err(_) => cancelled += 1,
            }
        }
        queued.extend(got.iter().map(|e| *e.receiver));
        queued.sort_unstable();
        assert_eq!(queued, (0..10).chain([100]).collect::<Vec<_>>());
        assert!(cancelled > 0, "no wait was cancelled");
        assert!(
            monitor.monitor().len() == 1,
            "only the eventfd watch is left"
        );
    });
}

#[test]
fn a_runtime_blocked_for_500_ms_still_gets_every_event() {
    let _serial = common::serial();
    on_both_runtimes(|| async {
        let monitor = Arc::new(AsyncMonitor::<usize>::new().unwrap());
        let (read, write) = pipe();
        let kids: Vec<Kid> = (0..20)
            .map(|_| {
                Kid::spawn(
                    Command::new("cat")
                        .stdin(Stdio::from(read.try_clone().unwrap()))
                        .stdout(Stdio::null()),
                )
            })
            .collect();
        drop(read);
        for (i, k) in kids.iter().enumerate() {
            monitor.monitor().watch(Process::pid(k.pid()), i).unwrap();
        }
        let (_, writer) = monitor.monitor().watch(NewEventfd, 100).unwrap();
        let consumer = {
            let m = monitor.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < 21 {
                    got.push(m.next().await.unwrap().unwrap());
                }
                got
            })
        };
        // Let the consumer start waiting.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let block = move || {
            // The children exit at once; the runtime cannot run for 500 ms.
            let before: Vec<KidState> = kids.iter().map(Kid::state).collect();
            assert!(before.iter().all(|s| *s == KidState::Running), "{before:?}");
            drop(write);
            std::thread::sleep(Duration::from_millis(500));
            // Everything happened while the runtime could not run.
            let states: Vec<KidState> = kids.iter().map(Kid::state).collect();
            assert!(
                states.iter().all(|s| *s == KidState::Zombie),
                "{:?}: {states:?}",
                tokio::runtime::Handle::current().runtime_flavor()
            );
            writer.signal(1).unwrap();
        };
        let handle = tokio::runtime::Handle::current();
        match handle.runtime_flavor() {
            // The only thread is this one.
            tokio::runtime::RuntimeFlavor::CurrentThread => block(),
            _ => {
                // Both workers held in one blocking task each, from before
                // the exits until the 500 ms are over and checked.
                let both = Arc::new(std::sync::Barrier::new(3));
                let blockers: Vec<_> = (0..2)
                    .map(|_| {
                        let b = both.clone();
                        tokio::spawn(async move {
                            b.wait();
                            b.wait();
                        })
                    })
                    .collect();
                both.wait();
                block();
                both.wait();
                for b in blockers {
                    b.await.unwrap();
                }
            }
        }
        let got = tokio::time::timeout(Duration::from_secs(10), consumer)
            .await
            .expect("every event after the block")
            .unwrap();
        let mut who: Vec<usize> = got.iter().map(|e| *e.receiver).collect();
        who.sort_unstable();
        assert_eq!(who, (0..20).chain([100]).collect::<Vec<_>>());
    });
}

#[test]
fn shutdown_wakes_every_waiter() {
    on_both_runtimes(|| async {
        let monitor = Arc::new(AsyncMonitor::<usize>::new().unwrap());
        let kid = Kid::sleeper();
        monitor.monitor().watch(Process::pid(kid.pid()), 0).unwrap();
        let mut waiters = Vec::new();
        for i in 0..9 {
            let m = monitor.clone();
            waiters.push(tokio::spawn(async move {
                match i % 3 {
                    0 => m.next().await.unwrap().is_none(),
                    1 => m.wait(|_| ()).await.unwrap() == 0,
                    _ => stream_next(&mut m.events()).await.is_none(),
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "nothing to deliver yet"
        );
        monitor.monitor().shutdown().unwrap();
        for w in waiters {
            let ended = tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("every waiter woken")
                .unwrap();
            assert!(ended, "each saw the shutdown, not an event");
        }
        // Later waits end at once too.
        assert!(monitor.next().await.unwrap().is_none());
        assert_eq!(monitor.wait(|_| ()).await.unwrap(), 0);
    });
}

#[test]
fn wait_mut_owns_the_loop_and_its_handler_adds_watches() {
    on_both_runtimes(|| async {
        let mut monitor = AsyncMonitor::<u32>::new().unwrap();
        let first = Kid::sh("exit 3");
        monitor
            .monitor()
            .watch(Process::pid(first.pid()), 1)
            .unwrap();
        let second = Kid::sh("exit 4");
        let mut exits = Vec::new();
        while exits.len() < 2 {
            let n = tokio::time::timeout(
                Duration::from_secs(10),
                monitor.wait_mut(|e, m| {
                    if let EventKind::Exited(x) = e.kind {
                        if *e.receiver == 1 {
                            m.watch(Process::pid(second.pid()), 2).unwrap();
                        }
                        exits.push((*e.receiver, x.status));
                    }
                }),
            )
            .await
            .expect("an event")
            .unwrap();
            assert!(n >= 1);
        }
        assert_eq!(exits, [(1, ExitStatus::Code(3)), (2, ExitStatus::Code(4))]);
    });
}

/// Outside a runtime: an error, not a panic.
#[test]
fn outside_a_runtime_new_fails_cleanly() {
    let err = AsyncMonitor::<()>::new().unwrap_err();
    assert!(err.to_string().contains("tokio"), "{err}");
}

#[test]
fn futures_are_send_when_the_receiver_is() {
    fn send<F: Send>(_: &F) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut monitor = AsyncMonitor::<String>::new().unwrap();
    send(&monitor);
    send(&monitor.next());
    send(&monitor.wait(|_| ()));
    send(&monitor.events());
    send(&monitor.wait_mut(|_, _| ()));
}
