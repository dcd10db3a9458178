//! Deferred calls: a one-shot callback on the next iteration, with no handle to open or
//! close (Node's `setImmediate`, asyncio's `call_soon`).
//!
//! They run at the start of the check phase, as Node's immediates do, in the order they
//! were deferred. A call deferred while the queue runs waits for the next iteration, so a
//! callback that defers itself cannot starve the loop. While any call is pending the poll
//! does not block, and the loop is alive.

use std::collections::VecDeque;

use crate::event_loop::Loop;

/// A deferred call.
type Deferred<S> = Box<dyn FnOnce(&mut Loop<S>)>;

/// The loop's queue of deferred calls.
pub(crate) struct DeferQueue<S> {
    calls: VecDeque<Deferred<S>>,
}

impl<S> Default for DeferQueue<S> {
    fn default() -> Self {
        DeferQueue { calls: VecDeque::new() }
    }
}

impl<S> DeferQueue<S> {
    /// Whether calls are waiting.
    pub(crate) fn is_pending(&self) -> bool {
        !self.calls.is_empty()
    }
}

impl<S> Loop<S> {
    /// Calls `f` once, from the loop, on its next iteration (at the start of the check
    /// phase, as Node's `setImmediate`), after the calls deferred before it. Never inside
    /// this call. A pending call keeps the loop alive and keeps the poll from blocking; it
    /// is cheaper than a zero-delay [`Timer`](crate::Timer), which needs a handle opened,
    /// started and closed.
    ///
    /// ```
    /// use evloop::{Loop, RunMode};
    ///
    /// let mut lp = Loop::with_state(Vec::new())?;
    /// lp.defer(|lp| {
    ///     lp.state.push("first");
    ///     lp.defer(|lp| lp.state.push("third: deferred from a deferred call, one iteration later"));
    /// });
    /// lp.defer(|lp| lp.state.push("second"));
    /// assert!(lp.state.is_empty(), "never inside defer");
    /// lp.run(RunMode::Default)?;
    /// assert_eq!(lp.state.len(), 3);
    /// assert_eq!(lp.state[..2], ["first", "second"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn defer(&mut self, f: impl FnOnce(&mut Loop<S>) + 'static) {
        self.deferred.calls.push_back(Box::new(f));
    }

    /// Runs the calls deferred before this pass began, in order. They are popped one at a
    /// time, so a panicking call leaves the rest queued for the next pass.
    pub(crate) fn run_deferred(&mut self) {
        for _ in 0..self.deferred.calls.len() {
            let Some(call) = self.deferred.calls.pop_front() else { break };
            self.count_event();
            call(self);
        }
    }
}
