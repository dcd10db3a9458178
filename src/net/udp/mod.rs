//! UDP sockets (libuv's `uv_udp_t`, Node's `dgram`, asyncio's datagram endpoints): the
//! public handle, its loop-side state, binding, connecting and socket options. Receiving is
//! in `recv.rs`, sending and the send queue in `send.rs`.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use crate::driver::{Interest, Membership, SocketId, UdpOption, UdpOptions};
use crate::error::misuse;
use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Extra, Handle, HandleKind};
use crate::net::READ_BUF_SIZE;

mod recv;
mod send;

use recv::RecvCallback;
pub use recv::RecvFlags;
use send::Queued;

/// Default bound of the send queue, in bytes (see [`UdpSocket::set_send_queue_limit`]).
pub(crate) const DEFAULT_SEND_QUEUE_LIMIT: usize = 1024 * 1024;

pub(crate) struct UdpState<S> {
    pub(crate) sock: SocketId,
    receiving: bool,
    /// `connect` succeeded: `send` has a destination.
    connected: bool,
    interest_dirty: bool,
    /// The last receive pass stopped with datagrams possibly left (the callback stopped
    /// receiving): an edge-triggered poller will not report them again.
    maybe_unread: bool,
    recv_callback: Option<RecvCallback<S>>,
    /// The size of one datagram's slot in the loop's receive buffer (`set_recv_buffer_size`;
    /// 64 KiB, which every datagram up to the largest fits).
    recv_buf_size: usize,
    /// Datagrams already taken from the kernel in a batch when the callback stopped
    /// receiving: delivered first when it starts again, so that stopping loses nothing.
    stash: VecDeque<recv::Stashed>,
    queue: VecDeque<Queued<S>>,
    queued_bytes: usize,
    queue_limit: usize,
}

impl<S> UdpState<S> {
    fn new(sock: SocketId) -> Self {
        UdpState {
            sock,
            receiving: false,
            connected: false,
            interest_dirty: false,
            maybe_unread: false,
            recv_callback: None,
            recv_buf_size: READ_BUF_SIZE,
            stash: VecDeque::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            queue_limit: DEFAULT_SEND_QUEUE_LIMIT,
        }
    }

    fn interest(&self) -> Interest {
        Interest { readable: self.receiving, writable: !self.queue.is_empty() }
    }

    /// libuv's rule: active while receiving or while sends are queued.
    fn busy(&self) -> bool {
        self.receiving || !self.queue.is_empty()
    }
}

/// A UDP socket (libuv's `uv_udp_t`, Node's `dgram.Socket`).
///
/// [`send_to`](UdpSocket::send_to) tries the socket at once (one `sendto`); only if the
/// socket has no room is the datagram copied into a send queue, sent in order when the
/// socket is writable again. Datagrams arrive at the callback given to
/// [`recv_start`](UdpSocket::recv_start), borrowed from a loop-owned 64 KiB buffer (copy
/// what you keep), with their sender and [`RecvFlags`]. A zero-byte datagram arrives as an
/// empty slice: UDP has no end of stream.
///
/// # What keeps the loop alive
///
/// libuv's rule: the socket is *active*, and (unless unreferenced) keeps
/// [`RunMode::Default`](crate::RunMode::Default) running, while it receives or has sends
/// queued. A bound socket that does neither does not hold the loop.
///
/// ```
/// use evloop::{Loop, RunMode, UdpSocket};
///
/// let mut lp = Loop::with_state(Vec::new())?;
/// // An echo server on a free port.
/// let server = UdpSocket::bind(&mut lp, "127.0.0.1:0")?;
/// server.recv_start(&mut lp, |lp, server, dgram| {
///     let (data, from, _flags) = dgram.unwrap();
///     server.send_to(lp, data, from).unwrap();
/// })?;
/// let addr = server.local_addr(&lp)?;
///
/// // A client: send, check the echo, close both.
/// let client = UdpSocket::bind(&mut lp, "127.0.0.1:0")?;
/// client.send_to(&mut lp, b"ping", addr)?;
/// client.recv_start(&mut lp, move |lp, client, dgram| {
///     let (data, from, flags) = dgram.unwrap();
///     assert_eq!((data, from, flags.truncated()), (&b"ping"[..], addr, false));
///     lp.state.push(data.to_vec());
///     client.close(lp).unwrap();
///     server.close(lp).unwrap();
/// })?;
/// lp.run(RunMode::Default)?;
/// assert_eq!(lp.state, [b"ping".to_vec()]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct UdpSocket {
    handle: Handle,
}

common_handle_methods!(UdpSocket, UdpSocket);

impl UdpSocket {
    /// Binds a socket to `addr` with the default [`UdpOptions`]; `addr` as for std's
    /// `UdpSocket::bind` (each address it yields is tried until one binds; a host name is
    /// resolved inside this call, blocking the loop thread meanwhile). Port 0 picks a free
    /// port: read it back with [`local_addr`](UdpSocket::local_addr). Binding an address
    /// and port another socket holds fails with `AddrInUse`, unless both asked for reuse.
    pub fn bind<S>(lp: &mut Loop<S>, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        UdpOptions::default().bind(lp, addr)
    }

    /// The address the socket is bound to.
    pub fn local_addr<S>(&self, lp: &Loop<S>) -> io::Result<SocketAddr> {
        let sock = lp.udp_ref(self.handle)?.sock;
        lp.driver.udp_local_addr(sock)
    }

    /// The peer of a connected socket; `NotConnected` otherwise.
    pub fn peer_addr<S>(&self, lp: &Loop<S>) -> io::Result<SocketAddr> {
        let sock = lp.udp_ref(self.handle)?.sock;
        lp.driver.udp_peer_addr(sock)
    }

    /// Connects the socket to one peer, at once (UDP has no handshake, as with std's
    /// `UdpSocket::connect`): [`send`](UdpSocket::send) then goes there, only its datagrams
    /// are received, and the kernel reports its ICMP errors (a closed port: the next receive
    /// gets `ConnectionRefused`). `addr` as for [`bind`](UdpSocket::bind).
    pub fn connect<S>(&self, lp: &mut Loop<S>, addr: impl ToSocketAddrs) -> io::Result<()> {
        let sock = lp.udp_usable(self.handle)?.sock;
        let mut last_error = None;
        for addr in addr.to_socket_addrs()? {
            match lp.driver.udp_connect(sock, Some(addr)) {
                Ok(()) => {
                    lp.udp_usable(self.handle)?.connected = true;
                    return Ok(());
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| misuse("evloop: the address resolved to nothing to connect to")))
    }

    /// Dissolves the association [`connect`](UdpSocket::connect) made (`connect` to
    /// `AF_UNSPEC`, Linux): datagrams from anyone arrive again. The socket keeps its local
    /// address (Linux would give back a port it chose itself; evloop binds it again). An
    /// error if the socket is not connected.
    pub fn disconnect<S>(&self, lp: &mut Loop<S>) -> io::Result<()> {
        let st = lp.udp_usable(self.handle)?;
        if !st.connected {
            return Err(misuse("evloop: disconnect of a UDP socket that is not connected"));
        }
        let sock = st.sock;
        lp.driver.udp_connect(sock, None)?;
        lp.udp_usable(self.handle)?.connected = false;
        Ok(())
    }

    /// Sets `SO_BROADCAST`: whether datagrams may be sent to a broadcast address.
    pub fn set_broadcast<S>(&self, lp: &mut Loop<S>, on: bool) -> io::Result<()> {
        self.set_option(lp, UdpOption::Broadcast, u32::from(on))
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast<S>(&self, lp: &Loop<S>) -> io::Result<bool> {
        Ok(self.option(lp, UdpOption::Broadcast)? != 0)
    }

    /// Sets the time-to-live of outgoing unicast datagrams (`IP_TTL`).
    pub fn set_ttl<S>(&self, lp: &mut Loop<S>, ttl: u32) -> io::Result<()> {
        self.set_option(lp, UdpOption::Ttl, ttl)
    }

    /// The time-to-live of outgoing unicast datagrams.
    pub fn ttl<S>(&self, lp: &Loop<S>) -> io::Result<u32> {
        self.option(lp, UdpOption::Ttl)
    }

    /// Sets `IP_MULTICAST_LOOP`: whether this host's own members of a group receive what
    /// is sent to it (on by default).
    pub fn set_multicast_loop_v4<S>(&self, lp: &mut Loop<S>, on: bool) -> io::Result<()> {
        self.set_option(lp, UdpOption::MulticastLoopV4, u32::from(on))
    }

    /// Whether `IP_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v4<S>(&self, lp: &Loop<S>) -> io::Result<bool> {
        Ok(self.option(lp, UdpOption::MulticastLoopV4)? != 0)
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6<S>(&self, lp: &mut Loop<S>, on: bool) -> io::Result<()> {
        self.set_option(lp, UdpOption::MulticastLoopV6, u32::from(on))
    }

    /// Whether `IPV6_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v6<S>(&self, lp: &Loop<S>) -> io::Result<bool> {
        Ok(self.option(lp, UdpOption::MulticastLoopV6)? != 0)
    }

    /// Sets the time-to-live of outgoing multicast datagrams (`IP_MULTICAST_TTL`, default 1:
    /// the local network only).
    pub fn set_multicast_ttl_v4<S>(&self, lp: &mut Loop<S>, ttl: u32) -> io::Result<()> {
        self.set_option(lp, UdpOption::MulticastTtlV4, ttl)
    }

    /// The time-to-live of outgoing multicast datagrams.
    pub fn multicast_ttl_v4<S>(&self, lp: &Loop<S>) -> io::Result<u32> {
        self.option(lp, UdpOption::MulticastTtlV4)
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: the system's choice), as std's `join_multicast_v4`.
    pub fn join_multicast_v4<S>(
        &self,
        lp: &mut Loop<S>,
        multiaddr: Ipv4Addr,
        interface: Ipv4Addr,
    ) -> io::Result<()> {
        self.membership(lp, Membership::V4(multiaddr, interface), true)
    }

    /// Leaves an IPv4 multicast group joined with [`join_multicast_v4`](UdpSocket::join_multicast_v4).
    pub fn leave_multicast_v4<S>(
        &self,
        lp: &mut Loop<S>,
        multiaddr: Ipv4Addr,
        interface: Ipv4Addr,
    ) -> io::Result<()> {
        self.membership(lp, Membership::V4(multiaddr, interface), false)
    }

    /// Joins the IPv6 multicast group `multiaddr` on the interface with index `interface`
    /// (0: the system's choice), as std's `join_multicast_v6`.
    pub fn join_multicast_v6<S>(
        &self,
        lp: &mut Loop<S>,
        multiaddr: Ipv6Addr,
        interface: u32,
    ) -> io::Result<()> {
        self.membership(lp, Membership::V6(multiaddr, interface), true)
    }

    /// Leaves an IPv6 multicast group joined with [`join_multicast_v6`](UdpSocket::join_multicast_v6).
    pub fn leave_multicast_v6<S>(
        &self,
        lp: &mut Loop<S>,
        multiaddr: Ipv6Addr,
        interface: u32,
    ) -> io::Result<()> {
        self.membership(lp, Membership::V6(multiaddr, interface), false)
    }

    fn set_option<S>(&self, lp: &mut Loop<S>, opt: UdpOption, value: u32) -> io::Result<()> {
        let sock = lp.udp_usable(self.handle)?.sock;
        lp.driver.udp_set_option(sock, opt, value)
    }

    fn option<S>(&self, lp: &Loop<S>, opt: UdpOption) -> io::Result<u32> {
        let sock = lp.udp_ref(self.handle)?.sock;
        lp.driver.udp_option(sock, opt)
    }

    fn membership<S>(&self, lp: &mut Loop<S>, m: Membership, join: bool) -> io::Result<()> {
        let sock = lp.udp_usable(self.handle)?.sock;
        lp.driver.udp_membership(sock, m, join)
    }

    pub(crate) fn from_handle(handle: Handle) -> UdpSocket {
        UdpSocket { handle }
    }
}

impl UdpOptions {
    /// Binds a [`UdpSocket`] to `addr` with these options; `addr` as for
    /// [`UdpSocket::bind`].
    ///
    /// ```
    /// use evloop::{Loop, UdpOptions};
    ///
    /// let mut lp = Loop::new()?;
    /// let a = UdpOptions::new().reuse_port(true).bind(&mut lp, "127.0.0.1:0")?;
    /// let port = a.local_addr(&lp)?.port();
    /// // A second socket on the same port: allowed, as both asked for SO_REUSEPORT.
    /// let b = UdpOptions::new().reuse_port(true).bind(&mut lp, ("127.0.0.1", port))?;
    /// assert_eq!(b.local_addr(&lp)?.port(), port);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind<S>(&self, lp: &mut Loop<S>, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let mut last_error = None;
        for addr in addr.to_socket_addrs()? {
            match lp.driver.udp_bind(addr, self) {
                Ok(sock) => {
                    let state = Extra::Udp(Box::new(UdpState::new(sock)));
                    let handle = lp.open_handle(HandleKind::UdpSocket, Box::new(|_, _| {}), state);
                    return Ok(UdpSocket { handle });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| misuse("evloop: the address resolved to nothing to bind")))
    }
}

impl<S> Extra<S> {
    fn udp(&self) -> Option<&UdpState<S>> {
        match self {
            Extra::Udp(st) => Some(st),
            _ => None,
        }
    }

    fn udp_mut(&mut self) -> Option<&mut UdpState<S>> {
        match self {
            Extra::Udp(st) => Some(st),
            _ => None,
        }
    }
}

impl<S> Loop<S> {
    /// The state of an open UDP socket that is not closing (`None` once it is).
    fn udp_state(&mut self, h: Handle) -> Option<&mut UdpState<S>> {
        match self.handles.get_mut(h).map(|b| (b.closing, &mut b.extra)) {
            Some((false, Extra::Udp(st))) => Some(st),
            _ => None,
        }
    }

    fn udp_ref(&self, h: Handle) -> io::Result<&UdpState<S>> {
        self.handles.state(h, HandleKind::UdpSocket, Extra::udp)
    }

    fn udp_usable(&mut self, h: Handle) -> io::Result<&mut UdpState<S>> {
        self.handles.state_mut(h, HandleKind::UdpSocket, Extra::udp_mut)
    }

    /// Every change of what a socket does passes through here: its activity follows, and its
    /// poller interest is queued for the next flush.
    fn udp_changed(&mut self, h: Handle) {
        let Some(st) = self.udp_state(h) else { return };
        let busy = st.busy();
        let newly_dirty = !std::mem::replace(&mut st.interest_dirty, true);
        self.handles.update(h, |b| b.active = busy);
        if newly_dirty {
            self.net.interest_dirty.push(h);
        }
    }

    /// Applies a socket's poller interest (called by `flush_interest`).
    pub(crate) fn flush_udp_interest(&mut self, h: Handle) {
        let Some(st) = self.udp_state(h) else { return };
        st.interest_dirty = false;
        let (sock, interest) = (st.sock, st.interest());
        if let Err(e) = self.driver.udp_set_interest(sock, h.to_key(), interest) {
            log::warn!("{h:?}: cannot change poller interest: {e}");
        }
    }

    /// Closes the socket at once; queued sends are cancelled (their callbacks run from the
    /// loop with a [`Cancelled`](crate::Cancelled) error).
    pub(crate) fn close_udp(&mut self, h: Handle) {
        let Some(st) = self.udp_state(h) else { return };
        st.receiving = false;
        let sock = st.sock;
        let queued = std::mem::take(&mut st.queue);
        st.queued_bytes = 0;
        self.net.requests -= queued.len();
        for q in queued {
            self.cancel_send(q);
        }
        self.driver.udp_close(sock);
    }
}
