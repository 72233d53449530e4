//! `/dev/kmsg` records, and the OOM killer's lines among them.
//!
//! Each `read` of `/dev/kmsg` returns one record (`kernel/printk/printk.c`,
//! `info_print_ext_header` and `msg_print_ext_body`):
//!
//! ```text
//! <prio>,<seq>,<ts_usec>,<flags>[,<more>...];<message>\n
//!  KEY=VALUE\n            (zero or more continuation lines)
//! ```
//!
//! `prio` is `facility << 3 | level`; `seq` numbers every record, so a jump
//! means records were lost; `flags` is `-`, or `c` for a fragment of a line
//! that was printed in pieces. In the message and the continuation lines
//! the kernel writes every byte below `0x20`, from `0x7f` up, and the
//! backslash itself as `\xNN`, so a record holds no raw newline and a task
//! name or cgroup path can be compared in its escaped form ([`Escaped`]).
//!
//! The OOM killer (`mm/oom_kill.c`) logs, for every kill:
//!
//! ```text
//! oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a/b,task=tail,pid=4242,uid=0
//! Memory cgroup out of memory: Killed process 4242 (tail) total-vm:35492kB, anon-rss:32640kB, file-rss:1452kB, shmem-rss:0kB, UID:0 pgtables:108kB oom_score_adj:0
//! ```
//!
//! The first (rate-limited with the rest of the OOM report) says which
//! cgroup's limit fired and where the victim lived; the second is printed
//! for every victim, never rate-limited, and is `Out of memory: Killed
//! process …` for a global OOM. With `memory.oom.group` set, the chosen
//! victim's `Killed process` line is followed by `Tasks in <path> are going
//! to be killed due to memory.oom.group set`, then one `Killed process`
//! line per other task of that cgroup (recorded on Debian's 6.1). A task name is at most 15 bytes
//! but may contain spaces, commas and parentheses, and a cgroup path may
//! contain anything but `/` within a name; the parsers below anchor on the
//! parts of each line that names cannot fake (see each function).

use super::ParseError;

const WHAT: &str = "/dev/kmsg record";

/// One `/dev/kmsg` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The syslog facility (`prio >> 3`); 0 is the kernel.
    pub facility: u32,
    /// The log level (`prio & 7`): 3 is `KERN_ERR`, 6 `KERN_INFO`.
    pub level: u8,
    /// The record's sequence number: consecutive records differ by one.
    pub seq: u64,
    /// Microseconds since boot (`CLOCK_MONOTONIC`) when it was logged.
    pub timestamp_us: u64,
    /// The `c` flag: a fragment of a line printed in pieces.
    pub fragment: bool,
    /// The text, without its newline, still escaped.
    pub message: Escaped<'a>,
    properties: &'a [u8],
}

/// Bytes as the kernel logged them, with `\xNN` escapes still in place.
/// Compare two of them as they are (the escaping is the same for equal
/// bytes); [`bytes`](Self::bytes) gives the original bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Escaped<'a>(&'a [u8]);

impl<'a> Escaped<'a> {
    /// The escaped text as logged.
    pub fn raw(&self) -> &'a [u8] {
        self.0
    }

    /// The original bytes: each `\xNN` decoded. A backslash not followed by
    /// `x` and two hex digits (which the kernel never writes) is kept.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let (&b, tail) = rest.split_first()?;
            if let [b'x', h, l, after @ ..] = tail {
                if b == b'\\' {
                    if let (Some(h), Some(l)) = (hex(*h), hex(*l)) {
                        rest = after;
                        return Some(h << 4 | l);
                    }
                }
            }
            rest = tail;
            Some(b)
        })
    }

    /// The original bytes, collected.
    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes().collect()
    }
}

fn hex(d: u8) -> Option<u8> {
    (d as char).to_digit(16).map(|v| v as u8)
}

/// Parses one record as returned by one `read` of `/dev/kmsg`.
///
/// A record must end with its newline: the kernel hands out whole records
/// (a buffer too small gets `EINVAL`, not a part), so one without it was
/// cut short, and a cut-off `Killed process 12` might have been `1234`.
///
/// ```
/// use ctrmon::cgroup::parse::kmsg_oom::{parse, OomLine};
/// let rec = parse(b"3,6800,563219520,-;Memory cgroup out of memory: Killed process 23939 (tail) total-vm:35492kB, anon-rss:32512kB, file-rss:1460kB, shmem-rss:0kB, UID:0 pgtables:112kB oom_score_adj:0\n").unwrap();
/// assert_eq!(rec.seq, 6800);
/// let Some(OomLine::Killed(k)) = rec.oom() else { panic!() };
/// assert_eq!((k.pid, k.comm.raw()), (23939, &b"tail"[..]));
/// ```
pub fn parse(input: &[u8]) -> Result<Record<'_>, ParseError> {
    let semi = input
        .iter()
        .position(|&b| b == b';')
        .ok_or(ParseError::new(WHAT, 1, "no ';' after the header"))?;
    let (header, body) = (&input[..semi], &input[semi + 1..]);
    let mut fields = header.split(|&b| b == b',');
    let mut next = |what: &'static str| fields.next().ok_or(ParseError::new(WHAT, 1, what));
    let prio = decimal(next("missing priority")?)
        .filter(|&p| p <= u64::from(u32::MAX))
        .ok_or(ParseError::new(WHAT, 1, "priority is not a number"))?;
    let seq = decimal(next("missing sequence number")?).ok_or(ParseError::new(
        WHAT,
        1,
        "sequence is not a number",
    ))?;
    let timestamp_us = decimal(next("missing timestamp")?).ok_or(ParseError::new(
        WHAT,
        1,
        "timestamp is not a number",
    ))?;
    let flags = next("missing flags")?;
    if flags.is_empty() {
        return Err(ParseError::new(WHAT, 1, "empty flags"));
    }
    // Further fields (`caller=T123` with CONFIG_PRINTK_CALLER) are ignored.
    let nl = body
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(ParseError::new(WHAT, 1, "record cut short: no newline"))?;
    let properties = &body[nl + 1..];
    for (i, line) in properties.split_inclusive(|&b| b == b'\n').enumerate() {
        let ok = line.len() > 2 && line[0] == b' ' && line.ends_with(b"\n") && line.contains(&b'=');
        if !ok {
            return Err(ParseError::new(WHAT, i + 2, "bad ' KEY=VALUE' line"));
        }
    }
    Ok(Record {
        facility: (prio >> 3) as u32,
        level: (prio & 7) as u8,
        seq,
        timestamp_us,
        fragment: flags.contains(&b'c'),
        message: Escaped(&body[..nl]),
        properties,
    })
}

impl<'a> Record<'a> {
    /// The continuation lines (` SUBSYSTEM=…`, ` DEVICE=…`), as `(key,
    /// value)`.
    pub fn properties(&self) -> impl Iterator<Item = (Escaped<'a>, Escaped<'a>)> + 'a {
        self.properties.split(|&b| b == b'\n').filter_map(|line| {
            let line = line.strip_prefix(b" ")?;
            let eq = line.iter().position(|&b| b == b'=')?;
            Some((Escaped(&line[..eq]), Escaped(&line[eq + 1..])))
        })
    }

    /// The OOM killer's line this record carries, if it is one.
    pub fn oom(&self) -> Option<OomLine<'a>> {
        oom_line(self.message.raw())
    }
}

/// A line of the OOM killer's report that ctrmon uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomLine<'a> {
    /// `… Killed process <pid> (<comm>) …`: one per victim.
    Killed(Killed<'a>),
    /// `oom-kill:…`: the kill's context (which limit fired, where the
    /// victim lived); rate-limited, so not every kill has one.
    Context(OomContext<'a>),
    /// `Tasks in <path> are going to be killed due to memory.oom.group
    /// set`: every task of that cgroup is about to be killed.
    GroupKill {
        /// The cgroup, relative to its hierarchy's root.
        memcg: Escaped<'a>,
    },
}

/// Which OOM killed the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillScope {
    /// A memory cgroup's limit (`Memory cgroup out of memory`).
    Memcg,
    /// The whole machine (`Out of memory`).
    Global,
}

/// `<scope>: Killed process <pid> (<comm>) total-vm:… UID:<uid> …`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Killed<'a> {
    /// Memory cgroup or global OOM.
    pub scope: KillScope,
    /// The victim (a thread group id).
    pub pid: i32,
    /// Its name (`comm`), escaped.
    pub comm: Escaped<'a>,
    /// Its user id, if the line has one.
    pub uid: Option<u32>,
}

/// `oom-kill:constraint=…,oom_memcg=<path>,task_memcg=<path>,task=<comm>,pid=<pid>,uid=<uid>`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OomContext<'a> {
    /// `CONSTRAINT_MEMCG`, `CONSTRAINT_NONE`, …; `None` for a fragment.
    pub constraint: Option<&'a [u8]>,
    /// The cgroup whose limit fired; `None` for a global OOM (or when the
    /// line was logged in pieces).
    pub oom_memcg: Option<Escaped<'a>>,
    /// The victim's cgroup.
    pub task_memcg: Option<Escaped<'a>>,
    /// The victim's name, escaped.
    pub comm: Escaped<'a>,
    /// The victim.
    pub pid: i32,
    /// Its user id.
    pub uid: u32,
}

/// Recognises the OOM killer's lines in a record's (escaped) message.
pub fn oom_line(message: &[u8]) -> Option<OomLine<'_>> {
    if let Some(rest) = message.strip_prefix(b"oom-kill:") {
        return context(rest, true).map(OomLine::Context);
    }
    if message.starts_with(b",") {
        // The tail of an `oom-kill:` line logged in pieces.
        return context(message, false).map(OomLine::Context);
    }
    if let Some(rest) = message.strip_prefix(b"Tasks in ") {
        let memcg =
            rest.strip_suffix(b" are going to be killed due to memory.oom.group set".as_slice())?;
        return Some(OomLine::GroupKill {
            memcg: Escaped(memcg),
        });
    }
    killed(message).map(OomLine::Killed)
}

/// The victim's name runs to the *last* `) total-vm:`: the name comes
/// before it, so a name cannot push the real one further left.
fn killed(message: &[u8]) -> Option<Killed<'_>> {
    const KILLED: &[u8] = b": Killed process ";
    let at = find(message, KILLED)?;
    let scope = match &message[..at] {
        b"Memory cgroup out of memory" => KillScope::Memcg,
        b"Out of memory" | b"Out of memory (oom_kill_allocating_task)" => KillScope::Global,
        _ => return None,
    };
    let rest = &message[at + KILLED.len()..];
    let space = rest.iter().position(|&b| b == b' ')?;
    let pid = pid(&rest[..space])?;
    let rest = rest[space..].strip_prefix(b" (")?;
    let close = rfind(rest, b") total-vm:")?;
    let tail = &rest[close..];
    let uid = find(tail, b" UID:").and_then(|u| {
        let digits = &tail[u + 5..];
        let end = digits
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(digits.len());
        u32::try_from(decimal(&digits[..end])?).ok()
    });
    Some(Killed {
        scope,
        pid,
        comm: Escaped(&rest[..close]),
        uid,
    })
}

/// `pid=` and `uid=` are read from the end of the line, where nothing
/// follows them; the name is what lies between the last `,task=` before
/// them and `,pid=`. The two cgroup paths are split where the limit's
/// cgroup is the victim's or one of its ancestors, as it always is.
fn context(rest: &[u8], whole: bool) -> Option<OomContext<'_>> {
    let u = rfind(rest, b",uid=")?;
    let uid = u32::try_from(decimal(&rest[u + 5..])?).ok()?;
    let rest = &rest[..u];
    let p = rfind(rest, b",pid=")?;
    let pid = pid(&rest[p + 5..])?;
    let rest = &rest[..p];
    let t = rfind(rest, b",task=")?;
    let comm = Escaped(&rest[t + 6..]);
    let head = &rest[..t];
    let constraint = if whole {
        let c = head.strip_prefix(b"constraint=")?;
        Some(&c[..c.iter().position(|&b| b == b',').unwrap_or(c.len())])
    } else {
        None
    };
    let (oom_memcg, task_memcg) = memcgs(head);
    Some(OomContext {
        constraint,
        oom_memcg,
        task_memcg,
        comm,
        pid,
        uid,
    })
}

fn memcgs(head: &[u8]) -> (Option<Escaped<'_>>, Option<Escaped<'_>>) {
    const OOM: &[u8] = b",oom_memcg=";
    const TASK: &[u8] = b",task_memcg=";
    let mut fallback = None;
    for o in positions(head, OOM) {
        let from = o + OOM.len();
        for t in positions(&head[from..], TASK) {
            let oom = &head[from..from + t];
            let task = &head[from + t + TASK.len()..];
            if is_ancestor_or_self(oom, task) {
                return (Some(Escaped(oom)), Some(Escaped(task)));
            }
            fallback.get_or_insert((Some(Escaped(oom)), Some(Escaped(task))));
        }
        fallback.get_or_insert((Some(Escaped(&head[from..])), None));
    }
    if let Some(found) = fallback {
        return found;
    }
    // A global OOM: `,global_oom,task_memcg=<path>`.
    let task = find(head, TASK).map(|t| Escaped(&head[t + TASK.len()..]));
    (None, task)
}

fn is_ancestor_or_self(a: &[u8], b: &[u8]) -> bool {
    if !a.starts_with(b"/") || !b.starts_with(b"/") {
        return false;
    }
    a == b"/" || b == a || (b.starts_with(a) && b[a.len()] == b'/')
}

fn pid(digits: &[u8]) -> Option<i32> {
    decimal(digits)
        .and_then(|v| i32::try_from(v).ok())
        .filter(|&p| p > 0)
}

/// A plain decimal number: digits only, no sign, no overflow.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let d = (b as char).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn positions<'h>(hay: &'h [u8], needle: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
    hay.windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}
