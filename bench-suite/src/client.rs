//! The load generator, the same for the three servers (`bench-suite client MODE ARGS...`).
//! It is written with evloop (one thread, so that it fits on its own core) except `sink` and
//! `hold`, which are plain blocking std code.
//!
//! Where a mode takes a `PORT` (on 127.0.0.1), `echo`, `pump` and `hold` also take
//! `unix:PATH`, a Unix domain socket's path, and run the same code over Unix streams.
//!
//! - `echo PORT CONNS SIZE MILLIS`: lock-step request/response on CONNS connections; every
//!   echo is checked byte for byte. Prints `round_trips_per_s`, `p50_us`, `p99_us`.
//! - `pump PORT CONNS MILLIS`: reads and discards what the server streams. Prints `mib_per_s`.
//! - `pound PORT CONCURRENCY MILLIS`: CONCURRENCY clients, each connecting, writing 5 bytes,
//!   reading the echo and closing, over and over. Prints `conns_per_s` and `errors`.
//!
//! `echo`, `pump` and `pound` also print `ops` (round trips, MiB, connections), which the
//! orchestrator divides the server's CPU time by.
//! - `udp_echo PORT SOCKETS SIZE MILLIS`: SOCKETS connected UDP sockets keep `UDP_WINDOW`
//!   datagrams in flight each; every echo is checked. Plain std code, blocking, one thread:
//!   evloop's `UdpSocket` would be the runtime under test. Prints `datagrams_per_s`, `lost`
//!   and `ops` (echoes).
//! - `sink EXPECTED`: accepts one connection, reads it to the end, checks the byte count.
//! - `hold PORT N`: opens N connections (blocking std ones), prints `connected`, keeps them until killed.
//! - `redis_load PORT KEYS VALUE_SIZE BATCH`: stores KEYS keys (`key:0000001`, ...) with
//!   VALUE_SIZE-byte values in a Redis-compatible server, BATCH pipelined `SET`s per write,
//!   checking every reply and then `DBSIZE`. Blocking std: its speed is not measured (the
//!   `redis` workload reads the server's memory afterwards). Prints `keys`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use evloop::{Loop, RunMode, TcpStream, Timer, UnixStream};

use crate::stream::Stream;
use crate::util::{self, parse, Target};

/// Calls `$f::<TcpStream>` or `$f::<UnixStream>` with the address of `$target` first.
macro_rules! on_stream {
    ($target:expr, $f:ident($($arg:expr),*)) => {
        match $target {
            Target::Tcp(addr) => $f::<TcpStream>(&addr, $($arg),*),
            Target::Unix(path) => $f::<UnixStream>(&path, $($arg),*),
        }
    };
}

pub fn main(args: &[String]) -> Result<(), String> {
    let mode = args.first().map(String::as_str).unwrap_or("");
    let rest = args.get(1..).unwrap_or(&[]);
    let r = match mode {
        "echo" => on_stream!(
            util::target(rest, 0)?,
            echo(
                parse(rest, 1, "CONNS")?,
                parse(rest, 2, "SIZE")?,
                Duration::from_millis(parse(rest, 3, "MILLIS")?)
            )
        ),
        "pump" => on_stream!(
            util::target(rest, 0)?,
            pump(parse(rest, 1, "CONNS")?, Duration::from_millis(parse(rest, 2, "MILLIS")?))
        ),
        "pound" => pound(
            util::local_port(parse(rest, 0, "PORT")?),
            parse(rest, 1, "CONCURRENCY")?,
            Duration::from_millis(parse(rest, 2, "MILLIS")?),
        ),
        "udp_echo" => udp_echo(
            util::local_port(parse(rest, 0, "PORT")?),
            parse(rest, 1, "SOCKETS")?,
            parse(rest, 2, "SIZE")?,
            Duration::from_millis(parse(rest, 3, "MILLIS")?),
        ),
        "sink" => sink(parse(rest, 0, "EXPECTED")?),
        "hold" => hold(util::target(rest, 0)?, parse(rest, 1, "N")?),
        "redis_load" => redis_load(
            util::local_port(parse(rest, 0, "PORT")?),
            parse(rest, 1, "KEYS")?,
            parse(rest, 2, "VALUE_SIZE")?,
            parse(rest, 3, "BATCH")?,
        ),
        other => return Err(format!("unknown client mode {other:?}")),
    };
    r.map_err(|e| format!("client {mode}: {e}"))
}

fn fail(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

// ---- echo ----

struct Echo<T> {
    conns: usize,
    message: std::rc::Rc<[u8]>,
    duration: Duration,
    streams: Vec<T>,
    /// Per connection: when its message in flight was sent.
    sent_at: Vec<Instant>,
    start: Instant,
    deadline: Instant,
    end: Option<Instant>,
    open: usize,
    latencies_ns: Vec<u64>,
    error: Option<String>,
}

/// The message for a given size: `PING\n` for 5 bytes (ping_pongs), else a pattern.
fn message(size: usize) -> Vec<u8> {
    if size == 5 {
        b"PING\n".to_vec()
    } else {
        (0..size).map(|i| (i % 251) as u8).collect()
    }
}

fn echo<T: Stream>(addr: &T::Addr, conns: usize, size: usize, duration: Duration) -> io::Result<()> {
    if conns == 0 || size == 0 {
        return Err(fail("CONNS and SIZE must be positive"));
    }
    let now = Instant::now();
    let mut lp = Loop::with_state(Echo::<T> {
        conns,
        message: message(size).into(),
        duration,
        streams: Vec::with_capacity(conns),
        sent_at: vec![now; conns],
        start: now,
        deadline: now,
        end: None,
        open: 0,
        latencies_ns: Vec::with_capacity(1 << 20),
        error: None,
    })?;
    for c in 0..conns {
        T::connect(&mut lp, addr, move |lp, stream, r| echo_connected(lp, stream, c, r))?;
    }
    lp.run(RunMode::Default)?;
    let st = &mut lp.state;
    if let Some(e) = st.error.take() {
        return Err(fail(e));
    }
    let end = st.end.ok_or_else(|| fail("did not finish"))?;
    if st.latencies_ns.is_empty() {
        return Err(fail("no round trip completed"));
    }
    st.latencies_ns.sort_unstable();
    let pct = |p: f64| {
        st.latencies_ns[((st.latencies_ns.len() as f64 * p) as usize).min(st.latencies_ns.len() - 1)]
    };
    util::result("round_trips_per_s", st.latencies_ns.len() as f64 / (end - st.start).as_secs_f64());
    util::result("p50_us", pct(0.50) as f64 / 1e3);
    util::result("p99_us", pct(0.99) as f64 / 1e3);
    util::result("ops", st.latencies_ns.len() as f64);
    Ok(())
}

fn echo_error<T: Stream>(lp: &mut Loop<Echo<T>>, stream: T, why: String) {
    if lp.state.error.is_none() {
        lp.state.error = Some(why);
    }
    // Stop everything: one failure voids the run.
    let streams = std::mem::take(&mut lp.state.streams);
    for s in streams.into_iter().chain([stream]) {
        if !s.is_closing(lp) {
            let _ = s.close(lp);
        }
    }
}

fn echo_connected<T: Stream>(lp: &mut Loop<Echo<T>>, stream: T, c: usize, r: io::Result<()>) {
    if let Err(e) = r {
        return echo_error(lp, stream, format!("connect: {e}"));
    }
    let _ = stream.set_nodelay(lp, true);
    let mut received = 0usize;
    let read = stream.read_start(lp, move |lp, stream, data| {
        let bytes = match data {
            Ok(b) if !b.is_empty() => b,
            Ok(_) => return echo_error(lp, stream, "the server closed a connection".into()),
            Err(e) => return echo_error(lp, stream, format!("read: {e}")),
        };
        let size = lp.state.message.len();
        if received + bytes.len() > size || bytes != &lp.state.message[received..received + bytes.len()] {
            return echo_error(lp, stream, "echo mismatch".into());
        }
        received += bytes.len();
        if received < size {
            return;
        }
        received = 0;
        let now = Instant::now();
        lp.state.latencies_ns.push((now - lp.state.sent_at[c]).as_nanos() as u64);
        if now >= lp.state.deadline {
            let _ = stream.close(lp);
            lp.state.open -= 1;
            if lp.state.open == 0 {
                lp.state.end = Some(now);
            }
            return;
        }
        lp.state.sent_at[c] = now;
        let message = lp.state.message.clone();
        if let Err(e) = stream.write(lp, &message) {
            echo_error(lp, stream, format!("write: {e}"));
        }
    });
    if let Err(e) = read {
        return echo_error(lp, stream, format!("read_start: {e}"));
    }
    lp.state.streams.push(stream);
    // Start once every connection is up, all at the same time.
    if lp.state.streams.len() == lp.state.conns {
        let now = Instant::now();
        lp.state.start = now;
        lp.state.deadline = now + lp.state.duration;
        lp.state.open = lp.state.conns;
        let message = lp.state.message.clone();
        for i in 0..lp.state.conns {
            let s = lp.state.streams[i];
            lp.state.sent_at[i] = now;
            if let Err(e) = s.write(lp, &message) {
                return echo_error(lp, s, format!("write: {e}"));
            }
        }
    }
}

// ---- udp_echo ----

/// Datagrams each client socket keeps in flight: enough for the server to find several per
/// wakeup (what batched receive is for), few enough that 16 sockets' 1,400-byte datagrams fit
/// the server's default receive buffer, so that loopback drops none.
const UDP_WINDOW: usize = 4;

/// An echo not back by then is counted lost, and replaced.
const UDP_LOSS_TIMEOUT: Duration = Duration::from_millis(200);

fn udp_echo(addr: SocketAddr, sockets: usize, size: usize, duration: Duration) -> io::Result<()> {
    if sockets == 0 || size == 0 {
        return Err(fail("SOCKETS and SIZE must be positive"));
    }
    let message = message(size);
    let socks = (0..sockets)
        .map(|_| {
            let s = std::net::UdpSocket::bind(util::local_port(0))?;
            s.connect(addr)?;
            s.set_read_timeout(Some(UDP_LOSS_TIMEOUT))?;
            Ok(s)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let deadline = start + duration;
    for s in &socks {
        for _ in 0..UDP_WINDOW {
            s.send(&message)?;
        }
    }
    let (mut echoed, mut lost) = (0u64, 0u64);
    'run: loop {
        for s in &socks {
            match s.recv(&mut buf) {
                Ok(n) if buf[..n] == message[..] => echoed += 1,
                Ok(_) => return Err(fail("echo mismatch")),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    lost += 1
                }
                Err(e) => return Err(fail(format!("recv: {e}"))),
            }
            if Instant::now() >= deadline {
                break 'run;
            }
            s.send(&message)?;
        }
    }
    let elapsed = start.elapsed();
    // Loopback drops nothing unless a receive buffer overflows: more than a trace of loss
    // means the server fell behind, and the figure would measure the timeout.
    if lost * 1000 > echoed {
        return Err(fail(format!("{lost} datagrams lost of {}", echoed + lost)));
    }
    util::result("datagrams_per_s", echoed as f64 / elapsed.as_secs_f64());
    util::result("lost", lost as f64);
    util::result("ops", echoed as f64);
    Ok(())
}

// ---- pump ----

struct Pump<T> {
    conns: usize,
    duration: Duration,
    streams: Vec<T>,
    start: Option<Instant>,
    end: Option<Instant>,
    bytes: u64,
    error: Option<String>,
}

fn pump<T: Stream>(addr: &T::Addr, conns: usize, duration: Duration) -> io::Result<()> {
    let mut lp = Loop::with_state(Pump::<T> {
        conns,
        duration,
        streams: Vec::new(),
        start: None,
        end: None,
        bytes: 0,
        error: None,
    })?;
    for _ in 0..conns {
        T::connect(&mut lp, addr, |lp, stream, r| {
            if let Err(e) = r {
                lp.state.error.get_or_insert(format!("connect: {e}"));
                return pump_stop(lp);
            }
            let read = stream.read_start(lp, |lp, stream, data| match data {
                Ok(b) if !b.is_empty() => {
                    if lp.state.start.is_some() {
                        lp.state.bytes += b.len() as u64;
                    }
                }
                _ => {
                    if lp.state.end.is_none() {
                        lp.state.error.get_or_insert("the server closed a connection".into());
                    }
                    let _ = stream.close(lp);
                    pump_stop(lp);
                }
            });
            if read.is_err() {
                let _ = stream.close(lp);
            }
            lp.state.streams.push(stream);
            if lp.state.streams.len() == lp.state.conns {
                lp.state.start = Some(Instant::now());
                let stop = Timer::new(lp, |lp, t| {
                    let _ = t.close(lp);
                    pump_stop(lp);
                });
                let _ = stop.start(lp, lp.state.duration, Duration::ZERO);
            }
        })?;
    }
    lp.run(RunMode::Default)?;
    let st = &mut lp.state;
    if let Some(e) = st.error.take() {
        return Err(fail(e));
    }
    let (start, end) = st.start.zip(st.end).ok_or_else(|| fail("did not finish"))?;
    let mib = st.bytes as f64 / (1u64 << 20) as f64;
    util::result("mib_per_s", mib / (end - start).as_secs_f64());
    util::result("ops", mib);
    Ok(())
}

fn pump_stop<T: Stream>(lp: &mut Loop<Pump<T>>) {
    if lp.state.end.is_none() {
        lp.state.end = Some(Instant::now());
    }
    for s in std::mem::take(&mut lp.state.streams) {
        if !s.is_closing(lp) {
            let _ = s.close(lp);
        }
    }
}

// ---- pound ----

struct Pound {
    addr: SocketAddr,
    deadline: Instant,
    active: usize,
    done: u64,
    errors: u64,
    first_error: Option<String>,
    end: Option<Instant>,
}

fn pound(addr: SocketAddr, concurrency: usize, duration: Duration) -> io::Result<()> {
    let start = Instant::now();
    let mut lp = Loop::with_state(Pound {
        addr,
        deadline: start + duration,
        active: 0,
        done: 0,
        errors: 0,
        first_error: None,
        end: None,
    })?;
    for _ in 0..concurrency {
        pound_one(&mut lp);
    }
    lp.run(RunMode::Default)?;
    let st = &lp.state;
    let end = st.end.unwrap_or_else(Instant::now);
    util::result("conns_per_s", st.done as f64 / (end - start).as_secs_f64());
    util::result("errors", st.errors as f64);
    util::result("ops", st.done as f64);
    if let Some(e) = &st.first_error {
        eprintln!("pound: {} errors, the first: {e}", st.errors);
    }
    Ok(())
}

fn pound_error(lp: &mut Loop<Pound>, why: String) {
    lp.state.errors += 1;
    lp.state.first_error.get_or_insert(why);
}

fn pound_one(lp: &mut Loop<Pound>) {
    lp.state.active += 1;
    let addr = lp.state.addr;
    let started = TcpStream::connect(lp, addr, |lp, stream, r| {
        if let Err(e) = r {
            pound_error(lp, format!("connect: {e}"));
            let _ = stream.close(lp);
            return pound_next(lp);
        }
        if let Err(e) = stream.write(lp, b"PING\n") {
            pound_error(lp, format!("write: {e}"));
            let _ = stream.close(lp);
            return pound_next(lp);
        }
        let mut got = 0;
        let read = stream.read_start(lp, move |lp, stream, data| {
            match data {
                Ok(b) if !b.is_empty() => {
                    got += b.len();
                    if got < 5 {
                        return;
                    }
                    lp.state.done += 1;
                }
                Ok(_) => pound_error(lp, "the server closed before echoing".into()),
                Err(e) => pound_error(lp, format!("read: {e}")),
            }
            let _ = stream.close(lp);
            pound_next(lp);
        });
        if let Err(e) = read {
            pound_error(lp, format!("read_start: {e}"));
            let _ = stream.close(lp);
            pound_next(lp);
        }
    });
    if let Err(e) = started {
        pound_error(lp, format!("connect: {e}"));
        lp.state.active -= 1;
    }
}

/// One client finished: start the next one until the deadline.
fn pound_next(lp: &mut Loop<Pound>) {
    lp.state.active -= 1;
    let now = Instant::now();
    if now < lp.state.deadline {
        pound_one(lp);
    } else if lp.state.active == 0 {
        lp.state.end = Some(now);
    }
}

// ---- sink and hold (blocking std) ----

fn sink(expected: u64) -> io::Result<()> {
    let listener = std::net::TcpListener::bind(util::local_any())?;
    util::listening(listener.local_addr()?.port());
    let (mut stream, _) = listener.accept()?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf)? {
            0 => break,
            n => total += n as u64,
        }
    }
    if total != expected {
        return Err(fail(format!("received {total} bytes, expected {expected}")));
    }
    util::result("bytes", total as f64);
    Ok(())
}

fn hold(target: Target, n: usize) -> io::Result<()> {
    let mut conns: Vec<OwnedFd> = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(match &target {
            Target::Tcp(addr) => std::net::TcpStream::connect(addr)?.into(),
            Target::Unix(path) => std::os::unix::net::UnixStream::connect(path)?.into(),
        });
    }
    println!("connected");
    io::stdout().flush()?;
    // Hold them until the orchestrator closes our stdin or kills us.
    let _ = io::stdin().read_to_end(&mut Vec::new());
    drop(conns);
    Ok(())
}

// ---- redis_load (blocking std) ----

/// A Redis command in RESP2 (an array of bulk strings).
fn resp_command(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads exactly `want`'s length and checks it is `want`.
fn expect_reply(stream: &mut std::net::TcpStream, want: &[u8], what: &str) -> io::Result<()> {
    let mut got = vec![0u8; want.len()];
    stream.read_exact(&mut got)?;
    if got != want {
        let shown = String::from_utf8_lossy(&got[..got.len().min(80)]).into_owned();
        return Err(fail(format!("{what}: unexpected reply {shown:?}")));
    }
    Ok(())
}

fn redis_load(addr: SocketAddr, keys: u64, value_size: usize, batch: u64) -> io::Result<()> {
    if batch == 0 || value_size == 0 {
        return Err(fail("VALUE_SIZE and BATCH must be positive"));
    }
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    // The orchestrator bounds the run too; this only turns a silent server into an error.
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let oks = b"+OK\r\n".repeat(batch as usize);
    let mut out = Vec::new();
    let mut first = 0;
    while first < keys {
        let n = batch.min(keys - first);
        out.clear();
        for i in first..first + n {
            // Distinct values, none of them an integer (which a server may store compactly).
            let key = format!("key:{:07}", i + 1);
            let value = format!("v{:0>width$}", i + 1, width = value_size - 1);
            resp_command(&mut out, &[b"SET", key.as_bytes(), &value.as_bytes()[..value_size]]);
        }
        stream.write_all(&out)?;
        expect_reply(&mut stream, &oks[..n as usize * 5], "SET")?;
        first += n;
    }
    out.clear();
    resp_command(&mut out, &[b"DBSIZE"]);
    stream.write_all(&out)?;
    expect_reply(&mut stream, format!(":{keys}\r\n").as_bytes(), "DBSIZE")?;
    util::result("keys", keys as f64);
    Ok(())
}
