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

use std::time::{Duration, Instant};

use crate::cgroup::parse::memory_events::MemoryEvents;
use crate::monitor::ExitStatus;

/// The first re-check of an OOM without a kill; each later one doubles.
const SETTLE_FIRST: Duration = Duration::from_millis(2);
/// Re-checks before an OOM without a kill is reported as such (2+4+…+32 ms).
const SETTLE_ATTEMPTS: u8 = 5;

/// What an observation of the counters calls for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Observation {
    /// Nothing increased.
    Nothing,
    /// These counters increased; report them.
    Report(MemoryEvents),
    /// An OOM without its kill yet: look again at this time.
    RecheckAt(Instant),
}

/// How long after a kill was counted an exit can still be attributed to it.
/// An OOM-killed process exits within milliseconds (design notes: ~8 ms);
/// a kill that nobody claimed for this long belonged to a process that was
/// not watched, and must not mark a later, unrelated SIGKILL as an OOM kill.
const CLAIM_WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub(crate) struct OomBook {
    reported: MemoryEvents,
    /// The counters as last read (ahead of `reported` while settling).
    last_seen: MemoryEvents,
    /// Kills reported but not yet attributed to an exit, and when the last
    /// of them was reported.
    unclaimed_kills: u64,
    last_kill_at: Option<Instant>,
    settling: Option<(Instant, u8)>,
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

    /// Compares `now` with what was last reported. `force` reports an OOM
    /// at once even if its kill is not counted yet (the victim's exit has
    /// been seen, or the cgroup is going away).
    pub(crate) fn observe(&mut self, now: MemoryEvents, force: bool, at: Instant) -> Observation {
        self.last_seen = now;
        let delta = now.delta(&self.reported);
        if delta.is_zero() {
            self.settling = None;
            return Observation::Nothing;
        }
        let kill_pending = delta.oom > 0 && delta.oom_kill == 0 && delta.oom_group_kill == 0;
        if kill_pending && !force {
            let attempt = match self.settling {
                None => Some(0),
                Some((_, n)) if n + 1 < SETTLE_ATTEMPTS => Some(n + 1),
                Some(_) => None,
            };
            if let Some(n) = attempt {
                let next = at + SETTLE_FIRST * (1u32 << n);
                self.settling = Some((next, n));
                return Observation::RecheckAt(next);
            }
        }
        Observation::Report(self.report(now, at))
    }

    /// Takes `now` as reported and returns the increase. Kills become
    /// claimable by exits; `oom_kill` already counts every process of a group
    /// kill, so `oom_group_kill` adds none.
    fn report(&mut self, now: MemoryEvents, at: Instant) -> MemoryEvents {
        let delta = now.delta(&self.reported);
        self.settling = None;
        self.reported = now;
        self.last_seen = now;
        if delta.oom_kill > 0 {
            self.unclaimed_kills += delta.oom_kill;
            self.last_kill_at = Some(at);
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
        self.settling.map(|(t, _)| t)
    }

    /// Attributes one reported kill to a process of the cgroup that ended
    /// with `status` at `at`, if it could be the victim and a kill was
    /// reported recently enough.
    ///
    /// The victim of an OOM kill dies of `SIGKILL`. A process that is not our
    /// child ends with an unknown status (the kernel tells only its parent),
    /// so for it a recent unclaimed kill is the only evidence there is: it
    /// is taken, as containerd does for a task whose cgroup saw an OOM kill.
    pub(crate) fn claim_kill_for(&mut self, status: ExitStatus, at: Instant) -> bool {
        match status {
            ExitStatus::Signal(9) | ExitStatus::Unknown => self.claim_kill(at),
            ExitStatus::Code(_) | ExitStatus::Signal(_) => false,
        }
    }

    /// Attributes one reported kill to an exit at `at`, if one was reported
    /// recently enough.
    pub(crate) fn claim_kill(&mut self, at: Instant) -> bool {
        let recent = self
            .last_kill_at
            .is_some_and(|k| at.saturating_duration_since(k) <= CLAIM_WINDOW);
        if !recent {
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

    #[test]
    fn reports_increases_against_the_baseline_only() {
        let t = Instant::now();
        let mut b = OomBook::with_baseline(ev(3, 3, 10));
        assert_eq!(b.observe(ev(3, 3, 10), false, t), Observation::Nothing);
        assert_eq!(
            b.observe(ev(4, 4, 12), false, t),
            Observation::Report(ev(1, 1, 2))
        );
        // A duplicate notification with nothing new reports nothing.
        assert_eq!(b.observe(ev(4, 4, 12), false, t), Observation::Nothing);
        assert!(b.claim_kill(t));
        assert!(!b.claim_kill(t));
    }

    #[test]
    fn kill_only_increase_is_reported() {
        // With the limit on a parent, only oom_kill rises in the child.
        let t = Instant::now();
        let mut b = OomBook::with_baseline(ev(0, 0, 0));
        assert_eq!(
            b.observe(ev(0, 1, 0), false, t),
            Observation::Report(ev(0, 1, 0))
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
        // The kill lands: one report carrying both.
        assert_eq!(
            b.observe(ev(1, 1, 1), false, first),
            Observation::Report(ev(1, 1, 1))
        );
        assert_eq!(b.recheck_at(), None);
        // An OOM whose kill never comes (oom_kill_disable) is reported after
        // the last re-check.
        let mut at = t;
        let mut rechecks = 0;
        loop {
            match b.observe(ev(2, 1, 1), false, at) {
                Observation::RecheckAt(next) => {
                    rechecks += 1;
                    at = next;
                }
                Observation::Report(d) => {
                    assert_eq!(d, ev(1, 0, 0));
                    break;
                }
                Observation::Nothing => panic!("lost the OOM"),
            }
        }
        assert_eq!(rechecks, SETTLE_ATTEMPTS);
        assert!(at - t <= Duration::from_millis(70));
    }

    #[test]
    fn stale_kills_are_not_claimed() {
        let t = Instant::now();
        let mut b = OomBook::default();
        assert!(matches!(
            b.observe(ev(1, 2, 0), false, t),
            Observation::Report(_)
        ));
        // A worker's kill, unclaimed; much later an unrelated SIGKILL.
        assert!(!b.claim_kill(t + CLAIM_WINDOW + Duration::from_millis(1)));
        // A fresh kill is claimable, once per kill.
        let t2 = t + Duration::from_secs(10);
        assert!(matches!(
            b.observe(ev(2, 3, 0), false, t2),
            Observation::Report(_)
        ));
        assert!(b.claim_kill(t2 + Duration::from_millis(8)));
        assert!(!b.claim_kill(t2 + Duration::from_millis(9)));
    }

    #[test]
    fn only_a_sigkill_or_an_unknown_status_claims_a_kill() {
        let t = Instant::now();
        let mut b = OomBook::default();
        assert!(matches!(
            b.observe(ev(2, 2, 0), false, t),
            Observation::Report(_)
        ));
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
    fn group_kills_are_counted_once() {
        let t = Instant::now();
        let mut b = OomBook::default();
        let group = MemoryEvents {
            oom: 1,
            oom_kill: 3,
            oom_group_kill: 1,
            ..MemoryEvents::default()
        };
        assert!(matches!(b.observe(group, false, t), Observation::Report(_)));
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
