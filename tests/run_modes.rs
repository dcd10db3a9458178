//! Run modes, stop, alive, metrics, walk (libuv's test-loop-stop.c, test-run-nowait.c).

use std::time::Duration;

use evloop::{HandleKind, Idle, Loop, Prepare, RunMode, Timer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn stop_makes_run_return_alive_and_a_later_run_resumes() {
    #[derive(Default)]
    struct S {
        prepare: u32,
        timer: u32,
    }
    let mut lp = Loop::with_state(S::default()).unwrap();
    let prepare = Prepare::new(&mut lp, |lp, p| {
        lp.state.prepare += 1;
        if lp.state.prepare == 10 {
            p.stop(lp).unwrap();
        }
    });
    let timer = Timer::new(&mut lp, |lp, t| {
        lp.state.timer += 1;
        if lp.state.timer == 1 {
            lp.stop();
        } else if lp.state.timer == 10 {
            t.stop(lp).unwrap();
        }
    });
    prepare.start(&mut lp).unwrap();
    timer.start(&mut lp, ms(10), ms(10)).unwrap();

    assert!(lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state.timer, 1);

    assert!(lp.run(RunMode::NoWait).unwrap());
    assert!(lp.state.prepare > 1);

    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state.timer, 10);
    assert_eq!(lp.state.prepare, 10);
}

#[test]
fn stop_before_run_skips_everything() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let t = Timer::new(&mut lp, |lp, _| lp.state += 1);
    t.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    lp.stop();
    assert!(lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, 0);
    // The request was consumed: the next run fires the timer.
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, 1);
}

#[test]
fn nowait_with_only_a_future_timer_returns_without_running_it() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let t = Timer::new(&mut lp, |lp, _| lp.state += 1);
    t.start(&mut lp, ms(100), ms(100)).unwrap();
    assert!(lp.run(RunMode::NoWait).unwrap());
    assert_eq!(lp.state, 0);
}

#[test]
fn once_blocks_until_the_timer_and_fires_it_in_the_same_call() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let t = Timer::new(&mut lp, |lp, _| lp.state += 1);
    t.start(&mut lp, ms(20), Duration::ZERO).unwrap();
    let started = lp.now();
    assert!(!lp.run(RunMode::Once).unwrap());
    assert_eq!(lp.state, 1);
    assert!(lp.now() >= started + 20);
}

#[test]
fn run_with_nothing_to_do_returns_false_in_every_mode() {
    let mut lp = Loop::new().unwrap();
    for mode in [RunMode::Default, RunMode::Once, RunMode::NoWait] {
        assert!(!lp.run(mode).unwrap());
    }
    assert!(!lp.alive());
}

#[test]
fn alive_follows_active_referenced_handles_and_closing_ones() {
    let mut lp = Loop::new().unwrap();
    let t = Timer::new(&mut lp, |_, _| {});
    assert!(!lp.alive(), "an inactive handle does not keep the loop alive");
    t.start(&mut lp, ms(1000), Duration::ZERO).unwrap();
    assert!(lp.alive());
    t.unref(&mut lp).unwrap();
    assert!(!lp.alive());
    t.ref_(&mut lp).unwrap();
    t.close(&mut lp).unwrap();
    assert!(lp.alive(), "a handle whose close callback has not run keeps the loop alive");
    assert!(!lp.run(RunMode::NoWait).unwrap());
    assert!(!lp.alive());
}

#[test]
fn metrics_count_iterations_events_and_idle_time() {
    let mut lp = Loop::with_state(0u32).unwrap();
    let idle = Idle::new(&mut lp, |lp, i| {
        lp.state += 1;
        if lp.state == 5 {
            i.close(lp).unwrap();
        }
    });
    idle.start(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
    let m = lp.metrics();
    assert_eq!(m.iterations, 5);
    assert_eq!(m.callbacks, 5);
    assert_eq!(m.idle_time, Duration::ZERO, "an idle watcher never lets the poll block");

    let t = Timer::new(&mut lp, |_, _| {});
    t.start(&mut lp, ms(100), Duration::ZERO).unwrap();
    let real = std::time::Instant::now();
    lp.run(RunMode::Default).unwrap();
    let elapsed = real.elapsed();
    let m = lp.metrics();
    assert_eq!(m.callbacks, 6);
    assert!(m.idle_time > Duration::ZERO, "the poll blocked for the timer");
    assert!(m.idle_time <= elapsed, "{:?} > {elapsed:?}", m.idle_time);
}

#[test]
fn walk_visits_every_open_handle_and_may_close_them() {
    let mut lp = Loop::new().unwrap();
    let t = Timer::new(&mut lp, |_, _| {});
    let i = Idle::new(&mut lp, |_, _| {});
    let p = Prepare::new(&mut lp, |_, _| {});
    t.start(&mut lp, ms(10_000), Duration::ZERO).unwrap();
    i.start(&mut lp).unwrap();
    let mut kinds = Vec::new();
    lp.walk(|lp, h| kinds.push(h.kind(lp).unwrap()));
    assert_eq!(kinds, vec![HandleKind::Timer, HandleKind::Idle, HandleKind::Prepare]);
    assert!(p.handle().kind(&lp).is_ok());

    lp.walk(|lp, h| h.close(lp).unwrap());
    assert_eq!(lp.handle_count(), 3, "closing handles stay until their close phase");
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
    let mut visited = 0;
    lp.walk(|_, _| visited += 1);
    assert_eq!(visited, 0);
}

/// A misuse, reported as one: `InvalidInput`, not `WouldBlock` (a kind that invites a retry).
#[test]
fn run_from_inside_a_callback_is_an_error() {
    let mut lp = Loop::with_state(None).unwrap();
    let t = Timer::new(&mut lp, |lp, _| {
        let r = lp.run(RunMode::NoWait);
        lp.state = Some(r.map_err(|e| (e.kind(), e.to_string())));
    });
    t.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    let (kind, message) = lp.state.take().unwrap().unwrap_err();
    assert_eq!(kind, std::io::ErrorKind::InvalidInput);
    assert!(message.contains("inside a callback"), "{message}");
}
