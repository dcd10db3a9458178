//! What lets one server example serve TCP and Unix domain sockets alike: the address
//! syntax (`host:port` or `unix:PATH`, parsed here once), a [`Stream`] trait over the
//! stream methods the examples use (implemented by `TcpStream` and `UnixStream`, so
//! generic code compiles to direct calls, and by [`AnyStream`]), and [`AnyStream`], either
//! stream as one type, for servers that keep connections in one table.

#![allow(dead_code)] // each example and test that includes it uses a part

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use evloop::{Handle, Loop, TcpListener, TcpStream, UnixListener, UnixStream};

/// Where a server listens or a client connects: `127.0.0.1:7000` or `unix:/tmp/echo.sock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::str::FromStr for ServerAddr {
    type Err = io::Error;

    fn from_str(s: &str) -> io::Result<ServerAddr> {
        let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        match s.strip_prefix("unix:") {
            Some("") => Err(invalid(format!("{s}: no path after unix:"))),
            Some(path) => Ok(ServerAddr::Unix(path.into())),
            None => s
                .parse()
                .map(ServerAddr::Tcp)
                .map_err(|e| invalid(format!("{s}: {e} (host:port or unix:PATH)"))),
        }
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerAddr::Tcp(addr) => write!(f, "{addr}"),
            ServerAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The stream methods the examples use, for either kind of stream.
pub trait Stream: Copy + fmt::Debug + 'static {
    fn write<S>(self, lp: &mut Loop<S>, data: &[u8]) -> io::Result<bool>;
    fn write_queue_size<S>(self, lp: &Loop<S>) -> io::Result<usize>;
    fn read_start<S>(
        self,
        lp: &mut Loop<S>,
        on_read: impl FnMut(&mut Loop<S>, Self, io::Result<&[u8]>) + 'static,
    ) -> io::Result<()>;
    fn read_stop<S>(self, lp: &mut Loop<S>) -> io::Result<()>;
    fn read_resume<S>(self, lp: &mut Loop<S>) -> io::Result<()>;
    fn is_reading<S>(self, lp: &Loop<S>) -> bool;
    fn on_drain<S>(
        self,
        lp: &mut Loop<S>,
        on_drain: impl FnMut(&mut Loop<S>, Self) + 'static,
    ) -> io::Result<()>;
    fn shutdown<S>(
        self,
        lp: &mut Loop<S>,
        on_shutdown: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
    ) -> io::Result<()>;
    fn close<S>(self, lp: &mut Loop<S>) -> io::Result<()>;
    /// `TCP_NODELAY` where there is such a thing; a Unix socket has no Nagle to turn off.
    fn set_nodelay<S>(self, lp: &mut Loop<S>, on: bool) -> io::Result<()>;
}

/// Implements [`Stream`] for an evloop stream type by calling its own methods.
macro_rules! forward_stream {
    ($ty:ident, |$s:ident, $lp:ident, $on:ident| $nodelay:expr) => {
        impl Stream for $ty {
            fn write<S>(self, lp: &mut Loop<S>, data: &[u8]) -> io::Result<bool> {
                $ty::write(&self, lp, data)
            }
            fn write_queue_size<S>(self, lp: &Loop<S>) -> io::Result<usize> {
                $ty::write_queue_size(&self, lp)
            }
            fn read_start<S>(
                self,
                lp: &mut Loop<S>,
                on_read: impl FnMut(&mut Loop<S>, Self, io::Result<&[u8]>) + 'static,
            ) -> io::Result<()> {
                $ty::read_start(&self, lp, on_read)
            }
            fn read_stop<S>(self, lp: &mut Loop<S>) -> io::Result<()> {
                $ty::read_stop(&self, lp)
            }
            fn read_resume<S>(self, lp: &mut Loop<S>) -> io::Result<()> {
                $ty::read_resume(&self, lp)
            }
            fn is_reading<S>(self, lp: &Loop<S>) -> bool {
                $ty::is_reading(&self, lp)
            }
            fn on_drain<S>(
                self,
                lp: &mut Loop<S>,
                on_drain: impl FnMut(&mut Loop<S>, Self) + 'static,
            ) -> io::Result<()> {
                $ty::on_drain(&self, lp, on_drain)
            }
            fn shutdown<S>(
                self,
                lp: &mut Loop<S>,
                on_shutdown: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
            ) -> io::Result<()> {
                $ty::shutdown(&self, lp, on_shutdown)
            }
            fn close<S>(self, lp: &mut Loop<S>) -> io::Result<()> {
                $ty::close(&self, lp)
            }
            fn set_nodelay<S>(self, $lp: &mut Loop<S>, $on: bool) -> io::Result<()> {
                let $s = self;
                $nodelay
            }
        }
    };
}

forward_stream!(TcpStream, |s, lp, on| TcpStream::set_nodelay(&s, lp, on));
forward_stream!(UnixStream, |_s, _lp, _on| Ok(()));

/// A connection of either kind.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum AnyStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Runs `$e` with `$s` bound to the stream inside `$v`, whichever kind it is.
macro_rules! each {
    ($v:expr, $s:ident => $e:expr) => {
        match $v {
            AnyStream::Tcp($s) => $e,
            AnyStream::Unix($s) => $e,
        }
    };
}

impl Stream for AnyStream {
    fn write<S>(self, lp: &mut Loop<S>, data: &[u8]) -> io::Result<bool> {
        each!(self, s => Stream::write(s, lp, data))
    }
    fn write_queue_size<S>(self, lp: &Loop<S>) -> io::Result<usize> {
        each!(self, s => Stream::write_queue_size(s, lp))
    }
    fn read_start<S>(
        self,
        lp: &mut Loop<S>,
        mut on_read: impl FnMut(&mut Loop<S>, Self, io::Result<&[u8]>) + 'static,
    ) -> io::Result<()> {
        match self {
            AnyStream::Tcp(s) => s.read_start(lp, move |lp, s, d| on_read(lp, AnyStream::Tcp(s), d)),
            AnyStream::Unix(s) => s.read_start(lp, move |lp, s, d| on_read(lp, AnyStream::Unix(s), d)),
        }
    }
    fn read_stop<S>(self, lp: &mut Loop<S>) -> io::Result<()> {
        each!(self, s => Stream::read_stop(s, lp))
    }
    fn read_resume<S>(self, lp: &mut Loop<S>) -> io::Result<()> {
        each!(self, s => Stream::read_resume(s, lp))
    }
    fn is_reading<S>(self, lp: &Loop<S>) -> bool {
        each!(self, s => Stream::is_reading(s, lp))
    }
    fn on_drain<S>(
        self,
        lp: &mut Loop<S>,
        mut on_drain: impl FnMut(&mut Loop<S>, Self) + 'static,
    ) -> io::Result<()> {
        match self {
            AnyStream::Tcp(s) => s.on_drain(lp, move |lp, s| on_drain(lp, AnyStream::Tcp(s))),
            AnyStream::Unix(s) => s.on_drain(lp, move |lp, s| on_drain(lp, AnyStream::Unix(s))),
        }
    }
    fn shutdown<S>(
        self,
        lp: &mut Loop<S>,
        on_shutdown: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
    ) -> io::Result<()> {
        each!(self, s => Stream::shutdown(s, lp, on_shutdown))
    }
    fn close<S>(self, lp: &mut Loop<S>) -> io::Result<()> {
        each!(self, s => Stream::close(s, lp))
    }
    fn set_nodelay<S>(self, lp: &mut Loop<S>, on: bool) -> io::Result<()> {
        each!(self, s => Stream::set_nodelay(s, lp, on))
    }
}

/// Binds `addr` and hands every accepted connection to `on_connection` as an [`AnyStream`].
/// Returns the listener's handle and the address it is bound to, as `ServerAddr` prints it.
pub fn listen_any<S: 'static>(
    lp: &mut Loop<S>,
    addr: &ServerAddr,
    mut on_connection: impl FnMut(&mut Loop<S>, AnyStream) + 'static,
) -> io::Result<(Handle, ServerAddr)> {
    match addr {
        ServerAddr::Tcp(a) => {
            let l = TcpListener::bind(lp, *a, move |lp, s| on_connection(lp, AnyStream::Tcp(s)))?;
            Ok((l.handle(), ServerAddr::Tcp(l.local_addr(lp)?)))
        }
        ServerAddr::Unix(path) => {
            let l = UnixListener::bind(lp, path, move |lp, s| on_connection(lp, AnyStream::Unix(s)))?;
            Ok((l.handle(), addr.clone()))
        }
    }
}

/// `--threads N` serves TCP only (one listener per loop on one port, `SO_REUSEPORT`).
pub fn refuse_threads_with_unix(threads: usize, addr: &ServerAddr) -> io::Result<()> {
    if threads > 1 && matches!(addr, ServerAddr::Unix(_)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--threads {threads} serves TCP only: a Unix socket path takes one listener ({addr})"),
        ));
    }
    Ok(())
}

/// Removes a Unix listener's socket file once the server is done (a TCP address has none).
pub fn remove_socket_file(addr: &ServerAddr) {
    if let ServerAddr::Unix(path) = addr {
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}
