//! Name resolution on the thread pool's slow lane (libuv's `uv_getaddrinfo`).
//!
//! Lookups run the system resolver (`getaddrinfo`, through std's `ToSocketAddrs`) on a worker.
//! They may take seconds, so they wait in the pool's slow lane, which never holds more than
//! half the workers: a burst of lookups cannot starve file-system work.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use crate::event_loop::Loop;
// Connect addresses live with the other address types in `net`; named here too, where
// they have always been public.
pub use crate::net::addr::{ConnectAddr, ToConnectAddr};
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
