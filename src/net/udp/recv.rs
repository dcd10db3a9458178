//! The receive side of UDP sockets: draining a readable socket into the receive callback,
//! one datagram per call, from a buffer the loop owns (no allocation per datagram).
//!
//! Datagrams are taken from the kernel in batches of up to `RECV_BATCH` (`recvmmsg` on
//! Linux, as libuv's `UV_UDP_RECVMMSG`: one system call for the batch), each into its own
//! slot of the buffer. The socket is registered edge-triggered on the epoll backend, so a
//! pass reads until `WouldBlock`, even after a short batch (see `receive_batches`); at the
//! per-wakeup cap the loop owes itself another look (`NetState::again`), after the other
//! handles. Measured (bench-suite `udp_echo`): batches pay with many senders (16 client
//! sockets: ahead of libuv and tokio); with one client keeping 4 datagrams in flight they
//! come out level with libuv's batches and behind tokio's one-datagram reads, and batches of
//! one would win that case by about 20% but lose about 10% with 16 senders. A callback that
//! stops receiving in the middle of a batch leaves the rest of it in the socket's stash,
//! delivered first when it starts again.

use std::io;
use std::net::SocketAddr;

use super::UdpSocket;
use crate::driver::Readiness;
use crate::driver::{Received, RECV_BATCH};
use crate::event_loop::Loop;
use crate::handle::{Extra, Handle};
use crate::net::READ_BUF_SIZE;

/// Datagrams per socket per wakeup at most, so that a flood on one socket cannot starve
/// the other handles (libuv reads 32 per callback of its poller).
const MAX_RECVS_PER_WAKEUP: usize = 64;

/// The most a receive buffer may be set to: a datagram is at most 64 KiB (IPv6 jumbograms
/// aside), so anything larger is a mistake that would only reserve memory.
const MAX_RECV_BUFFER_SIZE: usize = 16 << 20;

/// What a batch's slots may add up to: a batch of `RECV_BATCH` datagrams of the default
/// 64 KiB, fewer of a larger size (one, at least).
const BATCH_BUDGET: usize = RECV_BATCH * READ_BUF_SIZE;

/// A datagram taken from the kernel but not delivered yet (see `UdpState::stash`).
pub(crate) struct Stashed {
    data: Box<[u8]>,
    from: SocketAddr,
    flags: RecvFlags,
}

/// The callback `recv_start` installs.
pub(crate) type RecvCallback<S> =
    Box<dyn FnMut(&mut Loop<S>, UdpSocket, io::Result<(&[u8], SocketAddr, RecvFlags)>)>;

/// What the kernel says of a received datagram besides its bytes and sender.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct RecvFlags {
    truncated: bool,
}

impl RecvFlags {
    /// Whether the datagram was larger than the receive buffer (`MSG_TRUNC`): the slice
    /// holds its first bytes only, and the rest is lost. Always `false` with the default
    /// 64 KiB buffer, which the largest datagram fits. Detected on Linux (and the
    /// simulator); other systems report `false`.
    pub fn truncated(self) -> bool {
        self.truncated
    }
}

impl UdpSocket {
    /// Starts receiving: `on_recv` gets each datagram as `Ok((data, sender, flags))`, `data`
    /// borrowed from a loop-owned buffer (copy what you keep). A zero-byte datagram arrives
    /// as an empty slice: UDP has no end of stream. An error (on a connected socket, a peer
    /// whose port is closed gives `ConnectionRefused`, from the ICMP reply) is delivered as
    /// `Err` and does not stop reception: the next datagram still arrives. Calling it again
    /// replaces the callback.
    pub fn recv_start<S>(
        &self,
        lp: &mut Loop<S>,
        on_recv: impl FnMut(&mut Loop<S>, UdpSocket, io::Result<(&[u8], SocketAddr, RecvFlags)>) + 'static,
    ) -> io::Result<()> {
        let st = lp.udp_usable(self.handle)?;
        st.recv_callback = Some(Box::new(on_recv));
        if !st.receiving {
            st.receiving = true;
            if std::mem::take(&mut st.maybe_unread) || !st.stash.is_empty() {
                lp.net.again.push(Readiness::again(self.handle.to_key()));
            }
            lp.udp_changed(self.handle);
        }
        Ok(())
    }

    /// Stops receiving. The kernel keeps queuing what arrives, up to its receive buffer,
    /// and drops the rest, as UDP does. `recv_start` starts again.
    pub fn recv_stop<S>(&self, lp: &mut Loop<S>) -> io::Result<()> {
        let st = lp.udp_usable(self.handle)?;
        if st.receiving {
            st.receiving = false;
            lp.udp_changed(self.handle);
        }
        Ok(())
    }

    /// Whether the socket is receiving.
    pub fn is_receiving<S>(&self, lp: &Loop<S>) -> bool {
        lp.udp_ref(self.handle).is_ok_and(|st| st.receiving)
    }

    /// Sets the size of the buffer each datagram is received into (default 64 KiB, which
    /// the largest datagram fits). A larger datagram is cut to it and flagged
    /// [`truncated`](RecvFlags::truncated). The loop's receive buffer, shared by its UDP
    /// sockets, grows to hold a batch of this size; a size of 0 is refused, and so is one
    /// above 16 MiB.
    pub fn set_recv_buffer_size<S>(&self, lp: &mut Loop<S>, bytes: usize) -> io::Result<()> {
        if bytes == 0 || bytes > MAX_RECV_BUFFER_SIZE {
            return Err(crate::error::misuse("evloop: a receive buffer takes 1 byte to 16 MiB"));
        }
        lp.udp_usable(self.handle)?.recv_buf_size = bytes;
        Ok(())
    }

    /// The size of the buffer each datagram is received into.
    pub fn recv_buffer_size<S>(&self, lp: &Loop<S>) -> io::Result<usize> {
        Ok(lp.udp_ref(self.handle)?.recv_buf_size)
    }
}

impl<S> Loop<S> {
    /// A socket's readiness: queued sends go out first, then datagrams are received.
    pub(crate) fn udp_ready(&mut self, h: Handle, r: &Readiness) {
        if r.writable {
            self.flush_sends(h);
        }
        if r.readable {
            self.receive(h);
        }
    }

    /// Receives what the socket holds, up to the cap: first what a stopped callback left in
    /// the stash, then batches from the kernel.
    fn receive(&mut self, h: Handle) {
        let mut delivered = 0;
        while delivered < MAX_RECVS_PER_WAKEUP {
            let Some(st) = self.udp_state(h) else { return };
            if !st.receiving {
                return;
            }
            let Some(d) = st.stash.pop_front() else { break };
            delivered += 1;
            self.call_recv(h, Ok((&d.data, d.from, d.flags)));
        }
        let mut buf = std::mem::take(&mut self.net.udp_buf);
        let mut got = std::mem::take(&mut self.net.udp_received);
        let drained = self.receive_batches(h, &mut buf, &mut got, delivered);
        self.net.udp_buf = buf;
        self.net.udp_received = got;
        if !drained {
            if let Some(st) = self.udp_state(h) {
                if st.receiving {
                    // The cap was reached: come back after the others, as if polled again.
                    self.net.again.push(Readiness::again(h.to_key()));
                } else {
                    st.maybe_unread = true;
                }
            }
        }
    }

    /// Takes batches from the kernel and delivers them until the socket is empty (returns
    /// `true`), or the cap is reached or the callback stopped receiving (`false`).
    fn receive_batches(
        &mut self,
        h: Handle,
        buf: &mut Vec<u8>,
        got: &mut Vec<Received>,
        mut delivered: usize,
    ) -> bool {
        let mut errors_in_a_row = 0;
        while delivered < MAX_RECVS_PER_WAKEUP {
            let Some(st) = self.udp_state(h) else { return true };
            if !st.receiving {
                return false;
            }
            let (sock, slot) = (st.sock, st.recv_buf_size);
            let most = (BATCH_BUDGET / slot).clamp(1, RECV_BATCH);
            let width = most.min(MAX_RECVS_PER_WAKEUP - delivered);
            if buf.len() < most * slot {
                // Zeroed pages are mapped as they are first written: a large buffer costs
                // memory only for the datagrams it has held.
                *buf = vec![0; most * slot];
            }
            got.clear();
            match self.driver.udp_recv_batch(sock, &mut buf[..width * slot], slot, got) {
                Ok(()) => errors_in_a_row = 0,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) => {
                    // An ICMP error, reported once: the datagrams behind it are still to
                    // come. Two in a row is no ICMP report but a broken socket: stop here
                    // rather than spin.
                    errors_in_a_row += 1;
                    self.call_recv(h, Err(e));
                    if errors_in_a_row > 1 {
                        return true;
                    }
                    continue;
                }
            }
            for (i, d) in got.iter().enumerate() {
                let data = &buf[i * slot..i * slot + d.len.min(slot)];
                let flags = RecvFlags { truncated: d.truncated };
                match self.udp_state(h) {
                    None => return true, // closed: what it had is dropped with it
                    Some(st) if !st.receiving => {
                        let data = data.into();
                        st.stash.push_back(Stashed { data, from: d.from, flags });
                    }
                    Some(_) => self.call_recv(h, Ok((data, d.from, flags))),
                }
            }
            // A short batch does not end the pass: the callbacks just sent their replies,
            // and a peer that answers at once has often sent its next datagram by now. One
            // more call finds it (or `WouldBlock`) without a trip through the poller, which
            // would put the loop to sleep and wake it again for that datagram.
            delivered += got.len();
        }
        false
    }

    /// Calls the receive callback, taken out of its slot for the call.
    fn call_recv(&mut self, h: Handle, result: io::Result<(&[u8], SocketAddr, RecvFlags)>) {
        self.call_slot(h, recv_slot, |lp, cb| cb(lp, UdpSocket::from_handle(h), result));
    }
}

fn recv_slot<S>(extra: &mut Extra<S>) -> Option<&mut Option<RecvCallback<S>>> {
    match extra {
        Extra::Udp(st) => Some(&mut st.recv_callback),
        _ => None,
    }
}
