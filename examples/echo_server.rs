//! An echo server: every byte a client sends comes back.
//!
//! Usage: `echo_server [ADDR] [--threads N]` (default `127.0.0.1:7000`, one thread). ADDR is
//! `host:port` or `unix:PATH` (a Unix domain socket, whose file is removed on exit; `--threads`
//! serves TCP only). Prints `listening on ADDR` once bound. It is the target of the echo and ping-pong benchmarks, so
//! it stays lean: no copy beyond what the socket cannot take at once, and backpressure
//! instead of unbounded buffering — when a client stops reading, the server stops reading
//! from it until its write queue drains.
//!
//! With `--threads N`, N threads each run their own loop with their own listener on the
//! same address (`SO_REUSEPORT`): the kernel spreads connections among them, one loop per
//! core, nothing shared.
//!
//! On SIGINT or SIGTERM it shuts down gracefully: it stops accepting (new connections are
//! refused), every open connection is served until its client closes it, and it exits 0
//! once they are all gone; connections still open after 5 s are closed and it exits 1. A
//! second SIGINT exits at once (status 130).

#![allow(dead_code)] // `serve` is also used by the tests and benchmarks

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;

use evloop::{Loop, RunMode, TcpListener, UnixListener};

#[path = "support/per_core.rs"]
mod per_core;
#[path = "support/shutdown.rs"]
mod shutdown;
#[path = "support/stream.rs"]
mod stream;

use stream::{ServerAddr, Stream};

fn main() -> io::Result<ExitCode> {
    env_logger::init();
    let (threads, rest) = per_core::take_threads(std::env::args().skip(1))?;
    let addr: ServerAddr = match rest.as_slice() {
        [] => ServerAddr::Tcp("127.0.0.1:7000".parse().unwrap()),
        [a] => a.parse()?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "usage: echo_server [ADDR] [--threads N]",
            ))
        }
    };
    stream::refuse_threads_with_unix(threads, &addr)?;
    let addr = match addr {
        ServerAddr::Tcp(addr) => addr,
        ServerAddr::Unix(path) => return serve_unix_main(path),
    };
    if threads > 1 {
        let (bound, workers) =
            per_core::serve_per_core(threads, addr, shutdown::GRACE, |_| {}, || on_connection)?;
        println!("listening on {bound}");
        io::stdout().flush()?;
        let outcomes: Vec<_> = workers.into_iter().map(|w| w.join().ok().flatten()).collect();
        let forced = outcomes.contains(&Some(shutdown::Outcome::Forced));
        return Ok(shutdown::exit_status(forced.then_some(shutdown::Outcome::Forced)));
    }
    let mut lp = Loop::new()?;
    let server = serve(&mut lp, addr)?;
    let outcome = shutdown::on_signals(&mut lp, shutdown::GRACE, |_| {})?;
    println!("listening on {}", server.local_addr(&lp)?);
    io::stdout().flush()?;
    lp.run(RunMode::Default)?;
    Ok(shutdown::exit_status(outcome.get()))
}

/// `main` for a Unix socket path: the same echo and graceful shutdown; the socket file goes
/// when the server ends.
fn serve_unix_main(path: std::path::PathBuf) -> io::Result<ExitCode> {
    let mut lp = Loop::new()?;
    UnixListener::bind(&mut lp, &path, on_connection)?;
    let outcome = shutdown::on_signals(&mut lp, shutdown::GRACE, |_| {})?;
    let addr = ServerAddr::Unix(path);
    println!("listening on {addr}");
    io::stdout().flush()?;
    let ran = lp.run(RunMode::Default);
    stream::remove_socket_file(&addr);
    ran?;
    Ok(shutdown::exit_status(outcome.get()))
}

/// Starts an echo server on `addr`.
pub fn serve<S: 'static>(lp: &mut Loop<S>, addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(lp, addr, on_connection)
}

/// Serves one connection (TCP or Unix): echo, with backpressure.
pub fn on_connection<S: 'static, T: Stream>(lp: &mut Loop<S>, stream: T) {
    // Resume reading once a client that stopped reading has caught up.
    let resumed = stream.on_drain(lp, |lp, stream| drop(stream.read_resume(lp)));
    if resumed.and_then(|()| stream.read_start(lp, echo)).is_err() {
        let _ = stream.close(lp);
    }
}

fn echo<S, T: Stream>(lp: &mut Loop<S>, stream: T, data: io::Result<&[u8]>) {
    match data {
        Ok(bytes) if !bytes.is_empty() => match stream.write(lp, bytes) {
            Ok(true) => {}
            // The client is not reading: stop reading from it until the queue drains.
            Ok(false) => {
                let _ = stream.read_stop(lp);
            }
            Err(_) => {
                let _ = stream.close(lp);
            }
        },
        // End of stream: send FIN once the echoes have gone, then close.
        Ok(_) => {
            if stream.shutdown(lp, move |lp, _| drop(stream.close(lp))).is_err() {
                let _ = stream.close(lp);
            }
        }
        Err(e) => {
            log::debug!("{stream:?}: {e}");
            let _ = stream.close(lp);
        }
    }
}
