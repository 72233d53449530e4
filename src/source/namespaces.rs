//! Whether this process sees the kernel log's numbers as its own: the log
//! names pids of the initial pid namespace, cgroup paths from the
//! hierarchy's root (what the initial cgroup namespace sees), and stamps
//! records on the host's clock.
//!
//! The kernel gives each initial namespace a fixed number
//! (`PROC_*_INIT_INO`, `include/linux/proc_ns.h`, ABI since Linux 3.8),
//! which the link `/proc/self/ns/pid` names (`pid:[4026531836]`), whichever
//! `/proc` is mounted. The link's text, not `stat`'s inode number, is read:
//! on Linux 6.18 (the development machine) `stat` gives another inode
//! number while the link still says `4026531836`. `NSpid:` in `/proc/self/status`
//! lists one pid per level *below the pid namespace of the `/proc` mount*:
//! a container with its own `/proc` sees one field there too, so it is
//! only the fallback when `ns/pid` cannot be read (and more than one field
//! then says "not the initial one" for certain).

const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;
const PROC_CGROUP_INIT_INO: u64 = 0xEFFF_FFFB;
const PROC_TIME_INIT_INO: u64 = 0xEFFF_FFFA;

/// Which of the namespaces that matter to the log are the initial ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Namespaces {
    /// Pids in the log are ours.
    pub(crate) pid: bool,
    /// Cgroup paths in the log are ours (relative to our namespace root).
    pub(crate) cgroup: bool,
    /// Process start times in `/proc` are on the host's clocks.
    pub(crate) time: bool,
}

impl Namespaces {
    /// Reads them for this process. What cannot be read counts as "not
    /// initial" (the log's numbers are then not trusted to be ours), except
    /// the time namespace, which older kernels lack (before 5.6: the
    /// initial one, there being no other).
    pub(crate) fn of_self() -> Namespaces {
        let initial = |name: &str, ino: u64| {
            let link = std::fs::read_link(format!("/proc/self/ns/{name}")).ok()?;
            ns_link_number(link.as_os_str().as_encoded_bytes(), name).map(|n| n == ino)
        };
        Namespaces {
            pid: initial("pid", PROC_PID_INIT_INO).unwrap_or_else(nspid_says_initial),
            cgroup: initial("cgroup", PROC_CGROUP_INIT_INO).unwrap_or(false),
            time: initial("time", PROC_TIME_INIT_INO).unwrap_or(true),
        }
    }
}

/// The number in a namespace link's text: `pid:[4026531836]` for `pid`.
pub(crate) fn ns_link_number(link: &[u8], name: &str) -> Option<u64> {
    let digits = link
        .strip_prefix(name.as_bytes())?
        .strip_prefix(b":[")?
        .strip_suffix(b"]")?;
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn nspid_says_initial() -> bool {
    std::fs::read("/proc/self/status").is_ok_and(|s| nspid_fields(&s) == Some(1))
}

/// How many pids the `NSpid:` line of a `status` file lists.
pub(crate) fn nspid_fields(status: &[u8]) -> Option<usize> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"NSpid:"))?;
    Some(
        line.split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_links_give_their_number() {
        assert_eq!(
            ns_link_number(b"pid:[4026531836]", "pid"),
            Some(PROC_PID_INIT_INO)
        );
        assert_eq!(ns_link_number(b"cgroup:[4026532201]", "pid"), None);
        assert_eq!(ns_link_number(b"pid:[]", "pid"), None);
        assert_eq!(ns_link_number(b"pid:[12x]", "pid"), None);
    }

    #[test]
    fn nspid_counts_levels() {
        assert_eq!(nspid_fields(b"Name:\tsh\nNSpid:\t4242\n"), Some(1));
        assert_eq!(nspid_fields(b"NSpid:\t4242\t1\nNSsid:\t1\n"), Some(2));
        assert_eq!(nspid_fields(b"Name:\tsh\n"), None);
    }

    #[test]
    fn this_test_runs_in_the_initial_namespaces_unless_in_a_container() {
        // The numbers come from the kernel; in CI (root on the host) all
        // three are the initial ones. Elsewhere they must at least agree
        // with `NSpid`: more than one field is never the initial pid ns.
        let ns = Namespaces::of_self();
        let status = std::fs::read("/proc/self/status").unwrap();
        if nspid_fields(&status).unwrap_or(1) > 1 {
            assert!(!ns.pid);
        }
        if std::env::var_os("CTRMON_REQUIRE_CGROUPS").is_some() {
            assert_eq!(
                ns,
                Namespaces {
                    pid: true,
                    cgroup: true,
                    time: true
                }
            );
        }
    }
}
