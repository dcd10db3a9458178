//! The public TCP types: [`TcpStream`] (the stream methods it shares with every stream type
//! come from `stream_methods!`; connect is in `connect.rs`, std interop in `adopt.rs`) and
//! [`TcpListener`] (on the listener core in `listener.rs`), with their TCP-only options and
//! `std::net` addresses.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use socket2::SockAddr;

use super::listener::connection_callback;
use super::stream_methods::stream_methods;
use super::ListenOptions;
use crate::error::misuse;
use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Handle, HandleKind};

/// A TCP connection (libuv's `uv_tcp_t`, Node's `net.Socket`).
///
/// A stream comes from [`TcpStream::connect`] or from a
/// [`TcpListener`](crate::TcpListener)'s connection callback. Reads are delivered to the
/// callback given to [`read_start`](TcpStream::read_start) as a `&[u8]` borrowed from one
/// loop-owned 64 KiB buffer (copy what you keep); `Ok` with an empty slice is the end of the
/// stream, as with [`std::io::Read`]. [`write`](TcpStream::write) tries the socket at once and
/// queues only what it could not take.
///
/// # What keeps the loop alive
///
/// libuv's rule: a stream is *active*, and (unless unreferenced) keeps
/// [`RunMode::Default`](crate::RunMode::Default) running, while something can still happen to
/// it: it is connecting, it is reading, or it has writes or a shutdown in flight. So after a
/// failed connect, after the end of the stream or a read error (reading stops by itself),
/// or after `read_stop` with nothing queued, an unclosed stream no longer holds the loop:
/// `run` returns once nothing else is left. The stream stays open until it is closed; close
/// it to free its socket.
///
/// `close` is abrupt, as in libuv: queued writes are cancelled, and if unread input remains
/// the kernel answers with a reset, which can discard data the peer has not received yet.
/// To end a connection gracefully, [`shutdown`](TcpStream::shutdown) first, read until the
/// end of the stream, then close.
///
/// ```no_run
/// use evloop::{Loop, RunMode, TcpStream};
///
/// let mut lp = Loop::new()?;
/// TcpStream::connect(&mut lp, "127.0.0.1:7000", |lp, stream, result| {
///     if result.is_err() {
///         return; // refused, unreachable: the error says which
///     }
///     stream.write(lp, b"hello\n").unwrap();
///     stream
///         .read_start(lp, |lp, stream, data| match data {
///             Ok(bytes) if !bytes.is_empty() => println!("got {bytes:?}"),
///             _ => stream.close(lp).unwrap(), // end of stream, or an error
///         })
///         .unwrap();
/// })?;
/// lp.run(RunMode::Default)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct TcpStream {
    handle: Handle,
}

common_handle_methods!(TcpStream, TcpStream);
stream_methods!(TcpStream, TcpStream);

impl TcpStream {
    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay<S>(&self, lp: &mut Loop<S>, on: bool) -> io::Result<()> {
        let sock = lp.stream_usable(self.handle, Self::STREAM_KIND)?.sock;
        lp.driver.set_nodelay(sock, on)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay<S>(&self, lp: &Loop<S>) -> io::Result<bool> {
        lp.driver.nodelay(lp.stream_socket(self.handle, Self::STREAM_KIND)?)
    }

    /// Turns TCP keep-alive on, with `idle` before the first probe, or off with `None`.
    pub fn set_keepalive<S>(&self, lp: &mut Loop<S>, idle: Option<Duration>) -> io::Result<()> {
        let sock = lp.stream_usable(self.handle, Self::STREAM_KIND)?.sock;
        lp.driver.set_keepalive(sock, idle)
    }

    /// The address of the peer.
    pub fn peer_addr<S>(&self, lp: &Loop<S>) -> io::Result<SocketAddr> {
        ip_addr(lp.driver.peer_addr(lp.stream_socket(self.handle, Self::STREAM_KIND)?)?)
    }

    /// The local address of the connection.
    pub fn local_addr<S>(&self, lp: &Loop<S>) -> io::Result<SocketAddr> {
        ip_addr(lp.driver.local_addr(lp.stream_socket(self.handle, Self::STREAM_KIND)?)?)
    }
}

/// A listening TCP socket that accepts connections and hands each to a callback (Node's
/// `net.createServer`, libuv's `uv_listen`). Stop listening by closing it.
///
/// ```
/// use evloop::{Loop, RunMode, TcpListener, TcpStream};
///
/// let mut lp = Loop::new()?;
/// // An echo server on a free port.
/// let server = TcpListener::bind(&mut lp, "127.0.0.1:0", |lp, stream| {
///     stream
///         .read_start(lp, |lp, stream, data| match data {
///             Ok(bytes) if !bytes.is_empty() => {
///                 stream.write(lp, bytes).unwrap();
///             }
///             // End of stream: send FIN once the queued echoes have gone, then close.
///             // (`close` at once would cancel writes still queued.)
///             Ok(_) => stream.shutdown(lp, move |lp, _| stream.close(lp).unwrap()).unwrap(),
///             Err(_) => stream.close(lp).unwrap(),
///         })
///         .unwrap();
/// })?;
/// let addr = server.local_addr(&lp)?;
///
/// // A client: send, check the echo, close everything.
/// TcpStream::connect(&mut lp, addr, move |lp, client, result| {
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
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct TcpListener {
    handle: Handle,
}

common_handle_methods!(TcpListener, TcpListener);

impl TcpListener {
    pub(crate) fn from_handle(handle: Handle) -> TcpListener {
        TcpListener { handle }
    }
}

impl TcpListener {
    /// Binds to `addr` with the default [`ListenOptions`] and starts accepting; each new
    /// connection is handed to `on_connection`. Bind to port 0 for a free port and read it
    /// back with [`local_addr`](TcpListener::local_addr). For other options (backlog,
    /// `SO_REUSEPORT`, ...) use [`ListenOptions::bind`].
    ///
    /// `addr` is anything [`ToSocketAddrs`] takes, as for std's `TcpListener::bind`: a
    /// `SocketAddr`, `"127.0.0.1:8080"`, `("::1", 0)`, `"localhost:8080"`. Each address it
    /// yields is tried in turn until one binds. A host name is resolved by the system's
    /// resolver inside this call, which blocks the loop thread meanwhile (as std does); from
    /// a callback, prefer an IP address.
    pub fn bind<S>(
        lp: &mut Loop<S>,
        addr: impl ToSocketAddrs,
        on_connection: impl FnMut(&mut Loop<S>, TcpStream) + 'static,
    ) -> io::Result<TcpListener> {
        ListenOptions::default().bind(lp, addr, on_connection)
    }

    /// The address the listener is bound to.
    pub fn local_addr<S>(&self, lp: &Loop<S>) -> io::Result<SocketAddr> {
        ip_addr(lp.driver.local_addr(lp.listener_socket(self.handle, HandleKind::TcpListener)?)?)
    }
}

impl ListenOptions {
    /// Binds a [`TcpListener`] to `addr` with these options and starts accepting (the way
    /// std's `OpenOptions::open` opens a file); `addr` as for [`TcpListener::bind`].
    ///
    /// ```
    /// use evloop::{ListenOptions, Loop};
    ///
    /// let mut lp = Loop::new()?;
    /// let listener = ListenOptions::new().backlog(128).reuse_port(true).bind(&mut lp, "127.0.0.1:0", |lp, stream| {
    ///     stream.close(lp).unwrap();
    /// })?;
    /// assert_ne!(listener.local_addr(&lp)?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind<S>(
        &self,
        lp: &mut Loop<S>,
        addr: impl ToSocketAddrs,
        on_connection: impl FnMut(&mut Loop<S>, TcpStream) + 'static,
    ) -> io::Result<TcpListener> {
        let mut last_error = None;
        for addr in addr.to_socket_addrs()? {
            match lp.driver.listen(&addr.into(), self) {
                Ok(sock) => {
                    let on_connection = connection_callback(on_connection, TcpStream::from_handle);
                    let handle = lp.open_listener(sock, HandleKind::TcpListener, on_connection);
                    return Ok(TcpListener { handle });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| misuse("evloop: the address resolved to nothing to bind")))
    }
}

/// A TCP socket's address as std's type (a TCP socket always has one).
fn ip_addr(addr: SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket().ok_or_else(|| misuse("evloop: not an IP socket address"))
}
