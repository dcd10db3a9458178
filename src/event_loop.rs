//! The loop: run modes, the phases of one iteration, and the operations common to every
//! handle (close, ref/unref, walk).

use std::collections::VecDeque;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::builder::Builder;
use crate::defer::DeferQueue;
use crate::driver::{Backend, Driver};
use crate::handle::{Callback, Extra, Handle, HandleKind, HandleTable, SlotId};
use crate::net::NetState;
use crate::pool::{Completed, Pool};
use crate::timer::TimerQueue;
use crate::waker::Wakers;
use crate::watchers::{Phase, WatcherList};

/// How [`Loop::run`] runs.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum RunMode {
    /// Runs until no active, referenced handle or request is left, or [`Loop::stop`] is
    /// called.
    Default,
    /// Runs one iteration, blocking in the poll if there is nothing to do yet. Timers that
    /// become due during that wait fire before it returns, so each call makes progress.
    Once,
    /// Runs one iteration without ever blocking.
    NoWait,
}

/// Counters of a loop's work since it was created.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Loop iterations (polls) run.
    pub iterations: u64,
    /// Callbacks called: timers, watchers, wakers, I/O, request completions, pool work and
    /// close callbacks.
    pub callbacks: u64,
    /// Time spent blocked in the poll waiting for something to happen.
    pub idle_time: Duration,
    /// I/O readiness events the polls delivered, including those of handles closed earlier
    /// in the same batch, which are dropped (libuv's `uv_metrics_t.events`).
    pub io_events: u64,
}

/// An event loop: owns handles, waits for readiness and calls their callbacks, in libuv's
/// phase order. `S` is the application's state, owned by the loop; every callback receives
/// `&mut Loop<S>` and reaches it as `lp.state`.
///
/// One iteration runs, in order: pending completions, [`Idle`](crate::Idle) watchers,
/// [`Prepare`](crate::Prepare) watchers, the poll for I/O (blocking for as long as the next
/// timer allows, unless an idle watcher is active) and the dispatch of what it found
/// (I/O, [`Waker`](crate::Waker)s, finished thread-pool work), the completions that I/O
/// finished, [deferred calls](Loop::defer) and [`Check`](crate::Check) watchers, close
/// callbacks, then the [`Timer`](crate::Timer)s due at the updated time. `RunMode::Default` also runs the
/// timers already due before its first iteration.
///
/// Callbacks never run inside the call that asked for them (a zero timeout, a close, a
/// wake): they always start from the loop, on a fresh stack.
///
/// # Panics in callbacks
///
/// A panic in a callback propagates out of [`run`](Loop::run). The loop stays usable: the
/// handle whose callback panicked is closed (its close callback, if one was set, runs in the
/// next closing phase) and every other handle is left as it was, so a later `run` carries on.
pub struct Loop<S = ()> {
    /// The application's state.
    pub state: S,
    pub(crate) handles: HandleTable<S>,
    pub(crate) timers: TimerQueue,
    pub(crate) watchers: [WatcherList; 3],
    pub(crate) wakers: Wakers,
    pub(crate) signals: crate::signal::Signals,
    pub(crate) processes: crate::process::Processes,
    /// Handles closed and not yet freed, in close order (slot ids: the loop is implied).
    closing: VecDeque<SlotId>,
    pub(crate) driver: Driver,
    pub(crate) net: NetState,
    pub(crate) pool: Pool<S>,
    pub(crate) completions: VecDeque<Completed<S>>,
    pub(crate) deferred: DeferQueue<S>,
    time: u64,
    seq: u64,
    stop_flag: bool,
    /// The handle whose callback is running, if any.
    dispatching: Option<Handle>,
    /// The handle whose callback is running was closed by it (a cheap test for callbacks
    /// that loop over many events, such as a channel's).
    pub(crate) dispatching_closed: bool,
    running: bool,
    pub(crate) metrics: Metrics,
    /// Callbacks that run longer are logged (`slow.rs`); `None`: no clock is read.
    pub(crate) slow_callback_threshold: Option<Duration>,
}

impl Loop<()> {
    /// Creates a loop with no application state.
    ///
    /// ```
    /// let mut lp = evloop::Loop::new()?;
    /// assert!(!lp.run(evloop::RunMode::Default)?); // nothing to do
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<Loop<()>> {
        Builder::new().build()
    }

    /// A builder for a loop with options and state.
    pub fn builder() -> Builder<()> {
        Builder::new()
    }
}

impl<S> Loop<S> {
    /// Creates a loop that owns `state`.
    pub fn with_state(state: S) -> io::Result<Loop<S>> {
        Builder::new().state(state).build()
    }

    pub(crate) fn from_parts(state: S, driver: Driver, pool: Pool<S>) -> Loop<S> {
        let mut lp = Loop {
            state,
            handles: HandleTable::new(),
            timers: TimerQueue::default(),
            watchers: Default::default(),
            wakers: Wakers::default(),
            signals: Default::default(),
            processes: Default::default(),
            closing: VecDeque::new(),
            driver,
            net: NetState::new(),
            pool,
            completions: VecDeque::new(),
            deferred: DeferQueue::default(),
            time: 0,
            seq: 0,
            stop_flag: false,
            dispatching: None,
            dispatching_closed: false,
            running: false,
            metrics: Metrics::default(),
            slow_callback_threshold: None,
        };
        lp.update_time();
        lp
    }

    /// Runs the loop in `mode`. Returns whether it is still alive: `true` if active,
    /// referenced handles or requests remain (or [`stop`](Loop::stop) ended the run early),
    /// `false` when there is nothing left to do.
    ///
    /// Returns an error if called from inside one of this loop's callbacks, or if the
    /// operating system's poll fails.
    pub fn run(&mut self, mode: RunMode) -> io::Result<bool> {
        if self.running {
            return Err(crate::error::misuse("evloop: run called from inside a callback of the same loop"));
        }
        self.running = true;
        log::debug!("run start ({mode:?})");
        let result = panic::catch_unwind(AssertUnwindSafe(|| self.run_iterations(mode)));
        self.running = false;
        match result {
            Ok(result) => {
                log::debug!("run stop ({mode:?}): {result:?}");
                result
            }
            Err(payload) => {
                self.recover_from_panic();
                panic::resume_unwind(payload)
            }
        }
    }

    fn run_iterations(&mut self, mode: RunMode) -> io::Result<bool> {
        let mut alive = self.alive();
        if !alive {
            self.update_time();
        }
        if mode == RunMode::Default && alive && !self.stop_flag {
            self.update_time();
            self.run_timers();
        }
        while alive && !self.stop_flag {
            let can_sleep = self.net.pending.is_empty()
                && !self.deferred.is_pending()
                && !self.watchers[Phase::Idle as usize].any_active();
            log::trace!("phase: pending");
            self.run_pending();
            log::trace!("phase: idle");
            self.run_watchers(Phase::Idle);
            log::trace!("phase: prepare");
            self.run_watchers(Phase::Prepare);
            let timeout = match mode {
                RunMode::Default => self.poll_timeout(),
                RunMode::Once if can_sleep => self.poll_timeout(),
                _ => Some(0),
            };
            log::trace!("phase: poll ({timeout:?} ms)");
            self.metrics.iterations += 1;
            self.poll(timeout)?;
            // Completions that I/O just finished (write callbacks), a few rounds at most so
            // that callbacks which keep writing cannot starve the loop.
            for _ in 0..8 {
                if self.net.pending.is_empty() {
                    break;
                }
                self.run_pending();
            }
            log::trace!("phase: check");
            self.run_deferred();
            self.run_watchers(Phase::Check);
            log::trace!("phase: close");
            self.run_closing();
            self.update_time();
            log::trace!("phase: timers");
            self.run_timers();
            alive = self.alive();
            if mode != RunMode::Default {
                break;
            }
        }
        self.stop_flag = false;
        Ok(alive)
    }

    fn poll(&mut self, timeout: Option<u64>) -> io::Result<()> {
        let blocking = timeout != Some(0);
        self.flush_interest();
        self.pool.signal_workers();
        let before = if blocking { Some(Instant::now()) } else { None };
        self.driver.wait(timeout, &mut self.net.ready)?;
        if let Some(before) = before {
            self.metrics.idle_time += before.elapsed();
            // As libuv does: callbacks after a wait see the time it ended, so a timer started
            // from them counts from then, not from before the wait.
            self.update_time();
        }
        self.dispatch_ready();
        self.collect_signals();
        self.run_wakers();
        self.run_completions();
        Ok(())
    }

    /// How long the poll may block, in milliseconds: zero if there is work already, the time
    /// to the next timer, or `None` (no limit).
    fn poll_timeout(&self) -> Option<u64> {
        // Interest changes pending are no reason not to block: the poll applies them first.
        if self.stop_flag
            || !self.alive()
            || !self.closing.is_empty()
            || !self.net.pending.is_empty()
            || !self.net.again.is_empty()
            || !self.completions.is_empty()
            || self.deferred.is_pending()
            || self.watchers[Phase::Idle as usize].any_active()
            || self.driver.notifier().is_raised()
        {
            return Some(0);
        }
        self.next_timer_in()
    }

    /// Whether the loop has anything left that keeps it running: an active, referenced
    /// handle, a request in flight (a connect, a queued write, a shutdown) or its completion
    /// yet to be reported, a deferred call, or a handle whose close callback has yet to run.
    pub fn alive(&self) -> bool {
        self.handles.alive() > 0
            || self.net.requests > 0
            || self.pool.in_flight() > 0
            || !self.completions.is_empty()
            || self.deferred.is_pending()
            || !self.net.pending.is_empty()
            || !self.closing.is_empty()
    }

    /// Makes [`run`](Loop::run) return after the current iteration, as soon as possible. If
    /// called before `run`, that `run` returns at once without running anything. `run` clears
    /// the request when it returns, so a later `run` carries on.
    pub fn stop(&mut self) {
        self.stop_flag = true;
    }

    /// The loop's cached time, in milliseconds since the loop was created. It is updated
    /// after a poll that blocked, before the timer phase, and by
    /// [`update_time`](Loop::update_time); callbacks between two updates see the same value.
    pub fn now(&self) -> u64 {
        self.time
    }

    /// Refreshes the cached time from the clock (useful after a long callback, before
    /// starting a timer).
    pub fn update_time(&mut self) {
        self.time = self.driver.now_ms();
    }

    /// Counters of the loop's work so far.
    pub fn metrics(&self) -> Metrics {
        self.metrics
    }

    /// Calls `f` once for every open handle, closing ones included (libuv's `uv_walk`), for
    /// debugging or shutdown. `f` may close handles, its own or others; a handle closed by
    /// an earlier call of `f` is skipped. As in libuv, the loop's internal handles (a
    /// listener's back-off timer) are not shown: they close with their owner.
    ///
    /// ```
    /// # let mut lp = evloop::Loop::new()?;
    /// # evloop::Timer::new(&mut lp, |_, _| {});
    /// // Shut down: close everything that is still open.
    /// lp.walk(|lp, handle| {
    ///     if !handle.is_closing(lp) {
    ///         handle.close(lp).unwrap();
    ///     }
    /// });
    /// # assert!(!lp.run(evloop::RunMode::Default)?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn walk(&mut self, mut f: impl FnMut(&mut Loop<S>, Handle)) {
        for h in self.handles.ids() {
            if self.handles.get(h).is_some_and(|b| !b.internal) {
                f(self, h);
            }
        }
    }

    /// Ids of every open handle, closing ones included.
    pub(crate) fn handle_ids(&self) -> Vec<Handle> {
        self.handles.ids()
    }

    /// Number of open handles, closing ones included, and the loop's internal ones, which
    /// [`walk`](Loop::walk) does not show.
    pub fn handle_count(&self) -> usize {
        self.handles.len()
    }

    /// The operating-system mechanism this loop waits with, or `None` for a simulated loop
    /// ([`sim::Sim`](crate::sim::Sim)).
    ///
    /// ```
    /// use evloop::{Backend, Loop};
    ///
    /// let lp = Loop::builder().backend(Backend::Polling).build()?;
    /// assert_eq!(lp.backend(), Some(Backend::Polling));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn backend(&self) -> Option<Backend> {
        self.driver.backend()
    }

    /// The poll timeout an embedding host should use before it next calls
    /// `run(RunMode::NoWait)`: zero if there is work to do now (or nothing active at all),
    /// the delay to the next timer, or `None` to wait for the backend fd without a limit.
    pub fn backend_timeout(&self) -> Option<Duration> {
        // A host polls the backend fd, which knows only the interest already applied: an
        // iteration must apply the pending changes first (libuv does the same).
        if !self.net.interest_dirty.is_empty() {
            return Some(Duration::ZERO);
        }
        self.poll_timeout().map(Duration::from_millis)
    }

    /// The backend's file descriptor (the epoll instance on Linux). A host program embeds the
    /// loop by polling this fd for readability, with [`backend_timeout`](Loop::backend_timeout)
    /// as its timeout, and calling `run(RunMode::NoWait)` when it is readable or the timeout
    /// passes. See `examples/embed.rs`.
    #[cfg(unix)]
    pub fn backend_fd(&self) -> std::os::fd::RawFd {
        self.driver.backend_fd()
    }

    // ---- the core's helpers for handle modules ----

    pub(crate) fn open_handle(&mut self, kind: HandleKind, callback: Callback<S>, extra: Extra<S>) -> Handle {
        let h = self.handles.insert(kind, callback, extra);
        log::debug!("open {kind:?} {h:?}");
        h
    }

    /// Whether `run` is on the stack (a callback is calling).
    pub(crate) fn is_running(&self) -> bool {
        self.running
    }

    /// The next start order number.
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The start order number the next start will get.
    pub(crate) fn peek_seq(&self) -> u64 {
        self.seq + 1
    }

    /// Calls a handle's callback, taken out of its slot for the call and put back after,
    /// unless the handle was closed or given a new callback in the meantime.
    pub(crate) fn dispatch(&mut self, h: Handle) {
        // A closing handle's slot holds its close callback, which only the closing phase calls.
        let Some(mut callback) =
            self.handles.get_mut(h).filter(|b| !b.closing).and_then(|b| b.callback.take())
        else {
            return;
        };
        self.call_guarded(h, |lp| callback(lp, h));
        if let Some(body) = self.handles.get_mut(h) {
            if body.callback.is_none() && !body.closing {
                body.callback = Some(callback);
            }
        }
    }

    /// Calls a callback of `h`, counting it, and remembering `h` so that a panic closes it.
    pub(crate) fn call_guarded<R>(&mut self, h: Handle, call: impl FnOnce(&mut Self) -> R) -> R {
        self.metrics.callbacks += 1;
        self.driver.trace(h.index(), "callback");
        self.dispatching = Some(h);
        self.dispatching_closed = false;
        let result = match self.slow_callback_threshold {
            None => call(self),
            Some(threshold) => self.call_timed(h, threshold, call),
        };
        self.dispatching = None;
        result
    }

    /// Counts a callback that belongs to no open handle (close callbacks, cancellations).
    pub(crate) fn count_event(&mut self) {
        self.metrics.callbacks += 1;
    }

    /// Calls a callback that lives in a slot of the handle's state (a read or connection
    /// callback): taken out for the call, put back after unless the handle was closed or
    /// the slot refilled in the meantime.
    pub(crate) fn call_slot<C: ?Sized>(
        &mut self,
        h: Handle,
        slot: fn(&mut Extra<S>) -> Option<&mut Option<Box<C>>>,
        call: impl FnOnce(&mut Self, &mut Box<C>),
    ) {
        fn open<S, C: ?Sized>(
            lp: &mut Loop<S>,
            h: Handle,
            slot: fn(&mut Extra<S>) -> Option<&mut Option<Box<C>>>,
        ) -> Option<&mut Option<Box<C>>> {
            lp.handles.get_mut(h).filter(|b| !b.closing).and_then(|b| slot(&mut b.extra))
        }
        let Some(mut callback) = open(self, h, slot).and_then(Option::take) else { return };
        self.call_guarded(h, |lp| call(lp, &mut callback));
        if let Some(place) = open(self, h, slot) {
            if place.is_none() {
                *place = Some(callback);
            }
        }
    }

    pub(crate) fn set_ref(
        &mut self,
        h: Handle,
        kind: Option<HandleKind>,
        referenced: bool,
    ) -> io::Result<()> {
        self.handles.usable_as(h, kind)?;
        self.handles.update(h, |b| b.referenced = referenced);
        Ok(())
    }

    /// Closes `h`; `on_close` (called at most once) replaces its callback, which can no longer
    /// run.
    pub(crate) fn close_handle(
        &mut self,
        h: Handle,
        kind: Option<HandleKind>,
        on_close: Option<Callback<S>>,
    ) -> io::Result<()> {
        let kind = self.handles.usable_as(h, kind)?.kind;
        match kind {
            HandleKind::Timer => self.stop_timer(h),
            HandleKind::Idle => self.stop_watcher(h, Phase::Idle),
            HandleKind::Prepare => self.stop_watcher(h, Phase::Prepare),
            HandleKind::Check => self.stop_watcher(h, Phase::Check),
            HandleKind::Waker | HandleKind::Channel => self.close_waker(h),
            HandleKind::TcpListener | HandleKind::UnixListener => self.close_listener(h),
            HandleKind::TcpStream | HandleKind::UnixStream | HandleKind::Pipe => self.close_stream(h),
            HandleKind::FdWatcher => self.close_fd_watcher(h),
            HandleKind::Signal => self.close_signal(h),
            HandleKind::Process => self.close_process(h),
            HandleKind::UdpSocket => self.close_udp(h),
            // The descriptor closes once the requests that hold it are done.
            HandleKind::File => {}
        }
        self.handles.update(h, |b| {
            b.closing = true;
            b.callback = on_close;
        });
        self.closing.push_back(h.slot_id());
        if self.dispatching == Some(h) {
            self.dispatching_closed = true;
        }
        log::debug!("close {kind:?} {h:?}");
        Ok(())
    }

    /// Frees the handles closed so far and calls their close callbacks, in close order.
    /// Handles closed by these callbacks wait for the next iteration.
    fn run_closing(&mut self) {
        for _ in 0..self.closing.len() {
            let Some(id) = self.closing.pop_front() else { break };
            let h = self.handles.handle(id);
            let Some(body) = self.handles.remove(h) else { continue };
            if let Extra::Stream(st) = body.extra {
                self.finish_stream(st);
            }
            if let Some(mut on_close) = body.callback {
                self.count_event();
                on_close(self, h);
            }
        }
    }

    /// After a callback panicked out of `run`: close the handle whose callback was lost, and
    /// rescan the wakers, whose scan the panic may have cut short.
    fn recover_from_panic(&mut self) {
        if let Some(h) = self.dispatching.take() {
            if self.handles.get(h).is_some_and(|b| !b.closing) {
                let _ = self.close_handle(h, None, None);
            }
        }
        self.stop_flag = false;
        self.driver.notifier().raise_quietly();
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Loop<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loop")
            .field("state", &self.state)
            .field("now", &self.time)
            .field("handles", &self.handles.len())
            .field("alive", &self.alive())
            .finish_non_exhaustive()
    }
}
