//! Idle, prepare and check watchers: callbacks that run once per loop iteration at a fixed
//! point (libuv's `uv_idle_t`, `uv_prepare_t`, `uv_check_t`).
//!
//! Each kind keeps a list of `(handle, start order)` entries in start order. A pass calls the
//! entries that existed when it began and whose start order is still the handle's current one,
//! so a watcher stopped (or stopped and restarted) by another callback during the pass is not
//! called later in it, and one started during the pass waits for the next. Stopped entries are
//! swept after the pass.

use std::io;

use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Extra, Handle, HandleKind};

/// The three phases that have watchers.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    Idle = 0,
    Prepare = 1,
    Check = 2,
}

impl Phase {
    /// The kind of the watchers that run in this phase.
    fn kind(self) -> HandleKind {
        match self {
            Phase::Idle => HandleKind::Idle,
            Phase::Prepare => HandleKind::Prepare,
            Phase::Check => HandleKind::Check,
        }
    }
}

/// The entries of one phase.
#[derive(Default)]
pub(crate) struct WatcherList {
    entries: Vec<(Handle, u64)>,
    /// Active watchers (the entries may also hold stale ones).
    active: usize,
    /// Entries went stale since the last sweep.
    dirty: bool,
}

impl WatcherList {
    /// Whether any watcher of this phase is active.
    pub(crate) fn any_active(&self) -> bool {
        self.active > 0
    }
}

impl<S> Loop<S> {
    fn start_watcher(&mut self, h: Handle, phase: Phase) -> io::Result<()> {
        if self.handles.usable_as(h, Some(phase.kind()))?.active {
            return Ok(());
        }
        let seq = self.next_seq();
        self.handles.update(h, |b| {
            b.active = true;
            b.seq = seq;
        });
        let list = &mut self.watchers[phase as usize];
        list.entries.push((h, seq));
        list.active += 1;
        Ok(())
    }

    pub(crate) fn stop_watcher(&mut self, h: Handle, phase: Phase) {
        if self.handles.update(h, |b| std::mem::replace(&mut b.active, false)) == Some(true) {
            let list = &mut self.watchers[phase as usize];
            list.active -= 1;
            list.dirty = true;
        }
    }

    /// Calls every watcher of `phase` that was active when the pass began and still is, the
    /// most recently started first, as libuv does (`uv_prepare_start` inserts at the head of
    /// the list that `uv__run_prepare` walks from the head). Entries are pushed at the end,
    /// so the pass walks backwards; entries pushed during the pass lie beyond it.
    pub(crate) fn run_watchers(&mut self, phase: Phase) {
        let len = self.watchers[phase as usize].entries.len();
        for i in (0..len).rev() {
            let (h, seq) = self.watchers[phase as usize].entries[i];
            let current = self.handles.get(h).is_some_and(|b| b.active && !b.closing && b.seq == seq);
            if current {
                self.dispatch(h);
            }
        }
        let list = &mut self.watchers[phase as usize];
        if list.dirty {
            let handles = &self.handles;
            list.entries
                .retain(|&(h, seq)| handles.get(h).is_some_and(|b| b.active && !b.closing && b.seq == seq));
            list.dirty = false;
        }
    }
}

macro_rules! watcher {
    ($(#[$doc:meta])* $ty:ident, $phase:expr, $kind:expr) => {
        $(#[$doc])*
        #[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
        pub struct $ty {
            handle: Handle,
        }

        common_handle_methods!($ty, $ty);

        impl $ty {
            /// Opens a watcher that calls `callback` once per loop iteration while started.
            pub fn new<S>(lp: &mut Loop<S>, mut callback: impl FnMut(&mut Loop<S>, $ty) + 'static) -> $ty {
                let handle = lp.open_handle(
                    $kind,
                    Box::new(move |lp, handle| callback(lp, $ty { handle })),
                    Extra::None,
                );
                $ty { handle }
            }

            /// Starts the watcher. Starting an active watcher does nothing. A watcher started
            /// during its own phase first runs in the next iteration. Within a phase, the
            /// most recently started watcher runs first, as in libuv.
            pub fn start<S>(&self, lp: &mut Loop<S>) -> io::Result<()> {
                lp.start_watcher(self.handle, $phase)
            }

            /// Stops the watcher; if its phase is under way, it is not called later in it.
            /// Stopping an inactive watcher does nothing.
            pub fn stop<S>(&self, lp: &mut Loop<S>) -> io::Result<()> {
                lp.handles.usable_as(self.handle, Self::KIND)?;
                lp.stop_watcher(self.handle, $phase);
                Ok(())
            }
        }
    };
}

watcher!(
    /// Runs its callback once per iteration, before prepare; while any idle watcher is
    /// active the loop polls for I/O without blocking, so it spins (libuv's `uv_idle_t`).
    ///
    /// Use it for low-priority work done in slices. Despite the name it runs on every
    /// iteration, not only when the loop has nothing else to do.
    ///
    /// ```
    /// use evloop::{Idle, Loop, RunMode};
    ///
    /// let mut lp = Loop::with_state(0u64)?;
    /// let idle = Idle::new(&mut lp, |lp, idle| {
    ///     lp.state += 1;
    ///     if lp.state == 1_000 {
    ///         idle.stop(lp).unwrap();
    ///     }
    /// });
    /// idle.start(&mut lp)?;
    /// lp.run(RunMode::Default)?;
    /// assert_eq!(lp.state, 1_000);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    Idle,
    Phase::Idle,
    HandleKind::Idle
);

watcher!(
    /// Runs its callback once per iteration, right before the loop polls for I/O (libuv's
    /// `uv_prepare_t`).
    Prepare,
    Phase::Prepare,
    HandleKind::Prepare
);

watcher!(
    /// Runs its callback once per iteration, right after the loop has polled for I/O and
    /// dispatched it (libuv's `uv_check_t`).
    Check,
    Phase::Check,
    HandleKind::Check
);
