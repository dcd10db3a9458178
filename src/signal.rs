//! Signal watchers (libuv's `uv_signal_t`, asyncio's `add_signal_handler`).
//!
//! The handler itself is installed by `signal-hook-registry` (what tokio relies on), once
//! per signal and process, and never removed. What it runs is [`on_signal`], which only
//! touches a process-wide table ([`SLOTS`]) that lives in a `static`:
//!
//! - one slot per loop that watches signals (at most [`MAX_LOOPS`] at once), taken the first
//!   time one of its watchers starts and given back when the loop drops;
//! - in a slot, a count of the loop's started watchers per signal, a mask of the signals
//!   delivered and not yet seen by the loop, and a socket pair made the first time the slot
//!   is used and never closed (statics are never dropped): the handler writes a byte to one
//!   end, and the loop polls the other (`Driver::watch_signals`).
//!
//! The loop, woken by that byte, swaps the mask to zero and marks each of its watchers of
//! those signals woken through the waker core (`waker.rs`), which calls them once per
//! iteration however many signals came (coalesced per handle, as libuv does).
//!
//! When no loop in the process watches a signal, the handler emulates the signal's default
//! action (`signal_hook::low_level::emulate_default_handler`): the registry keeps its handler
//! installed after the last action goes and then ignores a signal whose previous disposition
//! was the default, so without this a SIGTERM after the last SIGTERM watcher closed would be
//! swallowed. libuv restores `SIG_DFL` too.
//!
//! The simulated driver installs nothing: [`Sim::raise_signal`](crate::sim::Sim::raise_signal)
//! marks the watchers directly.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use signal_hook::consts::signal as sig;

use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Callback, Handle, HandleKind};
use crate::waker::WakerShared;

/// Loops of one process that can have signal watchers at the same time.
const MAX_LOOPS: usize = 64;
/// Signals `1..NSIG` can be watched: the standard ones (real-time signals are not offered).
const NSIG: usize = 32;

/// One loop's part of the process-wide table: everything the handler reads is atomic.
struct LoopSlot {
    taken: AtomicBool,
    /// Started watchers of the loop, per signal.
    watchers: [AtomicU32; NSIG],
    /// Bit `n`: signal `n` was delivered since the loop last looked.
    pending: AtomicU32,
    /// (read end, polled by the loop; write end, written by the handler). Never closed.
    pipe: OnceLock<(UnixStream, UnixStream)>,
}

impl LoopSlot {
    const fn new() -> LoopSlot {
        LoopSlot {
            taken: AtomicBool::new(false),
            watchers: [const { AtomicU32::new(0) }; NSIG],
            pending: AtomicU32::new(0),
            pipe: OnceLock::new(),
        }
    }
}

static SLOTS: [LoopSlot; MAX_LOOPS] = [const { LoopSlot::new() }; MAX_LOOPS];

/// Signals whose handler is installed (taken outside handlers only).
static INSTALLED: Mutex<[bool; NSIG]> = Mutex::new([false; NSIG]);

/// The action registered for `signum`: runs inside the signal handler, so it only does what
/// is async-signal-safe (see the SAFETY argument in [`install`]).
fn on_signal(signum: usize) {
    if signum >= NSIG {
        return;
    }
    let bit = 1u32 << signum;
    let mut watched = false;
    for slot in &SLOTS {
        if slot.watchers[signum].load(Ordering::Acquire) > 0 {
            watched = true;
            slot.pending.fetch_or(bit, Ordering::AcqRel);
            if let Some((_, tx)) = slot.pipe.get() {
                // Full (WouldBlock): a wakeup is pending anyway.
                let mut tx: &UnixStream = tx;
                let _ = tx.write(&[1]);
            }
        }
    }
    if !watched {
        let _ = signal_hook::low_level::emulate_default_handler(signum as i32);
    }
}

/// Installs the process's handler for `signum`, once; it is never removed.
fn install(signum: usize) -> io::Result<()> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if installed[signum] {
        return Ok(());
    }
    // SAFETY: `register` requires an action that is async-signal-safe and never panics.
    // `on_signal` does only this, on every path: a bounds check (`signum < NSIG`, so the
    // index and the shift cannot panic); loads and read-modify-writes of atomics in the
    // `static SLOTS` (lock-free, no allocation); `OnceLock::get`, an atomic load that hands
    // out a reference into that static; `write(2)` of one byte to a non-blocking socket that
    // is never closed (it lives in a static, which is never dropped, so the fd cannot be
    // closed or reused under the handler); std's `Write for &UnixStream` is that one system
    // call, and an error comes back as an errno value without allocating; and
    // `emulate_default_handler`, which signal-hook documents as async-signal-safe
    // (`sigaction`, `sigprocmask`, `raise`, `abort`). It never reaches the loop's notifier:
    // `polling::Poller::notify` may enter a `tracing` span (not async-signal-safe), and the
    // poller can be dropped with its loop. The registry saves and restores `errno` around it.
    // `signum` is not in `FORBIDDEN` (checked by `check_signum`), so `register` cannot panic.
    #[allow(unsafe_code)]
    let _id = unsafe { signal_hook_registry::register(signum as i32, move || on_signal(signum)) }?;
    installed[signum] = true;
    Ok(())
}

/// Takes a free slot of the table for a loop, making its socket pair the first time.
fn acquire_slot() -> io::Result<usize> {
    for (i, slot) in SLOTS.iter().enumerate() {
        if slot.taken.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            continue;
        }
        slot.pending.store(0, Ordering::Release);
        if slot.pipe.get().is_none() {
            let made = UnixStream::pair().and_then(|(rx, tx)| {
                rx.set_nonblocking(true)?;
                tx.set_nonblocking(true)?;
                Ok((rx, tx))
            });
            match made {
                Ok(pair) => {
                    let _ = slot.pipe.set(pair);
                }
                Err(e) => {
                    slot.taken.store(false, Ordering::Release);
                    return Err(e);
                }
            }
        }
        if let Some((rx, _)) = slot.pipe.get() {
            // Bytes the slot's last loop left unread would wake this one for nothing.
            let (mut rx, mut buf): (&UnixStream, [u8; 64]) = (rx, [0; 64]);
            while matches!(rx.read(&mut buf), Ok(n) if n > 0) {}
        }
        return Ok(i);
    }
    Err(io::Error::other(format!("evloop: more than {MAX_LOOPS} loops watch signals at once")))
}

/// Refuses signals that cannot or must not be caught, and numbers out of range.
fn check_signum(signum: i32) -> io::Result<usize> {
    let name = signal_hook::low_level::signal_name(signum);
    let refuse = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    if [sig::SIGKILL, sig::SIGSTOP, sig::SIGSEGV, sig::SIGBUS, sig::SIGILL, sig::SIGFPE].contains(&signum) {
        return refuse(format!("evloop: signal {signum} ({}) cannot be watched", name.unwrap_or("?")));
    }
    match (usize::try_from(signum), name) {
        (Ok(n), Some(_)) if (1..NSIG).contains(&n) => Ok(n),
        _ => refuse(format!("evloop: signal {signum} is out of range (1 to {})", NSIG - 1)),
    }
}

/// Watches a Unix signal and runs a callback on the loop thread when it arrives (libuv's
/// `uv_signal_t`, asyncio's `add_signal_handler`).
///
/// [`start`](Signal::start) watches a signal until [`stop`](Signal::stop) or close;
/// [`start_oneshot`](Signal::start_oneshot) stops after the first delivery. Every watcher
/// of a signal, on every loop of the process, gets every delivery; deliveries that arrive
/// before the callback has run coalesce into one call. SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,
/// SIGILL, SIGFPE and numbers outside 1 to 31 are refused (`InvalidInput`).
///
/// A started watcher keeps [`RunMode::Default`](crate::RunMode::Default) running, as in
/// libuv; [`unref`](Signal::unref) it if it should not. When the last started watcher of a
/// signal in the process stops or closes, the signal's default action comes back (a SIGTERM
/// then terminates the process), also if the signal was ignored before the first watcher
/// started, as libuv does. The handler is installed through `signal-hook-registry`, which
/// keeps calling a handler the program had installed before (with `sigaction`) as well.
///
/// ```
/// use evloop::{Loop, RunMode, Signal};
///
/// let mut lp = Loop::with_state(0)?;
/// let watcher = Signal::new(&mut lp, |lp, watcher, signum| {
///     lp.state = signum;
///     watcher.close(lp).unwrap();
/// });
/// watcher.start(&mut lp, Signal::SIGUSR2)?;
/// std::process::Command::new("kill")
///     .args(["-USR2", &std::process::id().to_string()])
///     .status()?;
/// lp.run(RunMode::Default)?; // until the watcher closed itself
/// assert_eq!(lp.state, Signal::SIGUSR2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Signal {
    handle: Handle,
}

common_handle_methods!(Signal, Signal);

impl Signal {
    /// Hangup.
    pub const SIGHUP: i32 = sig::SIGHUP;
    /// Interrupt (Ctrl-C).
    pub const SIGINT: i32 = sig::SIGINT;
    /// Quit (Ctrl-\\).
    pub const SIGQUIT: i32 = sig::SIGQUIT;
    /// Termination request.
    pub const SIGTERM: i32 = sig::SIGTERM;
    /// User signal 1.
    pub const SIGUSR1: i32 = sig::SIGUSR1;
    /// User signal 2.
    pub const SIGUSR2: i32 = sig::SIGUSR2;
    /// Terminal window size changed.
    pub const SIGWINCH: i32 = sig::SIGWINCH;
    /// A child process stopped or ended.
    pub const SIGCHLD: i32 = sig::SIGCHLD;
    /// Write to a pipe with no reader.
    pub const SIGPIPE: i32 = sig::SIGPIPE;
    /// Alarm clock.
    pub const SIGALRM: i32 = sig::SIGALRM;
    /// Urgent data on a socket (ignored by default).
    pub const SIGURG: i32 = sig::SIGURG;

    /// Opens a signal watcher, not started. `callback` gets the loop, the watcher and the
    /// signal's number.
    pub fn new<S>(lp: &mut Loop<S>, mut callback: impl FnMut(&mut Loop<S>, Signal, i32) + 'static) -> Signal {
        let (signal, shared) = lp.open_wakeable(HandleKind::Signal, |handle, shared| {
            let signal = Signal { handle };
            let cb: Callback<S> = Box::new(move |lp, _| {
                let Some((signum, oneshot)) = lp.signals.started(handle) else { return };
                if oneshot {
                    let _ = lp.stop_signal(handle);
                }
                callback(lp, signal, signum as i32);
            });
            ((signal, shared), cb)
        });
        // Opened, not started: nothing can happen to it yet.
        lp.handles.update(signal.handle, |b| b.active = false);
        lp.signals.list.push(Watch { handle: signal.handle, shared, signum: 0, oneshot: false });
        signal
    }

    /// Watches `signum` (`Signal::SIGINT`, `libc::SIGINT`, ...), until stopped or closed. A
    /// watcher started already switches to `signum`.
    pub fn start<S>(&self, lp: &mut Loop<S>, signum: i32) -> io::Result<()> {
        lp.start_signal(self.handle, signum, false)
    }

    /// Watches `signum` for one delivery: the watcher stops itself before its callback runs
    /// (libuv's `uv_signal_start_oneshot`).
    pub fn start_oneshot<S>(&self, lp: &mut Loop<S>, signum: i32) -> io::Result<()> {
        lp.start_signal(self.handle, signum, true)
    }

    /// Stops watching; a delivery not yet reported is dropped. Stopping a stopped watcher
    /// does nothing.
    pub fn stop<S>(&self, lp: &mut Loop<S>) -> io::Result<()> {
        lp.stop_signal(self.handle)
    }

    /// The signal watched, or `None` while stopped.
    pub fn signum<S>(&self, lp: &Loop<S>) -> io::Result<Option<i32>> {
        lp.handles.usable_ref_as(self.handle, Some(HandleKind::Signal))?;
        Ok(lp.signals.started(self.handle).map(|(n, _)| n as i32))
    }
}

/// One watcher of the loop.
struct Watch {
    handle: Handle,
    shared: Arc<WakerShared>,
    /// The signal watched, 0 while stopped.
    signum: usize,
    oneshot: bool,
}

/// The loop's signal watchers, and its slot of the process-wide table (real driver only).
#[derive(Default)]
pub(crate) struct Signals {
    slot: Option<usize>,
    list: Vec<Watch>,
}

impl Signals {
    fn started(&self, h: Handle) -> Option<(usize, bool)> {
        self.list.iter().find(|w| w.handle == h && w.signum != 0).map(|w| (w.signum, w.oneshot))
    }

    /// Marks the watchers of the signals in `mask` woken.
    fn deliver(&self, mask: u32) {
        for w in &self.list {
            if w.signum != 0 && mask & (1 << w.signum) != 0 {
                w.shared.wake_quietly();
            }
        }
    }
}

impl Drop for Signals {
    /// Gives the slot back; the loop's watchers no longer count.
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            for count in &SLOTS[i].watchers {
                count.store(0, Ordering::Release);
            }
            SLOTS[i].pending.store(0, Ordering::Release);
            SLOTS[i].taken.store(false, Ordering::Release);
        }
    }
}

impl<S> Loop<S> {
    fn start_signal(&mut self, h: Handle, signum: i32, oneshot: bool) -> io::Result<()> {
        self.handles.usable_as(h, Some(HandleKind::Signal))?;
        let signum = check_signum(signum)?;
        if self.signals.started(h).is_some_and(|(n, _)| n != signum) {
            self.stop_signal(h)?;
        }
        let was = self.signals.started(h);
        if was.is_none() && self.driver.backend().is_some() {
            let slot = match self.signals.slot {
                Some(slot) => slot,
                None => {
                    let slot = acquire_slot()?;
                    self.signals.slot = Some(slot);
                    slot
                }
            };
            let pipe = SLOTS[slot].pipe.get().map(|(rx, _)| rx).ok_or_else(|| io::Error::other("no pipe"))?;
            self.driver.watch_signals(pipe)?;
            // Counted before the handler exists, so it never sees the signal unwatched.
            SLOTS[slot].watchers[signum].fetch_add(1, Ordering::AcqRel);
            if let Err(e) = install(signum) {
                SLOTS[slot].watchers[signum].fetch_sub(1, Ordering::AcqRel);
                return Err(e);
            }
        }
        if let Some(w) = self.signals.list.iter_mut().find(|w| w.handle == h) {
            w.signum = signum;
            w.oneshot = oneshot;
        }
        self.handles.update(h, |b| b.active = true);
        Ok(())
    }

    pub(crate) fn stop_signal(&mut self, h: Handle) -> io::Result<()> {
        self.handles.usable_as(h, Some(HandleKind::Signal))?;
        let slot = self.signals.slot;
        if let Some(w) = self.signals.list.iter_mut().find(|w| w.handle == h) {
            if let (Some(slot), true) = (slot, w.signum != 0) {
                SLOTS[slot].watchers[w.signum].fetch_sub(1, Ordering::AcqRel);
            }
            w.signum = 0;
            w.shared.clear();
        }
        self.handles.update(h, |b| b.active = false);
        Ok(())
    }

    /// Closes a signal watcher: it stops, and leaves the loop's list and the waker scan.
    pub(crate) fn close_signal(&mut self, h: Handle) {
        let _ = self.stop_signal(h);
        self.signals.list.retain(|w| w.handle != h);
        self.close_waker(h);
    }

    /// Marks the watchers of the signals delivered since the last look (called each poll,
    /// before the wakers run): one atomic swap when the loop has a slot.
    pub(crate) fn collect_signals(&mut self) {
        if let Some(slot) = self.signals.slot {
            // Read before clearing: no write to the shared word on an iteration without a
            // signal (nearly all of them).
            if SLOTS[slot].pending.load(Ordering::Acquire) == 0 {
                return;
            }
            let mask = SLOTS[slot].pending.swap(0, Ordering::AcqRel);
            if mask != 0 {
                self.signals.deliver(mask);
            }
        }
    }

    /// Has a started watcher called on the next iteration as if its signal had come (the
    /// internal SIGCHLD watcher's first look, `crate::process`).
    pub(crate) fn nudge_signal(&mut self, h: Handle) {
        if let Some(w) = self.signals.list.iter().find(|w| w.handle == h && w.signum != 0) {
            w.shared.wake_quietly();
        }
    }

    /// The simulator's delivery: marks the watchers of `signum`, sending no real signal.
    pub(crate) fn deliver_signal(&mut self, signum: i32) -> io::Result<()> {
        let signum = check_signum(signum)?;
        self.signals.deliver(1 << signum);
        Ok(())
    }
}
