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

    /// Whether the kernel logged this record itself: facility 0. Whatever
    /// user space writes to `/dev/kmsg` gets a non-zero facility
    /// (`devkmsg_write` puts `LOG_USER` in place of a 0), so a record with
    /// facility 0 cannot be forged, even by root.
    pub fn is_kernel(&self) -> bool {
        self.facility == 0
    }

    /// The OOM killer's line this record carries, if it is one: never for
    /// a record that user space wrote ([`is_kernel`](Self::is_kernel)),
    /// whatever its text.
    pub fn oom(&self) -> Option<OomLine<'a>> {
        if !self.is_kernel() {
            return None;
        }
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
///
/// The names in it are the kernel's unquoted: a field that the line's
/// readings ([`readings`](Self::readings)) disagree on is `None` here, and
/// [`reading_with_comm`](Self::reading_with_comm) settles it with the name
/// from the victim's `Killed process` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OomContext<'a> {
    /// `CONSTRAINT_MEMCG`, `CONSTRAINT_NONE`, …; `None` for a fragment.
    pub constraint: Option<&'a [u8]>,
    /// The cgroup whose limit fired; `None` for a global OOM, when the line
    /// was logged in pieces, or when its readings disagree.
    pub oom_memcg: Option<Escaped<'a>>,
    /// The victim's cgroup, when every reading agrees.
    pub task_memcg: Option<Escaped<'a>>,
    /// The victim's name, escaped, when every reading agrees.
    pub comm: Option<Escaped<'a>>,
    /// The victim.
    pub pid: i32,
    /// Its user id.
    pub uid: u32,
    names: Names<'a>,
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

/// `pid=` and `uid=` end the line and hold only digits, so the last of each
/// is the real one. What comes before them mixes fixed words with names
/// that tasks and cgroup owners choose, and the kernel does not quote them:
/// a victim may call itself `a,task=b`, and a cgroup may be named
/// `x,task_memcg=`. The head is parsed from the front, where only the
/// cpuset's name is free text and it cannot hold a `/`; what is left,
/// `<oom_memcg>,task_memcg=<task_memcg>,task=<comm>`, is split every way the
/// kernel's format allows (paths that start with `/`, the limit's cgroup an
/// ancestor of the victim's or the same, a name of at most 15 bytes), and a
/// field is given only when every reading agrees on it.
fn context(rest: &[u8], whole: bool) -> Option<OomContext<'_>> {
    let u = rfind(rest, b",uid=")?;
    let uid = uid(&rest[u + 5..])?;
    let rest = &rest[..u];
    let p = rfind(rest, b",pid=")?;
    let pid = pid(&rest[p + 5..])?;
    let rest = &rest[..p];
    let (constraint, names) = if whole {
        let (constraint, after) = head(rest)?;
        (Some(constraint), after)
    } else {
        (None, fragment(rest)?)
    };
    let mut c = OomContext {
        constraint,
        oom_memcg: None,
        task_memcg: None,
        comm: None,
        pid,
        uid,
        names,
    };
    let mut readings = c.readings();
    if let Some(first) = readings.next() {
        let (mut oom, mut task, mut comm) = (
            Some(first.oom_memcg),
            Some(first.task_memcg),
            Some(first.comm),
        );
        for r in readings {
            agree(&mut oom, r.oom_memcg);
            agree(&mut task, r.task_memcg);
            agree(&mut comm, r.comm);
        }
        c.oom_memcg = oom.flatten();
        c.task_memcg = task.flatten();
        c.comm = comm;
    } else {
        return None;
    }
    Some(c)
}

fn agree<V: PartialEq>(kept: &mut Option<V>, other: V) {
    if kept.as_ref().is_some_and(|k| *k != other) {
        *kept = None;
    }
}

/// `constraint=<C>,nodemask=<list>[,cpuset=<name>,mems_allowed=<list>]`
/// (`dump_oom_victim` and `cpuset_print_current_mems_allowed`), then the
/// names.
fn head(rest: &[u8]) -> Option<(&[u8], Names<'_>)> {
    let rest = rest.strip_prefix(b"constraint=")?;
    let end = rest.iter().position(|&b| b == b',')?;
    let (constraint, rest) = rest.split_at(end);
    if constraint.is_empty()
        || !constraint
            .iter()
            .all(|b| b.is_ascii_uppercase() || *b == b'_')
    {
        return None;
    }
    let rest = rest.strip_prefix(b",nodemask=")?;
    let rest = match rest.strip_prefix(b"(null)") {
        Some(r) => r,
        None => skip_node_list(rest)?,
    };
    let rest = match rest.strip_prefix(b",cpuset=") {
        Some(r) => after_cpuset(r)?,
        None => rest,
    };
    Some((constraint, memcgs(rest)?))
}

/// The cpuset's name is one cgroup's name (no `/` in it) or `/` for the
/// root: so the first `/` after it starts a memory cgroup's path.
fn after_cpuset(rest: &[u8]) -> Option<&[u8]> {
    const MEMS: &[u8] = b",mems_allowed=";
    let mems = match rest.strip_prefix(b"/") {
        Some(r) => r.strip_prefix(MEMS)?,
        None => {
            // No path at all: a kernel without memory cgroups, whose
            // lines ctrmon has no use for (and could not split).
            let slash = rest.iter().position(|&b| b == b'/')?;
            let before = &rest[..slash];
            let before = before
                .strip_suffix(b",oom_memcg=".as_slice())
                .or_else(|| before.strip_suffix(b",global_oom,task_memcg=".as_slice()))
                .unwrap_or(before);
            // The list holds no `,mems_allowed=`: the last one is real.
            let m = rfind(before, MEMS)?;
            &rest[m + MEMS.len()..]
        }
    };
    skip_node_list(mems)
}

/// A node list as `%*pbl` prints it (`0`, `0-3,8`): digits, `-`, and
/// commas that a digit follows. May be empty.
fn skip_node_list(rest: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'0'..=b'9' | b'-' => i += 1,
            b',' if rest.get(i + 1).is_some_and(u8::is_ascii_digit) => i += 1,
            _ => break,
        }
    }
    Some(&rest[i..])
}

/// After the node lists: `,oom_memcg=<p>,task_memcg=<p>`, or
/// `,global_oom,task_memcg=<p>`, or (no memory cgroups in the kernel)
/// nothing; then `,task=<comm>`.
fn memcgs(rest: &[u8]) -> Option<Names<'_>> {
    if let Some(r) = rest.strip_prefix(b",oom_memcg=") {
        return Some(Names::Limit(r));
    }
    if let Some(r) = rest.strip_prefix(b",global_oom,task_memcg=") {
        return Some(Names::Task(r));
    }
    Some(Names::Comm(rest.strip_prefix(b",task=")?))
}

/// The tail of a line printed in pieces, which another CPU's output cut: it
/// starts at one of the `pr_cont` calls.
fn fragment(rest: &[u8]) -> Option<Names<'_>> {
    if let Some(r) = rest.strip_prefix(b",cpuset=") {
        return memcgs(after_cpuset(r)?);
    }
    if let Some(r) = rest.strip_prefix(b",mems_allowed=") {
        return memcgs(skip_node_list(r)?);
    }
    if let Some(r) = rest.strip_prefix(b",task_memcg=") {
        return Some(Names::Task(r));
    }
    memcgs(rest)
}

/// The part of a context line that names choose, still to be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names<'a> {
    /// `<oom_memcg>,task_memcg=<task_memcg>,task=<comm>`
    Limit(&'a [u8]),
    /// `<task_memcg>,task=<comm>`: a global OOM, or a fragment that starts
    /// at `,task_memcg=`.
    Task(&'a [u8]),
    /// `<comm>` alone.
    Comm(&'a [u8]),
}

/// One way to read a context line's names that the kernel's format allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading<'a> {
    /// The cgroup whose limit fired; `None` for a global OOM or when the
    /// line does not say.
    pub oom_memcg: Option<Escaped<'a>>,
    /// The victim's cgroup, when the line says.
    pub task_memcg: Option<Escaped<'a>>,
    /// The victim's name.
    pub comm: Escaped<'a>,
}

impl<'a> OomContext<'a> {
    /// Every reading of the line's names that the kernel's format allows;
    /// one for any line whose names hold none of the separators. The one
    /// the kernel meant is among them.
    pub fn readings(&self) -> impl Iterator<Item = Reading<'a>> + 'a {
        let (blob, limit) = match self.names {
            Names::Limit(b) => (b, true),
            Names::Task(b) => (b, false),
            Names::Comm(c) => {
                let one = is_comm(c).then_some(Reading {
                    oom_memcg: None,
                    task_memcg: None,
                    comm: Escaped(c),
                });
                return Box::new(one.into_iter()) as Box<dyn Iterator<Item = Reading<'a>>>;
            }
        };
        const TASK: &[u8] = b",task=";
        // A name is at most 15 bytes, each at most 4 when escaped.
        let from = blob.len().saturating_sub(TASK.len() + 4 * COMM_MAX);
        Box::new(
            positions(&blob[from..], TASK)
                .map(move |t| from + t)
                .filter(move |&t| is_comm(&blob[t + TASK.len()..]))
                .flat_map(move |t| {
                    let comm = Escaped(&blob[t + TASK.len()..]);
                    let paths = &blob[..t];
                    split_paths(paths, limit).map(move |(oom, task)| Reading {
                        oom_memcg: oom.map(Escaped),
                        task_memcg: Some(Escaped(task)),
                        comm,
                    })
                }),
        )
    }

    /// The reading whose victim is named `comm` (from the `Killed process`
    /// line that follows for the same pid), when there is exactly one.
    pub fn reading_with_comm(&self, comm: Escaped<'_>) -> Option<Reading<'a>> {
        let mut found = self.readings().filter(|r| r.comm.raw() == comm.raw());
        let one = found.next()?;
        found.next().is_none().then_some(one)
    }
}

/// The longest task name (`TASK_COMM_LEN` less its NUL).
const COMM_MAX: usize = 15;

/// A limit's cgroup (if any) and a victim's.
type PathPair<'a> = (Option<&'a [u8]>, &'a [u8]);

/// `<oom_memcg>,task_memcg=<task_memcg>` split every way that gives two
/// paths with the first an ancestor of the second (or the same); or, for
/// `limit == false`, the whole as one path.
fn split_paths(paths: &[u8], limit: bool) -> Box<dyn Iterator<Item = PathPair<'_>> + '_> {
    const TASK: &[u8] = b",task_memcg=";
    if !limit {
        return Box::new(is_path(paths).then_some((None, paths)).into_iter());
    }
    Box::new(
        positions(paths, TASK)
            .map(move |i| (&paths[..i], &paths[i + TASK.len()..]))
            .filter(|(oom, task)| is_path(oom) && is_path(task) && is_ancestor_or_self(oom, task))
            .map(|(oom, task)| (Some(oom), task)),
    )
}

/// A cgroup path as `pr_cont_cgroup_path` prints it: `/`, or `/` and names
/// joined by `/`, none empty, `.` or `..`, escaped as the log escapes.
fn is_path(p: &[u8]) -> bool {
    if p == b"/" {
        return true;
    }
    let Some(rest) = p.strip_prefix(b"/") else {
        return false;
    };
    is_escaped(p)
        && rest
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// A task name as logged: at most 15 bytes once unescaped.
fn is_comm(c: &[u8]) -> bool {
    is_escaped(c) && Escaped(c).bytes().count() <= COMM_MAX
}

/// Whether `text` is what the log's escaping can produce: printable ASCII
/// but the backslash, and `\xNN` for exactly the bytes it escapes.
fn is_escaped(text: &[u8]) -> bool {
    let mut rest = text;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'\\' {
            let [b'x', h, l, after @ ..] = tail else {
                return false;
            };
            let (Some(h), Some(l)) = (lower_hex(*h), lower_hex(*l)) else {
                return false;
            };
            let v = h << 4 | l;
            if ((0x20..0x7f).contains(&v) && v != b'\\') || v == 0 {
                return false;
            }
            rest = after;
        } else if !(0x20..0x7f).contains(&b) {
            return false;
        } else {
            rest = tail;
        }
    }
    true
}

fn lower_hex(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    }
}

/// `%d` of a `uid_t`: a uid above `i32::MAX` prints negative.
fn uid(digits: &[u8]) -> Option<u32> {
    match digits.strip_prefix(b"-") {
        Some(d) => {
            let v = decimal(d).filter(|&v| v <= 1 << 31)?;
            Some((v as u32).wrapping_neg())
        }
        None => u32::try_from(decimal(digits)?).ok(),
    }
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
