//! Resident memory per idle connection: a server accepts 10,000 connections and reads from
//! each (so each has its read callback and poller registration), then nothing happens.
//! The clients live in a child process (this program run again), so that neither process
//! needs 20,000 descriptors.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use evloop::{Loop, RunMode, TcpListener};

mod common;

fn clients(addr: SocketAddr, n: usize) {
    let conns: Vec<std::net::TcpStream> =
        (0..n).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    println!("connected");
    std::io::stdout().flush().unwrap();
    // Hold them until the parent closes our stdin.
    let _ = std::io::stdin().lock().lines().count();
    drop(conns);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--clients" {
        return clients(args[2].parse().unwrap(), args[3].parse().unwrap());
    }
    let n = common::scale(10_000, 200) as usize;
    let mut lp = Loop::with_state(0usize).unwrap();
    let server = TcpListener::bind(&mut lp, "127.0.0.1:0", |lp, s| {
        lp.state += 1;
        s.read_start(lp, |lp, s, d| {
            if !matches!(d, Ok(b) if !b.is_empty()) {
                s.close(lp).unwrap();
            }
        })
        .unwrap();
    })
    .unwrap();
    let addr = server.local_addr(&lp).unwrap();
    // Warm up the loop's own allocations before measuring.
    lp.run(RunMode::NoWait).unwrap();
    let before = common::rss_kib().unwrap_or(0);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--clients", &addr.to_string(), &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    while lp.state < n {
        lp.run(RunMode::Once).unwrap();
    }
    // Two more iterations register every read interest.
    lp.run(RunMode::NoWait).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "connected");
    let after = common::rss_kib().unwrap_or(0);
    common::report("idle_conns", "connections", n as f64, "");
    common::report("idle_conns", "RSS bytes/connection", ((after - before) * 1024) as f64 / n as f64, "B");

    drop(child.stdin.take());
    child.wait().unwrap();
    server.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
}
