//! The errors every module shares, and evloop's error-kind policy.
//!
//! A leaf: it imports nothing from the rest of the crate, so the driver, the pool and every
//! handle type can use it without an import circle.
//!
//! # Which `ErrorKind` evloop reports
//!
//! - [`InvalidInput`](io::ErrorKind::InvalidInput): misuse, which retrying cannot fix: a
//!   call through the id of a closed or closing handle, a handle of another loop or of
//!   another kind, an argument out of range, a call not allowed where it was made (`run`
//!   from inside one of the same loop's callbacks).
//! - [`Other`](io::ErrorKind::Other) with a [`Cancelled`] inner error: a request that will
//!   never complete because its handle was closed or it was cancelled (libuv's
//!   `UV_ECANCELED`). [`is_cancelled`] recognises it.
//! - [`WouldBlock`](io::ErrorKind::WouldBlock): only from `try_` calls, and only where
//!   retrying later can succeed.
//! - Everything else is the operating system's error (or the simulator's stand-in for it),
//!   unchanged: `ConnectionRefused`, `ConnectionReset`, `BrokenPipe`, ...
//!
//! evloop never reports [`Interrupted`](io::ErrorKind::Interrupted) (it retries `EINTR`
//! itself), so `write_all`-style retry loops never spin on a final error.

use std::fmt;
use std::io;

/// The error a request gets when it will never complete: its handle was closed while it was
/// in flight, or it was cancelled while queued (libuv's `UV_ECANCELED`, asyncio's
/// `CancelledError`). It is the inner error of an [`io::Error`] of kind
/// [`Other`](io::ErrorKind::Other), a kind no retry loop retries; [`is_cancelled`]
/// recognises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("evloop: operation cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// Whether `err` reports a cancelled request (see [`Cancelled`]).
///
/// ```
/// use evloop::{is_cancelled, Loop, RunMode};
///
/// let mut lp = Loop::builder().threadpool_size(1).state(Vec::new()).build()?;
/// // Occupy the only worker, so the second request is still queued when it is cancelled.
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// lp.queue_work(move || rx.recv().ok(), |_, _| {})?;
/// let queued = lp.queue_work(|| 1, |lp, result| lp.state.push(result))?;
/// lp.cancel_work(queued)?;
/// drop(tx);
/// lp.run(RunMode::Default)?;
/// let err = lp.state.pop().unwrap().unwrap_err();
/// assert!(is_cancelled(&err));
/// assert_eq!(err.kind(), std::io::ErrorKind::Other);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn is_cancelled(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|e| e.is::<Cancelled>())
}

/// The error of a cancelled request.
pub(crate) fn cancelled() -> io::Error {
    io::Error::other(Cancelled)
}

/// A misuse: retrying cannot fix it.
pub(crate) fn misuse(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// The error for any call through the id of a handle that has been closed.
pub(crate) fn closed_error() -> io::Error {
    misuse("evloop: handle is closed")
}

/// The error for any call on a handle whose close is under way.
pub(crate) fn closing_error() -> io::Error {
    misuse("evloop: handle is closing")
}

/// The error for a handle id used on a loop other than the one that made it.
// Not called yet: the handle-lookup rework in `handle.rs` is to use it (and the next one).
#[allow(dead_code)]
pub(crate) fn wrong_loop_error() -> io::Error {
    misuse("evloop: handle belongs to another loop")
}

/// The error for a handle id used as another kind of handle than it is.
#[allow(dead_code)]
pub(crate) fn wrong_kind_error() -> io::Error {
    misuse("evloop: handle is of another kind")
}

/// A copy of an I/O error, for when one failure must reach several callbacks.
pub(crate) fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellation_is_not_a_kind_that_retry_loops_retry() {
        let e = cancelled();
        assert!(is_cancelled(&e));
        assert_ne!(e.kind(), io::ErrorKind::Interrupted);
        assert_ne!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(!is_cancelled(&io::Error::other("something else")));
    }

    #[test]
    fn a_copy_keeps_the_os_code_or_the_kind_and_message() {
        let os = copy_error(&io::Error::from_raw_os_error(104));
        assert_eq!(os.raw_os_error(), Some(104));
        let ours = copy_error(&closed_error());
        assert_eq!(ours.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(ours.to_string(), "evloop: handle is closed");
    }
}
