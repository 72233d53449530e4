//! `/proc/<pid>/cgroup`: which cgroup a process is in, per hierarchy.
//!
//! Each line is `hierarchy-id:controllers:path`. Cgroup v1 hierarchies have
//! a non-zero id and a comma-separated controller list (which may end in a
//! `name=…` for named hierarchies such as `name=systemd`); the cgroup v2
//! hierarchy is the single line `0::/path`. A hybrid machine has both.
//!
//! The path is not escaped and may itself contain `:`, so a line is split on
//! its first two colons only. On v2 the kernel appends ` (deleted)` when the
//! cgroup has been removed; that suffix is stripped and reported separately
//! (a cgroup really named `x (deleted)` is indistinguishable, as in the
//! kernel's own output). The path is relative to the reader's cgroup
//! namespace and may start with `/..` when the process is outside it.

use super::{lines, parse_u32, split_once, ParseError};

const WHAT: &str = "/proc/<pid>/cgroup";
const DELETED: &[u8] = b" (deleted)";

/// One line of `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CgroupEntry<'a> {
    /// The hierarchy id: 0 for cgroup v2, the v1 hierarchy number otherwise.
    pub hierarchy_id: u32,
    /// The raw controller list, such as `cpu,cpuacct` or `name=systemd`;
    /// empty on the v2 line.
    pub controllers: &'a [u8],
    /// The cgroup's path relative to the reader's cgroup namespace root,
    /// without a ` (deleted)` suffix. Always starts with `/`.
    pub path: &'a [u8],
    /// The kernel marked the cgroup ` (deleted)`: it has been removed.
    pub deleted: bool,
}

impl<'a> CgroupEntry<'a> {
    /// True for the cgroup v2 line (`0::/path`).
    pub fn is_unified(&self) -> bool {
        self.hierarchy_id == 0 && self.controllers.is_empty()
    }

    /// The controllers (and `name=…` entries) of this hierarchy, one by one.
    pub fn controller_names(&self) -> impl Iterator<Item = &'a [u8]> {
        self.controllers
            .split(|&b| b == b',')
            .filter(|c| !c.is_empty())
    }

    /// True when `controller` (such as `b"memory"`) is bound to this
    /// hierarchy.
    pub fn has_controller(&self, controller: &[u8]) -> bool {
        self.controller_names().any(|c| c == controller)
    }
}

/// A validated `/proc/<pid>/cgroup` file, borrowed from the input.
#[derive(Debug, Clone, Copy)]
pub struct ProcCgroup<'a> {
    input: &'a [u8],
}

/// Parses `/proc/<pid>/cgroup`.
///
/// Every line must be well formed; an empty file is valid and has no
/// entries.
///
/// ```
/// let text = b"4:memory:/process_api/63b6\n1:cpu:/\n0::/\n";
/// let file = ctrmon::cgroup::parse::proc_cgroup::parse(text).unwrap();
/// assert_eq!(file.memory_v1().unwrap().path, b"/process_api/63b6");
/// assert_eq!(file.unified().unwrap().path, b"/");
/// ```
pub fn parse(input: &[u8]) -> Result<ProcCgroup<'_>, ParseError> {
    for (n, line) in lines(input) {
        parse_line(line).map_err(|reason| ParseError::new(WHAT, n, reason))?;
    }
    Ok(ProcCgroup { input })
}

impl<'a> ProcCgroup<'a> {
    /// The entries in file order.
    pub fn entries(&self) -> impl Iterator<Item = CgroupEntry<'a>> {
        lines(self.input).filter_map(|(_, line)| parse_line(line).ok())
    }

    /// The v1 hierarchy that has the `memory` controller, if any.
    pub fn memory_v1(&self) -> Option<CgroupEntry<'a>> {
        self.entries()
            .find(|e| !e.is_unified() && e.has_controller(b"memory"))
    }

    /// The cgroup v2 line (`0::/path`), if any.
    pub fn unified(&self) -> Option<CgroupEntry<'a>> {
        self.entries().find(CgroupEntry::is_unified)
    }
}

fn parse_line(line: &[u8]) -> Result<CgroupEntry<'_>, &'static str> {
    let (id, rest) = split_once(line, b':').ok_or("expected `id:controllers:path`")?;
    let (controllers, path) = split_once(rest, b':').ok_or("expected `id:controllers:path`")?;
    let hierarchy_id = parse_u32(id).ok_or("hierarchy id is not a number")?;
    if hierarchy_id != 0 && controllers.is_empty() {
        return Err("v1 hierarchy without controllers");
    }
    let (path, deleted) = match path.strip_suffix(DELETED) {
        Some(p) => (p, true),
        None => (path, false),
    };
    if !path.starts_with(b"/") {
        return Err("path does not start with '/'");
    }
    Ok(CgroupEntry {
        hierarchy_id,
        controllers,
        path,
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/self/cgroup` on the development machine (hybrid: v1 memory,
    /// v2 without controllers).
    const THIS_MACHINE: &[u8] = b"9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/63b67ac404c3c078898b70a2847731ba
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn this_machine_hybrid() {
        let f = parse(THIS_MACHINE).unwrap();
        assert_eq!(f.entries().count(), 10);
        let mem = f.memory_v1().unwrap();
        assert_eq!(mem.hierarchy_id, 4);
        assert_eq!(mem.path, b"/process_api/63b67ac404c3c078898b70a2847731ba");
        assert!(!mem.deleted);
        let v2 = f.unified().unwrap();
        assert_eq!(v2.path, b"/");
        let systemd = f.entries().next().unwrap();
        assert!(systemd.has_controller(b"name=systemd"));
        assert!(!systemd.is_unified());
    }

    #[test]
    fn v2_only_and_v1_only() {
        let f = parse(b"0::/user.slice/user-1000.slice/session-2.scope\n").unwrap();
        assert!(f.memory_v1().is_none());
        assert_eq!(
            f.unified().unwrap().path,
            b"/user.slice/user-1000.slice/session-2.scope"
        );
        let f = parse(b"11:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n").unwrap();
        assert!(f.unified().is_none());
        assert_eq!(f.memory_v1().unwrap().path, b"/docker/abc");
        let cpu = f.entries().nth(1).unwrap();
        assert_eq!(
            cpu.controller_names().collect::<Vec<_>>(),
            [&b"cpu"[..], b"cpuacct"]
        );
    }

    #[test]
    fn memory_must_be_a_whole_controller_name() {
        let f = parse(b"3:memory_tiering,notmemory:/x\n").unwrap();
        assert!(f.memory_v1().is_none());
        let f = parse(b"3:cpu,name=memory:/x\n").unwrap();
        assert!(f.memory_v1().is_none());
        let f = parse(b"3:cpu,memory,name=foo:/x\n").unwrap();
        assert_eq!(f.memory_v1().unwrap().hierarchy_id, 3);
    }

    #[test]
    fn colons_in_paths_split_on_first_two_only() {
        let f = parse(b"0::/a:b:c\n5:memory:/x:y\n").unwrap();
        assert_eq!(f.unified().unwrap().path, b"/a:b:c");
        assert_eq!(f.memory_v1().unwrap().path, b"/x:y");
    }

    #[test]
    fn deleted_suffix() {
        let f = parse(b"0::/system.slice/gone.scope (deleted)\n").unwrap();
        let e = f.unified().unwrap();
        assert!(e.deleted);
        assert_eq!(e.path, b"/system.slice/gone.scope");
    }

    #[test]
    fn namespace_relative_paths_keep_dotdot() {
        let f = parse(b"0::/../../sibling\n").unwrap();
        assert_eq!(f.unified().unwrap().path, b"/../../sibling");
    }

    #[test]
    fn empty_and_final_line_without_newline() {
        assert_eq!(parse(b"").unwrap().entries().count(), 0);
        let f = parse(b"0::/a").unwrap();
        assert_eq!(f.unified().unwrap().path, b"/a");
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (input, line) in [
            (&b"4:memory"[..], 1),     // truncated
            (b"0::/\n4:mem", 2),       // truncated second line
            (b"x:memory:/", 1),        // id not a number
            (b"4::/", 1),              // v1 without controllers
            (b"4:memory:relative", 1), // path without '/'
            (b"0::/\n\n1:cpu:/\n", 2), // blank line
            (b"0::", 1),               // empty path
            (b"99999999999:cpu:/", 1), // id overflows u32
        ] {
            let e = parse(input).unwrap_err();
            assert_eq!(e.line(), line, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(e.what(), WHAT);
        }
    }

    #[test]
    fn very_long_line() {
        let mut input = b"0::/".to_vec();
        input.extend(std::iter::repeat(b'a').take(1 << 20));
        input.push(b'\n');
        let f = parse(&input).unwrap();
        assert_eq!(f.unified().unwrap().path.len(), (1 << 20) + 1);
    }
}
