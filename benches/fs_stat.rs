//! fs_stat: `metadata` of one file, synchronously in a loop, then through the pool with 1, 4,
//! 16 and 32 requests in flight (libuv's fs_stat benchmark).

use std::time::Instant;

use evloop::{fs, Loop, RunMode};

mod common;

struct State {
    path: std::path::PathBuf,
    submitted: u64,
    completed: u64,
    total: u64,
}

fn stat(lp: &mut Loop<State>) {
    lp.state.submitted += 1;
    let path = lp.state.path.clone();
    fs::metadata(lp, &path, |lp, r| {
        r.unwrap();
        lp.state.completed += 1;
        if lp.state.submitted < lp.state.total {
            stat(lp);
        }
    })
    .unwrap();
}

fn main() {
    let path = std::env::current_exe().unwrap();
    let sync_n = common::scale(1_000_000, 2_000);
    let start = Instant::now();
    for _ in 0..sync_n {
        std::hint::black_box(std::fs::metadata(&path).unwrap());
    }
    common::report("fs_stat", "sync stats/s", common::rate(sync_n, start.elapsed()), "/s");

    let pool_n = common::scale(100_000, 1_000);
    for in_flight in [1u64, 4, 16, 32] {
        let mut lp =
            Loop::with_state(State { path: path.clone(), submitted: 0, completed: 0, total: pool_n })
                .unwrap();
        let start = Instant::now();
        for _ in 0..in_flight {
            stat(&mut lp);
        }
        lp.run(RunMode::Default).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(lp.state.completed, pool_n);
        common::report(
            "fs_stat",
            &format!("pool stats/s ({in_flight:>2} in flight)"),
            common::rate(pool_n, elapsed),
            "/s",
        );
    }
}
