//! Idle, prepare and check semantics (libuv's test-idle.c, test-loop-handles.c).

use std::time::Duration;

use evloop::{Check, Idle, Loop, Prepare, RunMode, Timer};

#[test]
fn an_active_idle_watcher_keeps_the_poll_from_blocking() {
    // A timer 10 s away would block the first poll for 10 s if idle did not prevent it; the
    // idle watcher closes it after 100 iterations, so it must never fire.
    let mut lp = Loop::with_state((0u32, false)).unwrap();
    let far = Timer::new(&mut lp, |lp, _| lp.state.1 = true);
    far.start(&mut lp, Duration::from_secs(10), Duration::ZERO).unwrap();
    let idle = Idle::new(&mut lp, move |lp, idle| {
        lp.state.0 += 1;
        if lp.state.0 == 100 {
            idle.close(lp).unwrap();
            far.close(lp).unwrap();
        }
    });
    idle.start(&mut lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, (100, false));
}

#[test]
fn phase_order_within_one_iteration() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let check = Check::new(&mut lp, |lp, _| lp.state.push("check"));
    let prepare = Prepare::new(&mut lp, |lp, _| lp.state.push("prepare"));
    let idle = Idle::new(&mut lp, |lp, _| lp.state.push("idle"));
    let timer = Timer::new(&mut lp, move |lp, t| {
        lp.state.push("timer");
        // Close everything: check callbacks of this iteration already ran, close callbacks
        // run in the next one, after its check phase.
        for h in [check.handle(), prepare.handle(), idle.handle(), t.handle()] {
            h.close_with(lp, |lp| lp.state.push("close")).unwrap();
        }
    });
    check.start(&mut lp).unwrap();
    prepare.start(&mut lp).unwrap();
    idle.start(&mut lp).unwrap();
    timer.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, vec!["idle", "prepare", "check", "timer"]);
    lp.state.clear();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, vec!["close"; 4]);
}

#[test]
fn check_callbacks_of_an_iteration_run_before_its_close_callbacks() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let check = Check::new(&mut lp, |lp, _| lp.state.push("check"));
    let idle = Idle::new(&mut lp, move |lp, idle| {
        lp.state.push("idle");
        idle.close_with(lp, |lp| lp.state.push("close idle")).unwrap();
    });
    check.start(&mut lp).unwrap();
    idle.start(&mut lp).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, vec!["idle", "check", "close idle"]);
    check.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn a_watcher_stopped_by_another_during_a_pass_is_not_called_later_in_it() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let second = Idle::new(&mut lp, |lp, _| lp.state.push(2));
    let third = Idle::new(&mut lp, |lp, _| lp.state.push(3));
    let first = Idle::new(&mut lp, move |lp, first| {
        lp.state.push(1);
        second.stop(lp).unwrap();
        third.close(lp).unwrap();
        first.stop(lp).unwrap();
    });
    // Most recently started runs first: `first` runs before the two it stops.
    third.start(&mut lp).unwrap();
    second.start(&mut lp).unwrap();
    first.start(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec![1]);
}

#[test]
fn a_watcher_stopped_and_restarted_during_a_pass_waits_for_the_next() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let second = Prepare::new(&mut lp, |lp, p| {
        lp.state.push("second");
        p.stop(lp).unwrap();
    });
    let first = Prepare::new(&mut lp, move |lp, p| {
        lp.state.push("first");
        second.stop(lp).unwrap();
        second.start(lp).unwrap();
        p.stop(lp).unwrap();
    });
    second.start(&mut lp).unwrap();
    first.start(&mut lp).unwrap(); // started last, runs first
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, vec!["first"]);
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, vec!["first", "second"]);
    assert!(!lp.run(RunMode::Default).unwrap());
}

#[test]
fn a_watcher_started_during_a_pass_waits_for_the_next() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let late = Check::new(&mut lp, |lp, c| {
        lp.state.push("late");
        c.stop(lp).unwrap();
    });
    let early = Check::new(&mut lp, move |lp, c| {
        lp.state.push("early");
        late.start(lp).unwrap();
        c.stop(lp).unwrap();
    });
    early.start(&mut lp).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, vec!["early"]);
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, vec!["early", "late"]);
}

/// libuv's order: within a phase, the most recently started watcher runs first
/// (`uv_prepare_start` inserts at the head; libuv's `loop_handles` test depends on it).
#[test]
fn watchers_run_once_per_iteration_most_recently_started_first() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let ws: Vec<Idle> = (0..5).map(|i| Idle::new(&mut lp, move |lp, _| lp.state.push(i))).collect();
    for &i in &[2usize, 0, 4, 1, 3] {
        ws[i].start(&mut lp).unwrap();
    }
    ws[2].start(&mut lp).unwrap(); // starting an active watcher does nothing, its place neither
    lp.run(RunMode::NoWait).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, vec![3, 1, 4, 0, 2, 3, 1, 4, 0, 2]);
    // A restart is a new start: the watcher moves to the front.
    ws[4].stop(&mut lp).unwrap();
    ws[4].start(&mut lp).unwrap();
    lp.state.clear();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, vec![4, 3, 1, 0, 2]);
}

/// Each phase keeps its own order, most recent first, for prepare and check watchers too.
#[test]
fn prepare_and_check_watchers_run_most_recently_started_first() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let p1 = Prepare::new(&mut lp, |lp, _| lp.state.push("p1"));
    let p2 = Prepare::new(&mut lp, |lp, _| lp.state.push("p2"));
    let c1 = Check::new(&mut lp, |lp, _| lp.state.push("c1"));
    let c2 = Check::new(&mut lp, |lp, _| lp.state.push("c2"));
    for started in [p1.start(&mut lp), c1.start(&mut lp), p2.start(&mut lp), c2.start(&mut lp)] {
        started.unwrap();
    }
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, vec!["p2", "p1", "c2", "c1"]);
}

#[test]
fn while_run_once_terminates_when_the_work_is_done() {
    // libuv's run_once.
    let mut lp = Loop::with_state(0u32).unwrap();
    let idle = Idle::new(&mut lp, |lp, idle| {
        lp.state += 1;
        if lp.state == 64 {
            idle.stop(lp).unwrap();
        }
    });
    idle.start(&mut lp).unwrap();
    let mut calls = 0;
    while lp.run(RunMode::Once).unwrap() {
        calls += 1;
        assert!(calls < 1000);
    }
    assert_eq!(lp.state, 64);
}

/// libuv's order on the simulated driver too.
#[test]
fn simulated_watchers_run_most_recently_started_first() {
    let mut sim = evloop::sim::Sim::new(3, Vec::new());
    let ws: Vec<Idle> = (0..3).map(|i| Idle::new(&mut sim, move |lp, _| lp.state.push(i))).collect();
    for w in &ws {
        w.start(&mut sim).unwrap();
    }
    sim.run_until_idle().unwrap_err(); // three idle watchers never stop: a livelock, reported
    assert_eq!(sim.state[..6], [2, 1, 0, 2, 1, 0]);
}
