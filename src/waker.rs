//! Cross-thread wakeups (libuv's `uv_async_t`).
//!
//! A wake sets the waker's own `pending` flag and, if it was clear, the loop-wide notifier,
//! which interrupts a blocked poll. The loop clears the notifier first and then each waker's
//! flag as it calls that waker's callback, so a wake that races with the scan either is seen
//! by it or raises the notifier again: the last wake is never lost, and any number of wakes
//! before the callback runs coalesce into one call.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::driver::Notifier;
use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Callback, Extra, Handle, HandleKind};

/// The state a waker shares with the threads that hold it.
pub(crate) struct WakerShared {
    pending: AtomicBool,
    closed: AtomicBool,
    notifier: Arc<Notifier>,
}

/// Wakes the loop from any thread and runs a callback on the loop thread (libuv's
/// `uv_async_t`, Node's cross-thread wakeup).
///
/// `Waker` is `Send + Sync + Clone`: hand clones to other threads and call
/// [`wake`](Waker::wake). Wakes that arrive before the callback has run coalesce into one
/// call; a wake is never lost, so the callback runs at least once after the last wake.
/// The loop-side operations (`close`, `unref`, ...) take the `&mut Loop` and so can only be
/// called on the loop thread.
///
/// An open waker is an active handle: it keeps [`RunMode::Default`](crate::RunMode::Default)
/// running until it is closed or [`unref`](Waker::unref)'d.
///
/// ```
/// use evloop::{Loop, RunMode, Waker};
///
/// let mut lp = Loop::with_state(0u32)?;
/// let waker = Waker::new(&mut lp, |lp, waker| {
///     lp.state += 1;
///     waker.close(lp).unwrap();
/// });
/// let remote = waker.clone();
/// std::thread::spawn(move || remote.wake().unwrap()).join().unwrap();
/// lp.run(RunMode::Default)?;
/// assert_eq!(lp.state, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Waker {
    handle: Handle,
    shared: Arc<WakerShared>,
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker").field("handle", &self.handle).finish()
    }
}

common_handle_methods!(Waker, Waker);

impl Waker {
    /// Opens a waker whose `callback` runs on the loop thread after one or more wakes.
    ///
    /// It cannot fail: the loop's wakeup mechanism (an eventfd, or `polling`'s notifier) is
    /// made with the loop and shared by all its wakers.
    pub fn new<S>(lp: &mut Loop<S>, mut callback: impl FnMut(&mut Loop<S>, &Waker) + 'static) -> Waker {
        lp.open_wakeable(HandleKind::Waker, |handle, shared| {
            let waker = Waker { handle, shared };
            (waker.clone(), Box::new(move |lp, _| callback(lp, &waker)))
        })
    }

    /// Wakes the loop; its callback will run on the loop thread. Callable from any thread,
    /// never blocks.
    ///
    /// Returns an error (`InvalidInput`, "handle is closed", as for any call through a closed
    /// handle's id) if the waker has been closed or its loop dropped.
    pub fn wake(&self) -> io::Result<()> {
        self.shared.wake()
    }
}

impl WakerShared {
    /// Marks the handle woken and, if it was not yet, interrupts the loop's poll.
    pub(crate) fn wake(&self) -> io::Result<()> {
        if self.closed.load(Ordering::Acquire) {
            // The error of any call through a closed handle's id (the loop may be gone too).
            return Err(crate::error::closed_error());
        }
        // Test before test-and-set: while the handle is already woken (a burst), a wake only
        // reads the shared line instead of writing it, so senders on several threads and the
        // loop do not bounce it between their caches.
        if !self.pending.load(Ordering::Acquire) && !self.pending.swap(true, Ordering::AcqRel) {
            self.notifier.notify()?;
        }
        Ok(())
    }

    /// Marks the handle woken from the loop thread itself: the loop is not blocked, so only
    /// the notifier's flag is raised (no system call). Used by signal delivery.
    pub(crate) fn wake_quietly(&self) {
        if !self.closed.load(Ordering::Acquire) {
            self.pending.store(true, Ordering::Release);
            self.notifier.raise_quietly();
        }
    }

    /// Forgets a wake not yet handled (a signal watcher that was stopped).
    pub(crate) fn clear(&self) {
        self.pending.store(false, Ordering::Release);
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// The loop's open wakers. Dropping it (with the loop) closes them all, so a wake from
/// another thread after the loop is gone returns an error.
#[derive(Default)]
pub(crate) struct Wakers {
    list: Vec<(Handle, Arc<WakerShared>)>,
    /// Some wakers were closed: sweep them out before the next scan. Removing them during
    /// a scan would shift the list under it and skip a woken waker.
    closed: bool,
}

impl Wakers {
    pub(crate) fn push(&mut self, h: Handle, shared: Arc<WakerShared>) {
        self.list.push((h, shared));
    }
}

impl Drop for Wakers {
    fn drop(&mut self) {
        for (_, shared) in &self.list {
            shared.close();
        }
    }
}

impl<S> Loop<S> {
    /// Opens a handle of `kind` that other threads wake through its [`WakerShared`] (a
    /// `Waker`, a channel): `make` gets the new id and the shared state, and returns what the
    /// caller hands out and the handle's callback. The handle is active until closed.
    pub(crate) fn open_wakeable<T>(
        &mut self,
        kind: HandleKind,
        make: impl FnOnce(Handle, Arc<WakerShared>) -> (T, Callback<S>),
    ) -> T {
        let shared = Arc::new(WakerShared {
            pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            notifier: self.driver.notifier().clone(),
        });
        // The callback needs the handle's id, which exists only once the slot does: open
        // with a no-op (a zero-sized box, no allocation), then install the real one.
        let handle = self.open_handle(kind, Box::new(|_, _| {}), Extra::None);
        let (out, callback) = make(handle, shared.clone());
        if let Some(body) = self.handles.get_mut(handle) {
            body.callback = Some(callback);
        }
        self.handles.update(handle, |b| b.active = true);
        self.wakers.push(handle, shared);
        out
    }

    /// Calls the callback of every waker that was woken since its last call.
    pub(crate) fn run_wakers(&mut self) {
        if !self.driver.notifier().take() {
            return;
        }
        if std::mem::take(&mut self.wakers.closed) {
            self.wakers.list.retain(|(_, shared)| !shared.closed.load(Ordering::Acquire));
        }
        // Wakers closed by a callback during this scan stay in place (marked closed) until
        // the next sweep, so the indices do not move.
        let mut i = 0;
        while let Some((h, shared)) = self.wakers.list.get(i) {
            i += 1;
            if shared.pending.swap(false, Ordering::AcqRel) && !shared.closed.load(Ordering::Acquire) {
                let h = *h;
                self.dispatch(h);
            }
        }
    }

    /// Closes a waker: later wakes fail, and the scan stops calling it.
    pub(crate) fn close_waker(&mut self, h: Handle) {
        if let Some((_, shared)) = self.wakers.list.iter().find(|(w, _)| *w == h) {
            shared.close();
            self.wakers.closed = true;
        }
    }
}
