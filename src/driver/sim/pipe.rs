//! The simulated side of pipes: a fake pipe is a connection of the in-memory network
//! (`world.rs`) used in one direction and never reset (`Conn::pipe`): side 0 is the
//! program's `Pipe`, side 1 a `FakePeer` the test drives. Closing the writer ends the stream
//! (FIN); closing the reader makes the writer's next write fail with `BrokenPipe`.
//!
//! The program's end is a real, harmless descriptor (one end of a `pipe(2)` that nothing
//! uses), so `Pipe::open` checks its type and access mode as on the real driver; the
//! simulated driver recognises it by its inode, as it does fake descriptors (`fd.rs`).

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;

use super::world::{unnamed_unix_addr, ConnectState, End, Sock, SockKind, World};
use super::SimDriver;
use crate::driver::pipe::PipeEnd;
use crate::driver::SocketId;

/// Fake pipes made by the test and not yet opened by the program, by the (device, inode)
/// of their descriptor.
#[derive(Default)]
pub(crate) struct FakePipes {
    by_inode: HashMap<(u64, u64), usize>,
}

fn inode(fd: &OwnedFd) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

impl World {
    /// A new fake pipe whose program end is `fd`; returns its connection (the test's end is
    /// side 1).
    pub(crate) fn add_fake_pipe(&mut self, fd: &OwnedFd) -> io::Result<usize> {
        let key = inode(fd)?;
        let addrs = [unnamed_unix_addr(), unnamed_unix_addr()];
        // The program's side waits until `Pipe::open` takes it.
        let conn = self.new_conn([End::Backlog, End::Peer], addrs);
        self.conns[conn].pipe = true;
        self.pipes.by_inode.insert(key, conn);
        Ok(conn)
    }
}

impl SimDriver {
    /// Opens a fake pipe's program end (see `Sim::fake_read_pipe`); anything else is refused.
    pub(crate) fn pipe_open(&mut self, fd: OwnedFd, _end: PipeEnd) -> io::Result<SocketId> {
        let key = inode(&fd)?;
        let mut w = self.world.borrow_mut();
        let Some(conn) = w.pipes.by_inode.remove(&key) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "evloop::sim: a simulated loop opens only fake pipes (Sim::fake_read_pipe, \
                 Sim::fake_write_pipe)",
            ));
        };
        let local = unnamed_unix_addr();
        let peer = unnamed_unix_addr();
        let kind =
            SockKind::Stream { conn: Some(conn), side: 0, connect: ConnectState::Connected, local, peer };
        let id = w.socks.insert(Sock::new(kind));
        w.conns[conn].ends[0] = End::Sock(id);
        w.record(id, "pipe open", 0);
        Ok(id)
    }
}
