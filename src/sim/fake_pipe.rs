//! Fake pipes for [`Pipe`](crate::Pipe)s on a simulated loop.

use std::io;
use std::os::fd::OwnedFd;

use super::{FakePeer, Sim};

impl<S> Sim<S> {
    /// A fake pipe that the program reads (asyncio's `connect_read_pipe`): returns the
    /// descriptor to give to [`Pipe::open`](crate::Pipe::open), and the test's end, a
    /// [`FakePeer`] that writes into it: [`send`](FakePeer::send) bytes,
    /// [`close`](FakePeer::close) (or [`shutdown`](FakePeer::shutdown)) for the end of the
    /// stream. The pipe never resets.
    ///
    /// The descriptor is the read end of a real `pipe(2)` that nothing writes to, so
    /// `Pipe::open` checks it (type, access mode: read-only) as on the real loop; the
    /// simulated driver recognises it and connects it to the fake. Fails only if no pipe
    /// can be made (`EMFILE`).
    ///
    /// ```
    /// use evloop::sim::Sim;
    /// use evloop::Pipe;
    ///
    /// let mut sim = Sim::new(1, Vec::new());
    /// let (fd, writer) = sim.fake_read_pipe()?;
    /// let stdin = Pipe::open(&mut sim, fd)?;
    /// stdin.read_start(&mut sim, |lp, pipe, data| match data.unwrap() {
    ///     [] => pipe.close(lp).unwrap(),
    ///     bytes => lp.state.extend_from_slice(bytes),
    /// })?;
    /// writer.send(b"typed input");
    /// writer.close();
    /// sim.run_until_idle()?;
    /// assert_eq!(sim.state, b"typed input");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fake_read_pipe(&mut self) -> io::Result<(OwnedFd, FakePeer)> {
        let (read, _write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        self.fake_pipe(read)
    }

    /// A fake pipe that the program writes (asyncio's `connect_write_pipe`): returns the
    /// descriptor to give to [`Pipe::open`](crate::Pipe::open) (the write end of an unused
    /// real pipe: write-only), and the test's end, a [`FakePeer`] that reads from it:
    /// [`recv`](FakePeer::recv) takes what arrived, [`pause_reading`](FakePeer::pause_reading)
    /// lets the window fill so that the program's writes back up,
    /// [`is_closed`](FakePeer::is_closed) tells whether the program closed (or shut down) its
    /// end, and [`close`](FakePeer::close) closes the reader: the program's next write
    /// fails with `BrokenPipe`.
    pub fn fake_write_pipe(&mut self) -> io::Result<(OwnedFd, FakePeer)> {
        let (_read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        self.fake_pipe(write)
    }

    fn fake_pipe(&mut self, fd: OwnedFd) -> io::Result<(OwnedFd, FakePeer)> {
        let conn = self.world.borrow_mut().add_fake_pipe(&fd)?;
        Ok((fd, FakePeer::new(self.world.clone(), conn, 1)))
    }
}
