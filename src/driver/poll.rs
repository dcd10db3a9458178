//! The poller under the real driver: epoll directly (`epoll.rs`, Linux) or the `polling`
//! crate, behind one enum, so that `os.rs` registers, changes and waits the same way on
//! both. Sockets are edge-triggered on epoll and level-triggered on `polling`; fd
//! watchers' descriptors are level-triggered on both (`Reg`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use polling::{Event, PollMode};

use super::{FdInterest, Interest, Readiness};

/// How a descriptor is registered: a socket (edge-triggered on the epoll backend) or an fd
/// watcher's descriptor (level-triggered on both).
#[derive(Copy, Clone)]
pub(super) enum Reg {
    Socket(Interest),
    Fd(FdInterest),
}

/// What the driver waits with.
pub(super) enum Poll {
    /// The portable backend.
    Polling { poller: Arc<polling::Poller>, events: polling::Events },
    /// epoll directly (Linux).
    #[cfg(target_os = "linux")]
    Epoll(super::epoll::Epoll),
}

impl Poll {
    /// Registers `fd` under `key`. Called by [`super::os::OsDriver::set_interest`] and
    /// [`super::os::OsDriver::fd_set_interest`], with the fd of an entry of `OsDriver::sockets`, and by
    /// [`super::os::OsDriver::watch_signals`], with a signal pipe that is never closed.
    pub(super) fn add(&self, fd: BorrowedFd<'_>, key: usize, reg: Reg) -> io::Result<()> {
        match self {
            Poll::Polling { poller, .. } => {
                let event = polling_event(key, reg);
                // SAFETY: `polling` requires that a registered fd be deleted from the poller
                // before it is closed, and the poller may outlive the driver (a `Waker` holds
                // it through the notifier). Four callers. `OsDriver::watch_signals`, with the
                // read end of a signal pipe, which lives in a `static` (`crate::signal`) and
                // is never closed. `OsDriver::set_interest` and `OsDriver::fd_set_interest`,
                // with the fd of an entry of `OsDriver::sockets`, which owns it: a socket, or
                // an fd watcher's duplicate or a child's pidfd (`driver/process.rs`), held as
                // an `OwnedFd` (never the host's own descriptor). An entry leaves that slab on three paths only:
                // `OsDriver::close` (which `OsDriver::fd_close` is) and `OsDriver::release`
                // (which hands the fd back to the program), which delete a registered fd from
                // the poller first, and the drop of the driver, whose `Drop` deletes every
                // registered fd before the fields (the slab) drop. A pipe's descriptor is
                // also dropped in place by `OsDriver::pipe_shutdown`, which deletes it from
                // the poller first. And `OsDriver::poll_probe` registers a descriptor it owns
                // and deletes it at once, leaking it if the delete fails.
                #[allow(unsafe_code)]
                unsafe {
                    poller.add_with_mode(fd.as_raw_fd(), event, PollMode::Level)
                }
            }
            #[cfg(target_os = "linux")]
            Poll::Epoll(epoll) => match reg {
                Reg::Socket(interest) => epoll.add(fd, key, interest),
                Reg::Fd(interest) => epoll.watch_fd(fd, key, interest, true),
            },
        }
    }

    /// Changes the interest of a registered fd.
    pub(super) fn modify(&self, fd: BorrowedFd<'_>, key: usize, reg: Reg) -> io::Result<()> {
        match self {
            Poll::Polling { poller, .. } => {
                poller.modify_with_mode(fd, polling_event(key, reg), PollMode::Level)
            }
            #[cfg(target_os = "linux")]
            Poll::Epoll(epoll) => match reg {
                Reg::Socket(interest) => epoll.modify(fd, key, interest),
                Reg::Fd(interest) => epoll.watch_fd(fd, key, interest, false),
            },
        }
    }

    /// Takes a registered fd out of the poller.
    pub(super) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        match self {
            Poll::Polling { poller, .. } => poller.delete(fd),
            #[cfg(target_os = "linux")]
            Poll::Epoll(epoll) => epoll.delete(fd),
        }
    }

    /// Waits for readiness (see [`super::os::OsDriver::wait`]), appending it to `ready`.
    pub(super) fn wait(&mut self, timeout_ms: Option<u64>, ready: &mut Vec<Readiness>) -> io::Result<()> {
        match self {
            Poll::Polling { poller, events } => {
                events.clear();
                poller.wait(events, timeout_ms.map(Duration::from_millis))?;
                ready.extend(events.iter().map(|e| Readiness {
                    key: e.key,
                    readable: e.readable,
                    writable: e.writable,
                    // Level-triggered: a socket that still holds the end is reported again.
                    hangup: false,
                    priority: e.is_priority(),
                    disconnect: e.is_interrupt() || e.is_err() == Some(true),
                }));
                Ok(())
            }
            #[cfg(target_os = "linux")]
            Poll::Epoll(epoll) => epoll.wait(timeout_ms, ready),
        }
    }

    /// The poller's own descriptor, for embedding.
    pub(super) fn backend_fd(&self) -> RawFd {
        match self {
            Poll::Polling { poller, .. } => poller.as_raw_fd(),
            #[cfg(target_os = "linux")]
            Poll::Epoll(epoll) => epoll.fd().as_raw_fd(),
        }
    }
}

/// `polling`'s event for a registration: level-triggered either way (the mode is given to
/// `add_with_mode`), with hang-ups (`EPOLLRDHUP`) and urgent data for fd watchers.
fn polling_event(key: usize, reg: Reg) -> Event {
    match reg {
        Reg::Socket(interest) => Event::new(key, interest.readable, interest.writable),
        Reg::Fd(interest) => {
            let mut event = Event::new(key, interest.readable, interest.writable);
            event.set_interrupt(interest.readable);
            event.set_priority(interest.priority);
            event
        }
    }
}
