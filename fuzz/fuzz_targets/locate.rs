#![no_main]
// Input: `/proc/<pid>/cgroup`, a NUL byte, then mountinfo.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (cgroup, mountinfo) =
        data.split_at(data.iter().position(|&b| b == 0).unwrap_or(data.len()));
    let mountinfo = mountinfo.get(1..).unwrap_or_default();
    let _ = ctrmon::cgroup::locate_in(cgroup, mountinfo, |p| p.as_os_str().len() % 2 == 0);
});
