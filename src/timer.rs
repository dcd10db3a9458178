//! Timers and the timer queue.
//!
//! The queue is a binary min-heap of `(deadline, start order, handle)` entries. Stopping a
//! timer does not search the heap: the entry goes stale (its start order no longer matches the
//! handle's) and is dropped when it reaches the top, or when stale entries outnumber live ones
//! and the heap is rebuilt. Start, stop and fire are therefore O(log n) amortised, with no
//! linear scan, and the heap's top is always a live entry so the poll timeout is a peek.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io;
use std::time::Duration;

use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Extra, Handle, HandleKind, HandleTable, SlotId};

/// A timer: calls its callback once its timeout has passed, then every `repeat` if that is
/// not zero (libuv's `uv_timer_t`).
///
/// The timeout counts from the loop's cached time ([`Loop::now`]), in whole milliseconds
/// rounded up, so a timer never fires early. Timers due at the same time fire in the order in
/// which they were started.
///
/// ```
/// use std::time::Duration;
/// use evloop::{Loop, RunMode, Timer};
///
/// let mut lp = Loop::with_state(0u32)?;
/// let timer = Timer::new(&mut lp, |lp, timer| {
///     lp.state += 1;
///     if lp.state == 3 {
///         timer.stop(lp).unwrap();
///     }
/// });
/// timer.start(&mut lp, Duration::from_millis(1), Duration::from_millis(1))?;
/// lp.run(RunMode::Default)?;
/// assert_eq!(lp.state, 3);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Timer {
    handle: Handle,
}

common_handle_methods!(Timer, Timer);

impl Timer {
    /// Opens a timer that calls `callback` each time it fires. It does nothing until started.
    pub fn new<S>(lp: &mut Loop<S>, mut callback: impl FnMut(&mut Loop<S>, Timer) + 'static) -> Timer {
        let handle = lp.open_handle(
            HandleKind::Timer,
            Box::new(move |lp, handle| callback(lp, Timer { handle })),
            Extra::Timer { deadline: 0, repeat: 0 },
        );
        Timer { handle }
    }

    /// Starts the timer: it fires once `timeout` has passed, then every `repeat` unless that
    /// is zero. Starting an active timer restarts it. A timeout of zero fires in the next
    /// timer phase, never inside this call. Huge timeouts saturate instead of wrapping.
    pub fn start<S>(&self, lp: &mut Loop<S>, timeout: Duration, repeat: Duration) -> io::Result<()> {
        lp.start_timer(self.handle, to_millis(timeout), to_millis(repeat))
    }

    /// Stops the timer. Stopping an inactive timer does nothing.
    pub fn stop<S>(&self, lp: &mut Loop<S>) -> io::Result<()> {
        lp.handles.usable_as(self.handle, Self::KIND)?;
        lp.stop_timer(self.handle);
        Ok(())
    }

    /// Restarts a repeating timer with its repeat as the timeout (libuv's `uv_timer_again`,
    /// handy for idle timeouts that are pushed back on activity). Does nothing if the repeat
    /// is zero.
    pub fn again<S>(&self, lp: &mut Loop<S>) -> io::Result<()> {
        let repeat = self.repeat_millis(lp)?;
        if repeat > 0 {
            lp.start_timer(self.handle, repeat, repeat)?;
        }
        Ok(())
    }

    /// Sets the repeat interval, used from the next time the timer fires or is restarted with
    /// [`again`](Timer::again). Zero makes it one-shot.
    pub fn set_repeat<S>(&self, lp: &mut Loop<S>, repeat: Duration) -> io::Result<()> {
        *lp.handles.state_mut(self.handle, HandleKind::Timer, |e| match e {
            Extra::Timer { repeat, .. } => Some(repeat),
            _ => None,
        })? = to_millis(repeat);
        Ok(())
    }

    /// The repeat interval.
    pub fn repeat<S>(&self, lp: &Loop<S>) -> io::Result<Duration> {
        self.repeat_millis(lp).map(Duration::from_millis)
    }

    /// Time left until the timer is due, measured from [`Loop::now`]; zero if it is inactive
    /// or already due.
    pub fn due_in<S>(&self, lp: &Loop<S>) -> io::Result<Duration> {
        let now = lp.now();
        let body = lp.handles.usable_ref_as(self.handle, Self::KIND)?;
        Ok(match body.extra {
            Extra::Timer { deadline, .. } if body.active => {
                Duration::from_millis(deadline.saturating_sub(now))
            }
            _ => Duration::ZERO,
        })
    }

    fn repeat_millis<S>(&self, lp: &Loop<S>) -> io::Result<u64> {
        lp.handles
            .state(self.handle, HandleKind::Timer, |e| match e {
                Extra::Timer { repeat, .. } => Some(repeat),
                _ => None,
            })
            .copied()
    }
}

/// Whole milliseconds, rounded up so that a timer never fires early, saturating.
fn to_millis(d: Duration) -> u64 {
    let ms = d.as_millis();
    let ms = if d.subsec_nanos() % 1_000_000 != 0 { ms + 1 } else { ms };
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// One start of one timer: 24 bytes (the slot id leaves out the loop, which is implied).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) struct Entry {
    pub(crate) deadline: u64,
    pub(crate) seq: u64,
    pub(crate) id: SlotId,
}

impl Ord for Entry {
    // Reversed, so that std's max-heap pops the earliest (deadline, start order) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The timer heap with lazy removal.
#[derive(Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Entry>,
    stale: usize,
}

impl TimerQueue {
    pub(crate) fn push(&mut self, entry: Entry) {
        self.heap.push(entry);
    }

    /// The earliest live entry. The top is kept live by [`TimerQueue::settle`].
    pub(crate) fn peek(&self) -> Option<&Entry> {
        self.heap.peek()
    }

    pub(crate) fn pop(&mut self) -> Option<Entry> {
        self.heap.pop()
    }

    /// Records that one entry went stale, then restores the invariants: the top is live, and
    /// stale entries never outnumber live ones (so memory stays proportional to live timers
    /// even when a timer is restarted on every read, as idle timeouts are).
    pub(crate) fn mark_stale<S>(&mut self, handles: &HandleTable<S>) {
        self.stale += 1;
        if self.stale > 64 && self.stale > self.heap.len() / 2 {
            self.heap.retain(|e| is_live(handles, e));
            self.stale = 0;
        } else {
            self.settle(handles);
        }
    }

    /// Pops stale entries off the top.
    pub(crate) fn settle<S>(&mut self, handles: &HandleTable<S>) {
        while let Some(top) = self.heap.peek() {
            if is_live(handles, top) {
                break;
            }
            self.heap.pop();
            self.stale = self.stale.saturating_sub(1);
        }
    }
}

/// Whether an entry belongs to the current start of an active, open timer.
pub(crate) fn is_live<S>(handles: &HandleTable<S>, e: &Entry) -> bool {
    handles.get(handles.handle(e.id)).is_some_and(|b| b.active && !b.closing && b.seq == e.seq)
}

impl<S> Loop<S> {
    pub(crate) fn start_timer(&mut self, h: Handle, timeout: u64, repeat: u64) -> io::Result<()> {
        let was_active = self.handles.usable_as(h, Some(HandleKind::Timer))?.active;
        let deadline = self.now().saturating_add(timeout);
        let seq = self.next_seq();
        self.handles.update(h, |b| {
            b.active = true;
            b.seq = seq;
            b.extra = Extra::Timer { deadline, repeat };
        });
        self.timers.push(Entry { deadline, seq, id: h.slot_id() });
        if was_active {
            self.timers.mark_stale(&self.handles);
        }
        Ok(())
    }

    pub(crate) fn stop_timer(&mut self, h: Handle) {
        let was_active = self.handles.update(h, |b| std::mem::replace(&mut b.active, false));
        if was_active == Some(true) {
            self.timers.mark_stale(&self.handles);
        }
    }

    /// Runs every timer due at the cached time that was started before this pass began; a
    /// timer (re)started during the pass, even with a zero timeout, waits for the next one.
    pub(crate) fn run_timers(&mut self) {
        let now = self.now();
        let pass_seq = self.peek_seq();
        while let Some(&top) = self.timers.peek() {
            if top.deadline > now || top.seq >= pass_seq {
                break;
            }
            self.timers.pop();
            let h = self.handles.handle(top.id);
            let repeat = match self.handles.get(h).map(|b| &b.extra) {
                Some(Extra::Timer { repeat, .. }) => *repeat,
                _ => 0,
            };
            if repeat > 0 {
                let deadline = now.saturating_add(repeat);
                let seq = self.next_seq();
                self.handles.update(h, |b| {
                    b.seq = seq;
                    b.extra = Extra::Timer { deadline, repeat };
                });
                self.timers.push(Entry { deadline, seq, id: top.id });
            } else {
                self.handles.update(h, |b| b.active = false);
            }
            self.timers.settle(&self.handles);
            self.dispatch(h);
        }
    }

    /// Milliseconds until the earliest timer is due, from the cached time; `None` if no timer
    /// is active.
    pub(crate) fn next_timer_in(&self) -> Option<u64> {
        self.timers.peek().map(|e| e.deadline.saturating_sub(self.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_up_and_saturate() {
        assert_eq!(to_millis(Duration::ZERO), 0);
        assert_eq!(to_millis(Duration::from_nanos(1)), 1);
        assert_eq!(to_millis(Duration::from_micros(1500)), 2);
        assert_eq!(to_millis(Duration::from_millis(7)), 7);
        assert_eq!(to_millis(Duration::MAX), u64::MAX);
    }
}
