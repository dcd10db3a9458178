//! Timer semantics, ported from what libuv's test suite pins down (test-timer.c,
//! test-timer-from-check.c) plus evloop's own promises.

use std::time::{Duration, Instant};

use evloop::{Check, Loop, Prepare, RunMode, Timer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn timers_due_together_fire_in_start_order() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    // Started in an order that differs from their slot order.
    let timers: Vec<Timer> = (0..10).map(|i| Timer::new(&mut lp, move |lp, _| lp.state.push(i))).collect();
    for &i in &[3usize, 1, 4, 0, 9, 2, 6, 5, 8, 7] {
        timers[i].start(&mut lp, ms(5), Duration::ZERO).unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, vec![3, 1, 4, 0, 9, 2, 6, 5, 8, 7]);
}

#[test]
fn earlier_deadline_fires_first_whatever_the_start_order() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let late = Timer::new(&mut lp, |lp, _| lp.state.push("late"));
    let early = Timer::new(&mut lp, |lp, _| lp.state.push("early"));
    late.start(&mut lp, ms(20), Duration::ZERO).unwrap();
    early.start(&mut lp, ms(1), Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["early", "late"]);
}

#[test]
fn restarting_moves_a_timer_behind_its_equals() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let a = Timer::new(&mut lp, |lp, _| lp.state.push('a'));
    let b = Timer::new(&mut lp, |lp, _| lp.state.push('b'));
    a.start(&mut lp, ms(2), Duration::ZERO).unwrap();
    b.start(&mut lp, ms(2), Duration::ZERO).unwrap();
    a.start(&mut lp, ms(2), Duration::ZERO).unwrap(); // restart: now after b
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!['b', 'a']);
}

#[test]
fn zero_timeout_rearmed_inside_its_callback_waits_for_the_next_iteration() {
    // state: (fires, iteration at each fire)
    let mut lp = Loop::with_state((0u32, Vec::new())).unwrap();
    let t = Timer::new(&mut lp, |lp, t| {
        lp.state.0 += 1;
        let it = lp.metrics().iterations;
        lp.state.1.push(it);
        if lp.state.0 < 3 {
            t.start(lp, Duration::ZERO, Duration::ZERO).unwrap();
        }
    });
    t.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state.0, 3);
    let its = &lp.state.1;
    assert!(its[0] < its[1] && its[1] < its[2], "each re-arm waits an iteration: {its:?}");
}

#[test]
fn repeating_timer_fires_at_most_once_per_once_or_nowait_call() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let t = Timer::new(&mut lp, |lp, _| lp.state += 1);
    t.start(&mut lp, ms(1), ms(1)).unwrap();
    for _ in 0..20 {
        let before = lp.state;
        lp.run(RunMode::Once).unwrap();
        assert!(lp.state - before <= 1);
    }
    // Let several repeats fall due, then NoWait runs only one of them.
    std::thread::sleep(ms(10));
    let before = lp.state;
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state - before, 1);
    t.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn a_timer_never_fires_before_its_start_time_plus_timeout() {
    // (loop time at start, fire checks passed)
    let mut lp = Loop::with_state(0u32).unwrap();
    for timeout in [1u64, 2, 5, 10, 17, 30] {
        // The guarantee is relative to the loop's cached time at start: take the clock
        // reading just before the cache is refreshed, so that `real_start` is never later
        // than the instant `started_at` stands for, however the scheduler delays this thread.
        let real_start = Instant::now();
        lp.update_time();
        let started_at = lp.now();
        let t = Timer::new(&mut lp, move |lp, t| {
            assert!(lp.now() >= started_at + timeout, "loop time {} < {} + {timeout}", lp.now(), started_at);
            assert!(real_start.elapsed() >= ms(timeout).saturating_sub(ms(1)));
            lp.state += 1;
            t.close(lp).unwrap();
        });
        t.start(&mut lp, ms(timeout), Duration::ZERO).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, 6);
}

#[test]
fn sub_millisecond_timeouts_round_up() {
    let mut lp = Loop::new().unwrap();
    let t = Timer::new(&mut lp, |_, _| {});
    t.start(&mut lp, Duration::from_micros(100), Duration::ZERO).unwrap();
    assert_eq!(t.due_in(&lp).unwrap(), ms(1));
}

#[test]
fn huge_timeouts_saturate() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let t = Timer::new(&mut lp, |lp, _| lp.state += 1);
    t.start(&mut lp, Duration::MAX, Duration::MAX).unwrap();
    assert!(t.is_active(&lp));
    let due = t.due_in(&lp).unwrap();
    assert_eq!(due, ms(u64::MAX - lp.now()));
    assert_eq!(t.repeat(&lp).unwrap(), ms(u64::MAX));
    // It is not due: a non-blocking run does not fire it.
    assert!(lp.run(RunMode::NoWait).unwrap());
    assert_eq!(lp.state, 0);
    t.close(&mut lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
}

#[test]
fn stop_again_set_repeat_and_due_in() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let t = Timer::new(&mut lp, |lp, _| lp.state += 1);
    assert_eq!(t.due_in(&lp).unwrap(), Duration::ZERO);
    // again() on a one-shot timer does nothing.
    t.again(&mut lp).unwrap();
    assert!(!t.is_active(&lp));
    t.start(&mut lp, ms(1000), Duration::ZERO).unwrap();
    assert_eq!(t.due_in(&lp).unwrap(), ms(1000));
    t.set_repeat(&mut lp, ms(50)).unwrap();
    assert_eq!(t.repeat(&lp).unwrap(), ms(50));
    t.again(&mut lp).unwrap();
    assert_eq!(t.due_in(&lp).unwrap(), ms(50));
    t.stop(&mut lp).unwrap();
    assert!(!t.is_active(&lp));
    assert_eq!(t.due_in(&lp).unwrap(), Duration::ZERO);
    t.stop(&mut lp).unwrap(); // stopping twice is fine
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, 0);
}

#[test]
fn a_timer_stopping_a_sibling_due_in_the_same_pass() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let second = Timer::new(&mut lp, |lp, _| lp.state.push("second"));
    let first = Timer::new(&mut lp, move |lp, _| {
        lp.state.push("first");
        second.stop(lp).unwrap();
    });
    first.start(&mut lp, ms(3), Duration::ZERO).unwrap();
    second.start(&mut lp, ms(3), Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["first"]);
}

#[test]
fn a_repeat_rearmed_from_its_own_callback() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let t = Timer::new(&mut lp, |lp, t| {
        lp.state += 1;
        match lp.state {
            1 => t.start(lp, ms(1), ms(1)).unwrap(), // restart from inside
            4 => t.stop(lp).unwrap(),
            _ => {}
        }
    });
    t.start(&mut lp, ms(1), Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, 4);
}

#[test]
fn a_timer_started_from_check_fires_only_after_the_next_prepare() {
    // libuv's timer_from_check.
    #[derive(Default)]
    struct S {
        prepare: u32,
        check: u32,
        timer: u32,
    }
    let mut lp = Loop::with_state(S::default()).unwrap();
    let prepare = Prepare::new(&mut lp, |lp, p| {
        p.stop(lp).unwrap();
        assert_eq!((lp.state.prepare, lp.state.check, lp.state.timer), (0, 1, 0));
        lp.state.prepare += 1;
    });
    let timer = Timer::new(&mut lp, |lp, t| {
        t.stop(lp).unwrap();
        assert_eq!((lp.state.prepare, lp.state.check, lp.state.timer), (1, 1, 0));
        lp.state.timer += 1;
    });
    let check = Check::new(&mut lp, move |lp, c| {
        c.stop(lp).unwrap();
        timer.stop(lp).unwrap();
        timer.start(lp, ms(50), Duration::ZERO).unwrap();
        prepare.start(lp).unwrap();
        assert_eq!((lp.state.prepare, lp.state.check, lp.state.timer), (0, 0, 0));
        lp.state.check += 1;
    });
    check.start(&mut lp).unwrap();
    timer.start(&mut lp, ms(50), Duration::ZERO).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!((lp.state.prepare, lp.state.check, lp.state.timer), (1, 1, 1));
}

#[test]
fn a_callback_that_starts_a_thousand_timers() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let t = Timer::new(&mut lp, |lp, t| {
        for i in 0..1000u64 {
            let child = Timer::new(lp, |lp, child| {
                lp.state += 1;
                child.close(lp).unwrap();
            });
            child.start(lp, ms(i % 7), Duration::ZERO).unwrap();
        }
        t.close(lp).unwrap();
    });
    t.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, 1000);
    assert_eq!(lp.handle_count(), 0);
}

/// Peak resident memory of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn many_restarts_do_not_grow_without_bound() {
    // An idle timeout pushed back on every event: 2,000,000 restarts of 1,000 timers must
    // neither fire them nor change what fires afterwards, nor keep their stale heap entries.
    // An earlier live timer (the anchor) sits at the top of the heap, so that stale entries
    // never surface there: only the compaction of lazy deletion frees them. Kept, they
    // would take 2,000,000 x 24 bytes = 46 MiB; a working heap holds at most ~2,100 entries.
    let mut lp = Loop::with_state(0u32).unwrap();
    let anchor = Timer::new(&mut lp, |_, _| panic!("the anchor never fires"));
    anchor.start(&mut lp, ms(5_000), Duration::ZERO).unwrap();
    let timers: Vec<Timer> = (0..1000).map(|_| Timer::new(&mut lp, |lp, _| lp.state += 1)).collect();
    let before = peak_rss_kib();
    for round in 0..2000 {
        for t in &timers {
            t.start(&mut lp, ms(10_000 + round), Duration::ZERO).unwrap();
        }
    }
    let grown = peak_rss_kib().saturating_sub(before);
    eprintln!("peak RSS grew by {grown} KiB");
    // Generous for allocator noise and other tests of this binary; far below 46 MiB.
    assert!(grown < 16 * 1024, "peak RSS grew by {grown} KiB over 2,000,000 restarts");
    anchor.close(&mut lp).unwrap();
    for t in &timers {
        t.start(&mut lp, ms(1), Duration::ZERO).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, 1000);
}
