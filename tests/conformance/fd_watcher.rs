//! Fd watchers: the same bodies on the real loop, over a `UnixStream` pair, with each
//! backend (epoll registers its own sockets edge-triggered, but fd watchers level-triggered;
//! `polling` is level-triggered throughout), and on a `Sim` with a `FakeFd`.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use evloop::sim::{FakeFd, Sim};
use evloop::{Backend, FdEvents, FdInterest, FdWatcher, Loop, RunMode, Timer};

/// Every call of a watcher's callback, in order.
type Calls = Vec<FdEvents>;

#[derive(Copy, Clone, Debug)]
enum Kind {
    Real(Backend),
    Sim,
}

enum Driver {
    Real(Box<Loop<Calls>>),
    Sim(Box<Sim<Calls>>),
}

/// The descriptor under watch and what the test does to it from the other side.
enum Peer {
    /// `ours` is watched; `theirs` is the other end (`None` once hung up).
    Real {
        ours: UnixStream,
        theirs: Option<UnixStream>,
    },
    Fake(FakeFd),
}

struct Env {
    driver: Driver,
    peer: Peer,
}

impl Env {
    fn new(kind: Kind) -> Env {
        match kind {
            Kind::Real(backend) => {
                let lp = Loop::builder().state(Calls::new()).backend(backend).build().unwrap();
                let (ours, theirs) = UnixStream::pair().unwrap();
                ours.set_nonblocking(true).unwrap();
                theirs.set_nonblocking(true).unwrap();
                Env { driver: Driver::Real(Box::new(lp)), peer: Peer::Real { ours, theirs: Some(theirs) } }
            }
            Kind::Sim => {
                let mut sim = Sim::new(11, Calls::new());
                let fake = sim.fake_fd().unwrap();
                // As a fresh socket: room to write, nothing to read.
                fake.set_writable(true);
                Env { driver: Driver::Sim(Box::new(sim)), peer: Peer::Fake(fake) }
            }
        }
    }

    fn lp(&mut self) -> &mut Loop<Calls> {
        match &mut self.driver {
            Driver::Real(lp) => lp,
            Driver::Sim(sim) => sim.lp(),
        }
    }

    fn fd(&self) -> &dyn AsFd {
        match &self.peer {
            Peer::Real { ours, .. } => ours,
            Peer::Fake(fake) => fake,
        }
    }

    /// Opens a watcher of the descriptor that logs its calls, started with `interest`.
    fn watch(&mut self, interest: FdInterest) -> FdWatcher {
        let fd = self.fd().as_fd().try_clone_to_owned().unwrap();
        let lp = self.lp();
        let w = FdWatcher::new(lp, &fd, |lp, _, events| lp.state.push(events)).unwrap();
        w.start(lp, interest).unwrap();
        w
    }

    /// One iteration that does not block.
    fn iterate(&mut self) {
        self.lp().run(RunMode::NoWait).unwrap();
    }

    fn calls(&mut self) -> Calls {
        self.lp().state.clone()
    }

    /// The peer sends something: the descriptor becomes readable.
    fn peer_writes(&mut self) {
        match &mut self.peer {
            Peer::Real { theirs, .. } => theirs.as_mut().unwrap().write_all(b"ping").unwrap(),
            Peer::Fake(fake) => fake.set_readable(true),
        }
    }

    /// Reads everything there is: the descriptor is no longer readable.
    fn drain(&mut self) {
        match &mut self.peer {
            Peer::Real { ours, .. } => {
                let mut buf = [0; 4096];
                loop {
                    match ours.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => continue,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            Peer::Fake(fake) => fake.set_readable(false),
        }
    }

    /// Writes until the peer's window is full: the descriptor is no longer writable.
    fn fill(&mut self) {
        match &mut self.peer {
            Peer::Real { ours, .. } => loop {
                match ours.write(&[0; 4096]) {
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            },
            Peer::Fake(fake) => fake.set_writable(false),
        }
    }

    /// The peer closes.
    fn hang_up(&mut self) {
        match &mut self.peer {
            Peer::Real { theirs, .. } => drop(theirs.take()),
            Peer::Fake(fake) => fake.hang_up(),
        }
    }
}

fn readable_level_triggered(kind: Kind) {
    let mut env = Env::new(kind);
    env.watch(FdInterest::READABLE);
    env.iterate();
    assert!(env.calls().is_empty(), "nothing to read yet");
    env.peer_writes();
    env.iterate();
    assert_eq!(env.calls().len(), 1);
    assert!(env.calls()[0].is_readable() && !env.calls()[0].is_writable() && !env.calls()[0].is_hangup());
    env.iterate();
    assert_eq!(env.calls().len(), 2, "not drained: called again by the next iteration");
    env.drain();
    env.iterate();
    env.iterate();
    assert_eq!(env.calls().len(), 2, "drained: not called again");
}

fn writable(kind: Kind) {
    let mut env = Env::new(kind);
    env.watch(FdInterest::WRITABLE);
    env.iterate();
    let calls = env.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].is_writable() && !calls[0].is_readable());
    env.fill();
    env.iterate();
    assert_eq!(env.calls().len(), 1, "full: not writable");
}

fn hang_up(kind: Kind) {
    let mut env = Env::new(kind);
    env.watch(FdInterest::READABLE);
    env.iterate();
    assert!(env.calls().is_empty());
    env.hang_up();
    env.iterate();
    let calls = env.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].is_hangup(), "{calls:?}");
    assert!(calls[0].is_readable(), "the end is there to read: {calls:?}");
}

fn stop_and_start(kind: Kind) {
    let mut env = Env::new(kind);
    let w = env.watch(FdInterest::READABLE);
    env.peer_writes();
    w.stop(env.lp()).unwrap();
    assert!(!w.is_active(env.lp()));
    assert_eq!(w.interest(env.lp()).unwrap(), FdInterest::NONE);
    env.iterate();
    assert!(env.calls().is_empty(), "stopped: not called");
    w.start(env.lp(), FdInterest::READABLE).unwrap();
    assert!(w.is_active(env.lp()));
    env.iterate();
    assert_eq!(env.calls().len(), 1);
    // Starting again changes the interest.
    w.start(env.lp(), FdInterest::WRITABLE).unwrap();
    env.iterate();
    let last = env.calls()[1];
    assert!(last.is_writable() && !last.is_readable(), "{last:?}");
}

fn keeps_the_loop_alive_only_while_started_and_referenced(kind: Kind) {
    let mut env = Env::new(kind);
    let w = env.watch(FdInterest::READABLE);
    assert!(env.lp().alive(), "a started watcher keeps the loop alive");
    w.unref(env.lp()).unwrap();
    assert!(!env.lp().alive());
    assert!(!env.lp().run(RunMode::Default).unwrap(), "unreferenced: run(Default) returns");
    w.ref_(env.lp()).unwrap();
    assert!(env.lp().alive());
    w.stop(env.lp()).unwrap();
    assert!(!env.lp().alive(), "stopped: not alive");
    w.start(env.lp(), FdInterest::READABLE).unwrap();
    w.close(env.lp()).unwrap();
    assert!(!env.lp().run(RunMode::Default).unwrap(), "closed: not alive");
}

fn nothing_ready_does_not_spin(kind: Kind) {
    let mut env = Env::new(kind);
    let w = env.watch(FdInterest::READABLE);
    let lp = env.lp();
    let t = Timer::new(lp, move |lp, t| {
        w.close(lp).unwrap();
        t.close(lp).unwrap();
    });
    t.start(lp, Duration::from_millis(20), Duration::ZERO).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(lp.state.is_empty());
    // The poll blocks until the timer: a few iterations, not thousands.
    assert!(lp.metrics().iterations < 10, "{:?}", lp.metrics());
}

fn closed_watcher_is_refused(kind: Kind) {
    let mut env = Env::new(kind);
    let w = env.watch(FdInterest::READABLE);
    w.close(env.lp()).unwrap();
    env.lp().run(RunMode::Default).unwrap();
    let err = w.start(env.lp(), FdInterest::READABLE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("closed"), "{err}");
    let err = w.stop(env.lp()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

fn regular_file_is_refused(kind: Kind) {
    let mut env = Env::new(kind);
    let file = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let err = FdWatcher::new(env.lp(), &file, |_, _, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("regular files"), "{err}");
    // The file is still the caller's.
    let mut s = String::new();
    (&file).read_to_string(&mut s).unwrap();
    assert!(s.contains("[package]"));
}

fn host_descriptor_survives_the_watcher(kind: Kind) {
    let mut env = Env::new(kind);
    // Watch the host's descriptor itself (`Env::watch` watches a copy).
    let Env { driver, peer } = &mut env;
    let lp = match driver {
        Driver::Real(lp) => &mut **lp,
        Driver::Sim(sim) => sim.lp(),
    };
    let w = match peer {
        Peer::Real { ours, .. } => FdWatcher::new(lp, ours, |_, _, _| {}),
        Peer::Fake(fake) => FdWatcher::new(lp, fake, |_, _, _| {}),
    }
    .unwrap();
    w.start(env.lp(), FdInterest::READABLE).unwrap();
    w.close(env.lp()).unwrap();
    assert!(!env.lp().run(RunMode::Default).unwrap());
    match &mut env.peer {
        Peer::Real { ours, theirs } => {
            let theirs = theirs.as_mut().unwrap();
            // Both directions still work through the host's descriptor.
            ours.write_all(b"after").unwrap();
            let mut buf = [0; 5];
            theirs.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"after");
            theirs.write_all(b"back").unwrap();
            let mut buf = [0; 4];
            ours.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"back");
        }
        Peer::Fake(fake) => {
            // The fake's descriptor is still open (fstat works) and still drives watchers.
            let fd = fake.as_fd().try_clone_to_owned().unwrap();
            std::fs::File::from(fd).metadata().unwrap();
            fake.set_readable(true);
            env.watch(FdInterest::READABLE);
            env.iterate();
            assert_eq!(env.calls().len(), 1);
        }
    }
}

/// The loop closes its duplicate when the watcher closes: once the host closes its own
/// descriptor too, the peer sees the end (a leaked duplicate would keep the socket open).
#[test]
fn the_duplicate_is_closed_with_the_watcher() {
    for backend in [Backend::Epoll, Backend::Polling] {
        let mut lp = Loop::builder().backend(backend).build().unwrap();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        let w = FdWatcher::new(&mut lp, &ours, |_, _, _| {}).unwrap();
        w.start(&mut lp, FdInterest::READABLE).unwrap();
        drop(ours);
        let mut buf = [0; 1];
        let err = theirs.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock, "the watcher's duplicate holds the socket open");
        w.close(&mut lp).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(theirs.read(&mut buf).unwrap(), 0, "{backend:?}: the duplicate was closed");
    }
}

/// What `fstat` cannot tell, the poller refuses: `/dev/null` is a device epoll cannot poll
/// (EPERM), so `start` fails, and says so.
#[test]
fn an_unpollable_device_is_refused_by_start() {
    for backend in [Backend::Epoll, Backend::Polling] {
        let mut lp = Loop::builder().backend(backend).build().unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let w = FdWatcher::new(&mut lp, &null, |_, _, _| {}).unwrap();
        let err = w.start(&mut lp, FdInterest::READABLE).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{backend:?}: {err}");
        assert!(err.to_string().contains("cannot be watched"), "{err}");
        assert!(!w.is_active(&lp));
        assert!(!lp.run(RunMode::Default).unwrap());
    }
}

/// On the simulator, only fake descriptors can be watched.
#[test]
fn a_simulated_loop_refuses_real_descriptors() {
    let mut sim = Sim::new(3, ());
    let (ours, _theirs) = UnixStream::pair().unwrap();
    let err = FdWatcher::new(&mut sim, &ours, |_, _, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("fake descriptors"), "{err}");
}

/// Urgent data, on the simulator (a real descriptor needs TCP out-of-band data for it).
#[test]
fn priority_is_reported_only_when_asked_for() {
    let mut env = Env::new(Kind::Sim);
    let Peer::Fake(fake) = &env.peer else { unreachable!() };
    fake.set_priority(true);
    env.watch(FdInterest::READABLE);
    env.iterate();
    assert!(env.calls().is_empty(), "not asked for");
    env.watch(FdInterest::PRIORITY | FdInterest::READABLE);
    env.iterate();
    let calls = env.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].is_priority() && !calls[0].is_readable(), "{calls:?}");
}

/// Generates `name::epoll`, `name::polling` and `name::sim` for each body.
macro_rules! on_every_driver {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[test]
            fn epoll() {
                super::$name(Kind::Real(Backend::Epoll));
            }

            #[test]
            fn polling() {
                super::$name(Kind::Real(Backend::Polling));
            }

            #[test]
            fn sim() {
                super::$name(Kind::Sim);
            }
        }
    )*};
}

on_every_driver!(
    readable_level_triggered,
    writable,
    hang_up,
    stop_and_start,
    keeps_the_loop_alive_only_while_started_and_referenced,
    nothing_ready_does_not_spin,
    closed_watcher_is_refused,
    regular_file_is_refused,
    host_descriptor_survives_the_watcher,
);
