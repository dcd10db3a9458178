//! The simulated harness: a `Sim` with `FakePeer`s.

use super::*;

// ---- the simulated loop ----

pub(super) struct Simulated<S> {
    pub(super) sim: Sim<S>,
    next_port: u16,
}

pub(super) struct SimPeer {
    p: FakePeer,
    got: Vec<u8>,
}

impl Peer for SimPeer {
    fn send(&mut self, data: &[u8]) {
        self.p.send(data);
    }

    fn shutdown(&mut self) {
        self.p.shutdown();
    }

    fn reset(self) {
        self.p.reset();
    }

    fn close(self) {
        self.p.close();
    }

    fn pause(&mut self) {
        self.p.pause_reading();
    }

    fn resume(&mut self) {
        self.p.resume_reading();
    }

    fn received(&mut self) -> &[u8] {
        self.got.extend(self.p.recv());
        &self.got
    }

    fn end(&mut self) -> Option<End> {
        self.got.extend(self.p.recv());
        if self.p.is_reset() {
            Some(End::Reset)
        } else if self.p.is_closed() {
            Some(End::Eof)
        } else {
            None
        }
    }
}

impl<S> Net<S> for Simulated<S> {
    type Peer = SimPeer;
    type Server = FakeListener;
    type Gate = ();

    fn new(state: S) -> Self {
        let config = SimConfig::new().seed(0xC0FFEE).pool(PoolMode::Manual);
        Simulated { sim: Sim::with_config(config, state), next_port: 9000 }
    }

    fn lp(&mut self) -> &mut Loop<S> {
        &mut self.sim
    }

    fn any_addr(&self) -> SocketAddr {
        "10.0.0.1:0".parse().unwrap()
    }

    fn dead_addr(&mut self) -> SocketAddr {
        "10.0.0.99:1".parse().unwrap()
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<SimPeer> {
        Ok(SimPeer { p: self.sim.connect(addr)?, got: Vec::new() })
    }

    fn listen(&mut self) -> (SocketAddr, FakeListener) {
        self.next_port += 1;
        let addr = SocketAddr::new("10.0.0.2".parse().unwrap(), self.next_port);
        (addr, self.listen_at(addr).unwrap())
    }

    fn listen_at(&mut self, addr: SocketAddr) -> io::Result<FakeListener> {
        self.sim.listen(addr)
    }

    fn accept(&mut self, server: &FakeListener) -> SimPeer {
        let mut got = None;
        self.settle_until("the program's connect reaches the test's listener", |_| {
            if got.is_none() {
                got = server.accept();
            }
            got.is_some()
        });
        SimPeer { p: got.unwrap(), got: Vec::new() }
    }

    fn delivered(&mut self, _: SocketAddr, _: SocketAddr) {
        // No latency: what was written has arrived.
    }

    fn close_server(&mut self, server: FakeListener) {
        server.close();
    }

    fn settle_until(&mut self, what: &str, mut cond: impl FnMut(&mut Loop<S>) -> bool) {
        let start = self.sim.elapsed();
        // Steps that let no time pass must not spin forever either (a pinned horizon once did).
        for _ in 0..100_000 {
            if cond(&mut self.sim) {
                return;
            }
            self.sim.run_until_idle().unwrap_or_else(|e| panic!("sim: {what}: {e}"));
            if cond(&mut self.sim) {
                return;
            }
            assert!(self.sim.elapsed() - start < BOUND, "sim: {what}: not within {BOUND:?} of virtual time");
            match self.sim.step() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("sim: {what}: the loop has nothing left to do"),
                Err(e) => panic!("sim: {what}: {e}"),
            }
        }
        panic!("sim: {what}: not within 100,000 steps");
    }

    fn quiet(&mut self) {
        self.sim.run_until_idle().unwrap();
        self.sim.advance(ms(30)).unwrap();
    }

    fn big_write(&self) -> usize {
        1 << 20 // sixteen default windows
    }

    fn blocking_job(&mut self) -> (Box<dyn FnOnce() + Send>, ()) {
        (Box::new(|| {}), ())
    }

    fn wait_job_started(&mut self, _: &mut ()) {
        // Manual mode cannot hold a job running: it runs it to its end here. Its result
        // reaches the loop at the next poll, as a finished real job's would.
        assert!(self.sim.run_pool_job(), "sim: a job is queued");
    }

    fn release_job(&mut self, _: ()) {}

    fn run_to_end(&mut self) -> Result<(), String> {
        self.sim.run().map_err(|e| format!("sim: {e}"))
    }

    fn finish(mut self) {
        self.sim.walk(|lp, h| {
            let _ = h.close(lp);
        });
        self.sim.run().unwrap_or_else(|e| panic!("sim: finish: {e}"));
    }

    fn burner(&mut self) -> Rc<dyn Fn(Duration)> {
        let clock = self.sim.clock();
        Rc::new(move |d| clock.spend(d))
    }
}
