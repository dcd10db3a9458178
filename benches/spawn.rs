//! Spawn-and-wait of `/bin/true`: processes per second, one at a time and 16 at a time,
//! with `std::process::Command::status` (a blocking spawn and wait) beside it for scale.

use std::process::Command;
use std::time::Instant;

use evloop::{Loop, Process, RunMode};

mod common;

/// Starts the next process, if any is left (the state: started, total); each exit starts
/// another.
fn start_one(lp: &mut Loop<(u64, u64)>) {
    let (started, total) = &mut lp.state;
    if started < total {
        *started += 1;
        Process::spawn(lp, &mut Command::new("/bin/true"), |lp, p, status| {
            assert!(status.success());
            p.close(lp).unwrap();
            start_one(lp);
        })
        .unwrap();
    }
}

fn evloop_rate(n: u64, at_once: u64) -> f64 {
    let mut lp = Loop::with_state((0, n)).unwrap();
    let start = Instant::now();
    for _ in 0..at_once {
        start_one(&mut lp);
    }
    lp.run(RunMode::Default).unwrap();
    common::rate(n, start.elapsed())
}

fn std_rate(n: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        assert!(Command::new("/bin/true").status().unwrap().success());
    }
    common::rate(n, start.elapsed())
}

fn main() {
    let n = common::scale(2_000, 20);
    common::report("spawn", "evloop 1 at a time", evloop_rate(n, 1), "proc/s");
    common::report("spawn", "evloop 16 at a time", evloop_rate(n, 16), "proc/s");
    common::report("spawn", "std status() serial", std_rate(n), "proc/s");
}
