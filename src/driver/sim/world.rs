//! The simulated world: a virtual clock and in-memory TCP.
//!
//! A connection is two pipes, one per direction. A pipe holds segments stamped with the
//! virtual time at which they arrive (the link's latency after they were written) and has a
//! window: a writer may put at most `window` bytes into it that the reader has not taken, so a
//! reader that stops reading stops its writer, as on a real socket. FIN and RST travel the same
//! way, stamped with their arrival time. What a real socket does after RST (measured on
//! Linux): the reader first gets the data already delivered, then `ConnectionReset`, then EOF.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;

use socket2::SockAddr;

use slab::Slab;

use super::Rng;
use crate::driver::{Interest, SocketId};

/// How reads are cut: how many bytes one read returns at most.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Chunking {
    /// As much as the reader's buffer takes.
    Whole,
    /// At most this many bytes per read (1 delivers byte by byte).
    Fixed(usize),
    /// A seeded random size from 1 to `max` for every read.
    Random {
        /// The largest chunk.
        max: usize,
    },
}

pub(crate) struct Seg {
    at: u64,
    data: Vec<u8>,
    pos: usize,
}

/// One direction of a connection.
pub(crate) struct Pipe {
    segs: VecDeque<Seg>,
    /// Segments ever pushed: with the ones still in flight, it counts arrivals.
    pushed: u64,
    /// Bytes written and not yet read.
    bytes: usize,
    /// FIN, with its arrival time.
    pub(crate) fin: Option<u64>,
    window: usize,
}

impl Pipe {
    fn new(window: usize) -> Pipe {
        Pipe { segs: VecDeque::new(), pushed: 0, bytes: 0, fin: None, window }
    }

    pub(crate) fn room(&self) -> usize {
        if self.fin.is_some() {
            return 0;
        }
        self.window.saturating_sub(self.bytes)
    }

    /// Writes everything, past the window (a closing peer's last bytes).
    pub(crate) fn push_all(&mut self, at: u64, data: &[u8]) {
        if !data.is_empty() {
            self.segs.push_back(Seg { at, data: data.to_vec(), pos: 0 });
            self.pushed += 1;
            self.bytes += data.len();
        }
    }

    /// Writes what the window takes; returns how much.
    pub(crate) fn push(&mut self, at: u64, data: &[u8]) -> usize {
        let n = data.len().min(self.room());
        if n > 0 {
            self.segs.push_back(Seg { at, data: data[..n].to_vec(), pos: 0 });
            self.pushed += 1;
            self.bytes += n;
        }
        n
    }

    /// How many segments have arrived by `now`, ever (reads do not lower it): a new arrival
    /// is an edge for the edge-triggered poller.
    pub(crate) fn arrivals(&self, now: u64) -> u64 {
        // Every socket is looked at on every poll and most pipes are empty or all in flight:
        // answer those without walking the queue (a simulation of 1,000 connections spends
        // most of its time here otherwise).
        match self.segs.front() {
            None => return self.pushed,
            Some(first) if first.at > now => return self.pushed - self.segs.len() as u64,
            Some(_) => {}
        }
        // Segments arrive in order (a read stops at the first one still in flight).
        let in_flight = self.segs.iter().skip_while(|s| s.at <= now).count();
        self.pushed - in_flight as u64
    }

    /// Bytes that have arrived by `now`.
    pub(crate) fn arrived(&self, now: u64) -> usize {
        if self.segs.front().is_none_or(|first| first.at > now) {
            return 0; // nothing, or nothing yet (see `arrivals`)
        }
        self.segs.iter().take_while(|s| s.at <= now).map(|s| s.data.len() - s.pos).sum()
    }

    /// Whether FIN has arrived and everything before it has been read.
    pub(crate) fn ended(&self, now: u64) -> bool {
        self.fin.is_some_and(|at| at <= now) && self.segs.is_empty()
    }

    /// Reads up to `buf.len()` arrived bytes.
    pub(crate) fn read(&mut self, now: u64, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            let Some(seg) = self.segs.front_mut() else { break };
            if seg.at > now {
                break;
            }
            let take = (seg.data.len() - seg.pos).min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&seg.data[seg.pos..seg.pos + take]);
            seg.pos += take;
            n += take;
            if seg.pos == seg.data.len() {
                self.segs.pop_front();
            }
        }
        self.bytes -= n;
        n
    }

    /// Bytes written and not read yet, arrived or not.
    pub(crate) fn bytes_unread(&self) -> usize {
        self.bytes
    }

    /// Everything that has arrived, taken at once (for fake peers).
    pub(crate) fn drain_arrived(&mut self, now: u64, out: &mut Vec<u8>) {
        while let Some(seg) = self.segs.front() {
            if seg.at > now {
                break;
            }
            let seg = self.segs.pop_front().unwrap_or_else(|| unreachable!());
            self.bytes -= seg.data.len() - seg.pos;
            out.extend_from_slice(&seg.data[seg.pos..]);
        }
    }

    /// The next arrival after `now`.
    fn next_event(&self, now: u64) -> Option<u64> {
        if self.segs.is_empty() {
            return self.fin.filter(|&at| at > now); // the common case, without a walk
        }
        let seg = self.segs.iter().map(|s| s.at).find(|&at| at > now);
        let fin = self.fin.filter(|&at| at > now);
        seg.into_iter().chain(fin).min()
    }
}

/// One end of a connection.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum End {
    /// A socket of the loop.
    Sock(SocketId),
    /// A fake peer, driven by the test.
    Peer,
    /// Waiting in a listener's backlog.
    Backlog,
    /// Closed: data sent to it is answered with a reset.
    Closed,
}

pub(crate) struct Conn {
    /// `pipes[i]` carries data from side `i` to side `1 - i`.
    pub(crate) pipes: [Pipe; 2],
    pub(crate) ends: [End; 2],
    pub(crate) addrs: [SockAddr; 2],
    /// RST, as seen by side `i`: when it arrives.
    pub(crate) reset: [Option<u64>; 2],
    /// Side `i` already reported the reset to its reader.
    pub(crate) reset_reported: [bool; 2],
    pub(crate) latency: u64,
    /// What a fake peer has received; its outbox; whether it pauses reading.
    pub(crate) peer_inbox: Vec<u8>,
    pub(crate) peer_outbox: VecDeque<u8>,
    pub(crate) peer_fin_pending: bool,
    pub(crate) peer_paused: bool,
    pub(crate) faults: ConnFaults,
    /// Bytes the loop's side has written so far (for reset-at-offset).
    pub(crate) loop_written: u64,
    /// A pipe (`sim/pipe.rs`): used in one direction, never reset; a write once the other
    /// end is closed fails with `BrokenPipe` at once.
    pub(crate) pipe: bool,
}

impl Conn {
    /// Moves data for the fake peer at side `side` (see `World::settle_peers`).
    fn settle_peer(&mut self, side: usize, now: u64) {
        if matches!(self.ends[1 - side], End::Closed)
            && !self.peer_outbox.is_empty()
            && self.reset[side].is_none()
        {
            // Data for a closed socket: the kernel answers with a reset (for a pipe, EPIPE,
            // which the test sees as the pipe closed).
            if !self.pipe {
                self.reset[side] = Some(self.arrival(now));
            }
            self.peer_outbox.clear();
        }
        if !self.peer_outbox.is_empty() && self.reset[side].is_none() {
            let (a, b) = self.peer_outbox.as_slices();
            let chunk: Vec<u8> = a.iter().chain(b).copied().take(self.pipes[side].room()).collect();
            let n = self.pipes[side].push(self.arrival(now), &chunk);
            self.peer_outbox.drain(..n);
        }
        if self.peer_outbox.is_empty() && self.peer_fin_pending {
            self.peer_fin_pending = false;
            self.pipes[side].fin = Some(self.arrival(now));
        }
        if !self.peer_paused {
            self.pipes[1 - side].drain_arrived(now, &mut self.peer_inbox);
        }
    }

    /// When something sent at `now` arrives: one link latency later, saturating (a huge
    /// latency means never).
    pub(crate) fn arrival(&self, now: u64) -> u64 {
        now.saturating_add(self.latency)
    }

    /// Whether side `side` had the other side's FIN before its reset arrived (the socket was
    /// in CLOSE_WAIT): Linux then reports the reset as EPIPE, and reads end quietly.
    pub(crate) fn fin_before_reset(&self, side: usize) -> bool {
        match (self.pipes[1 - side].fin, self.reset[side]) {
            (Some(fin), Some(reset)) => fin <= reset,
            _ => false,
        }
    }

    /// Closes side `side` like `close(2)`: RST if input is left unread, else FIN after what
    /// was written; data sent to it afterwards is answered with a reset.
    pub(crate) fn close_side(&mut self, side: usize, now: u64, unread: bool) {
        self.ends[side] = End::Closed;
        if unread && !self.pipe {
            self.reset[1 - side] = Some(self.arrival(now));
        } else if self.pipes[side].fin.is_none() {
            self.pipes[side].fin = Some(self.arrival(now));
        }
    }
}

/// Faults aimed at one connection's loop side.
#[derive(Default, Debug, Clone)]
pub(crate) struct ConnFaults {
    /// Writes by the loop to skip before the next fault applies.
    pub(crate) partial_after: usize,
    /// The next `partial_count` writes accept at most `partial_limit` bytes.
    pub(crate) partial_count: usize,
    pub(crate) partial_limit: usize,
    /// The next writes that fail with WouldBlock although there is room.
    pub(crate) would_block: usize,
    /// Readiness reported although nothing is ready.
    pub(crate) spurious: usize,
    /// Reset once the loop has written this many bytes.
    pub(crate) reset_at: Option<u64>,
}

pub(crate) enum ConnectState {
    Connected,
    /// Completes at `at` with this outcome; `None` time: never answered.
    Pending {
        at: Option<u64>,
        refused: bool,
    },
    Failed(io::ErrorKind),
}

pub(crate) enum SockKind {
    Listener { addr: SockAddr, backlog: VecDeque<(usize, u64)> },
    Stream { conn: Option<usize>, side: usize, connect: ConnectState, local: SockAddr, peer: SockAddr },
}

pub(crate) struct Sock {
    pub(crate) kind: SockKind,
    pub(crate) interest: Option<(usize, Interest)>,
    pub(crate) nodelay: bool,
    pub(crate) edges: Edges,
}

impl Sock {
    pub(crate) fn new(kind: SockKind) -> Sock {
        Sock { kind, interest: None, nodelay: false, edges: Edges::default() }
    }
}

/// What the simulated poller remembers of a socket to report it edge-triggered, as the Linux
/// backend registers sockets: an event is reported when something new happens (input, a
/// connection, FIN or RST arrives; room frees up after a write found none; a connect
/// completes) or the interest changes, and not again merely because the state persists.
#[derive(Default)]
pub(crate) struct Edges {
    /// The count of input-side events at the last look.
    pub(crate) seen: u64,
    /// A write found no room (or was cut short): room freeing up is an event.
    pub(crate) out_of_room: bool,
    /// Report the current state once: the interest changed, or a read was cut short (by
    /// chunking or a fault) with input left, which a real socket would have had arrive
    /// separately.
    pub(crate) rearm: bool,
    /// Connections taken from a listener's backlog.
    pub(crate) taken: u64,
}

/// What a listening address leads to.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Listening {
    Loop(SocketId),
    Fake(usize),
}

/// A fake listener's queue of connections the loop made to it.
pub(crate) struct FakeListen {
    pub(crate) addr: SockAddr,
    pub(crate) accepted: VecDeque<usize>,
}

/// Where connect attempts to an address go wrong.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConnectFault {
    Refuse,
    Blackhole,
}

/// One recorded event, for the determinism check and for debugging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Virtual time, in milliseconds.
    pub time: u64,
    /// The handle or socket involved (its slot index).
    pub id: usize,
    /// What happened.
    pub kind: &'static str,
    /// Bytes moved, where that applies.
    pub bytes: usize,
}

/// The simulated world.
pub(crate) struct World {
    pub(crate) now: u64,
    /// Time may not move past this (set by the harness).
    pub(crate) horizon: u64,
    pub(crate) rng: Rng,
    pub(crate) window: usize,
    pub(crate) latency: u64,
    pub(crate) chunking: Chunking,
    pub(crate) chaos: f64,
    pub(crate) socks: Slab<Sock>,
    pub(crate) conns: Slab<Conn>,
    /// TCP addresses and Unix names (paths and abstract names) that something listens on.
    pub(crate) listening: HashMap<SockAddr, Listening>,
    /// Unix paths bound so far: the simulation has no filesystem, so this models the socket
    /// files, which stay after their listener closes until a bind removes them
    /// (`ListenOptions::unlink_existing`).
    pub(crate) unix_paths: HashSet<SockAddr>,
    pub(crate) fake_listeners: Slab<FakeListen>,
    pub(crate) connect_faults: HashMap<SockAddr, ConnectFault>,
    /// Accepts fail with EMFILE until this time.
    pub(crate) emfile_until: u64,
    next_port: u16,
    pub(crate) trace: Vec<TraceEvent>,
    pub(crate) pool: super::pool::SimPool,
    /// Fake descriptors for fd watchers.
    pub(crate) fds: super::fd::FakeFds,
    /// Fake programs and their processes (`process.rs`).
    pub(crate) procs: super::process::FakeProcs,
    /// Fake pipes not yet opened by the program.
    pub(crate) pipes: super::pipe::FakePipes,
    /// The UDP network.
    pub(crate) udp: super::udp::SimUdp,
}

impl World {
    pub(crate) fn new(seed: u64, window: usize, latency: u64, chunking: Chunking, chaos: f64) -> World {
        World {
            now: 0,
            horizon: u64::MAX,
            rng: Rng::new(seed),
            window,
            latency,
            chunking,
            chaos,
            socks: Slab::new(),
            conns: Slab::new(),
            listening: HashMap::new(),
            unix_paths: HashSet::new(),
            fake_listeners: Slab::new(),
            connect_faults: HashMap::new(),
            emfile_until: 0,
            next_port: 40_000,
            trace: Vec::new(),
            pool: super::pool::SimPool::default(),
            fds: super::fd::FakeFds::default(),
            procs: super::process::FakeProcs::default(),
            pipes: super::pipe::FakePipes::default(),
            udp: super::udp::SimUdp::default(),
        }
    }

    pub(crate) fn record(&mut self, id: usize, kind: &'static str, bytes: usize) {
        self.trace.push(TraceEvent { time: self.now, id, kind, bytes });
    }

    /// A fresh local address for a socket that talks to `like`: a new port on the loopback
    /// network for TCP; for a Unix socket, the unnamed address a connecting socket has.
    pub(crate) fn ephemeral(&mut self, like: &SockAddr) -> SockAddr {
        match like.as_socket() {
            Some(ip) => self.ephemeral_ip(ip).into(),
            None => unnamed_unix_addr(),
        }
    }

    /// A fresh port on `like`'s IP address (TCP and UDP share the counter).
    pub(crate) fn ephemeral_ip(&mut self, like: SocketAddr) -> SocketAddr {
        self.next_port = self.next_port.checked_add(1).unwrap_or(40_000);
        SocketAddr::new(like.ip(), self.next_port)
    }

    pub(crate) fn new_conn(&mut self, ends: [End; 2], addrs: [SockAddr; 2]) -> usize {
        let window = self.window;
        self.conns.insert(Conn {
            pipes: [Pipe::new(window), Pipe::new(window)],
            ends,
            addrs,
            reset: [None, None],
            reset_reported: [false, false],
            latency: self.latency,
            peer_inbox: Vec::new(),
            peer_outbox: VecDeque::new(),
            peer_fin_pending: false,
            peer_paused: false,
            faults: ConnFaults::default(),
            loop_written: 0,
            pipe: false,
        })
    }

    /// Starts a connection from `from` (side 0, on a fresh local address) to what listens at
    /// `addr`, and returns it with that local address; `None` if nothing there takes it.
    /// A listener of the loop queues it in its backlog, where it arrives one link latency
    /// from now; a fake listener takes it at once (for the program's connects: a fake peer
    /// reaches only the program's listeners).
    pub(crate) fn connect(&mut self, from: End, addr: &SockAddr) -> Option<(usize, SockAddr)> {
        let target = self.listening.get(addr).copied()?;
        if from == End::Peer && matches!(target, Listening::Fake(_)) {
            return None;
        }
        let local = self.ephemeral(addr);
        let at = self.now.saturating_add(self.latency);
        match target {
            Listening::Loop(listener) => {
                let conn = self.new_conn([from, End::Backlog], [local.clone(), addr.clone()]);
                if let Some(Sock { kind: SockKind::Listener { backlog, .. }, .. }) =
                    self.socks.get_mut(listener)
                {
                    backlog.push_back((conn, at));
                }
                Some((conn, local))
            }
            Listening::Fake(fake) => {
                let conn = self.new_conn([from, End::Peer], [local.clone(), addr.clone()]);
                self.fake_listeners[fake].accepted.push_back(conn);
                Some((conn, local))
            }
        }
    }

    /// Moves data for fake peers and runs the fake processes' scripts (which write into
    /// their pipes as peers do; those bytes then move on too).
    pub(crate) fn settle(&mut self) {
        self.settle_peers();
        if super::process::run_scripts(self) {
            self.settle_peers();
        }
    }

    /// Moves data for fake peers: their outboxes into the pipes as windows allow, and what
    /// has arrived for them into their inboxes unless they pause reading.
    fn settle_peers(&mut self) {
        let now = self.now;
        for (_, conn) in self.conns.iter_mut() {
            // At most one end is a fake peer: a fake peer reaches only the program's
            // listeners. (A `match`, not `==`: this runs for every connection on every poll.)
            let side = match conn.ends {
                [End::Peer, _] => 0,
                [_, End::Peer] => 1,
                _ => continue,
            };
            conn.settle_peer(side, now);
        }
    }

    /// The earliest moment after now at which something in the network changes.
    pub(crate) fn next_event(&self) -> Option<u64> {
        let now = self.now;
        let mut next: Option<u64> = None;
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t.filter(|&t| t > now) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for (_, conn) in &self.conns {
            consider(conn.pipes[0].next_event(now));
            consider(conn.pipes[1].next_event(now));
            consider(conn.reset[0]);
            consider(conn.reset[1]);
        }
        for (_, sock) in &self.socks {
            match &sock.kind {
                SockKind::Stream { connect: ConnectState::Pending { at, .. }, .. } => consider(*at),
                SockKind::Listener { backlog, .. } => {
                    consider(backlog.iter().map(|&(_, at)| at).find(|&at| at > now))
                }
                _ => {}
            }
        }
        consider(Some(self.emfile_until));
        consider(self.pool.next_event(now));
        consider(self.procs.next_event(now));
        consider(self.udp_next_event());
        next
    }

    /// Runs the pool jobs due now.
    pub(crate) fn run_pool_jobs(&mut self) {
        let now = self.now;
        self.pool.run_due(now, &mut self.rng);
    }

    /// Draws true with probability `chaos`.
    pub(crate) fn chaos_hit(&mut self) -> bool {
        self.chaos > 0.0 && self.rng.chance(self.chaos)
    }
}

/// The address of a Unix socket bound to no name (a connecting socket's own).
pub(crate) fn unnamed_unix_addr() -> SockAddr {
    // An empty path is the unnamed address; it always fits.
    SockAddr::unix("").unwrap_or_else(|_| unreachable!())
}
