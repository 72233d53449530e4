//! Where JSON lines go, and what happens when writing them fails.
//!
//! Rust starts every program with SIGPIPE ignored, so a closed pipe is an
//! `EPIPE` error here, never a death; nothing in ctrmon writes with
//! `print!`/`eprintln!`, which would panic on it. Each line is one `write`:
//! it is written whole or not at all. On a regular file a short write (a
//! full disk) is truncated back to the last whole line, so a reader never
//! sees half a JSON object.

use std::fmt;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::args::Events;
use crate::{fail, Failure};

/// The standard stream a command writes its events to by default.
#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Writes `ctrmon: <msg>` on standard error if it can; a closed or full
/// stderr is ignored (there is nowhere else to say it).
pub fn say(msg: impl fmt::Display) {
    let line = format!("ctrmon: {msg}\n");
    let _ = io::stderr().write_all(line.as_bytes());
}

/// An open events stream.
pub struct EventSink {
    fd: OwnedFd,
    /// For messages: "standard output", or the file's path.
    name: String,
    regular: bool,
    written: u64,
    lost: u64,
    first_error: Option<io::Error>,
}

impl EventSink {
    /// Opens `--events FILE` (created or truncated; a FIFO must already
    /// have a reader: it is opened non-blocking, so ctrmon never hangs in
    /// `open`), or takes a close-on-exec duplicate of the standard stream.
    pub fn open(events: &Events, default: Stream) -> Result<EventSink, Failure> {
        let (fd, name) = match (events, default) {
            (Events::File(path), _) => (open_file(path)?, path.display().to_string()),
            (Events::Stdout, _) | (Events::Default, Stream::Stdout) => (
                dup(io::stdout().as_fd(), "standard output")?,
                "standard output".into(),
            ),
            (Events::Default, Stream::Stderr) => (
                dup(io::stderr().as_fd(), "standard error")?,
                "standard error".into(),
            ),
        };
        let regular = rustix::fs::fstat(&fd)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
        Ok(EventSink {
            fd,
            name,
            regular,
            written: 0,
            lost: 0,
            first_error: None,
        })
    }

    /// The stream's fd (a duplicate, for watching it for a hang-up).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes one whole line (ending in `\n`), or nothing: on a regular file
    /// a short write is cut back to where the line began.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let start = if self.regular {
            rustix::fs::seek(&self.fd, rustix::fs::SeekFrom::Current(0)).ok()
        } else {
            None
        };
        loop {
            match rustix::io::write(&self.fd, line) {
                Ok(n) if n == line.len() => {
                    self.written += 1;
                    return Ok(());
                }
                Ok(n) => {
                    let undone = start.is_some_and(|pos| {
                        rustix::fs::ftruncate(&self.fd, pos).is_ok()
                            && rustix::fs::seek(&self.fd, rustix::fs::SeekFrom::Start(pos)).is_ok()
                    });
                    let what = if undone {
                        "cut back to the last whole line"
                    } else {
                        "a partial line was left"
                    };
                    return Err(self.lose(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!(
                            "short write ({n} of {} bytes, the device is probably full): {what}",
                            line.len()
                        ),
                    )));
                }
                Err(Errno::INTR) => continue,
                Err(e) => return Err(self.lose(e.into())),
            }
        }
    }

    /// Counts a lost line, keeping the first error; returns a copy of it.
    fn lose(&mut self, e: io::Error) -> io::Error {
        self.lost += 1;
        let copy = match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        };
        self.first_error.get_or_insert(e);
        copy
    }

    /// Says once on stderr how many lines were lost, if any.
    pub fn report_losses(&self) {
        if let Some(e) = &self.first_error {
            say(format_args!(
                "{} of {} events could not be written to {} (first error: {e})",
                self.lost,
                self.lost + self.written,
                self.name
            ));
        }
    }
}

fn dup(fd: BorrowedFd<'_>, what: &str) -> Result<OwnedFd, Failure> {
    rustix::io::fcntl_dupfd_cloexec(fd, 3).or_else(|e| fail(format_args!("duplicate {what}"), e))
}

fn open_file(path: &Path) -> Result<OwnedFd, Failure> {
    let flags =
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match rustix::fs::open(path, flags, Mode::from_raw_mode(0o644)) {
        Ok(fd) => fd,
        Err(Errno::NXIO) => {
            return fail(
                format_args!("open events file {}", path.display()),
                "it is a FIFO with no reader (start the reader first)",
            )
        }
        Err(e) => return fail(format_args!("open events file {}", path.display()), e),
    };
    // Non-blocking only for the open: a slow FIFO reader is waited for, as
    // with any pipe.
    rustix::fs::fcntl_setfl(&fd, OFlags::empty())
        .or_else(|e| fail(format_args!("open events file {}", path.display()), e))?;
    Ok(fd)
}
