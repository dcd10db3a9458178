//! The driver seam: the clock, waiting for readiness with a timeout, and waking a blocked
//! wait from another thread.
//!
//! Everything that decides what runs when lives in the loop core; only this enum is swapped.
//! The real driver sits on `polling`; the simulated one (virtual clock, in-memory network)
//! and, where the numbers demand it, a Linux epoll driver are further variants. Nothing
//! outside `driver/` knows which one runs, and user code never names it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub(crate) mod os;

/// The backend under a loop.
pub(crate) enum Driver {
    /// The operating system: monotonic clock, `polling` (epoll, kqueue, ...).
    Os(os::OsDriver),
}

impl Driver {
    /// Milliseconds since the driver was created, from a monotonic clock.
    pub(crate) fn now_ms(&self) -> u64 {
        match self {
            Driver::Os(d) => d.now_ms(),
        }
    }

    /// Waits until something is ready, the notifier is raised, or `timeout_ms` has passed
    /// (`None`: no timeout). Returns whether it really waited in the kernel, which is the
    /// only case in which the caller needs to measure idle time.
    pub(crate) fn wait(&mut self, timeout_ms: Option<u64>) -> io::Result<bool> {
        match self {
            Driver::Os(d) => d.wait(timeout_ms),
        }
    }

    /// The notifier that wakes a blocked [`wait`](Driver::wait) from any thread.
    pub(crate) fn notifier(&self) -> &Arc<Notifier> {
        match self {
            Driver::Os(d) => d.notifier(),
        }
    }

    /// The backend's pollable file descriptor, for embedding.
    #[cfg(unix)]
    pub(crate) fn backend_fd(&self) -> std::os::fd::RawFd {
        match self {
            Driver::Os(d) => d.backend_fd(),
        }
    }
}

/// What a wake raises: a flag the loop checks without a system call, and, the first time it
/// is raised, the backend's own wakeup so that a blocked wait returns.
pub(crate) struct Notifier {
    raised: AtomicBool,
    poller: Arc<polling::Poller>,
}

impl Notifier {
    pub(crate) fn new(poller: Arc<polling::Poller>) -> Notifier {
        Notifier { raised: AtomicBool::new(false), poller }
    }

    /// Raises the flag, and interrupts the backend if it was not raised yet.
    pub(crate) fn notify(&self) -> io::Result<()> {
        if !self.raised.swap(true, Ordering::AcqRel) {
            self.poller.notify()?;
        }
        Ok(())
    }

    /// Whether a wake is waiting to be handled.
    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Lowers the flag; returns whether it was raised.
    pub(crate) fn take(&self) -> bool {
        self.raised.swap(false, Ordering::AcqRel)
    }

    /// Raises the flag without touching the backend (used to rescan after a panic).
    pub(crate) fn raise_quietly(&self) {
        self.raised.store(true, Ordering::Release);
    }
}
