#![no_main]
use ctrmon::cgroup::parse::number::{parse_limit_file, parse_u64_file};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = (
        parse_u64_file("memory.usage_in_bytes", data),
        parse_limit_file("memory.max", data),
    );
});
