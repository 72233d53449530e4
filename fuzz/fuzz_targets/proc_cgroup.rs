#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(f) = ctrmon::cgroup::parse::proc_cgroup::parse(data) {
        let n = f
            .entries()
            .map(|e| e.controller_names().count() + e.is_unified() as usize)
            .sum::<usize>();
        let _ = (n, f.memory_v1(), f.unified());
    }
});
