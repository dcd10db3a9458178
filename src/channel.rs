//! Channels: messages from any thread to a callback on the loop thread (asyncio's
//! `call_soon_threadsafe` with a payload, calloop's `channel`).
//!
//! A channel is a vector under a mutex plus the waker core (`waker.rs`), the design libuv
//! programs use (a locked queue and `uv_async_send`): a send pushes the message under the
//! lock and, if the vector was empty, wakes the handle, so a burst costs one wakeup of the
//! loop. The loop takes the whole vector in one locked swap and delivers from its own copy,
//! so it touches the lock once per batch, not per message, and senders contend only with
//! each other. Nothing here copies the waker's machinery; it only chooses what the callback
//! does when woken.

use std::collections::VecDeque;
use std::fmt;
use std::sync::mpsc::{SendError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Handle, HandleKind};
use crate::waker::WakerShared;

/// Messages delivered per wakeup at most, so that a sender that never stops cannot starve
/// the rest of the loop; the channel wakes itself again for the rest.
const MAX_PER_WAKEUP: usize = 1024;

/// The loop's side of a channel: a handle whose callback receives, on the loop thread, each
/// message sent through its [`Sender`]s, in the order they were sent.
///
/// The callback gets `Some(message)` for each message and, once every `Sender` is gone,
/// `None` exactly once. An open channel is active (it keeps
/// [`RunMode::Default`](crate::RunMode::Default) running) until it has reported `None` or is
/// closed; closing it drops the messages still queued, and later sends fail, handing the
/// message back.
///
/// ```
/// use evloop::{Channel, Loop, RunMode};
///
/// let mut lp = Loop::with_state(Vec::new())?;
/// let (tx, _channel) = Channel::new(&mut lp, |lp, _, msg: Option<u32>| match msg {
///     Some(n) => lp.state.push(n),
///     None => lp.state.push(0), // every sender is gone
/// });
/// let producer = std::thread::spawn(move || {
///     for n in 1..=3 {
///         tx.send(n).unwrap();
///     }
/// }); // `tx` is dropped here: the channel then reports the end
/// lp.run(RunMode::Default)?; // returns once the end was reported
/// producer.join().unwrap();
/// assert_eq!(lp.state, vec![1, 2, 3, 0]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Channel {
    handle: Handle,
}

common_handle_methods!(Channel, Channel);

/// The sending side of a [`Channel`]: `Send + Sync + Clone`, usable from any thread.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
    waker: Arc<WakerShared>,
}

/// What the senders and the loop share.
struct Shared<T> {
    queue: Mutex<Queue<T>>,
    /// Senders of a full bounded channel wait here for room.
    room: Condvar,
    /// `None`: unbounded.
    capacity: Option<usize>,
}

struct Queue<T> {
    /// Sent, not yet taken by the loop.
    messages: Vec<T>,
    /// Taken by the loop in its last batch, not all delivered yet: they count against the
    /// capacity until the loop comes back for more.
    in_delivery: usize,
    senders: usize,
    /// Senders waiting for room: the loop wakes them (a system call) only if there are any.
    waiting: usize,
    /// The handle was closed or its loop dropped: sends fail.
    closed: bool,
}

impl<T> Shared<T> {
    /// The queue, even if a thread panicked while holding the lock: its state is only ever
    /// changed in single, complete steps.
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_full(&self, q: &Queue<T>) -> bool {
        self.capacity.is_some_and(|cap| q.messages.len() + q.in_delivery >= cap)
    }
}

/// The loop's side: the batch being delivered, and the end to report once.
struct Receiver<T> {
    shared: Arc<Shared<T>>,
    batch: VecDeque<T>,
    /// An emptied vector to swap in next time, so that neither side allocates in steady
    /// state.
    spare: Vec<T>,
    ended: bool,
}

impl<T> Receiver<T> {
    /// Takes what the senders have queued, once the last batch is delivered. Returns
    /// whether every sender is gone with nothing left.
    fn refill(&mut self) -> bool {
        let mut q = self.shared.lock();
        std::mem::swap(&mut q.messages, &mut self.spare);
        q.in_delivery = self.spare.len();
        let gone = q.senders == 0 && self.spare.is_empty();
        let waiting = q.waiting > 0;
        drop(q);
        if waiting {
            self.shared.room.notify_all();
        }
        self.batch.extend(self.spare.drain(..));
        gone
    }
}

impl<T> Drop for Receiver<T> {
    /// The handle closed or the loop dropped: later sends fail, and blocked ones wake.
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        q.closed = true;
        let dropped = std::mem::take(&mut q.messages);
        drop(q);
        self.shared.room.notify_all();
        drop(dropped); // outside the lock: a message's drop may do anything
    }
}

impl Channel {
    /// Opens an unbounded channel: sends never block and never fail while the channel is
    /// open. Returns the first [`Sender`] (clone it for more) and the loop's handle.
    pub fn new<S, T: Send + 'static>(
        lp: &mut Loop<S>,
        on_message: impl FnMut(&mut Loop<S>, Channel, Option<T>) + 'static,
    ) -> (Sender<T>, Channel) {
        open(lp, None, on_message)
    }

    /// Opens a channel that holds at most `capacity` messages not yet delivered:
    /// [`try_send`](Sender::try_send) then refuses with `Full`, and
    /// [`send`](Sender::send) waits for room (so never call `send` on a bounded channel
    /// from the loop's own thread). A capacity of zero is taken as one.
    pub fn bounded<S, T: Send + 'static>(
        lp: &mut Loop<S>,
        capacity: usize,
        on_message: impl FnMut(&mut Loop<S>, Channel, Option<T>) + 'static,
    ) -> (Sender<T>, Channel) {
        open(lp, Some(capacity.max(1)), on_message)
    }
}

fn open<S, T: Send + 'static>(
    lp: &mut Loop<S>,
    capacity: Option<usize>,
    mut on_message: impl FnMut(&mut Loop<S>, Channel, Option<T>) + 'static,
) -> (Sender<T>, Channel) {
    let queue = Queue { messages: Vec::new(), in_delivery: 0, senders: 1, waiting: 0, closed: false };
    let shared = Arc::new(Shared { queue: Mutex::new(queue), room: Condvar::new(), capacity });
    lp.open_wakeable(HandleKind::Channel, move |handle, waker| {
        let channel = Channel { handle };
        let sender = Sender { shared: shared.clone(), waker: waker.clone() };
        let mut rx = Receiver { shared, batch: VecDeque::new(), spare: Vec::new(), ended: false };
        let callback = Box::new(move |lp: &mut Loop<S>, _| {
            for _ in 0..MAX_PER_WAKEUP {
                let message = match rx.batch.pop_front() {
                    Some(message) => message,
                    None if rx.refill() => {
                        if !std::mem::replace(&mut rx.ended, true) {
                            // Nothing can arrive any more: the channel keeps nothing alive.
                            lp.handles.update(handle, |b| b.active = false);
                            on_message(lp, channel, None);
                        }
                        return;
                    }
                    None => match rx.batch.pop_front() {
                        Some(message) => message,
                        None => return,
                    },
                };
                on_message(lp, channel, Some(message));
                // Closed by the callback: stop (one field of the loop's, no lookup).
                if lp.dispatching_closed {
                    return;
                }
            }
            // The cap was reached with messages possibly left: come back for them on the next
            // iteration. The loop thread is not blocked, so raising the flags is enough; a
            // real wake would cost a system call per cap.
            waker.wake_quietly();
        });
        ((sender, channel), callback)
    })
}

impl<T> Sender<T> {
    /// Sends `message` to the loop, in order after this thread's earlier sends. On a bounded
    /// channel that is full, waits for room. Fails, handing the message back, if the
    /// channel was closed or its loop dropped.
    pub fn send(&self, message: T) -> Result<(), SendError<T>> {
        let mut q = self.shared.lock();
        while !q.closed && self.shared.is_full(&q) {
            q.waiting += 1;
            q = self.shared.room.wait(q).unwrap_or_else(|poisoned| poisoned.into_inner());
            q.waiting -= 1;
        }
        self.push(q, message).map_err(SendError)
    }

    /// Sends `message` without waiting: `Full` if a bounded channel has no room,
    /// `Disconnected` if the channel was closed or its loop dropped (both hand the message
    /// back). On an unbounded channel it is [`send`](Sender::send).
    pub fn try_send(&self, message: T) -> Result<(), TrySendError<T>> {
        let q = self.shared.lock();
        if !q.closed && self.shared.is_full(&q) {
            return Err(TrySendError::Full(message));
        }
        self.push(q, message).map_err(TrySendError::Disconnected)
    }

    /// Queues `message` under the lock `q` holds, and wakes the loop if the queue was empty
    /// (otherwise a wake since the loop last took the queue is already on its way).
    fn push(&self, mut q: MutexGuard<'_, Queue<T>>, message: T) -> Result<(), T> {
        if q.closed {
            return Err(message);
        }
        let was_empty = q.messages.is_empty();
        q.messages.push(message);
        drop(q);
        if was_empty {
            let _ = self.waker.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender { shared: self.shared.clone(), waker: self.waker.clone() }
    }
}

impl<T> Drop for Sender<T> {
    /// The last sender wakes the loop, so that it reports the end.
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        q.senders -= 1;
        let last = q.senders == 0;
        drop(q);
        if last {
            let _ = self.waker.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("capacity", &self.shared.capacity).finish_non_exhaustive()
    }
}
