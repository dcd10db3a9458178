//! The stream core that TCP and Unix domain streams and pipes share: the stream's state and
//! the bookkeeping, keyed by [`Handle`], that its read side (`read.rs`), write side
//! (`write.rs`), connect (`connect.rs`) and close share. The operations behind the public stream methods
//! are in `stream_methods.rs`. Nothing here knows which kind of stream it serves: the
//! handle's kind is checked against the one the public type names, and callbacks are stored
//! handle-erased (each public type wraps the user's closure once, at registration, into one
//! that rebuilds its typed handle).

use std::collections::VecDeque;
use std::io;

use socket2::SockAddr;

use super::write_queue::WriteQueue;
use super::{Completion, Done};
use crate::driver::{Interest, Readiness, SocketId};
use crate::error::cancelled;
use crate::event_loop::Loop;
use crate::handle::{Extra, Handle, HandleKind};

/// The callback `read_start` installs, handle-erased.
pub(crate) type ReadCallback<S> = Box<dyn FnMut(&mut Loop<S>, Handle, io::Result<&[u8]>)>;
/// The callback `on_drain` installs, handle-erased.
pub(crate) type DrainCallback<S> = Box<dyn FnMut(&mut Loop<S>, Handle)>;

/// Default high-water mark of the write queue.
pub(crate) const DEFAULT_HIGH_WATER_MARK: usize = 64 * 1024;

pub(super) enum Shutdown<S> {
    No,
    /// Requested; sent once the queued writes have gone.
    Requested(Completion<S>),
    Sent,
}

/// The socket of a stream whose name is still being resolved.
pub(crate) const NO_SOCKET: SocketId = usize::MAX;

/// Which ways a stream carries data: both for a socket; one for most pipes, whose
/// descriptor was opened read-only or write-only (`net/pipe.rs`).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Direction {
    Both,
    ReadOnly,
    WriteOnly,
}

pub(crate) struct StreamState<S> {
    pub(crate) sock: SocketId,
    /// Fits in the padding beside the flags below: an idle socket stream costs no more.
    pub(crate) direction: Direction,
    pub(super) reading: bool,
    /// The end of the stream or a read error was delivered: reading is over.
    pub(super) read_ended: bool,
    /// `read_start` gave a callback (which is out of its slot while it runs).
    pub(super) reader_installed: bool,
    pub(crate) in_pending: bool,
    /// `write` reported the high-water mark; a drain notification is owed.
    pub(super) drain_owed: bool,
    pub(crate) interest_dirty: bool,
    /// The last read pass ended with input possibly left in the socket (the reader stopped,
    /// or the per-wakeup cap was reached). An edge-triggered poller will not report it again,
    /// so resuming must look by itself.
    pub(super) maybe_unread: bool,
    pub(super) high_water_mark: u32,
    pub(super) read_callback: Option<ReadCallback<S>>,
    /// Set by most servers at accept (to resume reading), so it lives here, not in `cold`.
    pub(super) drain_callback: Option<DrainCallback<S>>,
    pub(super) queue: WriteQueue<S>,
    /// What most connections never need, allocated on first use: an idle connection costs
    /// the fields above only (memory per connection is one of evloop's targets).
    pub(super) cold: Option<Box<Cold<S>>>,
}

/// The rarely used part of a stream.
pub(crate) struct Cold<S> {
    /// The connect's callback, while connecting.
    pub(super) connect: Option<Completion<S>>,
    /// Addresses left to try if the current connect attempt fails.
    pub(super) fallback: Vec<SockAddr>,
    /// Finished requests to report in the pending phase.
    pub(crate) done: VecDeque<Done<S>>,
    pub(super) shutdown: Shutdown<S>,
    /// A write failed: later writes fail at once.
    pub(super) write_error: Option<io::Error>,
}

impl<S> Default for Cold<S> {
    fn default() -> Self {
        Cold {
            connect: None,
            fallback: Vec::new(),
            done: VecDeque::new(),
            shutdown: Shutdown::No,
            write_error: None,
        }
    }
}

impl<S> StreamState<S> {
    fn new(sock: SocketId) -> Self {
        StreamState {
            sock,
            direction: Direction::Both,
            reading: false,
            read_ended: false,
            reader_installed: false,
            in_pending: false,
            drain_owed: false,
            interest_dirty: false,
            maybe_unread: false,
            high_water_mark: DEFAULT_HIGH_WATER_MARK as u32,
            read_callback: None,
            drain_callback: None,
            queue: WriteQueue::new(),
            cold: None,
        }
    }

    /// Refuses to read from a write-only pipe end (`write` false) or to write to a read-only
    /// one (`write` true), naming the direction.
    pub(super) fn check_direction(&self, write: bool) -> io::Result<()> {
        let msg = match (self.direction, write) {
            (Direction::WriteOnly, false) => {
                "evloop: this pipe is a write end (opened write-only): it cannot read"
            }
            (Direction::ReadOnly, true) => {
                "evloop: this pipe is a read end (opened read-only): it cannot write"
            }
            _ => return Ok(()),
        };
        Err(io::Error::new(io::ErrorKind::InvalidInput, msg))
    }

    /// The rarely used part, allocated on first use.
    pub(crate) fn cold(&mut self) -> &mut Cold<S> {
        self.cold.get_or_insert_with(Default::default)
    }

    fn cold_ref(&self) -> Option<&Cold<S>> {
        self.cold.as_deref()
    }

    /// What the poller should watch for, given the stream's state.
    pub(crate) fn interest(&self) -> Interest {
        Interest { readable: self.reading, writable: self.connecting() || !self.queue.is_empty() }
    }

    /// Whether something can still happen to the stream: it connects, reads, or has writes or
    /// a shutdown in flight. Such a stream is active, and keeps the loop alive (libuv's rule).
    fn busy(&self) -> bool {
        self.reading || self.connecting() || !self.queue.is_empty() || self.shutdown_requested()
    }

    pub(super) fn connecting(&self) -> bool {
        self.cold_ref().is_some_and(|c| c.connect.is_some())
    }

    pub(super) fn write_error(&self) -> Option<&io::Error> {
        self.cold_ref().and_then(|c| c.write_error.as_ref())
    }

    pub(super) fn shutdown_requested(&self) -> bool {
        self.cold_ref().is_some_and(|c| matches!(c.shutdown, Shutdown::Requested(_)))
    }

    /// Shut down, or about to be: writes are refused.
    pub(super) fn shut(&self) -> bool {
        self.cold_ref().is_some_and(|c| !matches!(c.shutdown, Shutdown::No))
    }

    pub(crate) fn done_len(&self) -> usize {
        self.cold_ref().map_or(0, |c| c.done.len())
    }

    /// The shutdown request, if one waits; it is then marked sent.
    pub(super) fn take_shutdown(&mut self) -> Option<Completion<S>> {
        if !self.shutdown_requested() {
            return None;
        }
        match std::mem::replace(&mut self.cold().shutdown, Shutdown::Sent) {
            Shutdown::Requested(cb) => Some(cb),
            _ => None,
        }
    }
}

impl<S> Loop<S> {
    /// Opens a stream handle of `kind` (`TcpStream`, `UnixStream`) over `sock`. Inactive
    /// until it connects, reads or writes (see `StreamState::busy`).
    pub(crate) fn open_stream(&mut self, sock: SocketId, kind: HandleKind) -> Handle {
        self.open_handle(kind, Box::new(|_, _| {}), Extra::Stream(Box::new(StreamState::new(sock))))
    }

    /// The state of an open stream that is not closing (`None` once it is).
    pub(crate) fn stream_state(&mut self, h: Handle) -> Option<&mut StreamState<S>> {
        match self.handles.get_mut(h).map(|b| (b.closing, &mut b.extra)) {
            Some((false, Extra::Stream(st))) => Some(st),
            _ => None,
        }
    }

    /// The state of a usable stream whose handle is of `kind`, or the error a user should see.
    pub(crate) fn stream_ref(&self, h: Handle, kind: HandleKind) -> io::Result<&StreamState<S>> {
        self.handles.state(h, kind, Extra::stream)
    }

    pub(crate) fn stream_usable(&mut self, h: Handle, kind: HandleKind) -> io::Result<&mut StreamState<S>> {
        self.handles.state_mut(h, kind, Extra::stream_mut)
    }

    pub(super) fn with_stream<R>(
        &mut self,
        h: Handle,
        f: impl FnOnce(&mut StreamState<S>) -> R,
    ) -> Option<R> {
        self.stream_state(h).map(f)
    }

    /// Queues the stream's poller interest for the next flush, and brings its activity up to
    /// date: every change of what a stream is doing passes through here.
    pub(crate) fn mark_interest(&mut self, h: Handle) {
        self.refresh_activity(h);
        let flag = match self.handles.get_mut(h).map(|b| &mut b.extra) {
            Some(Extra::Stream(st)) => &mut st.interest_dirty,
            Some(Extra::Listener(l)) => &mut l.interest_dirty,
            _ => return,
        };
        if !*flag {
            *flag = true;
            self.net.interest_dirty.push(h);
        }
    }

    /// Makes a stream active exactly while it is busy (see `StreamState::busy`).
    pub(super) fn refresh_activity(&mut self, h: Handle) {
        if let Some(busy) = self.stream_state(h).map(|st| st.busy()) {
            self.handles.update(h, |b| b.active = busy);
        }
    }

    /// Records a finished request and makes sure the pending phase visits the stream.
    pub(super) fn push_done(&mut self, h: Handle, done: Done<S>) {
        let Some(st) = self.stream_state(h) else { return };
        st.cold().done.push_back(done);
        self.schedule_pending(h);
    }

    /// Makes sure the pending phase visits the stream if it has finished requests to report
    /// (once per pass, however many there are).
    pub(super) fn schedule_pending(&mut self, h: Handle) {
        let Some(st) = self.stream_state(h) else { return };
        if st.done_len() > 0 && !st.in_pending {
            st.in_pending = true;
            self.net.pending.push_back(h);
        }
    }

    pub(crate) fn stream_ready(&mut self, h: Handle, r: &Readiness) {
        let (readable, writable) = (r.readable, r.writable);
        let Some(st) = self.stream_state(h) else { return };
        if st.connecting() {
            if !(readable || writable) {
                return;
            }
            self.finish_connect(h);
            return;
        }
        if writable && !st.queue.is_empty() {
            self.flush_writes(h);
        }
        if readable {
            self.read_ready(h, r.hangup);
        }
    }

    /// Closes the socket at once; the requests still open are cancelled in the close phase.
    pub(crate) fn close_stream(&mut self, h: Handle) {
        let Some(st) = self.stream_state(h) else { return };
        let sock = st.sock;
        let open = st.queue.len() + usize::from(st.connecting()) + usize::from(st.shutdown_requested());
        st.reading = false;
        self.net.requests -= open;
        self.driver.close(sock);
    }

    /// Reports everything a closed stream still owes, in libuv's order: the connect, the
    /// finished requests, the queued writes, the shutdown (all but the finished ones with
    /// a cancellation error).
    pub(crate) fn finish_stream(&mut self, mut st: Box<StreamState<S>>) {
        let mut owed: Vec<(Completion<S>, io::Result<()>)> = Vec::new();
        let shutdown = st.take_shutdown();
        let mut cold = st.cold.take();
        if let Some(cb) = cold.as_mut().and_then(|c| c.connect.take()) {
            owed.push((cb, Err(cancelled())));
        }
        for done in cold.iter_mut().flat_map(|c| c.done.drain(..)) {
            if let Done::Completion(cb, result) = done {
                owed.push((cb, result));
            }
        }
        st.queue.drain_callbacks(|cb| owed.push((cb, Err(cancelled()))));
        if let Some(cb) = shutdown {
            owed.push((cb, Err(cancelled())));
        }
        drop(st);
        for (cb, result) in owed {
            self.count_event();
            cb(self, result);
        }
    }
}
