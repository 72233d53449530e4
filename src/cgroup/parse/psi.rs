//! Pressure stall information: the PSI files (`/proc/pressure/memory`,
//! `memory.pressure` in a v2 cgroup, …) and the trigger a caller writes to
//! one of them to be woken when a stall threshold is crossed.
//!
//! A trigger is checked here, before it reaches the kernel, because the
//! kernel answers every mistake with a bare `EINVAL`. The checks are the
//! kernel's own (`psi_trigger_create()`): a window of 500 ms to 10 s and a
//! stall of at most the window. One more rule is not checked because it
//! depends on the caller's privileges: without `CAP_SYS_RESOURCE` the window
//! must be a multiple of 2 s ([`PsiTrigger::needs_privilege`] tells); the
//! watcher that writes the trigger turns that `EINVAL` into a clear error.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::{lines, parse_u32, parse_u64, split_once, ParseError};

const WHAT: &str = "pressure file";
const TRIGGER: &str = "PSI trigger";

/// One line of a PSI file. Averages are in hundredths of a percent, exactly
/// as the kernel prints them (`avg10=1.25` is 125).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PsiLine {
    /// Share of the last 10 s stalled, in hundredths of a percent.
    pub avg10: u32,
    /// Share of the last 60 s stalled, in hundredths of a percent.
    pub avg60: u32,
    /// Share of the last 300 s stalled, in hundredths of a percent.
    pub avg300: u32,
    /// Total stall time in microseconds.
    pub total_us: u64,
}

/// The contents of a PSI file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Psi {
    /// Some tasks stalled.
    pub some: PsiLine,
    /// All non-idle tasks stalled at once; absent in `cpu` files of kernels
    /// before 5.13.
    pub full: Option<PsiLine>,
}

/// Parses a PSI file (`some …` and optionally `full …`).
///
/// ```
/// let text = b"some avg10=0.58 avg60=0.75 avg300=0.38 total=1867792\n\
///              full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
/// let psi = ctrmon::cgroup::parse::psi::parse(text).unwrap();
/// assert_eq!(psi.some.avg10, 58);
/// assert_eq!(psi.some.total_us, 1867792);
/// assert_eq!(psi.full.unwrap().total_us, 0);
/// ```
pub fn parse(input: &[u8]) -> Result<Psi, ParseError> {
    let mut some = None;
    let mut full = None;
    for (n, line) in lines(input) {
        let (kind, rest) = split_once(line, b' ').ok_or(ParseError::new(
            WHAT,
            n,
            "expected `some` or `full` and values",
        ))?;
        let slot = match kind {
            b"some" => &mut some,
            b"full" => &mut full,
            _ => {
                return Err(ParseError::new(
                    WHAT,
                    n,
                    "line is neither `some` nor `full`",
                ))
            }
        };
        let parsed = parse_line(rest).map_err(|reason| ParseError::new(WHAT, n, reason))?;
        super::set_once(slot, parsed, WHAT, n)?;
    }
    Ok(Psi {
        some: some.ok_or(ParseError::new(WHAT, 0, "missing `some` line"))?,
        full,
    })
}

fn parse_line(rest: &[u8]) -> Result<PsiLine, &'static str> {
    let mut seen = [None::<u64>; 4];
    for pair in rest.split(|&b| b == b' ') {
        let (key, value) = split_once(pair, b'=').ok_or("expected `key=value`")?;
        let (slot, v) = match key {
            b"avg10" => (0, parse_centi(value)),
            b"avg60" => (1, parse_centi(value)),
            b"avg300" => (2, parse_centi(value)),
            b"total" => (3, parse_u64(value)),
            _ => return Err("unknown key"),
        };
        let v = v.ok_or("value is not a number")?;
        if seen[slot].replace(v).is_some() {
            return Err("duplicate key");
        }
    }
    let [Some(a10), Some(a60), Some(a300), Some(total_us)] = seen else {
        return Err("missing avg10, avg60, avg300 or total");
    };
    let centi = |v: u64| u32::try_from(v).map_err(|_| "average out of range");
    Ok(PsiLine {
        avg10: centi(a10)?,
        avg60: centi(a60)?,
        avg300: centi(a300)?,
        total_us,
    })
}

/// `12.34` as 1234: digits, a dot, exactly two digits.
fn parse_centi(value: &[u8]) -> Option<u64> {
    let (int, frac) = split_once(value, b'.')?;
    if frac.len() != 2 {
        return None;
    }
    parse_u64(int)?
        .checked_mul(100)?
        .checked_add(parse_u64(frac)?)
}

/// Which stall a trigger watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PsiKind {
    /// Some tasks stalled.
    Some,
    /// All non-idle tasks stalled at once.
    Full,
}

/// A validated PSI trigger: wake up when tasks stall for `stall` within any
/// `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PsiTrigger {
    kind: PsiKind,
    stall_us: u32,
    window_us: u32,
}

impl PsiTrigger {
    /// The shortest window the kernel accepts, in microseconds (500 ms).
    pub const MIN_WINDOW_US: u32 = 500_000;
    /// The longest window the kernel accepts, in microseconds (10 s).
    pub const MAX_WINDOW_US: u32 = 10_000_000;
    /// Without `CAP_SYS_RESOURCE` the window must be a multiple of this
    /// (2 s), in microseconds.
    pub const UNPRIVILEGED_WINDOW_STEP_US: u32 = 2_000_000;

    /// Builds a trigger from durations, checking the kernel's limits.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctrmon::cgroup::parse::psi::{PsiKind, PsiTrigger};
    /// let t = PsiTrigger::new(PsiKind::Some, Duration::from_millis(150), Duration::from_secs(2)).unwrap();
    /// assert_eq!(t.to_kernel_string(), "some 150000 2000000");
    /// assert!(PsiTrigger::new(PsiKind::Full, Duration::from_secs(1), Duration::from_secs(20)).is_err());
    /// ```
    pub fn new(kind: PsiKind, stall: Duration, window: Duration) -> Result<Self, ParseError> {
        let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        Self::checked(kind, us(stall), us(window))
    }

    /// Parses a trigger as it would be written to the kernel:
    /// `some|full <stall µs> <window µs>`, words separated by spaces or
    /// tabs, an optional final newline.
    ///
    /// ```
    /// let t: ctrmon::cgroup::parse::psi::PsiTrigger = "full 100000 1000000".parse().unwrap();
    /// assert_eq!(t.window().as_secs(), 1);
    /// assert!(t.needs_privilege()); // 1 s is not a multiple of 2 s
    /// ```
    pub fn parse(input: &[u8]) -> Result<Self, ParseError> {
        let body = input.strip_suffix(b"\n").unwrap_or(input);
        let mut words = body
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let err = |reason| ParseError::new(TRIGGER, 1, reason);
        let kind = match words.next() {
            Some(b"some") => PsiKind::Some,
            Some(b"full") => PsiKind::Full,
            _ => return Err(err("expected `some` or `full` first")),
        };
        let mut number = || {
            words
                .next()
                .ok_or(err("expected `some|full <stall µs> <window µs>`"))
                .and_then(|w| {
                    parse_u32(w).ok_or(err(
                        "stall and window must be whole microseconds below 2^32",
                    ))
                })
        };
        let stall_us = number()?;
        let window_us = number()?;
        if words.next().is_some() {
            return Err(err("trailing words after the window"));
        }
        Self::checked(kind, stall_us, window_us)
    }

    fn checked(kind: PsiKind, stall_us: u32, window_us: u32) -> Result<Self, ParseError> {
        let err = |reason| ParseError::new(TRIGGER, 1, reason);
        if !(Self::MIN_WINDOW_US..=Self::MAX_WINDOW_US).contains(&window_us) {
            return Err(err("window must be between 500 ms and 10 s"));
        }
        if stall_us == 0 {
            return Err(err("stall must be more than 0"));
        }
        if stall_us > window_us {
            return Err(err("stall must not exceed the window"));
        }
        Ok(PsiTrigger {
            kind,
            stall_us,
            window_us,
        })
    }

    /// `some` or `full`.
    pub fn kind(&self) -> PsiKind {
        self.kind
    }

    /// The stall time that fires the trigger.
    pub fn stall(&self) -> Duration {
        Duration::from_micros(self.stall_us.into())
    }

    /// The window the stall is measured over.
    pub fn window(&self) -> Duration {
        Duration::from_micros(self.window_us.into())
    }

    /// True when the kernel will accept this trigger only from a process
    /// with `CAP_SYS_RESOURCE` (the window is not a multiple of 2 s).
    pub fn needs_privilege(&self) -> bool {
        self.window_us % Self::UNPRIVILEGED_WINDOW_STEP_US != 0
    }

    /// The string to write to the PSI file, such as `some 150000 2000000`
    /// (no newline; the kernel accepts either).
    pub fn to_kernel_string(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for PsiTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            PsiKind::Some => "some",
            PsiKind::Full => "full",
        };
        write!(f, "{kind} {} {}", self.stall_us, self.window_us)
    }
}

impl FromStr for PsiTrigger {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        PsiTrigger::parse(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/pressure/cpu` on the development machine.
    const THIS_MACHINE_CPU: &[u8] = b"some avg10=0.58 avg60=0.75 avg300=0.38 total=1867792
full avg10=0.00 avg60=0.00 avg300=0.00 total=0
";

    #[test]
    fn this_machine() {
        let p = parse(THIS_MACHINE_CPU).unwrap();
        assert_eq!(
            p.some,
            PsiLine {
                avg10: 58,
                avg60: 75,
                avg300: 38,
                total_us: 1867792
            }
        );
        assert_eq!(p.full, Some(PsiLine::default()));
    }

    #[test]
    fn some_only_and_full_percentages() {
        let p = parse(b"some avg10=100.00 avg60=12.34 avg300=0.01 total=5").unwrap();
        assert_eq!(
            (p.some.avg10, p.some.avg60, p.some.avg300),
            (10000, 1234, 1)
        );
        assert_eq!(p.full, None);
    }

    #[test]
    fn file_errors() {
        for (input, line) in [
            (&b""[..], 0),
            (b"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", 0),
            (b"some avg10=0.0 avg60=0.00 avg300=0.00 total=0\n", 1),
            (b"some avg10=0.00 avg60=0.00 avg300=0.00\n", 1),
            (b"some avg10=0.00 avg60=0.00 avg300=0.00 total=0 extra=1\n", 1),
            (b"some avg10=0.00 avg10=0.00 avg300=0.00 total=0\n", 1),
            (b"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", 2),
            (b"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nhalf x\n", 2),
            (b"some avg10=0.00  avg60=0.00 avg300=0.00 total=0\n", 1),
            (b"some avg10=99999999999999999.00 avg60=0.00 avg300=0.00 total=0\n", 1),
            (b"some\n", 1),
        ] {
            let e = parse(input).unwrap_err();
            assert_eq!(e.line(), line, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn trigger_round_trip_and_limits() {
        let t = PsiTrigger::parse(b"some 150000 2000000\n").unwrap();
        assert_eq!(t.kind(), PsiKind::Some);
        assert_eq!(t.stall(), Duration::from_millis(150));
        assert_eq!(t.to_kernel_string(), "some 150000 2000000");
        assert!(!t.needs_privilege());
        assert_eq!(PsiTrigger::parse(t.to_kernel_string().as_bytes()), Ok(t));
        let t: PsiTrigger = "full\t500000  500000".parse().unwrap();
        assert!(t.needs_privilege());
        assert!(PsiTrigger::parse(b"some 1 10000000").is_ok());
    }

    #[test]
    fn trigger_errors() {
        for bad in [
            &b""[..],
            b"some",
            b"some 1",
            b"half 1 1000000",
            b"some 0 1000000",
            b"some 1000001 1000000",
            b"some 1000 499999",
            b"some 1000 10000001",
            b"some 1000 1000000 5",
            b"some -1 1000000",
            b"some 1000 4294967296",
            b"SOME 1000 1000000",
            b"some 1000 1000000\n\n",
        ] {
            let e = PsiTrigger::parse(bad).unwrap_err();
            assert_eq!(e.what(), TRIGGER, "{}", String::from_utf8_lossy(bad));
        }
        let long = Duration::from_secs(u64::MAX);
        assert!(PsiTrigger::new(PsiKind::Some, long, long).is_err());
    }
}
