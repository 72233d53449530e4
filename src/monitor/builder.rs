//! [`Builder`]: a monitor with options.

use std::marker::PhantomData;

use super::Monitor;
use crate::Result;

/// The options of a [`Monitor`], from [`Monitor::builder`].
#[derive(Debug)]
#[must_use = "a builder makes nothing until `build`"]
pub struct Builder<T> {
    pub(super) kernel_log: bool,
    pub(super) receivers: PhantomData<fn() -> T>,
}

impl<T> Builder<T> {
    /// Whether to read the kernel log (`/dev/kmsg`), from which an
    /// OOM-killed process is known by its pid; on by default. Without it,
    /// OOM kills are attributed to exits by the counter rule alone (see
    /// [`Exit::oom_killed`](crate::Exit::oom_killed)).
    pub fn kernel_log(mut self, on: bool) -> Self {
        self.kernel_log = on;
        self
    }

    /// Makes the monitor, as [`Monitor::new`] does.
    ///
    /// # Errors
    ///
    /// As [`Monitor::new`].
    pub fn build(self) -> Result<Monitor<T>> {
        Monitor::create(self.kernel_log)
    }
}
