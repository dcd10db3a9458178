//! Deferred calls (`Loop::defer`, Node's `setImmediate`): order, phase, liveness, and that
//! a pending call keeps the poll from blocking.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use evloop::sim::Sim;
use evloop::{Check, Loop, Prepare, RunMode, Timer};

#[test]
fn deferred_calls_run_in_order_in_the_check_phase_before_check_watchers() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let prepare = Prepare::new(&mut lp, |lp, _| lp.state.push("prepare"));
    let check = Check::new(&mut lp, |lp, _| lp.state.push("check"));
    prepare.start(&mut lp).unwrap();
    check.start(&mut lp).unwrap();
    lp.defer(|lp| lp.state.push("defer 1"));
    lp.defer(|lp| lp.state.push("defer 2"));
    assert!(lp.state.is_empty(), "never inside defer");
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, ["prepare", "defer 1", "defer 2", "check"]);
    lp.state.clear();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, ["prepare", "check"], "each call runs once");
}

#[test]
fn a_call_deferred_by_a_deferred_call_waits_for_the_next_iteration() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    lp.defer(|lp| {
        lp.state.push(1);
        lp.defer(|lp| lp.state.push(3));
    });
    lp.defer(|lp| lp.state.push(2));
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, [1, 2]);
    assert!(lp.alive(), "the call deferred meanwhile keeps the loop alive");
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, [1, 2, 3]);
    assert!(!lp.alive());
}

#[test]
fn a_pending_call_keeps_the_loop_alive_and_run_default_ends_after_it() {
    let mut lp = Loop::with_state(0u32).unwrap();
    assert!(!lp.alive());
    lp.defer(|lp| lp.state += 1);
    assert!(lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, 1);
    assert_eq!(lp.metrics().callbacks, 1);
}

/// With a call pending, the poll must not block: on the simulator no virtual time passes
/// before it runs, though a timer an hour away is the only other thing alive.
#[test]
fn a_pending_call_keeps_the_poll_from_blocking() {
    let mut sim = Sim::new(4, Vec::new());
    let t = Timer::new(&mut sim, |lp, _| lp.state.push("timer"));
    t.start(&mut sim, Duration::from_secs(3600), Duration::ZERO).unwrap();
    sim.defer(|lp| lp.state.push("deferred"));
    sim.run_until_idle().unwrap(); // runs only what needs no time to pass
    assert_eq!(sim.state, ["deferred"]);
    assert_eq!(sim.elapsed(), Duration::ZERO);
    sim.run().unwrap();
    assert_eq!(sim.state, ["deferred", "timer"]);
    assert_eq!(sim.elapsed(), Duration::from_secs(3600));
}

#[test]
fn a_panicking_deferred_call_propagates_and_the_rest_still_run() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    lp.defer(|_| panic!("boom"));
    lp.defer(|lp| lp.state.push("after the panic"));
    assert!(catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).is_err());
    assert!(lp.state.is_empty());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, ["after the panic"]);
}
