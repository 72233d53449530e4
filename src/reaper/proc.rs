//! The `/proc` files the orphan reaper and the kernel-log reader read, as
//! pure parsers.
//!
//! - `/proc/self/task/<tid>/children`: the pids of the thread's children,
//!   separated by spaces (`"812 813 "`). Children belong to the thread that
//!   forked them, and orphans to whichever thread the kernel picked, so the
//!   reaper reads the file of every thread.
//! - `/proc/self/task/<tid>/status`: its `SigBlk:` line is the thread's
//!   blocked-signal mask in hex, bit `signo - 1` for each signal.
//! - `/proc/<pid>/stat`: field 22, `starttime`, is when the process started,
//!   in clock ticks (`sysconf(_SC_CLK_TCK)`) since boot on
//!   `CLOCK_BOOTTIME`. Field 2 is the name in parentheses, which may itself
//!   hold spaces and `)`: the fields are counted from the *last* `)`.

/// The pids in a `children` file, in order. Anything that is not a positive
/// decimal number fitting an `i32` is skipped: no panic on any input.
pub fn parse_children(text: &[u8]) -> impl Iterator<Item = i32> + '_ {
    text.split(|b| b.is_ascii_whitespace()).filter_map(|word| {
        if word.is_empty() || word.len() > 10 || !word.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = word.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        i32::try_from(n).ok().filter(|&p| p > 0)
    })
}

/// The `starttime` field of a `stat` file; `None` when malformed.
///
/// ```
/// use ctrmon::reaper::proc::start_time;
/// let stat = b"4242 (a) b (c) S 1 4242 4242 0 -1 4194560 98 0 0 0 0 0 0 0 20 0 1 0 81234 2371584 197 18446744073709551615\n";
/// assert_eq!(start_time(stat), Some(81234));
/// ```
pub fn start_time(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    // Field 3 (state) is the first after the name; starttime is field 22.
    let word = stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .nth(22 - 3)?;
    let word = word.strip_suffix(b"\n").unwrap_or(word);
    if word.is_empty() || word.len() > 20 || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    word.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether the `status` file says `signo` is blocked; `None` when it has no
/// well-formed `SigBlk:` line or `signo` is outside 1..=64.
pub fn signal_blocked(status: &[u8], signo: i32) -> Option<bool> {
    signal_in(status, b"SigBlk:", signo)
}

/// Whether `signo` is in the mask of the `status` file's line `field`
/// (`SigBlk:`, `SigIgn:`...); `None` as for [`signal_blocked`].
pub(crate) fn signal_in(status: &[u8], field: &[u8], signo: i32) -> Option<bool> {
    if !(1..=64).contains(&signo) {
        return None;
    }
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(field))?;
    let hex = line.iter().filter(|b| !b.is_ascii_whitespace());
    let mut digits = 0;
    let mut mask = 0u64;
    for &c in hex {
        digits += 1;
        if digits > 16 {
            return None;
        }
        let d = (c as char).to_digit(16)?;
        mask = (mask << 4) | u64::from(d);
    }
    if digits == 0 {
        return None;
    }
    Some(mask & (1 << (signo - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_lists_parse() {
        let v: Vec<i32> = parse_children(b"812 813 9 ").collect();
        assert_eq!(v, [812, 813, 9]);
        assert_eq!(parse_children(b"").count(), 0);
        assert_eq!(parse_children(b"\n").count(), 0);
        // Garbage, zero, negative, too large: skipped.
        let v: Vec<i32> = parse_children(b"0 -4 x12 2147483648 99999999999999 7\n").collect();
        assert_eq!(v, [7]);
        assert_eq!(
            parse_children(b"2147483647").collect::<Vec<_>>(),
            [i32::MAX]
        );
    }

    #[test]
    fn blocked_masks_parse() {
        let status =
            b"Name:\tx\nSigPnd:\t0000000000000000\nSigBlk:\t0000000000010000\nSigIgn:\t0\n";
        assert_eq!(signal_blocked(status, 17), Some(true));
        assert_eq!(signal_blocked(status, 2), Some(false));
        assert_eq!(
            signal_blocked(b"SigBlk:\tfffffffe7ffbfeff\n", 64),
            Some(true)
        );
        assert_eq!(signal_blocked(b"SigBlk:\tzz\n", 17), None);
        assert_eq!(signal_blocked(b"SigBlk:\t\n", 17), None);
        assert_eq!(signal_blocked(b"SigBlk:\t00000000000000000\n", 17), None);
        assert_eq!(signal_blocked(b"Name: x\n", 17), None);
        assert_eq!(signal_blocked(status, 0), None);
        assert_eq!(signal_blocked(status, 65), None);
    }

    #[test]
    fn this_thread_status_parses() {
        let status = std::fs::read("/proc/thread-self/status").unwrap();
        assert!(signal_blocked(&status, 17).is_some());
    }
}
