//! Hang-ups: the exit FIFO of containerd 0.2's shim, or any fd whose peer
//! closing means "it is over".
//!
//! The shim opened a FIFO for writing and kept it open until it exited; the
//! monitor held the read end and waited for `EPOLLHUP`. The watch registers
//! no interest bits at all, because epoll always reports `EPOLLHUP` and
//! `EPOLLERR`: asking for `EPOLLIN` too would make a FIFO with unread data
//! wake the loop forever. The flags are tested as bits, never compared for
//! equality (containerd 0.2 checked `events == EPOLLHUP` and so missed the
//! hang-up of a FIFO that still held data, reported as `EPOLLIN|EPOLLHUP`).
//!
//! The race this mechanism cannot close on its own: a reader opened after the
//! last writer has already gone never sees a hang-up, and one opened before
//! any writer has connected sees none until a writer comes and goes. Pair it
//! with a pidfd watch on the writer when that matters.

use rustix::event::epoll::EventFlags;

use crate::event::EventKind;

pub(crate) const INTEREST: EventFlags = EventFlags::empty();

/// What ends a hang-up watch: the peer hung up, or the fd is in error.
#[inline(always)]
pub(crate) fn is_hangup(flags: EventFlags) -> bool {
    flags.intersects(EventFlags::HUP | EventFlags::ERR | EventFlags::RDHUP)
}

#[inline(always)]
pub(crate) fn on_ready(flags: EventFlags) -> Option<EventKind> {
    is_hangup(flags).then_some(EventKind::HungUp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_tested_as_bits() {
        assert!(is_hangup(EventFlags::HUP));
        assert!(is_hangup(EventFlags::IN | EventFlags::HUP));
        assert!(is_hangup(EventFlags::ERR));
        assert!(is_hangup(
            EventFlags::IN | EventFlags::ERR | EventFlags::HUP
        ));
        assert!(!is_hangup(EventFlags::IN));
        assert!(!is_hangup(EventFlags::empty()));
    }
}
