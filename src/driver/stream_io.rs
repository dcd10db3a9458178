//! Reading and writing the real driver's stream entries: a socket (`Sock::Stream`, TCP or
//! Unix domain, one system call each through `socket2`, as std's types do) or a pipe end
//! (`Sock::Pipe`, plain `read(2)` / `write(2)` / `writev(2)` through `rustix`), behind the
//! same four operations the stream core calls.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;

use socket2::Socket;

use super::os::{not_a_stream, retry_interrupted, OsDriver, Sock};
use super::SocketId;

/// The descriptor of a stream entry, to read or write: a socket, or a pipe (`None` once
/// shut down).
enum StreamIo<'a> {
    Socket(&'a Socket),
    Pipe(Option<&'a OwnedFd>),
}

impl OsDriver {
    /// The descriptor a stream operation uses.
    fn stream_io(&self, sock: SocketId) -> io::Result<StreamIo<'_>> {
        match self.sockets.get(sock).map(|e| &e.sock) {
            Some(Sock::Stream(s)) => Ok(StreamIo::Socket(s)),
            Some(Sock::Pipe(fd)) => Ok(StreamIo::Pipe(fd.as_ref())),
            _ => Err(not_a_stream()),
        }
    }

    pub(crate) fn read(&mut self, sock: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        match self.stream_io(sock)? {
            StreamIo::Socket(mut stream) => retry_interrupted(|| stream.read(buf)),
            StreamIo::Pipe(fd) => read(fd, buf),
        }
    }

    pub(crate) fn write(&mut self, sock: SocketId, buf: &[u8]) -> io::Result<usize> {
        match self.stream_io(sock)? {
            StreamIo::Socket(mut stream) => retry_interrupted(|| stream.write(buf)),
            StreamIo::Pipe(fd) => write(fd, buf),
        }
    }

    pub(crate) fn write_vectored(&mut self, sock: SocketId, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self.stream_io(sock)? {
            StreamIo::Socket(stream) => retry_interrupted(|| stream.send_vectored(bufs)),
            StreamIo::Pipe(fd) => write_vectored(fd, bufs),
        }
    }

    pub(crate) fn shutdown_write(&mut self, sock: SocketId) -> io::Result<()> {
        match self.stream_io(sock)? {
            StreamIo::Socket(stream) => stream.shutdown(Shutdown::Write),
            StreamIo::Pipe(_) => self.pipe_shutdown(sock),
        }
    }
}

/// Closed by `pipe_shutdown`: what is left of the pipe can neither read nor write.
fn shut() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "evloop: the pipe's write end was shut down")
}

fn read(fd: Option<&OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    let fd = fd.ok_or_else(shut)?;
    retry_interrupted(|| Ok(rustix::io::read(fd, &mut *buf)?))
}

fn write(fd: Option<&OwnedFd>, buf: &[u8]) -> io::Result<usize> {
    let fd = fd.ok_or_else(shut)?;
    retry_interrupted(|| Ok(rustix::io::write(fd, buf)?))
}

fn write_vectored(fd: Option<&OwnedFd>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let fd = fd.ok_or_else(shut)?;
    retry_interrupted(|| Ok(rustix::io::writev(fd, bufs)?))
}
