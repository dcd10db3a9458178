//! The echo examples end to end, against real clients: nc, echo_client, and a server run
//! out of file descriptors under `prlimit`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{example_path, have_client, rss_bytes, start_example};

fn echo_server() -> common::Example {
    let mut cmd = Command::new(example_path("echo_server"));
    cmd.arg("127.0.0.1:0");
    start_example(cmd)
}

#[test]
fn nc_gets_its_bytes_back() {
    if !have_client("nc_gets_its_bytes_back", "nc") {
        return;
    }
    let server = echo_server();
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "printf 'hello from nc\\nsecond line\\n' | timeout 10 nc -N {} {}",
                server.addr.ip(),
                server.addr.port()
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from nc\nsecond line\n");
}

#[test]
fn echo_client_checks_every_echo() {
    let server = echo_server();
    let out = Command::new(example_path("echo_client"))
        .args([&server.addr.to_string(), "20", "200", "1024"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("20 connections x 200 messages x 1024 B"), "{stdout}");
    assert!(stdout.contains("round trips/s"), "{stdout}");
}

#[test]
fn a_client_that_stops_reading_does_not_make_the_server_buffer_without_bound() {
    // The client sends up to CAP without reading. A server that keeps reading queues every
    // echo it cannot send: CAP minus what the kernel's buffers hold (a few MiB) lands in
    // its memory. One that stops reading at its high-water mark (64 KiB) holds the mark
    // and its read buffer, and the client stalls long before CAP.
    const CAP: usize = 96 << 20;
    const BOUND: usize = 16 << 20;
    let server = echo_server();
    let pid = server.child.id();
    let baseline = rss_bytes(pid);
    let mut s = TcpStream::connect(server.addr).unwrap();
    // A write that makes no progress for 250 ms returns an error: one "quiet window".
    s.set_write_timeout(Some(Duration::from_millis(250))).unwrap();
    let chunk = vec![7u8; 64 << 10];
    let (mut sent, mut quiet) = (0usize, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Stalled: eight quiet windows in a row (2 s without progress). A server that still
    // reads would have to be starved of the CPU for all of them to look stalled.
    while quiet < 8 && sent < CAP {
        assert!(Instant::now() < deadline, "neither stalled nor reached {CAP} bytes in 60 s ({sent} sent)");
        match s.write(&chunk[..chunk.len().min(CAP - sent)]) {
            Ok(n) => {
                sent += n;
                quiet = 0;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                quiet += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    let grown = rss_bytes(pid).saturating_sub(baseline);
    eprintln!("sent {} KiB before the stall; the server grew by {} KiB", sent >> 10, grown >> 10);
    assert!(sent < CAP, "the client sent all {CAP} bytes without the server stopping reading");
    assert!(grown < BOUND, "the server grew by {grown} bytes while {sent} were sent");
    // Reading everything back resumes the flow, byte for byte.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut back = vec![0u8; sent];
    s.read_exact(&mut back).unwrap();
    assert!(back.iter().all(|&b| b == 7));
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Reads an echo of `msg` if one has arrived, without waiting.
fn echoed_now(s: &mut TcpStream, msg: &[u8]) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; msg.len()];
    let got = matches!(s.read(&mut buf), Ok(n) if n > 0);
    s.set_nonblocking(false).unwrap();
    got
}

#[test]
fn out_of_file_descriptors_the_server_neither_spins_nor_dies_and_recovers() {
    if !have_client("out_of_file_descriptors", "prlimit") {
        return;
    }
    // About 30 of the 40 descriptors are left for connections (the rest: stdio, the poller
    // and its wakeup, the signal watchers' socket pair, the listener). 50 clients exhaust
    // them, and the ~20 left waiting fit in what the served ones free when they leave, so
    // there is exactly one episode of exhaustion.
    const LIMIT: u32 = 40;
    const CLIENTS: usize = 50;
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={LIMIT}:{LIMIT}"))
        .arg("--")
        .arg(example_path("echo_server"))
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "evloop=warn")
        .stderr(std::process::Stdio::piped());
    let mut server = start_example(cmd);
    let pid = server.child.id();

    // More clients than the server has descriptors for; the kernel queues them all.
    let mut clients: Vec<TcpStream> =
        (0..CLIENTS).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("{i:04}").as_bytes()).unwrap();
    }
    // Wait (bounded) until the first client is served, so the server is past its first
    // exhaustion.
    clients[0].set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut first = [0u8; 4];
    clients[0].read_exact(&mut first).unwrap();
    assert_eq!(&first, b"0000");

    // Over one second while out of descriptors, a spinning server would burn ~100 ticks.
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let burned = cpu_ticks(pid) - before;
    assert!(burned < 30, "the server used {burned} ticks of CPU in 1 s while out of descriptors");

    let mut served = vec![true];
    for (i, c) in clients.iter_mut().enumerate().skip(1) {
        served.push(echoed_now(c, format!("{i:04}").as_bytes()));
    }
    let count = served.iter().filter(|s| **s).count();
    assert!(count < CLIENTS, "all {CLIENTS} clients were served under a limit of {LIMIT} descriptors");

    // Clients leave; the ones that waited are served once descriptors come back.
    let mut waiting = Vec::new();
    for (c, was_served) in clients.into_iter().zip(&served) {
        if !was_served {
            waiting.push(c);
        }
    }
    for c in &mut waiting {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
    }
    // And the server still takes new connections.
    drop(waiting);
    let mut late = TcpStream::connect(server.addr).unwrap();
    late.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    late.write_all(b"late").unwrap();
    let mut buf = [0u8; 4];
    late.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"late");

    // One warning for the one episode.
    let _ = server.child.kill();
    let mut stderr = String::new();
    server.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(stderr.matches("pausing accepts").count(), 1, "{stderr}");
}

/// `--threads 2`: two loops, each with its own listener on the same port (SO_REUSEPORT),
/// and every connection is served, whichever loop the kernel gives it to.
#[test]
fn with_two_threads_two_listeners_share_the_port_and_every_connection_is_echoed() {
    let mut cmd = Command::new(example_path("echo_server"));
    cmd.args(["127.0.0.1:0", "--threads", "2"]);
    let server = start_example(cmd);
    assert_eq!(common::listeners_on(server.addr.port()), 2, "one listener per loop");
    let mut conns: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(format!("connection {i}\n").as_bytes()).unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let want = format!("connection {i}\n");
        let mut got = vec![0; want.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, want.as_bytes());
    }
}

#[test]
fn a_bad_thread_count_is_refused() {
    let out =
        Command::new(example_path("echo_server")).args(["127.0.0.1:0", "--threads", "0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads 0"), "{out:?}");
}

/// One echo round trip, bounded in time.
fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
}

/// Sends `signal` (`TERM`, `INT`) to the example with `kill`.
fn kill(server: &common::Example, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &server.child.id().to_string()]).status();
    assert!(status.unwrap().success(), "kill -{signal}");
}

/// Waits (at most `limit`) for the example to exit; its exit status.
fn exit_status(server: &mut common::Example, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (bounded) until connecting to `addr` is refused: the listener is closed.
fn wait_until_refused(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => assert!(Instant::now() < deadline, "{addr} still accepts connections"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Graceful shutdown, end to end with a real `kill -TERM` while a client is mid-transfer:
/// new connections are refused, the transfer completes, nothing is cut, and the server exits
/// 0 once its last client is gone.
#[test]
fn sigterm_mid_transfer_completes_it_refuses_new_connections_and_exits_0() {
    for threads in ["1", "2"] {
        let mut cmd = Command::new(example_path("echo_server"));
        cmd.args(["127.0.0.1:0", "--threads", threads]);
        let mut server = start_example(cmd);
        let data = common::pattern(1 << 20);
        let mut client = TcpStream::connect(server.addr).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reader = client.try_clone().unwrap();
        let reading = std::thread::spawn(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).map(|_| got)
        });
        client.write_all(&data[..256 << 10]).unwrap();
        kill(&server, "TERM");
        wait_until_refused(server.addr);
        client.write_all(&data[256 << 10..]).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let echoed = reading.join().unwrap().expect("the echo stream ends cleanly");
        assert!(
            echoed == data,
            "{threads} thread(s): {} of {} bytes echoed, or not intact",
            echoed.len(),
            data.len()
        );
        let status = exit_status(&mut server, Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "{threads} thread(s): {status}");
    }
}

/// A client that never closes is cut at the deadline (5 s), and the exit status says so.
#[test]
fn sigterm_with_a_client_that_never_closes_exits_1_after_the_deadline() {
    let mut server = echo_server();
    let mut idle = TcpStream::connect(server.addr).unwrap();
    round_trip(&mut idle, b"ping");
    let asked = Instant::now();
    kill(&server, "TERM");
    let status = exit_status(&mut server, Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{status}");
    assert!(asked.elapsed() >= Duration::from_millis(4900), "cut before the deadline: {:?}", asked.elapsed());
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    let ended = idle.read_to_end(&mut rest);
    assert!(ended.is_ok() || ended.unwrap_err().kind() == std::io::ErrorKind::ConnectionReset);
}

/// A second SIGINT exits at once, with status 130, however many connections are open.
#[test]
fn a_second_sigint_exits_at_once() {
    let mut server = echo_server();
    let mut idle = TcpStream::connect(server.addr).unwrap();
    round_trip(&mut idle, b"ping");
    kill(&server, "INT");
    wait_until_refused(server.addr);
    kill(&server, "INT");
    let status = exit_status(&mut server, Duration::from_secs(4));
    assert_eq!(status.code(), Some(130), "{status}");
}
