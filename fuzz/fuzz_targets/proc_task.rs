#![no_main]
use ctrmon::reaper::proc::{parse_children, signal_blocked, start_time, zombie_exit_code};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    assert!(parse_children(data).all(|pid| pid > 0));
    let _ = (
        signal_blocked(data, 17),
        signal_blocked(data, 64),
        start_time(data),
        zombie_exit_code(data).map(|s| assert!(s >= 0)),
    );
});
