//! The real harness: a `Loop` on the operating system, with peers that are plain non-blocking
//! `std::net::TcpStream`s on 127.0.0.1.

use super::*;

// ---- the real loop over loopback ----

pub(super) struct Real<S> {
    lp: Loop<S>,
    /// Bounds every blocking poll of `settle_until` to 1 ms.
    guard: Timer,
}

/// One line of `/proc/net/tcp`.
#[derive(Debug)]
pub(super) struct Row {
    local: String,
    remote: String,
    state: u8,
    tx_queue: u64,
    /// The kernel timer pending on the socket (`tr`): 1 retransmit, 4 zero-window probe.
    timer: u8,
    /// 0 for a socket no process holds (TIME_WAIT, orphaned, not yet accepted).
    inode: u64,
}

pub(super) const TCP_ESTABLISHED: u8 = 0x01;
pub(super) const TCP_TIME_WAIT: u8 = 0x06;
pub(super) const TCP_CLOSE: u8 = 0x07;
pub(super) const TCP_LISTEN: u8 = 0x0A;

pub(super) fn tcp_rows() -> Vec<Row> {
    let text = std::fs::read_to_string("/proc/net/tcp").expect("the real harness reads /proc/net/tcp");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (tx, _rx) = f.get(4)?.split_once(':')?;
            let (timer, _when) = f.get(5)?.split_once(':')?;
            Some(Row {
                local: f.get(1)?.to_string(),
                remote: f.get(2)?.to_string(),
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                tx_queue: u64::from_str_radix(tx, 16).ok()?,
                timer: u8::from_str_radix(timer, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

pub(super) const TCP_SYN_SENT: u8 = 0x02;
pub(super) const TCP_SYN_RECV: u8 = 0x03;
pub(super) const TIMER_ZERO_WINDOW_PROBE: u8 = 4;

/// Inodes of the sockets this process holds (the program's and the test's peers alike).
pub(super) fn own_socket_inodes() -> std::collections::HashSet<u64> {
    let dir = std::fs::read_dir("/proc/self/fd").expect("the real harness reads /proc/self/fd");
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.to_string();
            t.parse().ok()
        })
        .collect()
}

/// Whether the kernel holds nothing in flight on this process's TCP sockets: no handshake
/// under way, and every byte and FIN sent acknowledged, or held back by a receiver with no
/// room (a zero-window probe pending: nothing moves until the test lets its peer read).
pub(super) fn nothing_in_flight() -> bool {
    let ours = own_socket_inodes();
    tcp_rows().iter().filter(|r| r.inode != 0 && ours.contains(&r.inode)).all(|r| {
        r.state != TCP_SYN_SENT
            && r.state != TCP_SYN_RECV
            && (r.tx_queue == 0 || r.timer == TIMER_ZERO_WINDOW_PROBE)
    })
}

/// An address as `/proc/net/tcp` prints it.
pub(super) fn proc_addr(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_ne_bytes(v4.ip().octets()), v4.port()),
        SocketAddr::V6(_) => panic!("the real harness uses IPv4 loopback"),
    }
}

/// States of the sockets from `local` to `remote`.
pub(super) fn states(local: SocketAddr, remote: SocketAddr) -> Vec<(u8, u64)> {
    let (l, r) = (proc_addr(local), proc_addr(remote));
    tcp_rows()
        .into_iter()
        .filter(|row| row.local == l && row.remote == r)
        .map(|r| (r.state, r.tx_queue))
        .collect()
}

/// Polls `cond` until it holds; fails after `BOUND`.
pub(super) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !cond() {
        assert!(Instant::now() < deadline, "real: {what}: not within {BOUND:?}");
        std::thread::sleep(ms(1));
    }
}

pub(super) struct RealPeer {
    s: std::net::TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    got: Vec<u8>,
    end: Option<End>,
    paused: bool,
    buf: Vec<u8>,
}

impl RealPeer {
    fn new(s: std::net::TcpStream) -> RealPeer {
        s.set_nonblocking(true).unwrap();
        s.set_nodelay(true).unwrap();
        let (local, remote) = (s.local_addr().unwrap(), s.peer_addr().unwrap());
        RealPeer { s, local, remote, got: Vec::new(), end: None, paused: false, buf: vec![0; 256 << 10] }
    }

    /// Reads what has arrived.
    fn poll(&mut self) {
        while !self.paused && self.end.is_none() {
            match self.s.read(&mut self.buf) {
                Ok(0) => self.end = Some(End::Eof),
                Ok(n) => self.got.extend_from_slice(&self.buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => self.end = Some(End::Reset),
                Err(e) => panic!("real peer: read: {e}"),
            }
        }
    }

    /// Waits until the program's kernel has acknowledged everything sent, FIN included.
    fn wait_acked(&self) {
        wait_for("the program's kernel acknowledges the peer's bytes", || {
            states(self.local, self.remote).iter().all(|&(_, tx_queue)| tx_queue == 0)
        });
    }
}

impl Peer for RealPeer {
    fn send(&mut self, data: &[u8]) {
        self.s.write_all(data).expect("real peer: send (small sends only)");
        self.wait_acked();
    }

    fn shutdown(&mut self) {
        self.s.shutdown(Shutdown::Write).unwrap();
        self.wait_acked();
    }

    fn reset(self) {
        socket2::SockRef::from(&self.s).set_linger(Some(Duration::ZERO)).unwrap();
        let (local, remote) = (self.local, self.remote);
        drop(self.s);
        // The program's socket leaves the table once the reset reaches it.
        wait_for("the reset reaches the program's socket", || {
            states(remote, local).iter().all(|&(st, _)| st == TCP_TIME_WAIT || st == TCP_CLOSE)
        });
    }

    fn close(self) {
        let (local, remote) = (self.local, self.remote);
        drop(self.s);
        wait_for("the FIN reaches the program's socket", || {
            states(remote, local).iter().all(|&(st, _)| st != TCP_ESTABLISHED)
        });
    }

    fn pause(&mut self) {
        self.paused = true;
    }

    fn resume(&mut self) {
        self.paused = false;
    }

    fn received(&mut self) -> &[u8] {
        self.poll();
        &self.got
    }

    fn end(&mut self) -> Option<End> {
        self.poll();
        self.end
    }
}

impl<S> Net<S> for Real<S> {
    type Peer = RealPeer;
    type Server = std::net::TcpListener;
    type Gate = (mpsc::Receiver<()>, mpsc::Sender<()>);

    fn new(state: S) -> Self {
        let mut lp = Loop::builder().state(state).threadpool_size(1).build().unwrap();
        let guard = Timer::new(&mut lp, |_, _| {});
        Real { lp, guard }
    }

    fn lp(&mut self) -> &mut Loop<S> {
        &mut self.lp
    }

    fn any_addr(&self) -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn dead_addr(&mut self) -> SocketAddr {
        // A port that was bound a moment ago and is free now.
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<RealPeer> {
        std::net::TcpStream::connect(addr).map(RealPeer::new)
    }

    fn listen(&mut self) -> (SocketAddr, std::net::TcpListener) {
        let l = self.listen_at("127.0.0.1:0".parse().unwrap()).unwrap();
        (l.local_addr().unwrap(), l)
    }

    fn listen_at(&mut self, addr: SocketAddr) -> io::Result<std::net::TcpListener> {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    }

    fn accept(&mut self, server: &std::net::TcpListener) -> RealPeer {
        let mut got = None;
        self.settle_until("the program's connect reaches the test's listener", |_| {
            match server.accept() {
                Ok((s, _)) => got = Some(s),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("real: accept: {e}"),
            }
            got.is_some()
        });
        RealPeer::new(got.unwrap())
    }

    fn delivered(&mut self, local: SocketAddr, remote: SocketAddr) {
        wait_for("the program's bytes are acknowledged", || {
            states(local, remote).iter().all(|&(_, tx_queue)| tx_queue == 0)
        });
    }

    fn close_server(&mut self, server: std::net::TcpListener) {
        let addr = server.local_addr().unwrap();
        drop(server);
        wait_for("the test's listener goes", || {
            let a = proc_addr(addr);
            tcp_rows().iter().all(|r| r.local != a || r.state != TCP_LISTEN)
        });
    }

    fn settle_until(&mut self, what: &str, mut cond: impl FnMut(&mut Loop<S>) -> bool) {
        let deadline = Instant::now() + BOUND;
        self.guard.start(&mut self.lp, ms(1), ms(1)).unwrap();
        while !cond(&mut self.lp) {
            assert!(Instant::now() < deadline, "real: {what}: not within {BOUND:?}");
            self.lp.run(RunMode::Once).unwrap();
        }
        self.guard.stop(&mut self.lp).unwrap();
    }

    /// Not a time window: a window of any length lets an event that comes later pass by
    /// luck. A late event on loopback can only come from the kernel or the loop:
    /// - the kernel: every peer operation returns once the program's kernel has it, so what
    ///   is left is the program's own output (bytes or FIN not yet acknowledged, whose ACK
    ///   turns into writability or a completion) and handshakes under way. So wait until
    ///   `/proc/net/tcp` shows none of either on this process's sockets (bytes held back by a
    ///   full receiver do not count: nothing moves there until the test lets its peer read);
    /// - the loop: an event the kernel has already raised and the loop has not dispatched
    ///   yet. So then run non-blocking iterations until three in a row run no callback.
    ///
    /// If that drain ran callbacks, they may have written: start again. Every wait is bounded.
    fn quiet(&mut self) {
        let deadline = Instant::now() + BOUND;
        loop {
            wait_for("nothing in flight in the kernel", nothing_in_flight);
            let before = self.lp.metrics().callbacks;
            let mut idle_runs = 0;
            while idle_runs < 3 {
                assert!(Instant::now() < deadline, "real: not quiet within {BOUND:?}");
                let calls = self.lp.metrics().callbacks;
                self.lp.run(RunMode::NoWait).unwrap();
                idle_runs = if self.lp.metrics().callbacks == calls { idle_runs + 1 } else { 0 };
            }
            if self.lp.metrics().callbacks == before && nothing_in_flight() {
                return;
            }
        }
    }

    fn big_write(&self) -> usize {
        32 << 20 // more than any socket buffers take
    }

    fn blocking_job(&mut self) -> (Box<dyn FnOnce() + Send>, Self::Gate) {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let job = move || {
            started_tx.send(()).unwrap();
            release_rx.recv_timeout(BOUND).expect("released");
        };
        (Box::new(job), (started_rx, release_tx))
    }

    fn wait_job_started(&mut self, gate: &mut Self::Gate) {
        gate.0.recv_timeout(BOUND).expect("real: the blocking job starts");
    }

    fn release_job(&mut self, gate: Self::Gate) {
        gate.1.send(()).unwrap();
    }

    fn run_to_end(&mut self) -> Result<(), String> {
        // An unreferenced watchdog: it keeps nothing alive, and stops a loop that would hang.
        let hung = std::rc::Rc::new(std::cell::Cell::new(false));
        let flag = hung.clone();
        let watchdog = Timer::new(&mut self.lp, move |lp, _| {
            flag.set(true);
            lp.stop();
        });
        watchdog.start(&mut self.lp, BOUND, Duration::ZERO).unwrap();
        watchdog.unref(&mut self.lp).unwrap();
        let alive = self.lp.run(RunMode::Default).unwrap();
        watchdog.close(&mut self.lp).unwrap();
        self.lp.run(RunMode::NoWait).unwrap();
        match (hung.get(), alive) {
            (false, false) => Ok(()),
            _ => Err(format!("real: still alive after {BOUND:?}")),
        }
    }

    fn finish(mut self) {
        self.lp.walk(|lp, h| {
            let _ = h.close(lp);
        });
        let deadline = Instant::now() + BOUND;
        while self.lp.run(RunMode::NoWait).unwrap() {
            assert!(Instant::now() < deadline, "real: the loop does not end once everything is closed");
            std::thread::sleep(ms(1));
        }
    }

    fn burner(&mut self) -> Rc<dyn Fn(Duration)> {
        Rc::new(|d| {
            let start = Instant::now();
            while start.elapsed() < d {
                std::hint::spin_loop();
            }
        })
    }
}
