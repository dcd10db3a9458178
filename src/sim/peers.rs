//! Fake peers and fake listeners: the test's side of simulated connections.

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::driver::sim::world::{Conn, End, World};

/// A test-driven TCP peer. Its methods act on the simulated network at once, but the
/// program's callbacks run only when the loop runs.
pub struct FakePeer {
    world: Rc<RefCell<World>>,
    conn: usize,
    side: usize,
}

impl fmt::Debug for FakePeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakePeer").field("conn", &self.conn).finish()
    }
}

impl FakePeer {
    pub(super) fn new(world: Rc<RefCell<World>>, conn: usize, side: usize) -> FakePeer {
        FakePeer { world, conn, side }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Conn, u64) -> R) -> R {
        let mut w = self.world.borrow_mut();
        w.settle();
        let now = w.now;
        let r = f(&mut w.conns[self.conn], now);
        w.settle();
        r
    }

    /// Sends bytes to the program. They leave as the program's receive window allows.
    pub fn send(&self, data: &[u8]) {
        self.with(|c, _| c.peer_outbox.extend(data));
    }

    /// Takes everything the program has written that has arrived so far.
    pub fn recv(&self) -> Vec<u8> {
        self.with(|c, _| std::mem::take(&mut c.peer_inbox))
    }

    /// Takes at most `n` bytes of what the program has written and has arrived, reading
    /// nothing more: while reading is paused, this opens the program's window by exactly what
    /// it takes (for tests of backpressure to the byte).
    pub fn recv_up_to(&self, n: usize) -> Vec<u8> {
        let side = self.side;
        self.with(|c, now| {
            let from_inbox = n.min(c.peer_inbox.len());
            let mut out: Vec<u8> = c.peer_inbox.drain(..from_inbox).collect();
            let mut rest = vec![0; n - from_inbox];
            let got = c.pipes[1 - side].read(now, &mut rest);
            out.extend_from_slice(&rest[..got]);
            out
        })
    }

    /// Sends FIN once the bytes already sent have gone (half-close).
    pub fn shutdown(&self) {
        self.with(|c, _| c.peer_fin_pending = true);
    }

    /// Closes the peer's socket like `close(2)`: what it sent still goes out, then FIN; if
    /// it left received data unread (not taken with [`recv`](FakePeer::recv)), a reset
    /// instead. Data the program sends afterwards is answered with a reset.
    pub fn close(&self) {
        let side = self.side;
        self.with(|c, now| {
            let unread = !c.peer_inbox.is_empty() || c.pipes[1 - side].bytes_unread() > 0;
            if !unread {
                let rest: Vec<u8> = c.peer_outbox.drain(..).collect();
                let at = c.arrival(now);
                c.pipes[side].push_all(at, &rest);
            }
            c.peer_fin_pending = false;
            c.close_side(side, now, unread);
        });
    }

    /// Resets the connection: the program sees `ConnectionReset`.
    pub fn reset(&self) {
        let side = self.side;
        self.with(|c, now| {
            c.reset[1 - side] = Some(c.arrival(now));
            c.reset[side] = Some(now);
            c.peer_outbox.clear();
        });
    }

    /// Stops taking what arrives: the window fills and the program's writes stall.
    pub fn pause_reading(&self) {
        self.with(|c, _| c.peer_paused = true);
    }

    /// Takes what arrives again.
    pub fn resume_reading(&self) {
        self.with(|c, _| c.peer_paused = false);
    }

    /// The fake peer's own address: what the program's [`TcpStream::peer_addr`] returns for
    /// the stream at the other end, which is how a test finds that stream.
    ///
    /// [`TcpStream::peer_addr`]: crate::TcpStream::peer_addr
    ///
    /// A peer of a Unix domain connection has no `SocketAddr`: it reports `0.0.0.0:0`.
    pub fn local_addr(&self) -> SocketAddr {
        ip_or_unspecified(&self.world.borrow().conns[self.conn].addrs[self.side])
    }

    /// The program's address on this connection: its listener's, or the local address of a
    /// stream that connected to a [`FakeListener`].
    ///
    /// Of a Unix domain connection: `0.0.0.0:0`.
    pub fn peer_addr(&self) -> SocketAddr {
        ip_or_unspecified(&self.world.borrow().conns[self.conn].addrs[1 - self.side])
    }

    /// Whether the program has ended the connection: FIN received (after all data) or reset.
    pub fn is_closed(&self) -> bool {
        let side = self.side;
        self.with(|c, now| c.reset[side].is_some_and(|at| at <= now) || c.pipes[1 - side].ended(now))
    }

    /// Whether the connection was reset (by either side).
    pub fn is_reset(&self) -> bool {
        let side = self.side;
        self.with(|c, now| c.reset[side].is_some_and(|at| at <= now))
    }

    /// The next `count` writes by the program, after the first `skip`, accept at most
    /// `limit` bytes each.
    pub fn limit_writes(&self, skip: usize, count: usize, limit: usize) {
        self.with(|c, _| {
            c.faults.partial_after = skip;
            c.faults.partial_count = count;
            c.faults.partial_limit = limit.max(1);
        });
    }

    /// The program's next `n` writes fail with `WouldBlock` although there is room.
    pub fn would_block_writes(&self, n: usize) {
        self.with(|c, _| c.faults.would_block = n);
    }

    /// The next `n` polls report the program's socket ready when it is not.
    pub fn spurious_readiness(&self, n: usize) {
        self.with(|c, _| c.faults.spurious = n);
    }

    /// Sets the one-way latency of this connection's link (both directions), from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.with(|c, _| c.latency = super::ms(latency));
    }

    /// The peer resets once it has received `bytes` bytes in all.
    pub fn reset_after(&self, bytes: u64) {
        self.with(|c, _| c.faults.reset_at = Some(bytes));
    }
}

fn ip_or_unspecified(addr: &socket2::SockAddr) -> SocketAddr {
    addr.as_socket().unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// A fake server that the program connects to.
pub struct FakeListener {
    world: Rc<RefCell<World>>,
    id: usize,
}

impl fmt::Debug for FakeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeListener").field("id", &self.id).finish()
    }
}

impl FakeListener {
    pub(super) fn new(world: Rc<RefCell<World>>, id: usize) -> FakeListener {
        FakeListener { world, id }
    }

    /// The next connection the program made, if any.
    pub fn accept(&self) -> Option<FakePeer> {
        let conn = self.world.borrow_mut().fake_listeners.get_mut(self.id)?.accepted.pop_front()?;
        Some(FakePeer::new(self.world.clone(), conn, 1))
    }

    /// Stops listening: later connects are refused, and connections not yet accepted are
    /// reset (as Linux resets its accept queue).
    pub fn close(self) {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        if let Some(l) = w.fake_listeners.try_remove(self.id) {
            w.listening.remove(&l.addr);
            for conn in l.accepted {
                let c = &mut w.conns[conn];
                c.reset[0] = Some(c.arrival(now));
                c.ends[1] = End::Closed;
            }
        }
    }
}
