//! The monitor's own lock: a futex word and an `UnsafeCell`, with no
//! poisoning; and [`Signal`], the wait for a lent receiver to come back.
//!
//! # Why not `std::sync::Mutex`
//!
//! On Linux std's `Mutex` is the same futex lock underneath (one
//! compare-exchange to take it, one swap to release it, a `FUTEX_WAKE`
//! only when a thread sleeps on it). What it adds is poisoning: taking
//! the lock reads the global panic count and releasing it reads it again
//! (to poison the lock if the thread is unwinding), and every caller
//! unwraps the `LockResult`. The shared path (`Monitor::wait`) takes and
//! releases the lock once per event, and those checks were about a
//! quarter of what it spent over the single-owner path (benches/README.md).
//!
//! The monitor never wanted poisoning: it already took a poisoned table as
//! it was (`PoisonError::into_inner` at every lock), because
//!
//! - no caller code ever runs under the lock: a handler is called only
//!   after the guard is dropped, so a panic in a user callback cannot
//!   happen inside a critical section (and a handler that panics while
//!   holding a lent watch puts it back under a fresh lock first);
//! - the monitor's own critical sections are short table and bookkeeping
//!   updates that leave the table consistent at every point where they can
//!   panic (the only panics there are allocation failures, which abort);
//!   a panic would release the lock in the guard's `Drop`, as std's does,
//!   and the next thread would find a valid table.
//!
//! So this lock is std's without the poison flag: [`Lock::lock`] is one
//! compare-exchange on the uncontended path and [`LockGuard`]'s drop one
//! swap. It is not fair, as std's is not: a thread that releases and takes
//! it again at once (the shared path between two events) may take it ahead
//! of a sleeper; the critical sections are a few hundred instructions, so
//! a sleeper waits at most for the releasing thread's next handler call.
//! Contended, it spins briefly (a critical section is short, and another
//! core may be about to release it) before it sleeps in `FUTEX_WAIT`.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::thread::futex;

/// Free.
const UNLOCKED: u32 = 0;
/// Held, and no thread sleeps on it.
const LOCKED: u32 = 1;
/// Held, and a thread may sleep on it: the release must wake one.
const CONTENDED: u32 = 2;

/// How often a contended `lock` looks again before it sleeps.
const SPINS: u32 = 100;

/// A mutual-exclusion lock around a `T`, without poisoning (see the module
/// docs for why).
pub(crate) struct Lock<T> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one thread at a time (the state
// word's acquire/release orders every access), so sharing the lock between
// threads only ever moves access to `T` between them: `T: Send` suffices,
// as for std's `Mutex`.
unsafe impl<T: Send> Sync for Lock<T> {}
// SAFETY: as above; sending the lock sends the `T` it owns.
unsafe impl<T: Send> Send for Lock<T> {}

impl<T> Lock<T> {
    pub(crate) const fn new(value: T) -> Lock<T> {
        Lock {
            state: AtomicU32::new(UNLOCKED),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, sleeping until it is free.
    #[inline(always)]
    pub(crate) fn lock(&self) -> LockGuard<'_, T> {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        LockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        // Spin while it is held by a thread that is running, not sleeping.
        let mut state = self.state.load(Ordering::Relaxed);
        for _ in 0..SPINS {
            if state != LOCKED {
                break;
            }
            std::hint::spin_loop();
            state = self.state.load(Ordering::Relaxed);
        }
        if state == UNLOCKED
            && self
                .state
                .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        // From here on the lock is marked contended: whoever releases it
        // wakes a sleeper. Taking it as CONTENDED (not LOCKED) may cost one
        // needless wake later, never a lost one.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            // Returns at once (EAGAIN) if the state changed since the swap,
            // and may return spuriously (EINTR): both just look again.
            let _ = futex::wait(&self.state, futex::Flags::PRIVATE, CONTENDED, None);
        }
    }

    /// The value, with no lock: `&mut self` proves nobody else holds it.
    #[inline(always)]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    #[inline(always)]
    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            self.wake_one();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_one(&self) {
        let _ = futex::wake(&self.state, futex::Flags::PRIVATE, 1);
    }
}

/// The lock, held; released on drop (a panic included).
pub(crate) struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
    /// Not `Send`, as std's guard: it is released by the thread that took
    /// it. (The futex lock would not mind; nothing needs it.)
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: a shared guard only gives `&T`, so sharing it between threads
// needs `T: Sync`.
unsafe impl<T: Sync> Sync for LockGuard<'_, T> {}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock
        // (taken with acquire ordering), so no other reference to the value
        // is live; the borrow ends before the guard can release it.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the guard's only
        // borrow of the value.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for LockGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<'a, T> LockGuard<'a, T> {
    /// The lock this guard holds.
    #[inline(always)]
    fn lock_of(&self) -> &'a Lock<T> {
        self.lock
    }
}

/// A condition to wait for under a [`Lock`]: std's `Condvar` reduced to
/// what `Monitor::unwatch` needs (wait for a lent receiver to come back),
/// on a futex word that counts notifications.
///
/// A waiter reads the count while it holds the lock, releases the lock and
/// sleeps while the count is unchanged; a notifier (which holds the lock
/// too) bumps the count and wakes every sleeper. A notification between
/// the release and the sleep changes the count, so the sleep returns at
/// once: none is lost. Wake-ups may be spurious: wait in a loop that tests
/// the condition.
pub(crate) struct Signal {
    count: AtomicU32,
}

impl Signal {
    pub(crate) const fn new() -> Signal {
        Signal {
            count: AtomicU32::new(0),
        }
    }

    /// Releases `guard`, sleeps until a [`notify_all`](Self::notify_all)
    /// (or spuriously), and takes the lock again.
    pub(crate) fn wait<'a, T>(&self, guard: LockGuard<'a, T>) -> LockGuard<'a, T> {
        let seen = self.count.load(Ordering::Relaxed);
        let lock = guard.lock_of();
        drop(guard);
        // EAGAIN (notified since `seen`) and EINTR both just return.
        let _ = futex::wait(&self.count, futex::Flags::PRIVATE, seen, None);
        lock.lock()
    }

    /// Wakes every thread in [`wait`](Self::wait). Call with the lock held.
    pub(crate) fn notify_all(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = futex::wake(&self.count, futex::Flags::PRIVATE, i32::MAX as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_and_counts() {
        let lock = Arc::new(Lock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 80_000);
    }

    #[test]
    fn a_panic_under_the_lock_releases_it() {
        let lock = Arc::new(Lock::new(1u32));
        let l = lock.clone();
        let r = std::thread::spawn(move || {
            let mut g = l.lock();
            *g = 2;
            panic!("inside");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(*lock.lock(), 2);
    }

    #[test]
    fn signal_wakes_a_waiter() {
        let shared = Arc::new((Lock::new(false), Signal::new()));
        let s = shared.clone();
        let waiter = std::thread::spawn(move || {
            let (lock, signal) = &*s;
            let mut g = lock.lock();
            while !*g {
                g = signal.wait(g);
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        {
            let (lock, signal) = &*shared;
            *lock.lock() = true;
            let _g = lock.lock();
            signal.notify_all();
        }
        waiter.join().unwrap();
    }
}
