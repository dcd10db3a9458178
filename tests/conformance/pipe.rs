//! Bodies for pipes, on their own small harness ([`PipeNet`]): the real loop with the other
//! end of a `pipe(2)` held by the test (non-blocking), and the simulated loop with the fake
//! pipes of `Sim::fake_read_pipe` / `Sim::fake_write_pipe` and their `FakePeer`s. A pipe has
//! no network in between: the test's writes are in the kernel when they return.

use std::cell::Cell;
use std::fs::File;
use std::os::fd::OwnedFd;

use evloop::Pipe;

use super::unix::{check_read_stop_and_resume, SimUnixPeer, USt, UnixPeer};
use super::*;

pub(super) trait PipeNet: Steps<State = USt> + Sized {
    /// The test's end: `send`, `shutdown` (a pipe has no half-close: it closes), `close`,
    /// `pump`, `received`.
    type Peer: UnixPeer;
    fn new() -> Self;
    /// The descriptor of a pipe the program reads, and the test's writing end.
    fn read_pipe(&mut self) -> (OwnedFd, Self::Peer);
    /// The descriptor of a pipe the program writes, and the test's reading end (which reads
    /// only in `pump`: until then the program's writes back up).
    fn write_pipe(&mut self) -> (OwnedFd, Self::Peer);
    /// A write larger than the pipe holds.
    fn big_write(&self) -> usize;
    fn finish(self);
}

/// Opens a pipe the program reads, recording every read callback.
fn reading<N: PipeNet>(net: &mut N) -> (Pipe, N::Peer) {
    let (fd, peer) = net.read_pipe();
    let p = Pipe::open(net.lp(), fd).unwrap();
    p.read_start(net.lp(), |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
    (p, peer)
}

fn writing<N: PipeNet>(net: &mut N) -> (Pipe, N::Peer) {
    let (fd, peer) = net.write_pipe();
    (Pipe::open(net.lp(), fd).unwrap(), peer)
}

/// Pumps the test's end until it has `n` bytes and `done` holds.
fn collect<N: PipeNet>(
    net: &mut N,
    peer: &mut N::Peer,
    n: usize,
    mut done: impl FnMut(&mut Loop<USt>) -> bool,
) {
    settle(net, "the test's end reads it all", |lp| {
        peer.pump();
        peer.received().len() == n && done(lp)
    });
}

// ---------------------------------------------------------------------------------------
// The bodies.
// ---------------------------------------------------------------------------------------

/// What the writer sends arrives in order; its close is `Ok(&[])`, once, and reading stops.
pub(super) fn pipe_data_in_order_then_the_end<N: PipeNet>() {
    let mut net = N::new();
    let (p, mut peer) = reading(&mut net);
    peer.send(b"one ");
    settle(&mut net, "the first bytes", |lp| !lp.state.events.is_empty());
    peer.send(b"two");
    peer.close();
    settle(&mut net, "the end", |lp| lp.state.events.contains(&Ev::Eof));
    idle_steps(&mut net);
    assert_eq!(coalesce(&net.lp().state.events), vec![Ev::Data(b"one two".to_vec()), Ev::Eof]);
    assert!(!p.is_reading(net.lp()));
    assert!(!net.lp().alive(), "an ended pipe keeps nothing alive");
    net.finish();
}

/// Once the reader has closed, a write fails with `BrokenPipe` (not `ConnectionReset`: a
/// pipe never resets), and so does every later one.
pub(super) fn pipe_write_after_the_reader_closed_is_broken_pipe<N: PipeNet>() {
    let mut net = N::new();
    let (p, peer) = writing(&mut net);
    peer.close();
    idle_steps(&mut net);
    assert_eq!(p.write(net.lp(), b"anyone?").unwrap_err().kind(), ErrorKind::BrokenPipe);
    assert_eq!(p.write(net.lp(), b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    net.finish();
}

/// Writes queued when the reader closes fail with `BrokenPipe`, in order.
pub(super) fn pipe_queued_writes_fail_when_the_reader_closes<N: PipeNet>() {
    let mut net = N::new();
    let (p, peer) = writing(&mut net);
    let data = pattern(net.big_write());
    for name in ["first", "second"] {
        p.write_with(net.lp(), &data, move |lp, r| lp.state.log.push(format!("{name}: {}", outcome(&r))))
            .unwrap();
    }
    assert!(p.write_queue_size(net.lp()).unwrap() > 0);
    peer.close();
    settle(&mut net, "the queued writes fail", |lp| lp.state.log.len() == 2);
    assert_eq!(net.lp().state.log, vec!["first: BrokenPipe", "second: BrokenPipe"]);
    net.finish();
}

/// A write past the high-water mark returns `false`; once the test's end has read it all,
/// the drain callback runs once; the bytes arrive intact.
pub(super) fn pipe_drain_after_the_high_water_mark<N: PipeNet>() {
    let mut net = N::new();
    let (p, mut peer) = writing(&mut net);
    p.set_high_water_mark(net.lp(), 4096).unwrap();
    p.on_drain(net.lp(), |lp, _| lp.state.log.push("drain".into())).unwrap();
    let data = pattern(net.big_write());
    assert!(!p.write(net.lp(), &data).unwrap(), "the write reaches the high-water mark");
    idle_steps(&mut net);
    assert!(p.write_queue_size(net.lp()).unwrap() > 0, "nothing drains while the test does not read");
    assert!(net.lp().state.log.is_empty());
    collect(&mut net, &mut peer, data.len(), |lp| !lp.state.log.is_empty());
    assert!(peer.received() == data.as_slice(), "the bytes arrive intact and in order");
    assert_eq!(net.lp().state.log, vec!["drain"]);
    assert_eq!(p.write_queue_size(net.lp()).unwrap(), 0);
    net.finish();
}

/// `read_stop` leaves what arrives in the pipe; `read_resume` delivers it with the same
/// callback.
pub(super) fn pipe_read_stop_and_resume<N: PipeNet>() {
    let mut net = N::new();
    let (p, mut peer) = reading(&mut net);
    check_read_stop_and_resume(&mut net, &mut peer, |lp| p.read_stop(lp), |lp| p.read_resume(lp));
    net.finish();
}

/// Closing a pipe with writes queued cancels them (their callbacks get a cancellation, in
/// order, from the close phase); the test's end sees a prefix of the data, then the end.
pub(super) fn pipe_close_cancels_queued_writes<N: PipeNet>() {
    let mut net = N::new();
    let (p, mut peer) = writing(&mut net);
    let data = pattern(net.big_write());
    for name in ["first", "second"] {
        p.write_with(net.lp(), &data, move |lp, r| lp.state.log.push(format!("{name}: {}", outcome(&r))))
            .unwrap();
    }
    p.close(net.lp()).unwrap();
    settle(&mut net, "the cancellations", |lp| lp.state.log.len() == 2);
    assert_eq!(net.lp().state.log, vec!["first: cancelled", "second: cancelled"]);
    let ended = Cell::new(false);
    settle(&mut net, "the test's end sees the end", |_| {
        ended.set(peer.pump());
        ended.get()
    });
    let got = peer.received();
    assert!(got.len() < data.len() && got == &data[..got.len()], "a prefix of the first write");
    net.finish();
}

/// `shutdown` after writes: they go first, then the write end closes, so the test's end
/// reads everything and then the end; later writes are refused.
pub(super) fn pipe_shutdown_ends_the_reader_after_the_queued_writes<N: PipeNet>() {
    let mut net = N::new();
    let (p, mut peer) = writing(&mut net);
    let data = pattern(net.big_write());
    p.write(net.lp(), &data).unwrap();
    p.shutdown(net.lp(), |lp, r| lp.state.log.push(format!("shutdown: {}", outcome(&r)))).unwrap();
    let ended = Cell::new(false);
    settle(&mut net, "the test's end sees the end", |lp| {
        ended.set(peer.pump() || ended.get());
        ended.get() && !lp.state.log.is_empty()
    });
    assert!(peer.received() == data.as_slice());
    assert_eq!(net.lp().state.log, vec!["shutdown: ok"]);
    assert_eq!(p.write(net.lp(), b"more").unwrap_err().kind(), ErrorKind::BrokenPipe);
    net.finish();
}

/// A pipe end goes one way: reading a write end and writing a read end are refused.
pub(super) fn pipe_direction_misuse<N: PipeNet>() {
    let mut net = N::new();
    let (r, _w) = reading(&mut net);
    let (w, _r) = writing(&mut net);
    let err = w.read_start(net.lp(), |_, _, _| {}).unwrap_err();
    assert_eq!((err.kind(), err.to_string().contains("write end")), (ErrorKind::InvalidInput, true));
    let err = r.write(net.lp(), b"x").unwrap_err();
    assert_eq!((err.kind(), err.to_string().contains("read end")), (ErrorKind::InvalidInput, true));
    net.finish();
}

// ---------------------------------------------------------------------------------------
// The harnesses.
// ---------------------------------------------------------------------------------------

/// The real loop; the test holds the other end of each `pipe(2)`, non-blocking.
pub(super) struct RealPipes {
    base: RealLoop<USt>,
}

/// The test's end of a real pipe; `None` once shut down (closed).
pub(super) struct RealPipePeer {
    f: Option<File>,
    got: Vec<u8>,
}

fn nonblocking(fd: OwnedFd) -> File {
    let flags = rustix::fs::fcntl_getfl(&fd).unwrap();
    rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK).unwrap();
    File::from(fd)
}

fn pipe2() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
}

impl UnixPeer for RealPipePeer {
    fn send(&mut self, data: &[u8]) {
        self.f.as_mut().unwrap().write_all(data).unwrap();
    }
    /// A pipe has no half-close: closes the test's end.
    fn shutdown(&mut self) {
        self.f = None;
    }
    fn close(self) {}
    fn pump(&mut self) -> bool {
        read_available(self.f.as_mut().unwrap(), &mut self.got)
    }
    fn received(&self) -> &[u8] {
        &self.got
    }
}

impl OnLoop for RealPipes {
    type Base = RealLoop<USt>;
    fn base(&mut self) -> &mut RealLoop<USt> {
        &mut self.base
    }
}

impl PipeNet for RealPipes {
    type Peer = RealPipePeer;
    fn new() -> Self {
        RealPipes { base: RealLoop::new(USt::default()) }
    }
    fn read_pipe(&mut self) -> (OwnedFd, RealPipePeer) {
        let (r, w) = pipe2();
        (r, RealPipePeer { f: Some(nonblocking(w)), got: Vec::new() })
    }
    fn write_pipe(&mut self) -> (OwnedFd, RealPipePeer) {
        let (r, w) = pipe2();
        (w, RealPipePeer { f: Some(nonblocking(r)), got: Vec::new() })
    }
    fn big_write(&self) -> usize {
        1 << 20
    }
    fn finish(mut self) {
        self.base.finish();
    }
}

/// The simulated loop with fake pipes; the test's end of a pipe the program writes pauses
/// reading, so that it takes what arrives only in `pump`, as the real one.
pub(super) struct SimPipes {
    base: SimLoop<USt>,
}

impl OnLoop for SimPipes {
    type Base = SimLoop<USt>;
    fn base(&mut self) -> &mut SimLoop<USt> {
        &mut self.base
    }
}

impl PipeNet for SimPipes {
    type Peer = SimUnixPeer;
    fn new() -> Self {
        SimPipes { base: SimLoop::new(USt::default()) }
    }
    fn read_pipe(&mut self) -> (OwnedFd, SimUnixPeer) {
        let (fd, p) = self.base.sim.fake_read_pipe().unwrap();
        (fd, SimUnixPeer { p, got: Vec::new() })
    }
    fn write_pipe(&mut self) -> (OwnedFd, SimUnixPeer) {
        let (fd, p) = self.base.sim.fake_write_pipe().unwrap();
        p.pause_reading();
        (fd, SimUnixPeer { p, got: Vec::new() })
    }
    fn big_write(&self) -> usize {
        1 << 20
    }
    fn finish(mut self) {
        self.base.finish();
    }
}

conformance_with! {
    RealPipes, SimPipes;
    pipe_data_in_order_then_the_end;
    pipe_write_after_the_reader_closed_is_broken_pipe;
    pipe_queued_writes_fail_when_the_reader_closes;
    pipe_drain_after_the_high_water_mark;
    pipe_read_stop_and_resume;
    pipe_close_cancels_queued_writes;
    pipe_shutdown_ends_the_reader_after_the_queued_writes;
    pipe_direction_misuse;
}
