//! The simulated driver: virtual time, in-memory TCP and Unix domain sockets and pipes (one
//! connection model for all three, in `world.rs`; pipes in `pipe.rs`) and UDP (`udp.rs`),
//! with faults.
//!
//! `wait` never sleeps. If something is ready it returns at once; otherwise, unless the
//! timeout is zero, it moves the virtual clock to the earliest of the loop's timeout, the next
//! event of the network or the pool, and the harness's horizon. With no timeout, no event and
//! no horizon, nothing can ever happen again: it returns a `Stalled` error instead of hanging.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

pub(crate) mod fd;
pub(crate) mod pipe;
pub(crate) mod pool;
pub(crate) mod process;
pub(crate) mod udp;
pub(crate) mod world;

use socket2::{SockAddr, Socket};
use world::{ConnectFault, ConnectState, End, Listening, Sock, SockKind, World};

use super::{Interest, ListenOptions, Notifier, Readiness, SocketId, UCred};

/// A small seeded generator (splitmix64): every random choice of a simulation comes from it.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `1..=max` (`max` at least 1).
    pub(crate) fn between_1_and(&mut self, max: usize) -> usize {
        1 + (self.next_u64() % max.max(1) as u64) as usize
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The marker inside the error `wait` returns when nothing can ever happen again.
#[derive(Debug)]
pub(crate) struct StalledMarker;

impl std::fmt::Display for StalledMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("evloop::sim: stalled: live handles wait for an event that can never come")
    }
}

impl std::error::Error for StalledMarker {}

fn err(kind: io::ErrorKind) -> io::Error {
    io::Error::from(kind)
}

fn no_os_sockets() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "evloop::sim: a simulated loop has no operating-system sockets to adopt or hand back",
    )
}

pub(crate) struct SimDriver {
    pub(crate) world: Rc<RefCell<World>>,
    notifier: Arc<Notifier>,
}

impl SimDriver {
    pub(crate) fn new(world: Rc<RefCell<World>>) -> SimDriver {
        SimDriver { world, notifier: Arc::new(Notifier::new(super::WakeTarget::None)) }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.world.borrow().now
    }

    /// Virtual time, which moves in whole milliseconds.
    pub(crate) fn elapsed(&self) -> Duration {
        Duration::from_millis(self.now_ms())
    }

    pub(crate) fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    pub(crate) fn wait(&mut self, timeout_ms: Option<u64>, ready: &mut Vec<Readiness>) -> io::Result<bool> {
        let mut w = self.world.borrow_mut();
        let start = ready.len();
        w.settle();
        w.run_pool_jobs();
        collect_ready(&mut w, ready, true);
        if ready.len() > start || self.notifier.is_raised() || w.pool.has_done() || timeout_ms == Some(0) {
            return Ok(false);
        }
        let now = w.now;
        let limit = timeout_ms.map(|t| now.saturating_add(t));
        let target =
            [limit, w.next_event(), Some(w.horizon).filter(|&h| h != u64::MAX)].into_iter().flatten().min();
        let Some(target) = target else {
            return Err(io::Error::other(StalledMarker));
        };
        w.now = target.max(now);
        w.settle();
        w.run_pool_jobs();
        collect_ready(&mut w, ready, true);
        Ok(true)
    }

    /// Whether anything is ready now, without moving time (for the harness).
    pub(crate) fn has_ready(&self) -> bool {
        let mut w = self.world.borrow_mut();
        w.settle();
        let mut ready = Vec::new();
        collect_ready(&mut w, &mut ready, false);
        !ready.is_empty() || w.pool.has_done() || w.pool.runnable(w.now)
    }

    pub(crate) fn trace(&self, id: usize, kind: &'static str, bytes: usize) {
        self.world.borrow_mut().record(id, kind, bytes);
    }

    /// Listens at a TCP address (port 0: a fresh port) or a Unix name. A Unix path stays
    /// taken after its listener closes, as its socket file would (see `World::unix_paths`).
    pub(crate) fn listen(&mut self, addr: &SockAddr, opts: &ListenOptions) -> io::Result<SocketId> {
        let mut w = self.world.borrow_mut();
        let addr = match addr.as_socket() {
            Some(ip) if ip.port() == 0 => w.ephemeral(addr),
            _ => addr.clone(),
        };
        if addr.as_pathname().is_some() {
            if opts.unlink_existing {
                w.unix_paths.remove(&addr);
                w.listening.remove(&addr);
            }
            if !w.unix_paths.insert(addr.clone()) {
                return Err(err(io::ErrorKind::AddrInUse));
            }
        } else if w.listening.contains_key(&addr) {
            return Err(err(io::ErrorKind::AddrInUse));
        }
        let id =
            w.socks.insert(Sock::new(SockKind::Listener { addr: addr.clone(), backlog: Default::default() }));
        w.listening.insert(addr, Listening::Loop(id));
        w.record(id, "listen", 0);
        Ok(id)
    }

    pub(crate) fn accept(&mut self, listener: SocketId) -> io::Result<SocketId> {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        if now < w.emfile_until {
            return Err(io::Error::from_raw_os_error(24)); // EMFILE
        }
        if w.chaos_hit() {
            w.record(listener, "chaos: EMFILE", 0);
            return Err(io::Error::from_raw_os_error(24));
        }
        let Some(Sock { kind: SockKind::Listener { addr, backlog }, edges, .. }) = w.socks.get_mut(listener)
        else {
            return Err(err(io::ErrorKind::InvalidInput));
        };
        let local = addr.clone();
        let Some(pos) = backlog.iter().position(|&(_, at)| at <= now) else {
            return Err(err(io::ErrorKind::WouldBlock));
        };
        edges.taken += 1;
        let (conn, _) = backlog.remove(pos).unwrap_or_else(|| unreachable!());
        let peer = w.conns[conn].addrs[0].clone();
        let id = w.socks.insert(Sock::new(SockKind::Stream {
            conn: Some(conn),
            side: 1,
            connect: ConnectState::Connected,
            local,
            peer,
        }));
        w.conns[conn].ends[1] = End::Sock(id);
        w.record(id, "accept", 0);
        Ok(id)
    }

    /// Connects over the simulated link (one latency to answer). A Unix name where nothing
    /// listens fails at once, as the kernel answers: `NotFound` for a path that was never
    /// bound, `ConnectionRefused` for a stale path or an abstract name.
    pub(crate) fn connect(&mut self, addr: &SockAddr) -> io::Result<(SocketId, io::Result<bool>)> {
        let mut w = self.world.borrow_mut();
        let at = w.now.saturating_add(w.latency);
        let id = w.socks.vacant_key();
        let fault = w.connect_faults.get(addr).copied();
        let opened = if fault.is_none() { w.connect(End::Sock(id), addr) } else { None };
        let (conn, local, connect) = match (fault, opened) {
            (None, Some((conn, local))) => {
                (Some(conn), local, ConnectState::Pending { at: Some(at), refused: false })
            }
            (None, None) if addr.is_unix() => {
                let kind = if addr.as_pathname().is_some() && !w.unix_paths.contains(addr) {
                    io::ErrorKind::NotFound
                } else {
                    io::ErrorKind::ConnectionRefused
                };
                let local = w.ephemeral(addr);
                let peer = addr.clone();
                w.socks.insert(Sock::new(SockKind::Stream {
                    conn: None,
                    side: 0,
                    connect: ConnectState::Failed(kind),
                    local,
                    peer,
                }));
                w.record(id, "connect failed", 0);
                return Ok((id, Err(err(kind))));
            }
            (Some(ConnectFault::Blackhole), _) => {
                (None, w.ephemeral(addr), ConnectState::Pending { at: None, refused: false })
            }
            (Some(ConnectFault::Refuse), _) | (None, None) => {
                (None, w.ephemeral(addr), ConnectState::Pending { at: Some(at), refused: true })
            }
        };
        let peer = addr.clone();
        w.socks.insert(Sock::new(SockKind::Stream { conn, side: 0, connect, local, peer }));
        w.record(id, "connect", 0);
        Ok((id, Ok(false)))
    }

    pub(crate) fn connect_result(&mut self, sock: SocketId) -> io::Result<()> {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        let Some(Sock { kind: SockKind::Stream { connect, .. }, edges, .. }) = w.socks.get_mut(sock) else {
            return Err(err(io::ErrorKind::NotConnected));
        };
        if matches!(connect, ConnectState::Pending { .. }) {
            // The connect's own event was counted against the pending state; the connected
            // socket's input-side events count from zero, or its first one (a reset, say)
            // would look already seen.
            edges.seen = 0;
        }
        let result = match connect {
            ConnectState::Connected => Ok(()),
            ConnectState::Failed(kind) => Err(err(*kind)),
            ConnectState::Pending { at: Some(at), refused } if *at <= now => {
                if *refused {
                    *connect = ConnectState::Failed(io::ErrorKind::ConnectionRefused);
                    Err(err(io::ErrorKind::ConnectionRefused))
                } else {
                    *connect = ConnectState::Connected;
                    Ok(())
                }
            }
            ConnectState::Pending { .. } => Err(err(io::ErrorKind::WouldBlock)),
        };
        w.record(sock, if result.is_ok() { "connected" } else { "connect failed" }, 0);
        result
    }

    pub(crate) fn read(&mut self, sock: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        let (conn, side) = stream_of(&w, sock)?;
        if w.conns[conn].faults.spurious > 0 {
            w.conns[conn].faults.spurious -= 1;
            rearm(&mut w, sock);
            return Err(err(io::ErrorKind::WouldBlock));
        }
        if w.chaos_hit() {
            w.record(sock, "chaos: spurious read", 0);
            rearm(&mut w, sock);
            return Err(err(io::ErrorKind::WouldBlock));
        }
        let limit = match w.chunking {
            world::Chunking::Whole => buf.len(),
            world::Chunking::Fixed(n) => n.max(1),
            world::Chunking::Random { max } => w.rng.between_1_and(max),
        };
        let c = &mut w.conns[conn];
        let limit = limit.min(buf.len());
        let n = c.pipes[1 - side].read(now, &mut buf[..limit]);
        if n > 0 {
            if n < buf.len() && c.pipes[1 - side].arrived(now) > 0 {
                // Cut short by chunking: on a real socket the rest would be a new arrival.
                rearm(&mut w, sock);
            }
            w.record(sock, "read", n);
            return Ok(n);
        }
        if c.reset[side].is_some_and(|at| at <= now) {
            // Linux: after a FIN, a reset reads as the end of the stream; otherwise the first
            // call to see it, read or write, gets ECONNRESET and reads end after that.
            if c.fin_before_reset(side) || c.reset_reported[side] {
                return Ok(0);
            }
            c.reset_reported[side] = true;
            w.record(sock, "reset", 0);
            return Err(err(io::ErrorKind::ConnectionReset));
        }
        if c.pipes[1 - side].ended(now) {
            w.record(sock, "eof", 0);
            return Ok(0);
        }
        Err(err(io::ErrorKind::WouldBlock))
    }

    pub(crate) fn write(&mut self, sock: SocketId, data: &[u8]) -> io::Result<usize> {
        let result = self.write_inner(sock, data);
        let short = match &result {
            Ok(n) => *n < data.len(),
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        };
        if short {
            // As a TCP socket marks itself out of space: room freeing up will be an edge.
            if let Some(s) = self.world.borrow_mut().socks.get_mut(sock) {
                s.edges.out_of_room = true;
            }
        }
        result
    }

    fn write_inner(&mut self, sock: SocketId, data: &[u8]) -> io::Result<usize> {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        let (conn, side) = stream_of(&w, sock)?;
        // Chaos: a write is cut short at a random length, or refused as if the socket were full.
        let chaos_limit = if w.chaos_hit() {
            let cut = w.rng.between_1_and(data.len() + 1) - 1;
            w.record(sock, "chaos: short write", cut);
            Some(cut)
        } else {
            None
        };
        let c = &mut w.conns[conn];
        if c.reset[side].is_some_and(|at| at <= now) {
            // Linux: EPIPE if the peer's FIN came first (CLOSE_WAIT) or the reset was already
            // reported; ECONNRESET to the first call that sees it otherwise.
            if c.fin_before_reset(side) || c.reset_reported[side] {
                return Err(err(io::ErrorKind::BrokenPipe));
            }
            c.reset_reported[side] = true;
            return Err(err(io::ErrorKind::ConnectionReset));
        }
        if c.pipes[side].fin.is_some() || (c.pipe && c.ends[1 - side] == End::Closed) {
            return Err(err(io::ErrorKind::BrokenPipe));
        }
        if c.ends[1 - side] == End::Closed {
            // The other end is closed: the kernel takes the data, and the peer's kernel
            // answers it with a reset.
            if c.reset[side].is_none() {
                c.reset[side] = Some(c.arrival(now));
            }
            let n = data.len().min(c.pipes[side].room().max(1));
            w.record(sock, "write to a closed peer", n);
            return Ok(n);
        }
        let f = &mut c.faults;
        if f.would_block > 0 {
            f.would_block -= 1;
            return Err(err(io::ErrorKind::WouldBlock));
        }
        let mut limit = chaos_limit.unwrap_or(data.len());
        if f.partial_after > 0 {
            f.partial_after -= 1;
        } else if f.partial_count > 0 {
            f.partial_count -= 1;
            limit = limit.min(f.partial_limit);
        }
        if let Some(reset_at) = f.reset_at {
            limit = limit.min(reset_at.saturating_sub(c.loop_written) as usize);
        }
        let n = c.pipes[side].push(c.arrival(now), &data[..limit.min(data.len())]);
        c.loop_written += n as u64;
        if c.faults.reset_at.is_some_and(|at| c.loop_written >= at) {
            // The peer resets once it has received this much: when these bytes reach it, one
            // latency from now; the reset reaches the program one latency after that.
            c.faults.reset_at = None;
            c.reset[1 - side] = Some(c.arrival(now));
            c.reset[side] = Some(c.arrival(c.arrival(now)));
        }
        if n == 0 && !data.is_empty() {
            return Err(err(io::ErrorKind::WouldBlock));
        }
        w.record(sock, "write", n);
        Ok(n)
    }

    pub(crate) fn write_vectored(&mut self, sock: SocketId, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let flat: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        self.write(sock, &flat)
    }

    pub(crate) fn shutdown_write(&mut self, sock: SocketId) -> io::Result<()> {
        let mut w = self.world.borrow_mut();
        let (conn, side) = stream_of(&w, sock)?;
        let now = w.now;
        let c = &mut w.conns[conn];
        if c.pipes[side].fin.is_none() {
            c.pipes[side].fin = Some(c.arrival(now));
        }
        w.record(sock, "shutdown", 0);
        Ok(())
    }

    pub(crate) fn set_interest(&mut self, sock: SocketId, key: usize, interest: Interest) -> io::Result<()> {
        if let Some(s) = self.world.borrow_mut().socks.get_mut(sock) {
            let wanted = (interest != Interest::NONE).then_some((key, interest));
            if s.interest != wanted {
                // Like EPOLL_CTL_ADD/MOD: the current state is reported once.
                s.edges.rearm = true;
            }
            s.interest = wanted;
        }
        Ok(())
    }

    /// A simulated loop has only in-memory sockets: it cannot take over a real one.
    pub(crate) fn adopt_listener(&mut self, _listener: Socket) -> io::Result<SocketId> {
        Err(no_os_sockets())
    }

    /// See [`adopt_listener`](SimDriver::adopt_listener).
    pub(crate) fn adopt_stream(&mut self, _stream: Socket) -> io::Result<SocketId> {
        Err(no_os_sockets())
    }

    /// An in-memory socket has no operating-system socket to hand back.
    pub(crate) fn release_listener(&mut self, _sock: SocketId) -> io::Result<Socket> {
        Err(no_os_sockets())
    }

    /// See [`release_listener`](SimDriver::release_listener).
    pub(crate) fn release_stream(&mut self, _sock: SocketId) -> io::Result<Socket> {
        Err(no_os_sockets())
    }

    /// Closes like a real socket: FIN after what was written, or RST if input was left unread.
    pub(crate) fn close(&mut self, sock: SocketId) {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        let Some(s) = w.socks.try_remove(sock) else { return };
        w.record(sock, "close", 0);
        match s.kind {
            SockKind::Listener { addr, backlog } => {
                // Unless a later bind took the name over (`unlink_existing`).
                if matches!(w.listening.get(&addr), Some(Listening::Loop(id)) if *id == sock) {
                    w.listening.remove(&addr);
                }
                for (conn, _) in backlog {
                    let c = &mut w.conns[conn];
                    c.reset[0] = Some(c.arrival(now));
                    c.ends[1] = End::Closed;
                }
            }
            SockKind::Stream { conn: Some(conn), side, .. } => {
                let c = &mut w.conns[conn];
                let unread = c.pipes[1 - side].bytes_unread() > 0;
                c.close_side(side, now, unread);
            }
            SockKind::Stream { conn: None, .. } => {}
        }
    }

    pub(crate) fn local_addr(&self, sock: SocketId) -> io::Result<SockAddr> {
        match self.world.borrow().socks.get(sock).map(|s| &s.kind) {
            Some(SockKind::Listener { addr, .. }) => Ok(addr.clone()),
            Some(SockKind::Stream { local, .. }) => Ok(local.clone()),
            None => Err(err(io::ErrorKind::NotConnected)),
        }
    }

    pub(crate) fn peer_addr(&self, sock: SocketId) -> io::Result<SockAddr> {
        let w = self.world.borrow();
        match w.socks.get(sock).map(|s| &s.kind) {
            Some(SockKind::Stream {
                peer, conn: Some(conn), side, connect: ConnectState::Connected, ..
            }) => {
                // A reset socket is closed: no peer any more (as on Linux).
                if w.conns[*conn].reset[*side].is_some_and(|at| at <= w.now) {
                    return Err(err(io::ErrorKind::NotConnected));
                }
                Ok(peer.clone())
            }
            _ => Err(err(io::ErrorKind::NotConnected)),
        }
    }

    /// A simulated connection has no process at the other end to describe.
    pub(crate) fn peer_cred(&self, sock: SocketId) -> io::Result<UCred> {
        stream_of(&self.world.borrow(), sock)?;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "evloop::sim: a simulated connection has no peer process, hence no credentials",
        ))
    }

    pub(crate) fn set_nodelay(&self, sock: SocketId, on: bool) -> io::Result<()> {
        match self.world.borrow_mut().socks.get_mut(sock) {
            Some(s) => {
                s.nodelay = on;
                Ok(())
            }
            None => Err(err(io::ErrorKind::NotConnected)),
        }
    }

    pub(crate) fn nodelay(&self, sock: SocketId) -> io::Result<bool> {
        self.world.borrow().socks.get(sock).map(|s| s.nodelay).ok_or_else(|| err(io::ErrorKind::NotConnected))
    }

    pub(crate) fn set_keepalive(&self, sock: SocketId, _idle: Option<Duration>) -> io::Result<()> {
        self.world.borrow().socks.get(sock).map(|_| ()).ok_or_else(|| err(io::ErrorKind::NotConnected))
    }
}

fn stream_of(w: &World, sock: SocketId) -> io::Result<(usize, usize)> {
    match w.socks.get(sock).map(|s| &s.kind) {
        Some(SockKind::Stream { conn: Some(conn), side, connect: ConnectState::Connected, .. }) => {
            Ok((*conn, *side))
        }
        _ => Err(err(io::ErrorKind::NotConnected)),
    }
}

/// The next look at the socket reports its current state (see [`world::Edges`]).
fn rearm(w: &mut World, sock: SocketId) {
    if let Some(s) = w.socks.get_mut(sock) {
        s.edges.rearm = true;
    }
}

/// Readiness of every registered socket, edge-triggered as the Linux backend registers
/// sockets (see [`world::Edges`]). With `consume` false it only looks (for the harness),
/// leaving every edge to the next real look.
fn collect_ready(w: &mut World, ready: &mut Vec<Readiness>, consume: bool) {
    fd::collect_fd_ready(w, ready);
    process::collect_exits(w, ready);
    udp::collect_udp_ready(w, ready, consume);
    let now = w.now;
    let World { socks, conns, .. } = w;
    for (_, sock) in socks.iter_mut() {
        let Some((key, interest)) = sock.interest else { continue };
        // (readable, writable, error or hang-up, FIN arrived, count of input-side events, an
        // output-side event: a connect completed or room is back after a write found none)
        let e = &sock.edges;
        let (readable, writable, hangup, fin, events, room_back) = match &sock.kind {
            SockKind::Listener { backlog, .. } => {
                let arrived = backlog.iter().filter(|&&(_, at)| at <= now).count() as u64;
                (arrived > 0, false, false, false, e.taken + arrived, false)
            }
            SockKind::Stream { connect: ConnectState::Pending { at, .. }, .. } => {
                let done = at.is_some_and(|at| at <= now);
                (false, done, false, false, done as u64, false)
            }
            SockKind::Stream { connect: ConnectState::Failed(_), .. } => (true, true, true, false, 1, false),
            SockKind::Stream { conn: Some(conn), side, .. } => {
                let c = &conns[*conn];
                // A pipe whose other end closed: epoll reports EPOLLERR to its writer.
                let reset =
                    c.reset[*side].is_some_and(|at| at <= now) || (c.pipe && c.ends[1 - side] == End::Closed);
                let input = &c.pipes[1 - side];
                let fin = input.fin.is_some_and(|at| at <= now);
                let spurious = c.faults.spurious > 0;
                let readable = input.arrived(now) > 0 || input.ended(now) || spurious;
                let room = c.pipes[*side].room() > 0;
                let events = input.arrivals(now) + fin as u64 + reset as u64 + spurious as u64;
                (readable, room || spurious, reset, fin, events, room && e.out_of_room)
            }
            SockKind::Stream { conn: None, .. } => (false, false, false, false, 0, false),
        };
        let fresh = events != e.seen || e.rearm;
        if consume {
            let e = &mut sock.edges;
            e.seen = events;
            e.rearm = false;
            if room_back {
                e.out_of_room = false;
            }
        }
        // Errors and hang-ups are reported whatever the interest, as epoll does.
        let hangup = hangup && fresh;
        let readable = hangup || (readable && interest.readable && fresh);
        let writable = hangup || (writable && interest.writable && (fresh || room_back));
        if readable || writable {
            // EPOLLRDHUP: after the FIN, a short read does not mean the socket is empty.
            let (priority, disconnect) = (false, hangup || fin);
            ready.push(Readiness { key, readable, writable, hangup: hangup || fin, priority, disconnect });
        }
    }
}
