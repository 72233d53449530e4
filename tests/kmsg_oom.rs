//! The `/dev/kmsg` parser against records recorded on this project's
//! development machine (kernel 6.18, cgroup v1 memory), kept in the fuzz
//! seed corpus: `real-*` files are records as one `read` returned them,
//! `real-6.1-*` come from Debian's 6.1 in the v2 test guest (a
//! `memory.oom.group` kill, which needs v2), `crafted-*` files follow the
//! kernel's format for what could not be produced (a global OOM,
//! continuation lines) or are damaged on purpose.

use ctrmon::cgroup::parse::kmsg_oom::{parse, KillScope, OomLine};

macro_rules! corpus {
    ($name:literal) => {
        include_bytes!(concat!("../fuzz/corpus/kmsg_oom/", $name)).as_slice()
    };
}

#[test]
fn a_memcg_kill_names_its_victim() {
    let rec = parse(corpus!("real-killed-memcg")).unwrap();
    assert_eq!((rec.facility, rec.level, rec.seq), (0, 3, 17816));
    assert_eq!(rec.timestamp_us, 715_824_394);
    assert!(!rec.fragment);
    let Some(OomLine::Killed(k)) = rec.oom() else {
        panic!("{rec:?}")
    };
    assert_eq!(k.scope, KillScope::Memcg);
    assert_eq!(
        (k.pid, k.comm.raw(), k.uid),
        (15353, &b"python3"[..], Some(0))
    );
}

#[test]
fn the_context_line_names_both_cgroups() {
    let rec = parse(corpus!("real-context-memcg")).unwrap();
    assert_eq!((rec.level, rec.seq), (6, 17815));
    let Some(OomLine::Context(c)) = rec.oom() else {
        panic!("{rec:?}")
    };
    assert_eq!(c.constraint, Some(&b"CONSTRAINT_MEMCG"[..]));
    assert_eq!(c.oom_memcg.unwrap().raw(), b"/ctrmon-test-rec-plain-15258");
    assert_eq!(c.task_memcg.unwrap().raw(), b"/ctrmon-test-rec-plain-15258");
    assert_eq!(
        (c.pid, c.uid, c.comm.unwrap().raw()),
        (15353, 0, &b"python3"[..])
    );
}

#[test]
fn a_parent_limit_kill_names_the_parent_and_the_child() {
    let Some(OomLine::Context(c)) = parse(corpus!("real-context-parent-limit")).unwrap().oom()
    else {
        panic!()
    };
    assert_eq!(c.oom_memcg.unwrap().raw(), b"/ctrmon-test-rec-parent-15258");
    assert_eq!(
        c.task_memcg.unwrap().raw(),
        b"/ctrmon-test-rec-parent-15258/ctrmon-test-leaf"
    );
    assert_eq!((c.pid, c.comm.unwrap().raw()), (15356, &b"leaf hog"[..]));
    let Some(OomLine::Killed(k)) = parse(corpus!("real-killed-comm-with-space")).unwrap().oom()
    else {
        panic!()
    };
    assert_eq!((k.pid, k.comm.raw()), (15356, &b"leaf hog"[..]));
}

#[test]
fn names_with_parentheses_and_non_printable_bytes_come_back_exactly() {
    // The task renamed itself to `a b) (c\d` + 0x01 0xe9 '\n' (15 bytes):
    // the kernel escaped the backslash and the three bytes.
    let original = b"a b) (c\\d\x01\xe9\n";
    let Some(OomLine::Killed(k)) = parse(corpus!("real-killed-escaped-comm")).unwrap().oom() else {
        panic!()
    };
    assert_eq!(k.pid, 15354);
    assert_eq!(k.comm.raw(), br"a b) (c\x5cd\x01\xe9\x0a");
    assert_eq!(k.comm.to_vec(), original);
    let Some(OomLine::Context(c)) = parse(corpus!("real-context-escaped-comm")).unwrap().oom()
    else {
        panic!()
    };
    assert_eq!(
        (c.pid, c.comm.unwrap().to_vec()),
        (15354, original.to_vec())
    );
    // The `invoked oom-killer` line is not one of the lines used.
    assert_eq!(parse(corpus!("real-invoked-escaped")).unwrap().oom(), None);
}

#[test]
fn names_and_paths_that_imitate_the_fields_do_not_fool_it() {
    // comm `x),pid=1,uid=2`, in a cgroup named
    // `ctrmon-test-rec,oom_memcg=x task=y (z)-15258`.
    let Some(OomLine::Killed(k)) = parse(corpus!("real-killed-comm-with-pid-and-uid"))
        .unwrap()
        .oom()
    else {
        panic!()
    };
    assert_eq!(
        (k.pid, k.comm.raw(), k.uid),
        (15355, &b"x),pid=1,uid=2"[..], Some(0))
    );
    let Some(OomLine::Context(c)) = parse(corpus!("real-context-path-with-commas"))
        .unwrap()
        .oom()
    else {
        panic!()
    };
    let path = &b"/ctrmon-test-rec,oom_memcg=x task=y (z)-15258"[..];
    assert_eq!(
        (c.pid, c.uid, c.comm.unwrap().raw()),
        (15355, 0, &b"x),pid=1,uid=2"[..])
    );
    assert_eq!(c.oom_memcg.unwrap().raw(), path);
    assert_eq!(c.task_memcg.unwrap().raw(), path);
}

#[test]
fn other_records_of_an_oom_report_are_not_oom_lines() {
    for rec in [
        corpus!("real-invoked-oom-killer"),
        corpus!("real-call-trace"),
        corpus!("real-memory-usage"),
        corpus!("real-tasks-state"),
        corpus!("real-stat-line"),
        corpus!("crafted-fragment-head"),
    ] {
        let parsed = parse(rec).unwrap();
        assert_eq!(parsed.oom(), None, "{parsed:?}");
    }
    assert!(parse(corpus!("crafted-fragment-head")).unwrap().fragment);
}

#[test]
fn global_and_group_kills() {
    let Some(OomLine::Killed(k)) = parse(corpus!("crafted-global-killed")).unwrap().oom() else {
        panic!()
    };
    assert_eq!(
        (k.scope, k.pid, k.uid),
        (KillScope::Global, 777, Some(1000))
    );
    let Some(OomLine::Context(c)) = parse(corpus!("crafted-global-context")).unwrap().oom() else {
        panic!()
    };
    assert_eq!(c.oom_memcg, None);
    assert_eq!(c.task_memcg.unwrap().raw(), b"/user.slice");
    assert_eq!(c.constraint, Some(&b"CONSTRAINT_NONE"[..]));
    let Some(OomLine::GroupKill { memcg }) =
        parse(corpus!("real-6.1-group-tasks-in")).unwrap().oom()
    else {
        panic!()
    };
    assert_eq!(memcg.raw(), b"/ctrmon-test-kmsg-group-147");
    // Debian's 6.1 writes the lines as 6.18 does.
    let Some(OomLine::Context(c)) = parse(corpus!("real-6.1-group-context")).unwrap().oom() else {
        panic!()
    };
    assert_eq!((c.pid, c.comm.unwrap().raw()), (153, &b"tail"[..]));
    assert_eq!(c.oom_memcg, c.task_memcg);
    let Some(OomLine::Killed(k)) = parse(corpus!("real-6.1-group-killed-member-1"))
        .unwrap()
        .oom()
    else {
        panic!()
    };
    assert_eq!((k.pid, k.comm.raw(), k.uid), (151, &b"sleep"[..], Some(0)));
    // The tail of an `oom-kill:` line logged in pieces still names its victim.
    let Some(OomLine::Context(c)) = parse(corpus!("crafted-fragment-tail")).unwrap().oom() else {
        panic!()
    };
    assert_eq!((c.pid, c.constraint, c.oom_memcg), (4242, None, None));
}

#[test]
fn continuation_lines_and_extra_header_fields() {
    let rec = parse(corpus!("crafted-properties")).unwrap();
    assert_eq!(rec.seq, 18007);
    let props: Vec<(Vec<u8>, Vec<u8>)> = rec
        .properties()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(
        props,
        [
            (b"SUBSYSTEM".to_vec(), b"usb".to_vec()),
            (b"DEVICE".to_vec(), b"c189:1".to_vec())
        ]
    );
}

#[test]
fn damaged_records_are_errors_not_guesses() {
    for (name, rec) in [
        ("truncated", corpus!("crafted-truncated")),
        ("no-newline", corpus!("crafted-no-newline")),
        ("garbage", corpus!("crafted-garbage")),
        ("two-records", corpus!("crafted-two-records")),
    ] {
        assert!(parse(rec).is_err(), "{name}: {:?}", parse(rec));
    }
    // A pid that does not fit is no victim.
    assert_eq!(parse(corpus!("crafted-pid-overflow")).unwrap().oom(), None);
    // Every prefix of a real record either fails or is that record.
    let whole = corpus!("real-killed-memcg");
    for n in 0..whole.len() {
        assert!(parse(&whole[..n]).is_err(), "prefix of {n} bytes");
    }
}

#[path = "kmsg_format/mod.rs"]
mod kmsg_format;

/// The property: for any names and paths the kernel can log, formatted as
/// `mm/oom_kill.c` does, the parser reads back the same fields (see
/// `kmsg_format::check`). Inputs from a fixed-seed generator, so a failure
/// repeats; the fuzz target `kmsg_context` explores the same space.
#[test]
fn context_lines_read_back_what_the_kernel_formatted_for_any_names() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ambiguous = 0;
    for _ in 0..20_000 {
        let data: Vec<u8> = (0..64).map(|_| next() as u8).collect();
        let k = kmsg_format::Kill::from_bytes(&data);
        kmsg_format::check(&k);
        let rec = kmsg_format::record(6, 1, &k.context_text());
        if let Some(OomLine::Context(c)) = parse(&rec).unwrap().oom() {
            ambiguous += usize::from(c.readings().count() > 1);
        }
    }
    // The generator does make names that fake the separators.
    assert!(ambiguous > 100, "{ambiguous}");
}

#[test]
fn a_victim_named_like_a_field_is_read_exactly() {
    // The issue's case: `prctl(PR_SET_NAME, "a,task=/b")`.
    let k = kmsg_format::Kill {
        constraint: "CONSTRAINT_MEMCG",
        nodemask: None,
        cpuset: Some(b"/".to_vec()),
        mems_allowed: b"0".to_vec(),
        oom_memcg: Some(b"/pod".to_vec()),
        task_memcg: b"/pod/web".to_vec(),
        comm: b"a,task=/b".to_vec(),
        pid: 4242,
        uid: 0,
    };
    kmsg_format::check(&k);
    let rec = kmsg_format::record(6, 1, &k.context_text());
    let Some(OomLine::Context(c)) = parse(&rec).unwrap().oom() else {
        panic!()
    };
    // Alone, the line could also be a task `/b` in `/pod/web,task=a`: the
    // fields are not given, rather than guessed, and the victim's name
    // from its `Killed process` line settles them.
    assert_eq!(c.readings().count(), 2);
    assert_eq!((c.task_memcg, c.comm), (None, None));
    let killed_rec = kmsg_format::record(3, 2, &k.killed_text());
    let killed = parse(&killed_rec).unwrap();
    let Some(OomLine::Killed(kl)) = killed.oom() else {
        panic!()
    };
    assert_eq!(kl.comm.raw(), b"a,task=/b");
    let r = c.reading_with_comm(kl.comm).unwrap();
    assert_eq!(r.task_memcg.unwrap().raw(), b"/pod/web");
    assert_eq!(r.oom_memcg.unwrap().raw(), b"/pod");
    // A cgroup named to fake the next field, and a cpuset name with commas.
    let k = kmsg_format::Kill {
        cpuset: Some(b"x,mems_allowed=0,oom_memcg=".to_vec()),
        oom_memcg: Some(b"/a,task_memcg=".to_vec()),
        task_memcg: b"/a,task_memcg=/b,task=c".to_vec(),
        comm: b"pid=1,uid=0".to_vec(),
        ..k
    };
    kmsg_format::check(&k);
}
