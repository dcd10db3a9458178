//! libuv's million_timers: start 1,000,000 timers with timeouts spread over 1..1000 ms
//! (a thousand per millisecond), run until all have fired, then close them all.

use std::time::{Duration, Instant};

use evloop::{Loop, RunMode, Timer};

mod common;

fn main() {
    let n = common::scale(1_000_000, 10_000);
    let rss_before = common::rss_kib().unwrap_or(0);
    let mut lp = Loop::with_state(0u64).unwrap();
    let mut timers = Vec::with_capacity(n as usize);

    let before_all = Instant::now();
    let mut timeout = 0;
    for i in 0..n {
        if i % 1000 == 0 {
            timeout += 1;
        }
        let t = Timer::new(&mut lp, |lp, _| lp.state += 1);
        t.start(&mut lp, Duration::from_millis(timeout), Duration::ZERO).unwrap();
        timers.push(t);
    }
    let before_run = Instant::now();
    lp.run(RunMode::Default).unwrap();
    let after_run = Instant::now();
    for t in &timers {
        t.close(&mut lp).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    let after_all = Instant::now();
    assert_eq!(lp.state, n);
    assert_eq!(lp.handle_count(), 0);

    let init = before_run - before_all;
    common::report("timers", "starts/s", common::rate(n, init), "/s");
    common::report("timers", "init ms", init.as_secs_f64() * 1e3, "ms");
    common::report("timers", "dispatch ms", (after_run - before_run).as_secs_f64() * 1e3, "ms");
    common::report("timers", "cleanup ms", (after_all - after_run).as_secs_f64() * 1e3, "ms");
    common::report("timers", "total ms", (after_all - before_all).as_secs_f64() * 1e3, "ms");
    if let Some(peak) = common::peak_rss_kib() {
        common::report("timers", "peak RSS KiB", peak as f64, "KiB");
        common::report(
            "timers",
            "bytes/timer (peak)",
            (peak.saturating_sub(rss_before) * 1024) as f64 / n as f64,
            "B",
        );
    }
}
