//! Unix domain sockets: [`UnixStream`] and [`UnixListener`], on the same stream and listener
//! cores as TCP (the stream methods come from `stream_methods!`), addressed by a filesystem
//! path or, on Linux, an abstract name, with std's `std::os::unix::net` addresses.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{self, SocketAddr};
use std::path::Path;

use socket2::SockAddr;

use super::listener::connection_callback;
use super::stream_methods::stream_methods;
use super::{Completion, ListenOptions};
use crate::driver::UCred;
use crate::error::misuse;
use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Handle, HandleKind};

/// The longest path `sun_path` holds, its terminating NUL aside (108 bytes in all on Linux,
/// 104 on the BSDs and macOS).
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_PATH_LEN: usize = 107;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAX_PATH_LEN: usize = 103;

/// A Unix domain stream socket (libuv's `uv_pipe_t` on a socket, Node's `net.Socket` on an
/// IPC path): a connection to a local process, with exactly [`TcpStream`](crate::TcpStream)'s
/// semantics: the write queue, its high-water mark and drain callback, half-close with
/// [`shutdown`](UnixStream::shutdown), read stop/resume, `Ok(&[])` at the end of the stream,
/// `ConnectionReset` if the peer closes with unread data, and what keeps the loop alive.
/// An idle `UnixStream` costs what an idle `TcpStream` costs: they share one stream state.
///
/// A stream comes from [`UnixStream::connect`] or from a [`UnixListener`]'s connection
/// callback. [`peer_cred`](UnixStream::peer_cred) tells who is at the other end.
///
/// ```
/// use evloop::{Loop, RunMode, UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("evloop-doc-stream-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("echo.sock");
/// # let _ = std::fs::remove_file(&path);
/// let mut lp = Loop::new()?;
/// let server = UnixListener::bind(&mut lp, &path, |lp, stream| {
///     stream
///         .read_start(lp, |lp, stream, data| match data {
///             Ok(bytes) if !bytes.is_empty() => drop(stream.write(lp, bytes).unwrap()),
///             _ => stream.close(lp).unwrap(),
///         })
///         .unwrap();
/// })?;
/// UnixStream::connect(&mut lp, &path, move |lp, client, result| {
///     result.unwrap();
///     client.write(lp, b"ping").unwrap();
///     client
///         .read_start(lp, move |lp, client, data| {
///             assert_eq!(data.unwrap(), b"ping");
///             client.close(lp).unwrap();
///             server.close(lp).unwrap();
///         })
///         .unwrap();
/// })?;
/// lp.run(RunMode::Default)?;
/// std::fs::remove_file(&path)?; // a listener leaves its socket file behind, as in C
/// # std::fs::remove_dir(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct UnixStream {
    handle: Handle,
}

common_handle_methods!(UnixStream, UnixStream);
stream_methods!(UnixStream, UnixStream);

impl UnixStream {
    /// Connects to the listener bound to `path`. `on_connect` runs once, from the loop, with
    /// the outcome: `Ok`, or the kernel's error (`NotFound` if nothing is at the path,
    /// `ConnectionRefused` if a socket file is there but nothing listens, `PermissionDenied`).
    /// Writes and a shutdown may be issued before the connection is up; they are queued.
    /// Closing the stream while it connects cancels the connect: `on_connect` gets a
    /// [`Cancelled`](crate::Cancelled) error.
    ///
    /// Returns an error at once only if the path is unusable (`InvalidInput`: empty, too long
    /// for `sun_path`, or holding a NUL byte) or no socket could be created.
    pub fn connect<S>(
        lp: &mut Loop<S>,
        path: impl AsRef<Path>,
        on_connect: impl FnOnce(&mut Loop<S>, UnixStream, io::Result<()>) + 'static,
    ) -> io::Result<UnixStream> {
        connect(lp, path_addr(path.as_ref())?, on_connect)
    }

    /// Like [`connect`](UnixStream::connect), to an address: a path, or on Linux an abstract
    /// name (`std::os::linux::net::SocketAddrExt::from_abstract_name`).
    pub fn connect_addr<S>(
        lp: &mut Loop<S>,
        addr: &SocketAddr,
        on_connect: impl FnOnce(&mut Loop<S>, UnixStream, io::Result<()>) + 'static,
    ) -> io::Result<UnixStream> {
        connect(lp, sock_addr(addr)?, on_connect)
    }

    /// The credentials of the process at the other end (`SO_PEERCRED`), as the kernel
    /// recorded them: for an accepted stream, the client's when it connected; for a client,
    /// the server's when it started listening.
    /// `Unsupported` off Linux and on a simulated loop, which has no processes.
    pub fn peer_cred<S>(&self, lp: &Loop<S>) -> io::Result<UCred> {
        lp.driver.peer_cred(lp.stream_socket(self.handle, Self::STREAM_KIND)?)
    }

    /// The address of the peer: its path, abstract name, or (for a client that did not
    /// bind, the usual case) an unnamed address.
    pub fn peer_addr<S>(&self, lp: &Loop<S>) -> io::Result<SocketAddr> {
        std_addr(&lp.driver.peer_addr(lp.stream_socket(self.handle, Self::STREAM_KIND)?)?)
    }

    /// The local address: the listener's path for an accepted stream, unnamed for a client.
    pub fn local_addr<S>(&self, lp: &Loop<S>) -> io::Result<SocketAddr> {
        std_addr(&lp.driver.local_addr(lp.stream_socket(self.handle, Self::STREAM_KIND)?)?)
    }

    /// Takes over a connected std stream, as [`TcpStream::from_std`](crate::TcpStream::from_std)
    /// does (non-blocking from now on; `NotConnected` if it is not connected, `Unsupported`
    /// on a simulated loop).
    ///
    /// ```
    /// use std::io::Read;
    /// use evloop::{Loop, RunMode, UnixStream};
    ///
    /// let (ours, mut theirs) = std::os::unix::net::UnixStream::pair()?;
    /// let mut lp = Loop::new()?;
    /// let stream = UnixStream::from_std(&mut lp, ours)?;
    /// stream.write(&mut lp, b"hello")?;
    /// stream.shutdown(&mut lp, move |lp, _| stream.close(lp).unwrap())?;
    /// lp.run(RunMode::Default)?;
    /// let mut got = String::new();
    /// theirs.read_to_string(&mut got)?;
    /// assert_eq!(got, "hello");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std<S>(lp: &mut Loop<S>, stream: net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream::from_handle(lp.adopt_stream(stream.into(), HandleKind::UnixStream)?))
    }

    /// Closes the stream and hands its socket back, connected and blocking again, as
    /// [`TcpStream::into_std`](crate::TcpStream::into_std) does, with the same refusals
    /// while data could be lost.
    pub fn into_std<S>(self, lp: &mut Loop<S>) -> io::Result<net::UnixStream> {
        Ok(lp.release_stream(self.handle, HandleKind::UnixStream)?.into())
    }
}

fn connect<S>(
    lp: &mut Loop<S>,
    addr: SockAddr,
    on_connect: impl FnOnce(&mut Loop<S>, UnixStream, io::Result<()>) + 'static,
) -> io::Result<UnixStream> {
    let make_callback = |h| -> Completion<S> {
        Box::new(move |lp, result| on_connect(lp, UnixStream::from_handle(h), result))
    };
    let h = lp
        .stream_connect(HandleKind::UnixStream, make_callback, move |lp, h| lp.connect_next(h, vec![addr]))?;
    Ok(UnixStream::from_handle(h))
}

/// A listening Unix domain socket that accepts connections and hands each to a callback
/// (Node's `net.createServer().listen(path)`, libuv's `uv_pipe_bind` + `uv_listen`), on the
/// same listener core as [`TcpListener`](crate::TcpListener) (accepts paused on EMFILE,
/// resumed after a back-off). Stop listening by closing it.
///
/// Binding to a path creates a socket file there, which stays after the listener closes
/// (as in C and in Rust's std): remove it when done. A later bind to the same path fails
/// with `AddrInUse`, naming the path, unless
/// [`ListenOptions::unlink_existing`] allows removing it first. On a simulated loop there is
/// no filesystem: the simulation keeps the bound paths in memory with the same rule (a path
/// stays taken after its listener closes, until a bind with `unlink_existing`), and
/// `std::fs::remove_file` does not free them.
///
/// See [`UnixStream`] for an example.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct UnixListener {
    handle: Handle,
}

common_handle_methods!(UnixListener, UnixListener);

impl UnixListener {
    /// Binds to the filesystem `path` with the default [`ListenOptions`] and starts
    /// accepting; each new connection is handed to `on_connection`. Fails with `AddrInUse`
    /// if a socket file is already there (see [`ListenOptions::unlink_existing`]) and with
    /// `InvalidInput` if the path is longer than `sun_path` holds (107 bytes on Linux).
    pub fn bind<S>(
        lp: &mut Loop<S>,
        path: impl AsRef<Path>,
        on_connection: impl FnMut(&mut Loop<S>, UnixStream) + 'static,
    ) -> io::Result<UnixListener> {
        ListenOptions::default().bind_unix(lp, path, on_connection)
    }

    /// Like [`bind`](UnixListener::bind), to an address: a path, or on Linux an abstract
    /// name, which lives in no filesystem and goes away with its last socket.
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    /// use evloop::{Loop, UnixListener};
    ///
    /// let mut lp = Loop::new()?;
    /// let name = format!("evloop-doc-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(&name)?;
    /// let listener = UnixListener::bind_addr(&mut lp, &addr, |lp, stream| stream.close(lp).unwrap())?;
    /// assert_eq!(listener.local_addr(&lp)?.as_abstract_name(), Some(name.as_bytes()));
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_addr<S>(
        lp: &mut Loop<S>,
        addr: &SocketAddr,
        on_connection: impl FnMut(&mut Loop<S>, UnixStream) + 'static,
    ) -> io::Result<UnixListener> {
        ListenOptions::default().bind_unix_addr(lp, addr, on_connection)
    }

    /// The address the listener is bound to.
    pub fn local_addr<S>(&self, lp: &Loop<S>) -> io::Result<SocketAddr> {
        std_addr(&lp.driver.local_addr(lp.listener_socket(self.handle, HandleKind::UnixListener)?)?)
    }

    /// Takes over a listening std socket, as
    /// [`TcpListener::from_std`](crate::TcpListener::from_std) does.
    pub fn from_std<S>(
        lp: &mut Loop<S>,
        listener: net::UnixListener,
        on_connection: impl FnMut(&mut Loop<S>, UnixStream) + 'static,
    ) -> io::Result<UnixListener> {
        let on_connection = connection_callback(on_connection, UnixStream::from_handle);
        let handle = lp.adopt_listener(listener.into(), HandleKind::UnixListener, on_connection)?;
        Ok(UnixListener { handle })
    }

    /// Closes the listener and hands its socket back, still listening and blocking again, as
    /// [`TcpListener::into_std`](crate::TcpListener::into_std) does.
    pub fn into_std<S>(self, lp: &mut Loop<S>) -> io::Result<net::UnixListener> {
        Ok(lp.release_listener(self.handle, HandleKind::UnixListener)?.into())
    }
}

impl ListenOptions {
    /// Binds a [`UnixListener`] to the filesystem `path` with these options (the backlog,
    /// [`unlink_existing`](ListenOptions::unlink_existing); the TCP-only ones are ignored).
    ///
    /// ```
    /// use evloop::{ListenOptions, Loop, UnixListener};
    ///
    /// let path = std::env::temp_dir().join(format!("evloop-doc-unlink-{}.sock", std::process::id()));
    /// drop(std::os::unix::net::UnixListener::bind(&path)?); // a stale socket file stays behind
    /// let mut lp = Loop::new()?;
    /// let err = UnixListener::bind(&mut lp, &path, |_, _| {}).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    /// let listener = ListenOptions::new().unlink_existing(true).bind_unix(&mut lp, &path, |_, _| {})?;
    /// assert_eq!(listener.local_addr(&lp)?.as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_unix<S>(
        &self,
        lp: &mut Loop<S>,
        path: impl AsRef<Path>,
        on_connection: impl FnMut(&mut Loop<S>, UnixStream) + 'static,
    ) -> io::Result<UnixListener> {
        self.listen_unix(lp, path_addr(path.as_ref())?, on_connection)
    }

    /// Like [`bind_unix`](ListenOptions::bind_unix), to an address: a path or an abstract
    /// name.
    pub fn bind_unix_addr<S>(
        &self,
        lp: &mut Loop<S>,
        addr: &SocketAddr,
        on_connection: impl FnMut(&mut Loop<S>, UnixStream) + 'static,
    ) -> io::Result<UnixListener> {
        self.listen_unix(lp, sock_addr(addr)?, on_connection)
    }

    fn listen_unix<S>(
        &self,
        lp: &mut Loop<S>,
        addr: SockAddr,
        on_connection: impl FnMut(&mut Loop<S>, UnixStream) + 'static,
    ) -> io::Result<UnixListener> {
        let sock = lp.driver.listen(&addr, self).map_err(|e| explain_bind_error(e, &addr))?;
        let on_connection = connection_callback(on_connection, UnixStream::from_handle);
        Ok(UnixListener { handle: lp.open_listener(sock, HandleKind::UnixListener, on_connection) })
    }
}

/// `AddrInUse` for a Unix name says which, and what to do about a stale file.
fn explain_bind_error(e: io::Error, addr: &SockAddr) -> io::Error {
    if e.kind() != io::ErrorKind::AddrInUse {
        return e;
    }
    let msg = match (addr.as_pathname(), addr.as_abstract_namespace()) {
        (Some(path), _) => format!(
            "evloop: cannot bind {}: address in use (a socket file is there: a running server's, \
             or a stale one; remove it, or bind with ListenOptions::unlink_existing(true))",
            path.display()
        ),
        (None, Some(name)) => {
            format!("evloop: cannot bind abstract name {:?}: address in use", String::from_utf8_lossy(name))
        }
        (None, None) => return e,
    };
    io::Error::new(io::ErrorKind::AddrInUse, msg)
}

/// The socket address of a filesystem path, refusing what `sun_path` cannot hold.
fn path_addr(path: &Path) -> io::Result<SockAddr> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(misuse("evloop: a Unix socket path cannot be empty"));
    }
    if bytes.contains(&0) {
        return Err(misuse("evloop: a Unix socket path cannot contain a NUL byte"));
    }
    if bytes.len() > MAX_PATH_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "evloop: Unix socket path too long: {} bytes, and sun_path holds {MAX_PATH_LEN} \
                 (use a shorter or relative path): {}",
                bytes.len(),
                path.display()
            ),
        ));
    }
    SockAddr::unix(path)
}

/// std's Unix address as a socket address: a path or an abstract name.
fn sock_addr(addr: &SocketAddr) -> io::Result<SockAddr> {
    if let Some(path) = addr.as_pathname() {
        return path_addr(path);
    }
    #[cfg(target_os = "linux")]
    if let Some(name) = std::os::linux::net::SocketAddrExt::as_abstract_name(addr) {
        // An abstract name is a sun_path that starts with a NUL byte.
        let bytes: Vec<u8> = std::iter::once(0).chain(name.iter().copied()).collect();
        return SockAddr::unix(OsStr::from_bytes(&bytes));
    }
    Err(misuse("evloop: an unnamed Unix address cannot be bound or connected to"))
}

/// A Unix socket address as std's type.
fn std_addr(addr: &SockAddr) -> io::Result<SocketAddr> {
    if let Some(path) = addr.as_pathname() {
        return SocketAddr::from_pathname(path);
    }
    #[cfg(target_os = "linux")]
    if let Some(name) = addr.as_abstract_namespace() {
        return <SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name);
    }
    if !addr.is_unix() {
        return Err(misuse("evloop: not a Unix socket address"));
    }
    // Unnamed: std builds it from an empty path.
    SocketAddr::from_pathname("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TcpStream;

    /// Only the crate can retype an id (the public API has no way to), so the check that an
    /// id of one stream type is refused by another's methods is pinned here.
    #[test]
    fn a_stream_id_of_one_type_is_refused_by_the_others_methods() {
        let mut lp = Loop::new().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let tcp = TcpStream::from_std(&mut lp, listener.accept().unwrap().0).unwrap();
        let as_unix = UnixStream::from_handle(tcp.handle());
        let err = as_unix.write(&mut lp, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "evloop: handle is of another kind: it is a TcpStream, not a UnixStream");
        assert_eq!(
            as_unix.read_start(&mut lp, |_, _, _| {}).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(as_unix.peer_cred(&lp).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(as_unix.close(&mut lp).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(!as_unix.is_reading(&lp));

        let (ours, _theirs) = net::UnixStream::pair().unwrap();
        let unix = UnixStream::from_std(&mut lp, ours).unwrap();
        let as_tcp = TcpStream::from_handle(unix.handle());
        let err = as_tcp.shutdown(&mut lp, |_, _| {}).unwrap_err();
        assert_eq!(err.to_string(), "evloop: handle is of another kind: it is a UnixStream, not a TcpStream");
        assert_eq!(as_tcp.set_nodelay(&mut lp, true).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        // The right types still work.
        assert!(tcp.write(&mut lp, b"ok").unwrap());
        assert!(unix.write(&mut lp, b"ok").unwrap());
    }

    /// Memory: an idle Unix stream is the same per-handle state as an idle TCP stream.
    #[test]
    fn an_idle_unix_stream_costs_what_an_idle_tcp_stream_costs() {
        use crate::handle::Extra;
        let mut lp = Loop::new().unwrap();
        let (ours, _theirs) = net::UnixStream::pair().unwrap();
        let unix = UnixStream::from_std(&mut lp, ours).unwrap();
        let body = lp.handles.get(unix.handle()).unwrap();
        let Extra::Stream(st) = &body.extra else { panic!("a Unix stream has the stream state") };
        assert!(st.cold.is_none(), "nothing rarely used allocated while idle");
        eprintln!(
            "idle stream state: {} bytes (+ the handle slot), for TCP and Unix alike",
            std::mem::size_of::<crate::net::stream::StreamState<()>>()
        );
    }
}
