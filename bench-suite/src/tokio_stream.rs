//! tokio's TCP and Unix listeners and streams behind two small traits, so that the tokio
//! servers (rt_tokio.rs) have one body of per-connection code for both. The stream methods
//! are tokio's own (`ready`, `try_read`, `try_write`; writes through `AsyncWrite`), which
//! both types have under the same names but in no trait.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncWrite, Interest, Ready};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

pub trait Conn: AsyncWrite + Unpin + Send + 'static {
    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + Send + '_;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

/// The trait's methods, calling the type's own (an inherent method wins over the trait's in
/// `$ty::name`, so this never recurses).
macro_rules! conn {
    ($ty:ident) => {
        impl Conn for $ty {
            fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + Send + '_ {
                $ty::ready(self, interest)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                $ty::try_read(self, buf)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                $ty::try_write(self, buf)
            }
        }
    };
}

conn!(TcpStream);
conn!(UnixStream);

pub trait Listener {
    type Conn: Conn;

    /// The next connection (TCP: with `TCP_NODELAY` set), or `None` after an accept error
    /// (out of descriptors, a client that gave up), which does not end the server, as in
    /// evloop and libuv: it backs off 10 ms first.
    fn next_conn(&self) -> impl Future<Output = Option<Self::Conn>>;
}

async fn backing_off<T>(accepted: io::Result<T>) -> Option<T> {
    match accepted {
        Ok(x) => Some(x),
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(10)).await;
            None
        }
    }
}

impl Listener for TcpListener {
    type Conn = TcpStream;

    async fn next_conn(&self) -> Option<TcpStream> {
        let (stream, _) = backing_off(self.accept().await).await?;
        let _ = stream.set_nodelay(true);
        Some(stream)
    }
}

impl Listener for UnixListener {
    type Conn = UnixStream;

    async fn next_conn(&self) -> Option<UnixStream> {
        backing_off(self.accept().await).await.map(|(stream, _)| stream)
    }
}
