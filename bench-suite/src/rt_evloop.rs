//! The evloop side of every workload (`bench-suite child evloop WORKLOAD ARGS...`).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use evloop::{
    fs, Channel, Idle, ListenOptions, Loop, RunMode, TcpListener, TcpStream, Timer, UdpSocket, UnixStream,
    Waker,
};

use crate::stream::Stream;
use crate::util::{self, parse};

pub fn main(args: &[String]) -> Result<(), String> {
    let workload = args.first().map(String::as_str).unwrap_or("");
    let rest = args.get(1..).unwrap_or(&[]);
    let r = match workload {
        "loop_count" => {
            loop_count(parse(rest, 0, "N")?, rest.len() > 1 && parse::<u8>(rest, 1, "LISTENER")? != 0)
        }
        "timers" => timers(parse(rest, 0, "N")?),
        "defer" => {
            defer(parse(rest, 0, "N")?, parse(rest, 1, "OUTSTANDING")?, parse::<u8>(rest, 2, "TIMER")? != 0)
        }
        "echo_server" => echo_server::<TcpStream>(&util::local_any(), optional_n(rest, 0)?),
        "unix_echo_server" => {
            echo_server::<UnixStream>(&parse::<PathBuf>(rest, 0, "PATH")?, optional_n(rest, 1)?)
        }
        "echo_server_threads" => echo_server_threads(parse(rest, 0, "THREADS")?),
        "pump_server" => pump_server::<TcpStream>(&util::local_any()),
        "unix_pump_server" => pump_server::<UnixStream>(&parse::<PathBuf>(rest, 0, "PATH")?),
        "udp_echo_server" => udp_echo_server(),
        "write_batch" => write_batch(parse(rest, 0, "PORT")?, parse(rest, 1, "N")?),
        "waker" => waker(parse(rest, 0, "THREADS")?, parse(rest, 1, "ROUNDS")?),
        "channel" => channel(parse(rest, 0, "THREADS")?, parse(rest, 1, "PER_THREAD")?),
        "queue_work" => queue_work(parse(rest, 0, "N")?, parse(rest, 1, "IN_FLIGHT")?),
        "fs_stat" => fs_stat(parse(rest, 0, "N")?, parse(rest, 1, "IN_FLIGHT")?, parse(rest, 2, "PATH")?),
        "spawn" => spawn(parse(rest, 0, "N")?, parse(rest, 1, "IN_FLIGHT")?),
        other => return Err(format!("unknown workload {other:?}")),
    };
    r.map_err(|e| format!("evloop {workload}: {e}"))
}

/// The memory servers' `N` (report after N connections), if given.
fn optional_n(args: &[String], i: usize) -> Result<Option<u64>, String> {
    if args.len() > i {
        parse(args, i, "N").map(Some)
    } else {
        Ok(None)
    }
}

/// N idle iterations. With `listener`, a TCP listener on 127.0.0.1:0 that nobody connects to
/// is open meanwhile: the loop then has a socket to poll (without one, evloop skips the poll's
/// system call when it would not block).
fn loop_count(n: u64, listener: bool) -> io::Result<()> {
    let mut lp = Loop::with_state((0u64, None::<TcpListener>))?;
    if listener {
        let l = ListenOptions::new().backlog(util::BACKLOG).bind(&mut lp, util::local_any(), |lp, s| {
            let _ = s.close(lp);
        })?;
        lp.state.1 = Some(l);
    }
    let idle = Idle::new(&mut lp, move |lp, idle| {
        lp.state.0 += 1;
        if lp.state.0 == n {
            idle.stop(lp).unwrap();
            if let Some(l) = lp.state.1.take() {
                l.close(lp).unwrap();
            }
        }
    });
    idle.start(&mut lp)?;
    let start = Instant::now();
    lp.run(RunMode::Default)?;
    let rate = util::per_sec(n, start);
    assert_eq!(lp.state.0, n);
    util::result("iterations_per_s", rate);
    Ok(())
}

fn timers(n: u64) -> io::Result<()> {
    let mut lp = Loop::with_state(0u64)?;
    let mut timers = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n {
        let t = Timer::new(&mut lp, |lp, _| lp.state += 1);
        t.start(&mut lp, Duration::from_millis(util::timer_timeout_ms(i)), Duration::ZERO)?;
        timers.push(t);
    }
    let init = start.elapsed();
    lp.run(RunMode::Default)?;
    for t in &timers {
        t.close(&mut lp)?;
    }
    lp.run(RunMode::Default)?;
    let total = start.elapsed();
    assert_eq!(lp.state, n);
    util::result("starts_per_s", n as f64 / init.as_secs_f64());
    util::result("total_ms", total.as_secs_f64() * 1e3);
    util::result("peak_rss_kib", util::status_kib("VmHWM:").unwrap_or(0) as f64);
    Ok(())
}

/// The `defer` workload's count: calls scheduled (`made`) and run (`ran`) of `total`.
struct Deferred {
    made: u64,
    ran: u64,
    total: u64,
}

/// Schedules the next deferred call, if any are left.
fn defer_next(lp: &mut Loop<Deferred>) {
    if lp.state.made < lp.state.total {
        lp.state.made += 1;
        lp.defer(|lp| {
            lp.state.ran += 1;
            defer_next(lp);
        });
    }
}

/// Schedules the next call as a 0 ms timer (opened, started, closed in its callback), if any
/// are left: what a program without `defer` writes.
fn timer_next(lp: &mut Loop<Deferred>) {
    if lp.state.made < lp.state.total {
        lp.state.made += 1;
        let t = Timer::new(lp, |lp, t| {
            t.close(lp).unwrap();
            lp.state.ran += 1;
            timer_next(lp);
        });
        t.start(lp, Duration::ZERO, Duration::ZERO).unwrap();
    }
}

/// N one-shot calls on the next iteration, `outstanding` at a time, each scheduling the next
/// (as `benches/defer.rs`): `Loop::defer`, or with `timer` a 0 ms `Timer` per call.
fn defer(n: u64, outstanding: u64, timer: bool) -> io::Result<()> {
    let mut lp = Loop::with_state(Deferred { made: 0, ran: 0, total: n })?;
    let next = if timer { timer_next } else { defer_next };
    let start = Instant::now();
    for _ in 0..outstanding.min(n) {
        next(&mut lp);
    }
    lp.run(RunMode::Default)?;
    let rate = util::per_sec(n, start);
    if lp.state.ran != n {
        return Err(io::Error::other(format!("{} of {n} calls ran", lp.state.ran)));
    }
    util::result("calls_per_s", rate);
    Ok(())
}

struct EchoServer {
    accepted: u64,
    report_after: Option<u64>,
    rss_before_kib: u64,
}

/// The echo server, on TCP or Unix streams: reads into the loop's buffer, writes through,
/// stops reading while the write queue is at the high-water mark and resumes on drain.
fn echo_server<T: Stream>(addr: &T::Addr, report_after: Option<u64>) -> io::Result<()> {
    let mut lp = Loop::with_state(EchoServer { accepted: 0, report_after, rss_before_kib: 0 })?;
    T::listen(&mut lp, addr, |lp, stream| {
        serve_echo(lp, stream);
        lp.state.accepted += 1;
        if Some(lp.state.accepted) == lp.state.report_after {
            let report = Timer::new(lp, |lp, timer| {
                let now = util::status_kib("VmRSS:").unwrap_or(0);
                let n = lp.state.accepted;
                util::result("connections", n as f64);
                util::result(
                    "rss_per_conn_bytes",
                    (now as f64 - lp.state.rss_before_kib as f64) * 1024.0 / n as f64,
                );
                let _ = timer.close(lp);
            });
            report.start(lp, util::SETTLE, Duration::ZERO).unwrap();
        }
    })?;
    lp.run(RunMode::NoWait)?;
    lp.state.rss_before_kib = util::status_kib("VmRSS:").unwrap_or(0);
    lp.run(RunMode::Default)?;
    Ok(())
}

/// Sets up one accepted echo connection.
fn serve_echo<S: 'static, T: Stream>(lp: &mut Loop<S>, stream: T) {
    let _ = stream.set_nodelay(lp, true);
    let _ = stream.set_high_water_mark(lp, util::HIGH_WATER_MARK);
    let resumed = stream.on_drain(lp, |lp, stream| drop(stream.read_resume(lp)));
    if resumed.and_then(|()| stream.read_start(lp, echo)).is_err() {
        let _ = stream.close(lp);
    }
}

/// The echo server on `threads` threads, each with its own loop and its own `SO_REUSEPORT`
/// listener on one port (what `examples/echo_server --threads N` does): the kernel spreads
/// the connections over the listeners.
fn echo_server_threads(threads: usize) -> io::Result<()> {
    let options = ListenOptions::new().backlog(util::BACKLOG).reuse_port(true);
    let mut lp = Loop::new()?;
    let first = options.bind(&mut lp, util::local_any(), serve_echo)?;
    let port = first.local_addr(&lp)?.port();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    for _ in 1..threads {
        let (options, bound_tx) = (options.clone(), bound_tx.clone());
        thread::spawn(move || -> io::Result<()> {
            let mut lp = Loop::new()?;
            let bound = options.bind(&mut lp, util::local_port(port), serve_echo);
            let failed = bound.as_ref().err().map(|e| e.to_string());
            let _ = bound_tx.send(failed);
            bound?;
            lp.run(RunMode::Default)?;
            Ok(())
        });
    }
    for _ in 1..threads {
        if let Some(e) = bound_rx.recv().map_err(io::Error::other)? {
            return Err(io::Error::other(format!("another thread's listener: {e}")));
        }
    }
    util::listening(port);
    lp.run(RunMode::Default)?;
    Ok(())
}

fn echo<S, T: Stream>(lp: &mut Loop<S>, stream: T, data: io::Result<&[u8]>) {
    match data {
        Ok(bytes) if !bytes.is_empty() => match stream.write(lp, bytes) {
            Ok(true) => {}
            Ok(false) => {
                let _ = stream.read_stop(lp);
            }
            Err(_) => {
                let _ = stream.close(lp);
            }
        },
        Ok(_) => {
            if stream.shutdown(lp, move |lp, _| drop(stream.close(lp))).is_err() {
                let _ = stream.close(lp);
            }
        }
        Err(_) => {
            let _ = stream.close(lp);
        }
    }
}

/// Echoes every datagram to its sender: `send_to` tries the socket at once and queues a copy
/// only if it is full.
fn udp_echo_server() -> io::Result<()> {
    let mut lp = Loop::new()?;
    let socket = UdpSocket::bind(&mut lp, util::local_any())?;
    socket.recv_start(&mut lp, |lp, socket, received| {
        if let Ok((data, from, _)) = received {
            let _ = socket.send_to(lp, data, from);
        }
    })?;
    util::listening(socket.local_addr(&lp)?.port());
    lp.run(RunMode::Default)?;
    Ok(())
}

/// Streams 8 KiB writes to every client until it goes away.
fn pump_server<T: Stream>(addr: &T::Addr) -> io::Result<()> {
    let mut lp = Loop::new()?;
    T::listen(&mut lp, addr, |lp, stream| {
        let _ = stream.set_nodelay(lp, true);
        let _ = stream.set_high_water_mark(lp, util::HIGH_WATER_MARK);
        let started = stream.on_drain(lp, pump).and_then(|()| {
            stream.read_start(lp, |lp, stream, data| {
                if !matches!(data, Ok(b) if !b.is_empty()) {
                    let _ = stream.close(lp);
                }
            })
        });
        if started.is_err() {
            let _ = stream.close(lp);
            return;
        }
        pump(lp, stream);
    })?;
    lp.run(RunMode::Default)?;
    Ok(())
}

static CHUNK: [u8; util::PUMP_CHUNK] = [b'p'; util::PUMP_CHUNK];

/// Writes until the queue reaches the high-water mark; `on_drain` calls it again.
fn pump<T: Stream>(lp: &mut Loop<()>, stream: T) {
    loop {
        match stream.write(lp, &CHUNK) {
            Ok(true) => {}
            Ok(false) => return,
            Err(_) => {
                let _ = stream.close(lp);
                return;
            }
        }
    }
}

struct Batch {
    n: u64,
    start: Option<Instant>,
    elapsed: Option<Duration>,
    error: Option<String>,
}

/// N writes of 13 bytes on one connection, all issued at once (as libuv's
/// tcp_write_batch does), then a shutdown; the time until the shutdown completes.
fn write_batch(port: u16, n: u64) -> io::Result<()> {
    let mut lp = Loop::with_state(Batch { n, start: None, elapsed: None, error: None })?;
    TcpStream::connect(&mut lp, util::local_port(port), |lp, stream, r| {
        if let Err(e) = r {
            lp.state.error = Some(format!("connect: {e}"));
            return;
        }
        lp.state.start = Some(Instant::now());
        for _ in 0..lp.state.n {
            if let Err(e) = stream.write(lp, util::BATCH_MESSAGE) {
                lp.state.error = Some(format!("write: {e}"));
                let _ = stream.close(lp);
                return;
            }
        }
        let shut = stream.shutdown(lp, move |lp, r| {
            match r {
                Ok(()) => lp.state.elapsed = lp.state.start.map(|s| s.elapsed()),
                Err(e) => lp.state.error = Some(format!("shutdown: {e}")),
            }
            let _ = stream.close(lp);
        });
        if let Err(e) = shut {
            lp.state.error = Some(format!("shutdown: {e}"));
            let _ = stream.close(lp);
        }
    })?;
    lp.run(RunMode::Default)?;
    if let Some(e) = lp.state.error.take() {
        return Err(io::Error::other(e));
    }
    let elapsed = lp.state.elapsed.ok_or_else(|| io::Error::other("the batch did not finish"))?;
    util::result("total_ms", elapsed.as_secs_f64() * 1e3);
    Ok(())
}

/// One thread's side of the waker ping-pong: the loop sets `ready` and unparks it.
struct Baton {
    ready: AtomicBool,
    thread: OnceLock<Thread>,
}

fn waker(threads: usize, rounds: u64) -> io::Result<()> {
    // (count, wakers): the wakers are closed together once the last round trip is answered.
    // (Written so while closing a waker from its own callback could lose another's wake, an
    // evloop bug since fixed; see README.md.)
    let mut lp = Loop::with_state((0u64, Vec::<Waker>::new()))?;
    let total = threads as u64 * rounds;
    let mut peers = Vec::new();
    for _ in 0..threads {
        let baton = Arc::new(Baton { ready: AtomicBool::new(false), thread: OnceLock::new() });
        let ours = baton.clone();
        let waker = Waker::new(&mut lp, move |lp, _| {
            lp.state.0 += 1;
            ours.ready.store(true, Ordering::Release);
            ours.thread.get().expect("peer thread").unpark();
            if lp.state.0 == total {
                for w in std::mem::take(&mut lp.state.1) {
                    w.close(lp).unwrap();
                }
            }
        });
        lp.state.1.push(waker.clone());
        peers.push((waker, baton));
    }
    let start = Instant::now();
    let mut joins = Vec::new();
    for (waker, baton) in peers {
        let remote = baton.clone();
        let join = thread::spawn(move || {
            for _ in 0..rounds {
                waker.wake().unwrap();
                while !remote.ready.swap(false, Ordering::Acquire) {
                    thread::park();
                }
            }
        });
        baton.thread.set(join.thread().clone()).unwrap();
        joins.push(join);
    }
    lp.run(RunMode::Default)?;
    let rate = util::per_sec(lp.state.0, start);
    for j in joins {
        j.join().map_err(|_| io::Error::other("a peer thread panicked"))?;
    }
    assert_eq!(lp.state.0, total);
    util::result("round_trips_per_s", rate);
    Ok(())
}

/// `threads` std threads each send `per_thread` u64s through one unbounded `Channel`; its
/// callback counts them, and the loop ends once every sender is gone (`None`). The rate is
/// over the time from before the first send to the last delivery.
fn channel(threads: usize, per_thread: u64) -> io::Result<()> {
    struct Count {
        got: u64,
        total: u64,
        start: Instant,
        last: Option<Instant>,
    }
    let total = threads as u64 * per_thread;
    let mut lp = Loop::with_state(Count { got: 0, total, start: Instant::now(), last: None })?;
    let (tx, _channel) = Channel::new(&mut lp, |lp, _, msg: Option<u64>| {
        if msg.is_some() {
            lp.state.got += 1;
            if lp.state.got == lp.state.total {
                lp.state.last = Some(Instant::now());
            }
        }
    });
    lp.state.start = Instant::now();
    let joins: Vec<_> = (0..threads)
        .map(|_| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..per_thread {
                    tx.send(i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    lp.run(RunMode::Default)?;
    for j in joins {
        j.join().map_err(|_| io::Error::other("a producer thread panicked"))?;
    }
    let Count { got, start, last, .. } = lp.state;
    if got != total {
        return Err(io::Error::other(format!("{got} of {total} messages delivered")));
    }
    let end = last.unwrap_or_else(Instant::now);
    util::result("msgs_per_s", total as f64 / end.duration_since(start).as_secs_f64());
    Ok(())
}

struct Pool {
    submitted: u64,
    completed: u64,
    total: u64,
    path: std::path::PathBuf,
    error: Option<io::Error>,
}

fn pool_loop(total: u64, path: &str) -> io::Result<Loop<Pool>> {
    Loop::builder()
        .threadpool_size(util::POOL_THREADS)
        .state(Pool { submitted: 0, completed: 0, total, path: path.into(), error: None })
        .build()
}

fn submit_noop(lp: &mut Loop<Pool>) {
    lp.state.submitted += 1;
    let r = lp.queue_work(
        || 0u8,
        |lp, r| match r {
            Ok(_) => {
                lp.state.completed += 1;
                if lp.state.submitted < lp.state.total {
                    submit_noop(lp);
                }
            }
            Err(e) => lp.state.error = Some(e),
        },
    );
    if let Err(e) = r {
        lp.state.error = Some(e);
    }
}

fn submit_stat(lp: &mut Loop<Pool>) {
    lp.state.submitted += 1;
    let path = lp.state.path.clone();
    let r = fs::metadata(lp, &path, |lp, r| match r {
        Ok(_) => {
            lp.state.completed += 1;
            if lp.state.submitted < lp.state.total {
                submit_stat(lp);
            }
        }
        Err(e) => lp.state.error = Some(e),
    });
    if let Err(e) = r {
        lp.state.error = Some(e);
    }
}

fn run_pool(
    total: u64,
    in_flight: u64,
    path: &str,
    submit: fn(&mut Loop<Pool>),
    key: &str,
) -> io::Result<()> {
    let mut lp = pool_loop(total, path)?;
    let start = Instant::now();
    for _ in 0..in_flight.min(total) {
        submit(&mut lp);
    }
    lp.run(RunMode::Default)?;
    let rate = util::per_sec(total, start);
    if let Some(e) = lp.state.error.take() {
        return Err(e);
    }
    assert_eq!(lp.state.completed, total);
    util::result(key, rate);
    Ok(())
}

fn queue_work(total: u64, in_flight: u64) -> io::Result<()> {
    run_pool(total, in_flight, "", submit_noop, "jobs_per_s")
}

fn fs_stat(total: u64, in_flight: u64, path: String) -> io::Result<()> {
    run_pool(total, in_flight, &path, submit_stat, "stats_per_s")
}

/// N spawn-and-wait of /bin/true, IN_FLIGHT at a time: each exit starts the next.
fn spawn(total: u64, in_flight: u64) -> io::Result<()> {
    fn start_one(lp: &mut Loop<(u64, u64)>) -> io::Result<()> {
        if lp.state.0 == lp.state.1 {
            return Ok(());
        }
        lp.state.0 += 1;
        evloop::Process::spawn(lp, &mut std::process::Command::new("/bin/true"), |lp, p, status| {
            assert!(status.success(), "/bin/true: {status}");
            p.close(lp).unwrap();
            start_one(lp).unwrap();
        })?;
        Ok(())
    }
    let mut lp = Loop::with_state((0u64, total))?;
    let start = Instant::now();
    for _ in 0..in_flight {
        start_one(&mut lp)?;
    }
    lp.run(RunMode::Default)?;
    util::result("procs_per_s", util::per_sec(total, start));
    Ok(())
}
