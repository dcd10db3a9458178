//! A static file server over HTTP/1.1.
//!
//! Usage: `file_server [ADDR] [ROOT]` (defaults `127.0.0.1:8000` and the current directory).
//! Prints `listening on ADDR` once bound.
//!
//! GET and HEAD; `404` for missing files, `403` for any path that escapes the root (`..`, or
//! a symlink pointing out of it: every path is canonicalised on the thread pool and must stay
//! under the canonical root), a plain-text listing for directories, `Content-Length` always.
//! Files are read on the pool in 64 KiB chunks, and the next chunk is read only once the
//! socket has taken the last one (the write queue's high-water mark), so a 1 GiB file
//! streams with bounded memory. Requests on one connection are served one after another.
//!
//! On SIGINT or SIGTERM it shuts down gracefully: it stops accepting, lets the transfers in
//! flight finish (then ends their connections), ends connections waiting for a request at
//! once, and exits 0; what is still open after 5 s is closed and it exits 1. A second
//! SIGINT exits at once (status 130).

#![allow(dead_code)] // `serve` is also used by the tests

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use evloop::fs::{self, File, OpenOptions};
use evloop::{Loop, RunMode, TcpListener, TcpStream};

#[path = "support/shutdown.rs"]
mod shutdown;

const CHUNK: usize = 64 * 1024;
const MAX_HEAD: usize = 8 * 1024;

fn main() -> io::Result<ExitCode> {
    env_logger::init();
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = match args.next() {
        Some(a) => a.parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{a}: {e}")))?,
        None => "127.0.0.1:8000".parse().unwrap(),
    };
    let root = match args.next() {
        Some(r) => PathBuf::from(r),
        None => std::env::current_dir()?,
    };
    let mut lp = Loop::new()?;
    let server = serve(&mut lp, addr, &root)?;
    let outcome = shutdown::on_signals(&mut lp, shutdown::GRACE, begin_draining)?;
    println!("listening on {}", server.local_addr(&lp)?);
    io::stdout().flush()?;
    lp.run(RunMode::Default)?;
    Ok(shutdown::exit_status(outcome.get()))
}

/// Serves the directory `root` on `addr`.
pub fn serve<S: 'static>(lp: &mut Loop<S>, addr: SocketAddr, root: &Path) -> io::Result<TcpListener> {
    let root = std::fs::canonicalize(root)?;
    TcpListener::bind(lp, addr, move |lp, stream| {
        if read_requests(lp, stream, root.clone(), Vec::new()).is_err() {
            let _ = stream.close(lp);
        }
    })
}

/// Reads until a request head is complete, then serves it; `pending` holds bytes already read.
fn read_requests<S: 'static>(
    lp: &mut Loop<S>,
    stream: TcpStream,
    root: PathBuf,
    pending: Vec<u8>,
) -> io::Result<()> {
    let mut buf = pending;
    if let Some(end) = head_end(&buf) {
        // A request already waits in the buffer (pipelined): serve it without reading more.
        return handle(lp, stream, &root, &mut buf, end);
    }
    if buf.is_empty() {
        if DRAINING.with(Cell::get) {
            // Shutting down: no next request on this connection.
            return stream.shutdown(lp, move |lp, _| drop(stream.close(lp)));
        }
        set_idle(stream, true);
    }
    stream.read_start(lp, move |lp, stream, data| {
        set_idle(stream, false);
        match data {
            Ok(bytes) if !bytes.is_empty() => buf.extend_from_slice(bytes),
            _ => return drop(stream.close(lp)),
        }
        match head_end(&buf) {
            Some(end) => {
                let _ = stream.read_stop(lp);
                if handle(lp, stream, &root, &mut buf, end).is_err() {
                    let _ = stream.close(lp);
                }
            }
            None if buf.len() > MAX_HEAD => {
                let _ = stream.read_stop(lp);
                finish(lp, stream, status_only(431, "Request Header Fields Too Large", false), false);
            }
            None => {}
        }
    })
}

thread_local! {
    /// This thread's loop is shutting down: every response is a connection's last.
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    /// Connections waiting for their next request with nothing buffered.
    static IDLE: RefCell<HashSet<TcpStream>> = RefCell::new(HashSet::new());
}

fn set_idle(stream: TcpStream, idle: bool) {
    IDLE.with(|set| {
        if idle {
            set.borrow_mut().insert(stream);
        } else {
            set.borrow_mut().remove(&stream);
        }
    });
}

/// Starts draining this thread's connections for a graceful shutdown: transfers in flight
/// finish and their connection then ends; connections waiting for a request end at once.
pub fn begin_draining<S>(lp: &mut Loop<S>) {
    DRAINING.with(|d| d.set(true));
    let idle: Vec<TcpStream> = IDLE.with(|set| set.borrow_mut().drain().collect());
    for stream in idle {
        if !stream.is_closing(lp) && stream.shutdown(lp, move |lp, _| drop(stream.close(lp))).is_err() {
            let _ = stream.close(lp);
        }
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// One parsed request.
struct Request {
    head_only: bool,
    path: String,
    keep_alive: bool,
}

fn parse(head: &[u8]) -> Result<Request, (u16, &'static str)> {
    let text = std::str::from_utf8(head).map_err(|_| (400, "Bad Request"))?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if v.starts_with("HTTP/1.") && t.starts_with('/') => (m, t, v),
        _ => return Err((400, "Bad Request")),
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err((405, "Method Not Allowed")),
    };
    let mut keep_alive = version == "HTTP/1.1";
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or((400, "Bad Request"))?;
        if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.trim().eq_ignore_ascii_case("close");
        }
    }
    let path = percent_decode(target.split(['?', '#']).next().unwrap_or("/")).ok_or((400, "Bad Request"))?;
    // A shutdown under way: this response is the connection's last.
    let keep_alive = keep_alive && !DRAINING.with(Cell::get);
    Ok(Request { head_only, path, keep_alive })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The path under `root` that `url_path` names, or `None` if it tries to climb out. Symlinks
/// are checked after canonicalisation.
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for c in Path::new(url_path.trim_start_matches('/')).components() {
        match c {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return None, // `..`, or an absolute or prefixed component
        }
    }
    Some(path)
}

fn handle<S: 'static>(
    lp: &mut Loop<S>,
    stream: TcpStream,
    root: &Path,
    buf: &mut Vec<u8>,
    end: usize,
) -> io::Result<()> {
    let request = parse(&buf[..end]);
    let rest = buf.split_off(end);
    let request = match request {
        Ok(r) => r,
        Err((code, reason)) => {
            finish(lp, stream, status_only(code, reason, false), false);
            return Ok(());
        }
    };
    let Some(path) = resolve(root, &request.path) else {
        finish(lp, stream, status_only(403, "Forbidden", request.keep_alive), request.keep_alive);
        return next(lp, stream, root, rest, request.keep_alive);
    };
    let root = root.to_path_buf();
    fs::canonicalize(lp, &path, move |lp, canonical| {
        let Request { head_only, keep_alive, .. } = request;
        let reply = match canonical {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(status_only(404, "Not Found", keep_alive)),
            Err(_) => Some(status_only(403, "Forbidden", keep_alive)),
            Ok(real) if !real.starts_with(&root) => Some(status_only(403, "Forbidden", keep_alive)),
            Ok(real) => {
                send_path(lp, stream, real, head_only, keep_alive, root.clone(), rest.clone());
                None
            }
        };
        if let Some(reply) = reply {
            finish(lp, stream, reply, keep_alive);
            let _ = next(lp, stream, &root, rest, keep_alive);
        }
    })?;
    Ok(())
}

/// After a response: read the next request, or close.
fn next<S: 'static>(
    lp: &mut Loop<S>,
    stream: TcpStream,
    root: &Path,
    rest: Vec<u8>,
    keep_alive: bool,
) -> io::Result<()> {
    if keep_alive {
        read_requests(lp, stream, root.to_path_buf(), rest)
    } else {
        Ok(())
    }
}

/// Writes a complete small response; without keep-alive, shuts down and closes after it.
fn finish<S>(lp: &mut Loop<S>, stream: TcpStream, response: Vec<u8>, keep_alive: bool) {
    if stream.write(lp, &response).is_err() {
        let _ = stream.close(lp);
        return;
    }
    if !keep_alive {
        let _ = stream.shutdown(lp, move |lp, _| drop(stream.close(lp)));
    }
}

fn status_only(code: u16, reason: &str, keep_alive: bool) -> Vec<u8> {
    let body = format!("{code} {reason}\n");
    head(code, reason, "text/plain; charset=utf-8", body.len() as u64, keep_alive)
        .into_iter()
        .chain(body.into_bytes())
        .collect()
}

fn head(code: u16, reason: &str, content_type: &str, len: u64, keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: {connection}\r\n\r\n"
    )
    .into_bytes()
}

fn send_path<S: 'static>(
    lp: &mut Loop<S>,
    stream: TcpStream,
    path: PathBuf,
    head_only: bool,
    keep_alive: bool,
    root: PathBuf,
    rest: Vec<u8>,
) {
    let for_dir = path.clone();
    let opened = fs::metadata(lp, path.clone(), move |lp, meta| {
        let meta = match meta {
            Ok(m) => m,
            Err(_) => {
                return finish_then(
                    lp,
                    stream,
                    status_only(404, "Not Found", keep_alive),
                    keep_alive,
                    root,
                    rest,
                )
            }
        };
        if meta.is_dir() {
            return send_listing(lp, stream, for_dir, head_only, keep_alive, root, rest);
        }
        let len = meta.len();
        if stream.write(lp, &head(200, "OK", content_type(&path), len, keep_alive)).is_err() {
            return drop(stream.close(lp));
        }
        if head_only || len == 0 {
            return finish_then(lp, stream, Vec::new(), keep_alive, root, rest);
        }
        let _ = File::open(lp, &path, OpenOptions::new().read(true), move |lp, file| match file {
            Ok(file) => send_chunks(lp, stream, file, 0, len, keep_alive, root, rest),
            // The head is out; all we can do is cut the connection.
            Err(_) => drop(stream.close(lp)),
        });
    });
    if opened.is_err() {
        let _ = stream.close(lp);
    }
}

fn finish_then<S: 'static>(
    lp: &mut Loop<S>,
    stream: TcpStream,
    response: Vec<u8>,
    keep_alive: bool,
    root: PathBuf,
    rest: Vec<u8>,
) {
    finish(lp, stream, response, keep_alive);
    if next(lp, stream, &root, rest, keep_alive).is_err() {
        let _ = stream.close(lp);
    }
}

/// Reads the chunk at `offset`, writes it, and goes on when the socket has room.
#[allow(clippy::too_many_arguments)]
fn send_chunks<S: 'static>(
    lp: &mut Loop<S>,
    stream: TcpStream,
    file: File,
    offset: u64,
    len: u64,
    keep_alive: bool,
    root: PathBuf,
    rest: Vec<u8>,
) {
    let want = CHUNK.min((len - offset) as usize);
    let read = file.read_at(lp, offset, want, move |lp, data| {
        let data = match data {
            Ok(d) if !d.is_empty() => d,
            // The file shrank or failed under us: the promised length cannot be kept.
            _ => {
                let _ = file.close(lp);
                return drop(stream.close(lp));
            }
        };
        let offset = offset + data.len() as u64;
        let room = match stream.write(lp, &data) {
            Ok(room) => room,
            Err(_) => {
                let _ = file.close(lp);
                return drop(stream.close(lp));
            }
        };
        if offset == len {
            let _ = file.close(lp);
            return finish_then(lp, stream, Vec::new(), keep_alive, root, rest);
        }
        if room {
            send_chunks(lp, stream, file, offset, len, keep_alive, root, rest);
        } else {
            // Backpressure: the next chunk waits until the socket has taken this one.
            let mut resume = Some((root, rest));
            let _ = stream.on_drain(lp, move |lp, stream| {
                if let Some((root, rest)) = resume.take() {
                    send_chunks(lp, stream, file, offset, len, keep_alive, root, rest);
                }
            });
        }
    });
    if read.is_err() {
        let _ = stream.close(lp);
    }
}

fn send_listing<S: 'static>(
    lp: &mut Loop<S>,
    stream: TcpStream,
    dir: PathBuf,
    head_only: bool,
    keep_alive: bool,
    root: PathBuf,
    rest: Vec<u8>,
) {
    let listed = fs::read_dir(lp, &dir, move |lp, entries| {
        let Ok(entries) = entries else {
            return finish_then(
                lp,
                stream,
                status_only(403, "Forbidden", keep_alive),
                keep_alive,
                root,
                rest,
            );
        };
        let mut names: Vec<String> = entries
            .iter()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    name + "/"
                } else {
                    name
                }
            })
            .collect();
        names.sort();
        let body: String = names.iter().map(|n| format!("{n}\n")).collect();
        let mut response = head(200, "OK", "text/plain; charset=utf-8", body.len() as u64, keep_alive);
        if !head_only {
            response.extend_from_slice(body.as_bytes());
        }
        finish_then(lp, stream, response, keep_alive, root, rest);
    });
    if listed.is_err() {
        let _ = stream.close(lp);
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "md" | "rs" | "toml") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "application/octet-stream",
    }
}
