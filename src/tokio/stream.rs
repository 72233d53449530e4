//! [`AsyncMonitor::next`] as a `Stream`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::readiness::Step;
use super::{AsyncMonitor, Shared};
use crate::{Event, Result};

type Readable<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// The events of an [`AsyncMonitor`], owned, as a `Stream`; made by
/// [`AsyncMonitor::events`].
///
/// Each item is what [`AsyncMonitor::next`] would return; the stream ends
/// once the monitor is shut down. Cancel safe in the same way: dropping the
/// stream, or not polling it again, loses nothing. While it waits for
/// readiness it holds one boxed future (an allocation each time it has to
/// wait, none per event), so that any number of streams and `next` calls
/// can wait on one monitor and all be woken.
pub struct Events<'a, T> {
    monitor: &'a AsyncMonitor<T>,
    readable: Option<Readable<'a>>,
}

impl<'a, T> Events<'a, T> {
    pub(super) fn new(monitor: &'a AsyncMonitor<T>) -> Self {
        Events {
            monitor,
            readable: None,
        }
    }
}

impl<T: Clone + 'static> Stream for Events<'_, T> {
    type Item = Result<Event<'static, T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let am = this.monitor;
        loop {
            if let Some(e) = am.pop() {
                return Poll::Ready(Some(Ok(e)));
            }
            if am.monitor.is_shut_down() {
                return Poll::Ready(None);
            }
            let readable = this
                .readable
                .get_or_insert_with(|| Box::pin(am.ready.readable()));
            match readable.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    this.readable = None;
                    if let Err(e) = r {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            let mut drain = Shared {
                monitor: &am.monitor,
                handler: |e: Event<'_, T>| am.push(e),
            };
            match am.ready.step(&mut drain) {
                Step::Delivered(_) | Step::ShutDown | Step::Empty => {}
                Step::Failed(e) => return Poll::Ready(Some(Err(e))),
                Step::Busy => {
                    // Let other tasks run, then look again.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<T> std::fmt::Debug for Events<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("monitor", &self.monitor)
            .field("waiting", &self.readable.is_some())
            .finish()
    }
}
