//! UDP bodies, and the UDP peers each harness adds: a non-blocking `std::net::UdpSocket` on
//! 127.0.0.1 for the real loop (loopback delivers a datagram inside the `sendto` that sends
//! it, so it has arrived when the call returns, as in the simulation at zero latency), a
//! `FakeUdpPeer` for the simulated one.

use std::net::UdpSocket as StdUdp;

use evloop::sim::FakeUdpPeer;
use evloop::{RecvFlags, UdpSocket};

use super::*;

/// One call of a receive callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Dgram {
    Data(Vec<u8>, SocketAddr, bool),
    Error(ErrorKind),
}

impl Dgram {
    fn of(d: io::Result<(&[u8], SocketAddr, RecvFlags)>) -> Dgram {
        match d {
            Ok((data, from, flags)) => Dgram::Data(data.to_vec(), from, flags.truncated()),
            Err(e) => Dgram::Error(e.kind()),
        }
    }
}

/// A UDP socket of the test's.
pub(super) trait UdpPeer {
    fn addr(&self) -> SocketAddr;
    fn send_to(&self, dest: SocketAddr, data: &[u8]);
    /// Takes what has arrived.
    fn take(&mut self) -> Vec<(Vec<u8>, SocketAddr)>;
}

pub(super) trait UdpNet<S>: Net<S> {
    type UdpPeer: UdpPeer;
    fn udp_peer(&mut self) -> Self::UdpPeer;
}

impl UdpPeer for StdUdp {
    fn addr(&self) -> SocketAddr {
        self.local_addr().unwrap()
    }

    fn send_to(&self, dest: SocketAddr, data: &[u8]) {
        StdUdp::send_to(self, data, dest).unwrap();
    }

    fn take(&mut self) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0; 65_536];
        let mut got = Vec::new();
        while let Ok((n, from)) = self.recv_from(&mut buf) {
            got.push((buf[..n].to_vec(), from));
        }
        got
    }
}

impl<S> UdpNet<S> for Real<S> {
    type UdpPeer = StdUdp;

    fn udp_peer(&mut self) -> StdUdp {
        let s = StdUdp::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }
}

impl UdpPeer for FakeUdpPeer {
    fn addr(&self) -> SocketAddr {
        FakeUdpPeer::addr(self)
    }

    fn send_to(&self, dest: SocketAddr, data: &[u8]) {
        FakeUdpPeer::send_to(self, dest, data);
    }

    fn take(&mut self) -> Vec<(Vec<u8>, SocketAddr)> {
        self.received()
    }
}

impl<S> UdpNet<S> for Simulated<S> {
    type UdpPeer = FakeUdpPeer;

    fn udp_peer(&mut self) -> FakeUdpPeer {
        self.sim.udp_peer("10.0.0.2:0".parse().unwrap()).unwrap()
    }
}

/// Runs the loop until `peer` has received `n` datagrams; returns them.
fn peer_gets<N: UdpNet<St>>(net: &mut N, peer: &mut N::UdpPeer, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    net.settle_until("the peer receives", |_| {
        got.extend(peer.take());
        got.len() >= n
    });
    got
}

fn bind_recording<N: UdpNet<St>>(net: &mut N) -> (UdpSocket, SocketAddr) {
    let addr = net.any_addr();
    let s = UdpSocket::bind(net.lp(), addr).unwrap();
    s.recv_start(net.lp(), |lp, _, d| lp.state.dgrams.push(Dgram::of(d))).unwrap();
    let addr = s.local_addr(net.lp()).unwrap();
    (s, addr)
}

fn bind<N: UdpNet<St>>(net: &mut N) -> UdpSocket {
    let addr = net.any_addr();
    UdpSocket::bind(net.lp(), addr).unwrap()
}

fn data(d: &[u8], from: SocketAddr) -> Dgram {
    Dgram::Data(d.to_vec(), from, false)
}

pub(super) fn udp_datagrams_between_two_sockets_and_a_peer<N: UdpNet<St>>() {
    let mut net = N::new(St::default());
    let (_b, b_addr) = bind_recording(&mut net);
    let a = bind(&mut net);
    let a_addr = a.local_addr(net.lp()).unwrap();
    a.send_to(net.lp(), b"one", b_addr).unwrap();
    let mut peer = net.udp_peer();
    peer.send_to(b_addr, b"two");
    net.settle_until("two datagrams", |lp| lp.state.dgrams.len() >= 2);
    assert_eq!(net.lp().state.dgrams, [data(b"one", a_addr), data(b"two", peer.addr())]);
    a.send_to(net.lp(), b"three", peer.addr()).unwrap();
    assert_eq!(peer_gets(&mut net, &mut peer, 1), [(b"three".to_vec(), a_addr)]);
    net.finish();
}

pub(super) fn udp_zero_byte_datagram_is_no_end<N: UdpNet<St>>() {
    let mut net = N::new(St::default());
    let addr = net.any_addr();
    let s = UdpSocket::bind(net.lp(), addr).unwrap();
    let s_addr = s.local_addr(net.lp()).unwrap();
    // An echo: the empty datagram goes back, and reception goes on.
    s.recv_start(net.lp(), |lp, s, d| {
        let (bytes, from, _) = d.as_ref().unwrap();
        s.send_to(lp, bytes, *from).unwrap();
        lp.state.dgrams.push(Dgram::of(d));
    })
    .unwrap();
    let mut peer = net.udp_peer();
    peer.send_to(s_addr, b"");
    peer.send_to(s_addr, b"after");
    net.settle_until("two datagrams", |lp| lp.state.dgrams.len() >= 2);
    assert_eq!(net.lp().state.dgrams, [data(b"", peer.addr()), data(b"after", peer.addr())]);
    assert!(s.is_receiving(net.lp()), "an empty datagram is no end of anything");
    assert_eq!(peer_gets(&mut net, &mut peer, 2), [(vec![], s_addr), (b"after".to_vec(), s_addr)]);
    net.finish();
}

pub(super) fn udp_truncation_flag<N: UdpNet<St>>() {
    let mut net = N::new(St::default());
    let (s, s_addr) = bind_recording(&mut net);
    s.set_recv_buffer_size(net.lp(), 8).unwrap();
    assert_eq!(s.recv_buffer_size(net.lp()).unwrap(), 8);
    let peer = net.udp_peer();
    peer.send_to(s_addr, &pattern(20));
    peer.send_to(s_addr, b"four");
    peer.send_to(s_addr, &pattern(8));
    net.settle_until("three datagrams", |lp| lp.state.dgrams.len() >= 3);
    let from = peer.addr();
    assert_eq!(
        net.lp().state.dgrams,
        [
            Dgram::Data(pattern(8), from, true),
            Dgram::Data(b"four".to_vec(), from, false),
            Dgram::Data(pattern(8), from, false),
        ]
    );
    assert!(s.set_recv_buffer_size(net.lp(), 0).is_err());
    net.finish();
}

pub(super) fn udp_connected_send_and_filter<N: UdpNet<St>>() {
    let mut net = N::new(St::default());
    let (s, s_addr) = bind_recording(&mut net);
    let mut peer = net.udp_peer();
    let other = net.udp_peer();
    assert_eq!(s.peer_addr(net.lp()).unwrap_err().kind(), ErrorKind::NotConnected);
    let err = s.send(net.lp(), b"nowhere").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    s.connect(net.lp(), peer.addr()).unwrap();
    assert_eq!(s.peer_addr(net.lp()).unwrap(), peer.addr());
    s.send(net.lp(), b"hi").unwrap();
    assert_eq!(s.try_send(net.lp(), b"again").unwrap(), 5);
    assert_eq!(peer_gets(&mut net, &mut peer, 2), [(b"hi".to_vec(), s_addr), (b"again".to_vec(), s_addr)]);
    // Only the connected peer's datagrams arrive.
    other.send_to(s_addr, b"stranger");
    peer.send_to(s_addr, b"back");
    net.settle_until("the peer's datagram", |lp| !lp.state.dgrams.is_empty());
    net.quiet();
    assert_eq!(net.lp().state.dgrams, [data(b"back", peer.addr())]);
    s.disconnect(net.lp()).unwrap();
    assert_eq!(s.peer_addr(net.lp()).unwrap_err().kind(), ErrorKind::NotConnected);
    assert_eq!(s.disconnect(net.lp()).unwrap_err().kind(), ErrorKind::InvalidInput);
    other.send_to(s_addr, b"welcome");
    net.settle_until("the other's datagram", |lp| lp.state.dgrams.len() >= 2);
    assert_eq!(net.lp().state.dgrams[1], data(b"welcome", other.addr()));
    net.finish();
}

pub(super) fn udp_recv_stop_stops_delivery<N: UdpNet<St>>() {
    let mut net = N::new(St::default());
    let s = bind(&mut net);
    let s_addr = s.local_addr(net.lp()).unwrap();
    s.recv_start(net.lp(), |lp, s, d| {
        lp.state.dgrams.push(Dgram::of(d));
        s.recv_stop(lp).unwrap();
    })
    .unwrap();
    let peer = net.udp_peer();
    for msg in [&b"1"[..], b"2", b"3"] {
        peer.send_to(s_addr, msg);
    }
    net.settle_until("the first datagram", |lp| !lp.state.dgrams.is_empty());
    net.quiet();
    assert_eq!(net.lp().state.dgrams, [data(b"1", peer.addr())]);
    assert!(!s.is_receiving(net.lp()));
    assert!(!s.is_active(net.lp()), "a socket that does not receive and sends nothing is inactive");
    // The kernel kept the rest: receiving again delivers it, in order.
    s.recv_start(net.lp(), |lp, _, d| lp.state.dgrams.push(Dgram::of(d))).unwrap();
    net.settle_until("the rest", |lp| lp.state.dgrams.len() >= 3);
    assert_eq!(net.lp().state.dgrams[1..], [data(b"2", peer.addr()), data(b"3", peer.addr())]);
    net.finish();
}

pub(super) fn udp_send_callbacks_in_order_never_inside_the_call<N: UdpNet<St>>() {
    let mut net = N::new(St::default());
    let s = bind(&mut net);
    let mut peer = net.udp_peer();
    let to = peer.addr();
    for (i, name) in ["first", "second", "third"].into_iter().enumerate() {
        s.send_to_with(net.lp(), &[i as u8], to, log_as(name)).unwrap();
    }
    assert!(net.lp().state.log.is_empty(), "never inside the call");
    assert_eq!(s.send_queue_count(net.lp()).unwrap(), 0, "sent at once");
    net.settle_until("three completions", |lp| lp.state.log.len() >= 3);
    assert_eq!(net.lp().state.log, ["first: ok", "second: ok", "third: ok"]);
    let got: Vec<Vec<u8>> = peer_gets(&mut net, &mut peer, 3).into_iter().map(|(d, _)| d).collect();
    assert_eq!(got, [[0], [1], [2]]);
    net.finish();
}

pub(super) fn udp_closed_socket_is_misuse<N: UdpNet<St>>() {
    let mut net = N::new(St::default());
    let s = bind(&mut net);
    let to = net.udp_peer().addr();
    s.close(net.lp()).unwrap();
    let closing = s.send_to(net.lp(), b"x", to).unwrap_err();
    assert_eq!(
        (closing.kind(), closing.to_string().as_str()),
        (ErrorKind::InvalidInput, "evloop: handle is closing")
    );
    net.run_to_end().unwrap();
    let lp = net.lp();
    let closed = s.send_to(lp, b"x", to).unwrap_err();
    assert_eq!(
        (closed.kind(), closed.to_string().as_str()),
        (ErrorKind::InvalidInput, "evloop: handle is closed")
    );
    assert_eq!(s.try_send_to(lp, b"x", to).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(s.recv_start(lp, |_, _, _| {}).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(s.local_addr(lp).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(s.set_broadcast(lp, true).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(s.send_queue_size(lp).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(!s.is_receiving(lp) && !s.is_active(lp));
    // A new socket in the freed slot: the stale id still gets "closed" and never reaches it.
    let fresh = bind(&mut net);
    let lp = net.lp();
    fresh.recv_start(lp, |_, _, _| {}).unwrap();
    assert_eq!(s.recv_stop(lp).unwrap_err().to_string(), "evloop: handle is closed");
    assert_eq!(s.close(lp).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(fresh.is_receiving(lp), "the new socket is untouched");
    assert_eq!(Handle::from(fresh).kind(lp).unwrap(), evloop::HandleKind::UdpSocket);
    net.finish();
}

pub(super) fn udp_liveness_follows_receiving<N: UdpNet<St>>() {
    let mut net = N::new(St::default());
    let s = bind(&mut net);
    assert!(!s.is_active(net.lp()) && !net.lp().alive(), "a bound socket alone keeps nothing alive");
    net.run_to_end().unwrap();
    s.recv_start(net.lp(), |_, _, _| {}).unwrap();
    assert!(s.is_active(net.lp()) && net.lp().alive());
    s.unref(net.lp()).unwrap();
    assert!(!net.lp().alive());
    net.run_to_end().unwrap();
    s.ref_(net.lp()).unwrap();
    s.recv_stop(net.lp()).unwrap();
    assert!(!s.is_active(net.lp()) && !net.lp().alive());
    net.run_to_end().unwrap();
    net.finish();
}

pub(super) fn udp_address_in_use<N: UdpNet<St>>() {
    let mut net = N::new(St::default());
    let s = bind(&mut net);
    let addr = s.local_addr(net.lp()).unwrap();
    let err = UdpSocket::bind(net.lp(), addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    s.close(net.lp()).unwrap();
    net.run_to_end().unwrap();
    let again = UdpSocket::bind(net.lp(), addr).unwrap();
    assert_eq!(again.local_addr(net.lp()).unwrap(), addr);
    // The defaults as Linux has them, and options read back.
    let lp = net.lp();
    assert!(!again.broadcast(lp).unwrap());
    assert_eq!(again.multicast_ttl_v4(lp).unwrap(), 1);
    assert!(again.multicast_loop_v4(lp).unwrap());
    again.set_broadcast(lp, true).unwrap();
    again.set_ttl(lp, 7).unwrap();
    again.set_multicast_ttl_v4(lp, 3).unwrap();
    again.set_multicast_loop_v4(lp, false).unwrap();
    assert!(again.broadcast(lp).unwrap());
    assert_eq!((again.ttl(lp).unwrap(), again.multicast_ttl_v4(lp).unwrap()), (7, 3));
    assert!(!again.multicast_loop_v4(lp).unwrap());
    net.finish();
}

pub(super) fn udp_reuse_port_shares_a_port<N: UdpNet<St>>() {
    let mut net = N::new(St::default());
    let any = net.any_addr();
    let opts = evloop::UdpOptions::new().reuse_port(true);
    let a = opts.bind(net.lp(), any).unwrap();
    let addr = a.local_addr(net.lp()).unwrap();
    let b = opts.bind(net.lp(), addr).unwrap();
    assert_eq!(b.local_addr(net.lp()).unwrap(), addr);
    assert_eq!(UdpSocket::bind(net.lp(), addr).unwrap_err().kind(), ErrorKind::AddrInUse, "all must ask");
    for s in [a, b] {
        s.recv_start(net.lp(), |lp, _, d| lp.state.dgrams.push(Dgram::of(d))).unwrap();
    }
    // Every sender's datagram reaches one of the two (which one is the kernel's hash).
    let peers: Vec<_> = (0..8).map(|_| net.udp_peer()).collect();
    for p in &peers {
        p.send_to(addr, b"hi");
    }
    net.settle_until("eight datagrams", |lp| lp.state.dgrams.len() >= 8);
    net.quiet();
    assert_eq!(net.lp().state.dgrams.len(), 8);
    net.finish();
}

pub(super) fn udp_panic_in_a_recv_callback<N: UdpNet<St>>() {
    let mut net = N::new(St::default());
    let any = net.any_addr();
    let bomb = UdpSocket::bind(net.lp(), any).unwrap();
    bomb.recv_start(net.lp(), |_, _, _| panic!("recv boom")).unwrap();
    let (calm, calm_addr) = bind_recording(&mut net);
    let other = bystander(&mut net);
    let peer = net.udp_peer();
    peer.send_to(bomb.local_addr(net.lp()).unwrap(), b"x");
    assert_eq!(settle_until_panic(&mut net, "the recv callback panics"), "recv boom");
    let lp = net.lp();
    assert!(bomb.is_closing(lp) && !bomb.is_receiving(lp), "the panicking socket is closed");
    assert!(calm.is_receiving(lp), "the other socket still receives");
    assert_bystander_untouched(&mut net, other);
    // The loop is usable, and the shared receive buffer came back.
    peer.send_to(calm_addr, &pattern(1000));
    net.settle_until("the other socket's datagram", |lp| !lp.state.dgrams.is_empty());
    assert_eq!(net.lp().state.dgrams, [Dgram::Data(pattern(1000), peer.addr(), false)]);
    net.finish();
}
