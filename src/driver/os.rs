//! The real driver: the monotonic clock, `polling`, and sockets from `socket2` / std.
//!
//! It waits with epoll directly on Linux (`driver/epoll.rs`: one system call per wait) or with
//! `polling` (portable across Unix-like systems; about five system calls per wait on Linux, as it re-arms a timerfd
//! and its notifier every time). Either way the loop does not wait at all when the timeout
//! is zero and nothing is registered or notified, which is every iteration of a loop that
//! only has timers and watchers.
//!
//! Sockets are registered lazily: a socket enters the poller the first time it has an
//! interest, with its handle's id as the key, so a freshly accepted socket that the program
//! starts reading costs one `epoll_ctl`. The epoll backend registers them edge-triggered
//! (see `driver/epoll.rs` for why), `polling` level-triggered; the loop is right under both.
//! An fd watcher's descriptor (a duplicate the driver owns, `Sock::Fd`) is registered at
//! once, level-triggered on both backends, as its callback may leave it undrained.
//!
//! The poller itself (either backend, behind one enum) is in `poll.rs`. Streams are read and
//! written in `stream_io.rs` (a socket or a pipe end), pipe entries opened and shut down in
//! `pipe.rs`, UDP sockets in `udp.rs`.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;
use socket2::{Protocol, SockAddr, Socket, Type};

use super::poll::{Poll, Reg};
use super::{Backend, FdInterest, Interest, ListenOptions, Notifier, Readiness, SocketId, UCred, WakeTarget};

/// A socket of either stream family (TCP or Unix domain): `socket2::Socket` reads and
/// writes with one system call each, as std's types do, and serves both families with one
/// code path.
pub(super) enum Sock {
    Listener(Socket),
    Stream(Socket),
    /// A UDP socket (its datagram operations are in `driver/udp.rs`).
    Udp(std::net::UdpSocket),
    /// An fd watcher's duplicate of a descriptor the host owns; registered level-triggered,
    /// with the interest it has in the poller (`None`: not in the poller).
    Fd(OwnedFd, Option<FdInterest>),
    /// A pipe end, FIFO or character device of a `Pipe` stream (`driver/pipe.rs`); `None`
    /// once shut down (closed).
    Pipe(Option<OwnedFd>),
}

pub(super) struct Entry {
    pub(super) sock: Sock,
    /// The interest registered with the poller, `None` while not in the poller.
    pub(super) registered: Option<Interest>,
}

impl Entry {
    /// The descriptor; `None` only for a pipe that was shut down, which is out of the poller.
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.sock {
            Sock::Listener(l) => Some(l.as_fd()),
            Sock::Stream(s) => Some(s.as_fd()),
            Sock::Udp(s) => Some(s.as_fd()),
            Sock::Fd(fd, _) => Some(fd.as_fd()),
            Sock::Pipe(fd) => fd.as_ref().map(|fd| fd.as_fd()),
        }
    }

    /// Whether the descriptor is in the poller.
    fn in_poller(&self) -> bool {
        self.registered.is_some() || matches!(self.sock, Sock::Fd(_, Some(_)))
    }
}

/// The most readiness events one wait returns, whatever the builder was asked for: the
/// event buffer is allocated up front, and more would only cost memory.
const MAX_EVENT_CAPACITY: usize = 65_536;

pub(crate) struct OsDriver {
    backend: Backend,
    poll: Poll,
    notifier: Arc<Notifier>,
    start: Instant,
    pub(super) sockets: Slab<Entry>,
    /// The read end of this loop's signal pipe, once a signal watcher started (`crate::signal`).
    signal_pipe: Option<&'static UnixStream>,
    /// Child processes (`driver/process.rs`); their pidfds are entries of `sockets`.
    pub(super) children: super::process::Children,
}

/// The key of the signal pipe; no handle's key can be this (it would need slot 2^32 - 2 of
/// generation 2^32 - 1), nor the epoll backend's eventfd key (`u64::MAX`).
const SIGNAL_KEY: usize = usize::MAX - 1;

/// The key of a probe (`poll_probe`), registered for no longer than one call: never waited on.
const PROBE_KEY: usize = usize::MAX - 2;

/// Retries `op` while a signal interrupts its system call (EINTR).
pub(super) fn retry_interrupted<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn no_such_socket() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "evloop: no such socket")
}

pub(super) fn not_a_stream() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "evloop: not a connected stream")
}

impl OsDriver {
    pub(crate) fn new(event_capacity: usize, backend: Backend) -> io::Result<OsDriver> {
        let capacity = event_capacity.clamp(1, MAX_EVENT_CAPACITY);
        let (poll, wake) = match backend {
            #[cfg(target_os = "linux")]
            Backend::Epoll => {
                let epoll = super::epoll::Epoll::new(capacity)?;
                let wake = WakeTarget::EventFd(epoll.waker());
                (Poll::Epoll(epoll), wake)
            }
            Backend::Polling => {
                let poller = Arc::new(polling::Poller::new()?);
                let cap = std::num::NonZeroUsize::new(capacity).unwrap_or(std::num::NonZeroUsize::MIN);
                let wake = WakeTarget::Polling(poller.clone());
                (Poll::Polling { poller, events: polling::Events::with_capacity(cap) }, wake)
            }
        };
        Ok(OsDriver {
            backend,
            poll,
            notifier: Arc::new(Notifier::new(wake)),
            start: Instant::now(),
            sockets: Slab::new(),
            signal_pipe: None,
            children: super::process::Children::new(),
        })
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub(crate) fn wait(&mut self, timeout_ms: Option<u64>, ready: &mut Vec<Readiness>) -> io::Result<bool> {
        if timeout_ms == Some(0) && self.sockets.is_empty() && !self.notifier.is_raised() {
            return Ok(false);
        }
        let start = ready.len();
        self.poll.wait(timeout_ms, ready)?;
        if let Some(pipe) = self.signal_pipe {
            if let Some(i) = ready[start..].iter().position(|r| r.key == SIGNAL_KEY) {
                // Only a wakeup: the signal table says which signals came (`crate::signal`).
                ready.remove(start + i);
                let mut buf = [0u8; 64];
                while matches!((&*pipe).read(&mut buf), Ok(n) if n > 0) {}
            }
        }
        self.take_orphan_events(ready, start);
        Ok(timeout_ms != Some(0))
    }

    /// Polls `pipe` (the read end of a signal pipe, never closed) for readability, once.
    pub(crate) fn watch_signals(&mut self, pipe: &'static UnixStream) -> io::Result<()> {
        if self.signal_pipe.is_none() {
            self.poll.add(
                pipe.as_fd(),
                SIGNAL_KEY,
                Reg::Socket(Interest { readable: true, writable: false }),
            )?;
            self.signal_pipe = Some(pipe);
        }
        Ok(())
    }

    pub(crate) fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    pub(crate) fn backend_fd(&self) -> RawFd {
        self.poll.backend_fd()
    }

    // ---- sockets ----

    /// A bound, listening, non-blocking socket of `addr`'s family (TCP or Unix domain).
    /// The TCP options apply to TCP only; `unlink_existing` to Unix paths only.
    pub(crate) fn listen(&mut self, addr: &SockAddr, opts: &ListenOptions) -> io::Result<SocketId> {
        let socket = new_socket(addr)?;
        if addr.is_unix() {
            if let (true, Some(path)) = (opts.unlink_existing, addr.as_pathname()) {
                remove_stale_socket(path)?;
            }
        } else {
            socket.set_reuse_address(opts.reuse_address)?;
            #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
            if opts.reuse_port {
                socket.set_reuse_port(true)?;
            }
            if let (true, Some(only_v6)) = (addr.is_ipv6(), opts.only_v6) {
                socket.set_only_v6(only_v6)?;
            }
        }
        socket.bind(addr)?;
        socket.listen(opts.backlog.min(i32::MAX as u32) as i32)?;
        Ok(self.sockets.insert(Entry { sock: Sock::Listener(socket), registered: None }))
    }

    pub(crate) fn accept(&mut self, listener: SocketId) -> io::Result<SocketId> {
        let Some(Entry { sock: Sock::Listener(l), .. }) = self.sockets.get(listener) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "evloop: not a listener"));
        };
        #[cfg(target_os = "linux")]
        let stream: Socket = {
            // accept4 with NONBLOCK | CLOEXEC: one system call instead of accept + fcntl.
            let flags = rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC;
            rustix::net::accept_with(l, flags)?.into()
        };
        #[cfg(not(target_os = "linux"))]
        let stream = {
            let (stream, _) = l.accept()?;
            stream.set_nonblocking(true)?;
            stream
        };
        Ok(self.sockets.insert(Entry { sock: Sock::Stream(stream), registered: None }))
    }

    /// Starts a non-blocking connect. The outer error means no socket could be created;
    /// the inner result is the connect's: `Ok(true)` if it completed at once.
    pub(crate) fn connect(&mut self, addr: &SockAddr) -> io::Result<(SocketId, io::Result<bool>)> {
        let socket = new_socket(addr)?;
        let outcome = match socket.connect(addr) {
            Ok(()) => Ok(true),
            // A Unix socket says EAGAIN when the listener's backlog is full: final for this
            // attempt, and not a kind that retry loops should retry.
            Err(e) if addr.is_unix() && e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "evloop: the listener's backlog is full (EAGAIN)",
            )),
            Err(e) if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {
                Ok(false)
            }
            Err(e) => Err(e),
        };
        Ok((self.sockets.insert(Entry { sock: Sock::Stream(socket), registered: None }), outcome))
    }

    /// The outcome of a connect once the socket reported writable (SO_ERROR, then the peer).
    pub(crate) fn connect_result(&mut self, sock: SocketId) -> io::Result<()> {
        let stream = self.stream(sock)?;
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        // Writable without an error can still be a failed connect on some systems.
        stream.peer_addr().map(|_| ())
    }

    fn stream(&self, sock: SocketId) -> io::Result<&Socket> {
        match self.sockets.get(sock) {
            Some(Entry { sock: Sock::Stream(s), .. }) => Ok(s),
            _ => Err(not_a_stream()),
        }
    }

    /// Takes `fd` out of the poller.
    pub(super) fn poll_delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.poll.delete(fd)
    }

    /// Whether the poller accepts `fd`: registers it and takes it out again at once. Gives
    /// `fd` back if it does; if it cannot be taken out again, `fd` is leaked rather than
    /// closed while registered (see the SAFETY argument in `Poll::add`).
    pub(super) fn poll_probe(&self, fd: OwnedFd) -> io::Result<OwnedFd> {
        self.poll.add(fd.as_fd(), PROBE_KEY, Reg::Socket(Interest { readable: true, writable: false }))?;
        if let Err(e) = self.poll.delete(fd.as_fd()) {
            std::mem::forget(fd);
            return Err(e);
        }
        Ok(fd)
    }

    /// Registers or changes interest, with `key` as the poller key.
    pub(crate) fn set_interest(&mut self, sock: SocketId, key: usize, interest: Interest) -> io::Result<()> {
        let Some(entry) = self.sockets.get_mut(sock) else { return Ok(()) };
        if entry.registered == Some(interest) || (entry.registered.is_none() && interest == Interest::NONE) {
            return Ok(());
        }
        let Some(fd) = entry.fd() else { return Err(not_a_stream()) };
        if interest == Interest::NONE {
            // Out of the poller rather than registered for nothing: level-triggered epoll
            // (the `polling` backend) reports a hung-up socket on every wait even with an
            // empty interest.
            self.poll.delete(fd)?;
            entry.registered = None;
            return Ok(());
        }
        match entry.registered {
            None => self.poll.add(fd, key, Reg::Socket(interest))?,
            Some(_) => self.poll.modify(fd, key, Reg::Socket(interest))?,
        }
        entry.registered = Some(interest);
        Ok(())
    }

    /// Takes over a listening socket: non-blocking from now on (std already set
    /// close-on-exec). Refused if the socket is not listening, where the system can tell
    /// (`SO_ACCEPTCONN`).
    pub(crate) fn adopt_listener(&mut self, listener: Socket) -> io::Result<SocketId> {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        if !listener.is_listener()? {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "evloop: the socket is not listening"));
        }
        listener.set_nonblocking(true)?;
        Ok(self.sockets.insert(Entry { sock: Sock::Listener(listener), registered: None }))
    }

    /// Takes over a connected stream: non-blocking from now on. A stream that is not
    /// connected fails with `NotConnected` (its `peer_addr`).
    pub(crate) fn adopt_stream(&mut self, stream: Socket) -> io::Result<SocketId> {
        stream.peer_addr()?;
        stream.set_nonblocking(true)?;
        Ok(self.sockets.insert(Entry { sock: Sock::Stream(stream), registered: None }))
    }

    /// Hands a listener back: out of the poller, blocking again.
    pub(crate) fn release_listener(&mut self, sock: SocketId) -> io::Result<Socket> {
        match self.release(sock, true)? {
            Sock::Listener(l) => Ok(l),
            _ => Err(no_such_socket()),
        }
    }

    /// Hands a stream back: out of the poller, blocking again.
    pub(crate) fn release_stream(&mut self, sock: SocketId) -> io::Result<Socket> {
        match self.release(sock, false)? {
            Sock::Stream(s) => Ok(s),
            _ => Err(no_such_socket()),
        }
    }

    /// Takes a listener (or a stream) out of the driver without closing it: blocking again,
    /// and out of the poller. A failure leaves it as it was.
    fn release(&mut self, sock: SocketId, listener: bool) -> io::Result<Sock> {
        let set_nonblocking = |entry: &Entry, on: bool| match &entry.sock {
            Sock::Listener(l) => l.set_nonblocking(on),
            Sock::Stream(s) => s.set_nonblocking(on),
            Sock::Udp(_) | Sock::Fd(..) | Sock::Pipe(_) => Err(no_such_socket()),
        };
        let entry = match self.sockets.get(sock) {
            Some(e)
                if matches!(e.sock, Sock::Listener(_)) == listener
                    && matches!(e.sock, Sock::Listener(_) | Sock::Stream(_)) =>
            {
                e
            }
            _ => return Err(no_such_socket()),
        };
        set_nonblocking(entry, false)?;
        if let (true, Some(fd)) = (entry.in_poller(), entry.fd()) {
            if let Err(e) = self.poll.delete(fd) {
                let _ = set_nonblocking(entry, true);
                return Err(e);
            }
        }
        Ok(self.sockets.remove(sock).sock)
    }

    /// Deregisters and closes a socket.
    pub(crate) fn close(&mut self, sock: SocketId) {
        if let Some(entry) = self.sockets.try_remove(sock) {
            if let (true, Some(fd)) = (entry.in_poller(), entry.fd()) {
                let _ = self.poll.delete(fd);
            }
        }
    }

    // ---- fd watchers ----

    /// Takes an fd watcher's duplicate; it enters the poller with its first interest.
    pub(crate) fn fd_open(&mut self, fd: OwnedFd) -> io::Result<SocketId> {
        let fd = super::check_pollable(fd)?;
        Ok(self.sockets.insert(Entry { sock: Sock::Fd(fd, None), registered: None }))
    }

    /// Registers (level-triggered), changes or (with no interest) deregisters at once.
    pub(crate) fn fd_set_interest(
        &mut self,
        id: SocketId,
        key: usize,
        interest: FdInterest,
    ) -> io::Result<()> {
        let Some(Entry { sock: Sock::Fd(fd, registered), .. }) = self.sockets.get_mut(id) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "evloop: not a watched descriptor"));
        };
        let result = match (*registered, interest.is_empty()) {
            (None, true) => Ok(()),
            (Some(_), true) => self.poll.delete(fd.as_fd()),
            (None, false) => self.poll.add(fd.as_fd(), key, Reg::Fd(interest)),
            (Some(old), false) if old == interest => Ok(()),
            (Some(_), false) => self.poll.modify(fd.as_fd(), key, Reg::Fd(interest)),
        };
        match result {
            // epoll refuses what it cannot poll with EPERM (`check_pollable` catches the
            // common cases earlier).
            Err(e) if e.raw_os_error() == Some(EPERM) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "evloop: this descriptor cannot be watched: the poller refuses it (EPERM), \
                     as it refuses regular files and always-ready devices such as /dev/null",
                ))
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        *registered = (!interest.is_empty()).then_some(interest);
        Ok(())
    }

    /// Deregisters and closes an fd watcher's duplicate (the host's descriptor stays open).
    pub(crate) fn fd_close(&mut self, id: SocketId) {
        self.close(id);
    }

    pub(crate) fn local_addr(&self, sock: SocketId) -> io::Result<SockAddr> {
        match self.sockets.get(sock).map(|e| &e.sock) {
            Some(Sock::Listener(s) | Sock::Stream(s)) => s.local_addr(),
            Some(Sock::Udp(_) | Sock::Fd(..) | Sock::Pipe(_)) | None => Err(not_a_stream()),
        }
    }

    pub(crate) fn peer_addr(&self, sock: SocketId) -> io::Result<SockAddr> {
        self.stream(sock)?.peer_addr()
    }

    pub(crate) fn set_nodelay(&self, sock: SocketId, on: bool) -> io::Result<()> {
        self.stream(sock)?.set_tcp_nodelay(on)
    }

    pub(crate) fn nodelay(&self, sock: SocketId) -> io::Result<bool> {
        self.stream(sock)?.tcp_nodelay()
    }

    pub(crate) fn set_keepalive(&self, sock: SocketId, idle: Option<Duration>) -> io::Result<()> {
        let s = self.stream(sock)?;
        match idle {
            None => s.set_keepalive(false),
            Some(idle) => s.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle)),
        }
    }

    /// The credentials of the process at the other end of a Unix stream (`SO_PEERCRED`).
    pub(crate) fn peer_cred(&self, sock: SocketId) -> io::Result<UCred> {
        let s = self.stream(sock)?;
        #[cfg(target_os = "linux")]
        {
            let cred = rustix::net::sockopt::socket_peercred(s)?;
            Ok(UCred { pid: cred.pid.as_raw_nonzero().get(), uid: cred.uid.as_raw(), gid: cred.gid.as_raw() })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = s;
            Err(io::Error::new(io::ErrorKind::Unsupported, "evloop: peer credentials need Linux"))
        }
    }
}

/// A non-blocking, close-on-exec stream socket of `addr`'s family.
fn new_socket(addr: &SockAddr) -> io::Result<Socket> {
    let protocol = (!addr.is_unix()).then_some(Protocol::TCP);
    Socket::new(addr.domain(), Type::STREAM.nonblocking().cloexec(), protocol)
}

/// Removes what is at `path` if it is a socket (a stale one, left by a listener that did not
/// clean up); anything else stays, and the bind then fails with `AddrInUse`.
fn remove_stale_socket(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        _ => Ok(()),
    }
}

impl Drop for OsDriver {
    /// Takes every registered socket out of the poller before the sockets close: the poller
    /// may outlive the driver (a `Waker` keeps it through the notifier), and `polling`
    /// requires it (see the SAFETY argument in `Poll::add`).
    fn drop(&mut self) {
        if let Some(pipe) = self.signal_pipe {
            let _ = self.poll.delete(pipe.as_fd());
        }
        for (_, entry) in &self.sockets {
            if let (true, Some(fd)) = (entry.in_poller(), entry.fd()) {
                let _ = self.poll.delete(fd);
            }
        }
    }
}

/// EPERM: what `epoll_ctl` says of a descriptor it cannot poll.
const EPERM: i32 = 1;

/// EINPROGRESS, to which std gives no stable `ErrorKind` (the crate takes no libc).
#[cfg(any(target_os = "linux", target_os = "android"))]
const EINPROGRESS: i32 = 115;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const EINPROGRESS: i32 = 36;
