//! A load generator for `echo_server`: N connections, each sending M messages of S bytes in
//! lock-step (send one, wait for its whole echo, send the next), checking every byte.
//!
//! Usage: `echo_client [ADDR] [CONNECTIONS] [MESSAGES] [SIZE]`
//! (defaults `127.0.0.1:7000 10 1000 64`); ADDR is `host:port` or `unix:PATH`. Prints round trips per second and latency
//! percentiles; exits with an error if any echo differs or a connection fails.

use std::io;
use std::time::{Duration, Instant};

use evloop::{Loop, RunMode, TcpStream, UnixStream};

#[path = "support/stream.rs"]
mod stream;

use stream::{ServerAddr, Stream};

struct Run {
    messages: usize,
    size: usize,
    latencies: Vec<Duration>,
    finished: usize,
    failures: Vec<String>,
}

fn arg<T: std::str::FromStr>(n: usize, default: T) -> io::Result<T> {
    match std::env::args().nth(n) {
        Some(a) => {
            a.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad argument: {a}")))
        }
        None => Ok(default),
    }
}

fn main() -> io::Result<()> {
    env_logger::init();
    let addr: ServerAddr = arg(1, ServerAddr::Tcp("127.0.0.1:7000".parse().unwrap()))?;
    let connections: usize = arg(2, 10)?;
    let messages: usize = arg(3, 1000)?;
    let size: usize = arg(4, 64)?;

    let mut lp = Loop::with_state(Run {
        messages,
        size,
        latencies: Vec::with_capacity(connections * messages),
        finished: 0,
        failures: Vec::new(),
    })?;
    let start = Instant::now();
    for c in 0..connections {
        match &addr {
            ServerAddr::Tcp(a) => {
                TcpStream::connect(&mut lp, *a, move |lp, s, r| connected(lp, s, r, c))?;
            }
            ServerAddr::Unix(p) => {
                UnixStream::connect(&mut lp, p, move |lp, s, r| connected(lp, s, r, c))?;
            }
        }
    }
    lp.run(RunMode::Default)?;
    let elapsed = start.elapsed();

    let run = &mut lp.state;
    if !run.failures.is_empty() {
        for f in &run.failures {
            eprintln!("{f}");
        }
        return Err(io::Error::other(format!("{} connection(s) failed", run.failures.len())));
    }
    run.latencies.sort_unstable();
    let pct =
        |p: f64| run.latencies[((run.latencies.len() as f64 * p) as usize).min(run.latencies.len() - 1)];
    println!(
        "{} connections x {} messages x {} B: {:.0} round trips/s, latency p50 {:?} p90 {:?} p99 {:?} max {:?}",
        connections,
        messages,
        size,
        run.latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        run.latencies.last().copied().unwrap_or_default(),
    );
    Ok(())
}

fn connected<T: Stream>(lp: &mut Loop<Run>, stream: T, result: io::Result<()>, c: usize) {
    match result {
        Ok(()) => start_connection(lp, stream, c),
        Err(e) => {
            lp.state.failures.push(format!("connection {c}: connect: {e}"));
            let _ = stream.close(lp);
        }
    }
}

/// Sends message after message on one connection, checking each echo.
fn start_connection<T: Stream>(lp: &mut Loop<Run>, stream: T, c: usize) {
    let _ = stream.set_nodelay(lp, true);
    let size = lp.state.size;
    // Each message is distinct, so a mixed-up echo shows.
    let message = move |n: usize| -> Vec<u8> { (0..size).map(|i| (c * 31 + n * 7 + i) as u8).collect() };
    let mut sent = 0;
    let mut expected = message(0);
    let mut received = 0;
    let mut since = Instant::now();
    if stream.write(lp, &expected).is_err() {
        lp.state.failures.push(format!("connection {c}: first write failed"));
        return;
    }
    let read = stream.read_start(lp, move |lp, stream, data| {
        let bytes = match data {
            Ok(b) if !b.is_empty() => b,
            Ok(_) => return fail(lp, stream, c, "the server closed the connection early".into()),
            Err(e) => return fail(lp, stream, c, format!("read: {e}")),
        };
        if bytes != &expected[received..received + bytes.len().min(size - received)]
            || received + bytes.len() > size
        {
            return fail(lp, stream, c, format!("echo mismatch in message {sent}"));
        }
        received += bytes.len();
        if received < size {
            return;
        }
        lp.state.latencies.push(since.elapsed());
        sent += 1;
        if sent == lp.state.messages {
            lp.state.finished += 1;
            let _ = stream.close(lp);
            return;
        }
        expected = message(sent);
        received = 0;
        since = Instant::now();
        if let Err(e) = stream.write(lp, &expected) {
            fail(lp, stream, c, format!("write: {e}"));
        }
    });
    if let Err(e) = read {
        fail(lp, stream, c, format!("read_start: {e}"));
    }
}

fn fail<T: Stream>(lp: &mut Loop<Run>, stream: T, c: usize, why: String) {
    lp.state.failures.push(format!("connection {c}: {why}"));
    let _ = stream.close(lp);
}
