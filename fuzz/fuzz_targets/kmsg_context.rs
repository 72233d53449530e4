#![no_main]
//! The OOM killer's lines formatted as `mm/oom_kill.c` does, from arbitrary
//! names and paths, must parse back to the same fields (see
//! `tests/kmsg_format/mod.rs`, shared with the property test).
#[path = "../../tests/kmsg_format/mod.rs"]
mod kmsg_format;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kmsg_format::check(&kmsg_format::Kill::from_bytes(data));
});
