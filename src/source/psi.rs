//! PSI triggers: `some|full <stall µs> <window µs>` written to a pressure
//! file (a cgroup's `cpu|memory|io.pressure`, or `/proc/pressure/*`), with
//! the fd kept open and polled for `EPOLLPRI`.
//!
//! One trigger per fd (a second write is `EBUSY`). Without
//! `CAP_SYS_RESOURCE` the kernel accepts only windows that are a multiple of
//! 2 s and answers `EINVAL` otherwise; that becomes an error which says so.
//! When the cgroup is removed the fd reports `EPOLLPRI | EPOLLERR` and then
//! reads `ENODEV`.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::event::epoll::EventFlags;
use rustix::io::Errno;

use super::cgroupfs::{is_removed, open_pressure_file, read_at_start};
use super::Outcome;
use crate::cgroup::parse::psi::PsiTrigger;
use crate::event::EventKind;
use crate::{Error, Result};

pub(crate) const INTEREST: EventFlags = EventFlags::PRI;

pub(crate) struct PsiWatch {
    pub(crate) fd: OwnedFd,
    pub(crate) file: PathBuf,
}

impl PsiWatch {
    pub(crate) fn arm(file: &Path, trigger: &PsiTrigger) -> Result<PsiWatch> {
        let fd = open_pressure_file(file)?;
        let text = trigger.to_kernel_string();
        // One write, NUL-terminated: the kernel's handler for /proc/pressure
        // overwrites the last byte written with a NUL, so without our own
        // "some 150000 2000000" would arrive as a 200 ms window.
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
        match rustix::io::write(&fd, &bytes) {
            Ok(_) => {}
            Err(Errno::INVAL) => {
                let why = if trigger.needs_privilege() {
                    format!(
                        "the kernel refused trigger {text:?} (EINVAL): without CAP_SYS_RESOURCE \
                         the window must be a multiple of 2 s"
                    )
                } else {
                    format!("the kernel refused trigger {text:?} (EINVAL)")
                };
                return Err(Error::path(
                    "write PSI trigger",
                    file,
                    io::Error::new(io::ErrorKind::InvalidInput, why),
                ));
            }
            Err(e) => return Err(Error::path("write PSI trigger", file, e.into())),
        }
        Ok(PsiWatch {
            fd,
            file: file.to_path_buf(),
        })
    }

    pub(crate) fn on_ready(&mut self, flags: EventFlags) -> Outcome {
        if flags.contains(EventFlags::ERR) {
            let mut buf = [0u8; 256];
            match read_at_start(&self.fd, &mut buf) {
                Err(e) if is_removed(e) => return Outcome::One(EventKind::Removed),
                Err(e) => {
                    return Outcome::One(EventKind::Failed(Error::path(
                        "read",
                        &self.file,
                        e.into(),
                    )))
                }
                // An error that reads fine would stay level-triggered and
                // spin the loop: end the watch instead.
                Ok(_) => {
                    return Outcome::One(EventKind::Failed(Error::path(
                        "poll",
                        &self.file,
                        io::Error::other("EPOLLERR on the pressure file"),
                    )))
                }
            }
        }
        if flags.contains(EventFlags::PRI) {
            Outcome::One(EventKind::Psi)
        } else {
            Outcome::Nothing
        }
    }
}
