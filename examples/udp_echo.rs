//! A UDP echo server: every datagram comes back to its sender, as it came (a zero-byte
//! datagram too).
//!
//! Usage: `udp_echo [ADDR]` (default `127.0.0.1:7001`). Prints `listening on ADDR` once
//! bound, with the port resolved if ADDR asked for port 0.
//!
//! On SIGINT or SIGTERM it shuts down gracefully: it stops receiving, lets the echoes still
//! queued go out, and exits 0. A second SIGINT exits at once (status 130).

#![allow(dead_code)] // `serve` is also used by the tests

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;

use evloop::{Loop, RecvFlags, RunMode, UdpSocket};

#[path = "support/shutdown.rs"]
mod shutdown;

/// The server's state: its socket, for the shutdown to stop.
struct Echo {
    socket: Option<UdpSocket>,
}

fn main() -> io::Result<ExitCode> {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = match args.as_slice() {
        [] => "127.0.0.1:7001".parse().unwrap(),
        [a] => a.parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{a}: {e}")))?,
        _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "usage: udp_echo [ADDR]")),
    };
    let mut lp = Loop::with_state(Echo { socket: None })?;
    let socket = serve(&mut lp, addr)?;
    lp.state.socket = Some(socket);
    let outcome = shutdown::on_signals(&mut lp, shutdown::GRACE, stop_receiving)?;
    println!("listening on {}", socket.local_addr(&lp)?);
    io::stdout().flush()?;
    // Runs while the socket receives, and after a shutdown began, until the queued echoes
    // have gone: a socket that neither receives nor sends keeps the loop no longer.
    lp.run(RunMode::Default)?;
    Ok(shutdown::exit_status(outcome.get()))
}

/// Starts a UDP echo server on `addr`.
pub fn serve<S: 'static>(lp: &mut Loop<S>, addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(lp, addr)?;
    socket.recv_start(lp, echo)?;
    Ok(socket)
}

fn echo<S>(lp: &mut Loop<S>, socket: UdpSocket, dgram: io::Result<(&[u8], SocketAddr, RecvFlags)>) {
    match dgram {
        Ok((data, from, _)) => {
            // A datagram the kernel refuses, or that finds the send queue full, is lost, as
            // UDP loses datagrams; the server goes on.
            if let Err(e) = socket.send_to(lp, data, from) {
                log::debug!("{socket:?}: echo to {from} dropped: {e}");
            }
        }
        // An error the kernel reports (an ICMP reply to an earlier echo): reception goes on.
        Err(e) => log::debug!("{socket:?}: {e}"),
    }
}

/// The first step of the graceful shutdown: stop receiving.
fn stop_receiving(lp: &mut Loop<Echo>) {
    if let Some(socket) = lp.state.socket {
        let _ = socket.recv_stop(lp);
    }
}
