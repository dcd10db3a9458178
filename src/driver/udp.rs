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

/// Datagrams one receive call takes at most (`recvmmsg`'s batch; libuv takes 20). Each needs
/// a slot of the receive buffer as large as the largest datagram expected (64 KiB by
/// default), so this bounds the loop's receive buffer too (1 MiB, mostly never touched).
pub(crate) const RECV_BATCH: usize = 16;

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

    /// Receives up to `buf.len() / slot` datagrams (`RECV_BATCH` at most), the i-th into
    /// `buf[i * slot..]`, and appends where each ended up to `got`; `WouldBlock` if none was
    /// there. Fewer than asked for means the socket is empty, or holds an error (an ICMP
    /// report) that the next call returns.
    pub(crate) fn udp_recv_batch(
        &mut self,
        sock: SocketId,
        buf: &mut [u8],
        slot: usize,
        got: &mut Vec<Received>,
    ) -> io::Result<()> {
        let s = self.udp(sock)?;
        #[cfg(target_os = "linux")]
        {
            retry_interrupted(|| recvmmsg(s, buf, slot, got))
        }
        #[cfg(not(target_os = "linux"))]
        {
            // One datagram per call: without recvmmsg, a second call could only take an
            // error report that the loop would then have to keep. The portable backend is
            // level-triggered, so what is left is reported again. Without MSG_TRUNC's length
            // the cut cannot be told from a datagram that fits.
            let (len, from) = retry_interrupted(|| s.recv_from(&mut buf[..slot.min(buf.len())]))?;
            got.push(Received { len, from, truncated: false });
            Ok(())
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

/// `recvmmsg(2)` without blocking: up to `RECV_BATCH` datagrams in one system call, each
/// into its own `slot`-byte piece of `buf`, with its sender and `MSG_TRUNC` if the piece cut
/// it short. Neither rustix nor socket2 wraps it, hence `libc` and the one `unsafe` block.
#[cfg(target_os = "linux")]
fn recvmmsg(socket: &net::UdpSocket, buf: &mut [u8], slot: usize, got: &mut Vec<Received>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::ptr;

    use socket2::{SockAddr, SockAddrStorage};

    let width = (buf.len() / slot.max(1)).min(RECV_BATCH);
    let mut names: [SockAddrStorage; RECV_BATCH] = std::array::from_fn(|_| SockAddrStorage::zeroed());
    let mut iovs: [libc::iovec; RECV_BATCH] =
        [libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 }; RECV_BATCH];
    for (iov, piece) in iovs.iter_mut().zip(buf.chunks_exact_mut(slot)).take(width) {
        *iov = libc::iovec { iov_base: piece.as_mut_ptr().cast(), iov_len: piece.len() };
    }
    #[allow(unsafe_code)]
    // SAFETY: `mmsghdr` is a plain C struct for which all zeroes is a valid value (null
    // pointers, zero lengths). Each of the first `width` headers points at its own
    // `SockAddrStorage` (a `sockaddr_storage`, `repr(transparent)`) with its size as
    // `msg_namelen`, and at its own `iovec`, which points at its own `slot`-byte piece of
    // `buf`: disjoint, in bounds (`chunks_exact_mut`), and alive and otherwise unused until
    // the call returns. The kernel writes at most `iov_len` bytes into each piece and at
    // most `msg_namelen` bytes into each address, and returns how many headers it filled
    // (at most `width`). For each of those, `SockAddr::new` gets the storage the kernel
    // filled and the length it set, as its contract asks.
    unsafe {
        let mut hdrs: [libc::mmsghdr; RECV_BATCH] = std::mem::zeroed();
        for i in 0..width {
            hdrs[i].msg_hdr.msg_name = ptr::addr_of_mut!(names[i]).cast();
            hdrs[i].msg_hdr.msg_namelen = names[i].size_of();
            hdrs[i].msg_hdr.msg_iov = ptr::addr_of_mut!(iovs[i]);
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        let n = libc::recvmmsg(
            socket.as_raw_fd(),
            hdrs.as_mut_ptr(),
            width as u32,
            libc::MSG_DONTWAIT,
            ptr::null_mut(),
        );
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        for (hdr, name) in hdrs.iter().zip(names.iter_mut()).take(n as usize) {
            let storage = std::mem::replace(name, SockAddrStorage::zeroed());
            let from = SockAddr::new(storage, hdr.msg_hdr.msg_namelen).as_socket().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "evloop: datagram without a sender")
            })?;
            let truncated = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            got.push(Received { len: hdr.msg_len as usize, from, truncated });
        }
    }
    Ok(())
}
