//! The Linux backend: epoll directly, through `rustix`.
//!
//! `polling` costs about five system calls per wait (it re-arms a timerfd and its notifier
//! every time); the loop's timeouts are whole milliseconds, which `epoll_wait` takes as they
//! are, so this backend costs one: `epoll_wait`, plus one `read` of the eventfd when a waker
//! actually fired.
//!
//! Sockets are registered edge-triggered, as mio and tokio do. Level-triggered epoll
//! re-queues every reported socket at once, so a socket served in the last batch is
//! reported ahead of sockets that became ready while it was being served: with many busy
//! connections the recently served ones go first and the others wait a whole extra round
//! (bench-suite echo, 100 connections: p99 latency twice the median; edge-triggered, 1.15
//! times). The loop is right under both kinds: it reads until a short read (without a
//! hang-up) or `WouldBlock`, and owes itself a readiness event (`NetState::again`) where
//! it stops early. A partial write leaves a TCP socket marked as out of space, so the kernel
//! raises a new edge when room frees up. The `polling` backend stays level-triggered.
//! Fd watchers' descriptors are registered level-triggered (`fd_flags`): their callbacks need
//! not drain them, and the loop cannot read them to find out.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::buffer::spare_capacity;
use rustix::event::{epoll, eventfd, EventfdFlags, Timespec};

use super::{FdInterest, Interest, Readiness};

/// The key of the eventfd; no handle's key can be this (it would need slot 2^32 - 1 of
/// generation 2^32 - 1).
const WAKE_KEY: u64 = u64::MAX;

pub(crate) struct Epoll {
    epfd: OwnedFd,
    wake: Arc<OwnedFd>,
    events: Vec<epoll::Event>,
}

fn flags(interest: Interest) -> epoll::EventFlags {
    let mut f = epoll::EventFlags::empty();
    if interest.readable {
        f |= epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
    }
    if interest.writable {
        f |= epoll::EventFlags::OUT;
    }
    f | epoll::EventFlags::ET
}

/// An fd watcher's flags: level-triggered (no `EPOLLET`), so a descriptor its callback did
/// not drain is reported again by the next wait, as `uv_poll` and asyncio's readers do.
fn fd_flags(interest: FdInterest) -> epoll::EventFlags {
    let mut f = epoll::EventFlags::empty();
    if interest.readable {
        f |= epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
    }
    if interest.writable {
        f |= epoll::EventFlags::OUT;
    }
    if interest.priority {
        f |= epoll::EventFlags::PRI;
    }
    f
}

impl Epoll {
    pub(crate) fn new(capacity: usize) -> io::Result<Epoll> {
        let epfd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(&epfd, &wake, epoll::EventData::new_u64(WAKE_KEY), epoll::EventFlags::IN)?;
        Ok(Epoll { epfd, wake: Arc::new(wake), events: Vec::with_capacity(capacity) })
    }

    /// The eventfd that wakes a blocked wait (shared with the notifier).
    pub(crate) fn waker(&self) -> Arc<OwnedFd> {
        self.wake.clone()
    }

    pub(crate) fn add(&self, fd: BorrowedFd<'_>, key: usize, interest: Interest) -> io::Result<()> {
        Ok(epoll::add(&self.epfd, fd, epoll::EventData::new_u64(key as u64), flags(interest))?)
    }

    pub(crate) fn modify(&self, fd: BorrowedFd<'_>, key: usize, interest: Interest) -> io::Result<()> {
        Ok(epoll::modify(&self.epfd, fd, epoll::EventData::new_u64(key as u64), flags(interest))?)
    }

    /// Registers (`add`) or changes an fd watcher's descriptor, level-triggered.
    pub(crate) fn watch_fd(
        &self,
        fd: BorrowedFd<'_>,
        key: usize,
        interest: FdInterest,
        add: bool,
    ) -> io::Result<()> {
        let data = epoll::EventData::new_u64(key as u64);
        if add {
            Ok(epoll::add(&self.epfd, fd, data, fd_flags(interest))?)
        } else {
            Ok(epoll::modify(&self.epfd, fd, data, fd_flags(interest))?)
        }
    }

    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        Ok(epoll::delete(&self.epfd, fd)?)
    }

    pub(crate) fn wait(&mut self, timeout_ms: Option<u64>, ready: &mut Vec<Readiness>) -> io::Result<()> {
        let timeout = timeout_ms
            .map(|ms| Timespec { tv_sec: (ms / 1000) as _, tv_nsec: ((ms % 1000) * 1_000_000) as _ });
        self.events.clear();
        match epoll::wait(&self.epfd, spare_capacity(&mut self.events), timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        for ev in &self.events {
            let key = ev.data.u64();
            if key == WAKE_KEY {
                // Reset the counter; the notifier's flag says which wakers fired.
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(&*self.wake, &mut buf);
                continue;
            }
            let f = ev.flags;
            let hangup = f.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR);
            ready.push(Readiness {
                key: key as usize,
                hangup: hangup || f.contains(epoll::EventFlags::RDHUP),
                readable: hangup || f.intersects(epoll::EventFlags::IN | epoll::EventFlags::RDHUP),
                writable: hangup || f.contains(epoll::EventFlags::OUT),
                // Only fd watchers ask for EPOLLPRI.
                priority: f.contains(epoll::EventFlags::PRI),
                // As `polling` reports it: a half-close (RDHUP alone) is no hang-up.
                disconnect: hangup,
            });
        }
        Ok(())
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.epfd.as_fd()
    }
}

/// Wakes a blocked `epoll_wait` from any thread.
pub(crate) fn wake(fd: &OwnedFd) -> io::Result<()> {
    match rustix::io::write(fd, &1u64.to_ne_bytes()) {
        // The counter is saturated: a wakeup is pending anyway.
        Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
