//! Slow-callback warnings (asyncio's debug mode and its `slow_callback_duration`).
//!
//! A callback that holds the loop longer than a threshold delays every other handle: it is
//! logged at `warn`, with its handle's kind, its id and how long it ran. The measurement
//! reads the driver's clock, so it is exact on a simulated loop (where
//! [`SimClock::spend`](crate::sim::SimClock::spend) makes a callback take virtual time) and
//! the monotonic clock on the real one. Off by default, and free when off: the loop then
//! only tests an `Option` per callback and reads no clock.
//!
//! Measured: the callbacks of handles (timers, watchers, wakers and channels, reads,
//! accepted connections, drains, write, connect and shutdown completions). Not measured:
//! callbacks that belong to no open handle ([`Loop::defer`]red calls, thread-pool
//! completions, close callbacks, cancellations).

use std::time::Duration;

use crate::builder::Builder;
use crate::event_loop::Loop;
use crate::handle::Handle;

impl<S> Builder<S> {
    /// Logs every callback that runs longer than `threshold`, at `warn` level through the
    /// `log` crate, with its handle's kind, id and duration (asyncio's
    /// `slow_callback_duration`). Off by default; see also
    /// [`Loop::set_slow_callback_threshold`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::Loop;
    ///
    /// // "slow callback: Timer Handle(0v0@1) ran for 31.2ms (threshold 10ms)"
    /// let lp = Loop::builder().slow_callback_threshold(Duration::from_millis(10)).build()?;
    /// assert_eq!(lp.slow_callback_threshold(), Some(Duration::from_millis(10)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn slow_callback_threshold(mut self, threshold: Duration) -> Self {
        self.slow_callback_threshold = Some(threshold);
        self
    }
}

impl<S> Loop<S> {
    /// Sets the slow-callback threshold (see [`Builder::slow_callback_threshold`]), or turns
    /// the warnings off with `None`. Takes effect from the next callback; works on a
    /// simulated loop too, where durations are virtual time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::sim::Sim;
    ///
    /// let mut sim = Sim::new(1, ());
    /// assert_eq!(sim.slow_callback_threshold(), None);
    /// sim.set_slow_callback_threshold(Some(Duration::from_millis(10)));
    /// assert_eq!(sim.slow_callback_threshold(), Some(Duration::from_millis(10)));
    /// ```
    pub fn set_slow_callback_threshold(&mut self, threshold: Option<Duration>) {
        self.slow_callback_threshold = threshold;
    }

    /// The slow-callback threshold, `None` when the warnings are off (the default).
    pub fn slow_callback_threshold(&self) -> Option<Duration> {
        self.slow_callback_threshold
    }

    /// Runs `call` and logs it if it took longer than `threshold`. Only `call_guarded` calls
    /// this, and only when a threshold is set.
    #[inline(never)]
    pub(crate) fn call_timed<R>(
        &mut self,
        h: Handle,
        threshold: Duration,
        call: impl FnOnce(&mut Self) -> R,
    ) -> R {
        let start = self.driver.elapsed();
        let result = call(self);
        let took = self.driver.elapsed().saturating_sub(start);
        if took > threshold {
            // A callback may have closed its handle: it stays in its slot until the close phase.
            let kind = self.handles.get(h).map(|b| b.kind);
            let kind = kind.map_or_else(|| "handle".to_string(), |k| format!("{k:?}"));
            log::warn!("slow callback: {kind} {h:?} ran for {took:?} (threshold {threshold:?})");
        }
        result
    }
}
