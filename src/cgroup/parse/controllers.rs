//! `cgroup.controllers` (cgroup v2): the controllers available in a cgroup.
//!
//! On a hybrid machine a cgroup2 mount can exist without the memory
//! controller (it is bound to the v1 hierarchy instead); this file is how
//! discovery tells the two apart.

/// The controller names in a `cgroup.controllers` (or
/// `cgroup.subtree_control`) file: space-separated words. Never fails; an
/// empty file has no controllers.
///
/// ```
/// use ctrmon::cgroup::parse::controllers::names;
/// assert!(names(b"cpuset cpu io memory pids\n").any(|c| c == b"memory"));
/// assert_eq!(names(b"\n").count(), 0);
/// ```
pub fn names(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    input
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
}

/// True when `controller` is listed.
pub fn contains(input: &[u8], controller: &[u8]) -> bool {
    names(input).any(|c| c == controller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_unified_root_has_no_memory() {
        assert!(!contains(b"hugetlb\n", b"memory"));
        assert!(contains(
            b"cpuset cpu io memory hugetlb pids rdma misc\n",
            b"memory"
        ));
        assert!(!contains(b"memory_x\n", b"memory"));
        assert!(!contains(b"", b"memory"));
    }
}
