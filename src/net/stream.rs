//! TCP streams: the public API (connect is in `connect.rs`), the stream's state, and the
//! bookkeeping its read side (`read.rs`) and write side (`write.rs`) share.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::write_queue::WriteQueue;
use super::{Completion, Done};
use crate::driver::{Interest, Readiness, SocketId};
use crate::error::{cancelled, copy_error};
use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Extra, Handle, HandleKind};

/// The callback `read_start` installs.
pub(crate) type ReadCallback<S> = Box<dyn FnMut(&mut Loop<S>, TcpStream, io::Result<&[u8]>)>;
pub(super) type DrainCallback<S> = Box<dyn FnMut(&mut Loop<S>, TcpStream)>;

/// Default high-water mark of the write queue.
pub(crate) const DEFAULT_HIGH_WATER_MARK: usize = 64 * 1024;

enum Shutdown<S> {
    No,
    /// Requested; sent once the queued writes have gone.
    Requested(Completion<S>),
    Sent,
}

/// The socket of a stream whose name is still being resolved.
pub(crate) const NO_SOCKET: SocketId = usize::MAX;

pub(crate) struct StreamState<S> {
    pub(crate) sock: SocketId,
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
    pub(super) fallback: Vec<SocketAddr>,
    /// Finished requests to report in the pending phase.
    pub(crate) done: VecDeque<Done<S>>,
    shutdown: Shutdown<S>,
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

/// A TCP connection (libuv's `uv_tcp_t`, Node's `net.Socket`).
///
/// A stream comes from [`TcpStream::connect`] or from a
/// [`TcpListener`](crate::TcpListener)'s connection callback. Reads are delivered to the
/// callback given to [`read_start`](TcpStream::read_start) as a `&[u8]` borrowed from one
/// loop-owned 64 KiB buffer (copy what you keep); `Ok` with an empty slice is the end of the
/// stream, as with [`std::io::Read`]. [`write`](TcpStream::write) tries the socket at once and
/// queues only what it could not take.
///
/// # What keeps the loop alive
///
/// libuv's rule: a stream is *active*, and (unless unreferenced) keeps
/// [`RunMode::Default`](crate::RunMode::Default) running, while something can still happen to
/// it: it is connecting, it is reading, or it has writes or a shutdown in flight. So after a
/// failed connect, after the end of the stream or a read error (reading stops by itself),
/// or after `read_stop` with nothing queued, an unclosed stream no longer holds the loop:
/// `run` returns once nothing else is left. The stream stays open until it is closed; close
/// it to free its socket.
///
/// `close` is abrupt, as in libuv: queued writes are cancelled, and if unread input remains
/// the kernel answers with a reset, which can discard data the peer has not received yet.
/// To end a connection gracefully, [`shutdown`](TcpStream::shutdown) first, read until the
/// end of the stream, then close.
///
/// ```no_run
/// use evloop::{Loop, RunMode, TcpStream};
///
/// let mut lp = Loop::new()?;
/// TcpStream::connect(&mut lp, "127.0.0.1:7000", |lp, stream, result| {
///     if result.is_err() {
///         return; // refused, unreachable: the error says which
///     }
///     stream.write(lp, b"hello\n").unwrap();
///     stream
///         .read_start(lp, |lp, stream, data| match data {
///             Ok(bytes) if !bytes.is_empty() => println!("got {bytes:?}"),
///             _ => stream.close(lp).unwrap(), // end of stream, or an error
///         })
///         .unwrap();
/// })?;
/// lp.run(RunMode::Default)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct TcpStream {
    handle: Handle,
}

common_handle_methods!(TcpStream, TcpStream);

impl TcpStream {
    /// Starts reading: `on_read` gets each chunk as it arrives, then `Ok(&[])` once at the end
    /// of the stream, or an error (a reset peer gives `ConnectionReset`). Reading stops by
    /// itself after the end or an error. Calling it again replaces the callback.
    pub fn read_start<S>(
        &self,
        lp: &mut Loop<S>,
        on_read: impl FnMut(&mut Loop<S>, TcpStream, io::Result<&[u8]>) + 'static,
    ) -> io::Result<()> {
        let st = lp.stream_usable(self.handle)?;
        st.read_callback = Some(Box::new(on_read));
        st.reader_installed = true;
        if !st.reading {
            lp.start_reading(self.handle);
        }
        Ok(())
    }

    /// Stops reading. The kernel keeps buffering what arrives, up to its window, which is
    /// how a reader applies backpressure to its peer. [`read_resume`](TcpStream::read_resume)
    /// starts again with the same callback. If a write fails while reading is stopped, the
    /// error is delivered to the read callback.
    pub fn read_stop<S>(&self, lp: &mut Loop<S>) -> io::Result<()> {
        let st = lp.stream_usable(self.handle)?;
        if st.reading {
            st.reading = false;
            lp.mark_interest(self.handle);
        }
        Ok(())
    }

    /// Starts reading again with the callback given to the last
    /// [`read_start`](TcpStream::read_start), keeping whatever state it holds (Node's
    /// `resume()`); the usual partner of `read_stop` for backpressure. Does nothing if the
    /// stream is reading; an error if no read callback was ever set or the stream has
    /// reached its end.
    pub fn read_resume<S>(&self, lp: &mut Loop<S>) -> io::Result<()> {
        let st = lp.stream_usable(self.handle)?;
        if !st.reader_installed {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "evloop: read_resume before read_start"));
        }
        if st.read_ended {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "evloop: the stream has ended"));
        }
        if !st.reading {
            lp.start_reading(self.handle);
        }
        Ok(())
    }

    /// Whether the stream is reading.
    pub fn is_reading<S>(&self, lp: &Loop<S>) -> bool {
        lp.stream_ref(self.handle).is_ok_and(|st| st.reading)
    }

    /// Writes `data`: what the socket takes now is sent at once, the rest is copied into the
    /// write queue and sent in order as the socket drains. Returns `Ok(true)` while the queue
    /// is below the high-water mark, `Ok(false)` once it has reached it (Node's `write`
    /// returning false): stop producing until the [`on_drain`](TcpStream::on_drain) callback.
    ///
    /// Returns an error if the stream is closed or shut down, or if the connection has
    /// failed (a reset peer): then nothing was sent or queued. A failure found later, while
    /// queued data goes out, is reported to the callbacks of the queued writes (see
    /// [`write_with`](TcpStream::write_with)); later writes return it.
    pub fn write<S>(&self, lp: &mut Loop<S>, data: &[u8]) -> io::Result<bool> {
        lp.stream_write(self.handle, data, None)
    }

    /// Like [`write`](TcpStream::write), and calls `on_written` from the loop once all of
    /// `data` has been handed to the kernel, or with the error that stopped it. Callbacks run
    /// in submission order and never inside this call. If the stream is closed first, the
    /// callback gets a [`Cancelled`](crate::Cancelled) error. If this call returns an error,
    /// the callback is dropped without being called.
    pub fn write_with<S>(
        &self,
        lp: &mut Loop<S>,
        data: &[u8],
        on_written: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
    ) -> io::Result<bool> {
        lp.stream_write(self.handle, data, Some(Box::new(on_written)))
    }

    /// Writes what the socket takes now and queues nothing (libuv's `uv_try_write`). Returns
    /// the number of bytes written, or `WouldBlock` if the socket is full or writes are
    /// already queued (which must go first).
    pub fn try_write<S>(&self, lp: &mut Loop<S>, data: &[u8]) -> io::Result<usize> {
        let st = lp.stream_usable(self.handle)?;
        if let Some(e) = st.write_error() {
            return Err(copy_error(e));
        }
        if st.connecting() || !st.queue.is_empty() || st.shut() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let sock = st.sock;
        lp.driver.write(sock, data)
    }

    /// Bytes queued and not yet handed to the kernel.
    pub fn write_queue_size<S>(&self, lp: &Loop<S>) -> io::Result<usize> {
        Ok(lp.stream_ref(self.handle)?.queue.bytes())
    }

    /// Sets the write queue's high-water mark (default 64 KiB), see
    /// [`write`](TcpStream::write).
    pub fn set_high_water_mark<S>(&self, lp: &mut Loop<S>, bytes: usize) -> io::Result<()> {
        lp.stream_usable(self.handle)?.high_water_mark = u32::try_from(bytes).unwrap_or(u32::MAX);
        Ok(())
    }

    /// Sets the callback that runs when the write queue has emptied after a
    /// [`write`](TcpStream::write) returned `false` (Node's `'drain'` event).
    pub fn on_drain<S>(
        &self,
        lp: &mut Loop<S>,
        on_drain: impl FnMut(&mut Loop<S>, TcpStream) + 'static,
    ) -> io::Result<()> {
        lp.stream_usable(self.handle)?.drain_callback = Some(Box::new(on_drain));
        Ok(())
    }

    /// Sends FIN once every queued write has gone (half-close); the stream can still read.
    /// `on_shutdown` runs from the loop with the outcome. Writes after this are an error.
    pub fn shutdown<S>(
        &self,
        lp: &mut Loop<S>,
        on_shutdown: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
    ) -> io::Result<()> {
        let st = lp.stream_usable(self.handle)?;
        if st.shut() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "evloop: shutdown already requested"));
        }
        st.cold().shutdown = Shutdown::Requested(Box::new(on_shutdown));
        let ready = !st.connecting() && st.queue.is_empty();
        lp.net.requests += 1;
        if ready {
            lp.send_shutdown(self.handle);
        }
        Ok(())
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay<S>(&self, lp: &mut Loop<S>, on: bool) -> io::Result<()> {
        let sock = lp.stream_usable(self.handle)?.sock;
        lp.driver.set_nodelay(sock, on)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay<S>(&self, lp: &Loop<S>) -> io::Result<bool> {
        let sock = lp.stream_ref(self.handle)?.sock;
        lp.driver.nodelay(sock)
    }

    /// Turns TCP keep-alive on, with `idle` before the first probe, or off with `None`.
    pub fn set_keepalive<S>(&self, lp: &mut Loop<S>, idle: Option<Duration>) -> io::Result<()> {
        let sock = lp.stream_usable(self.handle)?.sock;
        lp.driver.set_keepalive(sock, idle)
    }

    /// The address of the peer.
    pub fn peer_addr<S>(&self, lp: &Loop<S>) -> io::Result<SocketAddr> {
        let sock = lp.stream_ref(self.handle)?.sock;
        lp.driver.peer_addr(sock)
    }

    /// The local address of the connection.
    pub fn local_addr<S>(&self, lp: &Loop<S>) -> io::Result<SocketAddr> {
        let sock = lp.stream_ref(self.handle)?.sock;
        lp.driver.local_addr(sock)
    }
}

impl TcpStream {
    pub(crate) fn from_handle(handle: Handle) -> TcpStream {
        TcpStream { handle }
    }
}

impl<S> Loop<S> {
    pub(crate) fn open_stream(&mut self, sock: SocketId) -> Handle {
        let h = self.open_handle(
            HandleKind::TcpStream,
            Box::new(|_, _| {}),
            Extra::Stream(Box::new(StreamState::new(sock))),
        );
        // Inactive until it connects, reads or writes (see `StreamState::busy`).
        h
    }

    /// The state of an open stream that is not closing (`None` once it is).
    pub(crate) fn stream_state(&mut self, h: Handle) -> Option<&mut StreamState<S>> {
        match self.handles.get_mut(h).map(|b| (b.closing, &mut b.extra)) {
            Some((false, Extra::Stream(st))) => Some(st),
            _ => None,
        }
    }

    fn stream_ref(&self, h: Handle) -> io::Result<&StreamState<S>> {
        self.handles.state(h, HandleKind::TcpStream, Extra::stream)
    }

    pub(super) fn stream_usable(&mut self, h: Handle) -> io::Result<&mut StreamState<S>> {
        self.handles.state_mut(h, HandleKind::TcpStream, Extra::stream_mut)
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
