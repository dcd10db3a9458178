//! A Redis-compatible server: RESP2, pipelining, strings, lists, hashes, sets, expiry and
//! pub/sub, enough for `redis-cli` and `redis-benchmark`.
//!
//! Usage: `mini_redis [ADDR] [--aof PATH] [--auto-aof-rewrite-min-size BYTES]` (default
//! `127.0.0.1:6379`; port 0 picks a free one). Prints `listening on ADDR` once bound. On SIGINT or SIGTERM it stops accepting,
//! closes its connections (as Redis does) and exits 0; a second SIGINT exits at once
//! (status 130).
//!
//! With `--aof PATH`, write commands are appended to PATH (Redis' AOF format, `everysec`
//! fsync, written through the thread pool) and PATH is replayed before `listening on`; a
//! truncated end is repaired, a malformed file stops the start (exit status 1). SIGINT or
//! SIGTERM writes and fsyncs what is left before exiting. `BGREWRITEAOF`, or the file doubling
//! past the minimum size (64 MiB by default), rewrites it as the shortest commands that
//! rebuild the data ([`aof_rewrite`]). See [`aof`].
//!
//! One loop, one thread, like Redis' own `ae` loop. Each connection parses every complete
//! request in what it has received ([`resp::parse`], a pure function), runs them in order,
//! and answers the whole batch with one write. When the client does not read its replies
//! and the write queue passes its high-water mark, the server stops reading from it until
//! the queue drains. A malformed request gets Redis' `-ERR Protocol error: ...` and the
//! connection ends after that reply. Keys with a deadline expire when touched and through
//! an active cycle every 100 ms ([`db::Db::expire_cycle`]), on the loop's clock, so the
//! simulator can drive it.

#![allow(dead_code)] // `serve` and the modules are also used by the tests

// Public so that a test can include this file and reach them.
pub mod aof;
pub mod aof_rewrite;
pub mod commands;
pub mod db;
pub mod encodings;
pub mod pubsub;
pub mod resp;
pub mod types;

#[path = "../support/shutdown.rs"]
mod shutdown;

use std::cell::RefCell;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use evloop::{HandleKind, Loop, RunMode, TcpListener, TcpStream, Timer};

use commands::{After, Server};

/// How often the active expiry cycle runs (Redis' `hz` 10).
const EXPIRE_PERIOD: Duration = Duration::from_millis(100);

/// Errors as one line for a person (`mini_redis: ...`), not `Debug`: a bad argument exits
/// with 2, as usage errors do, anything else (a port in use) with 1.
fn main() -> ExitCode {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("mini_redis: {e}");
            return ExitCode::from(2);
        }
    };
    run(options).unwrap_or_else(|e| {
        eprintln!("mini_redis: {e}");
        ExitCode::FAILURE
    })
}

fn run(options: Options) -> io::Result<ExitCode> {
    let mut lp = Loop::new()?;
    let mut server = Server::default();
    if let Some(path) = &options.aof {
        match aof::Aof::open(path, &mut server, lp.now()) {
            Ok(aof) => {
                aof.set_rewrite_min_size(options.rewrite_min_size);
                server.aof = Some(aof);
            }
            Err(e) => {
                eprintln!("mini_redis: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let aof = server.aof.clone();
    let (listener, _) = serve(&mut lp, options.addr, server)?;
    if let Some(aof) = &aof {
        aof.start(&mut lp)?;
    }
    let outcome = shutdown::on_signals(&mut lp, shutdown::GRACE, close_connections)?;
    println!("listening on {}", listener.local_addr(&lp)?);
    io::stdout().flush()?;
    lp.run(RunMode::Default)?;
    // The loop has ended, so no write is in flight: the rest of the buffer, then fsync.
    if let Some(Err(e)) = aof.map(|aof| aof.finish()) {
        eprintln!("mini_redis: cannot write the AOF at shutdown: {e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(shutdown::exit_status(outcome.get()))
}

const USAGE: &str = "usage: mini_redis [ADDR] [--aof PATH] [--auto-aof-rewrite-min-size BYTES]";

/// The command line.
struct Options {
    addr: SocketAddr,
    aof: Option<PathBuf>,
    /// Redis' `auto-aof-rewrite-min-size`: the file is rewritten once it has doubled since the
    /// last rewrite and is at least this big (default 64 MiB).
    rewrite_min_size: u64,
}

/// `[ADDR] [--aof PATH] [--auto-aof-rewrite-min-size BYTES]`, in any order.
fn parse_args(args: &[String]) -> io::Result<Options> {
    let usage = || io::Error::new(io::ErrorKind::InvalidInput, USAGE);
    let invalid = |arg: &str, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{arg}: {e}"))
    };
    let mut options = Options {
        addr: "127.0.0.1:6379".parse().unwrap(),
        aof: None,
        rewrite_min_size: aof::REWRITE_MIN_SIZE,
    };
    let mut addr_seen = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--aof" {
            options.aof = Some(PathBuf::from(args.next().ok_or_else(usage)?));
        } else if arg == "--auto-aof-rewrite-min-size" {
            let bytes = args.next().ok_or_else(usage)?;
            options.rewrite_min_size = bytes.parse().map_err(|e| invalid(bytes, &e))?;
        } else if !addr_seen && !arg.starts_with("--") {
            options.addr = arg.parse().map_err(|e| invalid(arg, &e))?;
            addr_seen = true;
        } else {
            return Err(usage());
        }
    }
    Ok(options)
}

/// Redis ends its clients' connections when it shuts down: so do we, at once.
fn close_connections<S>(lp: &mut Loop<S>) {
    for stream in shutdown::open_handles(lp, &[HandleKind::TcpStream]) {
        let _ = stream.close(lp);
    }
}

/// Serves `server` on `addr`: the listener, and the expiry timer (unreferenced: it does not
/// keep the loop alive by itself). Returns the listener and the shared server state.
pub fn serve<S: 'static>(
    lp: &mut Loop<S>,
    addr: SocketAddr,
    server: Server,
) -> io::Result<(TcpListener, Rc<RefCell<Server>>)> {
    let server = Rc::new(RefCell::new(server));
    let of_timer = server.clone();
    let timer = Timer::new(lp, move |lp, _| {
        let server = &mut *of_timer.borrow_mut();
        let removed = server.db.expire_cycle(lp.now());
        if let Some(aof) = &server.aof {
            aof.feed_expired(&mut server.db);
            aof.maybe_rewrite(lp, &server.db);
        }
        log::trace!("active expiry: {removed} keys");
    });
    timer.start(lp, EXPIRE_PERIOD, EXPIRE_PERIOD)?;
    timer.unref(lp)?;
    let of_listener = server.clone();
    let scratch = Rc::new(RefCell::new(Scratch::default()));
    let listener =
        TcpListener::bind(lp, addr, move |lp, stream| on_connection(lp, stream, &of_listener, &scratch))?;
    Ok((listener, server))
}

/// The buffers every connection uses while it runs a batch, shared: a batch runs to its end
/// before another connection's starts, and 10,000 idle connections then hold none.
#[derive(Default)]
struct Scratch {
    args: resp::Args,
    out: Vec<u8>,
}

/// The largest reply buffer kept from one batch to the next.
const KEEP_OUT: usize = 1 << 20;

fn on_connection<S: 'static>(
    lp: &mut Loop<S>,
    stream: TcpStream,
    server: &Rc<RefCell<Server>>,
    scratch: &Rc<RefCell<Scratch>>,
) {
    let started = stream
        .set_nodelay(lp, true)
        .and_then(|()| stream.on_drain(lp, |lp, stream| drop(stream.read_resume(lp))))
        .and_then(|()| stream.read_start(lp, reader(server.clone(), scratch.clone())));
    if let Err(e) = started {
        log::debug!("{stream:?}: cannot start: {e}");
        let _ = stream.close(lp);
    }
}

/// The read callback of one connection, owning its input buffer: at most one incomplete
/// request, which the parser's limits bound.
fn reader<S: 'static>(
    server: Rc<RefCell<Server>>,
    scratch: Rc<RefCell<Scratch>>,
) -> impl FnMut(&mut Loop<S>, TcpStream, io::Result<&[u8]>) + 'static {
    let mut buf = Vec::new();
    // How far the parser got into the incomplete request at the start of `buf`.
    let mut progress = resp::Progress::default();
    let mut closing = false;
    move |lp, stream, data| match data {
        Err(e) => {
            log::debug!("{stream:?}: read failed: {e}");
            server.borrow_mut().pubsub.remove(stream);
            let _ = stream.close(lp);
        }
        // The peer is done: FIN after the replies still queued, then close; unless that is
        // under way already.
        Ok([]) if closing => {}
        Ok([]) => {
            server.borrow_mut().pubsub.remove(stream);
            end(lp, stream);
        }
        // After the last reply, what still arrives is read and dropped: closing with unread
        // input would reset the connection, and the reply with it.
        Ok(_) if closing => {}
        Ok(bytes) => {
            let scratch = &mut *scratch.borrow_mut();
            let out = &mut scratch.out;
            // Parse straight from the loop's buffer when nothing is left over.
            let (consumed, after) = if buf.is_empty() {
                let (n, after) =
                    serve_batch(lp, &server, stream, bytes, &mut scratch.args, &mut progress, out);
                buf.extend_from_slice(&bytes[n..]);
                (0, after)
            } else {
                buf.extend_from_slice(bytes);
                serve_batch(lp, &server, stream, &buf, &mut scratch.args, &mut progress, out)
            };
            buf.drain(..consumed);
            let below_mark = out.is_empty() || stream.write(lp, out).unwrap_or(true);
            out.clear();
            if out.capacity() > KEEP_OUT {
                *out = Vec::new();
            }
            if after == After::Close {
                closing = true;
                buf = Vec::new();
                server.borrow_mut().pubsub.remove(stream);
                end(lp, stream);
            } else if !below_mark {
                // The client does not read its replies: stop reading its requests until the
                // queue drains (the drain callback resumes).
                let _ = stream.read_stop(lp);
            }
        }
    }
}

/// Sends FIN after the replies queued, then closes.
fn end<S>(lp: &mut Loop<S>, stream: TcpStream) {
    if stream.shutdown(lp, move |lp, _| drop(stream.close(lp))).is_err() {
        let _ = stream.close(lp);
    }
}

/// Runs every complete request in `input`, replies appended to `out`. Returns how many bytes
/// it consumed and whether the connection must end after the replies (`QUIT`, or a protocol
/// error, whose reply is then the last).
fn serve_batch<S: 'static>(
    lp: &mut Loop<S>,
    server: &RefCell<Server>,
    stream: TcpStream,
    input: &[u8],
    args: &mut resp::Args,
    progress: &mut resp::Progress,
    out: &mut Vec<u8>,
) -> (usize, After) {
    let mut server = server.borrow_mut();
    let limits = server.limits;
    let mut pos = 0;
    loop {
        // What the last request left (a huge value) is freed before the next.
        args.shrink();
        match resp::parse_resuming(&input[pos..], &limits, args, progress) {
            Ok(None) => return (pos, After::Continue),
            Ok(Some(used)) => {
                pos += used;
                if args.as_slice().is_empty() {
                    continue;
                }
                if commands::execute(lp, &mut server, stream, args.as_slice(), out) == After::Close {
                    return (pos, After::Close);
                }
            }
            Err(e) => {
                log::debug!("{stream:?}: {e}");
                resp::error_reply(out, &format!("ERR {e}"));
                return (input.len(), After::Close);
            }
        }
    }
}
