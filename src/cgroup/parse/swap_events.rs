//! `memory.swap.events` (cgroup v2): swap event counters of a memory cgroup.
//!
//! Like `memory.events`, the counters only grow and the kernel only says
//! "this file changed", so a monitor reports the increase of each counter
//! ([`SwapEvents::delta`]); missing counters read as 0 (`fail` came in 5.7)
//! and unknown keys are ignored.

use super::{flat_keyed, parse_u64, set_once, ParseError};

const WHAT: &str = "memory.swap.events";

/// The counters of `memory.swap.events`. Counters the kernel did not print
/// are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SwapEvents {
    /// Swap usage went over `memory.swap.high`.
    pub high: u64,
    /// Swap usage was about to go over `memory.swap.max`, and the swap-out
    /// was refused.
    pub max: u64,
    /// Swapping out failed because the system ran out of swap space or the
    /// cgroup reached `memory.swap.max`.
    pub fail: u64,
}

impl SwapEvents {
    /// How much each counter grew since `baseline`, saturating at 0.
    ///
    /// ```
    /// use ctrmon::cgroup::parse::swap_events::SwapEvents;
    /// let before = SwapEvents { max: 2, ..Default::default() };
    /// let after = SwapEvents { max: 5, fail: 5, ..Default::default() };
    /// assert_eq!(after.delta(&before), SwapEvents { max: 3, fail: 5, high: 0 });
    /// ```
    pub fn delta(&self, baseline: &SwapEvents) -> SwapEvents {
        SwapEvents {
            high: self.high.saturating_sub(baseline.high),
            max: self.max.saturating_sub(baseline.max),
            fail: self.fail.saturating_sub(baseline.fail),
        }
    }

    /// True when every counter is 0.
    pub fn is_zero(&self) -> bool {
        *self == SwapEvents::default()
    }
}

/// Parses `memory.swap.events`.
///
/// ```
/// let ev = ctrmon::cgroup::parse::swap_events::parse(b"high 0\nmax 7\nfail 7\n").unwrap();
/// assert_eq!((ev.max, ev.fail), (7, 7));
/// ```
pub fn parse(input: &[u8]) -> Result<SwapEvents, ParseError> {
    let mut seen: [Option<u64>; 3] = [None; 3];
    for item in flat_keyed(WHAT, input) {
        let (n, key, value) = item?;
        let slot = match key {
            b"high" => 0,
            b"max" => 1,
            b"fail" => 2,
            _ => continue,
        };
        let v = parse_u64(value).ok_or(ParseError::new(WHAT, n, "value is not a number"))?;
        set_once(&mut seen[slot], v, WHAT, n)?;
    }
    let [high, max, fail] = seen.map(|v| v.unwrap_or(0));
    Ok(SwapEvents { high, max, fail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_file() {
        // Debian's 6.1 in the test guest: a cgroup whose swap.max was hit
        // (`fail` also counts a refusal for lack of swap space).
        let e = parse(b"high 0\nmax 521\nfail 522\n").unwrap();
        assert_eq!(
            e,
            SwapEvents {
                high: 0,
                max: 521,
                fail: 522
            }
        );
    }

    #[test]
    fn unknown_keys_ignored_missing_keys_zero() {
        let e = parse(b"high 3\nmax 1\nnew_counter 9\n").unwrap();
        assert_eq!(
            e,
            SwapEvents {
                high: 3,
                max: 1,
                fail: 0
            }
        );
        assert!(parse(b"").unwrap().is_zero());
    }

    #[test]
    fn delta_saturates() {
        let a = SwapEvents {
            max: 5,
            ..Default::default()
        };
        let b = SwapEvents {
            max: 2,
            fail: 1,
            ..Default::default()
        };
        assert_eq!(
            b.delta(&a),
            SwapEvents {
                fail: 1,
                ..Default::default()
            }
        );
        assert!(a.delta(&a).is_zero());
    }

    #[test]
    fn errors() {
        let e = parse(b"high 0\nmax x\n").unwrap_err();
        assert_eq!((e.line(), e.reason()), (2, "value is not a number"));
        let e = parse(b"fail 1\nfail 2\n").unwrap_err();
        assert_eq!((e.line(), e.reason()), (2, "duplicate key"));
        assert_eq!(parse(b"max\n").unwrap_err().line(), 1);
        assert_eq!(parse(b"max 99999999999999999999").unwrap_err().line(), 1);
    }
}
