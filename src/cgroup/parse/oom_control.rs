//! `memory.oom_control` (cgroup v1): the OOM state of a memory cgroup.
//!
//! The monitor registers an eventfd on this file and reads it again when
//! the eventfd fires, because the eventfd also fires when the cgroup is
//! removed: only a rise of `oom_kill` proves a kill. `oom_kill` appeared in
//! Linux 4.13, so it is optional here. Unknown keys are ignored so that a
//! newer kernel does not break an older monitor.

use super::{flat_keyed, parse_u64, set_once, ParseError};

const WHAT: &str = "memory.oom_control";

/// The contents of a v1 `memory.oom_control` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OomControl {
    /// The OOM killer is disabled for this cgroup (tasks wait instead).
    pub oom_kill_disable: bool,
    /// The cgroup is under OOM right now.
    pub under_oom: bool,
    /// How many processes the OOM killer killed in this cgroup (not its
    /// descendants); `None` on kernels before 4.13.
    pub oom_kill: Option<u64>,
}

/// Parses `memory.oom_control`.
///
/// ```
/// let text = b"oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
/// let oom = ctrmon::cgroup::parse::oom_control::parse(text).unwrap();
/// assert_eq!(oom.oom_kill, Some(2));
/// assert!(!oom.under_oom);
/// ```
pub fn parse(input: &[u8]) -> Result<OomControl, ParseError> {
    let mut disable = None;
    let mut under = None;
    let mut kill = None;
    for item in flat_keyed(WHAT, input) {
        let (n, key, value) = item?;
        let bad = || ParseError::new(WHAT, n, "value is not a number");
        match key {
            b"oom_kill_disable" => {
                set_once(&mut disable, parse_bool(value).ok_or_else(bad)?, WHAT, n)?
            }
            b"under_oom" => set_once(&mut under, parse_bool(value).ok_or_else(bad)?, WHAT, n)?,
            b"oom_kill" => set_once(&mut kill, parse_u64(value).ok_or_else(bad)?, WHAT, n)?,
            _ => {}
        }
    }
    Ok(OomControl {
        oom_kill_disable: disable.ok_or(ParseError::new(
            WHAT,
            0,
            "missing key oom_kill_disable",
        ))?,
        under_oom: under.ok_or(ParseError::new(WHAT, 0, "missing key under_oom"))?,
        oom_kill: kill,
    })
}

/// `0` or `1`; the kernel prints these flags as numbers.
fn parse_bool(value: &[u8]) -> Option<bool> {
    match value {
        b"0" => Some(false),
        b"1" => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine() {
        let text = b"oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";
        assert_eq!(
            parse(text).unwrap(),
            OomControl {
                oom_kill_disable: false,
                under_oom: false,
                oom_kill: Some(0)
            }
        );
    }

    #[test]
    fn old_kernel_without_oom_kill_and_unknown_keys() {
        let text = b"oom_kill_disable 1\nunder_oom 1\nfuture_key 17\n";
        let o = parse(text).unwrap();
        assert!(o.oom_kill_disable && o.under_oom);
        assert_eq!(o.oom_kill, None);
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse(b"").unwrap_err().reason(),
            "missing key oom_kill_disable"
        );
        assert_eq!(
            parse(b"oom_kill_disable 0\n").unwrap_err().reason(),
            "missing key under_oom"
        );
        let e = parse(b"oom_kill_disable 2\nunder_oom 0\n").unwrap_err();
        assert_eq!((e.line(), e.reason()), (1, "value is not a number"));
        let e = parse(b"oom_kill_disable 0\nunder_oom 0\noom_kill -1\n").unwrap_err();
        assert_eq!(e.line(), 3);
        let e = parse(b"oom_kill_disable 0\nunder_oom 0\nunder_oom 1\n").unwrap_err();
        assert_eq!((e.line(), e.reason()), (3, "duplicate key"));
        let e = parse(b"oom_kill_disable 0\nunder_oom").unwrap_err();
        assert_eq!((e.line(), e.reason()), (2, "expected `key value`"));
    }
}
