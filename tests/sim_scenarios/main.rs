//! Twelve scenarios that are flaky or impossible to test with real sockets and a real clock,
//! made exact on the simulator (`evloop::sim`): exact virtual times, byte counts and callback
//! orders. Where a scenario names an example, its `serve` function is the code under test.

// Both examples below include their shared support module (`--threads`), unused here.
#![allow(clippy::duplicate_mod)]

#[path = "../../examples/echo_server.rs"]
mod echo_server;
#[path = "../../examples/http_hello.rs"]
mod http_hello;
#[path = "../../examples/support/shutdown.rs"]
mod shutdown;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use evloop::sim::{check_determinism, Chunking, FakePeer, Sim, SimConfig, TraceEvent};
use evloop::{fs, is_cancelled, Loop, TcpListener, TcpStream, Timer};

mod failures;
mod timeouts_and_flow;
mod timers_and_shutdown;

fn addr() -> SocketAddr {
    "10.0.0.1:80".parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `len` bytes of a pattern that shows corruption and reordering, from offset `start`.
fn pattern(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(|i| (i % 251) as u8).collect()
}

/// The times (ms) and sizes of the trace events of `kind`.
fn events(trace: &[TraceEvent], kind: &str) -> Vec<(u64, usize)> {
    trace.iter().filter(|e| e.kind == kind).map(|e| (e.time, e.bytes)).collect()
}

const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
const TIMEOUT_408: &[u8] = concat!(
    "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n",
    "Connection: close\r\n\r\nRequest Timeout"
)
.as_bytes();

fn http_config(idle: u64, header: u64) -> http_hello::Config {
    http_hello::Config { idle_timeout: secs(idle), header_timeout: secs(header), ..Default::default() }
}
