//! The OOM killer's lines formatted exactly as `mm/oom_kill.c` and
//! `kernel/printk/printk.c` write them, for arbitrary names and paths, and
//! the check that the parser reads back what was formatted. Shared by the
//! property test in `tests/kmsg_oom.rs` and the fuzz target
//! `fuzz/fuzz_targets/kmsg_context.rs`, which both build a [`Kill`] from
//! bytes with [`Kill::from_bytes`] and call [`check`].

use ctrmon::cgroup::parse::kmsg_oom::{parse, OomLine, Reading};

/// One kill, as the kernel would log it.
#[derive(Debug, Clone)]
pub struct Kill {
    pub constraint: &'static str,
    /// `None`: `(null)`.
    pub nodemask: Option<Vec<u8>>,
    /// The allocating task's cpuset: `Some("/")` for the root, `None` for a
    /// kernel without cpusets.
    pub cpuset: Option<Vec<u8>>,
    pub mems_allowed: Vec<u8>,
    /// The cgroup whose limit fired (an ancestor of `task_memcg`, or it);
    /// `None` for a global OOM.
    pub oom_memcg: Option<Vec<u8>>,
    pub task_memcg: Vec<u8>,
    /// At most 15 bytes, no NUL.
    pub comm: Vec<u8>,
    pub pid: i32,
    pub uid: u32,
}

/// Bytes a hostile name is made of, besides single bytes.
const PIECES: &[&[u8]] = &[
    b",task=",
    b",task_memcg=",
    b",oom_memcg=",
    b",global_oom",
    b",pid=",
    b",uid=",
    b",cpuset=",
    b",mems_allowed=",
    b",nodemask=",
    b") total-vm:",
    b" (",
    b"=",
    b",",
    b"/",
    b"\\",
    b"\\x2c",
    b"\n",
    b"\x01",
    b"\xff",
    b"0-3,5",
    b"(null)",
    b"12",
];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    /// A name: literal bytes and pieces, up to `max` tokens.
    fn name(&mut self, max: u8) -> Vec<u8> {
        let n = self.byte() % (max + 1);
        let mut out = Vec::new();
        for _ in 0..n {
            let b = self.byte();
            if b >= 0xe0 {
                out.extend_from_slice(PIECES[usize::from(b - 0xe0) % PIECES.len()]);
            } else {
                out.push(b);
            }
        }
        out
    }

    fn component(&mut self) -> Vec<u8> {
        let mut c: Vec<u8> = self
            .name(6)
            .into_iter()
            .filter(|&b| b != b'/' && b != 0)
            .collect();
        if c.is_empty() || c == b"." || c == b".." {
            c = b"c".to_vec();
        }
        c
    }

    fn node_list(&mut self) -> Vec<u8> {
        match self.byte() % 4 {
            0 => b"0".to_vec(),
            1 => b"0-1".to_vec(),
            2 => b"0,2-3".to_vec(),
            _ => Vec::new(),
        }
    }
}

fn path(components: &[Vec<u8>]) -> Vec<u8> {
    if components.is_empty() {
        return b"/".to_vec();
    }
    let mut p = Vec::new();
    for c in components {
        p.push(b'/');
        p.extend_from_slice(c);
    }
    p
}

impl Kill {
    /// A kill from arbitrary bytes: every field chosen by them, the names
    /// made of separators the parser anchors on.
    pub fn from_bytes(data: &[u8]) -> Kill {
        let mut b = Bytes(data);
        let depth = usize::from(b.byte() % 4);
        let task: Vec<Vec<u8>> = (0..depth).map(|_| b.component()).collect();
        let global = b.byte() % 5 == 0;
        let oom_depth = usize::from(b.byte()) % (depth + 1);
        let cpuset = match b.byte() % 3 {
            0 => None,
            1 => Some(b"/".to_vec()),
            _ => Some(b.component()),
        };
        let mut comm: Vec<u8> = b.name(8).into_iter().filter(|&c| c != 0).collect();
        comm.truncate(15);
        let pid = i32::from_le_bytes([b.byte(), b.byte(), b.byte(), b.byte() & 0x3f]).max(1);
        let uid = u32::from_le_bytes([b.byte(), b.byte(), b.byte(), b.byte()]);
        Kill {
            constraint: if global {
                "CONSTRAINT_NONE"
            } else {
                "CONSTRAINT_MEMCG"
            },
            nodemask: (b.byte() % 2 == 0).then(|| b.node_list()),
            cpuset,
            mems_allowed: b.node_list(),
            oom_memcg: (!global).then(|| path(&task[..oom_depth])),
            task_memcg: path(&task),
            comm,
            pid,
            uid,
        }
    }

    /// The `oom-kill:` line's text as `dump_oom_victim` prints it, before
    /// the log escapes it.
    pub fn context_text(&self) -> Vec<u8> {
        let mut t = format!("oom-kill:constraint={},nodemask=", self.constraint).into_bytes();
        match &self.nodemask {
            None => t.extend_from_slice(b"(null)"),
            Some(n) => t.extend_from_slice(n),
        }
        if let Some(c) = &self.cpuset {
            t.extend_from_slice(b",cpuset=");
            t.extend_from_slice(c);
            t.extend_from_slice(b",mems_allowed=");
            t.extend_from_slice(&self.mems_allowed);
        }
        match &self.oom_memcg {
            Some(o) => {
                t.extend_from_slice(b",oom_memcg=");
                t.extend_from_slice(o);
            }
            None => t.extend_from_slice(b",global_oom"),
        }
        t.extend_from_slice(b",task_memcg=");
        t.extend_from_slice(&self.task_memcg);
        t.extend_from_slice(b",task=");
        t.extend_from_slice(&self.comm);
        // `%d` of a uid_t.
        t.extend_from_slice(format!(",pid={},uid={}", self.pid, self.uid as i32).as_bytes());
        t
    }

    /// The `Killed process` line's text (`__oom_kill_process`).
    pub fn killed_text(&self) -> Vec<u8> {
        let scope = if self.oom_memcg.is_some() {
            "Memory cgroup out of memory"
        } else {
            "Out of memory"
        };
        let mut t = format!("{scope}: Killed process {} (", self.pid).into_bytes();
        t.extend_from_slice(&self.comm);
        t.extend_from_slice(
            format!(
                ") total-vm:35492kB, anon-rss:32512kB, file-rss:1460kB, shmem-rss:0kB, \
                 UID:{} pgtables:112kB oom_score_adj:0",
                self.uid
            )
            .as_bytes(),
        );
        t
    }
}

/// What `/dev/kmsg` makes of a message (`msg_add_ext_text`): every byte
/// below a space, from DEL up, and the backslash as `\xNN`.
pub fn escape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in text {
        if !(b' '..0x7f).contains(&b) || b == b'\\' {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

/// One `/dev/kmsg` record: header, escaped message, newline.
pub fn record(prio: u32, seq: u64, text: &[u8]) -> Vec<u8> {
    let mut r = format!("{prio},{seq},1234567,-;").into_bytes();
    r.extend_from_slice(&escape(text));
    r.push(b'\n');
    r
}

/// Formats `k`'s two lines, parses them back, and panics unless the parser
/// read what was formatted: the pid and uid exactly, the kill's reading
/// among the line's readings, every field it gives alone right, and the
/// victim's name from its `Killed process` line settling the rest (or
/// there being two readings with that name, which the line cannot tell
/// apart). Records with a user facility are never OOM lines.
pub fn check(k: &Kill) {
    let killed_rec = record(3, 2, &k.killed_text());
    let killed = parse(&killed_rec).expect("killed record");
    let Some(OomLine::Killed(kl)) = killed.oom() else {
        panic!("not a Killed line: {k:?}")
    };
    assert_eq!(kl.pid, k.pid);
    assert_eq!(kl.comm.to_vec(), k.comm, "{k:?}");
    assert_eq!(kl.uid, Some(k.uid));

    let ctx_rec = record(6, 1, &k.context_text());
    let ctx = parse(&ctx_rec).expect("context record");
    let Some(OomLine::Context(c)) = ctx.oom() else {
        panic!(
            "not a context line: {k:?}\n{}",
            String::from_utf8_lossy(&ctx_rec)
        )
    };
    assert_eq!((c.pid, c.uid), (k.pid, k.uid), "{k:?}");
    let truth = (
        k.oom_memcg.as_ref().map(|p| escape(p)),
        Some(escape(&k.task_memcg)),
        escape(&k.comm),
    );
    let as_owned = |r: &Reading<'_>| {
        (
            r.oom_memcg.map(|e| e.raw().to_vec()),
            r.task_memcg.map(|e| e.raw().to_vec()),
            r.comm.raw().to_vec(),
        )
    };
    let readings: Vec<_> = c.readings().map(|r| as_owned(&r)).collect();
    assert!(readings.contains(&truth), "{k:?}: {readings:?}");
    if let Some(o) = c.oom_memcg {
        assert_eq!(Some(o.raw().to_vec()), truth.0, "{k:?}");
    }
    if let Some(t) = c.task_memcg {
        assert_eq!(Some(t.raw().to_vec()), truth.1, "{k:?}");
    }
    if let Some(n) = c.comm {
        assert_eq!(n.raw(), truth.2.as_slice(), "{k:?}");
    }
    match c.reading_with_comm(kl.comm) {
        Some(r) => assert_eq!(as_owned(&r), truth, "{k:?}"),
        None => assert!(
            readings.iter().filter(|r| r.2 == truth.2).count() > 1,
            "{k:?}: {readings:?}"
        ),
    }
    // The same lines from user space: never OOM lines.
    for prio in [8 + 3, 8 + 6, 3 << 3] {
        for text in [k.killed_text(), k.context_text()] {
            let forged = record(prio, 3, &text);
            assert_eq!(parse(&forged).unwrap().oom(), None);
        }
    }
}
