//! Pipes at the driver seam: what both drivers check of a descriptor given to
//! `Pipe::open` (its type and access mode), and the real driver's pipe entries (the
//! simulated ones are in `sim/pipe.rs`).
//!
//! A pipe, FIFO or character device lives in the real driver's socket table beside the
//! sockets (`Sock::Pipe`), so registering (edge-triggered on the epoll backend), closing and
//! the stream core's readiness handling are the same code. What differs is here: a
//! "shutdown" that closes the descriptor, since a pipe has no half-close; and in
//! `stream_io.rs`, plain `read(2)` / `write(2)` / `writev(2)` on the descriptor. A socket given to `Pipe::open` becomes an
//! ordinary stream entry (`Sock::Stream`): its shutdown is `shutdown(SHUT_WR)`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{FileType, OFlags};
use socket2::Socket;

use super::os::{Entry, OsDriver, Sock};
use super::SocketId;

/// What a descriptor given to `Pipe::open` can do, from `fstat` and `F_GETFL`.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) struct PipeEnd {
    /// Opened for reading (`O_RDONLY` or `O_RDWR`).
    pub(crate) readable: bool,
    /// Opened for writing (`O_WRONLY` or `O_RDWR`).
    pub(crate) writable: bool,
    /// A socket (libuv's `uv_pipe_open` takes those too).
    pub(crate) socket: bool,
    /// A character device: some (`/dev/null`, `/dev/zero`) cannot be polled.
    pub(crate) device: bool,
}

/// Checks that `fd` can be a pipe stream and says which way it goes: a pipe or FIFO, a
/// character device or a socket. A regular file, a directory (always "ready", and refused by
/// epoll) or a block device is refused with `InvalidInput`. Both drivers call it, so the
/// simulation refuses the same descriptors.
pub(crate) fn inspect(fd: &OwnedFd) -> io::Result<PipeEnd> {
    let file_type = FileType::from_raw_mode(rustix::fs::fstat(fd)?.st_mode);
    let socket = match file_type {
        FileType::Fifo | FileType::CharacterDevice => false,
        FileType::Socket => true,
        FileType::RegularFile => return Err(not_a_pipe("a regular file")),
        FileType::Directory => return Err(not_a_pipe("a directory")),
        _ => return Err(not_a_pipe("neither a pipe, a character device nor a socket")),
    };
    let mode = rustix::fs::fcntl_getfl(fd)? & OFlags::RWMODE;
    Ok(PipeEnd {
        readable: mode != OFlags::WRONLY,
        writable: mode == OFlags::WRONLY || mode == OFlags::RDWR,
        socket,
        device: file_type == FileType::CharacterDevice,
    })
}

/// What `epoll_ctl` says of a descriptor it cannot poll.
const EPERM: i32 = 1;

fn not_a_pipe(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "evloop: Pipe::open needs a pipe, FIFO, character device (a tty) or socket, and this \
             descriptor is {what}; read and write files with evloop::fs"
        ),
    )
}

impl OsDriver {
    /// Takes over a pipe end (or a socket) that `inspect` accepted: non-blocking from now on,
    /// not registered yet.
    pub(crate) fn pipe_open(&mut self, fd: OwnedFd, end: PipeEnd) -> io::Result<SocketId> {
        // On the open file description: whoever shares it (a shell, for a terminal given
        // as stdin) sees it non-blocking too, as with libuv and Node.
        let fd = if end.device {
            // epoll refuses devices that are always ready (`/dev/null`, `/dev/zero`) with
            // EPERM: better refused now than a stream that never reads.
            self.poll_probe(fd).map_err(|e| match e.raw_os_error() {
                Some(EPERM) => {
                    not_a_pipe("a character device that cannot be polled (always ready, as /dev/null)")
                }
                _ => e,
            })?
        } else {
            fd
        };
        let flags = rustix::fs::fcntl_getfl(&fd)?;
        rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
        let sock = if end.socket { Sock::Stream(Socket::from(fd)) } else { Sock::Pipe(Some(fd)) };
        Ok(self.sockets.insert(Entry { sock, registered: None }))
    }

    /// "Shuts down" a pipe: a pipe has no half-close, so the write end is closed (taken out
    /// of the poller first), and the reader sees the end once every other writer has closed
    /// too. A descriptor opened read-write (a tty, a FIFO opened `O_RDWR`) cannot close one
    /// direction: `Unsupported`.
    pub(super) fn pipe_shutdown(&mut self, sock: SocketId) -> io::Result<()> {
        let Some(entry) = self.sockets.get(sock) else { return Err(super::os::not_a_stream()) };
        let Sock::Pipe(Some(fd)) = &entry.sock else { return Ok(()) };
        if rustix::fs::fcntl_getfl(fd)? & OFlags::RWMODE != OFlags::WRONLY {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "evloop: a pipe opened read-write has no half-close: close it instead",
            ));
        }
        if entry.registered.is_some() {
            self.poll_delete(fd.as_fd())?;
        }
        // Dropping the descriptor closes it.
        self.sockets[sock] = Entry { sock: Sock::Pipe(None), registered: None };
        Ok(())
    }
}
