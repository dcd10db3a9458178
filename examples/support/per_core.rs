//! One loop per core, shared by the server examples' `--threads N`: N threads, each with its
//! own `Loop` and its own listener on the same address (`SO_REUSEPORT`), so the kernel
//! spreads connections among them and nothing is shared between the loops. Each loop
//! watches SIGINT and SIGTERM itself (a signal reaches every loop that watches it), so a
//! graceful shutdown reaches every loop.

#![allow(dead_code)] // each example and test that includes it uses a part

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use std::time::Duration;

use evloop::{ListenOptions, Loop, RunMode, TcpStream};

use super::shutdown::{on_signals, Outcome};

/// Starts `threads` loops serving `addr`; each gets its own connection handler from
/// `handler`, and shuts down gracefully on SIGINT or SIGTERM (`drain` first, then `grace`
/// as the deadline; see `shutdown::on_signals`).
/// The first binds (port 0 picks a port), the others join it once its address is known.
/// Returns the address once every loop listens, and the threads to join, each with its
/// shutdown's outcome.
pub fn serve_per_core<H>(
    threads: usize,
    addr: SocketAddr,
    grace: Duration,
    drain: fn(&mut Loop<()>),
    handler: impl Fn() -> H + Send + Sync + 'static,
) -> io::Result<(SocketAddr, Vec<JoinHandle<Option<Outcome>>>)>
where
    H: FnMut(&mut Loop<()>, TcpStream) + 'static,
{
    let handler = Arc::new(handler);
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let spawn = |i: usize, at: SocketAddr| {
        let (ready_tx, handler) = (ready_tx.clone(), handler.clone());
        std::thread::Builder::new().name(format!("loop-{i}")).spawn(move || {
            let mut lp = match Loop::new() {
                Ok(lp) => lp,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return None;
                }
            };
            let listening = ListenOptions::new().reuse_port(true).bind(&mut lp, at, handler());
            let outcome =
                match listening.and_then(|l| Ok((l.local_addr(&lp)?, on_signals(&mut lp, grace, drain)?))) {
                    Ok((bound, outcome)) => {
                        let _ = ready_tx.send(Ok(bound));
                        outcome
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return None;
                    }
                };
            if let Err(e) = lp.run(RunMode::Default) {
                log::error!("loop {i}: {e}");
            }
            outcome.get()
        })
    };
    let wait = || ready.recv().map_err(io::Error::other).and_then(|r| r);
    let mut workers = vec![spawn(0, addr)?];
    let bound = wait()?;
    for i in 1..threads {
        workers.push(spawn(i, bound)?);
    }
    for _ in 1..threads {
        wait()?;
    }
    log::info!("{threads} loops, one listener each on {bound}");
    Ok((bound, workers))
}

/// Takes `--threads N` (N >= 1) out of `args`, returning N (1 if absent) and the rest.
pub fn take_threads(args: impl Iterator<Item = String>) -> io::Result<(usize, Vec<String>)> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let (mut threads, mut rest) = (1, Vec::new());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--threads" {
            let n = args.next().ok_or_else(|| invalid("--threads needs a number".into()))?;
            threads = n.parse().ok().filter(|&n| n >= 1).ok_or_else(|| invalid(format!("--threads {n}")))?;
        } else {
            rest.push(arg);
        }
    }
    Ok((threads, rest))
}
