//! OOM counter bookkeeping shared by the v1 and v2 OOM watches.
//!
//! The rules the peers learned the hard way (see the design notes):
//! report per-counter *increases* against a baseline taken right after the
//! watch is armed, never absolute values, so that a re-read after a
//! duplicate notification reports nothing; count `oom_kill` as well as
//! `oom` (with the limit on a parent only `oom_kill` rises in the child);
//! and hold back an OOM whose kill has not been counted yet for a few
//! milliseconds, because the v1 notification arrives about half a
//! millisecond *before* the kill and the kill is what callers care about.
//!
//! # Coalescing
//!
//! One notification is not one OOM. While a victim dies, every task of the
//! cgroup that retries a charge runs into the limit again and is told that
//! a victim is already on its way out: each retry signals the v1 eventfd
//! (and counts in v2's `oom`), with no new kill. Under contention a victim
//! can take two seconds to die (the kernel's OOM reaper waits that long,
//! `OOM_REAPER_DELAY` in `mm/oom_kill.c`, before it frees the memory of a
//! victim that has not exited), and a cgroup then signals thousands of
//! times. The rule:
//!
//! - an increase that carries a kill (`oom_kill`, `oom_group_kill`) is
//!   reported [`KILL_LINGER`] after the kill was counted, together with
//!   everything held back before it and the retries that trail it (the
//!   victim's own last charges): a victim normally exits within that time,
//!   and its exit, when watched, reports at once;
//! - an increase without a kill waits: first up to 62 ms (re-checks at 2,
//!   4, … 32 ms after the *first* notification, on the clock, not per
//!   notification) for its kill, then until at least [`COALESCE`] has
//!   passed since the last report of this watch; notifications meanwhile
//!   only add to what is held;
//! - a forced look (a linked process exited, the cgroup went away) reports
//!   everything held at once.
//!
//! So a watch reports at most one kill-less event per [`COALESCE`], plus
//! one per kill and one per forced look, and since an event
//! carries the increase since the previous one, the counters summed over
//! all its events equal the kernel's: nothing is dropped, only merged.
//!
//! # Claiming kills
//!
//! Without the kernel's log naming the victim, an exit by `SIGKILL` in a
//! cgroup whose kill counter rose is taken for the OOM kill. A kill stays
//! claimable while the OOM is still in progress, that is for
//! [`CLAIM_WINDOW`] after the kill was reported *or after the cgroup's
//! `oom` counter last rose*, whichever is later: the retries that flood the
//! eventfd while a victim dies are what proves it has not died yet, so a
//! victim that takes seconds is still marked. A kill nobody claimed within
//! that window belonged to a process that was not watched.

use std::time::{Duration, Instant};

use crate::cgroup::parse::memory_events::MemoryEvents;
use crate::event::ExitStatus;

/// The first re-check of an OOM without a kill; each later one doubles.
const SETTLE_FIRST: Duration = Duration::from_millis(2);
/// Re-checks before an OOM without a kill is reported as such (2+4+…+32 ms).
const SETTLE_ATTEMPTS: u8 = 5;
/// The shortest time between a watch's report and its next report of an
/// increase that carries no kill.
pub(crate) const COALESCE: Duration = Duration::from_secs(1);
/// How long a counted kill waits for the notifications that trail it, when
/// no exit or removal reports it first.
pub(crate) const KILL_LINGER: Duration = Duration::from_millis(50);

/// What an observation of the counters calls for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Observation {
    /// Nothing increased.
    Nothing,
    /// These counters increased; report them.
    Report(MemoryEvents),
    /// An increase held back (waiting for its kill, or coalescing): look
    /// again at this time.
    RecheckAt(Instant),
}

/// How long after a kill was counted, or after the cgroup's OOM last showed
/// activity, an exit can still be attributed to it. An OOM-killed process
/// normally exits within milliseconds (design notes: ~8 ms), and one the
/// kernel struggles to finish is reaped after 2 s (`OOM_REAPER_DELAY`); a
/// kill that nobody claimed for this long after its OOM went quiet
/// belonged to a process that was not watched, and must not mark a later,
/// unrelated SIGKILL as an OOM kill.
pub(crate) const CLAIM_WINDOW: Duration = Duration::from_secs(3);

/// An increase held back, and until when.
#[derive(Debug, Clone, Copy)]
struct Hold {
    due: Instant,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// An OOM waiting for its kill: this many re-checks done.
    Settle(u8),
    /// A kill-less increase waiting out [`COALESCE`].
    Coalesce,
    /// A kill waiting for what trails it.
    Linger,
}

#[derive(Debug, Default)]
pub(crate) struct OomBook {
    reported: MemoryEvents,
    /// The counters as last read (ahead of `reported` while held).
    last_seen: MemoryEvents,
    /// Kills reported but not yet attributed to an exit, and until when
    /// they can be.
    unclaimed_kills: u64,
    claimable_until: Option<Instant>,
    held: Option<Hold>,
    /// Increases without a kill are not reported before this time.
    quiet_until: Option<Instant>,
    /// Kills reported whose victims the kernel log did not name in the
    /// same event (the log was not read, or not yet written): a victim
    /// named later is not counted again at the cgroup's removal.
    pub(crate) unnamed_kills: u64,
}

impl OomBook {
    /// A book whose baseline is the counters as read right after arming.
    pub(crate) fn with_baseline(baseline: MemoryEvents) -> OomBook {
        OomBook {
            reported: baseline,
            last_seen: baseline,
            ..OomBook::default()
        }
    }

    /// Compares `now` with what was last reported. `force` reports whatever
    /// rose at once, held or not (the victim's exit has been seen, or the
    /// cgroup is going away).
    pub(crate) fn observe(&mut self, now: MemoryEvents, force: bool, at: Instant) -> Observation {
        if now.oom > self.last_seen.oom && self.unclaimed_kills > 0 {
            // The OOM goes on: its victim has not freed the memory yet.
            self.claimable_until = Some(at + CLAIM_WINDOW);
        }
        self.last_seen = now;
        let delta = now.delta(&self.reported);
        if delta.is_zero() {
            self.held = None;
            return Observation::Nothing;
        }
        if force {
            return Observation::Report(self.report(now, at));
        }
        let has_kill = delta.oom_kill > 0 || delta.oom_group_kill > 0;
        match self.held {
            // A notification in the middle of a hold adds to it.
            Some(h) if at < h.due && (h.stage == Stage::Linger || !has_kill) => {
                return Observation::RecheckAt(h.due)
            }
            Some(h) if h.stage == Stage::Linger => {
                return Observation::Report(self.report(now, at))
            }
            _ => {}
        }
        if has_kill {
            let due = at + KILL_LINGER;
            self.held = Some(Hold {
                due,
                stage: Stage::Linger,
            });
            return Observation::RecheckAt(due);
        }
        match self.next_hold(&delta, at) {
            Some(h) => {
                self.held = Some(h);
                Observation::RecheckAt(h.due)
            }
            None => Observation::Report(self.report(now, at)),
        }
    }

    /// The next wait for a kill-less increase whose current wait (if any)
    /// is over, or `None` when it is to be reported now.
    fn next_hold(&self, delta: &MemoryEvents, at: Instant) -> Option<Hold> {
        let attempt = match self.held {
            None => 0,
            Some(Hold {
                stage: Stage::Settle(n),
                ..
            }) => n + 1,
            Some(_) => SETTLE_ATTEMPTS,
        };
        if delta.oom > 0 && attempt < SETTLE_ATTEMPTS {
            return Some(Hold {
                due: at + SETTLE_FIRST * (1u32 << attempt),
                stage: Stage::Settle(attempt),
            });
        }
        match self.quiet_until {
            Some(q) if at < q => Some(Hold {
                due: q,
                stage: Stage::Coalesce,
            }),
            _ => None,
        }
    }

    /// Takes `now` as reported and returns the increase. Kills become
    /// claimable by exits; `oom_kill` already counts every process of a group
    /// kill, so `oom_group_kill` adds none.
    fn report(&mut self, now: MemoryEvents, at: Instant) -> MemoryEvents {
        let delta = now.delta(&self.reported);
        self.held = None;
        self.reported = now;
        self.last_seen = now;
        self.quiet_until = Some(at + COALESCE);
        if delta.oom_kill > 0 {
            self.unclaimed_kills += delta.oom_kill;
            self.claimable_until = Some(at + CLAIM_WINDOW);
        }
        delta
    }

    /// The counters as last read.
    pub(crate) fn last_seen(&self) -> MemoryEvents {
        self.last_seen
    }

    /// Whatever `now` shows that was not reported yet, taken as reported:
    /// for a cgroup that is going away, whose held-back OOM must not be lost.
    pub(crate) fn unreported(&mut self, now: MemoryEvents, at: Instant) -> MemoryEvents {
        self.report(now, at)
    }

    /// When a re-check is due, if one is.
    pub(crate) fn recheck_at(&self) -> Option<Instant> {
        self.held.map(|h| h.due)
    }

    /// Attributes one reported kill to a process of the cgroup that ended
    /// with `status` at `at`, if it could be the victim and a kill was
    /// reported recently enough.
    ///
    /// The victim of an OOM kill dies of `SIGKILL`. A process that is not our
    /// child may end with an unknown status (reaped by its parent before its
    /// zombie was read, or read without access, on a kernel before 6.15),
    /// so for it a recent unclaimed kill is the only evidence there is: it
    /// is taken, as containerd does for a task whose cgroup saw an OOM kill.
    pub(crate) fn claim_kill_for(&mut self, status: ExitStatus, at: Instant) -> bool {
        match status {
            ExitStatus::Signal(9) | ExitStatus::Unknown => self.claim_kill(at),
            ExitStatus::Code(_) | ExitStatus::Signal(_) => false,
        }
    }

    /// The reported kills no exit has claimed, with the deadline to claim
    /// them, taken out of the book: for a watch that ends with its cgroup
    /// while the exits of its victims are still on their way.
    pub(crate) fn take_claimable(&mut self, at: Instant) -> Option<(u64, Instant)> {
        let until = self.claimable_until.filter(|&u| at <= u)?;
        let n = std::mem::take(&mut self.unclaimed_kills);
        (n > 0).then_some((n, until))
    }

    /// Whether a reported kill could still be claimed at `at` (without
    /// claiming it).
    pub(crate) fn has_claimable_kill(&self, at: Instant) -> bool {
        self.unclaimed_kills > 0 && self.claimable_until.is_some_and(|until| at <= until)
    }

    /// Attributes one reported kill to a process that died of `SIGKILL` at
    /// `at`, if its OOM was recent enough (see the module docs).
    pub(crate) fn claim_kill(&mut self, at: Instant) -> bool {
        if !self.claimable_until.is_some_and(|until| at <= until) {
            self.unclaimed_kills = 0;
        }
        if self.unclaimed_kills > 0 {
            self.unclaimed_kills -= 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(oom: u64, oom_kill: u64, max: u64) -> MemoryEvents {
        MemoryEvents {
            oom,
            oom_kill,
            max,
            ..MemoryEvents::default()
        }
    }

    /// Re-checks `now` as the monitor does (at each due time) until it is
    /// reported; returns what, when, and how many re-checks it took.
    fn settle(
        b: &mut OomBook,
        now: MemoryEvents,
        mut at: Instant,
    ) -> (MemoryEvents, Instant, usize) {
        let mut rechecks = 0;
        loop {
            match b.observe(now, false, at) {
                Observation::RecheckAt(next) => {
                    assert!(next > at, "a re-check must be later");
                    rechecks += 1;
                    at = next;
                }
                Observation::Report(d) => return (d, at, rechecks),
                Observation::Nothing => panic!("lost the OOM"),
            }
        }
    }

    #[test]
    fn reports_increases_against_the_baseline_only() {
        let t = Instant::now();
        let mut b = OomBook::with_baseline(ev(3, 3, 10));
        assert_eq!(b.observe(ev(3, 3, 10), false, t), Observation::Nothing);
        let (d, at, _) = settle(&mut b, ev(4, 4, 12), t);
        assert_eq!(d, ev(1, 1, 2));
        // A duplicate notification with nothing new reports nothing.
        assert_eq!(b.observe(ev(4, 4, 12), false, at), Observation::Nothing);
        assert!(b.claim_kill(at));
        assert!(!b.claim_kill(at));
    }

    #[test]
    fn a_kill_lingers_for_what_trails_it_unless_forced() {
        // With the limit on a parent, only oom_kill rises in the child.
        let t = Instant::now();
        let mut b = OomBook::with_baseline(ev(0, 0, 0));
        assert_eq!(
            b.observe(ev(0, 1, 0), false, t),
            Observation::RecheckAt(t + KILL_LINGER)
        );
        // The victim's last charge retries join it.
        let at = t + Duration::from_millis(9);
        assert_eq!(
            b.observe(ev(2, 1, 0), false, at),
            Observation::RecheckAt(t + KILL_LINGER)
        );
        assert_eq!(
            b.observe(ev(2, 1, 0), false, t + KILL_LINGER),
            Observation::Report(ev(2, 1, 0))
        );
        // The victim's exit (a forced look) does not wait.
        assert_eq!(
            b.observe(ev(3, 2, 0), true, t + KILL_LINGER),
            Observation::Report(ev(1, 1, 0))
        );
    }

    #[test]
    fn oom_without_kill_settles_then_reports() {
        let t = Instant::now();
        let mut b = OomBook::with_baseline(ev(0, 0, 0));
        let Observation::RecheckAt(first) = b.observe(ev(1, 0, 1), false, t) else {
            panic!("should wait for the kill");
        };
        assert_eq!(b.recheck_at(), Some(first));
        // The kill lands: one report carrying both, after its linger.
        let (d, at, _) = settle(&mut b, ev(1, 1, 1), first);
        assert_eq!((d, at), (ev(1, 1, 1), first + KILL_LINGER));
        assert_eq!(b.recheck_at(), None);
        // An OOM whose kill never comes (oom_kill_disable) is reported after
        // the last re-check.
        let mut b = OomBook::with_baseline(ev(0, 0, 0));
        let (d, at, rechecks) = settle(&mut b, ev(1, 0, 0), t);
        assert_eq!(d, ev(1, 0, 0));
        assert_eq!(rechecks, SETTLE_ATTEMPTS as usize);
        assert!(at - t <= Duration::from_millis(70));
    }

    #[test]
    fn notifications_do_not_hurry_a_settling_oom() {
        // Each notification used to count as a re-check, so six quick ones
        // made an event: the flood of `"oom":6` lines.
        let t = Instant::now();
        let mut b = OomBook::with_baseline(ev(0, 0, 0));
        let Observation::RecheckAt(due) = b.observe(ev(1, 0, 0), false, t) else {
            panic!("should wait for the kill");
        };
        for i in 1..100u64 {
            let at = t + Duration::from_micros(10 * i);
            assert_eq!(
                b.observe(ev(1 + i, 0, 0), false, at),
                Observation::RecheckAt(due)
            );
        }
    }

    #[test]
    fn kill_less_increases_are_reported_once_per_coalescing_period() {
        let t = Instant::now();
        let mut b = OomBook::with_baseline(ev(0, 0, 0));
        // A v2 `max` rise alone, with nothing reported before: at once.
        assert_eq!(
            b.observe(ev(0, 0, 1), false, t),
            Observation::Report(ev(0, 0, 1))
        );
        // The next one waits out the period; a kill only lingers.
        let at = t + Duration::from_millis(5);
        assert_eq!(
            b.observe(ev(0, 0, 2), false, at),
            Observation::RecheckAt(t + COALESCE)
        );
        let (d, at, rechecks) = settle(&mut b, ev(1, 1, 3), at);
        assert_eq!((d, rechecks), (ev(1, 1, 2), 1));
        // An OOM without a kill right after: the settle re-checks, then the
        // rest of the period.
        let (d, reported_at, rechecks) = settle(&mut b, ev(2, 1, 3), at);
        assert_eq!(d, ev(1, 0, 0));
        assert_eq!(rechecks, SETTLE_ATTEMPTS as usize + 1);
        assert_eq!(reported_at, at + COALESCE);
    }

    /// A victim that takes `dying` to die while the cgroup's tasks retry their
    /// charges: `notifications` eventfd signals, evenly spread, delivered to
    /// the book as the monitor would (each readiness, each due re-check),
    /// then the victim's exit (a forced look, and its claim). Returns the
    /// reports, and whether the exit was marked.
    fn flood(notifications: u64, dying: Duration) -> (Vec<MemoryEvents>, bool) {
        let t0 = Instant::now();
        let mut b = OomBook::with_baseline(ev(0, 0, 0));
        let mut reports = Vec::new();
        let mut due: Option<Instant> = None;
        let mut kills = 0;
        let mut look = |b: &mut OomBook, now, force, at, due: &mut Option<Instant>| match b
            .observe(now, force, at)
        {
            Observation::Report(d) => {
                reports.push(d);
                *due = None;
            }
            Observation::RecheckAt(next) => *due = Some(next),
            Observation::Nothing => {}
        };
        for n in 1..=notifications {
            let at = t0 + dying.mul_f64(n as f64 / (notifications + 1) as f64);
            while let Some(d) = due.filter(|d| *d <= at) {
                let seen = b.last_seen();
                look(&mut b, seen, false, d, &mut due);
            }
            // The first notification comes half a millisecond before its kill.
            if n == 2 {
                kills = 1;
            }
            look(&mut b, ev(n, kills, 0), false, at, &mut due);
        }
        let exit = t0 + dying;
        let seen = b.last_seen();
        look(&mut b, seen, true, exit, &mut due);
        let marked = b.claim_kill(exit);
        (reports, marked)
    }

    #[test]
    fn a_burst_of_ten_thousand_notifications_makes_a_handful_of_events() {
        let (reports, marked) = flood(10_000, Duration::from_millis(2_030));
        let sum = reports.iter().fold(MemoryEvents::default(), |mut s, d| {
            s.oom += d.oom;
            s.oom_kill += d.oom_kill;
            s
        });
        println!(
            "a burst of 10000 OOM notifications over 2.03 s with one kill: {} events {:?}",
            reports.len(),
            reports
                .iter()
                .map(|d| (d.oom, d.oom_kill))
                .collect::<Vec<_>>()
        );
        assert_eq!((sum.oom, sum.oom_kill), (10_000, 1), "nothing lost");
        // The kill (with the notification before it), one per coalescing
        // period of the 2 s, and what is left at the exit.
        assert!(reports.len() <= 4, "{reports:?}");
        assert_eq!(reports[0].oom_kill, 1);
        assert!(marked, "a victim that took 2 s to die is still marked");
    }

    #[test]
    fn random_sequences_lose_nothing_and_stay_within_the_rate() {
        // A fixed-seed generator: notifications, kills, max rises, forced
        // looks, at random moments, with due re-checks run on time.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let t0 = Instant::now();
            let mut b = OomBook::with_baseline(ev(0, 0, 0));
            let mut kernel = ev(0, 0, 0);
            let mut sum = ev(0, 0, 0);
            let mut at = t0;
            let mut due: Option<Instant> = None;
            let mut kill_less = 0u64;
            let take = |o: Observation, sum: &mut MemoryEvents, due: &mut Option<Instant>| match o {
                Observation::Report(d) => {
                    sum.oom += d.oom;
                    sum.oom_kill += d.oom_kill;
                    sum.max += d.max;
                    *due = None;
                    d.oom_kill == 0
                }
                Observation::RecheckAt(t) => {
                    *due = Some(t);
                    false
                }
                Observation::Nothing => false,
            };
            for _ in 0..2_000 {
                at += Duration::from_micros(rand(20_000));
                while let Some(d) = due.filter(|d| *d <= at) {
                    let o = b.observe(kernel, false, d);
                    kill_less += u64::from(take(o, &mut sum, &mut due));
                }
                match rand(100) {
                    0..=79 => kernel.oom += 1 + rand(50),
                    80..=84 => kernel.oom_kill += 1,
                    85..=94 => kernel.max += 1,
                    _ => {
                        // A linked exit or a removal: reported at once.
                        let o = b.observe(kernel, true, at);
                        take(o, &mut sum, &mut due);
                        continue;
                    }
                }
                let o = b.observe(kernel, false, at);
                kill_less += u64::from(take(o, &mut sum, &mut due));
            }
            let o = b.observe(kernel, true, at);
            take(o, &mut sum, &mut due);
            assert_eq!(sum, kernel, "nothing lost, nothing counted twice");
            // Unforced reports without a kill: at most one per second.
            let seconds = (at - t0).as_secs() + 1;
            assert!(kill_less <= seconds, "{kill_less} kill-less in {seconds} s");
        }
    }

    #[test]
    fn a_victim_dying_longer_than_the_window_is_marked_while_its_oom_goes_on() {
        let (reports, marked) = flood(20_000, CLAIM_WINDOW * 2);
        assert!(marked);
        // One per coalescing period, the kill's, and the exit's.
        assert!(reports.len() as u32 <= (CLAIM_WINDOW * 2).as_secs() as u32 + 2);
    }

    #[test]
    fn stale_kills_are_not_claimed() {
        let t = Instant::now();
        let mut b = OomBook::default();
        let (_, t, _) = settle(&mut b, ev(1, 2, 0), t);
        // A worker's kill, unclaimed; after its OOM went quiet for the
        // window, an unrelated SIGKILL.
        assert!(!b.claim_kill(t + CLAIM_WINDOW + Duration::from_millis(1)));
        // A fresh kill is claimable, once per kill.
        let t2 = t + Duration::from_secs(10);
        let (_, t2, _) = settle(&mut b, ev(2, 3, 0), t2);
        assert!(b.claim_kill(t2 + Duration::from_millis(8)));
        assert!(!b.claim_kill(t2 + Duration::from_millis(9)));
    }

    #[test]
    fn only_a_sigkill_or_an_unknown_status_claims_a_kill() {
        let t = Instant::now();
        let mut b = OomBook::default();
        let (_, t, _) = settle(&mut b, ev(2, 2, 0), t);
        // Exits that cannot be the OOM killer's claim nothing...
        assert!(!b.claim_kill_for(ExitStatus::Code(0), t));
        assert!(!b.claim_kill_for(ExitStatus::Code(137), t));
        assert!(!b.claim_kill_for(ExitStatus::Signal(15), t));
        // ...so both kills are left for the victims: our child, killed, and
        // another's process, whose status we are not told.
        assert!(b.claim_kill_for(ExitStatus::Signal(9), t));
        assert!(b.claim_kill_for(ExitStatus::Unknown, t));
        assert!(
            !b.claim_kill_for(ExitStatus::Unknown, t),
            "2 kills, 2 claims"
        );
    }

    #[test]
    fn a_removed_watch_hands_over_its_unclaimed_kills_once() {
        let t = Instant::now();
        let mut b = OomBook::default();
        let (_, t, _) = settle(&mut b, ev(2, 2, 0), t);
        assert!(b.claim_kill(t));
        // One kill left: handed over with its deadline, and gone from here.
        assert_eq!(b.take_claimable(t), Some((1, t + CLAIM_WINDOW)));
        assert_eq!(b.take_claimable(t), None);
        assert!(!b.claim_kill(t));
        // Stale kills are not handed over.
        let (_, t2, _) = settle(&mut b, ev(3, 3, 0), t + Duration::from_secs(10));
        assert_eq!(
            b.take_claimable(t2 + CLAIM_WINDOW + Duration::from_millis(1)),
            None
        );
    }

    #[test]
    fn group_kills_are_counted_once() {
        let t = Instant::now();
        let mut b = OomBook::default();
        let group = MemoryEvents {
            oom: 1,
            oom_kill: 3,
            oom_group_kill: 1,
            ..MemoryEvents::default()
        };
        let (_, t, _) = settle(&mut b, group, t);
        assert!(b.claim_kill(t) && b.claim_kill(t) && b.claim_kill(t));
        assert!(!b.claim_kill(t), "3 processes killed, 3 claims");
    }

    #[test]
    fn a_held_back_oom_is_not_lost_when_the_cgroup_goes() {
        let t = Instant::now();
        let mut b = OomBook::default();
        assert!(matches!(
            b.observe(ev(1, 0, 1), false, t),
            Observation::RecheckAt(_)
        ));
        let last = b.last_seen();
        assert_eq!(b.unreported(last, t), ev(1, 0, 1));
        assert!(b.unreported(last, t).is_zero());
    }

    #[test]
    fn force_reports_at_once() {
        let t = Instant::now();
        let mut b = OomBook::default();
        assert_eq!(
            b.observe(ev(1, 0, 0), true, t),
            Observation::Report(ev(1, 0, 0))
        );
    }
}
