#![no_main]
use ctrmon::cgroup::parse::kmsg_oom::{parse, OomLine};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = parse(data) {
        for (k, v) in rec.properties() {
            assert!(k.bytes().count() <= k.raw().len() && v.bytes().count() <= v.raw().len());
        }
        let names = match rec.oom() {
            Some(OomLine::Killed(k)) => [Some(k.comm), None, None],
            Some(OomLine::Context(c)) => [c.comm, c.oom_memcg, c.task_memcg],
            Some(OomLine::GroupKill { memcg }) => [Some(memcg), None, None],
            None => [None; 3],
        };
        for n in names.into_iter().flatten() {
            assert!(n.bytes().count() <= n.raw().len());
        }
    }
});
