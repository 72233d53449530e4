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
//!   Field 3 is the state (`Z` for a zombie), and field 52, `exit_code`,
//!   a zombie's wait status (Linux 3.5+, shown only with ptrace read
//!   access).

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
    decimal(stat_field(stat, 22)?)
}

/// The wait status a zombie's `stat` file holds (field 52, `exit_code`,
/// Linux 3.5+), when field 3 says it is a zombie (`Z`); `None` for a live
/// process, a short (pre-3.5) or malformed line.
///
/// The kernel prints 0 in place of the status to a reader without ptrace
/// read access to the process, so a 0 proves nothing by itself.
///
/// ```
/// use ctrmon::reaper::proc::zombie_exit_code;
/// let mut stat = b"77 (x) Z 1".to_vec();
/// for _ in 5..=51 { stat.extend_from_slice(b" 0"); }
/// stat.extend_from_slice(b" 1792\n");
/// assert_eq!(zombie_exit_code(&stat), Some(7 << 8));
/// ```
pub fn zombie_exit_code(stat: &[u8]) -> Option<i32> {
    if stat_field(stat, 3)? != b"Z" {
        return None;
    }
    i32::try_from(decimal(stat_field(stat, 52)?)?).ok()
}

/// Field `n` (1-based, from 3 on) of a `stat` line. The fields are
/// counted from the *last* `)`: the name before it may hold anything,
/// spaces and `)` included; what follows is the kernel's numbers.
fn stat_field(stat: &[u8], n: usize) -> Option<&[u8]> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let word = stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .nth(n.checked_sub(3)?)?;
    Some(word.strip_suffix(b"\n").unwrap_or(word))
}

/// A non-negative decimal that fits a `u64`.
fn decimal(word: &[u8]) -> Option<u64> {
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

    fn zombie_line(name: &str, state: &str, code: &str) -> Vec<u8> {
        let mut stat = format!("4242 ({name}) {state} 1").into_bytes();
        for field in 5..=51 {
            stat.extend_from_slice(format!(" {field}").as_bytes());
        }
        stat.extend_from_slice(format!(" {code}\n").as_bytes());
        stat
    }

    #[test]
    fn zombie_exit_codes_parse() {
        assert_eq!(
            zombie_exit_code(&zombie_line("sh", "Z", "1792")),
            Some(1792)
        );
        assert_eq!(zombie_exit_code(&zombie_line("sh", "Z", "9")), Some(9));
        assert_eq!(zombie_exit_code(&zombie_line("sh", "Z", "0")), Some(0));
        // The name may pretend to be the fields that follow it.
        let liar = zombie_line("a) Z 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 256", "S", "0");
        assert_eq!(zombie_exit_code(&liar), None);
        let liar = zombie_line("x) S (", "Z", "2304");
        assert_eq!(zombie_exit_code(&liar), Some(2304));
        // Not a zombie, no field 52 (before 3.5), junk, overflow.
        assert_eq!(zombie_exit_code(&zombie_line("sh", "S", "0")), None);
        assert_eq!(zombie_exit_code(b"4242 (sh) Z 1 2 3\n"), None);
        assert_eq!(zombie_exit_code(&zombie_line("sh", "Z", "-1")), None);
        assert_eq!(
            zombie_exit_code(&zombie_line("sh", "Z", "2147483648")),
            None
        );
        assert_eq!(zombie_exit_code(&zombie_line("sh", "Z", "")), None);
        assert_eq!(zombie_exit_code(b""), None);
        assert_eq!(zombie_exit_code(b")"), None);
        assert_eq!(zombie_exit_code(b"no parenthesis Z"), None);
        // Extra fields after 52 (newer kernels) do not matter.
        let mut longer = zombie_line("sh", "Z", "256");
        longer.pop();
        longer.extend_from_slice(b" 5 6\n");
        assert_eq!(zombie_exit_code(&longer), Some(256));
    }

    #[test]
    fn this_process_stat_is_not_a_zombies() {
        let stat = std::fs::read("/proc/self/stat").unwrap();
        assert!(start_time(&stat).is_some());
        assert_eq!(zombie_exit_code(&stat), None);
    }

    #[test]
    fn this_thread_status_parses() {
        let status = std::fs::read("/proc/thread-self/status").unwrap();
        assert!(signal_blocked(&status, 17).is_some());
    }
}
