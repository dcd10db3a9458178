//! End-to-end tests of `examples/http_hello.rs`: the compiled example runs as a child process
//! on a free port, and plain `std::net` sockets, then curl, nc and wrk talk to it.
//!
//! `cargo test` builds the example; with `cargo test --test http_hello` alone, run
//! `cargo build --example http_hello` first. A missing client (curl, nc, wrk) skips its test,
//! or fails it when `EVLOOP_REQUIRE_CLIENTS` is set, as in CI (`common::have_client`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{example_path, have_client};

/// How long any single wait of a test may take.
const LIMIT: Duration = Duration::from_secs(10);

const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

/// The example running as a child process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// The test made it exit (a graceful shutdown): its exit is no crash.
    exited_by_design: bool,
}

impl Server {
    fn start() -> Server {
        Server::with_idle_ms(5000)
    }

    fn with_idle_ms(idle_ms: u64) -> Server {
        Server::with_timeouts_ms(idle_ms, 10_000)
    }

    fn with_timeouts_ms(idle_ms: u64, header_ms: u64) -> Server {
        Server::with_args(&["127.0.0.1:0", &idle_ms.to_string(), &header_ms.to_string()])
    }

    fn with_args(args: &[&str]) -> Server {
        let mut child = Command::new(binary())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot start the http_hello example");
        let stdout = child.stdout.take().unwrap();
        let mut server = Server { child, addr: "0.0.0.0:0".parse().unwrap(), exited_by_design: false };
        // Read the first line on a thread, so that a silent server fails the test in time.
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(LIMIT).expect("the server did not print its address");
        let addr =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected: {line:?}"));
        server.addr = addr.parse().unwrap();
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A server that exited by itself crashed: fail the test (unless it already failed).
        let exited = self.child.try_wait().ok().flatten();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(status) = exited {
            if !thread::panicking() && !self.exited_by_design {
                panic!("the server exited during the test: {status}");
            }
        }
    }
}

/// The example's binary, which `cargo test` builds; refused if older than its source.
fn binary() -> PathBuf {
    let bin = example_path("http_hello");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/http_hello.rs");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(&bin), modified(&source)) {
        (None, _) => panic!("{} is missing: run `cargo build --example http_hello`", bin.display()),
        (Some(b), Some(s)) if b < s => {
            panic!("{} is older than its source: run `cargo build --example http_hello`", bin.display())
        }
        _ => bin,
    }
}

/// Runs a client program with `input` on its stdin; kills it and fails if it takes longer
/// than `limit`.
fn run_client(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().unwrap().write_all(input).unwrap();
    // Drain the pipes while waiting, so that a talkative client cannot block on them.
    fn drain<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<Vec<u8>> {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take().unwrap()), drain(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("{cmd:?} still ran after {limit:?}; stderr: {stderr}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// A blocking client connection that parses responses.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect_timeout(&addr, LIMIT).unwrap())
    }

    /// A client with a small receive buffer, so that unread responses back up into the
    /// server quickly.
    fn small_window(addr: SocketAddr) -> Client {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        socket.connect_timeout(&addr.into(), LIMIT).unwrap();
        Client::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        stream.set_write_timeout(Some(LIMIT)).unwrap();
        Client { stream, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads more into the buffer; returns 0 at the end of the stream.
    fn fill(&mut self) -> usize {
        let mut chunk = [0; 16 * 1024];
        let n = self.stream.read(&mut chunk).unwrap_or_else(|e| panic!("read failed (or timed out): {e}"));
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response; `to_head` says it answers a HEAD request (no body).
    fn response_to(&mut self, to_head: bool) -> Response {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(self.fill() > 0, "end of stream inside a response head: {:?}", self.text());
        };
        let head = String::from_utf8(self.buf.drain(..end).collect()).unwrap();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head:?}"));
        let mut response = Response { status, head, body: Vec::new() };
        let len: usize = response.header("content-length").expect("Content-Length").parse().unwrap();
        let len = if to_head { 0 } else { len };
        while self.buf.len() < len {
            assert!(self.fill() > 0, "end of stream inside a body");
        }
        response.body = self.buf.drain(..len).collect();
        response
    }

    fn response(&mut self) -> Response {
        self.response_to(false)
    }

    /// Asserts that the server closes the connection with nothing more sent.
    fn expect_eof(&mut self) {
        assert_eq!(self.fill(), 0, "expected the end of the stream, got {:?}", self.text());
        assert!(self.buf.is_empty(), "unexpected bytes: {:?}", self.text());
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

#[test]
fn get_root_gives_exactly_hello_world() {
    let server = Server::start();
    let mut c = Client::connect(server.addr);
    c.send(get("/").as_bytes());
    // After our FIN the server answers what was asked, then closes: all it sent is the answer.
    c.stream.shutdown(Shutdown::Write).unwrap();
    while c.fill() > 0 {}
    assert_eq!(c.text(), String::from_utf8_lossy(HELLO));
}

#[test]
fn other_paths_get_404_and_other_methods_405() {
    let server = Server::start();
    let mut c = Client::connect(server.addr);
    c.send(get("/missing").as_bytes());
    let r = c.response();
    assert_eq!(r.status, 404, "{r:?}");
    assert!(!r.body.is_empty());
    assert_eq!(r.header("connection"), None, "a 404 keeps the connection");
    c.send(b"DELETE / HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    c.send(get("/?query=1").as_bytes());
    assert_eq!(c.response().body, b"Hello, World!");
}

#[test]
fn keep_alive_serves_sequential_requests_on_one_connection() {
    let server = Server::start();
    let mut c = Client::connect(server.addr);
    for _ in 0..3 {
        c.send(get("/").as_bytes());
        let r = c.response();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, World!"[..]));
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start();
    let mut c = Client::connect(server.addr);
    let head = "HEAD / HTTP/1.1\r\nHost: test\r\n\r\n";
    c.send(format!("{}{head}{}{}", get("/"), get("/missing"), get("/")).as_bytes());
    let r = c.response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, World!"[..]));
    let r = c.response_to(true);
    assert_eq!((r.status, r.header("content-length")), (200, Some("13")));
    assert_eq!(c.response().status, 404);
    assert_eq!(c.response().body, b"Hello, World!");
    // Nothing more: the HEAD answer had no body.
    c.stream.shutdown(Shutdown::Write).unwrap();
    c.expect_eof();
}

#[test]
fn request_bodies_are_skipped_and_pipelining_stays_in_step() {
    let server = Server::start();
    let mut c = Client::connect(server.addr);
    // The body looks like a request: answering it would put the responses out of step.
    let body = get("/missing");
    let post = format!("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    c.send(format!("{post}{}", get("/")).as_bytes());
    assert_eq!(c.response().status, 405);
    assert_eq!(c.response().status, 200);
    // A body that arrives later, in pieces, is skipped too.
    c.send(b"PUT /x HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n12345");
    assert_eq!(c.response().status, 404);
    c.send(format!("67890{}", get("/")).as_bytes());
    assert_eq!(c.response().status, 200);
}

#[test]
fn a_request_split_byte_by_byte_is_answered() {
    let server = Server::start();
    let mut c = Client::connect(server.addr);
    c.stream.set_nodelay(true).unwrap();
    for byte in format!("{}{}", get("/"), get("/missing")).bytes() {
        c.send(&[byte]);
    }
    assert_eq!(c.response().body, b"Hello, World!");
    assert_eq!(c.response().status, 404);
}

#[test]
fn connection_close_and_http_1_0_are_honoured() {
    let server = Server::start();
    // HTTP/1.1 with `Connection: close`: answered, then closed by the server.
    let mut c = Client::connect(server.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    c.expect_eof();
    // HTTP/1.0 closes by default...
    let mut c = Client::connect(server.addr);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(c.response().header("connection"), Some("close"));
    c.expect_eof();
    // ...and keeps the connection if asked to.
    let mut c = Client::connect(server.addr);
    for _ in 0..2 {
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.response();
        assert_eq!((r.status, r.header("connection")), (200, Some("keep-alive")));
    }
}

#[test]
fn malformed_requests_get_400_then_the_server_closes() {
    let server = Server::start();
    let bad: [&[u8]; 14] = [
        b"garbage\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: test\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nBad name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\n folded: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nX: a\nb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\xC3\x28\r\n\r\n",
    ];
    for request in bad {
        let mut c = Client::connect(server.addr);
        // A valid request after the bad one must not be answered.
        c.send(&[request, get("/").as_bytes()].concat());
        let r = c.response();
        let shown = String::from_utf8_lossy(request);
        assert_eq!((r.status, r.header("connection")), (400, Some("close")), "for {shown:?}");
        c.expect_eof();
    }
    // Chunked bodies are not decoded: refused, since their end cannot be found.
    let mut c = Client::connect(server.addr);
    c.send(b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(c.response().status, 501);
    c.expect_eof();
}

#[test]
fn a_head_over_8_kib_gets_431_then_the_server_closes() {
    let server = Server::start();
    let big = "a".repeat(9000);
    // Without the end of the head, and with it.
    for end in ["", "\r\n\r\n"] {
        let mut c = Client::connect(server.addr);
        c.send(format!("GET / HTTP/1.1\r\nHost: test\r\nX-Big: {big}{end}").as_bytes());
        let r = c.response();
        assert_eq!((r.status, r.header("connection")), (431, Some("close")));
        c.expect_eof();
    }
    // Just under the limit is fine.
    let mut c = Client::connect(server.addr);
    let head = format!("GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n", "a".repeat(8000));
    c.send(head.as_bytes());
    assert_eq!(c.response().status, 200);
}

#[test]
fn idle_connections_are_closed() {
    let server = Server::with_idle_ms(200);
    // Silent from the start.
    let mut c = Client::connect(server.addr);
    let start = Instant::now();
    c.expect_eof();
    assert!(start.elapsed() >= Duration::from_millis(100), "closed after {:?}", start.elapsed());
    // Silent after a response.
    let mut c = Client::connect(server.addr);
    c.send(get("/").as_bytes());
    assert_eq!(c.response().status, 200);
    c.expect_eof();
}

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

#[test]
fn curl_reuses_the_connection_and_sees_404() {
    if !have_client("curl_reuses_the_connection_and_sees_404", "curl") {
        return;
    }
    let server = Server::start();
    let url = server.url("/");
    let out = run_client(Command::new("curl").args(["-sv", "--max-time", "10", &url, &url]), b"", LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl failed: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, World!Hello, World!");
    // curl 7 says "Re-using", curl 8 "Reusing".
    assert!(
        stderr.contains("Re-using existing connection") || stderr.contains("Reusing existing"),
        "the connection was not reused: {stderr}"
    );

    let missing = server.url("/missing");
    let args = ["-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", &missing];
    let out = run_client(Command::new("curl").args(args), b"", LIMIT);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
}

#[test]
fn nc_gets_400_for_garbage_and_the_server_closes() {
    if !have_client("nc_gets_400_for_garbage_and_the_server_closes", "nc") {
        return;
    }
    let server = Server::start();
    let (host, port) = (server.addr.ip().to_string(), server.addr.port().to_string());
    // netcat-openbsd: -N sends FIN after stdin's end; nc exits once the server closes.
    let out =
        run_client(Command::new("nc").args(["-N", "-w", "10", &host, &port]), b"garbage\r\n\r\n", LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{stdout:?}");
    assert!(stdout.contains("\r\nConnection: close\r\n"), "{stdout:?}");
}

#[test]
fn wrk_100_connections_without_errors() {
    if !have_client("wrk_100_connections_without_errors", "wrk") {
        return;
    }
    let server = Server::start();
    let url = server.url("/");
    let out = run_client(
        Command::new("wrk").args(["-t2", "-c100", "-d3s", "--timeout", "5s", &url]),
        b"",
        Duration::from_secs(30),
    );
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert!(out.status.success(), "wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    let requests: u64 = report
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.trim().to_string()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's report"));
    assert!(requests > 0);
    // "Socket errors: connect 0, read 0, write 0, timeout 0" appears only if one is not 0.
    if let Some(errors) = report.lines().find(|l| l.contains("Socket errors:")) {
        let counts = errors.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok());
        assert!(counts.clone().count() == 4 && counts.sum::<u64>() == 0, "{errors}");
    }
    assert!(!report.contains("Non-2xx or 3xx responses"), "{report}");
}

/// `--threads 2`: two loops, each with its own listener on the port (SO_REUSEPORT); curl
/// gets its answer from whichever the kernel picks, on every connection.
#[test]
fn with_two_threads_two_listeners_share_the_port() {
    if !have_client("with_two_threads_two_listeners_share_the_port", "curl") {
        return;
    }
    let server = Server::with_args(&["127.0.0.1:0", "--threads", "2"]);
    assert_eq!(common::listeners_on(server.addr.port()), 2, "one listener per loop");
    for _ in 0..20 {
        let out = run_client(Command::new("curl").args(["-s", &server.url("/")]), b"", LIMIT);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, b"Hello, World!");
    }
}

/// Graceful shutdown with a real `kill -TERM`: an idle keep-alive connection is ended at
/// once; a request whose head is half sent still gets its answer, with `Connection: close`,
/// and its connection then ends; new connections are refused; the server exits 0 (not 1,
/// which would mean the 5 s deadline had to cut a connection).
#[test]
fn sigterm_answers_the_request_in_flight_ends_idle_connections_and_exits_0() {
    let mut server = Server::start();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut idle = TcpStream::connect(server.addr).unwrap();
    idle.set_read_timeout(Some(LIMIT)).unwrap();
    idle.write_all(request).unwrap();
    let mut first = vec![0; HELLO.len()];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(first, HELLO, "served before the signal");
    let mut busy = TcpStream::connect(server.addr).unwrap();
    busy.set_read_timeout(Some(LIMIT)).unwrap();
    busy.write_all(&request[..10]).unwrap();
    thread::sleep(Duration::from_millis(100)); // let the half head arrive (not needed for correctness)
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    // The idle connection ends at once: the end of the stream, with nothing more.
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    drop(idle); // as a client does at the end of the stream (the server lingers until then)
                // New connections are refused (bounded wait for the listener to close).
    let deadline = Instant::now() + LIMIT;
    while TcpStream::connect(server.addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting");
        thread::sleep(Duration::from_millis(10));
    }
    // The request in flight is answered, as the connection's last.
    busy.write_all(&request[10..]).unwrap();
    let mut answer = Vec::new();
    busy.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    assert!(answer.ends_with("Hello, World!"), "{answer}");
    drop(busy);
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "{status}");
    server.exited_by_design = true;
}
