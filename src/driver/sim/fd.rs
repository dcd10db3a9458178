//! The simulated side of fd watchers: fake descriptors whose readiness the test sets.
//!
//! A fake descriptor is backed by a real, harmless one (one end of a `UnixStream` pair that
//! nothing writes to), so that `FdWatcher::new` takes it like any descriptor; the watcher's
//! duplicate is recognised by its inode. Readiness is level-triggered, as the real drivers
//! register fd watchers: a fake that stays readable is reported by every wait.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

use slab::Slab;

use super::{SimDriver, World};
use crate::driver::{FdInterest, Readiness, SocketId};

/// The readiness of one fake descriptor, as the test set it.
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct FakeFdState {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) priority: bool,
    pub(crate) hangup: bool,
}

/// A watcher's registration of a fake descriptor.
struct Watch {
    fake: usize,
    /// The watcher's duplicate, owned (and closed) here as the real driver owns it.
    _fd: OwnedFd,
    interest: Option<(usize, FdInterest)>,
}

/// The fake descriptors of a world and the watchers' registrations of them.
#[derive(Default)]
pub(crate) struct FakeFds {
    pub(crate) states: Vec<FakeFdState>,
    /// (device, inode) of each fake's backing descriptor; the latest fake wins, should an
    /// inode be reused.
    by_inode: HashMap<(u64, u64), usize>,
    watches: Slab<Watch>,
}

impl FakeFds {
    /// A new fake descriptor backed by `fd` (the test keeps `fd`); returns its index.
    pub(crate) fn add(&mut self, fd: &std::os::unix::net::UnixStream) -> io::Result<usize> {
        let meta = std::fs::File::from(OwnedFd::from(fd.try_clone()?)).metadata()?;
        let id = self.states.len();
        self.states.push(FakeFdState::default());
        self.by_inode.insert((meta.dev(), meta.ino()), id);
        Ok(id)
    }
}

impl SimDriver {
    pub(crate) fn fd_open(&mut self, fd: OwnedFd) -> io::Result<SocketId> {
        let fd = crate::driver::check_pollable(fd)?;
        let file = std::fs::File::from(fd);
        let meta = file.metadata()?;
        let mut w = self.world.borrow_mut();
        let Some(&fake) = w.fds.by_inode.get(&(meta.dev(), meta.ino())) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "evloop::sim: a simulated loop watches only fake descriptors (Sim::fake_fd)",
            ));
        };
        let id = w.fds.watches.insert(Watch { fake, _fd: file.into(), interest: None });
        w.record(id, "fd open", 0);
        Ok(id)
    }

    pub(crate) fn fd_set_interest(
        &mut self,
        id: SocketId,
        key: usize,
        interest: FdInterest,
    ) -> io::Result<()> {
        let mut w = self.world.borrow_mut();
        let watch =
            w.fds.watches.get_mut(id).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "evloop: not a watched descriptor")
            })?;
        watch.interest = (!interest.is_empty()).then_some((key, interest));
        Ok(())
    }

    pub(crate) fn fd_close(&mut self, id: SocketId) {
        let mut w = self.world.borrow_mut();
        if w.fds.watches.try_remove(id).is_some() {
            w.record(id, "fd close", 0);
        }
    }
}

/// Readiness of every registered fake descriptor, level-triggered: reported as long as it
/// holds. A hang-up is reported whatever the interest, with the readiness asked for, as
/// epoll does (and libuv after it).
pub(crate) fn collect_fd_ready(w: &World, ready: &mut Vec<Readiness>) {
    for (_, watch) in &w.fds.watches {
        let Some((key, interest)) = watch.interest else { continue };
        let st = w.fds.states[watch.fake];
        let readable = interest.readable && (st.readable || st.hangup);
        let writable = interest.writable && (st.writable || st.hangup);
        let priority = interest.priority && st.priority;
        if readable || writable || priority || st.hangup {
            ready.push(Readiness {
                key,
                readable,
                writable,
                hangup: st.hangup,
                priority,
                disconnect: st.hangup,
            });
        }
    }
}
