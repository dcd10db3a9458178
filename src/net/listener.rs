//! TCP listeners: accept for the user, Node's `net.createServer` style.
//!
//! Running out of file descriptors (EMFILE, ENFILE) must neither spin the loop nor kill the
//! listener. libuv sheds the waiting connection with a reserved descriptor; evloop instead
//! stops accepting for a back-off period (10 ms, doubling up to 1 s) and tries again, so the
//! waiting clients stay in the backlog and are served once descriptors come back. Each
//! episode is logged once, at warn level, and its end at info level.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::stream::TcpStream;
use super::ListenOptions;
use crate::driver::{Interest, Readiness, SocketId};
use crate::error::misuse;
use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Extra, Handle, HandleKind};
use crate::timer::Timer;

/// Connections accepted per wakeup at most, so a connection storm cannot starve the rest.
const MAX_ACCEPTS_PER_WAKEUP: usize = 128;
const BACKOFF_START_MS: u64 = 10;
const BACKOFF_MAX_MS: u64 = 1000;

pub(super) type ConnectionCallback<S> = Box<dyn FnMut(&mut Loop<S>, TcpStream)>;

pub(crate) struct ListenerState<S> {
    pub(crate) sock: SocketId,
    on_connection: Option<ConnectionCallback<S>>,
    /// Accepting is paused after EMFILE / ENFILE until the back-off timer fires.
    paused: bool,
    backoff_ms: u64,
    /// The back-off timer, opened when an episode of exhaustion starts and closed when it
    /// ends (the first accept that succeeds) or with the listener.
    backoff: Option<Timer>,
    pub(crate) interest_dirty: bool,
}

impl<S> ListenerState<S> {
    pub(crate) fn interest(&self) -> Interest {
        Interest { readable: !self.paused, writable: false }
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
        let sock = lp.handles.state(self.handle, HandleKind::TcpListener, Extra::listener)?.sock;
        lp.driver.local_addr(sock)
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
            match lp.driver.tcp_listen(addr, self) {
                Ok(sock) => return Ok(lp.open_listener(sock, Box::new(on_connection))),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| misuse("evloop: the address resolved to nothing to bind")))
    }
}

impl<S> Loop<S> {
    pub(super) fn open_listener(
        &mut self,
        sock: SocketId,
        on_connection: ConnectionCallback<S>,
    ) -> TcpListener {
        let state = ListenerState {
            sock,
            on_connection: Some(on_connection),
            paused: false,
            backoff_ms: BACKOFF_START_MS,
            backoff: None,
            interest_dirty: false,
        };
        let handle =
            self.open_handle(HandleKind::TcpListener, Box::new(|_, _| {}), Extra::Listener(Box::new(state)));
        self.handles.update(handle, |b| b.active = true);
        self.mark_interest(handle);
        TcpListener { handle }
    }
}

impl<S> Loop<S> {
    fn listener_state(&mut self, h: Handle) -> io::Result<&mut ListenerState<S>> {
        self.handles.state_mut(h, HandleKind::TcpListener, Extra::listener_mut)
    }

    pub(crate) fn listener_ready(&mut self, h: Handle) {
        for _ in 0..MAX_ACCEPTS_PER_WAKEUP {
            let Ok(l) = self.listener_state(h) else { return };
            if l.paused {
                return;
            }
            let sock = l.sock;
            match self.driver.tcp_accept(sock) {
                Ok(stream_sock) => {
                    self.end_backoff_episode(h);
                    let stream = TcpStream::from_handle(self.open_stream(stream_sock));
                    log::trace!("{h:?}: accepted {stream:?}");
                    self.call_slot(
                        h,
                        |extra| match extra {
                            Extra::Listener(l) => Some(&mut l.on_connection),
                            _ => None,
                        },
                        |lp, cb| cb(lp, stream),
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_fd_exhaustion(&e) => {
                    self.pause_accepting(h, e);
                    return;
                }
                // EINTR: try again. Anything else concerns that one connection, not the
                // listener (ECONNABORTED: the peer gave up before it was accepted; EPROTO,
                // ENOBUFS, ...): skip it and go on accepting, as libuv and Node do.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => log::debug!("{h:?}: accept failed, connection skipped: {e}"),
            }
        }
        // The cap was reached with connections possibly still queued, which an edge-triggered
        // poller will not report again: come back after the other handles.
        self.net.again.push(Readiness::again(h.to_key()));
    }

    fn pause_accepting(&mut self, h: Handle, e: io::Error) {
        let Ok(l) = self.listener_state(h) else { return };
        let delay = l.backoff_ms;
        if delay == BACKOFF_START_MS {
            log::warn!("{h:?}: cannot accept ({e}); pausing accepts until descriptors are free");
        }
        l.paused = true;
        l.backoff_ms = (delay * 2).min(BACKOFF_MAX_MS);
        let existing = l.backoff;
        let timer = match existing {
            Some(t) if !t.is_closing(self) => t,
            _ => {
                let t = Timer::new(self, move |lp, _| lp.resume_accepting(h));
                if let Some(b) = self.handles.get_mut(t.into()) {
                    b.internal = true;
                }
                // The listener keeps the loop alive; its back-off timer must not.
                let _ = t.unref(self);
                if let Ok(l) = self.listener_state(h) {
                    l.backoff = Some(t);
                }
                t
            }
        };
        let _ = timer.start(self, Duration::from_millis(delay), Duration::ZERO);
        self.mark_interest(h);
    }

    /// After an accept succeeds: if accepting had been paused, the episode is over. Resets
    /// the back-off and closes its timer, so that no handle outlives the episode (the next
    /// episode opens a fresh one).
    fn end_backoff_episode(&mut self, h: Handle) {
        let Ok(l) = self.listener_state(h) else { return };
        if l.backoff_ms == BACKOFF_START_MS {
            return;
        }
        log::info!("{h:?}: accepting again: file descriptors are available");
        l.backoff_ms = BACKOFF_START_MS;
        if let Some(t) = l.backoff.take() {
            // It has fired (accepting resumes only from its callback) and is not running.
            let _ = t.close(self);
        }
    }

    fn resume_accepting(&mut self, h: Handle) {
        if let Ok(l) = self.listener_state(h) {
            l.paused = false;
            self.mark_interest(h);
        }
    }

    /// Closes the listening socket and its back-off timer.
    pub(crate) fn close_listener(&mut self, h: Handle) {
        let Ok(l) = self.listener_state(h) else { return };
        let (sock, backoff) = (l.sock, l.backoff.take());
        self.driver.close(sock);
        if let Some(t) = backoff {
            let _ = t.close(self);
        }
    }
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: the process or system is out of a resource that
/// closing connections gives back.
fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}
