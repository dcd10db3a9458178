//! Channels: messages from any thread to a callback on the loop thread (asyncio's
//! `call_soon_threadsafe` with a payload, calloop's `channel`).
//!
//! A channel is std's `mpsc` queue plus the waker core (`waker.rs`): a send queues the
//! message and wakes the handle, which costs an atomic swap when the handle is already
//! woken, so a burst of messages costs one wakeup of the loop, and the loop drains them in
//! one pass. Nothing here copies the waker's machinery; it only chooses what the callback
//! does when woken.

use std::fmt;
use std::sync::mpsc::{self, SendError, TryRecvError, TrySendError};
use std::sync::Arc;

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
    /// `None` only while the sender is dropped.
    queue: Option<Queue<T>>,
    shared: Arc<WakerShared>,
}

enum Queue<T> {
    Unbounded(mpsc::Sender<T>),
    Bounded(mpsc::SyncSender<T>),
}

impl Channel {
    /// Opens an unbounded channel: sends never block and never fail while the channel is
    /// open. Returns the first [`Sender`] (clone it for more) and the loop's handle.
    pub fn new<S, T: Send + 'static>(
        lp: &mut Loop<S>,
        on_message: impl FnMut(&mut Loop<S>, Channel, Option<T>) + 'static,
    ) -> (Sender<T>, Channel) {
        let (tx, rx) = mpsc::channel();
        open(lp, Queue::Unbounded(tx), rx, on_message)
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
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        open(lp, Queue::Bounded(tx), rx, on_message)
    }
}

fn open<S, T: Send + 'static>(
    lp: &mut Loop<S>,
    queue: Queue<T>,
    rx: mpsc::Receiver<T>,
    mut on_message: impl FnMut(&mut Loop<S>, Channel, Option<T>) + 'static,
) -> (Sender<T>, Channel) {
    lp.open_wakeable(HandleKind::Channel, move |handle, shared| {
        let channel = Channel { handle };
        let sender = Sender { queue: Some(queue), shared: shared.clone() };
        let mut ended = false;
        let callback = Box::new(move |lp: &mut Loop<S>, _| {
            for _ in 0..MAX_PER_WAKEUP {
                match rx.try_recv() {
                    Ok(message) => {
                        on_message(lp, channel, Some(message));
                        // Closed by the callback: stop (one field of the loop's, no lookup
                        // and no read of the state the senders write).
                        if lp.dispatching_closed {
                            return;
                        }
                    }
                    Err(TryRecvError::Empty) => return,
                    Err(TryRecvError::Disconnected) => {
                        if !std::mem::replace(&mut ended, true) {
                            // Nothing can arrive any more: the channel keeps nothing alive.
                            lp.handles.update(handle, |b| b.active = false);
                            on_message(lp, channel, None);
                        }
                        return;
                    }
                }
            }
            // The cap was reached with messages possibly left: come back for them on the next
            // iteration. The loop thread is not blocked, so raising the flags is enough; a
            // real wake would cost a system call per cap.
            shared.wake_quietly();
        });
        ((sender, channel), callback)
    })
}

impl<T> Sender<T> {
    /// Sends `message` to the loop, in order after this thread's earlier sends. On a bounded
    /// channel that is full, waits for room. Fails, handing the message back, if the
    /// channel was closed or its loop dropped.
    pub fn send(&self, message: T) -> Result<(), SendError<T>> {
        match &self.queue {
            Some(Queue::Unbounded(tx)) => tx.send(message)?,
            Some(Queue::Bounded(tx)) => tx.send(message)?,
            None => return Err(SendError(message)),
        }
        let _ = self.shared.wake();
        Ok(())
    }

    /// Sends `message` without waiting: `Full` if a bounded channel has no room,
    /// `Disconnected` if the channel was closed or its loop dropped (both hand the message
    /// back). On an unbounded channel it is [`send`](Sender::send).
    pub fn try_send(&self, message: T) -> Result<(), TrySendError<T>> {
        match &self.queue {
            Some(Queue::Unbounded(tx)) => {
                tx.send(message).map_err(|SendError(m)| TrySendError::Disconnected(m))?
            }
            Some(Queue::Bounded(tx)) => tx.try_send(message)?,
            None => return Err(TrySendError::Disconnected(message)),
        }
        let _ = self.shared.wake();
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        let queue = self.queue.as_ref().map(|queue| match queue {
            Queue::Unbounded(tx) => Queue::Unbounded(tx.clone()),
            Queue::Bounded(tx) => Queue::Bounded(tx.clone()),
        });
        Sender { queue, shared: self.shared.clone() }
    }
}

impl<T> Drop for Sender<T> {
    /// Wakes the loop, so that it notices when the last sender is gone.
    fn drop(&mut self) {
        // Drop the queue's sender first: the wake must find the disconnection.
        drop(self.queue.take());
        let _ = self.shared.wake();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.queue {
            Some(Queue::Unbounded(_)) => "unbounded",
            Some(Queue::Bounded(_)) => "bounded",
            None => "dropped",
        };
        f.debug_struct("Sender").field("queue", &kind).finish_non_exhaustive()
    }
}
