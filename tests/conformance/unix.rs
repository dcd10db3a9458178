//! Bodies for Unix domain streams, on their own small harness ([`UnixNet`]): the real loop
//! with plain non-blocking `std::os::unix::net::UnixStream` peers on paths in a temporary
//! directory, and the simulated loop with `FakePeer`s on simulated paths. A Unix peer's
//! operations take effect in the kernel before they return (no network in between), so
//! the real harness needs no `/proc` look-up to know that a peer's bytes have arrived.

use std::cell::Cell;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};

use evloop::{UnixListener, UnixStream};

use super::*;

/// The program's state in the Unix and pipe bodies.
#[derive(Default)]
pub(super) struct USt {
    pub(super) events: Vec<Ev>,
    pub(super) log: Vec<String>,
    streams: Vec<UnixStream>,
}

/// A peer driven by the test, connected to a listener of the program.
pub(super) trait UnixPeer {
    fn send(&mut self, data: &[u8]);
    fn shutdown(&mut self);
    /// Closes without reading what has arrived (so the kernel resets the connection if
    /// anything was left unread).
    fn close(self);
    /// Takes what has arrived; returns whether the program's direction has ended.
    fn pump(&mut self) -> bool;
    fn received(&self) -> &[u8];
}

pub(super) trait UnixNet: Steps<State = USt> + Sized {
    type Peer: UnixPeer;
    fn new() -> Self;
    /// A fresh path for a listener.
    fn path(&mut self) -> PathBuf;
    /// A peer connects to the program's listener at `path`.
    fn connect(&mut self, path: &Path) -> Self::Peer;
    /// A write larger than the socket buffers take while the peer does not read.
    fn big_write(&self) -> usize;
    fn finish(self);
}

/// A listener whose streams read and record every read callback.
fn reading_server<N: UnixNet>(net: &mut N) -> (UnixListener, PathBuf) {
    let path = net.path();
    let l = UnixListener::bind(net.lp(), &path, |lp, s| {
        lp.state.streams.push(s);
        s.read_start(lp, |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
    })
    .unwrap();
    (l, path)
}

fn accepted<N: UnixNet>(net: &mut N) -> UnixStream {
    settle(net, "the program accepts", |lp| !lp.state.streams.is_empty());
    net.lp().state.streams[0]
}

// ---------------------------------------------------------------------------------------
// The bodies.
// ---------------------------------------------------------------------------------------

/// The program talks to itself over a path: its client's bytes come back through its own
/// echo server, then the client's FIN ends both directions.
pub(super) fn unix_echo<N: UnixNet>() {
    let mut net = N::new();
    let path = net.path();
    UnixListener::bind(net.lp(), &path, |lp, s| {
        s.read_start(lp, move |lp, s, d| match d {
            Ok([]) => s.shutdown(lp, move |lp, _| s.close(lp).unwrap()).unwrap(),
            Ok(bytes) => drop(s.write(lp, bytes).unwrap()),
            Err(e) => panic!("server read: {e}"),
        })
        .unwrap();
    })
    .unwrap();
    UnixStream::connect(net.lp(), &path, |lp, c, r| {
        lp.state.log.push(format!("connect: {}", outcome(&r)));
        c.write(lp, b"hello over a path").unwrap();
        c.shutdown(lp, |lp, r| lp.state.log.push(format!("shutdown: {}", outcome(&r)))).unwrap();
        c.read_start(lp, |lp, _, d| lp.state.events.push(Ev::of(d))).unwrap();
    })
    .unwrap();
    settle(&mut net, "the echo and its end", |lp| lp.state.events.contains(&Ev::Eof));
    assert_eq!(coalesce(&net.lp().state.events), vec![Ev::Data(b"hello over a path".to_vec()), Ev::Eof]);
    assert_eq!(net.lp().state.log, vec!["connect: ok", "shutdown: ok"]);
    net.finish();
}

/// The peer sends bytes then FIN: the bytes, then `Ok(&[])` once, then nothing more.
pub(super) fn unix_eof_after_data<N: UnixNet>() {
    let mut net = N::new();
    let (_l, path) = reading_server(&mut net);
    let mut peer = net.connect(&path);
    accepted(&mut net);
    peer.send(b"all of it");
    peer.shutdown();
    settle(&mut net, "the end of the stream", |lp| lp.state.events.contains(&Ev::Eof));
    idle_steps(&mut net);
    assert_eq!(coalesce(&net.lp().state.events), vec![Ev::Data(b"all of it".to_vec()), Ev::Eof]);
    net.finish();
}

/// Half-close: after the program's shutdown the peer reads the program's bytes and the
/// end, and the program still reads what the peer sends afterwards.
pub(super) fn unix_shutdown_half_close<N: UnixNet>() {
    let mut net = N::new();
    let (_l, path) = reading_server(&mut net);
    let mut peer = net.connect(&path);
    let s = accepted(&mut net);
    s.write(net.lp(), b"bye").unwrap();
    s.shutdown(net.lp(), |lp, r| lp.state.log.push(format!("shutdown: {}", outcome(&r)))).unwrap();
    let ended = Cell::new(false);
    settle(&mut net, "the peer sees the end", |_| {
        ended.set(peer.pump());
        ended.get()
    });
    assert_eq!(peer.received(), b"bye");
    assert_eq!(s.write(net.lp(), b"more").unwrap_err().kind(), ErrorKind::BrokenPipe);
    peer.send(b"still reading?");
    settle(&mut net, "the program reads after its shutdown", |lp| !lp.state.events.is_empty());
    assert_eq!(coalesce(&net.lp().state.events), vec![Ev::Data(b"still reading?".to_vec())]);
    assert_eq!(net.lp().state.log, vec!["shutdown: ok"]);
    net.finish();
}

/// The peer closes with the program's bytes unread: the program's reader gets
/// `ConnectionReset`, once, and reading stops.
pub(super) fn unix_reset_when_the_peer_leaves_data_unread<N: UnixNet>() {
    let mut net = N::new();
    let (_l, path) = reading_server(&mut net);
    let peer = net.connect(&path);
    let s = accepted(&mut net);
    s.write(net.lp(), b"never read").unwrap();
    idle_steps(&mut net);
    peer.close();
    settle(&mut net, "a read error", |lp| !lp.state.events.is_empty());
    idle_steps(&mut net);
    assert_eq!(net.lp().state.events, vec![Ev::Error(ErrorKind::ConnectionReset)]);
    assert!(!s.is_reading(net.lp()));
    net.finish();
}

/// A write past the high-water mark returns `false`; once the peer has read everything,
/// the drain callback runs once and the queue is empty; the bytes arrive intact.
pub(super) fn unix_drain_after_the_high_water_mark<N: UnixNet>() {
    let mut net = N::new();
    let (_l, path) = reading_server(&mut net);
    let mut peer = net.connect(&path);
    let s = accepted(&mut net);
    s.set_high_water_mark(net.lp(), 4096).unwrap();
    s.on_drain(net.lp(), |lp, _| lp.state.log.push("drain".into())).unwrap();
    let data = pattern(net.big_write());
    assert!(!s.write(net.lp(), &data).unwrap(), "the write reaches the high-water mark");
    assert!(s.write_queue_size(net.lp()).unwrap() > 0);
    let n = data.len();
    settle(&mut net, "the peer reads it all", |lp| {
        peer.pump();
        peer.received().len() == n && !lp.state.log.is_empty()
    });
    assert!(peer.received() == data.as_slice(), "the bytes arrive intact and in order");
    assert_eq!(net.lp().state.log, vec!["drain"]);
    assert_eq!(s.write_queue_size(net.lp()).unwrap(), 0);
    net.finish();
}

/// `read_stop` holds what arrives in the kernel; `read_resume` delivers it with the same
/// callback.
pub(super) fn unix_read_stop_and_resume<N: UnixNet>() {
    let mut net = N::new();
    let (_l, path) = reading_server(&mut net);
    let mut peer = net.connect(&path);
    let s = accepted(&mut net);
    check_read_stop_and_resume(&mut net, &mut peer, |lp| s.read_stop(lp), |lp| s.read_resume(lp));
    net.finish();
}

/// The body of the read stop/resume tests, for any stream the program reads (recording
/// its read callbacks) and `peer` sends to.
pub(super) fn check_read_stop_and_resume<N: Steps<State = USt>>(
    net: &mut N,
    peer: &mut impl UnixPeer,
    stop: impl FnOnce(&mut Loop<USt>) -> io::Result<()>,
    resume: impl FnOnce(&mut Loop<USt>) -> io::Result<()>,
) {
    peer.send(b"one");
    settle(net, "the first read", |lp| !lp.state.events.is_empty());
    stop(net.lp()).unwrap();
    peer.send(b"two");
    idle_steps(net);
    assert_eq!(
        coalesce(&net.lp().state.events),
        vec![Ev::Data(b"one".to_vec())],
        "nothing read while stopped"
    );
    resume(net.lp()).unwrap();
    settle(net, "the held bytes", |lp| lp.state.events.len() >= 2);
    assert_eq!(coalesce(&net.lp().state.events), vec![Ev::Data(b"onetwo".to_vec())]);
}

/// A path where nothing was ever bound: `NotFound`. A path whose listener closed (its
/// socket file left behind): `ConnectionRefused`. Both reach the connect callback, from
/// the loop.
pub(super) fn unix_connect_to_a_missing_or_stale_path<N: UnixNet>() {
    let mut net = N::new();
    let missing = net.path();
    UnixStream::connect(net.lp(), &missing, |lp, _, r| {
        lp.state.log.push(format!("missing: {}", outcome(&r)))
    })
    .unwrap();
    assert!(net.lp().state.log.is_empty(), "the callback runs from the loop");
    let stale = net.path();
    UnixListener::bind(net.lp(), &stale, |_, _| {}).unwrap().close(net.lp()).unwrap();
    UnixStream::connect(net.lp(), &stale, |lp, _, r| lp.state.log.push(format!("stale: {}", outcome(&r))))
        .unwrap();
    settle(&mut net, "both connects fail", |lp| lp.state.log.len() == 2);
    assert_eq!(net.lp().state.log, vec!["missing: NotFound", "stale: ConnectionRefused"]);
    net.finish();
}

/// Closing a stream before its connect has been reported cancels the connect, even where
/// the kernel finished it at once (a Unix connect to a listening path does).
pub(super) fn unix_close_while_connecting_cancels<N: UnixNet>() {
    let mut net = N::new();
    let (_l, path) = reading_server(&mut net);
    let c = UnixStream::connect(net.lp(), &path, |lp, _, r| {
        lp.state.log.push(format!("connect: {}", outcome(&r)))
    })
    .unwrap();
    c.close(net.lp()).unwrap();
    settle(&mut net, "the connect callback", |lp| !lp.state.log.is_empty());
    assert_eq!(net.lp().state.log, vec!["connect: cancelled"]);
    net.finish();
}

// ---------------------------------------------------------------------------------------
// The harnesses.
// ---------------------------------------------------------------------------------------

/// The real loop; listeners' paths in a fresh temporary directory, removed at the end.
pub(super) struct RealUnix {
    base: RealLoop<USt>,
    dir: PathBuf,
    paths: usize,
}

pub(super) struct RealUnixPeer {
    s: StdUnixStream,
    got: Vec<u8>,
}

impl UnixPeer for RealUnixPeer {
    fn send(&mut self, data: &[u8]) {
        self.s.write_all(data).unwrap();
    }
    fn shutdown(&mut self) {
        self.s.shutdown(Shutdown::Write).unwrap();
    }
    fn close(self) {}
    fn pump(&mut self) -> bool {
        read_available(&mut self.s, &mut self.got)
    }
    fn received(&self) -> &[u8] {
        &self.got
    }
}

impl OnLoop for RealUnix {
    type Base = RealLoop<USt>;
    fn base(&mut self) -> &mut RealLoop<USt> {
        &mut self.base
    }
}

impl UnixNet for RealUnix {
    type Peer = RealUnixPeer;
    fn new() -> Self {
        static DIRS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("evloop-unix-conf-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        RealUnix { base: RealLoop::new(USt::default()), dir, paths: 0 }
    }
    fn path(&mut self) -> PathBuf {
        self.paths += 1;
        self.dir.join(format!("s{}.sock", self.paths))
    }
    fn connect(&mut self, path: &Path) -> RealUnixPeer {
        let s = StdUnixStream::connect(path).unwrap();
        s.set_nonblocking(true).unwrap();
        RealUnixPeer { s, got: Vec::new() }
    }
    fn big_write(&self) -> usize {
        8 << 20
    }
    fn finish(mut self) {
        self.base.finish();
        std::fs::remove_dir_all(&self.dir).unwrap();
    }
}

/// The simulated loop; paths name nothing on disk.
pub(super) struct SimUnix {
    base: SimLoop<USt>,
    paths: usize,
}

/// A `FakePeer` as the test's end of a Unix connection or of a pipe.
pub(super) struct SimUnixPeer {
    pub(super) p: FakePeer,
    pub(super) got: Vec<u8>,
}

impl UnixPeer for SimUnixPeer {
    fn send(&mut self, data: &[u8]) {
        self.p.send(data);
    }
    fn shutdown(&mut self) {
        self.p.shutdown();
    }
    fn close(self) {
        self.p.close();
    }
    /// Takes what has arrived, also while the peer pauses reading (as the test's end of a
    /// pipe does, to read only here, like the real one).
    fn pump(&mut self) -> bool {
        loop {
            let more = self.p.recv_up_to(64 * 1024);
            if more.is_empty() {
                break;
            }
            self.got.extend(more);
        }
        self.p.is_closed()
    }
    fn received(&self) -> &[u8] {
        &self.got
    }
}

impl OnLoop for SimUnix {
    type Base = SimLoop<USt>;
    fn base(&mut self) -> &mut SimLoop<USt> {
        &mut self.base
    }
}

impl UnixNet for SimUnix {
    type Peer = SimUnixPeer;
    fn new() -> Self {
        SimUnix { base: SimLoop::new(USt::default()), paths: 0 }
    }
    fn path(&mut self) -> PathBuf {
        self.paths += 1;
        PathBuf::from(format!("/sim/s{}.sock", self.paths))
    }
    fn connect(&mut self, path: &Path) -> SimUnixPeer {
        SimUnixPeer { p: self.base.sim.connect_unix(path).unwrap(), got: Vec::new() }
    }
    fn big_write(&self) -> usize {
        1 << 20
    }
    fn finish(mut self) {
        self.base.finish();
    }
}

conformance_with! {
    RealUnix, SimUnix;
    unix_echo;
    unix_eof_after_data;
    unix_shutdown_half_close;
    unix_reset_when_the_peer_leaves_data_unread;
    unix_drain_after_the_high_water_mark;
    unix_read_stop_and_resume;
    unix_connect_to_a_missing_or_stale_path;
    unix_close_while_connecting_cancels;
}
