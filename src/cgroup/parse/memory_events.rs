//! `memory.events` and `memory.events.local` (cgroup v2): event counters of
//! a memory cgroup.
//!
//! The counters only grow, and the kernel's notification just says "this
//! file changed", so a monitor keeps the last value it read and reports the
//! increase of each counter ([`MemoryEvents::delta`]). That is also why a
//! missing counter reads as 0 rather than an error (older kernels lack
//! `oom_group_kill`), and why unknown keys are ignored.

use super::{flat_keyed, parse_u64, set_once, ParseError};

const WHAT: &str = "memory.events";

/// The counters of `memory.events`. Counters the kernel did not print are 0.
///
/// Note that `oom` counts OOM *situations* while `oom_kill` counts
/// processes killed; when the limit sits on a parent, only `oom_kill` may
/// rise in the child, so watch both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct MemoryEvents {
    /// Reclaim below `memory.low` protection.
    pub low: u64,
    /// Usage went over `memory.high` and was throttled.
    pub high: u64,
    /// Usage was about to go over `memory.max`.
    pub max: u64,
    /// The cgroup hit its limit and allocation failed (an OOM situation).
    pub oom: u64,
    /// Processes in the cgroup killed by the OOM killer.
    pub oom_kill: u64,
    /// Times the whole cgroup was killed as a group (`memory.oom.group`).
    pub oom_group_kill: u64,
}

impl MemoryEvents {
    /// How much each counter grew since `baseline`, saturating at 0 (a
    /// counter never shrinks unless the cgroup was replaced by a new one of
    /// the same name).
    ///
    /// ```
    /// use ctrmon::cgroup::parse::memory_events::MemoryEvents;
    /// let before = MemoryEvents { oom: 1, oom_kill: 1, ..Default::default() };
    /// let after = MemoryEvents { oom: 1, oom_kill: 3, ..Default::default() };
    /// let d = after.delta(&before);
    /// assert_eq!((d.oom, d.oom_kill), (0, 2));
    /// assert!(d.any_oom());
    /// ```
    pub fn delta(&self, baseline: &MemoryEvents) -> MemoryEvents {
        MemoryEvents {
            low: self.low.saturating_sub(baseline.low),
            high: self.high.saturating_sub(baseline.high),
            max: self.max.saturating_sub(baseline.max),
            oom: self.oom.saturating_sub(baseline.oom),
            oom_kill: self.oom_kill.saturating_sub(baseline.oom_kill),
            oom_group_kill: self.oom_group_kill.saturating_sub(baseline.oom_group_kill),
        }
    }

    /// True when any of `oom`, `oom_kill`, `oom_group_kill` is non-zero
    /// (on a [`delta`](Self::delta): an OOM happened).
    pub fn any_oom(&self) -> bool {
        self.oom != 0 || self.oom_kill != 0 || self.oom_group_kill != 0
    }

    /// True when every counter is 0.
    pub fn is_zero(&self) -> bool {
        *self == MemoryEvents::default()
    }
}

/// Parses `memory.events` (or `memory.events.local`).
///
/// ```
/// let text = b"low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
/// let ev = ctrmon::cgroup::parse::memory_events::parse(text).unwrap();
/// assert_eq!((ev.max, ev.oom_kill), (12, 1));
/// ```
pub fn parse(input: &[u8]) -> Result<MemoryEvents, ParseError> {
    let mut seen: [Option<u64>; 6] = [None; 6];
    for item in flat_keyed(WHAT, input) {
        let (n, key, value) = item?;
        let slot = match key {
            b"low" => 0,
            b"high" => 1,
            b"max" => 2,
            b"oom" => 3,
            b"oom_kill" => 4,
            b"oom_group_kill" => 5,
            _ => continue,
        };
        let v = parse_u64(value).ok_or(ParseError::new(WHAT, n, "value is not a number"))?;
        set_once(&mut seen[slot], v, WHAT, n)?;
    }
    let [low, high, max, oom, oom_kill, oom_group_kill] = seen.map(|v| v.unwrap_or(0));
    Ok(MemoryEvents {
        low,
        high,
        max,
        oom,
        oom_kill,
        oom_group_kill,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file() {
        let text = b"low 1\nhigh 2\nmax 3\noom 4\noom_kill 5\noom_group_kill 6\n";
        let e = parse(text).unwrap();
        assert_eq!(
            e,
            MemoryEvents {
                low: 1,
                high: 2,
                max: 3,
                oom: 4,
                oom_kill: 5,
                oom_group_kill: 6
            }
        );
    }

    #[test]
    fn unknown_keys_ignored_missing_keys_zero() {
        let text = b"low 0\nhigh 0\nmax 0\noom 0\noom_kill 7\nsock_throttled 99\nfuture thing x\n";
        let e = parse(text).unwrap();
        assert_eq!(e.oom_kill, 7);
        assert_eq!(e.oom_group_kill, 0);
        assert!(parse(b"").unwrap().is_zero());
    }

    #[test]
    fn delta_saturates() {
        let a = MemoryEvents {
            oom: 5,
            ..Default::default()
        };
        let b = MemoryEvents {
            oom: 2,
            max: 9,
            ..Default::default()
        };
        assert_eq!(
            b.delta(&a),
            MemoryEvents {
                max: 9,
                ..Default::default()
            }
        );
        assert!(!b.delta(&a).any_oom());
        assert!(a.delta(&a).is_zero());
    }

    #[test]
    fn errors() {
        let e = parse(b"low 0\noom x\n").unwrap_err();
        assert_eq!((e.line(), e.reason()), (2, "value is not a number"));
        let e = parse(b"oom 1\noom 2\n").unwrap_err();
        assert_eq!((e.line(), e.reason()), (2, "duplicate key"));
        let e = parse(b"oom\n").unwrap_err();
        assert_eq!(e.line(), 1);
        assert_eq!(parse(b"oom 99999999999999999999").unwrap_err().line(), 1);
    }
}
