#![no_main]
// Input: `/proc/<pid>/cgroup`, a NUL byte, then mountinfo.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (cgroup, mountinfo) =
        data.split_at(data.iter().position(|&b| b == 0).unwrap_or(data.len()));
    let mountinfo = mountinfo.get(1..).unwrap_or_default();
    let _ = ctrmon::cgroup::locate_in(cgroup, mountinfo, |p| p.as_os_str().len() % 2 == 0);
    // The same join for a cgroup known by its path (an OOM victim's): the
    // first line of the cgroup part is the path, the rest our own file.
    let (path, me) = cgroup.split_at(
        cgroup
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(cgroup.len()),
    );
    let _ = ctrmon::cgroup::memory_cgroup_dir_in(path, me, mountinfo);
});
