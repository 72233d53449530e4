use super::*;

/// The process: in `/app/worker` on v1 memory, elsewhere on the others.
const CGROUP: &[u8] = b"9:name=systemd:/user.slice
4:memory:/app/worker
2:cpu,cpuacct:/app/worker
0::/user.slice/app
";

/// The cgroup mounts of a hybrid machine, and a second (bind) mount of the
/// memory hierarchy.
const MOUNTS: &[u8] = b"\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
90 23 0:32 /app /mnt/app-memory rw,relatime - cgroup cgroup rw,memory
";

fn find(dirs: &[&str]) -> Option<usize> {
    let dirs: Vec<&Path> = dirs.iter().map(Path::new).collect();
    nearest_containing_in(CGROUP, MOUNTS, &dirs).unwrap()
}

#[test]
fn the_process_own_cgroup() {
    assert_eq!(find(&["/sys/fs/cgroup/memory/app/worker"]), Some(0));
}

#[test]
fn an_ancestor_of_it() {
    assert_eq!(find(&["/sys/fs/cgroup/memory/app"]), Some(0));
    assert_eq!(find(&["/sys/fs/cgroup/memory"]), Some(0));
}

#[test]
fn none_that_holds_it() {
    assert_eq!(find(&[]), None);
    // A sibling, a child of its cgroup, and a string prefix that is not a
    // path prefix (`/app/work` is not above `/app/worker`).
    assert_eq!(
        find(&[
            "/sys/fs/cgroup/memory/other",
            "/sys/fs/cgroup/memory/app/worker/sub",
            "/sys/fs/cgroup/memory/app/work",
            "/sys/fs/cgroup/memory/ap",
        ]),
        None
    );
}

#[test]
fn the_nearest_of_nested_ones_whatever_the_order() {
    let nested = [
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/memory/app/worker",
        "/sys/fs/cgroup/memory/app",
    ];
    assert_eq!(find(&nested), Some(1));
    let reversed: Vec<&str> = nested.iter().rev().copied().collect();
    assert_eq!(find(&reversed), Some(1));
    // The same directory twice: the first.
    assert_eq!(
        find(&["/sys/fs/cgroup/memory/app", "/sys/fs/cgroup/memory/app"]),
        Some(0)
    );
}

#[test]
fn through_another_mount_of_the_hierarchy() {
    // `/mnt/app-memory` is `/app` of the memory hierarchy.
    assert_eq!(find(&["/mnt/app-memory"]), Some(0));
    assert_eq!(find(&["/mnt/app-memory/worker"]), Some(0));
    assert_eq!(find(&["/mnt/app-memory/app/worker"]), None);
    // Deeper through the bind mount beats shallower through the main one.
    assert_eq!(
        find(&["/sys/fs/cgroup/memory/app", "/mnt/app-memory/worker"]),
        Some(1)
    );
}

#[test]
fn each_hierarchy_by_its_own_line() {
    assert_eq!(find(&["/sys/fs/cgroup/cpu,cpuacct/app/worker"]), Some(0));
    assert_eq!(find(&["/sys/fs/cgroup/systemd/user.slice"]), Some(0));
    assert_eq!(find(&["/sys/fs/cgroup/unified/user.slice/app"]), Some(0));
    // The memory path on v2, the v2 path on v1: not the process's cgroup.
    assert_eq!(find(&["/sys/fs/cgroup/unified/app/worker"]), None);
    assert_eq!(find(&["/sys/fs/cgroup/memory/user.slice"]), None);
}

#[test]
fn directories_off_the_cgroup_mounts_hold_nothing() {
    // The tmpfs the hierarchies are mounted on, and unrelated places.
    assert_eq!(find(&["/sys/fs/cgroup", "/", "/tmp", ""]), None);
}

#[test]
fn a_mount_stacked_on_top_hides_the_one_below() {
    let mounts = [
        MOUNTS,
        b"99 35 0:50 / /sys/fs/cgroup/memory rw - tmpfs tmpfs rw\n",
    ]
    .concat();
    let dirs = [Path::new("/sys/fs/cgroup/memory/app")];
    assert_eq!(nearest_containing_in(CGROUP, &mounts, &dirs).unwrap(), None);
}

#[test]
fn a_container_that_mounts_its_own_subtree() {
    // Inside the container the hierarchy's `/docker/abc` is the mount root.
    let cgroup = b"4:memory:/docker/abc/app\n0::/\n";
    let mounts = b"1203 1190 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    let at = |d: &str| nearest_containing_in(cgroup, mounts, &[Path::new(d)]).unwrap();
    assert_eq!(at("/sys/fs/cgroup/memory"), Some(0));
    assert_eq!(at("/sys/fs/cgroup/memory/app"), Some(0));
    assert_eq!(at("/sys/fs/cgroup/memory/docker/abc/app"), None);
}

#[test]
fn escaped_mount_points() {
    let mounts = br"35 31 0:32 / /sys/fs/cgroup/my\040memory rw - cgroup cgroup rw,memory
";
    let dirs = [Path::new("/sys/fs/cgroup/my memory/app")];
    assert_eq!(
        nearest_containing_in(CGROUP, mounts, &dirs).unwrap(),
        Some(0)
    );
}

#[test]
fn removed_or_out_of_namespace_cgroups_match_nothing() {
    let deleted = b"0::/user.slice/app (deleted)\n";
    let outside = b"0::/../other/app\n";
    let dirs = [Path::new("/sys/fs/cgroup/unified")];
    assert_eq!(nearest_containing_in(deleted, MOUNTS, &dirs).unwrap(), None);
    assert_eq!(nearest_containing_in(outside, MOUNTS, &dirs).unwrap(), None);
    // A mount whose root is outside the reader's namespace.
    let mounts = b"41 31 0:38 /.. /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
    let cgroup = b"0::/app\n";
    assert_eq!(nearest_containing_in(cgroup, mounts, &dirs).unwrap(), None);
}

#[test]
fn malformed_files_are_errors() {
    let dirs = [Path::new("/sys/fs/cgroup/memory")];
    assert!(matches!(
        nearest_containing_in(b"garbage\n", MOUNTS, &dirs),
        Err(LocateError::ProcCgroup(_))
    ));
    assert!(matches!(
        nearest_containing_in(CGROUP, b"1 2 3\n", &dirs),
        Err(LocateError::Mountinfo(_))
    ));
}
