//! The driver seam: the clock, sockets, waiting for readiness with a timeout, and waking a
//! blocked wait from another thread.
//!
//! Everything that decides what runs when lives in the loop core; only this enum is swapped,
//! at run time. It has two variants:
//!
//! - [`Driver::Os`]: the operating system ([`os::OsDriver`]): a monotonic clock, real
//!   sockets, and a poller that is either epoll used directly (`epoll.rs`, Linux, the
//!   default there, sockets edge-triggered) or the `polling` crate (level-triggered), as
//!   [`Backend`] chooses.
//! - [`Driver::Sim`]: the simulation (`sim/`): a virtual clock, an in-memory network with
//!   faults, and a deterministic pool.
//!
//! The thread pool's executor is part of the seam too (`executor.rs`): worker threads
//! (`threads.rs`) on the real driver, jobs run on the loop thread in virtual time
//! (`sim/pool.rs`) on the simulated one; `crate::pool` keeps only the loop's side.
//!
//! Nothing outside `driver/` matches on the variants, and user code never names them. This
//! module imports nothing from the layers above it (only `crate::error`, a leaf); the plain
//! option types it needs ([`Backend`], [`ListenOptions`], [`UdpOptions`]) live in `options.rs` and are
//! re-exported at the crate root.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::Duration;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use socket2::{SockAddr, Socket};

#[cfg(target_os = "linux")]
pub(crate) mod epoll;
pub(crate) mod executor;
mod options;
pub(crate) mod os;
pub(crate) mod pipe;
mod poll;
pub(crate) mod process;
pub(crate) mod sim;
mod stream_io;
pub(crate) mod threads;
pub(crate) mod udp;

pub(crate) use options::check_pollable;
pub use options::{Backend, FdInterest, ListenOptions, UCred, UdpOptions};
pub(crate) use process::{ProcId, SpawnedChild, ESRCH};
pub(crate) use udp::{Membership, Received, UdpOption, RECV_BATCH};

/// The backend under a loop.
pub(crate) enum Driver {
    /// The operating system: monotonic clock, real sockets, epoll or `polling`.
    Os(os::OsDriver),
    /// The simulation: virtual clock, in-memory network, faults.
    Sim(sim::SimDriver),
}

/// A socket owned by the driver.
pub(crate) type SocketId = usize;

/// Which readiness a socket is registered for.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) struct Interest {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

impl Interest {
    pub(crate) const NONE: Interest = Interest { readable: false, writable: false };
}

/// One readiness event: the key is the handle's id (`Handle::to_key`).
#[derive(Copy, Clone, Debug)]
pub(crate) struct Readiness {
    pub(crate) key: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The peer hung up (or the socket failed): a short read no longer means the socket is
    /// empty, since the end of the stream is still to be read.
    pub(crate) hangup: bool,
    /// Urgent data (`EPOLLPRI`): asked for by fd watchers only.
    pub(crate) priority: bool,
    /// The poller's own hang-up or error report (`EPOLLHUP`, `EPOLLRDHUP`, `EPOLLERR`) on
    /// every backend, for fd watchers; `hangup` above is what streams need, which the
    /// level-triggered backend leaves unset.
    pub(crate) disconnect: bool,
}

impl Readiness {
    /// Readiness the loop owes itself: the socket may still be readable.
    pub(crate) fn again(key: usize) -> Readiness {
        Readiness { key, readable: true, writable: false, hangup: false, priority: false, disconnect: false }
    }
}

/// Defines `Driver` methods that forward to the variant that runs. Each entry starts with
/// `ref` (takes `&self`) or `mut` (takes `&mut self`).
macro_rules! forward {
    (@method ref $(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        pub(crate) fn $name(&self $(, $arg: $ty)*) -> $ret {
            match self {
                Driver::Os(d) => d.$name($($arg),*),
                Driver::Sim(d) => d.$name($($arg),*),
            }
        }
    };
    (@method mut $(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        pub(crate) fn $name(&mut self $(, $arg: $ty)*) -> $ret {
            match self {
                Driver::Os(d) => d.$name($($arg),*),
                Driver::Sim(d) => d.$name($($arg),*),
            }
        }
    };
    ($( $(#[$doc:meta])* $recv:ident fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        impl Driver {
            $( forward!(@method $recv $(#[$doc])* $name($($arg: $ty),*) -> $ret); )*
        }
    };
}

forward! {
    /// Milliseconds since the driver was created, from a monotonic clock.
    ref fn now_ms() -> u64;
    /// The same clock, as precisely as it goes (for timing callbacks).
    ref fn elapsed() -> Duration;
    /// Waits until something is ready, the notifier is raised, or `timeout_ms` has passed
    /// (`None`: no limit), appending what is ready to `ready`. Returns whether it really
    /// waited, the only case in which the caller measures idle time.
    mut fn wait(timeout_ms: Option<u64>, ready: &mut Vec<Readiness>) -> io::Result<bool>;
    /// The notifier that wakes a blocked `wait` from any thread.
    ref fn notifier() -> &Arc<Notifier>;
    /// A bound, listening, non-blocking socket of `addr`'s family: TCP or Unix domain.
    mut fn listen(addr: &SockAddr, opts: &ListenOptions) -> io::Result<SocketId>;
    /// Accepts one connection, non-blocking, not registered yet.
    mut fn accept(listener: SocketId) -> io::Result<SocketId>;
    /// Starts a non-blocking connect: the outer error is the socket's creation, the inner
    /// result the connect's (`true` if it completed at once).
    mut fn connect(addr: &SockAddr) -> io::Result<(SocketId, io::Result<bool>)>;
    /// The outcome of a connect, once the socket is writable.
    mut fn connect_result(sock: SocketId) -> io::Result<()>;
    /// Reads what is there, without blocking.
    mut fn read(sock: SocketId, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what fits, without blocking.
    mut fn write(sock: SocketId, buf: &[u8]) -> io::Result<usize>;
    /// Writes what fits of several buffers, without blocking.
    mut fn write_vectored(sock: SocketId, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Sends FIN.
    mut fn shutdown_write(sock: SocketId) -> io::Result<()>;
    /// Registers or changes the socket's interest, under `key`.
    mut fn set_interest(sock: SocketId, key: usize, interest: Interest) -> io::Result<()>;
    /// Takes over a listening socket (non-blocking from then on), not registered yet.
    mut fn adopt_listener(listener: Socket) -> io::Result<SocketId>;
    /// Takes over a connected stream (non-blocking from then on), not registered yet.
    mut fn adopt_stream(stream: Socket) -> io::Result<SocketId>;
    /// Hands a listener back, deregistered and blocking again, without closing it.
    mut fn release_listener(sock: SocketId) -> io::Result<Socket>;
    /// Hands a stream back, deregistered and blocking again, without closing it.
    mut fn release_stream(sock: SocketId) -> io::Result<Socket>;
    /// Takes over a pipe end (or a socket) that `pipe::inspect` accepted as `end`,
    /// non-blocking from then on, not registered yet: a stream entry like a socket's.
    mut fn pipe_open(fd: std::os::fd::OwnedFd, end: pipe::PipeEnd) -> io::Result<SocketId>;
    /// Deregisters and closes the socket.
    mut fn close(sock: SocketId) -> ();
    /// Takes a descriptor an fd watcher watches (a duplicate the driver now owns), not
    /// registered yet; refuses what cannot be polled (see `check_pollable`).
    mut fn fd_open(fd: std::os::fd::OwnedFd) -> io::Result<SocketId>;
    /// Registers the descriptor level-triggered with `interest` under `key`, changes its
    /// interest, or (with `FdInterest::NONE`) takes it out of the poller. At once, not
    /// batched: the caller learns whether the poller took it.
    mut fn fd_set_interest(fd: SocketId, key: usize, interest: FdInterest) -> io::Result<()>;
    /// Deregisters and closes the descriptor.
    mut fn fd_close(fd: SocketId) -> ();
    /// Spawns a child (the OS: std's spawn and its errors; the simulation: a fake program
    /// registered under the command's program name, or `NotFound`), not registered yet.
    mut fn process_spawn(cmd: &mut std::process::Command) -> io::Result<SpawnedChild>;
    /// Registers how the child's exit becomes known, under `key` (its handle's).
    mut fn process_watch(id: ProcId, key: usize) -> io::Result<()>;
    /// Collects the child's exit if it has exited (`Ok(None)` while it runs); that child's
    /// pid only, never another's.
    mut fn process_try_wait(id: ProcId) -> io::Result<Option<std::process::ExitStatus>>;
    /// Sends a signal to a child whose exit has not been collected; `ESRCH` after.
    mut fn process_kill(id: ProcId, signum: i32) -> io::Result<()>;
    /// The handle closed: forget the child once collected, keep reaping it until then.
    mut fn process_release(id: ProcId) -> ();
    /// After SIGCHLD: collects the exits of the children watched that way, appending their
    /// handles' keys to `exited`.
    mut fn process_reap_sigchld(exited: &mut Vec<usize>) -> ();
    /// The socket's local address.
    ref fn local_addr(sock: SocketId) -> io::Result<SockAddr>;
    /// The connected peer's address.
    ref fn peer_addr(sock: SocketId) -> io::Result<SockAddr>;
    /// The peer's credentials (Unix domain streams).
    ref fn peer_cred(sock: SocketId) -> io::Result<UCred>;
    /// TCP_NODELAY.
    ref fn set_nodelay(sock: SocketId, on: bool) -> io::Result<()>;
    /// TCP_NODELAY.
    ref fn nodelay(sock: SocketId) -> io::Result<bool>;
    /// SO_KEEPALIVE with the idle time before the first probe, or off.
    ref fn set_keepalive(sock: SocketId, idle: Option<Duration>) -> io::Result<()>;
    /// A bound, non-blocking UDP socket, not registered yet.
    mut fn udp_bind(addr: SocketAddr, opts: &UdpOptions) -> io::Result<SocketId>;
    /// Sends one datagram to `to`, or to the connected peer (`None`), without blocking.
    mut fn udp_send(sock: SocketId, data: &[u8], to: Option<SocketAddr>) -> io::Result<usize>;
    /// Receives a batch of datagrams without blocking, each into its own `slot`-byte piece
    /// of `buf`, appending where they are to `got` (`udp.rs`); `WouldBlock` if none.
    mut fn udp_recv_batch(sock: SocketId, buf: &mut [u8], slot: usize, got: &mut Vec<Received>) -> io::Result<()>;
    /// Connects the socket to one peer, or (`None`) dissolves the association.
    mut fn udp_connect(sock: SocketId, to: Option<SocketAddr>) -> io::Result<()>;
    /// Registers or changes a UDP socket's interest, under `key`.
    mut fn udp_set_interest(sock: SocketId, key: usize, interest: Interest) -> io::Result<()>;
    /// Deregisters and closes a UDP socket.
    mut fn udp_close(sock: SocketId) -> ();
    /// A UDP socket's local address.
    ref fn udp_local_addr(sock: SocketId) -> io::Result<SocketAddr>;
    /// A connected UDP socket's peer.
    ref fn udp_peer_addr(sock: SocketId) -> io::Result<SocketAddr>;
    /// Sets a UDP socket option.
    mut fn udp_set_option(sock: SocketId, opt: UdpOption, value: u32) -> io::Result<()>;
    /// Reads a UDP socket option back.
    ref fn udp_option(sock: SocketId, opt: UdpOption) -> io::Result<u32>;
    /// Joins (`true`) or leaves a multicast group.
    mut fn udp_membership(sock: SocketId, membership: Membership, join: bool) -> io::Result<()>;
}

impl Driver {
    /// The real driver, waiting with `backend`; `event_capacity` bounds the events one wait
    /// returns. Fails only if the operating system refuses a poller.
    pub(crate) fn os(event_capacity: usize, backend: Backend) -> io::Result<Driver> {
        Ok(Driver::Os(os::OsDriver::new(event_capacity, backend)?))
    }

    /// The simulated driver over `world`.
    pub(crate) fn sim(world: Rc<RefCell<sim::world::World>>) -> Driver {
        Driver::Sim(sim::SimDriver::new(world))
    }

    /// The operating-system backend, or `None` for the simulation.
    pub(crate) fn backend(&self) -> Option<Backend> {
        match self {
            Driver::Os(d) => Some(d.backend()),
            Driver::Sim(_) => None,
        }
    }

    /// Whether anything is ready now, without moving time: the simulation's harness asks
    /// this before running the loop. The real driver cannot know without a system call and
    /// says no.
    pub(crate) fn has_ready(&self) -> bool {
        match self {
            Driver::Os(_) => false,
            Driver::Sim(d) => d.has_ready(),
        }
    }

    /// The backend's pollable file descriptor, for embedding.
    #[cfg(unix)]
    pub(crate) fn backend_fd(&self) -> std::os::fd::RawFd {
        match self {
            Driver::Os(d) => d.backend_fd(),
            // A simulated loop has no descriptor to poll: nothing becomes readable.
            Driver::Sim(_) => -1,
        }
    }

    /// Polls the read end of a signal pipe (`crate::signal`), which lives in a `static` and
    /// is never closed. The simulation delivers signals itself and has nothing to poll.
    #[cfg(unix)]
    pub(crate) fn watch_signals(&mut self, pipe: &'static std::os::unix::net::UnixStream) -> io::Result<()> {
        match self {
            Driver::Os(d) => d.watch_signals(pipe),
            Driver::Sim(_) => Ok(()),
        }
    }

    /// Records a callback in the simulation's trace (nothing on the real driver).
    pub(crate) fn trace(&self, id: usize, kind: &'static str) {
        if let Driver::Sim(d) = self {
            d.trace(id, kind, 0);
        }
    }
}

/// What a wake raises: a flag the loop checks without a system call, and, the first time it
/// is raised, the backend's own wakeup so that a blocked wait returns.
pub(crate) struct Notifier {
    raised: AtomicBool,
    wake: WakeTarget,
}

/// What interrupts a blocked wait.
pub(crate) enum WakeTarget {
    /// Nothing: the simulated driver never blocks.
    None,
    /// `polling`'s own notifier.
    Polling(Arc<polling::Poller>),
    /// The epoll backend's eventfd.
    #[cfg(target_os = "linux")]
    EventFd(Arc<std::os::fd::OwnedFd>),
}

impl Notifier {
    pub(crate) fn new(wake: WakeTarget) -> Notifier {
        Notifier { raised: AtomicBool::new(false), wake }
    }

    /// Raises the flag, and interrupts the backend if it was not raised yet.
    pub(crate) fn notify(&self) -> io::Result<()> {
        if !self.raised.swap(true, Ordering::AcqRel) {
            match &self.wake {
                WakeTarget::None => {}
                WakeTarget::Polling(poller) => poller.notify()?,
                #[cfg(target_os = "linux")]
                WakeTarget::EventFd(fd) => epoll::wake(fd)?,
            }
        }
        Ok(())
    }

    /// Whether a wake is waiting to be handled.
    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Lowers the flag; returns whether it was raised.
    pub(crate) fn take(&self) -> bool {
        self.raised.swap(false, Ordering::AcqRel)
    }

    /// Raises the flag without touching the backend (used to rescan after a panic).
    pub(crate) fn raise_quietly(&self) {
        self.raised.store(true, Ordering::Release);
    }
}
