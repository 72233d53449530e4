//! JSON lines, written by hand: one object per event.
//!
//! Paths are bytes, not text. A path that is valid UTF-8 is one JSON
//! string; one that is not (a cgroup named with a byte such as `\xff`) keeps
//! a readable form with U+FFFD in place of each bad byte, which is ambiguous,
//! plus a `<key>_hex` field holding every byte of the path in hex, which is
//! not: `"cgroup":"/x/audit-\ufffd","cgroup_hex":"2f782f61756469742dff"`.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `s` to `out` as a JSON string literal.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One event object being built: `{"event":NAME,"ts":...` then fields.
pub struct Line {
    buf: String,
}

impl Line {
    pub fn new(event: &str) -> Line {
        let mut buf = String::with_capacity(128);
        buf.push_str("{\"event\":");
        string(&mut buf, event);
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let _ = write!(buf, ",\"ts\":{}.{:06}", ts.as_secs(), ts.subsec_micros());
        Line { buf }
    }

    pub fn num(mut self, key: &str, v: impl std::fmt::Display) -> Line {
        self.key(key);
        let _ = write!(self.buf, "{v}");
        self
    }

    pub fn str(mut self, key: &str, v: &str) -> Line {
        self.key(key);
        string(&mut self.buf, v);
        self
    }

    /// A path: as text when it is UTF-8, else as text with U+FFFD plus
    /// `<key>_hex`, the exact bytes.
    pub fn path(self, key: &str, p: &Path) -> Line {
        let bytes = p.as_os_str().as_bytes();
        match std::str::from_utf8(bytes) {
            Ok(s) => self.str(key, s),
            Err(_) => {
                let mut l = self.str(key, &String::from_utf8_lossy(bytes));
                l.key(&format!("{key}_hex"));
                l.buf.push('"');
                for b in bytes {
                    let _ = write!(l.buf, "{b:02x}");
                }
                l.buf.push('"');
                l
            }
        }
    }

    pub fn bool(mut self, key: &str, v: bool) -> Line {
        self.key(key);
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }

    /// An array of objects, one per item, each written by `each` onto a
    /// line of its own (whose `event` and `ts` are left out).
    pub fn list<I>(mut self, key: &str, items: I, each: impl Fn(Line, I::Item) -> Line) -> Line
    where
        I: Iterator,
    {
        self.key(key);
        self.buf.push('[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            let obj = each(Line { buf: String::new() }, item);
            // Fields are written as `,"k":v`: the first comma opens the object.
            self.buf.push('{');
            self.buf
                .push_str(obj.buf.strip_prefix(',').unwrap_or(&obj.buf));
            self.buf.push('}');
        }
        self.buf.push(']');
        self
    }

    fn key(&mut self, key: &str) {
        self.buf.push(',');
        string(&mut self.buf, key);
        self.buf.push(':');
    }

    /// The finished line, with its closing brace and newline.
    pub fn finish(mut self) -> String {
        self.buf.push_str("}\n");
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_objects() {
        let text = Line::new("oom")
            .list(
                "victims",
                [(1, "a\"b"), (2, "c")].into_iter(),
                |l, (p, c)| l.num("pid", p).str("comm", c),
            )
            .finish();
        assert!(
            text.ends_with(
                r#","victims":[{"pid":1,"comm":"a\"b"},{"pid":2,"comm":"c"}]}
"#
            ),
            "{text}"
        );
    }

    #[test]
    fn escapes_strings() {
        let mut s = String::new();
        string(&mut s, "a\"b\\c\nd\te\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\te\u0001é""#);
    }

    #[test]
    fn builds_a_line() {
        let text = Line::new("exit")
            .num("pid", 42)
            .num("signal", 9)
            .bool("oom_killed", true)
            .str("cgroup", "/x y")
            .finish();
        assert!(text.starts_with("{\"event\":\"exit\",\"ts\":"), "{text}");
        assert!(
            text.ends_with(",\"pid\":42,\"signal\":9,\"oom_killed\":true,\"cgroup\":\"/x y\"}\n"),
            "{text}"
        );
        let ts = text
            .split("\"ts\":")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let (secs, micros) = ts.split_once('.').unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_600_000_000);
        assert_eq!(micros.len(), 6);
    }

    #[test]
    fn paths_that_are_not_utf8_carry_their_bytes() {
        use std::ffi::OsStr;
        let ok = Line::new("e").path("cgroup", Path::new("/a/é")).finish();
        assert!(ok.ends_with(",\"cgroup\":\"/a/é\"}\n"), "{ok}");
        let raw = Path::new(OsStr::from_bytes(b"/x/audit-\xff"));
        let bad = Line::new("e").path("cgroup", raw).finish();
        assert!(
            bad.ends_with(
                ",\"cgroup\":\"/x/audit-\u{fffd}\",\"cgroup_hex\":\"2f782f61756469742dff\"}\n"
            ),
            "{bad}"
        );
        // A name that really is U+FFFD has no hex field: the two differ.
        let real = Line::new("e")
            .path("cgroup", Path::new("/x/audit-\u{fffd}"))
            .finish();
        assert!(!real.contains("_hex"), "{real}");
    }
}
