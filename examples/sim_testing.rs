//! Testing callback code with fake handles: `cargo run --example sim_testing`.
//!
//! The servers of `echo_server.rs` and `http_hello.rs` take a `&mut Loop<S>`. A
//! [`Sim`](evloop::sim::Sim) is a loop whose clock, network and thread pool are simulated,
//! so the very same `serve` functions run on it unchanged, while the test plays the client
//! with a [`FakePeer`](evloop::sim::FakePeer) and moves time by hand. Nothing touches a
//! real socket, and a 5 s timeout takes no real time at all.
//!
//! This program checks two things, printing each check, and exits with status 1 if one fails.

// Both examples below include their shared support module (`--threads`), unused here.
#![allow(clippy::duplicate_mod)]

// The code under test, included as modules (their `main`s go unused).
#[path = "echo_server.rs"]
mod echo_server;
#[path = "http_hello.rs"]
mod http_hello;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use evloop::sim::Sim;

/// Prints a check and whether it held; returns whether it did.
fn check(what: &str, ok: bool) -> bool {
    println!("  [{}] {what}", if ok { "ok" } else { "FAILED" });
    ok
}

/// The echo server: what a client sends comes back, and its FIN is answered with FIN.
fn echo_server_echoes_and_half_closes() -> bool {
    println!("echo_server:");
    // A simulation with a fixed seed (every random choice derives from it) and no state.
    let mut sim = Sim::new(1, ());
    // Any address works: the network is in memory.
    let addr: SocketAddr = "10.0.0.1:7000".parse().unwrap();
    echo_server::serve(&mut sim, addr).expect("bind");

    // A fake client connects and sends. Its methods act on the simulated network at once;
    // the server's callbacks run only when the loop runs.
    let client = sim.connect(addr).expect("connect");
    client.send(b"hello, simulator");
    // Run everything that is runnable now (this never moves the clock).
    sim.run_until_idle().expect("run");
    let mut ok = check("the client gets its bytes back", client.recv() == b"hello, simulator");

    // Half-close: the client sends FIN; the server answers with its own once its echoes
    // have gone.
    client.shutdown();
    sim.run_until_idle().expect("run");
    ok &= check("after the client's FIN, the server ends the stream (EOF)", client.is_closed());
    ok &= check("and closes its side: only the listener is left", sim.handle_count() == 1);
    ok &= check("no virtual time passed", sim.elapsed() == Duration::ZERO);
    ok
}

/// http_hello's idle timeout, to the millisecond.
fn http_hello_closes_idle_connections_on_time() -> bool {
    println!("http_hello:");
    let mut sim = Sim::new(2, ());
    let addr: SocketAddr = "10.0.0.1:80".parse().unwrap();
    let idle = Duration::from_secs(5);
    let config = http_hello::Config { idle_timeout: idle, ..http_hello::Config::default() };
    http_hello::serve(&mut sim, addr, config).expect("bind");

    // One request, answered at once.
    let client = sim.connect(addr).expect("connect");
    client.send(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n");
    sim.run_until_idle().expect("run");
    let response = String::from_utf8_lossy(&client.recv()).into_owned();
    let mut ok = check("GET / is answered 200", response.starts_with("HTTP/1.1 200 OK\r\n"));

    // Then silence. `advance` lets virtual time pass, running every timer due on the way.
    sim.advance(idle - Duration::from_millis(1)).expect("run");
    ok &= check("still open 1 ms before the idle timeout", !client.is_closed());
    sim.advance(Duration::from_millis(1)).expect("run");
    ok &= check("closed exactly at the idle timeout (5 s)", client.is_closed());
    ok &= check("the clock says 5 s", sim.elapsed() == idle);
    ok
}

fn main() -> ExitCode {
    // Both checks run, even if the first fails.
    let results = [echo_server_echoes_and_half_closes(), http_hello_closes_idle_connections_on_time()];
    if results.iter().all(|&ok| ok) {
        println!("all checks passed");
        ExitCode::SUCCESS
    } else {
        println!("some checks FAILED");
        ExitCode::FAILURE
    }
}
