//! queue_work throughput: no-op jobs through the pool, 1,000 kept in flight.

use std::time::Instant;

use evloop::{Loop, RunMode};

mod common;

struct State {
    submitted: u64,
    completed: u64,
    total: u64,
}

fn submit(lp: &mut Loop<State>) {
    lp.state.submitted += 1;
    lp.queue_work(
        || 0u8,
        |lp, r| {
            r.unwrap();
            lp.state.completed += 1;
            if lp.state.submitted < lp.state.total {
                submit(lp);
            }
        },
    )
    .unwrap();
}

fn main() {
    let total = common::scale(1_000_000, 2_000);
    let in_flight = 1_000.min(total);
    let mut lp = Loop::with_state(State { submitted: 0, completed: 0, total }).unwrap();
    let start = Instant::now();
    for _ in 0..in_flight {
        submit(&mut lp);
    }
    lp.run(RunMode::Default).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(lp.state.completed, total);
    common::report("queue_work", "jobs/s", common::rate(total, elapsed), "/s");
}
