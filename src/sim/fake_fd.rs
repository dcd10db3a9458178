//! Fake descriptors for fd watchers on a simulated loop.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use super::Sim;
use crate::driver::sim::world::World;

/// A fake descriptor for an [`FdWatcher`](crate::FdWatcher) on a [`Sim`]: the test sets
/// its readiness, and the simulated driver reports it level-triggered, as the real drivers
/// report fd watchers (every wait, as long as it holds). Made by [`Sim::fake_fd`].
///
/// It implements [`AsFd`], backed by a real and harmless descriptor (one end of a
/// `UnixStream` pair that nothing writes to), so `FdWatcher::new` takes it as any other
/// descriptor, and the watcher's duplicate is recognised as this fake. Setting readiness
/// never calls a callback: callbacks run only inside the loop.
///
/// A fake left readable keeps its watcher's callback coming on every iteration, so
/// [`Sim::run_until_idle`] reports it as a livelock; run iterations one by one instead.
///
/// ```
/// use evloop::sim::Sim;
/// use evloop::{FdInterest, FdWatcher, RunMode};
///
/// let mut sim = Sim::new(1, 0u32);
/// let fake = sim.fake_fd()?;
/// let w = FdWatcher::new(&mut sim, &fake, |lp, _, events| {
///     assert!(events.is_readable());
///     lp.state += 1;
/// })?;
/// w.start(&mut sim, FdInterest::READABLE)?;
/// fake.set_readable(true);
/// sim.lp().run(RunMode::NoWait)?;
/// sim.lp().run(RunMode::NoWait)?;
/// assert_eq!(sim.state, 2, "called on every iteration while readable");
/// fake.set_readable(false);
/// sim.lp().run(RunMode::NoWait)?;
/// assert_eq!(sim.state, 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct FakeFd {
    world: Rc<RefCell<World>>,
    id: usize,
    fd: UnixStream,
    _other: UnixStream,
}

impl std::fmt::Debug for FakeFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.world.borrow().fds.states[self.id];
        f.debug_struct("FakeFd")
            .field("readable", &st.readable)
            .field("writable", &st.writable)
            .field("priority", &st.priority)
            .field("hangup", &st.hangup)
            .finish()
    }
}

impl AsFd for FakeFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl FakeFd {
    fn set(&self, f: impl FnOnce(&mut crate::driver::sim::fd::FakeFdState)) {
        f(&mut self.world.borrow_mut().fds.states[self.id]);
    }

    /// Makes the descriptor readable (data to read), or not.
    pub fn set_readable(&self, on: bool) {
        self.set(|st| st.readable = on);
    }

    /// Makes the descriptor writable (room to write), or not.
    pub fn set_writable(&self, on: bool) {
        self.set(|st| st.writable = on);
    }

    /// Makes the descriptor report urgent data (`EPOLLPRI`), or not.
    pub fn set_priority(&self, on: bool) {
        self.set(|st| st.priority = on);
    }

    /// Hangs the descriptor up for good, as a peer that closed: reported whatever the
    /// interest, with readable and writable where asked for, as epoll does.
    pub fn hang_up(&self) {
        self.set(|st| st.hangup = true);
    }
}

impl<S> Sim<S> {
    /// A new fake descriptor, neither readable nor writable, to watch with an
    /// [`FdWatcher`](crate::FdWatcher). Fails only if no socket pair can be made (`EMFILE`).
    pub fn fake_fd(&mut self) -> io::Result<FakeFd> {
        let (fd, other) = UnixStream::pair()?;
        let id = self.world.borrow_mut().fds.add(&fd)?;
        Ok(FakeFd { world: self.world.clone(), id, fd, _other: other })
    }
}
