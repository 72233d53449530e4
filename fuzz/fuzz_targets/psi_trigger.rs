#![no_main]
use ctrmon::cgroup::parse::psi::PsiTrigger;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(t) = PsiTrigger::parse(data) {
        assert_eq!(PsiTrigger::parse(t.to_kernel_string().as_bytes()), Ok(t));
    }
});
