//! Single-value files: `memory.usage_in_bytes`, `memory.limit_in_bytes`
//! (v1), `memory.current`, `memory.max`, `memory.peak` (v2).
//!
//! v2 limits print `max` for "no limit"; v1 prints a huge number instead
//! (`PAGE_COUNTER_MAX` pages), which is returned as it is.

use super::{parse_u64, ParseError};

/// A memory limit as v2 prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max`: no limit.
    Max,
    /// A limit in bytes.
    Bytes(u64),
}

/// Parses a file holding one unsigned decimal number and an optional final
/// newline.
///
/// ```
/// use ctrmon::cgroup::parse::number::parse_u64_file;
/// assert_eq!(parse_u64_file("memory.usage_in_bytes", b"4222976\n").unwrap(), 4222976);
/// ```
pub fn parse_u64_file(what: &'static str, input: &[u8]) -> Result<u64, ParseError> {
    parse_u64(trim(input)).ok_or(ParseError::new(what, 1, "expected one unsigned number"))
}

/// Parses a v2 limit file (`memory.max`, `memory.high`, `memory.swap.max`):
/// `max` or a number of bytes.
///
/// ```
/// use ctrmon::cgroup::parse::number::{parse_limit_file, Limit};
/// assert_eq!(parse_limit_file("memory.max", b"max\n").unwrap(), Limit::Max);
/// assert_eq!(parse_limit_file("memory.max", b"33554432\n").unwrap(), Limit::Bytes(32 << 20));
/// ```
pub fn parse_limit_file(what: &'static str, input: &[u8]) -> Result<Limit, ParseError> {
    match trim(input) {
        b"max" => Ok(Limit::Max),
        digits => parse_u64(digits).map(Limit::Bytes).ok_or(ParseError::new(
            what,
            1,
            "expected `max` or an unsigned number",
        )),
    }
}

fn trim(input: &[u8]) -> &[u8] {
    input.strip_suffix(b"\n").unwrap_or(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64_file("f", b"4222976\n"), Ok(4222976));
        assert_eq!(
            parse_u64_file("f", b"9223372036854771712"),
            Ok(9223372036854771712)
        );
        for bad in [
            &b""[..],
            b"\n",
            b"1\n\n",
            b" 1",
            b"1 ",
            b"-1",
            b"max",
            b"99999999999999999999",
        ] {
            let e = parse_u64_file("memory.usage_in_bytes", bad).unwrap_err();
            assert_eq!(e.what(), "memory.usage_in_bytes");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit_file("f", b"max"), Ok(Limit::Max));
        assert_eq!(parse_limit_file("f", b"0\n"), Ok(Limit::Bytes(0)));
        assert!(parse_limit_file("f", b"MAX\n").is_err());
        assert!(parse_limit_file("f", b"").is_err());
    }
}
