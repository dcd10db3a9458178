//! libuv's loop_count: an idle watcher counts loop iterations; iterations per second.

use std::time::Instant;

use evloop::{Idle, Loop, RunMode};

mod common;

fn main() {
    let iterations = common::scale(2_000_000, 10_000);
    let mut lp = Loop::with_state((0u64, iterations)).unwrap();
    let idle = Idle::new(&mut lp, |lp, idle| {
        lp.state.0 += 1;
        if lp.state.0 == lp.state.1 {
            idle.stop(lp).unwrap();
        }
    });
    idle.start(&mut lp).unwrap();
    let start = Instant::now();
    lp.run(RunMode::Default).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(lp.state.0, iterations);
    assert_eq!(lp.metrics().iterations, iterations);
    common::report("loop_count", "iterations/s", common::rate(iterations, elapsed), "/s");
    common::report("loop_count", "ns/iteration", elapsed.as_nanos() as f64 / iterations as f64, "ns");
}
