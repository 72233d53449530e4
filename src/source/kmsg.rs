//! The kernel log, `/dev/kmsg`: where the OOM killer names every victim.
//!
//! The file is pollable (`EPOLLIN` while a record is waiting) and each
//! `read` returns exactly one record. A reader is opened at the end of the
//! buffer (`SEEK_END`: the kills of the past are not ours to report) and
//! non-blocking, so that a readiness another reader of the same fd consumed
//! cannot block the loop. What `read` can say, from `devkmsg_read` in
//! `kernel/printk/printk.c`:
//!
//! - `EAGAIN`: nothing new;
//! - `EPIPE`: the records after the last one read were overwritten (the
//!   ring buffer is small and a burst of OOM reports is large); the reader
//!   has been moved to the oldest record still there, and the next read
//!   returns it. The jump in sequence numbers says how many were lost;
//! - `EINVAL`: the record does not fit the buffer; it is skipped (the
//!   kernel moves on), so it too shows as a jump in sequence numbers.
//!   Records are at most 8 KiB (`CONSOLE_EXT_LOG_MAX`), the buffer's size.
//!
//! Opening it needs root or `CAP_SYSLOG` (with `dmesg_restrict`), and
//! containers often have no `/dev/kmsg`: those cases are
//! [`Unavailable`], a state to report, not an error to fail on.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags, SeekFrom};
use rustix::io::Errno;

use crate::cgroup::parse::kmsg_oom::{self, Record};
use crate::cgroup::parse::ParseError;
use crate::{Error, Result, Subject};

/// Where the kernel log is read.
pub const PATH: &str = "/dev/kmsg";

/// The largest record the kernel hands out (`CONSOLE_EXT_LOG_MAX`).
const RECORD_MAX: usize = 8192;

/// Reads `/dev/kmsg` one record at a time, from the moment it was opened.
pub struct KmsgReader {
    fd: OwnedFd,
    /// The sequence number the next record should have, once one was read.
    expected: Option<u64>,
    /// `EPIPE` was seen before any record told us where we were.
    lost_unknown: bool,
    buf: Box<[u8; RECORD_MAX]>,
}

/// Why the kernel log cannot be read: the monitor then works without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable {
    /// The error `open` or `lseek` gave: `ENOENT` (no `/dev/kmsg`, as in
    /// many containers), `EACCES`/`EPERM` (neither root nor `CAP_SYSLOG`).
    pub errno: Errno,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PATH} is unavailable ({}): OOM victims are not known by pid",
            std::io::Error::from(self.errno)
        )
    }
}

impl std::error::Error for Unavailable {}

/// One step of reading the log.
#[derive(Debug)]
pub struct Next<'a> {
    /// The record's bytes as read (escaped text: printable ASCII and the
    /// newlines that end its lines).
    pub raw: &'a [u8],
    /// Records lost just before this one: overwritten before they were
    /// read (`EPIPE`), too large (`EINVAL`), or not parsable. At least 1
    /// when the count is unknown.
    pub lost_before: u64,
    /// The record, or why it could not be parsed.
    pub record: std::result::Result<Record<'a>, ParseError>,
}

impl KmsgReader {
    /// Opens `/dev/kmsg` at its end: read-only, non-blocking, close-on-exec.
    pub fn open() -> std::result::Result<KmsgReader, Unavailable> {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd =
            rustix::fs::open(PATH, flags, Mode::empty()).map_err(|errno| Unavailable { errno })?;
        rustix::fs::seek(&fd, SeekFrom::End(0)).map_err(|errno| Unavailable { errno })?;
        Ok(KmsgReader {
            fd,
            expected: None,
            lost_unknown: false,
            buf: Box::new([0; RECORD_MAX]),
        })
    }

    /// The next record, or `None` when there is none yet (`EAGAIN`).
    ///
    /// # Errors
    ///
    /// A read failing otherwise than as described in the module docs,
    /// naming `/dev/kmsg`.
    pub fn next_record(&mut self) -> Result<Option<Next<'_>>> {
        let n = loop {
            match rustix::io::read(&self.fd, &mut self.buf[..]) {
                Ok(0) | Err(Errno::AGAIN) => return Ok(None),
                Ok(n) => break n,
                Err(Errno::INTR) => continue,
                // Moved past what was lost: the next read has the record
                // after the gap, whose number says how many.
                Err(Errno::PIPE) => {
                    self.lost_unknown |= self.expected.is_none();
                    continue;
                }
                // Too large for any buffer we could offer: skipped.
                Err(Errno::INVAL) => continue,
                Err(e) => return Err(Error::os("read", Subject::Path(PATH.into()), e)),
            }
        };
        let raw = &self.buf[..n];
        let record = kmsg_oom::parse(raw);
        let lost_before = match &record {
            Ok(r) => {
                let lost = lost_between(self.expected, r.seq);
                self.expected = Some(r.seq.wrapping_add(1));
                if std::mem::take(&mut self.lost_unknown) {
                    lost.max(1)
                } else {
                    lost
                }
            }
            // Its number is unknown; the next good record shows the gap.
            Err(_) => 0,
        };
        Ok(Some(Next {
            raw,
            lost_before,
            record,
        }))
    }
}

/// Records skipped between the one expected and the one read.
fn lost_between(expected: Option<u64>, seq: u64) -> u64 {
    match expected {
        Some(e) if seq > e => seq - e,
        _ => 0,
    }
}

impl AsFd for KmsgReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_come_from_sequence_numbers() {
        assert_eq!(lost_between(None, 17), 0);
        assert_eq!(lost_between(Some(17), 17), 0);
        assert_eq!(lost_between(Some(17), 20), 3);
        // Older than expected (a reader reset): nothing counted as lost.
        assert_eq!(lost_between(Some(17), 5), 0);
    }

    #[test]
    fn unavailable_says_what_and_why() {
        let u = Unavailable {
            errno: Errno::NOENT,
        };
        let text = u.to_string();
        assert!(
            text.contains("/dev/kmsg") && text.contains("No such file"),
            "{text}"
        );
    }
}
