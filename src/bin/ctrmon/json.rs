//! JSON lines, written by hand: one object per event, flushed at once.

use std::fmt::Write as _;
use std::io::{self, Write};
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

    pub fn bool(mut self, key: &str, v: bool) -> Line {
        self.key(key);
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }

    fn key(&mut self, key: &str) {
        self.buf.push(',');
        string(&mut self.buf, key);
        self.buf.push(':');
    }

    /// Writes the line (with its closing brace and newline) and flushes.
    pub fn emit(mut self, out: &mut dyn Write) -> io::Result<()> {
        self.buf.push_str("}\n");
        out.write_all(self.buf.as_bytes())?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_strings() {
        let mut s = String::new();
        string(&mut s, "a\"b\\c\nd\te\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\te\u0001é""#);
    }

    #[test]
    fn builds_a_line() {
        let mut out = Vec::new();
        Line::new("exit")
            .num("pid", 42)
            .num("signal", 9)
            .bool("oom_killed", true)
            .str("cgroup", "/x y")
            .emit(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
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
}
