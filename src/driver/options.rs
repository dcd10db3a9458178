//! Plain option types that the driver needs and the public API re-exports: which backend a
//! loop waits with, and how a listening or UDP socket is set up. They live here, at the bottom, so
//! that `driver/` imports nothing from the layers above it.

use std::io;

/// Which operating-system mechanism a loop waits with.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Backend {
    /// epoll, directly (Linux; the default there): one system call per wait.
    #[cfg(target_os = "linux")]
    Epoll,
    /// The `polling` crate, level-triggered: epoll on Linux, and the default on other
    /// Unix-like systems (kqueue or event ports there, untested). evloop is Unix-only and
    /// tested on Linux.
    Polling,
}

impl Backend {
    /// The variable [`from_env`](Backend::from_env) reads.
    pub const ENV_VAR: &'static str = "EVLOOP_BACKEND";

    /// The platform's default: epoll on Linux, `polling` elsewhere.
    pub fn platform_default() -> Backend {
        #[cfg(target_os = "linux")]
        return Backend::Epoll;
        #[cfg(not(target_os = "linux"))]
        return Backend::Polling;
    }

    /// The backend named by the `EVLOOP_BACKEND` environment variable (`epoll` or `polling`),
    /// or the [platform's default](Backend::platform_default) if it is unset or empty.
    ///
    /// An unknown name is an error of kind `InvalidInput` that names the variable and the
    /// values it takes, so a typo cannot silently run the default backend instead.
    pub fn from_env() -> io::Result<Backend> {
        match std::env::var(Self::ENV_VAR) {
            Err(std::env::VarError::NotPresent) => Ok(Backend::platform_default()),
            Ok(v) if v.trim().is_empty() => Ok(Backend::platform_default()),
            Ok(v) => v.parse().map_err(|e: io::Error| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{}={v:?}: {e}", Self::ENV_VAR))
            }),
            Err(std::env::VarError::NotUnicode(v)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}={v:?}: not a backend name", Self::ENV_VAR),
            )),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = io::Error;

    /// `"epoll"` (Linux only) or `"polling"`, ignoring surrounding white space.
    fn from_str(name: &str) -> io::Result<Backend> {
        match name.trim() {
            #[cfg(target_os = "linux")]
            "epoll" => Ok(Backend::Epoll),
            "polling" => Ok(Backend::Polling),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                if cfg!(target_os = "linux") {
                    "evloop: unknown backend: expected \"epoll\" or \"polling\""
                } else {
                    "evloop: unknown backend: expected \"polling\""
                },
            )),
        }
    }
}

/// The builder methods of the options every bound socket shares (`SO_REUSEADDR`,
/// `SO_REUSEPORT`, `IPV6_V6ONLY`), for [`ListenOptions`] and [`UdpOptions`] alike.
macro_rules! address_setters {
    () => {
        /// Sets `SO_REUSEADDR`.
        pub fn reuse_address(mut self, on: bool) -> Self {
            self.reuse_address = on;
            self
        }

        /// Sets `SO_REUSEPORT`.
        pub fn reuse_port(mut self, on: bool) -> Self {
            self.reuse_port = on;
            self
        }

        /// Sets `IPV6_V6ONLY` (IPv6 addresses only).
        pub fn only_v6(mut self, on: bool) -> Self {
            self.only_v6 = Some(on);
            self
        }
    };
}

/// Options for a listening socket: `ListenOptions::new().backlog(128).bind(lp, addr, cb)`
/// binds a `TcpListener` with them (`bind` lives in `net/listener.rs`, above the driver).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ListenOptions {
    /// The accept backlog (default 511, as libuv and Node use).
    pub backlog: u32,
    /// `SO_REUSEADDR` (default on, as libuv sets it), so a restarted server can bind while
    /// old connections linger in TIME_WAIT.
    pub reuse_address: bool,
    /// `SO_REUSEPORT` (default off): lets several sockets, one loop per core say, listen on
    /// the same port; the kernel spreads connections among them.
    pub reuse_port: bool,
    /// `IPV6_V6ONLY` for IPv6 addresses; `None` keeps the system's default.
    pub only_v6: Option<bool>,
    /// Unix domain sockets bound to a path: remove a socket file already at the path before
    /// binding (default `false`). See [`unlink_existing`](ListenOptions::unlink_existing).
    pub unlink_existing: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 511,
            reuse_address: true,
            reuse_port: false,
            only_v6: None,
            unlink_existing: false,
        }
    }
}

impl ListenOptions {
    /// The defaults: backlog 511, `SO_REUSEADDR` on, `SO_REUSEPORT` off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the accept backlog.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    address_setters!();

    /// Unix domain sockets bound to a path: if a socket file is already there (left by a
    /// server that did not remove it), remove it and bind (default `false`: the bind fails
    /// with `AddrInUse`). Only a socket is removed, never another kind of file. As with
    /// Node's servers, removing a path that a live server still listens on makes that
    /// server unreachable by path: choose this only where the path is yours.
    pub fn unlink_existing(mut self, on: bool) -> Self {
        self.unlink_existing = on;
        self
    }
}

/// Options for a UDP socket: `UdpOptions::new().reuse_port(true).bind(lp, addr)` binds a
/// `UdpSocket` with them (`bind` lives in `net/udp/`, above the driver).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct UdpOptions {
    /// `SO_REUSEADDR` (default off, as libuv's `UV_UDP_REUSEADDR` and Node's `reuseAddr`):
    /// on Linux it lets several sockets bind the same address and port, the last one bound
    /// receiving unicast datagrams.
    pub reuse_address: bool,
    /// `SO_REUSEPORT` (default off): several sockets, one loop per core say, share the
    /// address and port; the kernel spreads the senders among them.
    pub reuse_port: bool,
    /// `IPV6_V6ONLY` for IPv6 addresses; `None` keeps the system's default.
    pub only_v6: Option<bool>,
}

impl UdpOptions {
    /// The defaults: `SO_REUSEADDR` and `SO_REUSEPORT` off, the system's `IPV6_V6ONLY`.
    pub fn new() -> Self {
        Self::default()
    }

    address_setters!();
}

/// The credentials of the process at the other end of a Unix domain stream, as the kernel
/// recorded them when the connection was made (`SO_PEERCRED`); see
/// [`UnixStream::peer_cred`](crate::UnixStream::peer_cred).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub struct UCred {
    /// The peer's process id.
    pub pid: i32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

/// What an [`FdWatcher`](crate::FdWatcher) watches its descriptor for: any union of
/// [`READABLE`](FdInterest::READABLE), [`WRITABLE`](FdInterest::WRITABLE) and
/// [`PRIORITY`](FdInterest::PRIORITY) (`FdInterest::READABLE | FdInterest::WRITABLE`), as
/// libuv's `UV_READABLE` / `UV_WRITABLE` / `UV_PRIORITIZED`. A hang-up or error is reported
/// whatever the interest.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct FdInterest {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) priority: bool,
}

impl FdInterest {
    /// Nothing (what a stopped watcher has).
    pub const NONE: FdInterest = FdInterest { readable: false, writable: false, priority: false };
    /// Data to read, or the end of it (`EPOLLIN`).
    pub const READABLE: FdInterest = FdInterest { readable: true, writable: false, priority: false };
    /// Room to write (`EPOLLOUT`).
    pub const WRITABLE: FdInterest = FdInterest { readable: false, writable: true, priority: false };
    /// Urgent data: TCP out-of-band data, a `sysfs` attribute that changed (`EPOLLPRI`).
    pub const PRIORITY: FdInterest = FdInterest { readable: false, writable: false, priority: true };

    /// Whether this includes [`READABLE`](FdInterest::READABLE).
    pub fn is_readable(self) -> bool {
        self.readable
    }

    /// Whether this includes [`WRITABLE`](FdInterest::WRITABLE).
    pub fn is_writable(self) -> bool {
        self.writable
    }

    /// Whether this includes [`PRIORITY`](FdInterest::PRIORITY).
    pub fn is_priority(self) -> bool {
        self.priority
    }

    /// Whether this is [`NONE`](FdInterest::NONE).
    pub fn is_empty(self) -> bool {
        self == FdInterest::NONE
    }
}

impl std::ops::BitOr for FdInterest {
    type Output = FdInterest;

    fn bitor(self, other: FdInterest) -> FdInterest {
        FdInterest {
            readable: self.readable || other.readable,
            writable: self.writable || other.writable,
            priority: self.priority || other.priority,
        }
    }
}

/// Refuses what a poller cannot watch: a regular file or a directory is always ready, so
/// epoll refuses it (`EPERM`). Checked with `fstat` when a watcher opens, on every driver,
/// so the simulation refuses the same descriptors. Returns the descriptor back.
pub(crate) fn check_pollable(fd: std::os::fd::OwnedFd) -> io::Result<std::os::fd::OwnedFd> {
    let file = std::fs::File::from(fd);
    let meta = file.metadata()?;
    if meta.is_file() || meta.is_dir() {
        return Err(not_pollable());
    }
    Ok(file.into())
}

/// The error for a descriptor that cannot be watched (see [`check_pollable`]).
fn not_pollable() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "evloop: regular files and directories cannot be watched: they are always ready \
         (read them directly, or with evloop::fs)",
    )
}
