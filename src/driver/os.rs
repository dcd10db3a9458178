//! The real driver: the monotonic clock and `polling`.
//!
//! `polling` 3 costs about five system calls per `wait` on Linux (it re-arms its timerfd and
//! its notifier on every call). The loop therefore does not wait at all when the timeout is
//! zero and nothing is registered or notified, which is every iteration of a loop that only
//! has timers and watchers.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Notifier;

pub(crate) struct OsDriver {
    poller: Arc<polling::Poller>,
    events: polling::Events,
    notifier: Arc<Notifier>,
    start: Instant,
    /// Sources registered with the poller.
    registered: usize,
}

impl OsDriver {
    pub(crate) fn new(event_capacity: usize) -> io::Result<OsDriver> {
        let poller = Arc::new(polling::Poller::new()?);
        let capacity =
            std::num::NonZeroUsize::new(event_capacity.max(1)).unwrap_or(std::num::NonZeroUsize::MIN);
        Ok(OsDriver {
            notifier: Arc::new(Notifier::new(poller.clone())),
            poller,
            events: polling::Events::with_capacity(capacity),
            start: Instant::now(),
            registered: 0,
        })
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub(crate) fn wait(&mut self, timeout_ms: Option<u64>) -> io::Result<bool> {
        if timeout_ms == Some(0) && self.registered == 0 && !self.notifier.is_raised() {
            return Ok(false);
        }
        self.events.clear();
        self.poller.wait(&mut self.events, timeout_ms.map(Duration::from_millis))?;
        Ok(timeout_ms != Some(0))
    }

    pub(crate) fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    #[cfg(unix)]
    pub(crate) fn backend_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.poller.as_raw_fd()
    }
}
