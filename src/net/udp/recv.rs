//! The receive side of UDP sockets: draining a readable socket into the receive callback,
//! one datagram per call, from a buffer the loop owns (no allocation per datagram).
//!
//! The socket is registered edge-triggered on the epoll backend, so a pass reads until
//! `WouldBlock`; at the per-wakeup cap the loop owes itself another look
//! (`NetState::again`), after the other handles. Datagram sockets give no short-read hint:
//! only `WouldBlock` says the socket is empty.

use std::io;
use std::net::SocketAddr;

use super::UdpSocket;
use crate::driver::Readiness;
use crate::event_loop::Loop;
use crate::handle::{Extra, Handle};
use crate::net::READ_BUF_SIZE;

/// Datagrams per socket per wakeup at most, so that a flood on one socket cannot starve
/// the other handles (libuv reads 32 per callback of its poller).
const MAX_RECVS_PER_WAKEUP: usize = 64;

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
            if std::mem::take(&mut st.maybe_unread) {
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

    /// Sets the size of the buffer datagrams are received into (default 64 KiB, which the
    /// largest datagram fits). A larger datagram is cut to it and flagged
    /// [`truncated`](RecvFlags::truncated). The buffer is allocated here, once; a size of
    /// 0 is refused.
    pub fn set_recv_buffer_size<S>(&self, lp: &mut Loop<S>, bytes: usize) -> io::Result<()> {
        if bytes == 0 {
            return Err(crate::error::misuse("evloop: a receive buffer needs at least one byte"));
        }
        let st = lp.udp_usable(self.handle)?;
        st.recv_buf = (bytes != READ_BUF_SIZE).then(|| vec![0; bytes].into_boxed_slice());
        Ok(())
    }

    /// The size of the buffer datagrams are received into.
    pub fn recv_buffer_size<S>(&self, lp: &Loop<S>) -> io::Result<usize> {
        Ok(lp.udp_ref(self.handle)?.recv_buf.as_ref().map_or(READ_BUF_SIZE, |b| b.len()))
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

    /// Receives what the socket holds, up to the cap.
    fn receive(&mut self, h: Handle) {
        let mut shared = std::mem::take(&mut self.net.read_buf);
        if shared.is_empty() {
            // A read callback panicked while it held the buffer.
            shared = vec![0; READ_BUF_SIZE];
        }
        let mut drained = false;
        let mut errors_in_a_row = 0;
        for _ in 0..MAX_RECVS_PER_WAKEUP {
            let Some(st) = self.udp_state(h) else {
                drained = true;
                break;
            };
            if !st.receiving {
                break;
            }
            let sock = st.sock;
            // The socket's own buffer, if it has one, is out of its state for the call.
            let mut own = st.recv_buf.take();
            let buf: &mut [u8] = own.as_deref_mut().unwrap_or(&mut shared);
            match self.driver.udp_recv(sock, buf) {
                Ok(got) => {
                    errors_in_a_row = 0;
                    let flags = RecvFlags { truncated: got.truncated };
                    self.call_recv(h, Ok((&buf[..got.len], got.from, flags)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => drained = true,
                Err(e) => {
                    // An ICMP error, reported once: the datagrams behind it are still to
                    // come. Two in a row is no ICMP report but a broken socket: stop here
                    // rather than spin.
                    errors_in_a_row += 1;
                    drained = errors_in_a_row > 1;
                    self.call_recv(h, Err(e));
                }
            }
            if let Some(st) = self.udp_state(h) {
                if st.recv_buf.is_none() {
                    st.recv_buf = own;
                }
            }
            if drained {
                break;
            }
        }
        self.net.read_buf = shared;
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
