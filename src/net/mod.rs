//! Streams and listeners with libuv's and Node's semantics, on the driver seam: one stream
//! core (`stream.rs`, `read.rs`, `write.rs`, `write_queue.rs`, `connect.rs`) and one
//! listener core (`listener.rs`), keyed by handle, serve TCP (`tcp.rs`), Unix domain
//! sockets (`unix.rs`) and pipes (`pipe.rs`); the public stream methods are written once
//! (`stream_methods.rs`).
//! UDP sockets (`udp/`) have a core of their own: datagrams share nothing with streams.
//!
//! Every socket operation goes through the [`Driver`](crate::driver::Driver), so the
//! simulated driver can provide the same streams in memory.

use std::collections::VecDeque;
use std::io;

pub(crate) use crate::driver::ListenOptions;
use crate::driver::Readiness;
use crate::event_loop::Loop;
use crate::handle::{Extra, Handle, HandleKind};

pub(crate) mod addr;
mod adopt;
mod connect;
pub(crate) mod listener;
pub(crate) mod pipe;
mod read;
pub(crate) mod stream;
mod stream_methods;
pub(crate) mod tcp;
pub(crate) mod udp;
pub(crate) mod unix;
mod write;
pub(crate) mod write_queue;

/// A callback that completes one request (a write, a shutdown, a connect).
pub(crate) type Completion<S> = Box<dyn FnOnce(&mut Loop<S>, io::Result<()>)>;

/// What a stream has finished, delivered in order in the pending phase.
pub(crate) enum Done<S> {
    /// A request's callback and its result.
    Completion(Completion<S>, io::Result<()>),
    /// The write queue drained after `write` reported the high-water mark.
    Drain,
    /// A write failed while reading was paused: the reader hears of it.
    ReadError(io::Error),
}

/// The loop's bookkeeping for streams and listeners.
pub(crate) struct NetState {
    /// Streams with finished requests to report, in the order they finished.
    pub(crate) pending: VecDeque<Handle>,
    /// Handles whose poller interest may have changed since the last poll.
    pub(crate) interest_dirty: Vec<Handle>,
    /// In-flight requests (connects, queued writes, shutdowns): they keep the loop alive.
    pub(crate) requests: usize,
    /// The buffer every read borrows from; taken out while a read callback runs.
    pub(crate) read_buf: Vec<u8>,
    /// The buffer UDP sockets receive batches into (`udp/recv.rs`), allocated on first
    /// use; taken out while a batch is delivered.
    pub(crate) udp_buf: Vec<u8>,
    /// Where each datagram of a batch ended up in `udp_buf`.
    pub(crate) udp_received: Vec<crate::driver::Received>,
    /// Readiness found by the last poll, dispatched after it.
    pub(crate) ready: Vec<Readiness>,
    /// Readiness the loop owes itself: sockets that may still be ready though the poller
    /// will not say so again (it is edge-triggered on Linux). Dispatched after the next
    /// poll's events, which then must not block.
    pub(crate) again: Vec<Readiness>,
}

/// Size of the loop's read buffer.
pub(crate) const READ_BUF_SIZE: usize = 64 * 1024;

impl NetState {
    pub(crate) fn new() -> NetState {
        NetState {
            pending: VecDeque::new(),
            interest_dirty: Vec::new(),
            requests: 0,
            read_buf: vec![0; READ_BUF_SIZE],
            udp_buf: Vec::new(),
            udp_received: Vec::new(),
            ready: Vec::new(),
            again: Vec::new(),
        }
    }
}

impl<S> Loop<S> {
    /// Applies the interest changes of this iteration, once per handle, before the poll.
    pub(crate) fn flush_interest(&mut self) {
        if self.net.interest_dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.net.interest_dirty);
        for &h in &dirty {
            let wanted = match self.handles.get_mut(h).map(|b| &mut b.extra) {
                Some(Extra::Stream(st)) => {
                    st.interest_dirty = false;
                    Some((st.sock, st.interest()))
                }
                Some(Extra::Listener(l)) => {
                    l.interest_dirty = false;
                    Some((l.sock, l.interest()))
                }
                Some(Extra::Udp(_)) => {
                    self.flush_udp_interest(h);
                    None
                }
                _ => None,
            };
            if let Some((sock, interest)) = wanted {
                if let Err(e) = self.driver.set_interest(sock, h.to_key(), interest) {
                    log::warn!("{h:?}: cannot change poller interest: {e}");
                }
            }
        }
        // Keep the vector's capacity for the next iteration.
        let mut dirty = dirty;
        dirty.clear();
        self.net.interest_dirty = dirty;
    }

    /// Dispatches the readiness the last poll found.
    pub(crate) fn dispatch_ready(&mut self) {
        let mut ready = std::mem::take(&mut self.net.ready);
        self.metrics.io_events += ready.len() as u64;
        ready.append(&mut self.net.again);
        for r in &ready {
            let h = self.handles.handle_for_key(r.key);
            // Dropped: events of a handle closed earlier in this batch (the key carries the
            // generation, and a closing handle is still in its slot).
            let kind = match self.handles.get(h) {
                Some(b) if !b.closing => b.kind,
                _ => continue,
            };
            match kind {
                HandleKind::TcpListener | HandleKind::UnixListener => self.listener_ready(h),
                HandleKind::TcpStream | HandleKind::UnixStream | HandleKind::Pipe => self.stream_ready(h, r),
                HandleKind::FdWatcher => self.fd_ready(h, r),
                HandleKind::Process => self.process_ready(h),
                HandleKind::UdpSocket => self.udp_ready(h, r),
                _ => {}
            }
        }
        ready.clear();
        self.net.ready = ready;
    }

    /// Delivers finished requests, stream by stream, in the order they finished. Requests that
    /// finish during this pass are delivered by the next one.
    pub(crate) fn run_pending(&mut self) {
        for _ in 0..self.net.pending.len() {
            let Some(h) = self.net.pending.pop_front() else { break };
            let count = match self.stream_state(h) {
                Some(st) => {
                    st.in_pending = false;
                    st.done_len()
                }
                None => continue,
            };
            for _ in 0..count {
                // A callback may close the stream: the close phase then reports the rest.
                let Some(done) = self.stream_state(h).and_then(|st| st.cold().done.pop_front()) else {
                    break;
                };
                match done {
                    Done::Completion(callback, result) => {
                        self.call_guarded(h, |lp| callback(lp, result));
                    }
                    Done::Drain => self.call_drain(h),
                    Done::ReadError(e) => self.call_read_error(h, e),
                }
            }
        }
    }
}
