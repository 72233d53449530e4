//! The signals ctrmon reads through a signalfd instead of dying of them.
//! They are blocked in the main thread before any other thread starts
//! (threads inherit the mask), so they are only ever delivered through the
//! fd; a spawned command unblocks them again before `exec`.

use ctrmon::signal::{self, Signal, SignalFd, SignalSet};

use crate::{fail, Failure};

/// What `run` passes on to its command, as `timeout` and `tini` do.
pub const FORWARDED: [Signal; 9] = [
    Signal::INT,
    Signal::TERM,
    Signal::HUP,
    Signal::QUIT,
    Signal::USR1,
    Signal::USR2,
    Signal::ALARM,
    Signal::WINCH,
    Signal::CONT,
];

/// What ends a `watch`.
pub const ENDING: [Signal; 2] = [Signal::INT, Signal::TERM];

/// Blocks `signals` and opens a blocking signalfd for them.
pub fn block(signals: &[Signal]) -> Result<(SignalSet, SignalFd), Failure> {
    let set = SignalSet::new(signals)?;
    signal::block(&set).or_else(|e| fail("block signals", e))?;
    let fd = SignalFd::new(&set)?;
    Ok((set, fd))
}
