use super::*;

const HYBRID_CGROUP: &[u8] = b"9:name=systemd:/
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

/// The cgroup mounts of the development machine's mountinfo.
const HYBRID_MOUNTS: &[u8] = b"\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

const V2_ONLY_MOUNTS: &[u8] = b"\
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

fn never(_: &Path) -> bool {
    panic!("v2 controllers must not be consulted here")
}

#[test]
fn hybrid_picks_v1_memory() {
    let loc = locate_in(HYBRID_CGROUP, HYBRID_MOUNTS, never).unwrap();
    assert_eq!(loc.version, CgroupVersion::V1);
    assert_eq!(loc.mount_point, Path::new("/sys/fs/cgroup/memory"));
    assert_eq!(
        loc.cgroup_path,
        Path::new("/process_api/63b67ac404c3c078898b70a2847731ba")
    );
    assert_eq!(
        loc.dir,
        Path::new("/sys/fs/cgroup/memory/process_api/63b67ac404c3c078898b70a2847731ba")
    );
    let up: Vec<_> = loc.dir_and_ancestors().collect();
    assert_eq!(
        up,
        [
            Path::new("/sys/fs/cgroup/memory/process_api/63b67ac404c3c078898b70a2847731ba"),
            Path::new("/sys/fs/cgroup/memory/process_api"),
            Path::new("/sys/fs/cgroup/memory"),
        ]
    );
}

#[test]
fn v2_only() {
    let mut asked = Vec::new();
    let loc = locate_in(b"0::/system.slice/app.service\n", V2_ONLY_MOUNTS, |p| {
        asked.push(p.to_path_buf());
        true
    })
    .unwrap();
    assert_eq!(loc.version, CgroupVersion::V2);
    assert_eq!(
        loc.dir,
        Path::new("/sys/fs/cgroup/system.slice/app.service")
    );
    assert_eq!(asked, [Path::new("/sys/fs/cgroup")]);
}

#[test]
fn hybrid_v2_without_memory_and_no_v1_memory_line() {
    let cgroup = b"1:cpu:/\n0::/x\n";
    let err = locate_in(cgroup, HYBRID_MOUNTS, |_| false).unwrap_err();
    assert!(matches!(err, LocateError::NoMemoryController(_)), "{err}");
    assert!(err.to_string().contains("cgroup.controllers"), "{err}");
}

#[test]
fn hybrid_with_memory_on_v2() {
    let cgroup = b"1:cpu:/\n0::/x\n";
    let loc = locate_in(cgroup, HYBRID_MOUNTS, |p| {
        p == Path::new("/sys/fs/cgroup/unified")
    })
    .unwrap();
    assert_eq!(loc.dir, Path::new("/sys/fs/cgroup/unified/x"));
}

#[test]
fn v1_only() {
    let cgroup =
        b"11:memory:/user.slice\n4:cpu,cpuacct:/user.slice\n1:name=systemd:/user.slice/x\n";
    let mounts = b"\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid shared:10 - cgroup cgroup rw,xattr,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 - cgroup cgroup rw,cpu,cpuacct
35 25 0:32 / /sys/fs/cgroup/memory rw,nosuid shared:19 - cgroup cgroup rw,memory
";
    let loc = locate_in(cgroup, mounts, never).unwrap();
    assert_eq!(loc.dir, Path::new("/sys/fs/cgroup/memory/user.slice"));
}

#[test]
fn missing_memory_controller() {
    let err = locate_in(
        b"4:memory:/a\n",
        b"32 31 0:29 / /c rw - cgroup cgroup rw,cpu\n",
        never,
    )
    .unwrap_err();
    assert!(matches!(err, LocateError::NoMemoryController(_)));
    assert!(err.to_string().contains("not mounted"), "{err}");
    let err = locate_in(
        b"0::/a\n",
        b"32 31 0:29 / /c rw - cgroup cgroup rw,cpu\n",
        never,
    )
    .unwrap_err();
    assert!(err.to_string().contains("cgroup2 is not mounted"), "{err}");
    let err = locate_in(b"1:cpu:/\n", HYBRID_MOUNTS, never).unwrap_err();
    assert!(err.to_string().contains("neither"), "{err}");
    let err = locate_in(b"", HYBRID_MOUNTS, never).unwrap_err();
    assert!(matches!(err, LocateError::NoMemoryController(_)));
}

#[test]
fn container_sub_path_root() {
    // runc without a cgroup namespace bind-mounts the container's own
    // subtree; /proc/self/cgroup still shows the host path.
    let mounts = b"1203 1190 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid master:15 - cgroup cgroup rw,memory\n";
    let loc = locate_in(b"11:memory:/docker/abc\n", mounts, never).unwrap();
    assert_eq!(loc.dir, Path::new("/sys/fs/cgroup/memory"));
    assert_eq!(loc.dir_and_ancestors().count(), 1);
    let loc = locate_in(b"11:memory:/docker/abc/inner/x\n", mounts, never).unwrap();
    assert_eq!(loc.dir, Path::new("/sys/fs/cgroup/memory/inner/x"));
    assert_eq!(loc.dir_and_ancestors().count(), 3);
}

#[test]
fn string_prefix_is_not_path_prefix() {
    let mounts = b"1203 1190 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    let err = locate_in(b"11:memory:/docker/abcdef\n", mounts, never).unwrap_err();
    match &err {
        LocateError::NotVisible {
            cgroup,
            mount_root,
            mount_point,
        } => {
            assert_eq!(cgroup, Path::new("/docker/abcdef"));
            assert_eq!(mount_root, Path::new("/docker/abc"));
            assert_eq!(mount_point, Path::new("/sys/fs/cgroup/memory"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("not visible from this mount namespace"),
        "{err}"
    );
}

#[test]
fn namespace_root_above_the_mounted_subtree_is_not_visible() {
    // A process at the root of its cgroup namespace, with only a subtree of
    // that namespace mounted: the mount point is a descendant of its cgroup,
    // so answering with it would watch the wrong counters.
    let mounts = b"1203 1190 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    let err = locate_in(b"11:memory:/\n", mounts, never).unwrap_err();
    assert!(matches!(err, LocateError::NotVisible { .. }), "{err}");
}

#[test]
fn cgroup_namespace_with_mount_at_its_root() {
    // docker --cgroupns=private: both files are relative to the namespace.
    let mounts = b"700 690 0:30 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw,nsdelegate\n";
    let loc = locate_in(b"0::/\n", mounts, |_| true).unwrap();
    assert_eq!(loc.dir, Path::new("/sys/fs/cgroup"));
    // A process outside the namespace shows `/..`: not under the mount.
    let err = locate_in(b"0::/../other\n", mounts, |_| true).unwrap_err();
    assert!(matches!(err, LocateError::NotVisible { .. }));
}

#[test]
fn mount_from_outside_the_namespace() {
    // A host mount seen from inside a cgroup namespace has a `/..` root;
    // paths are comparable component by component, `..` included.
    let mounts = b"700 690 0:30 /.. /host/cgroup rw - cgroup2 cgroup2 rw\n";
    let loc = locate_in(b"0::/../sibling/x\n", mounts, |_| true).unwrap();
    assert_eq!(loc.dir, Path::new("/host/cgroup/sibling/x"));
}

#[test]
fn deepest_visible_mount_wins_and_overmounts_hide() {
    let mounts = b"\
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
50 27 0:32 /a /mnt/a rw - cgroup cgroup rw,memory
51 27 0:32 /a/b /mnt/ab rw - cgroup cgroup rw,memory
52 27 0:40 / /mnt/ab rw - tmpfs tmpfs rw
";
    let loc = locate_in(b"4:memory:/a/b/c\n", mounts, never).unwrap();
    assert_eq!(loc.dir, Path::new("/mnt/a/b/c"));
    let loc = locate_in(b"4:memory:/z\n", mounts, never).unwrap();
    assert_eq!(loc.dir, Path::new("/sys/fs/cgroup/memory/z"));
}

#[test]
fn escaped_mount_point_and_backslash_in_cgroup_path() {
    let mounts = br"35 31 0:32 /my\040root /mnt/cg\040mem\012x\134040 rw - cgroup cgroup rw,memory
";
    let loc = locate_in(b"4:memory:/my root/a\\b\n", mounts, never).unwrap();
    assert_eq!(loc.mount_point, Path::new("/mnt/cg mem\nx\\040"));
    assert_eq!(loc.dir, Path::new("/mnt/cg mem\nx\\040/a\\b"));
}

#[test]
fn deleted_cgroup() {
    let err = locate_in(b"0::/gone (deleted)\n", V2_ONLY_MOUNTS, |_| true).unwrap_err();
    assert_eq!(err, LocateError::Deleted(PathBuf::from("/gone")));
}

#[test]
fn parse_errors_say_which_file() {
    let err = locate_in(b"4:memory", HYBRID_MOUNTS, never).unwrap_err();
    assert!(matches!(err, LocateError::ProcCgroup(_)));
    assert!(err.to_string().contains("/proc/<pid>/cgroup"), "{err}");
    let err = locate_in(HYBRID_CGROUP, b"35 31 0:32 / /sys", never).unwrap_err();
    assert!(matches!(err, LocateError::Mountinfo(_)));
}

#[test]
fn only_a_hidden_mount_is_not_visible() {
    let mounts = b"\
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
52 31 0:40 / /sys/fs/cgroup/memory rw - tmpfs tmpfs rw
";
    let err = locate_in(b"4:memory:/a\n", mounts, never).unwrap_err();
    assert!(matches!(err, LocateError::NotVisible { .. }), "{err}");
}

#[test]
fn many_mounts_stay_linear() {
    // 50,000 cgroup2 mounts, none with memory: each is considered once.
    let mut mounts = Vec::new();
    for i in 0..50_000 {
        mounts
            .extend_from_slice(format!("{i} 1 0:30 / /m/{i} rw - cgroup2 cgroup2 rw\n").as_bytes());
    }
    // Counted, not timed: each mount is asked about once (timings belong
    // in benchmarks, not tests).
    let mut asked = 0;
    let err = locate_in(b"0::/x\n", &mounts, |_| {
        asked += 1;
        false
    })
    .unwrap_err();
    assert!(matches!(err, LocateError::NoMemoryController(_)));
    assert_eq!(asked, 50_000);
}

#[test]
fn a_victims_path_maps_to_its_directory_on_the_memory_hierarchy() {
    use super::memory_cgroup_dir_in;
    let me_v1 = b"12:memory:/\n0::/user.slice\n";
    let me_v2 = b"0::/user.slice\n";
    let hybrid = b"\
30 25 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
31 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
    // Memory on v1: the v1 mount, never the v2 one beside it.
    assert_eq!(
        memory_cgroup_dir_in(b"/pod/web", me_v1, hybrid).unwrap(),
        Path::new("/sys/fs/cgroup/memory/pod/web")
    );
    // Memory on v2 (no v1 memory line of our own).
    assert_eq!(
        memory_cgroup_dir_in(b"/pod/web", me_v2, hybrid).unwrap(),
        Path::new("/sys/fs/cgroup/unified/pod/web")
    );
    // A subtree bind-mounted elsewhere, and mounted again over it: the
    // deepest visible root wins, component-wise (`/pod/webx` is not under
    // `/pod/web`).
    let nested = b"\
31 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
40 25 0:28 /pod/web /srv/web rw - cgroup cgroup rw,memory
";
    assert_eq!(
        memory_cgroup_dir_in(b"/pod/web/a", me_v1, nested).unwrap(),
        Path::new("/srv/web/a")
    );
    assert_eq!(
        memory_cgroup_dir_in(b"/pod/webx", me_v1, nested).unwrap(),
        Path::new("/sys/fs/cgroup/memory/pod/webx")
    );
    // Only a subtree mounted, the path outside it: unknown, not a guess.
    let only_subtree = b"40 25 0:28 /pod/web /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    assert!(matches!(
        memory_cgroup_dir_in(b"/other", me_v1, only_subtree),
        Err(LocateError::NotVisible { .. })
    ));
    // `..` (a path from outside the namespace) never leaves the mount.
    assert!(memory_cgroup_dir_in(b"/../x", me_v1, hybrid).is_err());
}
