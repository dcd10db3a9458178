//! Helpers shared by the children: result lines, memory, the constants every runtime uses.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Listen backlog of every server (all three runtimes), so that 1,000 concurrent `pound`
/// clients fit.
pub const BACKLOG: u32 = 1024;
/// Write queue high-water mark of every server: evloop's default.
pub const HIGH_WATER_MARK: usize = 64 * 1024;
/// Size of one `pump` write.
pub const PUMP_CHUNK: usize = 8 * 1024;
/// The `tcp_write_batch` message: 13 bytes.
pub const BATCH_MESSAGE: &[u8; 13] = b"Hello, World\n";
/// Worker threads of every runtime's pool (libuv's default).
pub const POOL_THREADS: usize = 4;
/// How many `defer` calls are outstanding at a time (every runtime gets it as an argument).
pub const DEFER_OUTSTANDING: u64 = 1000;
/// After the last of N connections is accepted, the memory servers wait this long before
/// reading their resident memory, so that every connection has settled.
pub const SETTLE: Duration = Duration::from_millis(100);

pub fn local_any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn local_port(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Where the load generator connects: a port on 127.0.0.1, or a Unix socket's path.
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// The prefix of a Unix socket's path in the load generator's arguments (`unix:PATH`, else a
/// port).
pub const UNIX_PREFIX: &str = "unix:";

/// Argument `i` as a [`Target`]: `PORT` or `unix:PATH`.
pub fn target(args: &[String], i: usize) -> Result<Target, String> {
    let a: String = parse(args, i, "PORT or unix:PATH")?;
    Ok(match a.strip_prefix(UNIX_PREFIX) {
        Some(path) => Target::Unix(path.into()),
        None => Target::Tcp(local_port(parse(args, i, "PORT")?)),
    })
}

/// Prints one `result KEY VALUE` line for the orchestrator.
pub fn result(key: &str, value: f64) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "result {key} {value:.6}");
    let _ = out.flush();
}

/// Prints `listening PORT` for the orchestrator.
pub fn listening(port: u16) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening {port}");
    let _ = out.flush();
}

/// A field of `/proc/self/status` in KiB (`"VmRSS:"`, `"VmHWM:"`).
pub fn status_kib(field: &str) -> Option<u64> {
    status_kib_of("/proc/self/status", field)
}

/// A field of a `/proc/PID/status` file in KiB.
pub fn status_kib_of(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

pub fn per_sec(n: u64, since: Instant) -> f64 {
    n as f64 / since.elapsed().as_secs_f64()
}

/// The timeout of timer `i` in `timers`: 1,000 timers per millisecond, from 1 ms.
pub fn timer_timeout_ms(i: u64) -> u64 {
    i / 1000 + 1
}

pub fn parse<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> Result<T, String> {
    let a = args.get(i).ok_or_else(|| format!("missing argument {name}"))?;
    a.parse().map_err(|_| format!("bad {name}: {a}"))
}

/// The soft limit on open files of this process (children inherit it), if known.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}
