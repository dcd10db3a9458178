//! Connecting, for every stream type: addresses tried in turn until one connects; for TCP,
//! also a name resolved on the pool first.

use std::io;

use socket2::SockAddr;

use super::addr::{ConnectAddr, ToConnectAddr};
use super::stream::NO_SOCKET;
use super::tcp::TcpStream;
use super::{Completion, Done};
use crate::error::copy_error;
use crate::event_loop::Loop;
use crate::handle::{Handle, HandleKind};

impl TcpStream {
    /// Connects to `addr`: a `SocketAddr`, or a `"host:port"` string resolved first on the
    /// thread pool (its addresses are tried in order until one connects). `on_connect` runs
    /// once, from the loop, with the outcome: `Ok`, or the error (refused, unreachable, a
    /// failed lookup, ...). Writes and a shutdown may be issued before the
    /// connection is up; they are queued. Closing the stream while it connects cancels the
    /// connect: `on_connect` gets a [`Cancelled`](crate::Cancelled) error.
    ///
    /// Returns an error only if `addr` is malformed or no socket could be created (for
    /// instance, out of file descriptors).
    pub fn connect<S>(
        lp: &mut Loop<S>,
        addr: impl ToConnectAddr,
        on_connect: impl FnOnce(&mut Loop<S>, TcpStream, io::Result<()>) + 'static,
    ) -> io::Result<TcpStream> {
        let target = addr.to_connect_addr()?;
        let make_callback = |h| -> Completion<S> {
            Box::new(move |lp, result| on_connect(lp, TcpStream::from_handle(h), result))
        };
        let h = lp.stream_connect(HandleKind::TcpStream, make_callback, move |lp, h| match target {
            ConnectAddr::Socket(addr) => lp.connect_next(h, vec![addr.into()]),
            ConnectAddr::Host(host, port) => crate::dns::resolve(lp, &host, port, move |lp, addrs| {
                if lp.stream_state(h).is_none_or(|st| !st.connecting()) {
                    return; // closed while resolving: the close phase cancelled it
                }
                let addrs = addrs.map(|addrs| addrs.into_iter().map(SockAddr::from).collect());
                if let Err(e) = addrs.and_then(|addrs| lp.connect_next(h, addrs)) {
                    lp.connect_failed(h, e);
                }
            })
            .map(drop),
        })?;
        Ok(TcpStream::from_handle(h))
    }
}

impl<S> Loop<S> {
    /// Opens a stream of `kind` that connects: `make_callback` wraps the user's callback
    /// for the new handle, and `start` begins (resolving, or the first attempt). If `start`
    /// fails, nothing started (no socket, no worker): the call fails, and the handle goes
    /// without calling back.
    pub(crate) fn stream_connect(
        &mut self,
        kind: HandleKind,
        make_callback: impl FnOnce(Handle) -> Completion<S>,
        start: impl FnOnce(&mut Self, Handle) -> io::Result<()>,
    ) -> io::Result<Handle> {
        let h = self.open_stream(NO_SOCKET, kind);
        let callback = make_callback(h);
        self.with_stream(h, |st| st.cold().connect = Some(callback));
        self.refresh_activity(h);
        self.net.requests += 1;
        if let Err(e) = start(self, h) {
            if let Some(st) = self.stream_state(h) {
                st.cold().connect = None;
                self.net.requests -= 1;
            }
            let _ = self.close_handle(h, None, None);
            return Err(e);
        }
        Ok(h)
    }
}

impl<S> Loop<S> {
    /// Starts connecting to the first of `addrs`, keeping the rest to fall back on. Fails
    /// only if no socket could be created for any of them.
    pub(crate) fn connect_next(&mut self, h: Handle, mut addrs: Vec<SockAddr>) -> io::Result<()> {
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "evloop: no address to connect to");
        while !addrs.is_empty() {
            let addr = addrs.remove(0);
            let (sock, outcome) = match self.driver.connect(&addr) {
                Ok(started) => started,
                Err(e) => {
                    last_error = e;
                    continue;
                }
            };
            let Some(st) = self.stream_state(h) else {
                self.driver.close(sock);
                return Ok(());
            };
            st.sock = sock;
            st.cold().fallback = addrs;
            self.mark_interest(h);
            match outcome {
                // Done at once (a Unix socket always is, where a listener takes it): still
                // finished by the loop, once the socket reports writable, as an unfinished
                // connect is, so that the connect is in flight until then whatever the
                // socket type (closing before then cancels it, on both drivers).
                Ok(_) => {}
                Err(e) => self.connect_failed(h, e),
            }
            return Ok(());
        }
        Err(last_error)
    }

    /// The socket reported writable: the connect finished, one way or the other.
    pub(crate) fn finish_connect(&mut self, h: Handle) {
        let Some(st) = self.stream_state(h) else { return };
        let sock = st.sock;
        match self.driver.connect_result(sock) {
            Ok(()) => self.connected(h),
            Err(e) => self.connect_failed(h, e),
        }
    }

    pub(crate) fn connected(&mut self, h: Handle) {
        let Some(callback) = self.stream_state(h).and_then(|st| st.cold().connect.take()) else { return };
        self.net.requests -= 1;
        self.push_done(h, Done::Completion(callback, Ok(())));
        self.mark_interest(h);
        // Writes and a shutdown issued while connecting go out now.
        if self.stream_state(h).is_some_and(|st| !st.queue.is_empty()) {
            self.flush_writes(h);
        } else {
            self.send_shutdown(h);
        }
    }

    /// A connect attempt failed: try the next address, or report the error.
    pub(crate) fn connect_failed(&mut self, h: Handle, e: io::Error) {
        let Some(st) = self.stream_state(h) else { return };
        if !st.cold().fallback.is_empty() {
            log::debug!("{h:?}: connect failed ({e}), trying the next address");
            let (sock, fallback) = (st.sock, std::mem::take(&mut st.cold().fallback));
            st.sock = NO_SOCKET;
            self.driver.close(sock);
            if let Err(e) = self.connect_next(h, fallback) {
                self.connect_failed(h, e);
            }
            return;
        }
        let Some(callback) = st.cold().connect.take() else { return };
        self.net.requests -= 1;
        let copy = copy_error(&e);
        self.push_done(h, Done::Completion(callback, Err(e)));
        self.mark_interest(h);
        self.fail_writes(h, copy, None);
    }
}
