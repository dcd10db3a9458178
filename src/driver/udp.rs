//! UDP at the driver seam: the plain types both drivers share, and the real driver's
//! datagram sockets (the simulated ones are in `sim/udp.rs`).
//!
//! A UDP socket lives in the real driver's socket table beside the TCP ones (`Sock::Udp`),
//! so registering, closing and the poller's edge-triggered registration are the same code.
//! What differs is here: `sendto` / `send` of one datagram, and `recvfrom` with `MSG_TRUNC`
//! on Linux, which returns a datagram's real length, so one system call both receives and
//! tells whether the buffer cut it short.

use std::io;
use std::net::{self, IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

use super::os::{retry_interrupted, Entry, OsDriver, Sock};
use super::{Interest, SocketId, UdpOptions};

/// A socket option a UDP socket can set and read back, as a number (a flag is 0 or 1).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum UdpOption {
    /// `SO_BROADCAST`.
    Broadcast,
    /// `IP_TTL`.
    Ttl,
    /// `IP_MULTICAST_LOOP`.
    MulticastLoopV4,
    /// `IPV6_MULTICAST_LOOP`.
    MulticastLoopV6,
    /// `IP_MULTICAST_TTL`.
    MulticastTtlV4,
}

impl UdpOption {
    /// What a fresh socket has (Linux's defaults).
    pub(crate) fn default_value(self) -> u32 {
        match self {
            UdpOption::Broadcast => 0,
            UdpOption::Ttl => 64,
            UdpOption::MulticastLoopV4 | UdpOption::MulticastLoopV6 => 1,
            UdpOption::MulticastTtlV4 => 1,
        }
    }
}

/// A multicast group to join or leave, with the interface to do it on.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Membership {
    /// An IPv4 group and the address of the local interface (`0.0.0.0`: the system's choice).
    V4(Ipv4Addr, Ipv4Addr),
    /// An IPv6 group and the interface index (0: the system's choice).
    V6(Ipv6Addr, u32),
}

impl Membership {
    pub(crate) fn group(self) -> IpAddr {
        match self {
            Membership::V4(group, _) => group.into(),
            Membership::V6(group, _) => group.into(),
        }
    }
}

/// One received datagram's length in the buffer, its sender, and whether the buffer cut it
/// short (the rest is lost, as `MSG_TRUNC` says).
#[derive(Copy, Clone, Debug)]
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) from: SocketAddr,
    pub(crate) truncated: bool,
}

fn not_udp() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "evloop: not a UDP socket")
}

/// Opens the socket and applies the options before binding (reuse must precede `bind`).
fn open_udp(addr: SocketAddr, opts: &UdpOptions) -> io::Result<Socket> {
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM.nonblocking().cloexec(), Some(Protocol::UDP))?;
    if opts.reuse_address {
        socket.set_reuse_address(true)?;
    }
    #[cfg(not(any(target_os = "solaris", target_os = "illumos")))]
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    match opts.only_v6 {
        Some(on) if addr.is_ipv6() => socket.set_only_v6(on)?,
        _ => {}
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

impl OsDriver {
    fn udp(&self, sock: SocketId) -> io::Result<&net::UdpSocket> {
        match self.sockets.get(sock) {
            Some(Entry { sock: Sock::Udp(s), .. }) => Ok(s),
            _ => Err(not_udp()),
        }
    }

    pub(crate) fn udp_bind(&mut self, addr: SocketAddr, opts: &UdpOptions) -> io::Result<SocketId> {
        let socket = open_udp(addr, opts)?;
        Ok(self.sockets.insert(Entry { sock: Sock::Udp(socket.into()), registered: None }))
    }

    /// Sends one datagram, to `to` or (with `None`) to the connected peer.
    pub(crate) fn udp_send(
        &mut self,
        sock: SocketId,
        data: &[u8],
        to: Option<SocketAddr>,
    ) -> io::Result<usize> {
        let s = self.udp(sock)?;
        retry_interrupted(|| match to {
            Some(addr) => s.send_to(data, addr),
            None => s.send(data),
        })
    }

    /// Receives one datagram into `buf`.
    pub(crate) fn udp_recv(&mut self, sock: SocketId, buf: &mut [u8]) -> io::Result<Received> {
        let s = self.udp(sock)?;
        #[cfg(target_os = "linux")]
        {
            let flags = rustix::net::RecvFlags::TRUNC;
            let (len, whole, from) = retry_interrupted(|| Ok(rustix::net::recvfrom(s, &mut *buf, flags)?))?;
            let from = from.and_then(|a| SocketAddr::try_from(a).ok()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "evloop: datagram without a sender")
            })?;
            Ok(Received { len, from, truncated: whole > len })
        }
        #[cfg(not(target_os = "linux"))]
        {
            // Without MSG_TRUNC's length the cut cannot be told from a datagram that fits.
            let (len, from) = retry_interrupted(|| s.recv_from(buf))?;
            Ok(Received { len, from, truncated: false })
        }
    }

    /// Connects (`Some`) or, on Linux, disconnects (`None`, `AF_UNSPEC`).
    pub(crate) fn udp_connect(&mut self, sock: SocketId, to: Option<SocketAddr>) -> io::Result<()> {
        let s = self.udp(sock)?;
        match to {
            Some(addr) => s.connect(addr),
            #[cfg(target_os = "linux")]
            None => {
                let bound = s.local_addr()?;
                rustix::net::connect_unspec(s)?;
                // Linux unbinds a port the kernel chose (bound as port 0) when the socket
                // disconnects: bind it again, so the socket keeps its address.
                if s.local_addr()?.port() == 0 {
                    socket2::SockRef::from(s).bind(&bound.into())?;
                }
                Ok(())
            }
            #[cfg(not(target_os = "linux"))]
            None => Err(io::Error::new(io::ErrorKind::Unsupported, "evloop: disconnect is Linux-only")),
        }
    }

    pub(crate) fn udp_set_interest(
        &mut self,
        sock: SocketId,
        key: usize,
        interest: Interest,
    ) -> io::Result<()> {
        self.set_interest(sock, key, interest)
    }

    pub(crate) fn udp_close(&mut self, sock: SocketId) {
        self.close(sock);
    }

    pub(crate) fn udp_local_addr(&self, sock: SocketId) -> io::Result<SocketAddr> {
        self.udp(sock)?.local_addr()
    }

    pub(crate) fn udp_peer_addr(&self, sock: SocketId) -> io::Result<SocketAddr> {
        self.udp(sock)?.peer_addr()
    }

    pub(crate) fn udp_set_option(&mut self, sock: SocketId, opt: UdpOption, value: u32) -> io::Result<()> {
        let s = self.udp(sock)?;
        match opt {
            UdpOption::Broadcast => s.set_broadcast(value != 0),
            UdpOption::Ttl => s.set_ttl(value),
            UdpOption::MulticastLoopV4 => s.set_multicast_loop_v4(value != 0),
            UdpOption::MulticastLoopV6 => s.set_multicast_loop_v6(value != 0),
            UdpOption::MulticastTtlV4 => s.set_multicast_ttl_v4(value),
        }
    }

    pub(crate) fn udp_option(&self, sock: SocketId, opt: UdpOption) -> io::Result<u32> {
        let s = self.udp(sock)?;
        match opt {
            UdpOption::Broadcast => s.broadcast().map(u32::from),
            UdpOption::Ttl => s.ttl(),
            UdpOption::MulticastLoopV4 => s.multicast_loop_v4().map(u32::from),
            UdpOption::MulticastLoopV6 => s.multicast_loop_v6().map(u32::from),
            UdpOption::MulticastTtlV4 => s.multicast_ttl_v4(),
        }
    }

    pub(crate) fn udp_membership(&mut self, sock: SocketId, m: Membership, join: bool) -> io::Result<()> {
        let s = self.udp(sock)?;
        match (m, join) {
            (Membership::V4(group, iface), true) => s.join_multicast_v4(&group, &iface),
            (Membership::V4(group, iface), false) => s.leave_multicast_v4(&group, &iface),
            (Membership::V6(group, iface), true) => s.join_multicast_v6(&group, iface),
            (Membership::V6(group, iface), false) => s.leave_multicast_v6(&group, iface),
        }
    }
}
