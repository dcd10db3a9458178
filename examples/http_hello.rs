//! A minimal HTTP/1.1 server: `GET /` answers `Hello, World!`.
//!
//! Usage: `http_hello [ADDR] [IDLE_TIMEOUT_MS] [HEADER_TIMEOUT_MS] [--threads N]` (defaults
//! `127.0.0.1:8080`, 5000, 10000, one thread). ADDR is `host:port` or `unix:PATH` (then
//! `curl --unix-socket PATH http://x/` asks it; the socket file is removed on exit). It
//! prints `listening on <addr>` once bound, so that a caller can bind port 0 and learn the
//! port. With `--threads N` (TCP only), N loops, one per thread, each with its own listener
//! on the same address (`SO_REUSEPORT`).
//!
//! On SIGINT or SIGTERM it shuts down gracefully: it stops accepting, answers the requests
//! in flight (with `Connection: close`) and ends their connections after the response, ends
//! idle keep-alive connections at once, and exits 0; what is still open after 5 s is closed
//! and it exits 1. A second SIGINT exits at once (status 130).
//!
//! What it speaks: keep-alive (the HTTP/1.1 default; `Connection: close` is honoured, HTTP/1.0
//! closes unless it asks for keep-alive), pipelined requests answered in order, request bodies
//! with `Content-Length` skipped unread. `GET` and `HEAD` of `/` get 200, any other path 404,
//! any other method on `/` 405. A malformed head gets 400, a head over `max_head` bytes 431,
//! `Transfer-Encoding` (which it does not decode) 501; after those the connection is closed.
//! A connection is closed after `idle_timeout` without anything read from it. A request head
//! must arrive whole within `header_timeout` of its first byte (of the connection's start, for
//! the first request), else the answer is 408 and the connection ends: the idle timeout alone
//! would let a client that trickles one byte at a time hold a connection for ever.
//!
//! All of a connection's state lives in its read closure ([`Conn`]); its two [`Timer`]s and
//! the shutdown callback hold only the handle ids ([`Ids`]), to close them.
//!
//! The request framing and head parser are in `support/http.rs`, free of I/O, so that the
//! tests and the fuzz target `http_request` (fuzz/) drive them with bytes alone.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use evloop::{Loop, RunMode, TcpListener, Timer};

#[path = "support/http.rs"]
mod http;
#[path = "support/per_core.rs"]
mod per_core;
#[path = "support/shutdown.rs"]
mod shutdown;
#[path = "support/stream.rs"]
mod stream;

use stream::{AnyStream, ServerAddr, Stream};

/// The server's settings.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// A connection from which nothing arrives for this long is closed.
    pub idle_timeout: Duration,
    /// A request head must arrive whole within this long of its first byte (Node's
    /// `headersTimeout`); the first one, of the connection's start.
    pub header_timeout: Duration,
    /// The largest request head (request line and headers, with the blank line) accepted.
    pub max_head: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            idle_timeout: Duration::from_millis(5000),
            header_timeout: Duration::from_millis(10_000),
            max_head: 8192,
        }
    }
}

/// Binds `addr` and serves every connection the listener accepts on `lp`.
pub fn serve<S: 'static>(lp: &mut Loop<S>, addr: SocketAddr, config: Config) -> io::Result<TcpListener> {
    let mut on_connection = on_connection(config);
    TcpListener::bind(lp, addr, move |lp, s| on_connection(lp, AnyStream::Tcp(s)))
}

/// The connection handler: serves one accepted connection (TCP or Unix) with `config`.
pub fn on_connection<S: 'static>(config: Config) -> impl FnMut(&mut Loop<S>, AnyStream) + 'static {
    move |lp, stream| {
        // The two timers name each other: the header timer learns the idle timer's id here.
        let idle_id = Rc::new(Cell::new(None));
        let idle_of_header = idle_id.clone();
        let header = Timer::new(lp, move |lp, header| {
            if let Some(idle) = idle_of_header.get() {
                header_timed_out(lp, Ids { stream, idle, header }, config);
            }
        });
        let idle = Timer::new(lp, move |lp, idle| {
            log::debug!("{stream:?}: idle, closing");
            Ids { stream, idle, header }.close(lp);
        });
        idle_id.set(Some(idle));
        let ids = Ids { stream, idle, header };
        // Responses are written whole; Nagle would only delay them.
        let started = idle
            .start(lp, config.idle_timeout, config.idle_timeout)
            .and_then(|()| header.start(lp, config.header_timeout, Duration::ZERO))
            .and_then(|()| stream.set_nodelay(lp, true))
            .and_then(|()| stream.on_drain(lp, |lp, stream| drop(stream.read_resume(lp))))
            .and_then(|()| stream.read_start(lp, reader(Conn::new(ids, config))));
        match started {
            Ok(()) => ids.set_idle(true),
            Err(e) => {
                log::debug!("{stream:?}: cannot start: {e}");
                ids.close(lp);
            }
        }
    }
}

thread_local! {
    /// This thread's loop is shutting down: every response is a connection's last.
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    /// Connections waiting for their next request (one loop per thread, so per loop).
    static IDLE: RefCell<HashMap<AnyStream, Ids>> = RefCell::new(HashMap::new());
}

/// Starts draining this thread's connections for a graceful shutdown: requests in flight
/// are answered with `Connection: close` and their connection ends after the response;
/// connections waiting between requests end at once (FIN after anything still queued).
pub fn begin_draining<S>(lp: &mut Loop<S>) {
    DRAINING.with(|d| d.set(true));
    let idle: Vec<Ids> = IDLE.with(|set| set.borrow_mut().drain().map(|(_, ids)| ids).collect());
    for ids in idle {
        ids.finish(lp);
    }
}

/// A connection's handles.
#[derive(Clone, Copy)]
struct Ids {
    stream: AnyStream,
    /// Closes the connection after `idle_timeout` without a read; restarted by every read.
    idle: Timer,
    /// Runs while a request head is incomplete: started at its first byte, stopped at its end.
    header: Timer,
}

impl Ids {
    /// Sends FIN after the queued responses, then closes once the peer has closed its side
    /// too, or after one more idle timeout (see `Conn::finish`).
    fn finish<S>(self, lp: &mut Loop<S>) {
        let ids = self;
        let _ = ids.header.stop(lp);
        let shutdown = ids.stream.shutdown(lp, move |lp, result| {
            // Reading stops by itself at the peer's FIN or at an error.
            if result.is_err() || !ids.stream.is_reading(lp) {
                ids.close(lp);
            } else {
                let _ = ids.idle.again(lp);
            }
        });
        if shutdown.is_err() {
            ids.close(lp);
        }
    }

    /// Marks the connection as waiting for its next request (or not). A graceful shutdown
    /// ends the waiting ones at once ([`begin_draining`]).
    fn set_idle(self, idle: bool) {
        IDLE.with(|set| {
            let mut set = set.borrow_mut();
            if idle {
                set.insert(self.stream, self);
            } else {
                set.remove(&self.stream);
            }
        });
    }

    /// Closes the stream (cancelling what is still queued) and the timers.
    fn close<S>(self, lp: &mut Loop<S>) {
        self.set_idle(false);
        let _ = self.stream.close(lp);
        let _ = self.idle.close(lp);
        let _ = self.header.close(lp);
    }
}

/// The head of a request did not arrive in time: answer 408 and end the connection as after
/// any last response (lingering close), with a new reader that discards what still arrives.
/// The idle timeout, which the discarding reader no longer restarts, bounds the lingering.
fn header_timed_out<S: 'static>(lp: &mut Loop<S>, ids: Ids, config: Config) {
    log::debug!("{:?}: request head too slow, closing", ids.stream);
    let mut c = Conn { closing: true, ..Conn::new(ids, config) };
    let mut out = Vec::new();
    respond(&mut out, 408, false, Reply::Close);
    c.send(lp, &out);
    // An error here means `send` closed the connection already.
    let _ = ids.stream.read_start(lp, reader(c));
}

/// One connection.
struct Conn {
    ids: Ids,
    config: Config,
    /// Received bytes not yet consumed: at most one partial head after each read, unless
    /// closing (then the rest is never looked at).
    buf: Vec<u8>,
    /// Where the byte stream stands: in a head (and how much of it was searched) or in a body.
    framer: http::Framer,
    /// A last response is queued and FIN follows it: what still arrives is discarded.
    closing: bool,
}

/// The read callback, owning the connection's state.
fn reader<S: 'static>(mut c: Conn) -> impl FnMut(&mut Loop<S>, AnyStream, io::Result<&[u8]>) + 'static {
    move |lp, stream, data| match data {
        Err(e) => {
            log::debug!("{stream:?}: read failed: {e}");
            c.close(lp);
        }
        Ok([]) => c.peer_finished(lp),
        Ok(_) if c.closing => {}
        Ok(bytes) => {
            c.ids.set_idle(false);
            let _ = c.ids.idle.again(lp);
            c.buf.extend_from_slice(bytes);
            let keep_reading = c.serve(lp);
            // Between requests: nothing buffered, nothing to skip, not ending.
            if !c.closing && c.buf.is_empty() && !c.framer.in_body() {
                c.ids.set_idle(true);
            }
            if !keep_reading {
                // The peer does not read its responses: stop reading its requests until the
                // write queue drains (the drain callback resumes), else the queue would grow
                // without bound. A head cut short meanwhile is our delay, not the client's:
                // its deadline starts again with the next read.
                let _ = stream.read_stop(lp);
                let _ = c.ids.header.stop(lp);
            }
        }
    }
}

impl Conn {
    fn new(ids: Ids, config: Config) -> Conn {
        Conn { ids, config, buf: Vec::new(), framer: http::Framer::default(), closing: false }
    }

    /// Answers every complete request in the buffer with one write. Returns whether to keep
    /// reading (`false`: the write queue is full).
    fn serve<S>(&mut self, lp: &mut Loop<S>) -> bool {
        let mut out = Vec::new();
        let mut pos = 0;
        while !self.closing {
            let (used, request) = self.framer.next(&self.buf[pos..], self.config.max_head);
            pos += used;
            let Some(request) = request else {
                if pos < self.buf.len() && !self.ids.header.is_active(lp) {
                    // A new head begins: its deadline runs from now.
                    let _ = self.ids.header.start(lp, self.config.header_timeout, Duration::ZERO);
                }
                break;
            };
            let _ = self.ids.header.stop(lp);
            match request {
                Ok(req) => {
                    // A client that expects `100 Continue` may hold its body back: as it
                    // gets none, the body's framing is unknown and the connection must end.
                    // A shutdown under way: this response is the connection's last.
                    self.closing =
                        !req.keep_alive || (req.expect_continue && req.body > 0) || DRAINING.with(Cell::get);
                    let reply = match (self.closing, req.http10) {
                        (true, _) => Reply::Close,
                        (false, true) => Reply::KeepAlive,
                        (false, false) => Reply::Default,
                    };
                    respond(&mut out, req.status(), req.method == "HEAD", reply);
                }
                Err(code) => {
                    log::debug!("{:?}: bad request: {code}", self.ids.stream);
                    respond(&mut out, code, false, Reply::Close);
                    self.closing = true;
                }
            }
        }
        self.buf.drain(..pos);
        out.is_empty() || self.send(lp, &out)
    }

    /// Queues `out`, then FIN if the connection is ending. Returns whether to keep reading.
    fn send<S>(&mut self, lp: &mut Loop<S>, out: &[u8]) -> bool {
        let below_mark = match self.ids.stream.write(lp, out) {
            Ok(below) => below,
            Err(e) => {
                log::debug!("{:?}: write failed: {e}", self.ids.stream);
                return self.close(lp);
            }
        };
        if self.closing {
            self.finish(lp);
            return true;
        }
        below_mark
    }

    /// The peer sent FIN.
    fn peer_finished<S>(&mut self, lp: &mut Loop<S>) {
        if !self.closing {
            self.closing = true;
            self.finish(lp);
        } else if self.ids.stream.write_queue_size(lp).unwrap_or(0) == 0 {
            // Our FIN went out with the last response: both sides are done.
            self.close(lp);
        }
    }

    /// Sends FIN after the queued responses, then closes once the peer has closed its side
    /// too, or after one more idle timeout. Closing at once could reset the connection and
    /// destroy the response in flight if the peer's unread requests are still in our receive
    /// buffer (the "lingering close" of RFC 9112, section 9.6).
    fn finish<S>(&mut self, lp: &mut Loop<S>) {
        self.ids.finish(lp);
    }

    /// Closes the stream (cancelling what is still queued) and its timers. Returns `true`:
    /// there is nothing to pause.
    fn close<S>(&mut self, lp: &mut Loop<S>) -> bool {
        self.ids.close(lp);
        true
    }
}

/// How a response speaks of the connection.
enum Reply {
    /// HTTP/1.1 keep-alive: no `Connection` header.
    Default,
    /// `Connection: keep-alive`, which an HTTP/1.0 client needs to keep the connection.
    KeepAlive,
    /// `Connection: close`.
    Close,
}

/// Appends a response with status `code` to `out`; an error's body is its reason phrase.
fn respond(out: &mut Vec<u8>, code: u16, head_only: bool, reply: Reply) {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Not Implemented",
    };
    let body = if code == 200 { "Hello, World!" } else { reason };
    let allow = if code == 405 { "Allow: GET, HEAD\r\n" } else { "" };
    let connection = match reply {
        Reply::Default => "",
        Reply::KeepAlive => "Connection: keep-alive\r\n",
        Reply::Close => "Connection: close\r\n",
    };
    let _ = write!(
        out,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{allow}{connection}\r\n",
        body.len()
    );
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
}

fn main() -> io::Result<()> {
    env_logger::init();
    fn usage() -> ! {
        eprintln!("usage: http_hello [ADDR] [IDLE_TIMEOUT_MS] [HEADER_TIMEOUT_MS] [--threads N]");
        std::process::exit(2)
    }
    let (threads, rest) = per_core::take_threads(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("{e}");
        usage()
    });
    let mut args = rest.into_iter();
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let idle = args.next().unwrap_or_else(|| "5000".into());
    let header = args.next().unwrap_or_else(|| "10000".into());
    let (Ok(addr), Ok(idle), Ok(header), None) =
        (addr.parse::<ServerAddr>(), idle.parse(), header.parse(), args.next())
    else {
        usage()
    };
    let config = Config {
        idle_timeout: Duration::from_millis(idle),
        header_timeout: Duration::from_millis(header),
        ..Config::default()
    };
    let mut stdout = io::stdout();
    stream::refuse_threads_with_unix(threads, &addr)?;
    if let (true, ServerAddr::Tcp(addr)) = (threads > 1, &addr) {
        let (bound, workers) =
            per_core::serve_per_core(threads, *addr, shutdown::GRACE, begin_draining, move || {
                let mut on_connection = on_connection(config);
                move |lp: &mut Loop<()>, s| on_connection(lp, AnyStream::Tcp(s))
            })?;
        writeln!(stdout, "listening on {bound}")?;
        stdout.flush()?;
        let forced = workers.into_iter().any(|w| w.join().ok().flatten() == Some(shutdown::Outcome::Forced));
        std::process::exit(i32::from(forced));
    }
    let mut lp = Loop::new()?;
    let (_listener, bound) = stream::listen_any(&mut lp, &addr, on_connection(config))?;
    let outcome = shutdown::on_signals(&mut lp, shutdown::GRACE, begin_draining)?;
    writeln!(stdout, "listening on {bound}")?;
    stdout.flush()?;
    let ran = lp.run(RunMode::Default);
    stream::remove_socket_file(&addr);
    ran?;
    if outcome.get() == Some(shutdown::Outcome::Forced) {
        std::process::exit(1);
    }
    Ok(())
}
