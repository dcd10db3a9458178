//! Connect addresses: what [`TcpStream::connect`](crate::TcpStream::connect) accepts, and
//! whether it names a socket address or a host name to resolve first (`dns::resolve`).

use std::io;
use std::net::{IpAddr, SocketAddr};

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
