//! The header and idle deadlines, and what a client that does not read may cost.

use super::*;

/// A client that trickles its request head, one byte every 100 ms, keeps restarting the idle
/// timeout; the header deadline cuts it off with 408 (the exact times are tested on the
/// simulator, in `tests/sim_scenarios/`).
#[test]
fn a_head_that_trickles_in_gets_408_at_the_header_deadline() {
    let server = Server::with_timeouts_ms(5000, 600);
    // Taken before the connect: the server's deadline starts at its accept, after this.
    let start = Instant::now();
    let mut c = Client::connect(server.addr);
    let mut writer = c.stream.try_clone().unwrap();
    writer.set_nodelay(true).unwrap();
    let trickle = thread::spawn(move || {
        // A head that never ends; until the server has closed, and no longer than 10 s.
        let head = format!("GET / HTTP/1.1\r\nHost: test\r\nX-Slow: {}", "a".repeat(100));
        for &byte in &head.as_bytes()[..100] {
            if writer.write_all(&[byte]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let r = c.response();
    let elapsed = start.elapsed();
    assert_eq!((r.status, r.header("connection")), (408, Some("close")), "{r:?}");
    assert_eq!(r.body, b"Request Timeout");
    // The deadline counts from the connection's start (600 ms); the idle timeout (5 s) never
    // runs out while the bytes keep coming.
    // (599: the loop keeps whole milliseconds, so its 600 may be 599.x real ones.)
    assert!(elapsed >= Duration::from_millis(599), "408 after {elapsed:?}");
    assert!(elapsed < Duration::from_millis(4500), "408 after {elapsed:?}");
    // FIN follows the 408; the server discards what still arrives until we close.
    c.expect_eof();
    // Our FIN ends the lingering close, and the trickling writes fail.
    c.stream.shutdown(Shutdown::Write).unwrap();
    trickle.join().unwrap();
}

/// The header deadline runs only while a head is incomplete: a client that pauses between
/// complete requests for longer than it is not cut off (the idle timeout is what applies).
/// The margins hold on a loaded machine: a sleep only ever lasts longer, which makes the
/// pauses (1.3 s against a 1 s deadline) more telling, and the head's two parts would have
/// to be 10 times further apart than asked to meet the deadline. The exact times are tested
/// on the simulator (`s02_a_pause_between_requests_is_not_a_slow_head`).
#[test]
fn a_pause_between_requests_is_not_a_slow_head() {
    let server = Server::with_timeouts_ms(20_000, 1000);
    let mut c = Client::connect(server.addr);
    for _ in 0..2 {
        c.send(get("/").as_bytes());
        assert_eq!(c.response().status, 200);
        thread::sleep(Duration::from_millis(1300));
    }
    // A head in two parts, the second 100 ms after the first, is well within its deadline.
    let request = get("/");
    let (first, second) = request.split_at(10);
    c.send(first.as_bytes());
    thread::sleep(Duration::from_millis(100));
    c.send(second.as_bytes());
    assert_eq!(c.response().status, 200);
}

/// A client that pipelines requests but does not read the responses must not make the
/// server buffer them: it stops reading until its write queue drains.
#[test]
fn a_client_that_does_not_read_does_not_grow_the_server() {
    const REQUESTS: usize = 400_000;
    let server = Server::with_idle_ms(30_000);
    let baseline = peak_memory_kib(&server);
    let mut c = Client::small_window(server.addr);
    let request = get("/");
    let mut writer = c.stream.try_clone().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let progress = written.clone();
    let writing = thread::spawn(move || {
        let batch = request.repeat(1000);
        for _ in 0..REQUESTS / 1000 {
            writer.write_all(batch.as_bytes()).unwrap();
            progress.fetch_add(1000, Ordering::Relaxed);
        }
    });
    // Read nothing until the writer has finished or stalls (no progress for 300 ms).
    let mut last = (0, Instant::now());
    loop {
        let now = written.load(Ordering::Relaxed);
        if now == REQUESTS || (now == last.0 && last.1.elapsed() > Duration::from_millis(300)) {
            break;
        }
        if now != last.0 {
            last = (now, Instant::now());
        }
        assert!(last.1.elapsed() < LIMIT, "the writer neither progressed nor stalled");
        thread::sleep(Duration::from_millis(10));
    }
    // Now read every response: the server resumes as its queue drains.
    let total = REQUESTS * HELLO.len();
    let mut received = 0;
    let mut chunk = vec![0; 64 * 1024];
    while received < total {
        let n = c.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "end of stream after {received} of {total} bytes");
        for (i, &byte) in chunk[..n].iter().enumerate() {
            assert_eq!(byte, HELLO[(received + i) % HELLO.len()], "at byte {}", received + i);
        }
        received += n;
    }
    writing.join().unwrap();
    c.stream.shutdown(Shutdown::Write).unwrap();
    c.expect_eof();
    if let (Some(before), Some(after)) = (baseline, peak_memory_kib(&server)) {
        // Buffering the unread responses takes tens of MiB; pausing keeps growth near 1 MiB.
        assert!(after < before + 4096, "peak memory grew from {before} KiB to {after} KiB");
    }
}

/// The peak resident memory of the server (Linux), in KiB.
fn peak_memory_kib(server: &Server) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// When the server gives up on a client that is still sending, it must not reset the
/// connection: a reset would destroy the responses still in its kernel's send buffer. It
/// sends FIN, discards what arrives until the client closes (RFC 9112's lingering close).
#[test]
fn responses_queued_before_a_bad_request_survive_a_client_that_keeps_sending() {
    const REQUESTS: usize = 100_000;
    let server = Server::start();
    let mut c = Client::small_window(server.addr);
    let mut writer = c.stream.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let writing = thread::spawn(move || {
        let _ = writer.write_all((get("/").repeat(REQUESTS) + "garbage\r\n\r\n").as_bytes());
        // Keep sending, as a client uploading a body would, until the test has its answers.
        while !stopped.load(Ordering::Relaxed) && writer.write_all(&[b'x'; 100]).is_ok() {
            thread::sleep(Duration::from_millis(1));
        }
    });
    let mut got = Vec::new();
    let result = c.stream.read_to_end(&mut got);
    stop.store(true, Ordering::Relaxed);
    writing.join().unwrap();
    result.unwrap_or_else(|e| panic!("{e} after {} bytes", got.len()));
    let bad = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request";
    assert_eq!(got.len(), REQUESTS * HELLO.len() + bad.len());
    assert!(got == [HELLO.repeat(REQUESTS), bad.to_vec()].concat());
}
