//! Testing with fake handles: the same callback code, on a simulated loop.
//!
//! A [`Sim`] owns a [`Loop`] whose clock, network and thread pool are simulated. Your code
//! receives the same `&mut Loop<S>` and cannot tell: timers, TCP listeners and streams,
//! `queue_work` and `fs` all work. The test drives time and the network from outside:
//!
//! - **Time** passes only where the loop would block, and jumps straight to the next event.
//!   [`run_until_idle`](Sim::run_until_idle) runs what is runnable now and never moves time;
//!   [`advance`](Sim::advance) visits every deadline up to now + d in order;
//!   [`step`](Sim::step) jumps to the next event; [`run`](Sim::run) runs to completion and
//!   returns [`SimError::Stalled`] instead of hanging when live handles wait for an event
//!   that can never come, or [`SimError::Livelock`] when something keeps the loop busy
//!   without ever letting time pass (an idle watcher that never stops).
//! - **The network** is in memory, addressed by `SocketAddr` (and by path or abstract name
//!   for Unix domain sockets, which share TCP's connection model): listeners, connections, FIN,
//!   RST, half-close, a receive window per direction (so backpressure is real), per-link
//!   latency, and reads cut into chunks (whole, fixed or seeded random down to 1 byte).
//!   UDP too, with seeded loss, duplication and reordering ([`SimConfig::udp_loss`] and
//!   friends) and fake UDP peers ([`Sim::udp_peer`]).
//! - **Fake peers** ([`Sim::connect`], [`Sim::listen`], and for Unix paths
//!   [`Sim::connect_unix`], [`Sim::listen_unix`]) are driven by the test: send, receive
//!   what the program wrote, shut down, reset, pause reading. They never call user callbacks:
//!   callbacks run only inside the loop.
//! - **Fake descriptors** ([`Sim::fake_fd`]) for [`FdWatcher`](crate::FdWatcher)s: the test
//!   sets them readable, writable, urgent or hung up; they are reported level-triggered.
//! - **Fake programs** ([`Sim::program`], [`FakeProgram`]) for [`Process`](crate::Process):
//!   spawning a registered name runs its script in virtual time (output on its fake stdio
//!   pipes, an exit code or a signal, echoing its stdin); kills end it.
//! - **Fake pipes** ([`Sim::fake_read_pipe`], [`Sim::fake_write_pipe`]) for
//!   [`Pipe`](crate::Pipe)s: a descriptor for `Pipe::open` and a [`FakePeer`] at the other
//!   end (a connection used one way, never reset).
//! - **The pool** runs jobs on the loop thread while virtual time stands still: inline, in a
//!   seeded order, or by hand ([`PoolMode`]). File operations touch the real file system.
//! - **Faults**: partial writes, would-block, spurious readiness, a reset at a byte offset,
//!   EMFILE on accept for a span of time, refused or unanswered connects, slow or failing
//!   pool jobs; or a seeded chaos mode.
//! - **Reproducibility**: one seed drives every random choice, and is printed when a test
//!   fails; [`check_determinism`] runs a scenario twice and compares the traces.
//!
//! # Example: an idle timeout, exactly
//!
//! ```
//! use std::time::Duration;
//! use evloop::sim::Sim;
//! use evloop::{TcpListener, Timer};
//!
//! // A server that closes connections idle for 30 s.
//! let mut sim = Sim::new(7, 0u32);
//! let addr = "10.0.0.1:80".parse().unwrap();
//! TcpListener::bind(&mut sim, addr, |lp, stream| {
//!     let idle = Timer::new(lp, move |lp, t| {
//!         lp.state += 1;
//!         stream.close(lp).unwrap();
//!         t.close(lp).unwrap();
//!     });
//!     idle.start(lp, Duration::from_secs(30), Duration::ZERO).unwrap();
//! })?;
//!
//! let peer = sim.connect(addr)?;
//! sim.advance(Duration::from_millis(29_999)).unwrap();
//! assert!(!peer.is_closed(), "still open at 29.999 s");
//! sim.advance(Duration::from_millis(1)).unwrap();
//! assert!(peer.is_closed(), "closed at 30 s");
//! assert_eq!(sim.state, 1);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use socket2::SockAddr;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::time::Duration;

pub use crate::driver::sim::pool::PoolMode;
pub use crate::driver::sim::process::FakeProgram;
pub use crate::driver::sim::world::{Chunking, TraceEvent};

use crate::driver::sim::udp::UdpFaults;
use crate::driver::sim::world::{ConnectFault, End, FakeListen, Listening, World};

mod determinism;
mod fake_fd;
mod fake_pipe;
mod peers;
mod udp_peer;

use crate::driver::sim::StalledMarker;
use crate::driver::Driver;
use crate::event_loop::{Loop, RunMode};
use crate::handle::{Handle, HandleKind};
use crate::pool::Pool;
pub use determinism::{check_determinism, check_determinism_with, Divergence};
pub use fake_fd::FakeFd;
pub use peers::{FakeListener, FakePeer};
pub use udp_peer::FakeUdpPeer;

/// Whole milliseconds of `d`, the resolution of virtual time, saturating at `u64::MAX`: a
/// duration too long to count is as good as forever.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How a simulation is set up. The defaults: a random seed (or `EVLOOP_SEED`), 64 KiB
/// windows, no latency, whole reads, inline pool, no chaos.
#[derive(Clone, Debug)]
pub struct SimConfig {
    seed: Option<u64>,
    window: usize,
    latency: Duration,
    chunking: Chunking,
    pool: PoolMode,
    chaos: f64,
    livelock_limit: usize,
    udp: UdpFaults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: None,
            window: 64 * 1024,
            latency: Duration::ZERO,
            chunking: Chunking::Whole,
            pool: PoolMode::Inline,
            chaos: 0.0,
            livelock_limit: 100_000,
            udp: UdpFaults::default(),
        }
    }
}

impl SimConfig {
    /// The defaults.
    pub fn new() -> SimConfig {
        SimConfig::default()
    }

    /// The seed of every random choice. Without it: `EVLOOP_SEED`, else a random one.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The receive window of each direction of each connection, in bytes.
    pub fn window(mut self, bytes: usize) -> Self {
        self.window = bytes.max(1);
        self
    }

    /// One-way latency of every link (milliseconds are the resolution; a latency too long to
    /// count, such as `Duration::MAX`, means that nothing sent ever arrives).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// How reads are cut.
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = chunking;
        self
    }

    /// How the pool runs jobs.
    pub fn pool(mut self, mode: PoolMode) -> Self {
        self.pool = mode;
        self
    }

    /// Chaos, FoundationDB style: every fault site fires at random with this probability,
    /// drawn from the seed. A write is cut short (possibly to nothing, as if the socket were
    /// full), a read finds nothing although readiness was reported, an accept fails with
    /// EMFILE, a pool job takes up to 100 ms longer. Correct code must give the same results.
    pub fn chaos(mut self, probability: f64) -> Self {
        self.chaos = probability.clamp(0.0, 1.0);
        self
    }

    /// Iterations without time passing before [`SimError::Livelock`] (default 100,000).
    pub fn livelock_limit(mut self, iterations: usize) -> Self {
        self.livelock_limit = iterations.max(1);
        self
    }

    /// UDP: the probability that a datagram is lost, drawn from the seed per datagram.
    pub fn udp_loss(mut self, probability: f64) -> Self {
        self.udp.loss = probability.clamp(0.0, 1.0);
        self
    }

    /// UDP: the probability that a datagram arrives twice.
    pub fn udp_duplication(mut self, probability: f64) -> Self {
        self.udp.duplication = probability.clamp(0.0, 1.0);
        self
    }

    /// UDP: the probability that a datagram is held back by a seeded extra delay of 1 ms to
    /// `max_delay` (at least 1 ms), so that datagrams sent after it overtake it.
    pub fn udp_reordering(mut self, probability: f64, max_delay: Duration) -> Self {
        self.udp.reordering = probability.clamp(0.0, 1.0);
        self.udp.reorder_delay = ms(max_delay).max(1);
        self
    }

    pub(crate) fn resolve_seed(&self) -> u64 {
        if let Some(seed) = self.seed {
            return seed;
        }
        if let Some(seed) = std::env::var("EVLOOP_SEED").ok().and_then(|s| s.trim().parse().ok()) {
            return seed;
        }
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    }
}

/// Why a simulation could not go on.
#[derive(Debug)]
#[non_exhaustive]
pub enum SimError {
    /// Live handles wait for an event that can never come.
    Stalled {
        /// Virtual time, in milliseconds.
        now: u64,
        /// The active, referenced handles.
        live: Vec<(Handle, HandleKind)>,
    },
    /// The loop kept running callbacks without letting time pass.
    Livelock {
        /// Virtual time, in milliseconds.
        now: u64,
        /// The active handles.
        active: Vec<(Handle, HandleKind)>,
    },
    /// The loop returned an error.
    Io(io::Error),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Stalled { now, live } => {
                write!(
                    f,
                    "stalled at {now} ms: these handles wait for something that can never happen: {live:?}"
                )
            }
            SimError::Livelock { now, active } => {
                write!(
                    f,
                    "livelock at {now} ms: the loop keeps running without time passing; active: {active:?}"
                )
            }
            SimError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SimError {}

/// Puts the time horizon back when dropped, even by a panic unwinding through the loop.
struct RestoreHorizon {
    world: Rc<RefCell<World>>,
    horizon: u64,
}

impl Drop for RestoreHorizon {
    fn drop(&mut self) {
        if let Ok(mut w) = self.world.try_borrow_mut() {
            w.horizon = self.horizon;
        }
    }
}

/// A loop on the simulated driver, and the controls of its world. It dereferences to the
/// [`Loop`], so `sim.state`, `Timer::new(&mut sim, ...)` and friends work as on a real loop.
pub struct Sim<S> {
    lp: Loop<S>,
    world: Rc<RefCell<World>>,
    seed: u64,
    livelock_limit: usize,
}

impl<S> Deref for Sim<S> {
    type Target = Loop<S>;
    fn deref(&self) -> &Loop<S> {
        &self.lp
    }
}

impl<S> DerefMut for Sim<S> {
    fn deref_mut(&mut self) -> &mut Loop<S> {
        &mut self.lp
    }
}

impl<S> fmt::Debug for Sim<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim").field("seed", &self.seed).field("now_ms", &self.world.borrow().now).finish()
    }
}

impl<S> Drop for Sim<S> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("evloop::sim: this test ran with seed {0}; rerun it with EVLOOP_SEED={0}", self.seed);
        }
    }
}

impl<S> Sim<S> {
    /// A simulation with the default configuration and `seed`, owning `state`.
    pub fn new(seed: u64, state: S) -> Sim<S> {
        Sim::with_config(SimConfig::new().seed(seed), state)
    }

    /// A simulation set up by `config`, owning `state`.
    pub fn with_config(config: SimConfig, state: S) -> Sim<S> {
        let seed = config.resolve_seed();
        let mut world = World::new(seed, config.window, ms(config.latency), config.chunking, config.chaos);
        world.pool.mode = config.pool;
        world.udp.faults = config.udp;
        let world = Rc::new(RefCell::new(world));
        let driver = Driver::sim(world.clone());
        let lp = Loop::from_parts(state, driver, Pool::simulated(world.clone()));
        Sim { lp, world, seed, livelock_limit: config.livelock_limit }
    }

    /// The loop.
    pub fn lp(&mut self) -> &mut Loop<S> {
        &mut self.lp
    }

    /// The seed of this simulation.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual time since the simulation began.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.world.borrow().now)
    }

    /// Runs everything runnable now, without moving time.
    pub fn run_until_idle(&mut self) -> Result<(), SimError> {
        let horizon = {
            let mut w = self.world.borrow_mut();
            let now = w.now;
            std::mem::replace(&mut w.horizon, now)
        };
        // Restored on the way out, a callback's panic included: a horizon left pinned would
        // keep time from ever moving again.
        let _restore = RestoreHorizon { world: self.world.clone(), horizon };
        self.settle_now()
    }

    fn settle_now(&mut self) -> Result<(), SimError> {
        for _ in 0..self.livelock_limit {
            if !self.has_work_now() {
                return Ok(());
            }
            self.lp.run(RunMode::NoWait).map_err(|e| self.error(e))?;
        }
        let now = self.world.borrow().now;
        Err(SimError::Livelock { now, active: self.handles_where(|lp, h| h.is_active(lp)) })
    }

    fn has_work_now(&self) -> bool {
        if !self.lp.alive() {
            return false;
        }
        self.lp.driver.has_ready() || self.lp.backend_timeout() == Some(Duration::ZERO)
    }

    /// Lets `d` of virtual time pass, running the loop at every deadline on the way, in order.
    pub fn advance(&mut self, d: Duration) -> Result<(), SimError> {
        let target = self.world.borrow().now.saturating_add(ms(d));
        loop {
            self.run_until_idle()?;
            let now = self.world.borrow().now;
            if now >= target {
                return Ok(());
            }
            if !self.lp.alive() {
                // Nothing to run on the way: the network may still move (peers, latency).
                self.world.borrow_mut().now = target;
                self.lp.update_time();
                continue;
            }
            self.world.borrow_mut().horizon = target;
            let result = {
                let _restore = RestoreHorizon { world: self.world.clone(), horizon: u64::MAX };
                self.lp.run(RunMode::Once)
            };
            result.map_err(|e| self.error(e))?;
        }
    }

    /// Jumps to the next event and runs what it makes runnable. Returns the virtual time it
    /// jumped to, or `None` if the loop has nothing left to do.
    pub fn step(&mut self) -> Result<Option<Duration>, SimError> {
        self.run_until_idle()?;
        if !self.lp.alive() {
            return Ok(None);
        }
        self.lp.run(RunMode::Once).map_err(|e| self.error(e))?;
        self.run_until_idle()?;
        Ok(Some(self.elapsed()))
    }

    /// Runs until the loop has nothing left to do, jumping time forward whenever nothing is
    /// runnable.
    pub fn run(&mut self) -> Result<(), SimError> {
        while self.step()?.is_some() {}
        Ok(())
    }

    fn error(&self, e: io::Error) -> SimError {
        if e.get_ref().is_some_and(|inner| inner.is::<StalledMarker>()) {
            let now = self.world.borrow().now;
            SimError::Stalled { now, live: self.handles_where(|lp, h| h.is_active(lp) && h.has_ref(lp)) }
        } else {
            SimError::Io(e)
        }
    }

    fn handles_where(&self, pred: impl Fn(&Loop<S>, Handle) -> bool) -> Vec<(Handle, HandleKind)> {
        self.lp
            .handle_ids()
            .into_iter()
            .filter(|&h| pred(&self.lp, h))
            .filter_map(|h| Some((h, h.kind(&self.lp).ok()?)))
            .collect()
    }

    /// Delivers `signum` to the loop's started [`Signal`](crate::Signal) watchers, in
    /// virtual time: their callbacks run on the loop's next iteration (`run_until_idle`,
    /// `step`, ...), once per watcher however many times it was raised before. No real
    /// signal is sent and no handler is installed. With no watcher it does nothing. Refuses
    /// (`InvalidInput`) what [`Signal::start`](crate::Signal::start) refuses.
    pub fn raise_signal(&mut self, signum: i32) -> io::Result<()> {
        self.lp.deliver_signal(signum)
    }

    /// Registers what the program called `name` does (replacing an earlier script): a
    /// [`Process::spawn`](crate::Process::spawn) of a `Command` whose program is `name`
    /// runs it in virtual time. Any other program is `NotFound`, as a missing one is.
    ///
    /// ```
    /// use std::process::Command;
    /// use std::time::Duration;
    /// use evloop::sim::{FakeProgram, Sim};
    /// use evloop::Process;
    ///
    /// let mut sim = Sim::new(1, None);
    /// sim.program("make", FakeProgram::new().exit_after(Duration::from_secs(2), 2));
    /// Process::spawn(&mut sim, &mut Command::new("make"), |lp, _, status| {
    ///     lp.state = status.code();
    /// })?;
    /// sim.advance(Duration::from_millis(1_999)).unwrap();
    /// assert_eq!(sim.state, None);
    /// sim.advance(Duration::from_millis(1)).unwrap();
    /// assert_eq!(sim.state, Some(2));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn program(&mut self, name: impl Into<std::ffi::OsString>, program: FakeProgram) {
        self.world.borrow_mut().procs.register(name.into(), program);
    }

    /// Connects a fake peer to a listener of the program. Refused if nothing listens there.
    pub fn connect(&mut self, addr: SocketAddr) -> io::Result<FakePeer> {
        self.connect_to(&addr.into())
    }

    /// Connects a fake peer to a [`UnixListener`](crate::UnixListener) of the program bound
    /// to `path` (simulated: no file is involved). Refused if nothing listens there.
    pub fn connect_unix(&mut self, path: impl AsRef<std::path::Path>) -> io::Result<FakePeer> {
        self.connect_to(&SockAddr::unix(path)?)
    }

    fn connect_to(&mut self, addr: &SockAddr) -> io::Result<FakePeer> {
        let opened = self.world.borrow_mut().connect(End::Peer, addr);
        let (conn, _) = opened.ok_or(io::ErrorKind::ConnectionRefused)?;
        Ok(FakePeer::new(self.world.clone(), conn, 0))
    }

    /// A fake server at `addr`: the program's connects there reach it.
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<FakeListener> {
        self.listen_at(addr.into())
    }

    /// A fake Unix domain server at `path`: the program's
    /// [`UnixStream::connect`](crate::UnixStream::connect)s there reach it.
    pub fn listen_unix(&mut self, path: impl AsRef<std::path::Path>) -> io::Result<FakeListener> {
        self.listen_at(SockAddr::unix(path)?)
    }

    fn listen_at(&mut self, addr: SockAddr) -> io::Result<FakeListener> {
        let mut w = self.world.borrow_mut();
        if w.listening.contains_key(&addr) {
            return Err(io::ErrorKind::AddrInUse.into());
        }
        let id = w.fake_listeners.insert(FakeListen { addr: addr.clone(), accepted: Default::default() });
        w.listening.insert(addr, Listening::Fake(id));
        Ok(FakeListener::new(self.world.clone(), id))
    }

    /// Connects to `addr` are refused from now on.
    pub fn refuse_connects(&mut self, addr: SocketAddr) {
        self.world.borrow_mut().connect_faults.insert(addr.into(), ConnectFault::Refuse);
    }

    /// Connects to `addr` are never answered from now on.
    pub fn blackhole_connects(&mut self, addr: SocketAddr) {
        self.world.borrow_mut().connect_faults.insert(addr.into(), ConnectFault::Blackhole);
    }

    /// Connects to `addr` behave normally again.
    pub fn heal_connects(&mut self, addr: SocketAddr) {
        self.world.borrow_mut().connect_faults.remove(&addr.into());
    }

    /// Every accept fails with EMFILE for the next `d` of virtual time.
    pub fn emfile_on_accept(&mut self, d: Duration) {
        let mut w = self.world.borrow_mut();
        w.emfile_until = w.now.saturating_add(ms(d));
    }

    /// Pool jobs submitted from now on take `d` of virtual time (a slow disk).
    pub fn delay_pool_jobs(&mut self, d: Duration) {
        self.world.borrow_mut().pool.delay = ms(d);
    }

    /// The next `n` pool jobs fail with an error instead of running.
    pub fn fail_pool_jobs(&mut self, n: usize) {
        self.world.borrow_mut().pool.fail_next = n;
    }

    /// Runs the oldest queued pool job now (for [`PoolMode::Manual`]); its callback runs at
    /// the loop's next poll. Returns false if no job is queued.
    pub fn run_pool_job(&mut self) -> bool {
        self.world.borrow_mut().pool.run_next()
    }

    /// Pool jobs queued and not yet run.
    pub fn queued_pool_jobs(&self) -> usize {
        self.world.borrow().pool.queued()
    }

    /// A handle on virtual time for the program's callbacks (see [`SimClock`]).
    pub fn clock(&self) -> SimClock {
        SimClock { world: self.world.clone() }
    }

    /// Everything recorded so far: callbacks, accepts, connects, reads, writes, closes.
    pub fn trace(&self) -> Vec<TraceEvent> {
        self.world.borrow().trace.clone()
    }
}

/// Virtual time as a callback sees it: [`spend`](SimClock::spend) makes the running
/// callback take that long, as a slow computation would on a real loop. The loop's cached
/// [`Loop::now`] does not see the time spent until it is refreshed ([`Loop::update_time`],
/// or the loop's own refresh before the timer phase).
#[derive(Clone)]
pub struct SimClock {
    world: Rc<RefCell<World>>,
}

impl fmt::Debug for SimClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimClock").field("now_ms", &self.world.borrow().now).finish()
    }
}

impl SimClock {
    /// Lets `d` of virtual time pass now, inside whatever is running.
    pub fn spend(&self, d: Duration) {
        let mut w = self.world.borrow_mut();
        w.now = w.now.saturating_add(ms(d));
        w.record(usize::MAX, "clock: spent", 0);
    }
}
