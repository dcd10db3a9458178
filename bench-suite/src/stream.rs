//! One trait over evloop's two stream types, so that the evloop servers (rt_evloop.rs) and
//! the load generator (client.rs) have one body of per-connection code for TCP and for Unix
//! domain sockets. evloop gives `TcpStream` and `UnixStream` the same stream methods (its
//! `stream_methods!`) but no trait in common; this is the part of them the suite uses, plus
//! how each kind listens and connects.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use evloop::{ListenOptions, Loop, TcpStream, UnixStream};

use crate::util;

/// Declares `Stream`: how a type listens and connects (written per type), and the stream
/// methods both types have, listed once here with their arguments. Also defines
/// `impl_stream!`, which implements it for a type from its `listen` and `connect` bodies
/// (with the names the `|...|` gives: the loop, the address, the callback) and its
/// `set_nodelay` (the stream, the loop, the flag); the listed methods call the type's own of
/// the same name (an inherent method wins over the trait's in `$ty::name`, so this never
/// recurses).
macro_rules! stream_trait {
    ($($name:ident($($arg:ident: $t:ty),*) -> $ret:ty;)*) => {
        pub trait Stream: Copy + 'static {
            /// What a server listens on and a client connects to: a socket address or a path.
            type Addr: ?Sized;

            /// Listens on `addr` with the suite's backlog and prints `listening PORT` for the
            /// orchestrator (`listening 0` for a path, which the orchestrator chose).
            fn listen<S>(
                lp: &mut Loop<S>,
                addr: &Self::Addr,
                on_connection: impl FnMut(&mut Loop<S>, Self) + 'static,
            ) -> io::Result<()>;

            fn connect<S>(
                lp: &mut Loop<S>,
                addr: &Self::Addr,
                on_connect: impl FnOnce(&mut Loop<S>, Self, io::Result<()>) + 'static,
            ) -> io::Result<Self>;

            /// `TCP_NODELAY`; a Unix stream has no Nagle to turn off, so nothing there.
            fn set_nodelay<S>(self, lp: &mut Loop<S>, on: bool) -> io::Result<()>;

            fn is_closing<S>(self, lp: &Loop<S>) -> bool;

            $(fn $name<S>(self, lp: &mut Loop<S>, $($arg: $t),*) -> $ret;)*
        }

        macro_rules! impl_stream {
            (
                $ty:ident, $addr_ty:ty,
                listen: |$lp:ident, $addr:ident, $cb:ident| $listen:block,
                connect: $connect:expr,
                nodelay: |$s:ident, $nlp:ident, $on:ident| $nodelay:expr,
            ) => {
                impl Stream for $ty {
                    type Addr = $addr_ty;

                    fn listen<S>(
                        $lp: &mut Loop<S>,
                        $addr: &$addr_ty,
                        $cb: impl FnMut(&mut Loop<S>, Self) + 'static,
                    ) -> io::Result<()> $listen

                    fn connect<S>(
                        $lp: &mut Loop<S>,
                        $addr: &$addr_ty,
                        $cb: impl FnOnce(&mut Loop<S>, Self, io::Result<()>) + 'static,
                    ) -> io::Result<Self> {
                        $connect
                    }

                    fn set_nodelay<S>(self, $nlp: &mut Loop<S>, $on: bool) -> io::Result<()> {
                        let $s = self;
                        $nodelay
                    }

                    fn is_closing<S>(self, lp: &Loop<S>) -> bool {
                        $ty::is_closing(&self, lp)
                    }

                    $(fn $name<S>(self, lp: &mut Loop<S>, $($arg: $t),*) -> $ret {
                        $ty::$name(&self, lp, $($arg),*)
                    })*
                }
            };
        }
    };
}

stream_trait! {
    read_start(on_read: impl FnMut(&mut Loop<S>, Self, io::Result<&[u8]>) + 'static) -> io::Result<()>;
    read_stop() -> io::Result<()>;
    read_resume() -> io::Result<()>;
    write(data: &[u8]) -> io::Result<bool>;
    set_high_water_mark(bytes: usize) -> io::Result<()>;
    on_drain(on_drain: impl FnMut(&mut Loop<S>, Self) + 'static) -> io::Result<()>;
    shutdown(on_shutdown: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static) -> io::Result<()>;
    close() -> io::Result<()>;
}

impl_stream! {
    TcpStream, SocketAddr,
    listen: |lp, addr, callback| {
        let listener = ListenOptions::new().backlog(util::BACKLOG).bind(lp, *addr, callback)?;
        util::listening(listener.local_addr(lp)?.port());
        Ok(())
    },
    connect: TcpStream::connect(lp, *addr, callback),
    nodelay: |stream, lp, on| TcpStream::set_nodelay(&stream, lp, on),
}

impl_stream! {
    UnixStream, Path,
    listen: |lp, path, callback| {
        ListenOptions::new().backlog(util::BACKLOG).bind_unix(lp, path, callback)?;
        util::listening(0);
        Ok(())
    },
    connect: UnixStream::connect(lp, path, callback),
    nodelay: |_stream, _lp, _on| Ok(()),
}
