#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ctrmon::cgroup::parse::cgroup_events::parse(data);
});
