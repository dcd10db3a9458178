//! evloop: a callback event loop in the mould of libuv and Node.js.
//!
//! One single-threaded [`Loop`] owns handles — [`Timer`]s, [`Idle`], [`Prepare`] and
//! [`Check`] watchers, cross-thread [`Waker`]s and [`Channel`]s, Unix [`Signal`] watchers,
//! [`TcpListener`]s and [`TcpStream`]s, [`FdWatcher`]s of the program's own descriptors,
//! child [`Process`]es —
//! waits for readiness, and calls the closures the program registered, in libuv's phase
//! order; [`Loop::defer`] runs a one-shot callback on the next iteration.
//! [`TcpListener`]s and [`TcpStream`]s, [`UnixListener`]s and [`UnixStream`]s, [`Pipe`]s,
//! [`UdpSocket`]s, [`FdWatcher`]s of the program's own descriptors — waits for readiness,
//! and calls the closures the program registered, in libuv's phase order; [`Loop::defer`]
//! runs a one-shot callback on the next iteration.
//! Blocking work ([`Loop::queue_work`], [`fs`], [`dns`]) runs on a thread pool and comes
//! back as a callback. Every callback receives the
//! `&mut Loop<S>`, so it can start timers, close handles or open new ones, and reach the
//! application's state `S` as `lp.state` without `Rc<RefCell<_>>`.
//!
//! # A short tour
//!
//! ```
//! use std::time::Duration;
//! use evloop::{Check, Loop, RunMode, Timer, Waker};
//!
//! #[derive(Default)]
//! struct App {
//!     ticks: u32,
//!     woken: bool,
//!     log: Vec<String>,
//! }
//!
//! let mut lp = Loop::with_state(App::default())?;
//!
//! // A repeating timer that stops itself after three ticks.
//! let ticker = Timer::new(&mut lp, |lp, timer| {
//!     lp.state.ticks += 1;
//!     lp.state.log.push(format!("tick {}", lp.state.ticks));
//!     if lp.state.ticks == 3 {
//!         timer.close(lp).unwrap();
//!     }
//! });
//! ticker.start(&mut lp, Duration::from_millis(1), Duration::from_millis(1))?;
//!
//! // A waker: another thread asks the loop to run a callback on the loop thread.
//! let waker = Waker::new(&mut lp, |lp, waker| {
//!     lp.state.woken = true;
//!     waker.close(lp).unwrap();
//! });
//! let remote = waker.clone();
//! std::thread::spawn(move || remote.wake().unwrap());
//!
//! // A check watcher runs after each poll; unreferenced, it does not keep the loop alive.
//! let check = Check::new(&mut lp, |lp, _| lp.state.log.push("check".into()));
//! check.start(&mut lp)?;
//! check.unref(&mut lp)?;
//!
//! // Run until nothing referenced is left: the ticker and the waker closed themselves.
//! let alive = lp.run(RunMode::Default)?;
//! assert!(!alive);
//! assert_eq!(lp.state.ticks, 3);
//! assert!(lp.state.woken);
//! assert!(lp.state.log.iter().any(|l| l == "check"));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # One iteration
//!
//! libuv's order: pending completions (write, connect and shutdown callbacks), [`Idle`]
//! watchers, [`Prepare`] watchers, the poll for I/O (blocking no longer than the next timer
//! allows, and not at all while an idle watcher is active) with the dispatch of what it found
//! (TCP readiness, [`Process`] exits, [`Signal`], [`Waker`] and [`Channel`] callbacks, finished
//! thread-pool work), the
//! (TCP and UDP readiness, [`Signal`], [`Waker`] and [`Channel`] callbacks, finished thread-pool work, UDP send completions), the
//! check phase ([`Loop::defer`]red calls, then [`Check`] watchers), close callbacks, then the
//! timers due at the freshly updated time. [`RunMode::Default`] also runs the timers already
//! due before its first iteration.
//!
//! # Guarantees, and what is not guaranteed
//!
//! - Callbacks never run inside the call that asked for them: a zero timeout, a close or a
//!   wake always completes from the loop.
//! - Handles are `Copy` ids that carry a generation and the id of their loop: a call
//!   through the id of a closed handle, or through an id on a loop other than the one that
//!   opened it, returns an error and never reaches another handle, even one that reuses its
//!   slot. Both checks run in release builds too.
//! - A handle keeps [`RunMode::Default`] running only while something can still happen to
//!   it (libuv's rule): a started timer or watcher, an open waker or listener, a stream that
//!   connects, reads or has writes in flight, a UDP socket that receives or has sends
//!   queued, a request on the pool. A stream whose connect
//!   failed, or that reached its end or an error, no longer does, closed or not.
//! - Watchers of one phase run the most recently started first, as in libuv.
//! - Timers due at the same time fire in start order; a timer never fires before the
//!   loop time at which it was started plus its timeout, in whole milliseconds. It may fire
//!   late: by how long the loop's callbacks hold it up, and by the scheduler's latency.
//! - Time is the loop's cached [`Loop::now`], in milliseconds, refreshed after a poll that
//!   blocked and before the timer phase. A long callback makes it stale;
//!   [`Loop::update_time`] refreshes it.
//! - A panic in a callback propagates out of [`Loop::run`]; the handle whose callback
//!   panicked is closed and the loop stays usable (see [`Loop`]).
//!
//! # Errors
//!
//! Every fallible call returns [`std::io::Error`], and its kind says what to do about it:
//!
//! - [`InvalidInput`](std::io::ErrorKind::InvalidInput): misuse, which retrying cannot fix:
//!   the id of a closed or closing handle, a handle of another loop or used as another kind,
//!   an argument out of range, a call not allowed where it was made (`run` from inside one of
//!   the same loop's callbacks). The message says which.
//! - [`Other`](std::io::ErrorKind::Other) with a [`Cancelled`] inner error: a request that
//!   will never complete because its handle was closed or it was cancelled
//!   ([`is_cancelled`] recognises it).
//! - [`WouldBlock`](std::io::ErrorKind::WouldBlock): only from `try_` calls, where trying
//!   later can succeed.
//! - Anything else is the operating system's error, unchanged (`ConnectionRefused`,
//!   `ConnectionReset`, `BrokenPipe`, ...); the simulator reports the same kinds.
//!
//! evloop never reports `Interrupted` (it retries `EINTR` itself), so `write_all`-style
//! retry loops never spin on a final error.
//!
//! # Conventions
//!
//! - Names follow std: `TcpListener::bind` (which takes what std's takes), `local_addr`,
//!   `set_nodelay`. Options are builders that open the thing, as std's `OpenOptions`:
//!   `ListenOptions::new().backlog(128).bind(...)`.
//! - A `_with` suffix means "with a callback", as in std's `get_or_insert_with`:
//!   [`Handle::close_with`], [`TcpStream::write_with`]. A `with_` prefix is a constructor
//!   given something, as `Vec::with_capacity`: [`Loop::with_state`].
//! - Queries on a handle that is closed, or not this loop's: the predicates (`is_active`,
//!   `is_closing`, `has_ref`, `is_reading`) never fail and answer as for a closed handle
//!   (not active, closing, not referenced, not reading); every other query returns
//!   `io::Result` and fails with the same error a call would.
//!
//! # Testing with fake handles
//!
//! [`sim::Sim`] runs the same callbacks on a simulated loop: virtual time, in-memory TCP
//! with fake peers, a deterministic pool and injected faults, reproducible from a seed. See
//! the [`sim`] module for the guide.
//!
//! # Embedding
//!
//! A host program with its own event loop polls [`Loop::backend_fd`] for readability, with
//! [`Loop::backend_timeout`] as its timeout, and calls `run(RunMode::NoWait)` whenever the fd
//! is readable or the timeout expires (`examples/embed.rs`).
//!
//! # Logging
//!
//! evloop logs through the `log` crate: handle open and close and run start and stop at
//! `debug`, the phases of each iteration at `trace`. The examples initialise `env_logger`, so
//! `RUST_LOG=evloop=debug` shows them. With [`Builder::slow_callback_threshold`] set, a
//! callback that holds the loop longer is logged at `warn` (asyncio's debug mode).

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(rust_2018_idioms, unreachable_pub, missing_debug_implementations)]

#[cfg(not(unix))]
compile_error!("evloop supports Unix-like systems only; it is tested on Linux");

mod builder;
mod channel;
mod defer;
pub mod dns;
mod driver;
mod error;
mod event_loop;
mod fd;
pub mod fs;
mod handle;
mod net;
mod pool;
mod process;
mod signal;
pub mod sim;
mod slow;
mod timer;
mod waker;
mod watchers;

/// The README's example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use builder::Builder;
pub use channel::{Channel, Sender};
pub use driver::{Backend, FdInterest, ListenOptions, UCred, UdpOptions};
pub use error::{is_cancelled, Cancelled};
pub use event_loop::{Loop, Metrics, RunMode};
pub use fd::{FdEvents, FdWatcher};
pub use handle::{Handle, HandleKind};
pub use net::pipe::Pipe;
pub use net::tcp::{TcpListener, TcpStream};
pub use net::udp::{RecvFlags, UdpSocket};
pub use net::unix::{UnixListener, UnixStream};
pub use pool::WorkRequest;
pub use process::{Process, Spawned};
pub use signal::Signal;
pub use timer::Timer;
pub use waker::Waker;
pub use watchers::{Check, Idle, Prepare};
