#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(info) = ctrmon::cgroup::parse::mountinfo::parse(data) {
        for m in info.entries() {
            let _ = (
                m.root(),
                m.mount_point(),
                m.fs_type(),
                m.source(),
                m.has_super_option(b"memory"),
            );
            let _ = m.optional_fields().count();
        }
    }
});
