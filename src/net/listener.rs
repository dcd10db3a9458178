//! The listener core that TCP and Unix domain listeners share: accept for the user, Node's
//! `net.createServer` style, keyed by [`Handle`]; the accepted stream gets the kind that
//! matches its listener's (`TcpListener` accepts `TcpStream`s, `UnixListener`
//! `UnixStream`s).
//!
//! Running out of file descriptors (EMFILE, ENFILE) must neither spin the loop nor kill the
//! listener. libuv sheds the waiting connection with a reserved descriptor; evloop instead
//! stops accepting for a back-off period (10 ms, doubling up to 1 s) and tries again, so the
//! waiting clients stay in the backlog and are served once descriptors come back. Each
//! episode is logged once, at warn level, and its end at info level.

use std::io;
use std::time::Duration;

use crate::driver::{Interest, Readiness, SocketId};
use crate::event_loop::Loop;
use crate::handle::{Extra, Handle, HandleKind};
use crate::timer::Timer;

/// Connections accepted per wakeup at most, so a connection storm cannot starve the rest.
const MAX_ACCEPTS_PER_WAKEUP: usize = 128;
const BACKOFF_START_MS: u64 = 10;
const BACKOFF_MAX_MS: u64 = 1000;

/// The callback a listener hands each accepted stream to, handle-erased.
pub(super) type ConnectionCallback<S> = Box<dyn FnMut(&mut Loop<S>, Handle)>;

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

/// Wraps the user's connection callback once, at registration, into the handle-erased one
/// the core stores: it rebuilds the typed stream with `typed`.
pub(super) fn connection_callback<S, T: 'static>(
    mut on_connection: impl FnMut(&mut Loop<S>, T) + 'static,
    typed: fn(Handle) -> T,
) -> ConnectionCallback<S> {
    Box::new(move |lp, h| on_connection(lp, typed(h)))
}

/// The kind of the streams a listener of `kind` accepts.
fn accepted_kind(kind: HandleKind) -> HandleKind {
    match kind {
        HandleKind::UnixListener => HandleKind::UnixStream,
        _ => HandleKind::TcpStream,
    }
}

impl<S> Loop<S> {
    /// Opens a listener of `kind` over a listening socket and starts accepting.
    pub(super) fn open_listener(
        &mut self,
        sock: SocketId,
        kind: HandleKind,
        on_connection: ConnectionCallback<S>,
    ) -> Handle {
        let state = ListenerState {
            sock,
            on_connection: Some(on_connection),
            paused: false,
            backoff_ms: BACKOFF_START_MS,
            backoff: None,
            interest_dirty: false,
        };
        let handle = self.open_handle(kind, Box::new(|_, _| {}), Extra::Listener(Box::new(state)));
        self.handles.update(handle, |b| b.active = true);
        self.mark_interest(handle);
        handle
    }

    /// The socket of a usable listener of `kind`, or the error a user should see.
    pub(super) fn listener_socket(&self, h: Handle, kind: HandleKind) -> io::Result<SocketId> {
        Ok(self.handles.state(h, kind, Extra::listener)?.sock)
    }
}

impl<S> Loop<S> {
    /// The state of an open listener that is not closing.
    fn listener_state(&mut self, h: Handle) -> Option<&mut ListenerState<S>> {
        self.handles.get_mut(h).filter(|b| !b.closing).and_then(|b| b.extra.listener_mut())
    }

    pub(crate) fn listener_ready(&mut self, h: Handle) {
        for _ in 0..MAX_ACCEPTS_PER_WAKEUP {
            let Some(l) = self.listener_state(h) else { return };
            if l.paused {
                return;
            }
            let sock = l.sock;
            match self.driver.accept(sock) {
                Ok(stream_sock) => {
                    self.end_backoff_episode(h);
                    let kind = self.handles.get(h).map_or(HandleKind::TcpListener, |b| b.kind);
                    let stream = self.open_stream(stream_sock, accepted_kind(kind));
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
        let Some(l) = self.listener_state(h) else { return };
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
                if let Some(l) = self.listener_state(h) {
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
        let Some(l) = self.listener_state(h) else { return };
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
        if let Some(l) = self.listener_state(h) {
            l.paused = false;
            self.mark_interest(h);
        }
    }

    /// Closes the listening socket and its back-off timer.
    pub(crate) fn close_listener(&mut self, h: Handle) {
        let Some(l) = self.listener_state(h) else { return };
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
