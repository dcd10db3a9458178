//! The soak: 10,000 connections open at once against the `echo_server` and `mini_redis`
//! example binaries, every one served exactly, and the server's memory per connection.
//!
//! The clients are evloop itself, one loop in this process. Connects are paced: each new
//! connection pings the server, and at most `IN_FLIGHT` connections are unanswered at once,
//! well under the listener's backlog of 511, so that the accept queue never overflows into
//! the kernel's 1-s retries (pacing connects alone does not do it: the kernel completes a
//! handshake before the server accepts). Once every connection is up and the server holds
//! all of them (its descriptors, counted in /proc/PID/fd), its resident memory is measured;
//! only then does any connection send its data. The server and this
//! process each need about 10,000 descriptors, so the test raises its soft RLIMIT_NOFILE
//! (the server inherits it) and fails, saying what it needs, if the hard limit is lower.
//! The two tests run one after the other (a lock), so this process never holds 20,000.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{fresh_example, rss_bytes, start_example, Example};
use evloop::{Loop, RunMode, TcpStream};

/// Connections open at once.
const N: usize = 10_000;
/// Connects under way at once.
const IN_FLIGHT: usize = 256;
/// Descriptors beyond the connections: the loop's own, stdio, the test harness's.
const MARGIN: u64 = 512;
/// The whole test, in seconds: a debug build takes a few (see the report in the log).
const TIME_LIMIT: u64 = 50;
/// Bound on the server's resident memory per open connection. Measured (debug builds of
/// the examples): about 190 bytes for echo_server and 250-280 for mini_redis (a handle, its
/// stream state and the poller's entry; read buffers are per loop, not per connection).
/// 16 KiB leaves wide room for allocator slack and noise while still catching a buffer
/// held per connection (a 64 KiB read buffer each would be 4x over).
const RSS_PER_CONN_BOUND: usize = 16 << 10;

/// The two soaks do not overlap: each alone needs N descriptors in this process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Raises this process's soft limit on open files to `need` (children inherit it), or
/// fails saying what is needed.
fn raise_fd_limit(need: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|soft| soft >= need) {
        return;
    }
    if let Some(hard) = limit.maximum.filter(|&hard| hard < need) {
        panic!(
            "the soak needs RLIMIT_NOFILE of at least {need} (10,000 connections and a margin), \
             but the hard limit is {hard}: raise it (`ulimit -Hn {need}` as root, or \
             /etc/security/limits.conf) and rerun"
        );
    }
    setrlimit(Resource::Nofile, Rlimit { current: Some(need), maximum: limit.maximum })
        .unwrap_or_else(|e| panic!("cannot raise RLIMIT_NOFILE to {need}: {e}"));
}

/// Open descriptors of process `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// The kernel's count of connections dropped because an accept queue was full
/// (`TcpExt: ListenOverflows`, system-wide): printed, to show the pacing works.
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else { return 0 };
    let at = names.split_whitespace().position(|n| n == "ListenOverflows");
    at.and_then(|i| values.split_whitespace().nth(i)?.parse().ok()).unwrap_or(0)
}

/// How one connection went: a number to collect, or what was wrong.
type Verdict = Result<u64, String>;

/// What one connection does: a ping and its answer once connected, then what it sends (then FIN, if `half_close`), and `check`, which
/// looks at what came back so far (and whether the server ended the stream): `None` while
/// more is expected, else the verdict, with a number the test collects (mini_redis: the
/// value INCR returned).
struct Script {
    ping: &'static [u8],
    pong: &'static [u8],
    request: fn(usize) -> Vec<u8>,
    half_close: bool,
    check: fn(usize, &[u8], bool) -> Option<Verdict>,
}

#[derive(Default)]
struct Clients {
    streams: Vec<Option<TcpStream>>,
    started: usize,
    connected: usize,
    received: Vec<Vec<u8>>,
    finished: usize,
    results: Vec<u64>,
    errors: Vec<String>,
}

/// Starts the next connect. Once it is up, it pings the server, and once the answer is
/// back (the server has accepted it and serves it), the next connect starts: so at most
/// `IN_FLIGHT` connections wait in the server's accept queue.
fn connect_next(lp: &mut Loop<Clients>, addr: SocketAddr, script: &'static Script) {
    let i = lp.state.started;
    if i == N {
        return;
    }
    lp.state.started += 1;
    let started = TcpStream::connect(lp, addr, move |lp, stream, result| {
        let pinged = result.and_then(|()| {
            lp.state.streams[i] = Some(stream);
            stream.write(lp, script.ping)?;
            stream.read_start(lp, move |lp, stream, data| on_pong(lp, stream, data, i, addr, script))
        });
        if let Err(e) = pinged {
            lp.state.errors.push(format!("connect {i}: {e}"));
        }
    });
    if let Err(e) = started {
        lp.state.errors.push(format!("connect {i} did not start: {e}"));
    }
}

fn on_pong(
    lp: &mut Loop<Clients>,
    stream: TcpStream,
    data: std::io::Result<&[u8]>,
    i: usize,
    addr: SocketAddr,
    script: &'static Script,
) {
    let got = &mut lp.state.received[i];
    match data {
        Ok(bytes) if !bytes.is_empty() => got.extend_from_slice(bytes),
        Ok(_) => return lp.state.errors.push(format!("connection {i}: ended before the pong")),
        Err(e) => return lp.state.errors.push(format!("connection {i}: {e}")),
    }
    if got.as_slice() == script.pong {
        got.clear();
        lp.state.connected += 1;
        if let Err(e) = stream.read_stop(lp) {
            lp.state.errors.push(format!("connection {i}: {e}"));
        }
        connect_next(lp, addr, script);
    } else if !script.pong.starts_with(got) {
        let why = format!("connection {i}: not a pong: {:?}", String::from_utf8_lossy(got));
        lp.state.errors.push(why);
    }
}

/// Starts connection `i`'s exchange.
fn exchange(lp: &mut Loop<Clients>, i: usize, script: &'static Script) {
    let Some(stream) = lp.state.streams[i] else { return };
    let read = stream.read_start(lp, move |lp, stream, data| {
        let eof = match data {
            Ok(bytes) => {
                lp.state.received[i].extend_from_slice(bytes);
                bytes.is_empty()
            }
            Err(e) => {
                lp.state.errors.push(format!("connection {i}: {e}"));
                lp.state.finished += 1;
                let _ = stream.close(lp);
                return;
            }
        };
        let verdict = match (script.check)(i, &lp.state.received[i], eof) {
            None if eof => Some(Err(format!("connection {i}: ended early: {:?}", lp.state.received[i]))),
            verdict => verdict,
        };
        if let Some(verdict) = verdict {
            match verdict {
                Ok(value) => lp.state.results.push(value),
                Err(why) => lp.state.errors.push(why),
            }
            lp.state.finished += 1;
            let _ = stream.close(lp);
        }
    });
    let wrote = read.and_then(|()| stream.write(lp, &(script.request)(i)));
    let shut = wrote.and_then(|_| if script.half_close { stream.shutdown(lp, |_, _| {}) } else { Ok(()) });
    if let Err(e) = shut {
        lp.state.errors.push(format!("connection {i}: {e}"));
    }
}

/// Runs the loop until `done`, within the time limit.
fn run_until(lp: &mut Loop<Clients>, start: Instant, what: &str, done: impl Fn(&Clients) -> bool) {
    while !done(&lp.state) && lp.state.errors.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(TIME_LIMIT), "{what}: not done within {TIME_LIMIT} s");
        lp.run(RunMode::Once).unwrap();
    }
    let errors = &lp.state.errors;
    assert!(
        errors.is_empty(),
        "{what}: {} errors, the first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
}

/// Opens N connections to `server`, all at once, measures the server's memory, then runs
/// `script` on every connection and returns what the checks collected, in completion order.
fn soak(name: &str, server: &Example, script: &'static Script) -> Vec<u64> {
    let start = Instant::now();
    let pid = server.child.id();
    let (fds_before, rss_before) = (fd_count(pid), rss_bytes(pid));
    let overflows_before = listen_overflows();
    let mut lp = Loop::with_state(Clients {
        streams: vec![None; N],
        received: vec![Vec::new(); N],
        ..Clients::default()
    })
    .unwrap();
    common::time_limit(&mut lp, TIME_LIMIT);
    for _ in 0..IN_FLIGHT {
        connect_next(&mut lp, server.addr, script);
    }
    run_until(&mut lp, start, "connecting", |c| c.connected == N);
    let connected_in = start.elapsed();
    // Connected on our side means queued on the server's: wait until it has accepted them.
    while fd_count(pid) < fds_before + N {
        assert!(
            start.elapsed() < Duration::from_secs(TIME_LIMIT),
            "{name} holds {} of {N}",
            fd_count(pid) - fds_before
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let rss_open = rss_bytes(pid);
    let per_conn = rss_open.saturating_sub(rss_before) / N;
    eprintln!(
        "soak {name}: {N} connections open at once after {connected_in:?} ({} listen overflows); \
         server VmRSS {} KiB before, {} KiB with all open: {per_conn} bytes per connection",
        listen_overflows().saturating_sub(overflows_before),
        rss_before >> 10,
        rss_open >> 10,
    );
    for i in 0..N {
        exchange(&mut lp, i, script);
    }
    run_until(&mut lp, start, "exchanging", |c| c.finished == N);
    eprintln!("soak {name}: {N} exchanges checked after {:?} in all", start.elapsed());
    assert!(
        per_conn < RSS_PER_CONN_BOUND,
        "{name}: {per_conn} bytes of server memory per connection (bound {RSS_PER_CONN_BOUND})"
    );
    lp.run(RunMode::Default).unwrap();
    std::mem::take(&mut lp.state.results)
}

/// Starts an example on a free port, with the descriptors the soak needs.
fn start(name: &str) -> Example {
    raise_fd_limit(N as u64 + MARGIN);
    let mut cmd = Command::new(fresh_example(name));
    cmd.arg("127.0.0.1:0");
    start_example(cmd)
}

/// Echo: a header naming the connection, then 4 KiB of a pattern that depends on it.
fn echo_request(i: usize) -> Vec<u8> {
    let mut data = format!("connection {i:05}\n").into_bytes();
    data.extend((0..4096).map(|j| ((i * 7 + j * 31) % 253) as u8));
    data
}

fn echo_check(i: usize, got: &[u8], eof: bool) -> Option<Verdict> {
    let want = echo_request(i);
    if got.len() > want.len() || (eof && got.len() < want.len()) || !want.starts_with(got) {
        let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        return Some(Err(format!(
            "connection {i}: echo differs at byte {at} ({} of {} bytes)",
            got.len(),
            want.len()
        )));
    }
    eof.then_some(Ok(0))
}

static ECHO: Script =
    Script { ping: b"ping\n", pong: b"ping\n", request: echo_request, half_close: true, check: echo_check };

#[test]
fn ten_thousand_connections_to_echo_server_each_get_their_bytes_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = start("echo_server");
    let results = soak("echo_server", &server, &ECHO);
    assert_eq!(results.len(), N);
}

/// A request in RESP, as clients send them.
fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out += &format!("${}\r\n{a}\r\n", a.len());
    }
    out.into_bytes()
}

fn redis_value(i: usize) -> String {
    format!("value-{i}-{}", "abcdefghij".repeat(i % 7))
}

/// SET key:i, GET it back, INCR the shared counter: one pipelined batch.
fn redis_request(i: usize) -> Vec<u8> {
    let key = format!("key:{i}");
    [resp(&["SET", &key, &redis_value(i)]), resp(&["GET", &key]), resp(&["INCR", "counter"])].concat()
}

fn redis_check(i: usize, got: &[u8], _eof: bool) -> Option<Verdict> {
    let value = redis_value(i);
    let want = format!("+OK\r\n${}\r\n{value}\r\n:", value.len());
    let fail = || Some(Err(format!("connection {i}: {:?}", String::from_utf8_lossy(got))));
    let Some(rest) = got.strip_prefix(want.as_bytes()) else {
        return if want.as_bytes().starts_with(got) { None } else { fail() };
    };
    let Some(digits) = rest.strip_suffix(b"\r\n") else {
        return if rest.iter().all(u8::is_ascii_digit) { None } else { fail() };
    };
    match std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()) {
        Some(n) => Some(Ok(n)),
        None => fail(),
    }
}

static REDIS: Script = Script {
    ping: b"PING\r\n",
    pong: b"+PONG\r\n",
    request: redis_request,
    half_close: false,
    check: redis_check,
};

/// Sends `request` on a fresh blocking connection and reads until `want` (or 10 s).
fn ask(addr: SocketAddr, request: &[u8], want: &str) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut got = vec![0; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[test]
fn ten_thousand_connections_to_mini_redis_each_set_get_and_incr() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = start("mini_redis");
    let mut counts = soak("mini_redis", &server, &REDIS);
    // Every INCR saw a different value, and together they are exactly 1..=N.
    counts.sort_unstable();
    assert!(counts.iter().copied().eq(1..=N as u64), "INCR values are not 1..={N}");
    ask(server.addr, &resp(&["GET", "counter"]), &format!("${}\r\n{N}\r\n", N.to_string().len()));
    ask(server.addr, &resp(&["DBSIZE"]), &format!(":{}\r\n", N + 1));
    let key = format!("key:{}", N - 1);
    let value = redis_value(N - 1);
    ask(server.addr, &resp(&["GET", &key]), &format!("${}\r\n{value}\r\n", value.len()));
}
