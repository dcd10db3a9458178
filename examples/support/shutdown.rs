//! Graceful shutdown for the server examples: stop accepting, let the connections still open
//! finish, and force-close what is left after a deadline.
//!
//! It needs no bookkeeping from the server: the loop's own handle list says what is open
//! ([`Loop::walk`]). [`begin`] closes every listener and starts a check watcher that ends
//! the shutdown in the iteration the last connection closes, and a deadline timer that
//! closes what is left. Servers whose connections can be idle between requests (HTTP keep
//! alive) close those themselves once [`begin`] has run; for the echo server every open
//! connection is in flight until its client closes it.

#![allow(dead_code)] // each example and test that includes it uses a part

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use evloop::{Check, Handle, HandleKind, Loop, Signal, Timer};

/// How a shutdown ended.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Every connection finished before the deadline.
    Drained,
    /// The deadline passed: the connections left were closed.
    Forced,
}

/// Listeners, TCP or Unix.
const LISTENERS: &[HandleKind] = &[HandleKind::TcpListener, HandleKind::UnixListener];
/// Connections, TCP or Unix.
const STREAMS: &[HandleKind] = &[HandleKind::TcpStream, HandleKind::UnixStream];

/// The open handles of one of `kinds`, not closing.
pub fn open_handles<S>(lp: &mut Loop<S>, kinds: &[HandleKind]) -> Vec<Handle> {
    let mut found = Vec::new();
    lp.walk(|lp, h| {
        if h.kind(lp).is_ok_and(|k| kinds.contains(&k)) && !h.is_closing(lp) {
            found.push(h);
        }
    });
    found
}

/// Starts a graceful shutdown of the servers on `lp`: every listener closes at once (new
/// connections are refused), and `done` is called once, from the loop, when the last
/// connection has closed ([`Outcome::Drained`]) or, after `deadline`, once the ones left
/// were closed ([`Outcome::Forced`]). With no connection open, `done` runs on the next
/// iteration. Call it once per loop: the caller decides what a second request means.
pub fn begin<S: 'static>(
    lp: &mut Loop<S>,
    deadline: Duration,
    done: impl FnOnce(&mut Loop<S>, Outcome) + 'static,
) {
    for listener in open_handles(lp, LISTENERS) {
        let _ = listener.close(lp);
    }
    if open_handles(lp, STREAMS).is_empty() {
        lp.defer(move |lp| done(lp, Outcome::Drained));
        return;
    }
    let done = Rc::new(Cell::new(Some(done)));
    let finish = move |lp: &mut Loop<S>, outcome| {
        if let Some(done) = done.take() {
            done(lp, outcome);
        }
    };
    let finish_at_deadline = finish.clone();
    let timer = Timer::new(lp, move |lp, timer| {
        for stream in open_handles(lp, STREAMS) {
            let _ = stream.close(lp);
        }
        let _ = timer.close(lp);
        finish_at_deadline(lp, Outcome::Forced);
    });
    let check = Check::new(lp, move |lp, check| {
        if open_handles(lp, STREAMS).is_empty() {
            let _ = check.close(lp);
            let _ = timer.close(lp);
            finish(lp, Outcome::Drained);
        }
    });
    // Unreferenced: the open connections keep the loop alive, these two only watch them.
    // The check runs after every poll, so it sees the last connection close in the very
    // iteration it closes.
    for started in
        [timer.start(lp, deadline, Duration::ZERO), timer.unref(lp), check.start(lp), check.unref(lp)]
    {
        if let Err(e) = started {
            log::error!("graceful shutdown: {e}");
        }
    }
}

/// How long a graceful shutdown lets connections finish before it closes them.
pub const GRACE: Duration = Duration::from_secs(5);

/// Watches SIGINT and SIGTERM on `lp`: the first of them starts a graceful shutdown
/// ([`begin`], with `grace` as the deadline), after calling `drain`, the server's own first
/// step (HTTP ends its idle keep-alive connections there); a second SIGINT exits the process
/// at once (status 130). The watchers do not keep the loop alive: once the shutdown has
/// ended, `run` returns. The returned cell holds the outcome, once there is one.
pub fn on_signals<S: 'static>(
    lp: &mut Loop<S>,
    grace: Duration,
    drain: fn(&mut Loop<S>),
) -> io::Result<Rc<Cell<Option<Outcome>>>> {
    let outcome = Rc::new(Cell::new(None));
    let begun = Rc::new(Cell::new(false));
    let result = outcome.clone();
    let watcher = move |lp: &mut Loop<S>, _: Signal, signum: i32| {
        if begun.replace(true) {
            if signum == Signal::SIGINT {
                eprintln!("second SIGINT: exiting now");
                std::process::exit(130);
            }
            return;
        }
        log::info!("signal {signum}: shutting down gracefully (at most {grace:?})");
        let outcome = outcome.clone();
        drain(lp);
        begin(lp, grace, move |_, how| outcome.set(Some(how)));
    };
    for signum in [Signal::SIGINT, Signal::SIGTERM] {
        let signal = Signal::new(lp, watcher.clone());
        signal.start(lp, signum)?;
        signal.unref(lp)?;
    }
    Ok(result)
}

/// The process's exit status for a shutdown's outcome (none: the loop ended by itself).
pub fn exit_status(outcome: Option<Outcome>) -> std::process::ExitCode {
    match outcome {
        Some(Outcome::Forced) => std::process::ExitCode::FAILURE,
        _ => std::process::ExitCode::SUCCESS,
    }
}
