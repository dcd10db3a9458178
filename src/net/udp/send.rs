//! The send side of UDP sockets: a datagram is tried at once (one `sendto`); only when the
//! socket has no room is it copied into the send queue, which goes out in order when the
//! socket is writable again.
//!
//! The queue is bounded, in bytes (default 1 MiB, [`UdpSocket::set_send_queue_limit`]): a
//! datagram that would take it past the bound is refused with `OutOfMemory` ("send queue
//! full") and nothing is queued. libuv queues without a bound; a datagram protocol copes
//! with a lost datagram better than a program copes with unbounded memory.
//!
//! Completion callbacks go through the loop's completion queue (`Loop::completions`, the
//! same pass that reports finished pool work, right after the poll's I/O): they run from
//! the loop, never inside the call, in the order the datagrams left.

use std::io;
use std::net::SocketAddr;

use super::UdpSocket;
use crate::driver::Readiness;
use crate::error::{cancelled, misuse};
use crate::event_loop::Loop;
use crate::handle::Handle;
use crate::pool::After;

/// Queued datagrams sent per socket per wakeup at most.
const MAX_SENDS_PER_WAKEUP: usize = 64;

/// A datagram waiting for room, with its destination (`None`: the connected peer) and its
/// completion callback (typed as the completion queue takes it).
pub(crate) struct Queued<S> {
    data: Vec<u8>,
    to: Option<SocketAddr>,
    callback: Option<After<S>>,
}

fn queue_full(limit: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!("evloop: UDP send queue full ({limit} bytes): the datagram was not sent"),
    )
}

/// A user's completion callback, as the completion queue runs it.
fn completion<S>(on_sent: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static) -> After<S> {
    Box::new(move |lp, result| on_sent(lp, result.map(drop)))
}

impl UdpSocket {
    /// Sends `data` as one datagram to `addr`. Tried at once; if the socket has no room, the
    /// datagram is copied into the send queue and sent, in order, when it has. Errors the
    /// kernel reports at once are returned: `EMSGSIZE` for a datagram too large (more than
    /// 65,507 bytes over IPv4), `PermissionDenied` for a broadcast address without
    /// [`set_broadcast`](UdpSocket::set_broadcast); `OutOfMemory` if the queue is full (see
    /// [`set_send_queue_limit`](UdpSocket::set_send_queue_limit)); `InvalidInput` on a closed
    /// socket. An error found while the datagram waits in the queue is lost with it (use
    /// [`send_to_with`](UdpSocket::send_to_with) to hear of it).
    ///
    /// `addr` is a `SocketAddr`, not a name to resolve: a send never blocks the loop thread
    /// on the resolver.
    pub fn send_to<S>(&self, lp: &mut Loop<S>, data: &[u8], addr: SocketAddr) -> io::Result<()> {
        lp.udp_send(self.handle, data, Some(addr), None)
    }

    /// Like [`send_to`](UdpSocket::send_to), and calls `on_sent` from the loop (never inside
    /// this call) once the datagram has been handed to the kernel, or with the error that
    /// stopped it; callbacks run in the order the datagrams were sent. If the socket is
    /// closed first, it gets a [`Cancelled`](crate::Cancelled) error. If this call returns an
    /// error, `on_sent` is dropped without being called.
    pub fn send_to_with<S>(
        &self,
        lp: &mut Loop<S>,
        data: &[u8],
        addr: SocketAddr,
        on_sent: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
    ) -> io::Result<()> {
        lp.udp_send(self.handle, data, Some(addr), Some(completion(on_sent)))
    }

    /// Sends one datagram now, or fails with `WouldBlock` if the socket has no room or sends
    /// are queued (they go first); never queues (libuv's `uv_udp_try_send`). Returns the
    /// bytes sent: all of `data`.
    pub fn try_send_to<S>(&self, lp: &mut Loop<S>, data: &[u8], addr: SocketAddr) -> io::Result<usize> {
        lp.udp_try_send(self.handle, data, Some(addr))
    }

    /// Sends one datagram to the peer of a [`connect`](UdpSocket::connect)ed socket, as
    /// [`send_to`](UdpSocket::send_to) does. An error (`InvalidInput`) if not connected.
    pub fn send<S>(&self, lp: &mut Loop<S>, data: &[u8]) -> io::Result<()> {
        lp.udp_send(self.handle, data, None, None)
    }

    /// [`send`](UdpSocket::send) with a completion callback, as
    /// [`send_to_with`](UdpSocket::send_to_with).
    pub fn send_with<S>(
        &self,
        lp: &mut Loop<S>,
        data: &[u8],
        on_sent: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
    ) -> io::Result<()> {
        lp.udp_send(self.handle, data, None, Some(completion(on_sent)))
    }

    /// [`try_send_to`](UdpSocket::try_send_to) to the connected peer.
    pub fn try_send<S>(&self, lp: &mut Loop<S>, data: &[u8]) -> io::Result<usize> {
        lp.udp_try_send(self.handle, data, None)
    }

    /// Bytes of the datagrams waiting in the send queue (libuv's `send_queue_size`).
    pub fn send_queue_size<S>(&self, lp: &Loop<S>) -> io::Result<usize> {
        Ok(lp.udp_ref(self.handle)?.queued_bytes)
    }

    /// Datagrams waiting in the send queue (libuv's `send_queue_count`).
    pub fn send_queue_count<S>(&self, lp: &Loop<S>) -> io::Result<usize> {
        Ok(lp.udp_ref(self.handle)?.queue.len())
    }

    /// Bounds the send queue to `bytes` (default 1 MiB): a send that would take it past the
    /// bound fails with `OutOfMemory` and queues nothing. What is queued already stays.
    pub fn set_send_queue_limit<S>(&self, lp: &mut Loop<S>, bytes: usize) -> io::Result<()> {
        lp.udp_usable(self.handle)?.queue_limit = bytes;
        Ok(())
    }
}

impl<S> Loop<S> {
    fn udp_send(
        &mut self,
        h: Handle,
        data: &[u8],
        to: Option<SocketAddr>,
        callback: Option<After<S>>,
    ) -> io::Result<()> {
        let st = self.udp_usable(h)?;
        if to.is_none() && !st.connected {
            return Err(not_connected());
        }
        let sock = st.sock;
        if st.queue.is_empty() {
            match self.driver.udp_send(sock, data, to) {
                Ok(_) => {
                    if let Some(callback) = callback {
                        self.completions.push_back((callback, Ok(Box::new(()))));
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Neither sent nor queued: the call fails, and its callback is dropped
                // uncalled (a callback runs only for an accepted send).
                Err(e) => return Err(e),
            }
        }
        let Some(st) = self.udp_state(h) else { return Ok(()) };
        if st.queued_bytes + data.len() > st.queue_limit {
            return Err(queue_full(st.queue_limit));
        }
        let was_empty = st.queue.is_empty();
        st.queued_bytes += data.len();
        st.queue.push_back(Queued { data: data.to_vec(), to, callback });
        self.net.requests += 1;
        if was_empty {
            self.udp_changed(h);
        }
        Ok(())
    }

    fn udp_try_send(&mut self, h: Handle, data: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
        let st = self.udp_usable(h)?;
        if to.is_none() && !st.connected {
            return Err(not_connected());
        }
        if !st.queue.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let sock = st.sock;
        self.driver.udp_send(sock, data, to)
    }

    /// Sends queued datagrams while the socket takes them, up to a cap. Each one's callback
    /// gets its own outcome: a datagram the kernel refuses fails alone, and the rest go on.
    pub(super) fn flush_sends(&mut self, h: Handle) {
        for _ in 0..MAX_SENDS_PER_WAKEUP {
            let Some(st) = self.udp_state(h) else { return };
            let sock = st.sock;
            let Some(q) = st.queue.pop_front() else { break };
            let result = self.driver.udp_send(sock, &q.data, q.to);
            let Some(st) = self.udp_state(h) else { return };
            if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                // Still full: the next writable edge brings us back.
                st.queue.push_front(q);
                return;
            }
            st.queued_bytes -= q.data.len();
            self.net.requests -= 1;
            if let Some(callback) = q.callback {
                self.completions.push_back((callback, result.map(|_| Box::new(()) as _)));
            }
        }
        match self.udp_state(h) {
            Some(st) if st.queue.is_empty() => self.udp_changed(h),
            // The cap was reached: come back after the others. (A writable socket raises no
            // new edge by staying writable.)
            Some(_) => self.net.again.push(Readiness {
                writable: true,
                readable: false,
                ..Readiness::again(h.to_key())
            }),
            None => {}
        }
    }

    /// Reports a queued datagram as cancelled: its socket closed before it left.
    pub(super) fn cancel_send(&mut self, q: Queued<S>) {
        if let Some(callback) = q.callback {
            self.completions.push_back((callback, Err(cancelled())));
        }
    }
}

fn not_connected() -> io::Error {
    misuse("evloop: send on a UDP socket that is not connected (connect it, or use send_to)")
}
