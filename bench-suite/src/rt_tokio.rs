//! The tokio side of every workload (`bench-suite child tokio WORKLOAD ARGS...`), on a
//! current-thread runtime.
//!
//! The servers read the way evloop and libuv do, so that an idle connection holds no buffer:
//! wait for readability, `try_read` into one 64 KiB buffer shared by the runtime's thread,
//! `try_write` the echo at once and copy only what the socket did not take into a queue of the
//! connection's own, which stops reading only once 64 KiB or more are queued.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::tokio_stream::{Conn, Listener};
use crate::util::{self, parse};

pub fn main(args: &[String]) -> Result<(), String> {
    let workload = args.first().map(String::as_str).unwrap_or("");
    let rest = args.get(1..).unwrap_or(&[]);
    let rt = runtime().map_err(|e| format!("tokio runtime: {e}"))?;
    let r = match workload {
        "loop_count" => rt.block_on(loop_count(
            parse(rest, 0, "N")?,
            rest.len() > 1 && parse::<u8>(rest, 1, "LISTENER")? != 0,
        )),
        "timers" => rt.block_on(timers(parse(rest, 0, "N")?)),
        "defer" => rt.block_on(defer(
            parse(rest, 0, "N")?,
            parse(rest, 1, "OUTSTANDING")?,
            parse::<u8>(rest, 2, "TIMER")? != 0,
        )),
        "echo_server" => {
            let n = if rest.is_empty() { None } else { Some(parse(rest, 0, "N")?) };
            rt.block_on(async { echo_server(listen()?, n).await })
        }
        "unix_echo_server" => {
            let path: PathBuf = parse(rest, 0, "PATH")?;
            let n = if rest.len() < 2 { None } else { Some(parse(rest, 1, "N")?) };
            rt.block_on(async { echo_server(listen_unix(&path)?, n).await })
        }
        "echo_server_threads" => echo_server_threads(parse(rest, 0, "THREADS")?),
        "pump_server" => rt.block_on(async { pump_server(listen()?).await }),
        "unix_pump_server" => {
            let path: PathBuf = parse(rest, 0, "PATH")?;
            rt.block_on(async { pump_server(listen_unix(&path)?).await })
        }
        "udp_echo_server" => rt.block_on(udp_echo_server()),
        "write_batch" => rt.block_on(write_batch(parse(rest, 0, "PORT")?, parse(rest, 1, "N")?)),
        "waker" => rt.block_on(waker(parse(rest, 0, "THREADS")?, parse(rest, 1, "ROUNDS")?)),
        "channel" => rt.block_on(channel(parse(rest, 0, "THREADS")?, parse(rest, 1, "PER_THREAD")?)),
        "queue_work" => rt.block_on(queue_work(parse(rest, 0, "N")?, parse(rest, 1, "IN_FLIGHT")?)),
        "spawn" => rt.block_on(spawn(parse(rest, 0, "N")?, parse(rest, 1, "IN_FLIGHT")?)),
        "fs_stat" => rt.block_on(fs_stat(
            parse(rest, 0, "N")?,
            parse(rest, 1, "IN_FLIGHT")?,
            parse::<String>(rest, 2, "PATH")?,
        )),
        other => return Err(format!("unknown workload {other:?}")),
    };
    r.map_err(|e| format!("tokio {workload}: {e}"))
}

fn runtime() -> io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(util::POOL_THREADS)
        .build()
}

/// The nearest equivalent of an idle watcher: a task that yields N times. With `listener`, a
/// TCP listener on 127.0.0.1:0 that nobody connects to is registered with the runtime meanwhile.
async fn loop_count(n: u64, listener: bool) -> io::Result<()> {
    let _listener = if listener {
        let socket = TcpSocket::new_v4()?;
        socket.bind(util::local_any())?;
        Some(socket.listen(util::BACKLOG)?)
    } else {
        None
    };
    let start = Instant::now();
    tokio::spawn(async move {
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .map_err(io::Error::other)?;
    util::result("iterations_per_s", util::per_sec(n, start));
    Ok(())
}

struct TimerCounts {
    n: u64,
    started: AtomicU64,
    fired: AtomicU64,
    all_started: Mutex<Option<Instant>>,
    all_fired: Notify,
}

/// One task per timer, each sleeping until its deadline. A timer counts as started once its
/// task has been polled (which registers its `Sleep`).
async fn timers(n: u64) -> io::Result<()> {
    let counts = Arc::new(TimerCounts {
        n,
        started: AtomicU64::new(0),
        fired: AtomicU64::new(0),
        all_started: Mutex::new(None),
        all_fired: Notify::new(),
    });
    let start = Instant::now();
    let base = tokio::time::Instant::now();
    for i in 0..n {
        let deadline = base + Duration::from_millis(util::timer_timeout_ms(i));
        let counts = counts.clone();
        tokio::spawn(async move {
            if counts.started.fetch_add(1, Ordering::Relaxed) + 1 == counts.n {
                *counts.all_started.lock().unwrap() = Some(Instant::now());
            }
            tokio::time::sleep_until(deadline).await;
            if counts.fired.fetch_add(1, Ordering::Relaxed) + 1 == counts.n {
                counts.all_fired.notify_one();
            }
        });
    }
    counts.all_fired.notified().await;
    let total = start.elapsed();
    let started = counts.all_started.lock().unwrap().ok_or_else(|| io::Error::other("not all started"))?;
    util::result("starts_per_s", n as f64 / (started - start).as_secs_f64());
    util::result("total_ms", total.as_secs_f64() * 1e3);
    util::result("peak_rss_kib", util::status_kib("VmHWM:").unwrap_or(0) as f64);
    Ok(())
}

/// The `defer` workload's count: calls scheduled (`made`) and run (`ran`) of `total`.
struct Deferred {
    made: AtomicU64,
    ran: AtomicU64,
    total: u64,
    timer: bool,
    all_ran: Notify,
}

/// Schedules the next call, if any are left: a spawned task that does nothing else (the
/// nearest equivalent of a next-iteration callback), or with `timer` one that first awaits
/// `sleep(Duration::ZERO)`.
fn defer_next(d: &Arc<Deferred>) {
    if d.made.load(Ordering::Relaxed) < d.total {
        d.made.fetch_add(1, Ordering::Relaxed);
        let d = d.clone();
        tokio::spawn(async move {
            if d.timer {
                tokio::time::sleep(Duration::ZERO).await;
            }
            if d.ran.fetch_add(1, Ordering::Relaxed) + 1 == d.total {
                d.all_ran.notify_one();
            }
            defer_next(&d);
        });
    }
}

/// N one-shot calls, `outstanding` at a time, each scheduling the next.
async fn defer(n: u64, outstanding: u64, timer: bool) -> io::Result<()> {
    let d = Arc::new(Deferred {
        made: AtomicU64::new(0),
        ran: AtomicU64::new(0),
        total: n,
        timer,
        all_ran: Notify::new(),
    });
    let start = Instant::now();
    for _ in 0..outstanding.min(n) {
        defer_next(&d);
    }
    if n > 0 {
        d.all_ran.notified().await;
    }
    let rate = util::per_sec(n, start);
    let ran = d.ran.load(Ordering::Relaxed);
    if ran != n {
        return Err(io::Error::other(format!("{ran} of {n} calls ran")));
    }
    util::result("calls_per_s", rate);
    Ok(())
}

fn listen() -> io::Result<tokio::net::TcpListener> {
    let listener = bind(util::local_any(), false)?;
    util::listening(listener.local_addr()?.port());
    Ok(listener)
}

/// A Unix listener on `path` (the orchestrator chose it: `listening 0`); must be called
/// inside a runtime. tokio's `bind` takes no backlog: it listens with the kernel's maximum.
fn listen_unix(path: &Path) -> io::Result<tokio::net::UnixListener> {
    let listener = tokio::net::UnixListener::bind(path)?;
    util::listening(0);
    Ok(listener)
}

/// A listener on `addr`, with `SO_REUSEPORT` if `reuse_port`; must be called inside a runtime.
fn bind(addr: std::net::SocketAddr, reuse_port: bool) -> io::Result<tokio::net::TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(reuse_port)?;
    socket.bind(addr)?;
    socket.listen(util::BACKLOG)
}

/// The echo server on `threads` threads, each with its own current-thread runtime and its
/// own `SO_REUSEPORT` listener on one port, as evloop's and libuv's.
fn echo_server_threads(threads: usize) -> io::Result<()> {
    let serve = |listener: tokio::net::TcpListener| async move {
        loop {
            if let Some(stream) = listener.next_conn().await {
                tokio::spawn(echo_conn(stream));
            }
        }
    };
    let rt = runtime()?;
    let first = rt.block_on(async { bind(util::local_any(), true) })?;
    let port = first.local_addr()?.port();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    for _ in 1..threads {
        let bound_tx = bound_tx.clone();
        thread::spawn(move || {
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(e) => return drop(bound_tx.send(Some(e.to_string()))),
            };
            match rt.block_on(async { bind(util::local_port(port), true) }) {
                Ok(listener) => {
                    let _ = bound_tx.send(None);
                    let _ = rt.block_on(serve(listener));
                }
                Err(e) => drop(bound_tx.send(Some(e.to_string()))),
            }
        });
    }
    for _ in 1..threads {
        if let Some(e) = bound_rx.recv().map_err(io::Error::other)? {
            return Err(io::Error::other(format!("another thread's listener: {e}")));
        }
    }
    util::listening(port);
    rt.block_on(serve(first))
}

thread_local! {
    /// The read buffer every connection of this (single-threaded) runtime borrows.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

enum Step {
    Again,
    Read,
    Eof,
    Failed,
}

/// The unsent part of a connection's echoes, `bytes[head..]`: the write queue evloop and
/// libuv keep for every stream, kept here by the connection's task.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    head: usize,
}

impl Pending {
    fn len(&self) -> usize {
        self.bytes.len() - self.head
    }

    fn consume(&mut self, n: usize) {
        self.head += n;
        if self.head == self.bytes.len() {
            // Empty: free it, so that an idle connection holds no buffer.
            *self = Pending::default();
        }
    }
}

/// Reads what is there and echoes it: written at once if nothing is pending (the socket
/// taking what it can), the rest appended to `pending`.
fn read_and_echo(stream: &impl Conn, pending: &mut Pending) -> Step {
    READ_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let n = match stream.try_read(&mut buf) {
            Ok(0) => return Step::Eof,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Again,
            Err(_) => return Step::Failed,
        };
        let sent = if pending.len() > 0 {
            0 // queued bytes go first
        } else {
            match stream.try_write(&buf[..n]) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(_) => return Step::Failed,
            }
        };
        pending.bytes.extend_from_slice(&buf[sent..n]);
        Step::Read
    })
}

/// The same policy as the evloop and libuv servers: write through, queue only what the socket
/// did not take, keep reading while less than the high-water mark (64 KiB) is queued, stop at
/// it and resume once the queue is empty. One task waits for readability, writability or
/// both with `ready()`, and reads and writes with `try_read` / `try_write`.
async fn echo_conn(mut stream: impl Conn) {
    let mut pending = Pending::default();
    let mut paused = false;
    loop {
        let interest = if paused {
            Interest::WRITABLE
        } else if pending.len() == 0 {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        let Ok(ready) = stream.ready(interest).await else { return };
        if ready.is_writable() && pending.len() > 0 {
            match stream.try_write(&pending.bytes[pending.head..]) {
                Ok(n) => {
                    pending.consume(n);
                    if pending.len() == 0 {
                        paused = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        if !paused && ready.is_readable() {
            match read_and_echo(&stream, &mut pending) {
                Step::Again => {}
                Step::Read => paused = pending.len() >= util::HIGH_WATER_MARK,
                Step::Eof => {
                    // Send what is queued, then half-close (evloop's shutdown waits likewise).
                    if stream.write_all(&pending.bytes[pending.head..]).await.is_ok() {
                        let _ = stream.shutdown().await;
                    }
                    return;
                }
                Step::Failed => return,
            }
        }
    }
}

/// The echo server on `listener` (TCP or Unix), which is listening.
async fn echo_server(listener: impl Listener, report_after: Option<u64>) -> io::Result<()> {
    tokio::task::yield_now().await;
    let rss_before = util::status_kib("VmRSS:").unwrap_or(0);
    let mut accepted = 0u64;
    loop {
        let Some(stream) = listener.next_conn().await else { continue };
        tokio::spawn(echo_conn(stream));
        accepted += 1;
        if Some(accepted) == report_after {
            tokio::spawn(async move {
                tokio::time::sleep(util::SETTLE).await;
                let now = util::status_kib("VmRSS:").unwrap_or(0);
                util::result("connections", accepted as f64);
                util::result(
                    "rss_per_conn_bytes",
                    (now as f64 - rss_before as f64) * 1024.0 / accepted as f64,
                );
            });
        }
    }
}

/// Echoes every datagram to its sender: `recv_from`, then `try_send_to` at once, and only if
/// the socket is full, `send_to(...).await`.
async fn udp_echo_server() -> io::Result<()> {
    let socket = tokio::net::UdpSocket::bind(util::local_any()).await?;
    util::listening(socket.local_addr()?.port());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        match socket.try_send_to(&buf[..n], from) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => drop(socket.send_to(&buf[..n], from).await),
            _ => {}
        }
    }
}

static CHUNK: [u8; util::PUMP_CHUNK] = [b'p'; util::PUMP_CHUNK];

async fn pump_server(listener: impl Listener) -> io::Result<()> {
    loop {
        let Some(mut stream) = listener.next_conn().await else { continue };
        tokio::spawn(async move { while stream.write_all(&CHUNK).await.is_ok() {} });
    }
}

/// N writes of 13 bytes, each awaited (tokio has no fire-and-forget write), then shutdown.
async fn write_batch(port: u16, n: u64) -> io::Result<()> {
    let mut stream = TcpStream::connect(util::local_port(port)).await?;
    let start = Instant::now();
    for _ in 0..n {
        stream.write_all(util::BATCH_MESSAGE).await?;
    }
    stream.shutdown().await?;
    util::result("total_ms", start.elapsed().as_secs_f64() * 1e3);
    Ok(())
}

/// Each std thread wakes its own task through a `Notify`; the task answers with unpark.
async fn waker(threads: usize, rounds: u64) -> io::Result<()> {
    struct Peer {
        notify: Notify,
        ready: AtomicBool,
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut joins = Vec::new();
    for _ in 0..threads {
        let peer = Arc::new(Peer { notify: Notify::new(), ready: AtomicBool::new(false) });
        let remote = peer.clone();
        let join = thread::spawn(move || {
            for _ in 0..rounds {
                remote.notify.notify_one();
                while !remote.ready.swap(false, Ordering::Acquire) {
                    thread::park();
                }
            }
        });
        let thread = join.thread().clone();
        joins.push(join);
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                peer.notify.notified().await;
                peer.ready.store(true, Ordering::Release);
                thread.unpark();
            }
        }));
    }
    for t in tasks {
        t.await.map_err(io::Error::other)?;
    }
    let rate = util::per_sec(threads as u64 * rounds, start);
    for j in joins {
        j.join().map_err(|_| io::Error::other("a peer thread panicked"))?;
    }
    util::result("round_trips_per_s", rate);
    Ok(())
}

/// `threads` std threads each send `per_thread` u64s through one `unbounded_channel`; the
/// runtime's thread awaits `recv()` and counts until `None` (every sender gone). The rate is
/// over the time from before the first send to the last delivery.
async fn channel(threads: usize, per_thread: u64) -> io::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let total = threads as u64 * per_thread;
    let start = Instant::now();
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
    let mut got = 0u64;
    let mut last = None;
    while rx.recv().await.is_some() {
        got += 1;
        if got == total {
            last = Some(Instant::now());
        }
    }
    for j in joins {
        j.join().map_err(|_| io::Error::other("a producer thread panicked"))?;
    }
    if got != total {
        return Err(io::Error::other(format!("{got} of {total} messages delivered")));
    }
    let end = last.unwrap_or_else(Instant::now);
    util::result("msgs_per_s", total as f64 / end.duration_since(start).as_secs_f64());
    Ok(())
}

/// Keeps `in_flight` lanes going, each taking the next job until `total` are taken.
async fn run_lanes<F, Fut>(total: u64, in_flight: u64, job: F) -> io::Result<f64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + Send,
{
    let taken = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut lanes = Vec::new();
    for _ in 0..in_flight.min(total) {
        let (taken, job) = (taken.clone(), job.clone());
        lanes.push(tokio::spawn(async move {
            let mut done = 0u64;
            while taken.fetch_add(1, Ordering::Relaxed) < total {
                job().await?;
                done += 1;
            }
            Ok::<u64, io::Error>(done)
        }));
    }
    let mut done = 0;
    for lane in lanes {
        done += lane.await.map_err(io::Error::other)??;
    }
    let rate = util::per_sec(total, start);
    if done != total {
        return Err(io::Error::other(format!("{done} of {total} done")));
    }
    Ok(rate)
}

async fn queue_work(total: u64, in_flight: u64) -> io::Result<()> {
    let rate = run_lanes(total, in_flight, || async {
        tokio::task::spawn_blocking(|| 0u8).await.map(drop).map_err(io::Error::other)
    })
    .await?;
    util::result("jobs_per_s", rate);
    Ok(())
}

async fn fs_stat(total: u64, in_flight: u64, path: String) -> io::Result<()> {
    let path: Arc<str> = path.into();
    let rate = run_lanes(total, in_flight, move || {
        let path = path.clone();
        async move { tokio::fs::metadata(&*path).await.map(drop) }
    })
    .await?;
    util::result("stats_per_s", rate);
    Ok(())
}

/// N spawn-and-wait of /bin/true through tokio::process, IN_FLIGHT at a time.
async fn spawn(total: u64, in_flight: u64) -> io::Result<()> {
    let rate = run_lanes(total, in_flight, || async {
        let status = tokio::process::Command::new("/bin/true").status().await?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("/bin/true: {status}")))
        }
    })
    .await?;
    util::result("procs_per_s", rate);
    Ok(())
}
