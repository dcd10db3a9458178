//! Helpers shared by the benchmarks.
#![allow(dead_code)]

use std::time::Duration;

/// `EVLOOP_BENCH_SMOKE=1` shrinks every workload to a few milliseconds, so CI can check
/// that the benchmarks still build and run without measuring anything.
pub fn smoke() -> bool {
    std::env::var_os("EVLOOP_BENCH_SMOKE").is_some_and(|v| v != "0")
}

/// `full` normally, `small` in smoke mode.
pub fn scale(full: u64, small: u64) -> u64 {
    if smoke() {
        small
    } else {
        full
    }
}

/// Peak resident set size of this process, in KiB (Linux: VmHWM), if known.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Current resident set size, in KiB (Linux: VmRSS), if known.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `n` per second over `d`.
pub fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Prints one result line: `bench: metric value unit`.
pub fn report(bench: &str, metric: &str, value: f64, unit: &str) {
    println!("{bench:<12} {metric:<22} {value:>14.0} {unit}");
}

/// Runs a server on its own loop in a thread; returns its address once it listens.
pub fn start_echo_server_thread(
    serve: fn(&mut evloop::Loop<()>, std::net::SocketAddr) -> std::io::Result<evloop::TcpListener>,
) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lp = evloop::Loop::new().unwrap();
        let server = serve(&mut lp, "127.0.0.1:0".parse().unwrap()).unwrap();
        tx.send(server.local_addr(&lp).unwrap()).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
    });
    rx.recv().unwrap()
}
