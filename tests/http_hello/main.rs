//! End-to-end tests of `examples/http_hello.rs`: the compiled example runs as a child process
//! on a free port, and plain `std::net` sockets, then curl, nc and wrk talk to it. Requests
//! and replies are here; deadlines and memory bounds in `deadlines.rs`; the outside clients,
//! threads and shutdown in `clients.rs`.
//!
//! `cargo test` builds the example; with `cargo test --test http_hello` alone, run
//! `cargo build --example http_hello` first. A missing client (curl, nc, wrk) skips its test,
//! or fails it when `EVLOOP_REQUIRE_CLIENTS` is set, as in CI (`common::have_client`).

mod clients;
#[path = "../common/mod.rs"]
mod common;
mod deadlines;

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
