//! The simulated side of UDP: in-memory datagrams addressed by `SocketAddr`, with the
//! world's clock, seeded generator and link latency, plus faults of its own: loss,
//! duplication and reordering, each drawn from the seed per datagram.
//!
//! A datagram sent now arrives one link latency later (a reordered one a seeded extra
//! delay later still, so those sent after it overtake it) in the inbox of whatever is bound
//! at its destination: a socket of the loop or a fake peer of the test. Nothing bound there:
//! it is dropped, and a *connected* sender hears `ConnectionRefused` on its next receive one
//! round trip later, as Linux reports the ICMP port unreachable. Readiness is edge-triggered,
//! as the Linux backend registers sockets: a new arrival (or error) is an edge, as is room
//! coming back after a send found none (`Sim::block_udp_sends`).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};

use slab::Slab;

use super::{SimDriver, World};
use crate::driver::{Interest, Membership, Readiness, Received, SocketId, UdpOption, UdpOptions, RECV_BATCH};

/// What a socket's receive queue holds at most, in payload bytes (Linux's default
/// `rmem_default`); what arrives beyond it is dropped, as the kernel drops it.
const RECV_QUEUE_BYTES: usize = 212_992;

/// The largest UDP payloads: 65,535 less the IPv4 (20) and UDP (8) headers; over IPv6
/// the 40-byte header is not counted in the payload length.
const MAX_PAYLOAD_V4: usize = 65_507;
const MAX_PAYLOAD_V6: usize = 65_527;

/// EMSGSIZE, EDESTADDRREQ and EACCES on Linux: what the kernel says of a datagram too
/// large, a send with no destination, and a broadcast without `SO_BROADCAST`.
const EMSGSIZE: i32 = 90;
const EDESTADDRREQ: i32 = 89;
const EACCES: i32 = 13;

/// Seeded faults of the simulated UDP network: probabilities per datagram.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct UdpFaults {
    pub(crate) loss: f64,
    pub(crate) duplication: f64,
    pub(crate) reordering: f64,
    /// The most extra delay a reordered datagram gets, in milliseconds (at least 1).
    pub(crate) reorder_delay: u64,
}

pub(crate) struct Datagram {
    at: u64,
    /// Send order, so that datagrams arriving at the same time keep it.
    seq: u64,
    from: SocketAddr,
    data: Vec<u8>,
}

/// What is bound at an address.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Endpoint {
    Loop(SocketId),
    Peer(usize),
}

/// Who is bound at an address: one socket, or several that all asked for reuse
/// (`SO_REUSEADDR` or `SO_REUSEPORT`), among which arrivals are spread by the sender's port,
/// as the kernel spreads them by a hash of the sender.
struct Binding {
    endpoints: Vec<Endpoint>,
    reuse: bool,
}

struct UdpSock {
    local: SocketAddr,
    peer: Option<SocketAddr>,
    inbox: Vec<Datagram>,
    inbox_bytes: usize,
    /// An ICMP error to report, with the time it arrives.
    error: Option<(u64, io::ErrorKind)>,
    interest: Option<(usize, Interest)>,
    /// Datagrams and errors taken so far, and the count of arrivals at the last look: an
    /// arrival is an edge.
    taken: u64,
    seen: u64,
    /// Report the current state once (the interest changed).
    rearm: bool,
    /// A send found no room: room coming back is an edge.
    out_of_room: bool,
    options: [u32; 5],
    groups: Vec<IpAddr>,
}

impl UdpSock {
    fn arrived(&self, now: u64) -> u64 {
        let data = self.inbox.iter().filter(|d| d.at <= now).count() as u64;
        data + u64::from(self.error.is_some_and(|(at, _)| at <= now))
    }
}

/// A fake peer's socket: its address and what has been sent to it.
pub(crate) struct PeerSock {
    addr: SocketAddr,
    inbox: Vec<Datagram>,
}

/// The world's UDP network.
#[derive(Default)]
pub(crate) struct SimUdp {
    socks: Slab<UdpSock>,
    peers: Slab<PeerSock>,
    bound: HashMap<SocketAddr, Binding>,
    pub(crate) faults: UdpFaults,
    /// The next sends of the program's sockets that find no room (`WouldBlock`).
    pub(crate) blocked_sends: usize,
    seq: u64,
}

fn option_index(opt: UdpOption) -> usize {
    opt as usize
}

fn not_udp() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "evloop: not a UDP socket")
}

impl World {
    /// Binds `addr` (port 0: a fresh port) for `who`; `AddrInUse` if it is taken, unless
    /// every socket there and this one ask for reuse.
    fn udp_bind_addr(
        &mut self,
        addr: SocketAddr,
        reuse: bool,
        who: impl FnOnce(&mut SimUdp) -> Endpoint,
    ) -> io::Result<(SocketAddr, Endpoint)> {
        let addr = if addr.port() == 0 { self.ephemeral_ip(addr) } else { addr };
        if self.udp.bound.get(&addr).is_some_and(|b| !(b.reuse && reuse)) {
            return Err(io::ErrorKind::AddrInUse.into());
        }
        let endpoint = who(&mut self.udp);
        let binding = self.udp.bound.entry(addr).or_insert(Binding { endpoints: Vec::new(), reuse });
        binding.endpoints.push(endpoint);
        Ok((addr, endpoint))
    }

    /// A fake peer bound at `addr`; returns its index and address.
    pub(crate) fn udp_peer(&mut self, addr: SocketAddr) -> io::Result<(usize, SocketAddr)> {
        let (addr, endpoint) = self.udp_bind_addr(addr, false, |u| {
            Endpoint::Peer(u.peers.insert(PeerSock { addr, inbox: Vec::new() }))
        })?;
        let Endpoint::Peer(id) = endpoint else { unreachable!() };
        self.udp.peers[id].addr = addr;
        Ok((id, addr))
    }

    pub(crate) fn udp_peer_addr(&self, id: usize) -> SocketAddr {
        self.udp.peers[id].addr
    }

    /// Takes what has arrived for a fake peer by now, in arrival order.
    pub(crate) fn udp_peer_received(&mut self, id: usize) -> Vec<(Vec<u8>, SocketAddr)> {
        let now = self.now;
        let Some(p) = self.udp.peers.get_mut(id) else { return Vec::new() };
        take_arrived(&mut p.inbox, now).into_iter().map(|d| (d.data, d.from)).collect()
    }

    /// Who receives what `from` sends to `to`: what is bound at the exact address, else at
    /// the unspecified address on that port.
    fn udp_lookup(&self, from: SocketAddr, to: SocketAddr) -> Option<Endpoint> {
        let any: IpAddr = if to.is_ipv4() { [0u8; 4].into() } else { [0u16; 8].into() };
        let b = self.udp.bound.get(&to).or_else(|| self.udp.bound.get(&SocketAddr::new(any, to.port())))?;
        b.endpoints.get(usize::from(from.port()) % b.endpoints.len()).copied()
    }

    /// Puts a datagram on the network from `from` to `to`, with the faults drawn from the
    /// seed. Returns whether anything was bound at `to`.
    pub(crate) fn udp_transmit(&mut self, from: SocketAddr, to: SocketAddr, data: &[u8]) -> bool {
        let targets: Vec<Endpoint> = if to.ip().is_multicast() {
            self.udp_group_members(to)
        } else {
            self.udp_lookup(from, to).into_iter().collect()
        };
        if targets.is_empty() {
            return false;
        }
        let from = if from.ip().is_unspecified() && !to.ip().is_multicast() {
            SocketAddr::new(to.ip(), from.port())
        } else {
            from
        };
        let f = self.udp.faults;
        if f.loss > 0.0 && self.rng.chance(f.loss) {
            self.record(usize::MAX, "udp: lost", data.len());
            return true;
        }
        let copies = if f.duplication > 0.0 && self.rng.chance(f.duplication) { 2 } else { 1 };
        for _ in 0..copies {
            let mut at = self.now.saturating_add(self.latency);
            if f.reordering > 0.0 && self.rng.chance(f.reordering) {
                at = at.saturating_add(self.rng.between_1_and(f.reorder_delay as usize) as u64);
            }
            for &target in &targets {
                self.udp.seq += 1;
                let d = Datagram { at, seq: self.udp.seq, from, data: data.to_vec() };
                self.udp_deliver(target, d);
            }
        }
        true
    }

    /// The program's sockets that joined `group` and are bound to its port.
    fn udp_group_members(&self, group: SocketAddr) -> Vec<Endpoint> {
        let socks = self.udp.socks.iter();
        socks
            .filter(|(_, s)| s.local.port() == group.port() && s.groups.contains(&group.ip()))
            .map(|(id, _)| Endpoint::Loop(id))
            .collect()
    }

    fn udp_deliver(&mut self, target: Endpoint, d: Datagram) {
        match target {
            Endpoint::Peer(id) => self.udp.peers[id].inbox.push(d),
            Endpoint::Loop(id) => {
                let s = &mut self.udp.socks[id];
                if s.peer.is_some_and(|p| p != d.from) {
                    return; // a connected socket takes datagrams from its peer only
                }
                if s.inbox_bytes + d.data.len() > RECV_QUEUE_BYTES {
                    self.record(id, "udp: dropped, receive queue full", d.data.len());
                    return;
                }
                s.inbox_bytes += d.data.len();
                s.inbox.push(d);
            }
        }
    }

    /// The earliest arrival after now at a socket of the program.
    pub(crate) fn udp_next_event(&self) -> Option<u64> {
        let now = self.now;
        let socks = self.udp.socks.iter().map(|(_, s)| s);
        let data = socks.clone().flat_map(|s| s.inbox.iter().map(|d| d.at));
        let errors = socks.filter_map(|s| s.error.map(|(at, _)| at));
        data.chain(errors).filter(|&at| at > now).min()
    }
}

/// Takes the datagrams arrived by `now`, in (arrival, send) order.
fn take_arrived(inbox: &mut Vec<Datagram>, now: u64) -> Vec<Datagram> {
    let (mut arrived, later): (Vec<_>, Vec<_>) = inbox.drain(..).partition(|d| d.at <= now);
    *inbox = later;
    arrived.sort_by_key(|d| (d.at, d.seq));
    arrived
}

impl SimDriver {
    fn with_udp<R>(&self, sock: SocketId, f: impl FnOnce(&mut UdpSock) -> R) -> io::Result<R> {
        self.world.borrow_mut().udp.socks.get_mut(sock).map(f).ok_or_else(not_udp)
    }

    pub(crate) fn udp_bind(&mut self, addr: SocketAddr, opts: &UdpOptions) -> io::Result<SocketId> {
        let mut w = self.world.borrow_mut();
        let reuse = opts.reuse_address || opts.reuse_port;
        let (local, endpoint) = w.udp_bind_addr(addr, reuse, |u| {
            Endpoint::Loop(u.socks.insert(UdpSock {
                local: addr,
                peer: None,
                inbox: Vec::new(),
                inbox_bytes: 0,
                error: None,
                interest: None,
                taken: 0,
                seen: 0,
                rearm: false,
                out_of_room: false,
                options: OPTIONS.map(UdpOption::default_value),
                groups: Vec::new(),
            }))
        })?;
        let Endpoint::Loop(id) = endpoint else { unreachable!() };
        w.udp.socks[id].local = local;
        w.record(id, "udp bind", 0);
        Ok(id)
    }

    pub(crate) fn udp_send(
        &mut self,
        sock: SocketId,
        data: &[u8],
        to: Option<SocketAddr>,
    ) -> io::Result<usize> {
        let mut w = self.world.borrow_mut();
        let s = w.udp.socks.get_mut(sock).ok_or_else(not_udp)?;
        let (local, connected) = (s.local, s.peer);
        let Some(to) = to.or(connected) else { return Err(io::Error::from_raw_os_error(EDESTADDRREQ)) };
        let max = if to.is_ipv4() { MAX_PAYLOAD_V4 } else { MAX_PAYLOAD_V6 };
        if data.len() > max {
            return Err(io::Error::from_raw_os_error(EMSGSIZE));
        }
        let broadcast = matches!(to.ip(), IpAddr::V4(ip) if ip.is_broadcast());
        if broadcast && s.options[option_index(UdpOption::Broadcast)] == 0 {
            return Err(io::Error::from_raw_os_error(EACCES));
        }
        if w.udp.blocked_sends > 0 {
            w.udp.blocked_sends -= 1;
            w.udp.socks[sock].out_of_room = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let reached = w.udp_transmit(local, to, data);
        w.record(sock, "udp send", data.len());
        if !reached && connected.is_some() {
            // ICMP port unreachable, back one round trip later.
            let at = w.now.saturating_add(w.latency.saturating_mul(2));
            w.udp.socks[sock].error = Some((at, io::ErrorKind::ConnectionRefused));
        }
        Ok(data.len())
    }

    /// A batch as `recvmmsg` takes it: the datagrams that have arrived, in order, up to
    /// `buf.len() / slot` of them, stopping short of an error report once one was taken
    /// (the next call returns it).
    pub(crate) fn udp_recv_batch(
        &mut self,
        sock: SocketId,
        buf: &mut [u8],
        slot: usize,
        got: &mut Vec<Received>,
    ) -> io::Result<()> {
        for (i, piece) in buf.chunks_exact_mut(slot).take(RECV_BATCH).enumerate() {
            let error_due = {
                let w = self.world.borrow();
                let now = w.now;
                w.udp.socks.get(sock).is_some_and(|s| s.error.is_some_and(|(at, _)| at <= now))
            };
            if i > 0 && error_due {
                break;
            }
            match self.udp_recv(sock, piece) {
                Ok(d) => got.push(d),
                Err(e) if i == 0 => return Err(e),
                Err(_) => break, // WouldBlock: the socket is empty
            }
        }
        Ok(())
    }

    fn udp_recv(&mut self, sock: SocketId, buf: &mut [u8]) -> io::Result<Received> {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        let s = w.udp.socks.get_mut(sock).ok_or_else(not_udp)?;
        if let Some((_, kind)) = s.error.filter(|&(at, _)| at <= now) {
            s.error = None;
            s.taken += 1;
            return Err(kind.into());
        }
        let next = s.inbox.iter().enumerate().filter(|(_, d)| d.at <= now).min_by_key(|(_, d)| (d.at, d.seq));
        let Some((i, _)) = next else { return Err(io::ErrorKind::WouldBlock.into()) };
        let d = s.inbox.remove(i);
        s.inbox_bytes -= d.data.len();
        s.taken += 1;
        let len = d.data.len().min(buf.len());
        buf[..len].copy_from_slice(&d.data[..len]);
        w.record(sock, "udp recv", len);
        Ok(Received { len, from: d.from, truncated: d.data.len() > len })
    }

    pub(crate) fn udp_connect(&mut self, sock: SocketId, to: Option<SocketAddr>) -> io::Result<()> {
        self.with_udp(sock, |s| {
            s.peer = to;
            s.error = None;
        })
    }

    pub(crate) fn udp_set_interest(
        &mut self,
        sock: SocketId,
        key: usize,
        interest: Interest,
    ) -> io::Result<()> {
        self.with_udp(sock, |s| {
            let wanted = (interest != Interest::NONE).then_some((key, interest));
            if s.interest != wanted {
                // Like EPOLL_CTL_ADD/MOD: the current state is reported once.
                s.rearm = true;
            }
            s.interest = wanted;
        })
    }

    pub(crate) fn udp_close(&mut self, sock: SocketId) {
        let mut w = self.world.borrow_mut();
        if let Some(s) = w.udp.socks.try_remove(sock) {
            if let Some(b) = w.udp.bound.get_mut(&s.local) {
                b.endpoints.retain(|&e| e != Endpoint::Loop(sock));
                if b.endpoints.is_empty() {
                    w.udp.bound.remove(&s.local);
                }
            }
            w.record(sock, "udp close", 0);
        }
    }

    pub(crate) fn udp_local_addr(&self, sock: SocketId) -> io::Result<SocketAddr> {
        self.with_udp(sock, |s| s.local)
    }

    pub(crate) fn udp_peer_addr(&self, sock: SocketId) -> io::Result<SocketAddr> {
        self.with_udp(sock, |s| s.peer)?.ok_or_else(|| io::ErrorKind::NotConnected.into())
    }

    pub(crate) fn udp_set_option(&mut self, sock: SocketId, opt: UdpOption, value: u32) -> io::Result<()> {
        self.with_udp(sock, |s| s.options[option_index(opt)] = value)
    }

    pub(crate) fn udp_option(&self, sock: SocketId, opt: UdpOption) -> io::Result<u32> {
        self.with_udp(sock, |s| s.options[option_index(opt)])
    }

    pub(crate) fn udp_membership(&mut self, sock: SocketId, m: Membership, join: bool) -> io::Result<()> {
        self.with_udp(sock, |s| {
            let group = m.group();
            let member = s.groups.contains(&group);
            match (join, member) {
                (true, false) => s.groups.push(group),
                (false, true) => s.groups.retain(|&g| g != group),
                // Linux: EADDRINUSE to join twice, EADDRNOTAVAIL to leave a group not joined.
                (true, true) => return Err(io::Error::from(io::ErrorKind::AddrInUse)),
                (false, false) => return Err(io::Error::from(io::ErrorKind::AddrNotAvailable)),
            }
            Ok(())
        })?
    }
}

/// Every option, in the order of `UdpSock::options`.
const OPTIONS: [UdpOption; 5] = [
    UdpOption::Broadcast,
    UdpOption::Ttl,
    UdpOption::MulticastLoopV4,
    UdpOption::MulticastLoopV6,
    UdpOption::MulticastTtlV4,
];

/// Readiness of the program's UDP sockets, edge-triggered (see the module's doc). With
/// `consume` false it only looks, for the harness.
pub(crate) fn collect_udp_ready(w: &mut World, ready: &mut Vec<Readiness>, consume: bool) {
    let now = w.now;
    for (_, s) in w.udp.socks.iter_mut() {
        let Some((key, interest)) = s.interest else { continue };
        let arrived = s.arrived(now);
        let events = s.taken + arrived;
        let fresh = events != s.seen || s.rearm;
        let room_back = s.out_of_room;
        if consume {
            s.seen = events;
            s.rearm = false;
            s.out_of_room = false;
        }
        let error = s.error.is_some_and(|(at, _)| at <= now) && fresh;
        // A UDP socket has room again at once: the blocked send's edge is the next look.
        let readable = (interest.readable && arrived > 0 && fresh) || error;
        let writable = interest.writable && (fresh || room_back);
        if readable || writable {
            ready.push(Readiness {
                key,
                readable,
                writable,
                hangup: error,
                priority: false,
                disconnect: error,
            });
        }
    }
}
