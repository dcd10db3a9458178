//! The loop's builder: state, event capacity, thread pool size, backend, slow-callback
//! threshold.

use std::io;
use std::time::Duration;

use crate::driver::{Backend, Driver};
use crate::event_loop::Loop;
use crate::pool::Pool;

/// Options for a [`Loop`]: `Loop::builder().state(s).build()`.
#[derive(Debug)]
pub struct Builder<S = ()> {
    state: S,
    event_capacity: usize,
    threadpool_size: Option<usize>,
    backend: Option<Backend>,
    /// See `Builder::slow_callback_threshold` (in `slow.rs`).
    pub(crate) slow_callback_threshold: Option<Duration>,
}

impl Builder<()> {
    pub(crate) fn new() -> Builder<()> {
        Builder {
            state: (),
            event_capacity: 1024,
            threadpool_size: None,
            backend: None,
            slow_callback_threshold: None,
        }
    }
}

impl<S> Builder<S> {
    /// The application state the loop owns, reachable as `lp.state` in every callback.
    pub fn state<T>(self, state: T) -> Builder<T> {
        Builder {
            state,
            event_capacity: self.event_capacity,
            threadpool_size: self.threadpool_size,
            backend: self.backend,
            slow_callback_threshold: self.slow_callback_threshold,
        }
    }

    /// How many readiness events one poll can return (default 1024), clamped to
    /// 1..=65,536. More pending events are picked up by the next poll.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// How many worker threads the thread pool starts on first use (clamped to 1..=1024).
    /// Without it, the `EVLOOP_THREADPOOL_SIZE` environment variable decides, else 4.
    pub fn threadpool_size(mut self, threads: usize) -> Self {
        self.threadpool_size = Some(threads);
        self
    }

    /// The mechanism to wait with (default: [`Backend::from_env`], that is the
    /// `EVLOOP_BACKEND` environment variable, else the platform's default).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Creates the loop. Fails if the operating system refuses a poller, or if no backend
    /// was chosen and `EVLOOP_BACKEND` names none (`InvalidInput`, naming the variable).
    pub fn build(self) -> io::Result<Loop<S>> {
        let backend = match self.backend {
            Some(backend) => backend,
            None => Backend::from_env()?,
        };
        let driver = Driver::os(self.event_capacity, backend)?;
        let mut lp = Loop::from_parts(self.state, driver, Pool::new(self.threadpool_size));
        lp.slow_callback_threshold = self.slow_callback_threshold;
        Ok(lp)
    }
}
