#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = ctrmon::cgroup::parse::swap_events::parse(data) {
        assert!(ev.delta(&ev).is_zero());
    }
});
