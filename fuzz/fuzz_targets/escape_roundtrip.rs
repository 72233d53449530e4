#![no_main]
use ctrmon::cgroup::parse::escape::{escape, unescape};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    assert_eq!(&*unescape(&escape(data)), data);
});
