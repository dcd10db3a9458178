//! The workloads, their cases and metrics, and how one case runs on one runtime.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::procs::{Proc, Results, Spec};
use crate::util;

/// The runtimes, in the order they run within each repetition.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Runtime {
    Evloop,
    Tokio,
    Libuv,
}

pub const RUNTIMES: [Runtime; 3] = [Runtime::Evloop, Runtime::Tokio, Runtime::Libuv];

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Evloop => "evloop",
            Runtime::Tokio => "tokio",
            Runtime::Libuv => "libuv",
        }
    }
}

/// Every workload, in the order they run, with a one-line description.
pub const WORKLOADS: [(&str, &str); 20] = [
    (
        "loop_count",
        "idle loop iterations per second with one idle TCP listener open, and with no socket \
         (evloop then skips the poll) (tokio: a task that yield_now()s, the nearest equivalent)",
    ),
    ("timers", "1,000,000 timers over 1..1000 ms (1,000 per ms), run out: start rate, total time, peak RSS"),
    (
        "defer",
        "5,000,000 one-shot callbacks on the next iteration, 1,000 outstanding, each scheduling the \
         next: a deferred call (tokio: a spawned task; libuv: a setImmediate-style queue run by a \
         uv_check_t) and a 0 ms timer: calls/s",
    ),
    ("ping_pongs", "one TCP connection, 5-byte PING\\n round trips"),
    ("echo", "1/10/100 connections in lock-step request/response at 64 B, 1 KiB, 64 KiB"),
    (
        "unix_echo",
        "echo over a Unix domain socket: 1 conn x 64 B, 100 conn x 1 KiB, 100 conn x 64 KiB in lock-step \
         (libuv: uv_pipe_t)",
    ),
    (
        "echo_threads",
        "one loop per core: the echo server on 1 and 2 threads, each with its own SO_REUSEPORT listener on \
         one port; 100 connections x 64 B in lock-step; nothing pinned (2 threads and the client share 2 CPUs)",
    ),
    ("pump", "the server streams 8 KiB writes to 1 and 100 connections: throughput"),
    ("unix_pump", "pump over a Unix domain socket: 8 KiB writes to 1 and 100 connections: throughput"),
    (
        "udp_echo",
        "UDP echo: 1 and 16 client sockets, 4 datagrams in flight each, 64 B and 1,400 B: datagrams/s \
         (libuv with recvmmsg)",
    ),
    ("pound", "100 and 1,000 concurrent clients: connect, write, read the echo, close"),
    ("tcp_write_batch", "1,000,000 writes of 13 bytes on one connection, then shutdown"),
    ("waker", "loop <-> 1, 2, 4 std threads wakeup ping-pong"),
    (
        "channel",
        "1 and 4 std threads send 5,000,000 u64s in all to the loop thread through an unbounded \
         channel (libuv: mutex-protected queue + uv_async_send): messages/s",
    ),
    ("queue_work", "no-op jobs through the thread pool (4 workers) at 1, 32, 1,000 in flight"),
    ("fs_stat", "stat() of one file through the thread pool at 1, 4, 16, 32 in flight"),
    ("memory", "resident memory per idle connection, 10,000 connections"),
    ("spawn", "2,000 spawn-and-wait of /bin/true, 1 and 16 at a time: processes/s"),
    ("unix_memory", "resident memory per idle Unix domain socket connection, 10,000 connections"),
    (
        "redis",
        "examples/mini_redis (on evloop) vs redis-server: redis-benchmark -c 50 -n 200000 -t \
         set,get,incr,lpush,lpop at -P 1, -P 16 and -P 64 (requests/s, server CPU/request, core busy), RSS after 1,000,000 \
         keys of 32 B (runs last; its own table, redis.svg)",
    ),
];

/// `LoopCount::listener`: a bound TCP listener nobody connects to is open during the count.
/// `Channel`: `threads` producers each send `per_thread` messages.
/// `Defer::timer`: each call is a 0 ms timer instead of a deferred call.
#[derive(Clone, Debug)]
pub enum Kind {
    LoopCount { n: u64, listener: bool },
    Timers { n: u64 },
    Defer { n: u64, timer: bool },
    Echo { conns: usize, size: usize, millis: u64 },
    EchoThreads { threads: usize, conns: usize, size: usize, millis: u64 },
    Pump { conns: usize, millis: u64 },
    UdpEcho { sockets: usize, size: usize, millis: u64 },
    Pound { concurrency: usize, millis: u64 },
    WriteBatch { n: u64 },
    Waker { threads: usize, rounds: u64 },
    Channel { threads: usize, per_thread: u64 },
    QueueWork { n: u64, in_flight: u64 },
    FsStat { n: u64, in_flight: u64 },
    Memory { conns: usize },
    Spawn { n: u64, in_flight: u64 },
    UnixEcho { conns: usize, size: usize, millis: u64 },
    UnixPump { conns: usize, millis: u64 },
    UnixMemory { conns: usize },
}

#[derive(Clone, Debug)]
pub struct Case {
    pub workload: &'static str,
    pub label: String,
    pub kind: Kind,
}

#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Unit {
    PerSec,
    Ms,
    Us,
    MiB,
    MiBPerSec,
    Bytes,
    Percent,
}

/// One figure a case reports: the child's result key, how to show it, which way is better.
#[derive(Copy, Clone, Debug)]
pub struct Metric {
    pub key: &'static str,
    pub name: &'static str,
    pub unit: Unit,
    /// The child reports `key` in these units times `scale`.
    pub scale: f64,
    pub higher_is_better: bool,
}

impl Metric {
    /// ↑ where higher is better, ↓ where lower is.
    pub fn arrow(&self) -> &'static str {
        if self.higher_is_better {
            "↑"
        } else {
            "↓"
        }
    }
}

const fn m(key: &'static str, name: &'static str, unit: Unit, higher_is_better: bool) -> Metric {
    Metric { key, name, unit, scale: 1.0, higher_is_better }
}

impl Case {
    pub fn metrics(&self) -> Vec<Metric> {
        match self.kind {
            Kind::LoopCount { .. } => vec![m("iterations_per_s", "iterations/s", Unit::PerSec, true)],
            Kind::Timers { .. } => vec![
                m("starts_per_s", "timer starts/s", Unit::PerSec, true),
                m("total_ms", "total time", Unit::Ms, false),
                Metric { scale: 1.0 / 1024.0, ..m("peak_rss_kib", "peak RSS", Unit::MiB, false) },
            ],
            Kind::Echo { .. } if self.workload == "ping_pongs" => vec![
                m("round_trips_per_s", "round trips/s", Unit::PerSec, true),
                m("server_cpu_us_per_op", "server CPU/round trip", Unit::Us, false),
            ],
            Kind::Echo { .. } | Kind::EchoThreads { .. } | Kind::UnixEcho { .. } => vec![
                m("round_trips_per_s", "requests/s", Unit::PerSec, true),
                m("p50_us", "p50 latency", Unit::Us, false),
                m("p99_us", "p99 latency", Unit::Us, false),
                m("server_cpu_us_per_op", "server CPU/request", Unit::Us, false),
            ],
            Kind::Pump { .. } | Kind::UnixPump { .. } => vec![
                m("mib_per_s", "throughput", Unit::MiBPerSec, true),
                m("server_cpu_us_per_op", "server CPU/MiB", Unit::Us, false),
            ],
            Kind::UdpEcho { .. } => vec![
                m("datagrams_per_s", "datagrams/s", Unit::PerSec, true),
                m("server_cpu_us_per_op", "server CPU/datagram", Unit::Us, false),
            ],
            Kind::Pound { .. } => vec![
                m("conns_per_s", "connections/s", Unit::PerSec, true),
                m("server_cpu_us_per_op", "server CPU/connection", Unit::Us, false),
            ],
            Kind::Defer { .. } => vec![m("calls_per_s", "calls/s", Unit::PerSec, true)],
            Kind::WriteBatch { .. } => vec![m("total_ms", "time", Unit::Ms, false)],
            Kind::Waker { .. } => vec![m("round_trips_per_s", "round trips/s", Unit::PerSec, true)],
            Kind::Channel { .. } => vec![m("msgs_per_s", "messages/s", Unit::PerSec, true)],
            Kind::QueueWork { .. } => vec![m("jobs_per_s", "jobs/s", Unit::PerSec, true)],
            Kind::FsStat { .. } => vec![m("stats_per_s", "stats/s", Unit::PerSec, true)],
            Kind::Spawn { .. } => vec![m("procs_per_s", "processes/s", Unit::PerSec, true)],
            Kind::Memory { .. } | Kind::UnixMemory { .. } => {
                vec![m("rss_per_conn_bytes", "RSS per connection", Unit::Bytes, false)]
            }
        }
    }
}

/// The metrics of any case of `workload` (for reading an earlier run's table back).
pub fn metrics_of(workload: &'static str) -> Vec<Metric> {
    let kind = match workload {
        "loop_count" => Kind::LoopCount { n: 0, listener: false },
        "timers" => Kind::Timers { n: 0 },
        "defer" => Kind::Defer { n: 0, timer: false },
        "pump" => Kind::Pump { conns: 0, millis: 0 },
        "pound" => Kind::Pound { concurrency: 0, millis: 0 },
        "udp_echo" => Kind::UdpEcho { sockets: 0, size: 0, millis: 0 },
        "tcp_write_batch" => Kind::WriteBatch { n: 0 },
        "waker" => Kind::Waker { threads: 0, rounds: 0 },
        "channel" => Kind::Channel { threads: 0, per_thread: 0 },
        "queue_work" => Kind::QueueWork { n: 0, in_flight: 0 },
        "fs_stat" => Kind::FsStat { n: 0, in_flight: 0 },
        "memory" => Kind::Memory { conns: 0 },
        "spawn" => Kind::Spawn { n: 0, in_flight: 0 },
        "unix_echo" => Kind::UnixEcho { conns: 0, size: 0, millis: 0 },
        "unix_pump" => Kind::UnixPump { conns: 0, millis: 0 },
        "unix_memory" => Kind::UnixMemory { conns: 0 },
        "echo_threads" => Kind::EchoThreads { threads: 0, conns: 0, size: 0, millis: 0 },
        _ => Kind::Echo { conns: 0, size: 0, millis: 0 },
    };
    Case { workload, label: String::new(), kind }.metrics()
}

/// What the user asked for.
pub struct Config {
    pub smoke: bool,
    pub reps: usize,
    pub only: Vec<String>,
    pub echo_conns: Vec<usize>,
    pub echo_sizes: Vec<usize>,
    /// (server core, load generator core), if pinning.
    pub pin: Option<(usize, usize)>,
    /// The uvbench program, if libuv was found at build time.
    pub uvbench: Option<String>,
    pub self_exe: String,
}

pub fn size_label(size: usize) -> String {
    if size >= 1024 && size & 1023 == 0 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// The cases to run, sized for the mode.
pub fn cases(cfg: &Config) -> Vec<Case> {
    let s = |full: u64, smoke: u64| if cfg.smoke { smoke } else { full };
    let tcp_ms = s(2_000, 100);
    let echo_ms = s(1_000, 50);
    let mut out = Vec::new();
    let mut add = |workload: &'static str, label: String, kind: Kind| {
        if cfg.only.is_empty() || cfg.only.iter().any(|o| o == workload) {
            out.push(Case { workload, label, kind });
        }
    };
    // The realistic case: the loop has a socket to watch (an idle listener), so every runtime
    // polls each iteration. Without any socket evloop skips the poll's system call and libuv
    // does not (its loop always watches a signal pipe): that case measures the skip.
    add(
        "loop_count",
        LOOP_COUNT_LISTENER.into(),
        Kind::LoopCount { n: s(5_000_000, 10_000), listener: true },
    );
    add(
        "loop_count",
        LOOP_COUNT_NO_SOCKET.into(),
        Kind::LoopCount { n: s(5_000_000, 10_000), listener: false },
    );
    let timers = s(1_000_000, 10_000);
    add("timers", format!("{timers} timers"), Kind::Timers { n: timers });
    let calls = s(5_000_000, 10_000);
    add("defer", DEFER_DEFER.into(), Kind::Defer { n: calls, timer: false });
    add("defer", DEFER_TIMER.into(), Kind::Defer { n: calls, timer: true });
    add("ping_pongs", "1 conn, 5 B".into(), Kind::Echo { conns: 1, size: 5, millis: tcp_ms });
    for &conns in &cfg.echo_conns {
        for &size in &cfg.echo_sizes {
            add(
                "echo",
                format!("{conns} conn x {}", size_label(size)),
                Kind::Echo { conns, size, millis: echo_ms },
            );
        }
    }
    // Labelled as the TCP echo's cases, so that the rows can be read side by side.
    for (conns, size) in [(1, 64), (100, 1024), (100, 64 * 1024)] {
        add(
            "unix_echo",
            format!("{conns} conn x {}", size_label(size)),
            Kind::UnixEcho { conns, size, millis: echo_ms },
        );
    }
    for (threads, label) in [(1, ECHO_THREADS_1), (2, ECHO_THREADS_2)] {
        add(
            "echo_threads",
            label.into(),
            Kind::EchoThreads { threads, conns: 100, size: 64, millis: echo_ms },
        );
    }
    for conns in [1, 100] {
        add("pump", format!("{conns} conn x 8 KiB writes"), Kind::Pump { conns, millis: tcp_ms });
    }
    for conns in [1, 100] {
        add("unix_pump", format!("{conns} conn x 8 KiB writes"), Kind::UnixPump { conns, millis: tcp_ms });
    }
    for sockets in [1, 16] {
        for size in [64, 1400] {
            let label = format!("{sockets} socket{} x {size} B", if sockets == 1 { "" } else { "s" });
            add("udp_echo", label, Kind::UdpEcho { sockets, size, millis: echo_ms });
        }
    }
    for concurrency in [100, 1000] {
        add("pound", format!("{concurrency} clients"), Kind::Pound { concurrency, millis: tcp_ms });
    }
    let batch = s(1_000_000, 10_000);
    add("tcp_write_batch", format!("{batch} x 13 B"), Kind::WriteBatch { n: batch });
    let rounds = s(200_000, 300);
    for threads in [1, 2, 4] {
        let label = format!("{threads} thread{}", if threads == 1 { "" } else { "s" });
        add("waker", label, Kind::Waker { threads, rounds: rounds / threads as u64 });
    }
    let messages = s(5_000_000, 10_000);
    for threads in [1, 4] {
        let label = format!("{threads} thread{}", if threads == 1 { "" } else { "s" });
        add("channel", label, Kind::Channel { threads, per_thread: messages / threads as u64 });
    }
    for in_flight in [1, 32, 1000] {
        add(
            "queue_work",
            format!("{in_flight} in flight"),
            Kind::QueueWork { n: s(100_000, 300), in_flight },
        );
    }
    for in_flight in [1, 4, 16, 32] {
        add("fs_stat", format!("{in_flight} in flight"), Kind::FsStat { n: s(100_000, 300), in_flight });
    }
    // Each side needs a descriptor per connection: stay under the open-files limit.
    let wanted = s(10_000, 200);
    let conns =
        util::open_files_limit().map_or(wanted, |l| wanted.min(l.saturating_sub(64).max(10))) as usize;
    let capped = if (conns as u64) < wanted { " (capped by ulimit -n)" } else { "" };
    add("memory", format!("{conns} idle conns{capped}"), Kind::Memory { conns });
    for in_flight in [1, 16] {
        add("spawn", format!("{in_flight} at a time"), Kind::Spawn { n: s(2_000, 50), in_flight });
    }
    add("unix_memory", format!("{conns} idle conns{capped}"), Kind::UnixMemory { conns });
    out
}

/// The `loop_count` cases' labels (the summary table picks and annotates them by label).
pub const LOOP_COUNT_LISTENER: &str = "idle, 1 idle listener";
pub const LOOP_COUNT_NO_SOCKET: &str = "idle, no socket (evloop skips the poll)";

/// The `echo_threads` cases' labels (server threads, then the client's load).
pub const ECHO_THREADS_1: &str = "1 thread, 100 conn x 64 B";
pub const ECHO_THREADS_2: &str = "2 threads, 100 conn x 64 B";

/// The `defer` cases' labels.
pub const DEFER_DEFER: &str = "defer";
pub const DEFER_TIMER: &str = "0 ms timer";

/// Why a runtime cannot run at all.
pub const LIBUV_SKIPPED: &str = "skipped: libuv not found (apt-get install libuv1-dev)";

fn runtime_spec(cfg: &Config, rt: Runtime, args: Vec<String>) -> Result<Spec, String> {
    Ok(match rt {
        Runtime::Evloop | Runtime::Tokio => {
            Spec::new(&cfg.self_exe, ["child".to_string(), rt.name().to_string()].into_iter().chain(args))
        }
        Runtime::Libuv => {
            let exe = cfg.uvbench.as_ref().ok_or_else(|| LIBUV_SKIPPED.to_string())?;
            Spec::new(exe, args).env("UV_THREADPOOL_SIZE", &util::POOL_THREADS.to_string())
        }
    })
}

fn client_spec(cfg: &Config, args: Vec<String>) -> Spec {
    Spec::new(&cfg.self_exe, ["client".to_string()].into_iter().chain(args))
}

pub fn strings(args: &[&dyn ToString]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// Runs one case on one runtime; the figures it reported.
pub fn run(cfg: &Config, case: &Case, rt: Runtime) -> Result<Results, String> {
    let timeout = Duration::from_secs(if cfg.smoke { 30 } else { 300 });
    let short = Duration::from_secs(if cfg.smoke { 10 } else { 30 });
    let (server_core, client_core) = match cfg.pin {
        Some((s, c)) => (Some(s), Some(c)),
        None => (None, None),
    };
    let name = |role: &str| format!("{} {} ({role})", rt.name(), case.workload);
    let in_process = |args: Vec<String>| -> Result<Results, String> {
        let spec = runtime_spec(cfg, rt, args)?;
        Proc::spawn(&name("runtime"), &spec, None)?.results(&[], timeout)
    };
    // Where the load generator goes: the port the server printed or, for a server given a
    // Unix socket's path (which prints `listening 0`), that path.
    let target = |port: u16, unix: Option<&Path>| match unix {
        Some(path) => format!("{}{}", util::UNIX_PREFIX, path.display()),
        None => port.to_string(),
    };
    // A server under test on one core, the load generator on the other (or both unpinned).
    let served_at =
        |pinned: bool, unix: Option<&Path>, server_args: Vec<String>, client_args: Vec<String>| {
            let spec = runtime_spec(cfg, rt, server_args)?;
            let mut server = Proc::spawn(&name("server"), &spec, server_core.filter(|_| pinned))?;
            let port = server.port(short)?;
            let mut args = client_args;
            args.insert(1, target(port, unix));
            let cpu_before = server.cpu_ns();
            let client_spec = client_spec(cfg, args);
            let mut client = Proc::spawn(&name("client"), &client_spec, client_core.filter(|_| pinned))?;
            let mut results = client.results(&[], timeout)?;
            server.check_running()?;
            // The server's CPU time per operation: what throughput hides when the load generator
            // (one core) is the bottleneck.
            if let (Some(a), Some(b), Some(&ops)) = (cpu_before, server.cpu_ns(), results.get("ops")) {
                if ops > 0.0 {
                    results.insert("server_cpu_us_per_op".into(), (b - a) as f64 / 1e3 / ops);
                }
            }
            Ok::<Results, String>(results)
        };
    let served_on = |pinned, server_args, client_args| served_at(pinned, None, server_args, client_args);
    let served = |server_args, client_args| served_on(true, server_args, client_args);
    // An echo server holding `conns` idle connections of a client process: its resident
    // memory per connection.
    let held = |server_args: Vec<String>, unix: Option<&Path>, conns: usize| {
        let spec = runtime_spec(cfg, rt, server_args)?;
        let mut server = Proc::spawn(&name("server"), &spec, server_core)?;
        let port = server.port(short)?;
        let hold = client_spec(cfg, strings(&[&"hold", &target(port, unix), &conns]));
        let mut client = Proc::spawn(&name("client"), &hold, client_core)?;
        client.expect("connected", timeout)?;
        server.results(&["rss_per_conn_bytes"], timeout)
    };
    let stat_path = cfg.self_exe.clone();
    match case.kind {
        Kind::LoopCount { n, listener } => in_process(strings(&[&"loop_count", &n, &u8::from(listener)])),
        Kind::Timers { n } => in_process(strings(&[&"timers", &n])),
        Kind::Defer { n, timer } => {
            in_process(strings(&[&"defer", &n, &util::DEFER_OUTSTANDING, &u8::from(timer)]))
        }
        Kind::Waker { threads, rounds } => in_process(strings(&[&"waker", &threads, &rounds])),
        Kind::Channel { threads, per_thread } => in_process(strings(&[&"channel", &threads, &per_thread])),
        Kind::QueueWork { n, in_flight } => in_process(strings(&[&"queue_work", &n, &in_flight])),
        Kind::FsStat { n, in_flight } => in_process(strings(&[&"fs_stat", &n, &in_flight, &stat_path])),
        Kind::Spawn { n, in_flight } => in_process(strings(&[&"spawn", &n, &in_flight])),
        Kind::Echo { conns, size, millis } => {
            served(strings(&[&"echo_server"]), strings(&[&"echo", &conns, &size, &millis]))
        }
        Kind::EchoThreads { threads, conns, size, millis } => served_on(
            false,
            strings(&[&"echo_server_threads", &threads]),
            strings(&[&"echo", &conns, &size, &millis]),
        ),
        Kind::Pump { conns, millis } => {
            served(strings(&[&"pump_server"]), strings(&[&"pump", &conns, &millis]))
        }
        Kind::UdpEcho { sockets, size, millis } => {
            served(strings(&[&"udp_echo_server"]), strings(&[&"udp_echo", &sockets, &size, &millis]))
        }
        Kind::Pound { concurrency, millis } => {
            let r = served(strings(&[&"echo_server"]), strings(&[&"pound", &concurrency, &millis]))?;
            match r.get("errors") {
                Some(&e) if e > 0.0 => Err(format!("pound: {e} connections failed")),
                _ => Ok(r),
            }
        }
        Kind::WriteBatch { n } => {
            // The runtime under test writes; the load generator is the sink.
            let expected = n * util::BATCH_MESSAGE.len() as u64;
            let sink_spec = client_spec(cfg, strings(&[&"sink", &expected]));
            let mut sink = Proc::spawn(&format!("{} sink", case.workload), &sink_spec, client_core)?;
            let port = sink.port(short)?;
            let spec = runtime_spec(cfg, rt, strings(&[&"write_batch", &port, &n]))?;
            let results = Proc::spawn(&name("writer"), &spec, server_core)?.results(&[], timeout)?;
            sink.results(&[], short)?;
            Ok(results)
        }
        Kind::Memory { conns } => held(strings(&[&"echo_server", &conns]), None, conns),
        Kind::UnixEcho { conns, size, millis } => {
            let dir = SocketDir::new()?;
            let path = dir.socket();
            let server = strings(&[&"unix_echo_server", &path.display()]);
            served_at(true, Some(&path), server, strings(&[&"echo", &conns, &size, &millis]))
        }
        Kind::UnixPump { conns, millis } => {
            let dir = SocketDir::new()?;
            let path = dir.socket();
            let server = strings(&[&"unix_pump_server", &path.display()]);
            served_at(true, Some(&path), server, strings(&[&"pump", &conns, &millis]))
        }
        Kind::UnixMemory { conns } => {
            let dir = SocketDir::new()?;
            let path = dir.socket();
            held(strings(&[&"unix_echo_server", &path.display(), &conns]), Some(&path), conns)
        }
    }
}

/// A fresh directory (mode 0700, in the temp dir) for one run's Unix socket, removed with
/// what is in it when dropped: the servers leave their socket file behind.
struct SocketDir(PathBuf);

impl SocketDir {
    fn new() -> Result<SocketDir, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bench-suite-{}-{n}", std::process::id()));
        DirBuilder::new().mode(0o700).create(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(SocketDir(dir))
    }

    /// The socket's path in it.
    fn socket(&self) -> PathBuf {
        self.0.join("s.sock")
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
