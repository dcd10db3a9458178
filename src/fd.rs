//! Fd watchers (libuv's `uv_poll_t`, asyncio's `add_reader` / `add_writer`, calloop's
//! `Generic`): readiness of a descriptor the program owns.
//!
//! The watcher registers a duplicate of the descriptor (`try_clone_to_owned`, `dup` with
//! `FD_CLOEXEC`), which the driver owns and closes when the watcher closes: the loop never
//! closes a descriptor it does not own. The duplicate is registered level-triggered on every
//! backend (the epoll backend registers its own sockets edge-triggered), so a callback that
//! does not drain the descriptor is called again by the next iteration, and the loop never
//! owes itself readiness for a watcher.

use std::io;
use std::os::fd::AsFd;

use crate::driver::{FdInterest, Readiness, SocketId};
use crate::error::misuse;
use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Extra, Handle, HandleKind};

/// What a watcher's descriptor is ready for, handed to its callback.
///
/// Only what the watcher asked for is reported, except [`is_hangup`](FdEvents::is_hangup),
/// which is reported whatever the interest (as epoll reports `EPOLLHUP` and `EPOLLERR`). On
/// a hang-up or error, the descriptor also reports readable and writable where asked for, as
/// a read or write would not block (it returns the end, or the error).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct FdEvents {
    readable: bool,
    writable: bool,
    priority: bool,
    hangup: bool,
}

impl FdEvents {
    /// A read would not block: data, the end of it, or an error to read.
    pub fn is_readable(self) -> bool {
        self.readable
    }

    /// A write would not block.
    pub fn is_writable(self) -> bool {
        self.writable
    }

    /// Urgent data is there ([`FdInterest::PRIORITY`]).
    pub fn is_priority(self) -> bool {
        self.priority
    }

    /// The descriptor hung up or failed (`EPOLLHUP` or `EPOLLERR`): the peer closed (both
    /// directions are shut down), or an error is pending (for a socket, `take_error` reads
    /// it). A peer that only shut down its writing side (a TCP half-close) shows as
    /// readable, the read returning the end, on both backends. Level-triggered, a hang-up is
    /// reported by every iteration until the watcher stops or closes.
    pub fn is_hangup(self) -> bool {
        self.hangup
    }
}

/// The loop's side of one watcher.
pub(crate) struct FdState {
    /// The driver's id of the duplicate.
    id: SocketId,
    interest: FdInterest,
    /// What the next call of the callback reports.
    events: FdEvents,
}

/// Watches a descriptor the program owns for readiness: readable, writable, urgent data, and
/// hang-up (libuv's `uv_poll_t`, asyncio's `add_reader` / `add_writer`).
///
/// - **The descriptor stays the program's.** [`new`](FdWatcher::new) registers a duplicate
///   (`dup`), which the loop owns and closes when the watcher closes; the program's own
///   descriptor is never closed by the loop and stays usable after the watcher is gone.
///   The watcher follows the *open file description*, not the program's descriptor
///   number: closing the program's descriptor does not stop the watcher (close the watcher
///   first), and a descriptor opened later under the same number is not watched.
/// - **Level-triggered.** The callback is called on every iteration while the descriptor is
///   ready for what the watcher asks, so a callback need not drain it; a watcher with
///   nothing ready costs nothing. A hang-up is reported on every iteration too: stop or
///   close the watcher once it is seen.
/// - **Keeps the loop alive while started** (and referenced), as libuv's `uv_poll_t`;
///   stopped, unreferenced or closed, it does not.
/// - Regular files and directories cannot be watched (they are always ready, and epoll
///   refuses them): `new` fails with [`InvalidInput`](io::ErrorKind::InvalidInput), whose
///   message says so. The caller's mistake, not the system's, hence that kind.
/// - Start again to change the interest; [`stop`](FdWatcher::stop) takes the descriptor out
///   of the poller.
/// - On a [`Sim`](crate::sim::Sim), only [fake descriptors](crate::sim::Sim::fake_fd) can be
///   watched; the test sets their readiness.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use evloop::{FdInterest, FdWatcher, Loop, RunMode};
///
/// let (mut ours, mut theirs) = UnixStream::pair()?;
/// ours.set_nonblocking(true)?;
/// let mut lp = Loop::with_state(Vec::new())?;
/// let mut reader = ours.try_clone()?;
/// let watcher = FdWatcher::new(&mut lp, &ours, move |lp, watcher, events| {
///     assert!(events.is_readable());
///     let mut buf = [0; 64];
///     let n = reader.read(&mut buf).unwrap();
///     lp.state.extend_from_slice(&buf[..n]);
///     watcher.close(lp).unwrap();
/// })?;
/// watcher.start(&mut lp, FdInterest::READABLE)?;
/// theirs.write_all(b"hello")?;
/// lp.run(RunMode::Default)?;
/// assert_eq!(lp.state, b"hello");
///
/// // The watcher closed its duplicate; our descriptor is still open.
/// ours.write_all(b"still here")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct FdWatcher {
    handle: Handle,
}

common_handle_methods!(FdWatcher, FdWatcher);

impl FdWatcher {
    /// Opens a watcher of `fd`, stopped: it watches a duplicate of `fd`, which it owns, so
    /// `fd` stays the caller's (see [`FdWatcher`]). `callback` runs on the loop, once per
    /// iteration while the descriptor is ready for what [`start`](FdWatcher::start) asked.
    ///
    /// Fails if the descriptor cannot be duplicated (`EMFILE`), or is a regular file or a
    /// directory (`InvalidInput`: they cannot be watched).
    pub fn new<S>(
        lp: &mut Loop<S>,
        fd: &impl AsFd,
        mut callback: impl FnMut(&mut Loop<S>, FdWatcher, FdEvents) + 'static,
    ) -> io::Result<FdWatcher> {
        let dup = fd.as_fd().try_clone_to_owned()?;
        let id = lp.driver.fd_open(dup)?;
        let state = FdState { id, interest: FdInterest::NONE, events: FdEvents::default() };
        // The callback needs the id, which exists only once the slot does.
        let handle = lp.open_handle(HandleKind::FdWatcher, Box::new(|_, _| {}), Extra::Fd(state));
        let watcher = FdWatcher { handle };
        let wrapped = move |lp: &mut Loop<S>, h: Handle| {
            let events = lp.fd_state(h).map(|st| st.events).unwrap_or_default();
            callback(lp, watcher, events);
        };
        if let Some(body) = lp.handles.get_mut(handle) {
            body.callback = Some(Box::new(wrapped));
        }
        Ok(watcher)
    }

    /// Starts watching for `interest` (`FdInterest::READABLE | FdInterest::WRITABLE`, ...),
    /// or changes what a started watcher watches for. The descriptor enters the poller at
    /// once, so an error (the poller refusing it) comes back from this call.
    ///
    /// An empty interest is refused (`InvalidInput`): [`stop`](FdWatcher::stop) is the way
    /// to watch for nothing.
    pub fn start<S>(&self, lp: &mut Loop<S>, interest: FdInterest) -> io::Result<()> {
        let h = self.handle;
        let st = lp.handles.state_mut(h, HandleKind::FdWatcher, Extra::fd_mut)?;
        if interest.is_empty() {
            return Err(misuse("evloop: an fd watcher started with an empty interest; stop it instead"));
        }
        let id = st.id;
        lp.driver.fd_set_interest(id, h.to_key(), interest)?;
        if let Some(st) = lp.fd_state(h) {
            st.interest = interest;
        }
        lp.handles.update(h, |b| b.active = true);
        Ok(())
    }

    /// Stops watching: the descriptor leaves the poller and the callback is not called
    /// again until the next [`start`](FdWatcher::start). Stopping a stopped watcher does
    /// nothing.
    pub fn stop<S>(&self, lp: &mut Loop<S>) -> io::Result<()> {
        let h = self.handle;
        let id = lp.handles.state_mut(h, HandleKind::FdWatcher, Extra::fd_mut)?.id;
        lp.driver.fd_set_interest(id, h.to_key(), FdInterest::NONE)?;
        if let Some(st) = lp.fd_state(h) {
            st.interest = FdInterest::NONE;
        }
        lp.handles.update(h, |b| b.active = false);
        Ok(())
    }

    /// What the watcher watches for: [`FdInterest::NONE`] while stopped.
    pub fn interest<S>(&self, lp: &Loop<S>) -> io::Result<FdInterest> {
        Ok(lp.handles.state(self.handle, HandleKind::FdWatcher, Extra::fd)?.interest)
    }
}

impl<S> Extra<S> {
    fn fd(&self) -> Option<&FdState> {
        match self {
            Extra::Fd(st) => Some(st),
            _ => None,
        }
    }

    fn fd_mut(&mut self) -> Option<&mut FdState> {
        match self {
            Extra::Fd(st) => Some(st),
            _ => None,
        }
    }
}

impl<S> Loop<S> {
    /// The state of an open (or closing) watcher.
    fn fd_state(&mut self, h: Handle) -> Option<&mut FdState> {
        self.handles.get_mut(h).and_then(|b| b.extra.fd_mut())
    }

    /// Calls a watcher's callback with what the poll found, within what it watches for.
    pub(crate) fn fd_ready(&mut self, h: Handle, r: &Readiness) {
        let Some(st) = self.fd_state(h) else { return };
        let i = st.interest;
        if i.is_empty() {
            // Stopped by a callback earlier in this batch.
            return;
        }
        let events = FdEvents {
            readable: r.readable && i.readable,
            writable: r.writable && i.writable,
            priority: r.priority && i.priority,
            hangup: r.disconnect,
        };
        if events == FdEvents::default() {
            return;
        }
        st.events = events;
        self.dispatch(h);
    }

    /// Closes a watcher's duplicate at once; the program's descriptor is untouched.
    pub(crate) fn close_fd_watcher(&mut self, h: Handle) {
        if let Some(st) = self.fd_state(h) {
            st.interest = FdInterest::NONE;
            let id = st.id;
            self.driver.fd_close(id);
        }
    }
}
