//! Callbacks never run inside the call that asked for them (libuv's guarantee).

use std::time::Duration;

use evloop::{Idle, Loop, RunMode, Timer, Waker};

#[test]
fn callbacks_never_run_inside_the_call_that_started_them() {
    let mut lp = Loop::with_state(0u32).unwrap();

    let t = Timer::new(&mut lp, |lp, _| lp.state += 1);
    t.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    assert_eq!(lp.state, 0, "a zero timeout does not fire inside start");

    let i = Idle::new(&mut lp, |lp, i| {
        lp.state += 10;
        i.stop(lp).unwrap();
    });
    i.start(&mut lp).unwrap();
    assert_eq!(lp.state, 0);

    let w = Waker::new(&mut lp, |lp, w| {
        lp.state += 100;
        w.close(lp).unwrap();
    });
    w.wake().unwrap();
    assert_eq!(lp.state, 0, "a wake from the loop thread does not call back inside wake");

    let c = Timer::new(&mut lp, |_, _| {});
    c.close_with(&mut lp, |lp| lp.state += 1000).unwrap();
    assert_eq!(lp.state, 0, "close callbacks run from the loop");

    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, 1111);
}

#[test]
fn a_timer_started_inside_a_callback_does_not_run_inside_that_callback() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let inner = Timer::new(&mut lp, |lp, _| lp.state.push("inner"));
    let outer = Timer::new(&mut lp, move |lp, _| {
        inner.start(lp, Duration::ZERO, Duration::ZERO).unwrap();
        lp.state.push("outer done");
    });
    outer.start(&mut lp, Duration::ZERO, Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["outer done", "inner"]);
}
