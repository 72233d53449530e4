//! The crate's error type: an `io::Error` that also says what it was about.
//!
//! A monitor juggles thousands of pids, fds and cgroup paths; an error that
//! says only "No such file or directory" is useless in a runtime's log. Every
//! [`Error`] therefore carries the operation that failed and the pid, fd, path
//! or watch it concerned, and converts losslessly into [`std::io::Error`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What an [`Error`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// Nothing in particular (the epoll instance itself, for example).
    None,
    /// A process id.
    Pid(i32),
    /// A file descriptor number, as the caller handed it over.
    Fd(i32),
    /// A file or directory.
    Path(PathBuf),
    /// A watch that is not (or no longer) in the monitor's table.
    Watch(crate::WatchId),
    /// A value the caller supplied (a trigger string, a size), quoted.
    Value(String),
}

/// An error from ctrmon: the failed operation, what it concerned, and the
/// underlying OS error.
///
/// ```
/// let err = ctrmon::Monitor::<()>::new()
///     .and_then(|m| m.watch(ctrmon::watch::Process::pid(i32::MAX), ()).map(|_| ()))
///     .unwrap_err();
/// assert!(err.is_process_gone());
/// assert_eq!(err.pid(), Some(i32::MAX));
/// assert!(err.to_string().contains(&i32::MAX.to_string()));
/// ```
pub struct Error(Box<Inner>);

/// Boxed so that an `Error`, and so every `EventKind`, which may carry one,
/// is one pointer wide: events move by value on the dispatch path.
struct Inner {
    op: &'static str,
    subject: Subject,
    source: io::Error,
}

/// `Result` with ctrmon's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an error for `op` (a short verb phrase such as `"open pidfd"`)
    /// on `subject`.
    pub fn new(op: &'static str, subject: Subject, source: io::Error) -> Self {
        Error(Box::new(Inner {
            op,
            subject,
            source,
        }))
    }

    pub(crate) fn os(op: &'static str, subject: Subject, errno: rustix::io::Errno) -> Self {
        Self::new(op, subject, errno.into())
    }

    #[allow(dead_code)] // used by the cgroup layer as it lands
    pub(crate) fn path(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self::new(op, Subject::Path(path.to_path_buf()), source)
    }

    pub(crate) fn invalid(op: &'static str, subject: Subject, why: impl Into<String>) -> Self {
        Self::new(
            op,
            subject,
            io::Error::new(io::ErrorKind::InvalidInput, why.into()),
        )
    }

    /// The operation that failed, such as `"open pidfd"`.
    pub fn op(&self) -> &'static str {
        self.0.op
    }

    /// What the error concerns.
    pub fn subject(&self) -> &Subject {
        &self.0.subject
    }

    /// The pid involved, if any.
    pub fn pid(&self) -> Option<i32> {
        match self.0.subject {
            Subject::Pid(p) => Some(p),
            _ => None,
        }
    }

    /// The path involved, if any.
    pub fn path_involved(&self) -> Option<&Path> {
        match &self.0.subject {
            Subject::Path(p) => Some(p),
            _ => None,
        }
    }

    /// The kind of the underlying I/O error.
    pub fn kind(&self) -> io::ErrorKind {
        self.0.source.kind()
    }

    /// The raw `errno`, if the error came from the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.0.source.raw_os_error()
    }

    /// True when the process is not there: it exited and was reaped (by us or
    /// by someone else) before it could be watched, so its exit status is
    /// lost to this monitor, or it never existed. This is `ESRCH` from
    /// `pidfd_open`.
    pub fn is_process_gone(&self) -> bool {
        matches!(self.0.subject, Subject::Pid(_))
            && self.0.source.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error())
    }

    /// True when the process ran out of file descriptors (`EMFILE`/`ENFILE`).
    pub fn is_fd_limit(&self) -> bool {
        matches!(
            self.0.source.raw_os_error(),
            Some(e) if e == rustix::io::Errno::MFILE.raw_os_error()
                || e == rustix::io::Errno::NFILE.raw_os_error()
        )
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.0.source
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::None => Ok(()),
            Subject::Pid(p) => write!(f, "pid {p}"),
            Subject::Fd(fd) => write!(f, "fd {fd}"),
            Subject::Path(p) => write!(f, "{}", p.display()),
            Subject::Watch(w) => write!(f, "{w}"),
            Subject::Value(v) => write!(f, "{v:?}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.op)?;
        if self.0.subject != Subject::None {
            write!(f, " {}", self.0.subject)?;
        }
        write!(f, ": {}", self.0.source)?;
        if self.is_process_gone() {
            f.write_str(
                " (no such process: it never existed, or it already exited and was reaped, \
                 so its exit status is lost)",
            )?;
        } else if self.is_fd_limit() {
            f.write_str(" (the open-files limit is reached; see `ulimit -n`)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("op", &self.0.op)
            .field("subject", &self.0.subject)
            .field("source", &self.0.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.source)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = e.0.source.kind();
        io::Error::new(kind, e)
    }
}
