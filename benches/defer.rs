//! Deferred calls against zero-delay timers: `n` one-shot callbacks on the next iteration,
//! 1,000 outstanding at a time, each making the next.
//!
//! - `Loop::defer`: a boxed closure pushed on a queue;
//! - a 0 ms `Timer`: what a program without `defer` writes (open, start, close in the
//!   callback).

use std::time::{Duration, Instant};

use evloop::{Loop, RunMode, Timer};

mod common;

struct St {
    made: u64,
    total: u64,
}

fn deferred(lp: &mut Loop<St>) {
    if lp.state.made < lp.state.total {
        lp.state.made += 1;
        lp.defer(deferred);
    }
}

fn zero_timer(lp: &mut Loop<St>) {
    if lp.state.made < lp.state.total {
        lp.state.made += 1;
        let t = Timer::new(lp, |lp, t| {
            t.close(lp).unwrap();
            zero_timer(lp);
        });
        t.start(lp, Duration::ZERO, Duration::ZERO).unwrap();
    }
}

fn run(n: u64, start_one: fn(&mut Loop<St>)) -> f64 {
    let mut lp = Loop::with_state(St { made: 0, total: n }).unwrap();
    let start = Instant::now();
    for _ in 0..1_000.min(n) {
        start_one(&mut lp);
    }
    lp.run(RunMode::Default).unwrap();
    common::rate(n, start.elapsed())
}

fn main() {
    let n = common::scale(5_000_000, 10_000);
    common::report("defer", "Loop::defer calls/s", run(n, deferred), "/s");
    common::report("defer", "0 ms Timer calls/s", run(n, zero_timer), "/s");
}
