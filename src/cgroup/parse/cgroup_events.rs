//! `cgroup.events` (cgroup v2): whether a cgroup has processes, and whether
//! it is frozen.
//!
//! `populated` going to 0 is how v2 tells that the last process of a
//! container's cgroup is gone, without a pid to watch. `frozen` appeared in
//! Linux 5.2, so it is optional.

use super::{flat_keyed, set_once, ParseError};

const WHAT: &str = "cgroup.events";

/// The contents of `cgroup.events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupEvents {
    /// The cgroup or one of its descendants has a live process.
    pub populated: bool,
    /// The cgroup is frozen; `None` on kernels before 5.2.
    pub frozen: Option<bool>,
}

/// Parses `cgroup.events`. Unknown keys are ignored.
///
/// ```
/// let ev = ctrmon::cgroup::parse::cgroup_events::parse(b"populated 1\nfrozen 0\n").unwrap();
/// assert!(ev.populated);
/// assert_eq!(ev.frozen, Some(false));
/// ```
pub fn parse(input: &[u8]) -> Result<CgroupEvents, ParseError> {
    let mut populated = None;
    let mut frozen = None;
    for item in flat_keyed(WHAT, input) {
        let (n, key, value) = item?;
        let slot = match key {
            b"populated" => &mut populated,
            b"frozen" => &mut frozen,
            _ => continue,
        };
        let v = match value {
            b"0" => false,
            b"1" => true,
            _ => return Err(ParseError::new(WHAT, n, "value is not 0 or 1")),
        };
        set_once(slot, v, WHAT, n)?;
    }
    Ok(CgroupEvents {
        populated: populated.ok_or(ParseError::new(WHAT, 0, "missing key populated"))?,
        frozen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_and_old_kernels() {
        let e = parse(b"populated 0\nfrozen 0\n").unwrap();
        assert_eq!(
            e,
            CgroupEvents {
                populated: false,
                frozen: Some(false)
            }
        );
        let e = parse(b"populated 1\n").unwrap();
        assert_eq!(
            e,
            CgroupEvents {
                populated: true,
                frozen: None
            }
        );
        let e = parse(b"frozen 1\npopulated 1\nnew_key 5").unwrap();
        assert_eq!(e.frozen, Some(true));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"").unwrap_err().reason(), "missing key populated");
        assert_eq!(parse(b"populated 2\n").unwrap_err().line(), 1);
        assert_eq!(
            parse(b"populated 1\npopulated 0\n").unwrap_err().reason(),
            "duplicate key"
        );
        assert_eq!(parse(b"populated\n").unwrap_err().line(), 1);
    }
}
