//! Name resolution on the thread pool's slow lane (libuv's `uv_getaddrinfo`).
//!
//! Lookups run the system resolver (`getaddrinfo`, through std's `ToSocketAddrs`) on a worker.
//! They may take seconds, so they wait in the pool's slow lane, which never holds more than
//! half the workers: a burst of lookups cannot starve file-system work.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::event_loop::Loop;
use crate::pool::{Lane, WorkRequest};

/// Resolves `host` (a name or an IP address) to socket addresses with `port`, in the order
/// the system gives them. `callback` runs on the loop thread.
///
/// ```
/// use evloop::{dns, Loop, RunMode};
///
/// let mut lp = Loop::with_state(Vec::new())?;
/// dns::resolve(&mut lp, "localhost", 80, |lp, addrs| lp.state = addrs.unwrap())?;
/// lp.run(RunMode::Default)?;
/// assert!(lp.state.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn resolve<S>(
    lp: &mut Loop<S>,
    host: &str,
    port: u16,
    callback: impl FnOnce(&mut Loop<S>, io::Result<Vec<SocketAddr>>) + 'static,
) -> io::Result<WorkRequest> {
    let host = host.to_owned();
    lp.submit_work(
        Lane::Slow,
        move || lookup(&host, port),
        move |lp, r| callback(lp, r.and_then(|inner| inner)),
    )
}

fn lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("resolve {host}: no addresses")));
    }
    Ok(addrs)
}

/// Where [`TcpStream::connect`](crate::TcpStream::connect) connects: an address, or a host
/// name and port to resolve first.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectAddr {
    /// Connect to this address.
    Socket(SocketAddr),
    /// Resolve the name on the pool, then try its addresses in order until one connects.
    Host(String, u16),
}

/// What [`TcpStream::connect`](crate::TcpStream::connect) accepts: a `SocketAddr`, a
/// `"host:port"` string (`"[::1]:80"` for IPv6 literals), or a `(host, port)` pair.
pub trait ToConnectAddr {
    /// The address, or an error if a string is not `host:port`.
    fn to_connect_addr(&self) -> io::Result<ConnectAddr>;
}

impl ToConnectAddr for SocketAddr {
    fn to_connect_addr(&self) -> io::Result<ConnectAddr> {
        Ok(ConnectAddr::Socket(*self))
    }
}

impl ToConnectAddr for (&str, u16) {
    fn to_connect_addr(&self) -> io::Result<ConnectAddr> {
        let host = self.0.trim_start_matches('[').trim_end_matches(']');
        Ok(match host.parse::<IpAddr>() {
            Ok(ip) => ConnectAddr::Socket(SocketAddr::new(ip, self.1)),
            Err(_) => ConnectAddr::Host(host.to_owned(), self.1),
        })
    }
}

impl ToConnectAddr for str {
    fn to_connect_addr(&self) -> io::Result<ConnectAddr> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(ConnectAddr::Socket(addr));
        }
        let invalid = || io::Error::new(io::ErrorKind::InvalidInput, format!("not host:port: {self:?}"));
        let (host, port) = self.rsplit_once(':').ok_or_else(invalid)?;
        let port = port.parse().map_err(|_| invalid())?;
        if host.is_empty() {
            return Err(invalid());
        }
        (host, port).to_connect_addr()
    }
}

impl ToConnectAddr for &str {
    fn to_connect_addr(&self) -> io::Result<ConnectAddr> {
        (**self).to_connect_addr()
    }
}

impl ToConnectAddr for String {
    fn to_connect_addr(&self) -> io::Result<ConnectAddr> {
        self.as_str().to_connect_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_addresses_parse() {
        let a = |s: &str| s.to_connect_addr().map_err(|e| e.kind());
        assert_eq!(a("127.0.0.1:80"), Ok(ConnectAddr::Socket("127.0.0.1:80".parse().unwrap())));
        assert_eq!(a("[::1]:8080"), Ok(ConnectAddr::Socket("[::1]:8080".parse().unwrap())));
        assert_eq!(a("localhost:7000"), Ok(ConnectAddr::Host("localhost".into(), 7000)));
        assert_eq!(a("localhost"), Err(io::ErrorKind::InvalidInput));
        assert_eq!(a("localhost:http"), Err(io::ErrorKind::InvalidInput));
        assert_eq!(a(":80"), Err(io::ErrorKind::InvalidInput));
        assert_eq!(("::1", 5).to_connect_addr().unwrap(), ConnectAddr::Socket("[::1]:5".parse().unwrap()));
    }
}
