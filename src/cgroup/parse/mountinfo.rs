//! `/proc/<pid>/mountinfo`: where each filesystem is mounted, and which part
//! of it.
//!
//! The format (proc(5)) is
//! `id parent major:minor root mount-point options [optional…] - fstype source super-options`.
//! The number of optional fields varies, so they end at a lone `-` field.
//! Fields are separated by exactly one space and may be empty (a mount whose
//! source is the empty string shows two spaces in a row), so the line is
//! split on single spaces, never on runs of whitespace. Paths and other
//! strings are octal-escaped; this parser returns them raw and decodes them
//! on request through [`super::escape::unescape`], so a file with no escapes
//! costs no allocation.
//!
//! For cgroups the `root` field matters: it is the part of the hierarchy
//! that is mounted at the mount point (`/` for a whole hierarchy, a sub-path
//! such as `/docker/abc` inside a container that bind-mounts its own
//! cgroup), relative to the reader's cgroup namespace.

use std::borrow::Cow;

use super::escape::unescape;
use super::{lines, parse_u32, split_once, ParseError};

const WHAT: &str = "/proc/<pid>/mountinfo";

/// One line of mountinfo. String fields are raw (still escaped); the
/// accessors of the same name without `_raw` decode them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MountEntry<'a> {
    /// The mount's unique id.
    pub mount_id: u32,
    /// The id of the parent mount (itself for the root of the tree).
    pub parent_id: u32,
    /// The major device number of `st_dev`.
    pub major: u32,
    /// The minor device number of `st_dev`.
    pub minor: u32,
    /// The mounted part of the filesystem, escaped.
    pub root_raw: &'a [u8],
    /// Where it is mounted, escaped.
    pub mount_point_raw: &'a [u8],
    /// Per-mount options (`rw,relatime`), escaped.
    pub mount_options_raw: &'a [u8],
    /// The optional fields (`shared:1 master:2`), space-separated, possibly
    /// empty.
    pub optional_raw: &'a [u8],
    /// The filesystem type (`cgroup`, `cgroup2`, `fuse.sshfs`), escaped.
    pub fs_type_raw: &'a [u8],
    /// The mount source, escaped; may be empty.
    pub source_raw: &'a [u8],
    /// Per-superblock options (`rw,memory`), escaped.
    pub super_options_raw: &'a [u8],
}

impl<'a> MountEntry<'a> {
    /// The mounted part of the filesystem, decoded.
    pub fn root(&self) -> Cow<'a, [u8]> {
        unescape(self.root_raw)
    }

    /// The mount point, decoded.
    pub fn mount_point(&self) -> Cow<'a, [u8]> {
        unescape(self.mount_point_raw)
    }

    /// The filesystem type, decoded.
    pub fn fs_type(&self) -> Cow<'a, [u8]> {
        unescape(self.fs_type_raw)
    }

    /// The mount source, decoded.
    pub fn source(&self) -> Cow<'a, [u8]> {
        unescape(self.source_raw)
    }

    /// The optional fields one by one (`shared:1`, `master:2`, …).
    pub fn optional_fields(&self) -> impl Iterator<Item = &'a [u8]> {
        self.optional_raw
            .split(|&b| b == b' ')
            .filter(|f| !f.is_empty())
    }

    /// The super options one by one, still escaped (cgroup controller
    /// names never need escaping).
    pub fn super_options(&self) -> impl Iterator<Item = &'a [u8]> {
        self.super_options_raw.split(|&b| b == b',')
    }

    /// True when `option` (such as `b"memory"`) is one of the super options.
    pub fn has_super_option(&self, option: &[u8]) -> bool {
        self.super_options().any(|o| o == option)
    }
}

/// A validated mountinfo file, borrowed from the input.
#[derive(Debug, Clone, Copy)]
pub struct MountInfo<'a> {
    input: &'a [u8],
}

/// Parses `/proc/<pid>/mountinfo`. Every line must be well formed.
///
/// ```
/// let line = br"35 31 0:32 / /sys/fs/cgroup/my\040memory rw,relatime - cgroup cgroup rw,memory";
/// let info = ctrmon::cgroup::parse::mountinfo::parse(line).unwrap();
/// let m = info.entries().next().unwrap();
/// assert_eq!(&*m.mount_point(), b"/sys/fs/cgroup/my memory");
/// assert_eq!(&*m.fs_type(), b"cgroup");
/// assert!(m.has_super_option(b"memory"));
/// ```
pub fn parse(input: &[u8]) -> Result<MountInfo<'_>, ParseError> {
    for (n, line) in lines(input) {
        parse_line(line).map_err(|reason| ParseError::new(WHAT, n, reason))?;
    }
    Ok(MountInfo { input })
}

impl<'a> MountInfo<'a> {
    /// The mounts in file order (mount order: a later mount on the same
    /// mount point hides an earlier one).
    pub fn entries(&self) -> impl Iterator<Item = MountEntry<'a>> {
        lines(self.input).filter_map(|(_, line)| parse_line(line).ok())
    }
}

/// Takes the next single-space-separated field.
fn field<'a>(rest: &mut &'a [u8], missing: &'static str) -> Result<&'a [u8], &'static str> {
    match split_once(rest, b' ') {
        Some((f, tail)) => {
            *rest = tail;
            Ok(f)
        }
        None => Err(missing),
    }
}

fn parse_line(line: &[u8]) -> Result<MountEntry<'_>, &'static str> {
    let mut rest = line;
    let mount_id =
        parse_u32(field(&mut rest, "missing fields")?).ok_or("mount id is not a number")?;
    let parent_id =
        parse_u32(field(&mut rest, "missing fields")?).ok_or("parent id is not a number")?;
    let dev = field(&mut rest, "missing fields")?;
    let (major, minor) = split_once(dev, b':').ok_or("device is not major:minor")?;
    let major = parse_u32(major).ok_or("device is not major:minor")?;
    let minor = parse_u32(minor).ok_or("device is not major:minor")?;
    let root_raw = field(&mut rest, "missing fields")?;
    let mount_point_raw = field(&mut rest, "missing fields")?;
    if root_raw.is_empty() || mount_point_raw.is_empty() {
        return Err("empty root or mount point");
    }
    // The options field is followed by at least the separator.
    let mount_options_raw = field(&mut rest, "missing ' - ' separator")?;

    // Optional fields run up to a lone "-". `rest` now starts with them.
    let sep = find_separator(rest).ok_or("missing ' - ' separator")?;
    let optional_raw = rest[..sep].strip_suffix(b" ").unwrap_or(&rest[..sep]);
    let mut tail = &rest[sep + 1..];
    if !tail.starts_with(b" ") {
        return Err("missing fields after ' - '");
    }
    tail = &tail[1..];
    let fs_type_raw = field(&mut tail, "missing fields after ' - '")?;
    let source_raw = field(&mut tail, "missing fields after ' - '")?;
    let super_options_raw = tail;
    if fs_type_raw.is_empty() {
        return Err("empty filesystem type");
    }
    if super_options_raw.contains(&b' ') {
        return Err("trailing fields after super options");
    }
    Ok(MountEntry {
        mount_id,
        parent_id,
        major,
        minor,
        root_raw,
        mount_point_raw,
        mount_options_raw,
        optional_raw,
        fs_type_raw,
        source_raw,
        super_options_raw,
    })
}

/// The offset of the first field of `fields` that is exactly `-`.
fn find_separator(fields: &[u8]) -> Option<usize> {
    let mut start = 0;
    loop {
        let end = fields[start..]
            .iter()
            .position(|&b| b == b' ')
            .map_or(fields.len(), |i| start + i);
        if &fields[start..end] == b"-" {
            return Some(start);
        }
        if end == fields.len() {
            return None;
        }
        start = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/self/mountinfo` on the development machine.
    pub(crate) const THIS_MACHINE: &[u8] = b"\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12358300k,nr_inodes=3089575,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24731708k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
28 27 0:25 / /mnt/sandboxing/model_tools_env/v1/python ro,nosuid,nodev,relatime - tmpfs model_tools_unavailable ro,size=4k,mode=755
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24731708k
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn this_machine() {
        let info = parse(THIS_MACHINE).unwrap();
        assert_eq!(info.entries().count(), 20);
        let mem: Vec<_> = info
            .entries()
            .filter(|m| &*m.fs_type() == b"cgroup" && m.has_super_option(b"memory"))
            .collect();
        assert_eq!(mem.len(), 1);
        assert_eq!(mem[0].mount_id, 35);
        assert_eq!(mem[0].parent_id, 31);
        assert_eq!((mem[0].major, mem[0].minor), (0, 32));
        assert_eq!(&*mem[0].root(), b"/");
        assert_eq!(&*mem[0].mount_point(), b"/sys/fs/cgroup/memory");
        assert_eq!(mem[0].mount_options_raw, b"rw,relatime");
        assert_eq!(mem[0].optional_raw, b"");
        assert_eq!(&*mem[0].source(), b"cgroup");
        let v2 = info.entries().last().unwrap();
        assert_eq!(&*v2.fs_type(), b"cgroup2");
        assert_eq!(v2.super_options_raw, b"rw");
    }

    #[test]
    fn optional_fields_up_to_separator() {
        let line = b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue";
        let m = parse(line).unwrap().entries().next().unwrap();
        assert_eq!(m.optional_raw, b"master:1 shared:7");
        assert_eq!(
            m.optional_fields().collect::<Vec<_>>(),
            [&b"master:1"[..], b"shared:7"]
        );
        assert_eq!(&*m.root(), b"/mnt1");
        assert_eq!(&*m.mount_point(), b"/mnt2");
        assert_eq!(&*m.fs_type(), b"ext3");
        assert_eq!(&*m.source(), b"/dev/root");
        assert_eq!(
            m.super_options().collect::<Vec<_>>(),
            [&b"rw"[..], b"errors=continue"]
        );
    }

    #[test]
    fn dash_inside_a_field_is_not_the_separator() {
        let line = b"1 2 0:1 /a-b /c-d rw,x-opt tag:-1 - tmpfs - rw";
        let m = parse(line).unwrap().entries().next().unwrap();
        assert_eq!(m.root_raw, b"/a-b");
        assert_eq!(m.optional_raw, b"tag:-1");
        assert_eq!(&*m.source(), b"-");
    }

    #[test]
    fn spaces_tabs_newlines_and_backslashes_in_mount_points() {
        let line = br"50 31 0:40 /a\134b /mnt/with\040space\011tab\012newline rw - cgroup my\040src rw,memory";
        let m = parse(line).unwrap().entries().next().unwrap();
        assert_eq!(&*m.root(), br"/a\b");
        assert_eq!(&*m.mount_point(), b"/mnt/with space\ttab\nnewline");
        assert_eq!(&*m.source(), b"my src");
        let line = br"50 31 0:40 / /mnt/\134040 rw - cgroup2 none rw";
        let m = parse(line).unwrap().entries().next().unwrap();
        assert_eq!(&*m.mount_point(), br"/mnt/\040");
    }

    #[test]
    fn empty_source_shows_two_spaces() {
        let line = b"60 27 0:50 / /mnt rw,relatime - tmpfs  rw";
        let m = parse(line).unwrap().entries().next().unwrap();
        assert_eq!(m.source_raw, b"");
        assert_eq!(m.super_options_raw, b"rw");
    }

    #[test]
    fn container_sub_path_root() {
        let line = b"1203 1190 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:15 - cgroup cgroup rw,memory";
        let m = parse(line).unwrap().entries().next().unwrap();
        assert_eq!(&*m.root(), b"/docker/abc");
    }

    #[test]
    fn nsfs_root_is_not_a_path() {
        let line = b"600 25 0:4 net:[4026532281] /run/netns/x rw shared:5 - nsfs nsfs rw";
        let m = parse(line).unwrap().entries().next().unwrap();
        assert_eq!(m.root_raw, b"net:[4026532281]");
    }

    #[test]
    fn empty_and_truncated() {
        assert_eq!(parse(b"").unwrap().entries().count(), 0);
        let whole = b"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";
        // Every strict prefix that cuts a required field must fail, except
        // those that only shorten the last field.
        let last_field_start = whole.len() - b"rw,memory\n".len();
        for cut in 1..whole.len() - 1 {
            let r = parse(&whole[..cut]);
            if cut >= last_field_start {
                assert!(r.is_ok(), "cut at {cut}");
            } else {
                let e = r.unwrap_err();
                assert_eq!(e.line(), 1, "cut at {cut}");
            }
        }
    }

    #[test]
    fn malformed_lines() {
        for (line, reason) in [
            (&b"x 31 0:32 / / rw - a b c"[..], "mount id is not a number"),
            (b"1 31 032 / / rw - a b c", "device is not major:minor"),
            (b"1 31 0:32 / / rw a b c", "missing ' - ' separator"),
            (b"1 31 0:32 / / rw -", "missing fields after ' - '"),
            (b"1 31 0:32 / / rw - a", "missing fields after ' - '"),
            (b"1 31 0:32  / rw - a b c", "empty root or mount point"),
            (b"1 31 0:32 / / rw -  b c", "empty filesystem type"),
            (
                b"1 31 0:32 / / rw - a b c d",
                "trailing fields after super options",
            ),
        ] {
            let e = parse(line).unwrap_err();
            assert_eq!(e.reason(), reason, "{}", String::from_utf8_lossy(line));
        }
        let e = parse(b"1 1 0:1 / / rw - a b c\n\n").unwrap_err();
        assert_eq!(e.line(), 2);
    }

    #[test]
    fn very_long_line_and_many_optional_fields() {
        let mut line = b"1 1 0:1 / /".to_vec();
        line.extend(std::iter::repeat(b'x').take(1 << 20));
        line.extend_from_slice(b" rw");
        for i in 0..10_000 {
            line.extend_from_slice(format!(" shared:{i}").as_bytes());
        }
        line.extend_from_slice(b" - tmpfs tmpfs rw\n");
        let m = parse(&line).unwrap().entries().next().unwrap();
        assert_eq!(m.mount_point_raw.len(), (1 << 20) + 1);
        assert_eq!(m.optional_fields().count(), 10_000);
    }
}
