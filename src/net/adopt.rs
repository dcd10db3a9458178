//! Adopted sockets, for every socket type (the TCP types' methods are here, the Unix ones'
//! in `unix.rs`, all on the loop's side below): std sockets taken over by a loop (asyncio's `connect_accepted_socket`,
//! systemd socket activation) and handed back (to move a connection to another loop).
//!
//! Adopting makes the socket non-blocking (std already opens sockets close-on-exec);
//! handing back deregisters it from the poller and makes it blocking again, as std opens
//! sockets. Nothing is buffered in user space on either side: input the loop has not read
//! stays in the kernel, so a connection moves between loops without losing a byte.

use std::io;
use std::net;

use socket2::Socket;

use super::listener::{connection_callback, ConnectionCallback};
use super::stream::NO_SOCKET;
use super::tcp::{TcpListener, TcpStream};
use crate::event_loop::Loop;
use crate::handle::{Extra, Handle, HandleKind};

impl TcpListener {
    /// Takes over a listening std socket (bound and listening already, for instance
    /// inherited through systemd socket activation) and accepts on it from now on, exactly
    /// as a listener from [`bind`](TcpListener::bind): each connection goes to
    /// `on_connection`. The socket becomes non-blocking.
    ///
    /// Fails with `InvalidInput` if the socket is not listening (checked with
    /// `SO_ACCEPTCONN` on Linux, Android and FreeBSD; elsewhere it is not checked and such a
    /// listener simply never accepts), and with `Unsupported` on a simulated loop
    /// ([`sim::Sim`](crate::sim::Sim)), which has no operating-system sockets.
    ///
    /// ```
    /// use std::io::Write;
    /// use evloop::{Loop, RunMode, TcpListener};
    ///
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = std_listener.local_addr()?;
    /// let mut lp = Loop::new()?;
    /// TcpListener::from_std(&mut lp, std_listener, |lp, stream| {
    ///     stream.read_start(lp, |lp, stream, data| {
    ///         assert_eq!(data.unwrap(), b"hi");
    ///         stream.close(lp).unwrap();
    ///         lp.stop();
    ///     }).unwrap();
    /// })?;
    /// std::net::TcpStream::connect(addr)?.write_all(b"hi")?;
    /// lp.run(RunMode::Default)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std<S>(
        lp: &mut Loop<S>,
        listener: net::TcpListener,
        on_connection: impl FnMut(&mut Loop<S>, TcpStream) + 'static,
    ) -> io::Result<TcpListener> {
        let on_connection = connection_callback(on_connection, TcpStream::from_handle);
        let handle = lp.adopt_listener(listener.into(), HandleKind::TcpListener, on_connection)?;
        Ok(TcpListener::from_handle(handle))
    }

    /// Closes the listener and hands its socket back, still bound and listening, out of the
    /// loop's poller and **blocking** again (std's default mode). The handle is closed as
    /// by [`close`](TcpListener::close), its callback dropped; connections not yet accepted
    /// stay in the kernel's backlog for whoever accepts next.
    ///
    /// Fails, leaving the listener open, if the handle is closed or closing, or with
    /// `Unsupported` on a simulated loop.
    ///
    /// ```
    /// use evloop::{Loop, TcpListener};
    ///
    /// let mut lp = Loop::new()?;
    /// let listener = TcpListener::bind(&mut lp, "127.0.0.1:0", |_, _| {})?;
    /// let addr = listener.local_addr(&lp)?;
    /// let std_listener = listener.into_std(&mut lp)?;
    /// assert_eq!(std_listener.local_addr()?, addr);
    /// assert!(listener.is_closing(&lp));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std<S>(self, lp: &mut Loop<S>) -> io::Result<net::TcpListener> {
        Ok(lp.release_listener(self.handle(), HandleKind::TcpListener)?.into())
    }
}

impl TcpStream {
    /// Takes over a connected std stream (one a std listener accepted, or one another loop
    /// handed back with [`into_std`](TcpStream::into_std)); from now on it is a stream
    /// like any other: [`read_start`](TcpStream::read_start), [`write`](TcpStream::write),
    /// [`shutdown`](TcpStream::shutdown)... The socket becomes non-blocking. Input already
    /// in the kernel is read once reading starts.
    ///
    /// Fails with `NotConnected` if the socket is not connected (its peer address says so),
    /// and with `Unsupported` on a simulated loop ([`sim::Sim`](crate::sim::Sim)).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use evloop::{Loop, RunMode, TcpStream};
    ///
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let mut client = std::net::TcpStream::connect(std_listener.local_addr()?)?;
    /// let (accepted, _) = std_listener.accept()?;
    ///
    /// let mut lp = Loop::new()?;
    /// let stream = TcpStream::from_std(&mut lp, accepted)?;
    /// stream.write(&mut lp, b"hello")?;
    /// stream.shutdown(&mut lp, move |lp, _| stream.close(lp).unwrap())?;
    /// lp.run(RunMode::Default)?;
    ///
    /// let mut got = String::new();
    /// client.read_to_string(&mut got)?;
    /// assert_eq!(got, "hello");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std<S>(lp: &mut Loop<S>, stream: net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream::from_handle(lp.adopt_stream(stream.into(), HandleKind::TcpStream)?))
    }

    /// Closes the stream and hands its socket back, connected, out of the loop's poller and
    /// **blocking** again (std's default mode), for another loop's
    /// [`from_std`](TcpStream::from_std) or for blocking code. The handle is closed as by
    /// [`close`](TcpStream::close) (its callbacks dropped, freed in the close phase), but the
    /// connection stays up: input the loop has not read stays in the kernel and is not lost.
    ///
    /// Refused with `InvalidInput`, leaving the stream as it was, while data could be lost:
    /// writes are queued, or a connect or a shutdown is in flight (the message says which);
    /// wait for their callbacks (or [`on_drain`](TcpStream::on_drain)) and try again. A
    /// shutdown already sent is no obstacle: the socket comes back half-closed, and the
    /// shutdown's callback runs in the close phase. Also
    /// fails if the handle is closed or closing, and with `Unsupported` on a simulated loop.
    ///
    /// ```
    /// use std::io::Write;
    /// use evloop::{Loop, RunMode, TcpStream};
    ///
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let mut client = std::net::TcpStream::connect(std_listener.local_addr()?)?;
    /// let (accepted, _) = std_listener.accept()?;
    /// client.write_all(b"still there")?;
    ///
    /// let mut lp = Loop::new()?;
    /// let stream = TcpStream::from_std(&mut lp, accepted)?;
    /// let back = stream.into_std(&mut lp)?; // nothing was read: the bytes wait in the kernel
    /// lp.run(RunMode::Default)?; // frees the handle
    ///
    /// let mut lp2 = Loop::new()?;
    /// let moved = TcpStream::from_std(&mut lp2, back)?;
    /// moved.read_start(&mut lp2, |lp, stream, data| {
    ///     assert_eq!(data.unwrap(), b"still there");
    ///     stream.close(lp).unwrap();
    /// })?;
    /// lp2.run(RunMode::Default)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std<S>(self, lp: &mut Loop<S>) -> io::Result<net::TcpStream> {
        Ok(lp.release_stream(self.handle(), HandleKind::TcpStream)?.into())
    }
}

/// The loop's side, shared by every socket type's `from_std` / `into_std`.
impl<S> Loop<S> {
    /// Takes over a listening socket as a listener of `kind`.
    pub(super) fn adopt_listener(
        &mut self,
        socket: Socket,
        kind: HandleKind,
        on_connection: ConnectionCallback<S>,
    ) -> io::Result<Handle> {
        let sock = self.driver.adopt_listener(socket)?;
        Ok(self.open_listener(sock, kind, on_connection))
    }

    /// Closes a listener of `kind` and hands its socket back (see `TcpListener::into_std`).
    pub(super) fn release_listener(&mut self, h: Handle, kind: HandleKind) -> io::Result<Socket> {
        let socket = self.driver.release_listener(self.listener_socket(h, kind)?)?;
        if let Ok(l) = self.handles.state_mut(h, kind, Extra::listener_mut) {
            l.sock = NO_SOCKET;
        }
        self.close_handle(h, Some(kind), None)?;
        Ok(socket)
    }

    /// Takes over a connected socket as a stream of `kind`.
    pub(super) fn adopt_stream(&mut self, socket: Socket, kind: HandleKind) -> io::Result<Handle> {
        let sock = self.driver.adopt_stream(socket)?;
        Ok(self.open_stream(sock, kind))
    }

    /// Closes a stream of `kind` and hands its socket back, unless data could be lost (see
    /// `TcpStream::into_std`).
    pub(super) fn release_stream(&mut self, h: Handle, kind: HandleKind) -> io::Result<Socket> {
        let st = self.stream_usable(h, kind)?;
        let busy = if st.connecting() {
            Some("a connect is in flight")
        } else if st.shutdown_requested() {
            Some("a shutdown is in flight")
        } else if !st.queue.is_empty() {
            Some("writes are queued")
        } else {
            None
        };
        if let Some(why) = busy {
            let msg = format!("evloop: cannot hand the stream back while {why}");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        let sock = st.sock;
        let socket = self.driver.release_stream(sock)?;
        if let Some(st) = self.stream_state(h) {
            st.sock = NO_SOCKET;
        }
        self.close_handle(h, Some(kind), None)?;
        Ok(socket)
    }
}
