//! Pipes as streams: [`Pipe`] wraps a pipe end, a FIFO, a character device (a terminal) or a
//! socket that the program already has (stdin, stdout, one end of `pipe(2)`) in the stream
//! core that TCP and Unix streams share (the stream methods come from `stream_methods!`).
//! The descriptor's checks and its reads and writes are behind the driver seam
//! (`driver/pipe.rs`, and `driver/sim/pipe.rs` for the simulator's fake pipes).

use std::io;
use std::os::fd::OwnedFd;

use super::stream::Direction;
use super::stream_methods::stream_methods;
use crate::driver::pipe::inspect;
use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Handle, HandleKind};

/// A stream over a pipe, FIFO, character device or socket the program already has (libuv's
/// `uv_pipe_open`, asyncio's `connect_read_pipe` / `connect_write_pipe`): stdin, stdout,
/// one end of `pipe(2)`, a child process's plumbing. It has exactly the stream semantics of
/// [`TcpStream`](crate::TcpStream): writes tried at once and queued for the rest, the
/// high-water mark and [`on_drain`](Pipe::on_drain), [`read_stop`](Pipe::read_stop) /
/// [`read_resume`](Pipe::read_resume), `Ok(&[])` at the end of the stream, what keeps the
/// loop alive (a read end only while reading, a write end while writes are queued), and
/// close cancelling what is queued.
///
/// - **Direction.** A pipe end goes one way: [`read_start`](Pipe::read_start) on an end
///   opened write-only, and [`write`](Pipe::write) (or `try_write`, `shutdown`) on one opened
///   read-only, fail with `InvalidInput` naming the direction. A descriptor opened
///   read-write (a terminal, a socket) goes both ways.
/// - **End and EPIPE.** The reader gets `Ok(&[])` once every writer has closed its end; a
///   write once every reader has closed fails with `BrokenPipe`, as on a socket. Rust
///   programs ignore `SIGPIPE` (the standard library sets that up before `main`), so the
///   failed write is an error, not a signal; a host that restored `SIG_DFL` for `SIGPIPE`
///   is killed by it on a pipe (sockets are written with `MSG_NOSIGNAL`, pipes have no such
///   flag), as a C program using libuv would be: keep it ignored.
/// - **Shutdown.** A pipe has no half-close: [`shutdown`](Pipe::shutdown) on a write end
///   waits for the queued writes, then closes the descriptor, so the reader sees the end
///   (once the other writers, if any, have closed too). On a socket it is
///   `shutdown(SHUT_WR)`; a non-socket descriptor opened read-write (a terminal) cannot
///   close one direction, and the shutdown's callback gets `Unsupported`.
///
/// ```
/// use evloop::{Loop, Pipe, RunMode};
///
/// let mut lp = Loop::with_state(Vec::new())?;
/// let (reader, writer) = Pipe::pair(&mut lp)?;
/// writer.write(&mut lp, b"through the pipe")?;
/// writer.shutdown(&mut lp, move |lp, result| {
///     result.unwrap();
///     writer.close(lp).unwrap();
/// })?;
/// reader.read_start(&mut lp, |lp, reader, data| match data.unwrap() {
///     [] => reader.close(lp).unwrap(), // every writer closed: the end
///     bytes => lp.state.extend_from_slice(bytes),
/// })?;
/// lp.run(RunMode::Default)?;
/// assert_eq!(lp.state, b"through the pipe");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Pipe {
    handle: Handle,
}

common_handle_methods!(Pipe, Pipe);
stream_methods!(Pipe, Pipe);

impl Pipe {
    /// Takes ownership of `fd` (a pipe or FIFO end, a character device such as a terminal,
    /// or a socket, which libuv accepts too) and makes it a stream. The direction comes from
    /// the descriptor's access mode (`F_GETFL`).
    ///
    /// The descriptor becomes non-blocking. `O_NONBLOCK` belongs to the open file
    /// description, not to the descriptor: every process sharing it sees the change (a
    /// shell whose terminal is the program's stdin, a parent that passed its pipe), as with
    /// libuv and Node. Give `Pipe::open` a duplicate of a shared descriptor (`dup` shares
    /// the description too) only if that is acceptable, or reopen the device.
    ///
    /// Refused with `InvalidInput` and a message that says so: a regular file or a
    /// directory (always "ready", so no poller can wait on it: read files with
    /// [`evloop::fs`](crate::fs)), a block device, a character device that no poller takes
    /// (`/dev/null`, `/dev/zero`: always ready; libuv and Node treat those as files too).
    /// On a simulated loop only the fake pipes
    /// of [`Sim::fake_read_pipe`](crate::sim::Sim::fake_read_pipe) and
    /// [`Sim::fake_write_pipe`](crate::sim::Sim::fake_write_pipe) can be opened.
    ///
    /// ```
    /// use evloop::{Loop, Pipe};
    ///
    /// let mut lp = Loop::new()?;
    /// let file = std::fs::File::open(std::env::current_exe()?)?;
    /// let err = Pipe::open(&mut lp, file).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// assert!(err.to_string().contains("evloop::fs"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open<S>(lp: &mut Loop<S>, fd: impl Into<OwnedFd>) -> io::Result<Pipe> {
        let fd = fd.into();
        let end = inspect(&fd)?;
        let sock = lp.driver.pipe_open(fd, end)?;
        let handle = lp.open_stream(sock, HandleKind::Pipe);
        if let Some(st) = lp.stream_state(handle) {
            st.direction = match (end.readable, end.writable) {
                (true, false) => Direction::ReadOnly,
                (false, true) => Direction::WriteOnly,
                _ => Direction::Both,
            };
        }
        Ok(Pipe { handle })
    }

    /// A new pipe, `(read end, write end)`, from `pipe2(O_CLOEXEC)`: what one writes, the
    /// other reads. For a child process's stdin or stdout, make the pipe with
    /// `pipe(2)` (`std::io::pipe`) and open the end the program keeps. Fails with `Unsupported` on a
    /// simulated loop (use its fake pipes).
    pub fn pair<S>(lp: &mut Loop<S>) -> io::Result<(Pipe, Pipe)> {
        if lp.driver.backend().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "evloop::sim: a simulated loop has no pipe(2); use Sim::fake_read_pipe or Sim::fake_write_pipe",
            ));
        }
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let reader = Pipe::open(lp, read)?;
        match Pipe::open(lp, write) {
            Ok(writer) => Ok((reader, writer)),
            Err(e) => {
                let _ = reader.close(lp);
                Err(e)
            }
        }
    }

    /// Whether the pipe can read: opened read-only or read-write.
    pub fn is_readable<S>(&self, lp: &Loop<S>) -> bool {
        lp.stream_ref(self.handle, HandleKind::Pipe).is_ok_and(|st| st.direction != Direction::WriteOnly)
    }

    /// Whether the pipe can write: opened write-only or read-write.
    pub fn is_writable<S>(&self, lp: &Loop<S>) -> bool {
        lp.stream_ref(self.handle, HandleKind::Pipe).is_ok_and(|st| st.direction != Direction::ReadOnly)
    }
}
