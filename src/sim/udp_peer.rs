//! Fake UDP peers on a simulated loop, and the controls of the simulated UDP network.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use super::Sim;
use crate::driver::sim::world::World;

/// A UDP socket of the test's on a [`Sim`]'s network, made by [`Sim::udp_peer`]: it sends
/// datagrams to the program's sockets and collects what they send to it. Its datagrams
/// cross the network as the program's do (link latency, and the loss, duplication and
/// reordering the [`SimConfig`](super::SimConfig) asked for). It never calls a callback:
/// callbacks run only inside the loop.
///
/// ```
/// use evloop::sim::Sim;
/// use evloop::UdpSocket;
///
/// let mut sim = Sim::new(1, Vec::new());
/// let sock = UdpSocket::bind(&mut sim, "10.0.0.1:53")?;
/// sock.recv_start(&mut sim, |lp, sock, dgram| {
///     let (data, from, _) = dgram.unwrap();
///     lp.state.push(data.to_vec());
///     sock.send_to(lp, b"pong", from).unwrap();
/// })?;
/// let peer = sim.udp_peer("10.0.0.2:0".parse().unwrap())?;
/// peer.send_to("10.0.0.1:53".parse().unwrap(), b"ping");
/// sim.run_until_idle().unwrap();
/// assert_eq!(sim.state, [b"ping".to_vec()]);
/// assert_eq!(peer.received(), [(b"pong".to_vec(), "10.0.0.1:53".parse().unwrap())]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct FakeUdpPeer {
    world: Rc<RefCell<World>>,
    id: usize,
}

impl fmt::Debug for FakeUdpPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeUdpPeer").field("addr", &self.addr()).finish()
    }
}

impl FakeUdpPeer {
    /// The peer's address (its port resolved if it was bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.world.borrow().udp_peer_addr(self.id)
    }

    /// Sends one datagram to `dest`. It arrives one link latency from now, unless the
    /// network's faults drop, duplicate or delay it; nothing bound at `dest`: it is lost.
    pub fn send_to(&self, dest: SocketAddr, data: &[u8]) {
        let mut w = self.world.borrow_mut();
        let from = w.udp_peer_addr(self.id);
        w.udp_transmit(from, dest, data);
    }

    /// Takes every datagram that has reached the peer by now, with its sender, in the order
    /// they arrived.
    pub fn received(&self) -> Vec<(Vec<u8>, SocketAddr)> {
        self.world.borrow_mut().udp_peer_received(self.id)
    }
}

impl<S> Sim<S> {
    /// A fake UDP peer bound at `addr` (port 0: a fresh port). `AddrInUse` if a socket of
    /// the program or another peer holds the address.
    pub fn udp_peer(&mut self, addr: SocketAddr) -> io::Result<FakeUdpPeer> {
        let (id, _) = self.world.borrow_mut().udp_peer(addr)?;
        Ok(FakeUdpPeer { world: self.world.clone(), id })
    }

    /// The next `n` sends of the program's UDP sockets find the socket full: they fail
    /// with `WouldBlock` inside the driver (so `send_to` queues the datagram, `try_send_to`
    /// returns the error), and the socket is writable again at the loop's next poll.
    pub fn block_udp_sends(&mut self, n: usize) {
        self.world.borrow_mut().udp.blocked_sends = n;
    }
}
