//! Pure parsers for the kernel files that describe cgroups.
//!
//! Every parser here takes the bytes of a file and returns a typed value or a
//! [`ParseError`]; none of them does I/O, so they can be fed captured files in
//! tests and arbitrary bytes by the fuzzer. They borrow from the input instead
//! of building vectors, so a hostile or truncated file costs no more memory
//! than the file itself, and they validate everything up front: a parser that
//! returned `Ok` will not fail later while the caller iterates.
//!
//! The kernel's files are byte strings, not UTF-8 (a mount point may contain
//! any byte but `/` and NUL), so paths come back as `&[u8]`; see
//! [`std::os::unix::ffi::OsStrExt`] to turn them into paths.

use std::fmt;

pub mod cgroup_events;
pub mod controllers;
pub mod escape;
pub mod kmsg_oom;
pub mod memory_events;
pub mod mountinfo;
pub mod number;
pub mod oom_control;
pub mod proc_cgroup;
pub mod psi;
pub mod swap_events;

/// Why a cgroup or proc file could not be parsed.
///
/// It names the kind of file (not its path: parsers do no I/O, so the caller
/// that read the file adds the path), the 1-based line (0 when the problem
/// concerns the whole input) and a short reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    what: &'static str,
    line: usize,
    reason: &'static str,
}

impl ParseError {
    pub(crate) const fn new(what: &'static str, line: usize, reason: &'static str) -> Self {
        ParseError { what, line, reason }
    }

    /// The kind of file, such as `"mountinfo"` or `"memory.events"`.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The 1-based line number, or 0 when the problem concerns the whole
    /// input (an empty file, a missing key).
    pub fn line(&self) -> usize {
        self.line
    }

    /// A short reason, such as `"missing ' - ' separator"`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "malformed {}: {}", self.what, self.reason)
        } else {
            write!(
                f,
                "malformed {}: line {}: {}",
                self.what, self.line, self.reason
            )
        }
    }
}

impl std::error::Error for ParseError {}

/// Splits `input` into `(line number, line)` pairs on `\n`. A final line
/// without its newline is still a line; the empty piece after a final newline
/// is not.
pub(crate) fn lines(input: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    let empty = input.is_empty();
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(move |_| !empty)
}

/// Parses a non-empty run of ASCII digits with no sign, no spaces and no
/// overflow.
pub(crate) fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

/// [`parse_u64`] for values the kernel prints as 32-bit.
pub(crate) fn parse_u32(digits: &[u8]) -> Option<u32> {
    parse_u64(digits).and_then(|n| u32::try_from(n).ok())
}

/// Splits `line` at the first `sep`: `(before, after)`.
pub(crate) fn split_once(line: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = line.iter().position(|&b| b == sep)?;
    Some((&line[..i], &line[i + 1..]))
}

/// Iterates over a flat-keyed file (`key value` per line), as used by
/// `memory.events`, `memory.oom_control` and `cgroup.events`: yields
/// `(line number, key, value)`, or an error for a line without a space or
/// with an empty key.
pub(crate) fn flat_keyed<'a>(
    what: &'static str,
    input: &'a [u8],
) -> impl Iterator<Item = Result<(usize, &'a [u8], &'a [u8]), ParseError>> {
    lines(input).map(move |(n, line)| match split_once(line, b' ') {
        Some((key, value)) if !key.is_empty() => Ok((n, key, value)),
        _ => Err(ParseError::new(what, n, "expected `key value`")),
    })
}

/// Stores `value` into `slot`, failing when the key was already seen.
pub(crate) fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    what: &'static str,
    line: usize,
) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::new(what, line, "duplicate key"));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_handles_missing_and_present_final_newline() {
        let v: Vec<_> = lines(b"a\nb\n").collect();
        assert_eq!(v, [(1, &b"a"[..]), (2, &b"b"[..])]);
        let v: Vec<_> = lines(b"a\nb").collect();
        assert_eq!(v, [(1, &b"a"[..]), (2, &b"b"[..])]);
        assert_eq!(lines(b"").count(), 0);
        let v: Vec<_> = lines(b"\n").collect();
        assert_eq!(v, [(1, &b""[..])]);
        let v: Vec<_> = lines(b"a\n\n").collect();
        assert_eq!(v, [(1, &b"a"[..]), (2, &b""[..])]);
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b"1 "), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
    }

    #[test]
    fn display_names_file_line_and_reason() {
        let e = ParseError::new("mountinfo", 3, "missing ' - ' separator");
        assert_eq!(
            e.to_string(),
            "malformed mountinfo: line 3: missing ' - ' separator"
        );
        let e = ParseError::new("memory.oom_control", 0, "missing key under_oom");
        assert_eq!(
            e.to_string(),
            "malformed memory.oom_control: missing key under_oom"
        );
    }
}
