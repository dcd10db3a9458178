//! One loop per core, shared by the server examples' `--threads N`: N threads, each with its
//! own `Loop` and its own listener on the same address (`SO_REUSEPORT`), so the kernel
//! spreads connections among them and nothing is shared between the loops.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use evloop::{ListenOptions, Loop, RunMode, TcpStream};

/// Starts `threads` loops serving `addr`; each gets its own connection handler from
/// `handler`. The first binds (port 0 picks a port), the others join it once its address is
/// known. Returns the address once every loop listens, and the threads to join.
pub fn serve_per_core<H>(
    threads: usize,
    addr: SocketAddr,
    handler: impl Fn() -> H + Send + Sync + 'static,
) -> io::Result<(SocketAddr, Vec<JoinHandle<()>>)>
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
                Err(e) => return drop(ready_tx.send(Err(e))),
            };
            let listening = ListenOptions::new().reuse_port(true).bind(&mut lp, at, handler());
            let _ = ready_tx.send(listening.and_then(|l| l.local_addr(&lp)));
            if let Err(e) = lp.run(RunMode::Default) {
                log::error!("loop {i}: {e}");
            }
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
