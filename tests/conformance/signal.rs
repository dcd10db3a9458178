//! Signal watchers: the same body on the real loop, with SIGURG sent to this process by
//! `kill(1)`, and on the simulator, with `Sim::raise_signal`. No other test of this binary
//! uses signals (tests/signal.rs has the rest, each with a signal of its own).

use std::process::Command;
use std::time::{Duration, Instant};

use evloop::sim::Sim;
use evloop::{Loop, RunMode, Signal};

/// What the body needs of a driver: the loop, a way to send SIGURG, and a way to run the
/// loop until a condition on its state holds.
trait Harness {
    fn lp(&mut self) -> &mut Loop<Vec<u32>>;
    fn raise(&mut self);
    fn settle(&mut self, done: &dyn Fn(&[u32]) -> bool);
}

struct Real(Loop<Vec<u32>>);

impl Harness for Real {
    fn lp(&mut self) -> &mut Loop<Vec<u32>> {
        &mut self.0
    }
    fn raise(&mut self) {
        let pid = std::process::id().to_string();
        let status = Command::new("kill").args(["-URG", &pid]).status().expect("run kill(1)");
        assert!(status.success(), "kill -URG failed");
    }
    fn settle(&mut self, done: &dyn Fn(&[u32]) -> bool) {
        let deadline = Instant::now() + super::BOUND;
        while !done(&self.0.state) {
            assert!(Instant::now() < deadline, "SIGURG not delivered: {:?}", self.0.state);
            self.0.run(RunMode::NoWait).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        self.0.run(RunMode::NoWait).unwrap(); // and one more iteration: nothing else comes
    }
}

struct Simulated(Sim<Vec<u32>>);

impl Harness for Simulated {
    fn lp(&mut self) -> &mut Loop<Vec<u32>> {
        &mut self.0
    }
    fn raise(&mut self) {
        self.0.raise_signal(Signal::SIGURG).unwrap();
    }
    fn settle(&mut self, done: &dyn Fn(&[u32]) -> bool) {
        self.0.run_until_idle().unwrap();
        assert!(done(&self.0.state), "not delivered: {:?}", self.0.state);
    }
}

/// A watcher of SIGURG whose calls are counted in the loop's state.
fn counting(lp: &mut Loop<Vec<u32>>) -> Signal {
    let i = lp.state.len();
    lp.state.push(0);
    let w = Signal::new(lp, move |lp, _, n| {
        assert_eq!(n, Signal::SIGURG);
        lp.state[i] += 1;
    });
    w.start(lp, Signal::SIGURG).unwrap();
    w
}

/// Two watchers and a one-shot one; a stop, a close and a restart between deliveries. Each
/// delivery reaches every started watcher once; the one-shot watcher only the first.
fn body(h: &mut impl Harness) {
    let a = counting(h.lp());
    let b = counting(h.lp());
    let once = counting(h.lp());
    once.start_oneshot(h.lp(), Signal::SIGURG).unwrap();
    h.raise();
    h.settle(&|s| s[0] == 1);
    assert_eq!(h.lp().state, [1, 1, 1], "every watcher, once");
    b.stop(h.lp()).unwrap();
    h.raise();
    h.settle(&|s| s[0] == 2);
    assert_eq!(h.lp().state, [2, 1, 1], "not the stopped one, nor the one-shot one again");
    a.close(h.lp()).unwrap();
    b.start(h.lp(), Signal::SIGURG).unwrap();
    h.raise();
    h.settle(&|s| s[1] == 2);
    assert_eq!(h.lp().state, [2, 2, 1], "the restarted one, not the closed one");
    b.close(h.lp()).unwrap();
    once.close(h.lp()).unwrap();
    assert!(!h.lp().run(RunMode::Default).unwrap(), "nothing left keeps the loop alive");
}

#[test]
fn real() {
    body(&mut Real(Loop::with_state(Vec::new()).unwrap()));
}

#[test]
fn sim() {
    body(&mut Simulated(Sim::new(5, Vec::new())));
}
