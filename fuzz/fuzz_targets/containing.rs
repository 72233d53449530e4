#![no_main]
// Input: `/proc/<pid>/cgroup`, a NUL byte, mountinfo, a NUL byte, then the
// directories, one per line.
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let cgroup = parts.next().unwrap_or_default();
    let mountinfo = parts.next().unwrap_or_default();
    let dirs: Vec<&Path> = parts
        .next()
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .map(|d| Path::new(OsStr::from_bytes(d)))
        .collect();
    if let Ok(Some(i)) = ctrmon::cgroup::nearest_containing_in(cgroup, mountinfo, &dirs) {
        assert!(i < dirs.len());
    }
});
